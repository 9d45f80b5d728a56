"""The smoke preset end to end through the real `dvc repro`, in a temporary copy of the project:
everything runs and a second repro is a no-op. That editing one K re-runs only that K's branch is
tested on the same run through the flow (tests/test_flow.py), which asks `dvc status` what is
stale: one re-run of the branch instead of two."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from conftest import dvc

from pipeline.dag import target


def ran_stages(output: str) -> set[str]:
    """The stages DVC ran, by name (without their dag/<kind>/dvc.yaml: prefix)."""
    return {s.split(":")[-1] for s in re.findall(r"Running stage '([^']+)'", output)}


@pytest.fixture
def smoke(smoke_run) -> Path:
    return smoke_run


def metrics(smoke: Path, name: str) -> dict:
    return json.loads((smoke / f"metrics/{name}.json").read_text())


def test_smoke_runs_every_stage(smoke):
    """Every stage ran, and the label-dependent numbers are far above chance (10 classes, 80 val
    images): features, tokens and labels stay matched row for row. At this scale (1 SSL epoch)
    the trained encoder does not reliably beat the random one, so that is not asserted here."""
    out = (smoke / "first_run.log").read_text()
    stages = {s.split(":")[-1] for s in dvc(smoke, "stage", "list", "--all", "--name-only").split()}
    assert ran_stages(out) == stages
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    for k in params["kmeans"]["ks"]:
        for seed in params["seeds"]:  # the tokenizer is replicated along the seed axis
            assert (smoke / f"centroids/k{k}_s{seed}.npy").exists()
            assert (smoke / f"tokens/disc_k{k}_s{seed}.zarr").is_dir()
        tokens = metrics(smoke, f"tokens_k{k}")
        for enc in ("trained", "random"):
            t = tokens[enc]
            assert t["token_probe_top1"] > 0.3, (k, enc)  # chance 0.1; measured 0.57-0.73
            # exp(entropy) of the code distribution is at most the number of codes used
            assert 1 <= t["perplexity"] <= t["codes_used"] + 1e-9 and t["codes_used"] <= k, (k, enc)
    enc = metrics(smoke, "encoder")
    assert set(enc["knn_top1"]) == {"pixels", "random", "trained"}
    assert enc["knn_top1"]["pixels"] > 0.5  # pixel k-NN on MNIST: measured 0.875


def test_smoke_generative_outputs(smoke):
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    ks, main = params["kmeans"]["ks"], params["kmeans"]["main_k"]
    n = params["generate"]["n_samples"]
    data = zarr.open_group(str(smoke / "data/images.zarr"), mode="r")
    val = data["images"][:][data["is_val"][:]].astype(np.float64) / 255
    vq = metrics(smoke, "vq_s0")
    assert vq["grid"] == 7
    # the VQ reconstructs better than an all-black image (measured MSE 0.069 vs 0.111)
    assert vq["val"]["mse"] < (val**2).mean()
    assert vq["val"]["psnr"] == pytest.approx(-10 * math.log10(vq["val"]["mse"]), abs=1e-3)
    vq_tokens = zarr.open_group(str(smoke / "tokens/vq_s0.zarr"), mode="r")["tokens"]
    disc = zarr.open_group(str(smoke / f"tokens/disc_k{main}_s0.zarr"), mode="r")["tokens"]
    assert vq_tokens.shape == disc.shape  # the same token grid for both AR models
    seeds, sample_seeds, seed = params["seeds"], params["sample_seeds"], params["seed"]
    per_seed = [f"{m}_s{s}" for m in [*(f"k{k}" for k in ks), "vq"] for s in seeds]
    models = per_seed + [f"k{main}_cond", "vq_cond", f"k{main}_long", f"k{main}_large"]
    for m in models:
        ar = metrics(smoke, f"ar_{m}")
        # context helps: below the unigram model of the same tokens (measured by 0.7-1.8 bits)
        assert ar["val_bits_per_token"] < ar["unigram_bits_per_token"], m
        assert ar["val_bits_per_token"] == pytest.approx(ar["val_loss"] / math.log(2), abs=1e-3)
        assert (smoke / f"models/ar_{m}.pt").exists()
        assert (smoke / f"dvclive/ar_{m}/plots/metrics/train/loss.tsv").exists()
    # The renderers: after 12 steps the true prefix does not reliably beat a shuffled one
    # (measured gaps of -0.001 to 0.008 nats), so that relation is tested on a renderer trained
    # longer (tests/test_train.py::test_stage2_uses_its_prefix, with the stage's derangement).
    for r in [f"k{k}_causal_s{s}" for k in ks for s in sample_seeds] + [f"k{main}_maskgit"]:
        s2 = metrics(smoke, f"renderer_{r}")
        uniform = math.log(s2["vq_vocab"])  # nats of a uniform guess: measured 1.0-1.7 below
        assert s2["val_loss"] < uniform and s2["val_loss_shuffled_prefix"] < uniform, r
        assert s2["val_bits_per_token"] == pytest.approx(s2["val_loss"] / math.log(2), abs=1e-3)
    fair = [
        f"{x}_{how}"
        for x in ("vq", "vq_long", f"digit_k{main}")
        for how in ("untruncated", "selected")
    ]
    per_k = [
        f"digit_k{k}_{how}"
        for k in ks
        for how in ("causal", "untruncated")
        if k != main or how == "causal"
    ]
    sets = [f"{x}_s{s}" for x in [*per_k, *fair] for s in sample_seeds]
    sets += [f"{row}_k{main}_untruncated" for row in params["encoders"]]
    sets += [f"vq_{row}_untruncated" for row in params["vq_rows"]]
    sets += [f"digit_k{main}_{v}" for v in ("maskgit", "cond_causal", "cond_maskgit")]
    sets += [f"digit_k{main}_{v}_causal" for v in ("long", "large")]
    sets += ["vq_cond", f"gt_k{main}_causal", f"gt_k{main}_maskgit", "vq_recon"]
    for name in sets:
        g = zarr.open_group(str(smoke / f"samples/{name}.zarr"), mode="r")
        images = g["images"][:]
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1), name
        assert g["tokens"].shape == g["vq_tokens"].shape == (len(images), 49), name
        assert len(images) == n or name.startswith(("gt_", "vq_recon")), name
        if "cond" in name or name.startswith(("gt_", "vq_recon")):
            assert g["labels"].shape == (len(images),), name
        if "cond" in name:  # row r of the figure is class r
            n_classes = metrics(smoke, "prepare")["n_classes"]
            expected = (np.arange(len(images)) // params["generate"]["grid"]) % n_classes
            assert np.array_equal(g["labels"][:], expected), name
        figure_shows(
            smoke / f"reports/figures/samples_{name}.png", images, params["generate"]["grid"]
        )
    # One stage-1 model, one seed: both renderers start from the same sampled disc tokens.
    a = zarr.open_group(str(smoke / f"samples/digit_k{main}_causal_s{seed}.zarr"), mode="r")
    b = zarr.open_group(str(smoke / f"samples/digit_k{main}_maskgit.zarr"), mode="r")
    assert np.array_equal(a["tokens"][:], b["tokens"][:])
    # Another seed: another token model, other samples.
    other = next(s for s in sample_seeds if s != seed)
    c = zarr.open_group(str(smoke / f"samples/digit_k{main}_causal_s{other}.zarr"), mode="r")
    assert not np.array_equal(a["tokens"][:], c["tokens"][:])
    assert not (smoke / "checkpoints").exists() or not any((smoke / "checkpoints").iterdir())
    # The render check: originals / VQ reconstructions / renders of the same val images.
    from PIL import Image

    check = Image.open(smoke / f"reports/figures/render_check_gt_k{main}_causal.png")
    assert check.size[0] > check.size[1] > 100
    gt = metrics(smoke, f"scores_gt_k{main}_causal")
    assert 0.0 <= gt["source_top1"] <= 1.0 and "source_top1" in metrics(smoke, "scores_vq_recon")
    # Probes report what the blocks add over their input.
    probe = metrics(smoke, f"probe_k{main}_s{seed}")
    assert 0.0 <= probe["embedding_top1"] <= 1.0 and 0.0 <= probe["raw_tokens_top1"] <= 1.0


def test_smoke_stability_and_sampling(smoke):
    """Relations that hold at any scale: more noise changes more tokens, for every tokenizer and
    control; every sampling setting gives other samples, hence another FID."""
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    tokenizers = [
        *(f"k{k}" for k in params["kmeans"]["ks"]),
        *params["encoders"],
        "vq",
        *(f"vq_{row}" for row in params["vq_rows"]),
    ]
    files = {name: metrics(smoke, f"stability_{name}") for name in tokenizers}
    perts = files["vq"]["perturbations"]
    assert all(f["perturbations"] == perts for f in files.values())  # the same draws for all
    snr = {p["value"]: i for i, p in enumerate(perts) if p["kind"] == "gaussian"}
    low, high = snr[min(snr)], snr[max(snr)]  # SNR 5 vs 20 dB
    for name, t in files.items():
        assert t["token_change"][low] > t["token_change"][high], name  # measured by 0.09-0.14
        assert t["cos_quantized"][low] < t["cos_quantized"][high], name
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    main, seed = params["kmeans"]["main_k"], params["seed"]
    for side, steps in (("digit", 2), ("vq", 1), ("vq_long", 1)):
        search = metrics(smoke, f"sampling_{side}")
        rows = search["rows"]
        assert len(rows) == len(search["grid"]) ** steps, side  # every step over the same grid
        assert len({r["fid"] for r in rows}) == len(rows), side  # each setting samples otherwise
        assert search["selected"]["fid"] == min(r["fid"] for r in rows), side
        for how in ("untruncated", "selected"):  # the sets sample as they say
            name = f"digit_k{main}" if side == "digit" else side
            made = metrics(smoke, f"generate_{name}_{how}_s{seed}")
            want = (
                {"top_k": 0, "top_p": 1.0}
                if how == "untruncated"
                else search["selected"]["token_model"]
            )
            assert {k: made["token_model"][k] for k in want} == want, (side, how)


def figure_shows(png: Path, images: np.ndarray, grid: int) -> None:
    """The sample grid PNG (600 x 640 px: 6 x 6.4 in at 100 dpi) shows the set's first grid x grid
    images in row-major order: the mean brightness of each cell's centre, read from the PNG,
    follows that of the images (correlation measured 0.998-1.0; about 0 for another set)."""
    from PIL import Image

    fig = Image.open(png)
    assert fig.size == (600, 640), png
    px = np.asarray(fig.convert("L"), dtype=np.float64)
    ink = px < 250  # the canvas: not the white figure background
    rows = np.flatnonzero(ink.mean(1) > 0.9)
    cols = np.flatnonzero(ink[rows[0] : rows[-1] + 1].mean(0) > 0.9)
    canvas = px[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    _, h, w, _ = images.shape
    sy, sx = canvas.shape[0] / (grid * (h + 1) + 1), canvas.shape[1] / (grid * (w + 1) + 1)
    assert sy == pytest.approx(sx, rel=0.02), png  # square cells: the canvas is not distorted
    shown, want = [], []
    for i in range(min(len(images), grid * grid)):
        r, c = divmod(i, grid)
        y, x = 1 + r * (h + 1), 1 + c * (w + 1)  # the cell's corner on the tiled canvas
        cy = slice(round((y + 0.25 * h) * sy), round((y + 0.75 * h) * sy))
        cx = slice(round((x + 0.25 * w) * sx), round((x + 0.75 * w) * sx))
        shown.append(canvas[cy, cx].mean())
        want.append(images[i, h // 4 : h - h // 4, w // 4 : w - w // 4].mean())
    assert np.corrcoef(shown, want)[0, 1] > 0.95, png


def test_second_repro_is_a_noop(smoke):
    out = dvc(smoke, "repro")
    assert ran_stages(out) == set(), out
    assert "up to date" in dvc(smoke, "status")


@pytest.mark.parametrize("stage", ["ar@8-0", "renderer@8-0", "vq@0"])
def test_retraining_with_the_same_inputs_writes_the_same_bytes(smoke, tmp_path, stage):
    """A training stage re-run on unchanged inputs (same seed, machine and thread count) writes
    byte-identical model files, so DVC stops there: nothing downstream becomes stale. Wall-clock
    figures live only in the metrics JSON, which no stage reads."""
    from conftest import clone_run

    work = clone_run(smoke, tmp_path / "work")
    outs = {
        "ar@8-0": ["models/ar_k8_s0.pt"],
        "renderer@8-0": ["models/renderer_k8_causal_s0.pt"],
        "vq@0": ["models/vq_s0.pt", "tokens/vq_s0.zarr"],
    }[stage]

    def digest(rel: str) -> dict[str, bytes]:
        path = work / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return {p.relative_to(work).as_posix(): p.read_bytes() for p in files}

    before = {rel: digest(rel) for rel in outs}
    out = dvc(work, "repro", "--force", "--single-item", "--no-run-cache", target(stage))
    assert ran_stages(out) == {stage}, out
    assert {rel: digest(rel) for rel in outs} == before
    assert "up to date" in dvc(work, "status"), dvc(work, "status")
