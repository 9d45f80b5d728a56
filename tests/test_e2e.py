"""The smoke preset end to end through the real `dvc repro`, in a temporary copy of the project:
everything runs and a second repro is a no-op. That editing one K re-runs only that K's branch is
tested on the same run through the flow (tests/test_flow.py), which asks `dvc status` what is
stale: one re-run of the branch instead of two."""

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import dvc


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture
def smoke(smoke_run) -> Path:
    return smoke_run


def test_smoke_runs_every_stage(smoke):
    out = (smoke / "first_run.log").read_text()
    stages = set(dvc(smoke, "stage", "list", "--name-only").split())
    assert ran_stages(out) == stages
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    for k in params["kmeans"]["ks"]:
        assert (smoke / f"centroids/k{k}.npy").exists()
        assert (smoke / f"tokens/disc_k{k}.zarr").is_dir()
        tokens = json.loads((smoke / f"metrics/tokens_k{k}.json").read_text())
        assert 0 <= tokens["trained"]["token_probe_top1"] <= 1
    enc = json.loads((smoke / "metrics/encoder.json").read_text())
    assert set(enc["knn_top1"]) == {"pixels", "random", "trained"}


def test_smoke_generative_outputs(smoke):
    import numpy as np
    import zarr

    params = yaml.safe_load((smoke / "params.yaml").read_text())
    ks, main = params["kmeans"]["ks"], params["kmeans"]["main_k"]
    n = params["generate"]["n_samples"]
    vq = json.loads((smoke / "metrics/vq.json").read_text())
    assert vq["grid"] == 7 and 0 < vq["val"]["mse"] < 1
    vq_tokens = zarr.open_group(str(smoke / "tokens/vq.zarr"), mode="r")["tokens"]
    disc = zarr.open_group(str(smoke / f"tokens/disc_k{main}.zarr"), mode="r")["tokens"]
    assert vq_tokens.shape == disc.shape  # the same token grid for both AR models
    models = [f"k{k}" for k in ks] + [f"k{main}_cond", "vq", "vq_cond"]
    for m in models:
        ar = json.loads((smoke / f"metrics/ar_{m}.json").read_text())
        assert 0 < ar["val_bits_per_token"] < 1.5 * ar["uniform_bits_per_token"], m
        assert (smoke / f"models/ar_{m}.pt").exists()
        assert (smoke / f"dvclive/ar_{m}/plots/metrics/train/loss.tsv").exists()
    for r in [f"k{k}_ar" for k in ks] + [f"k{main}_maskgit"]:
        s2 = json.loads((smoke / f"metrics/renderer_{r}.json").read_text())
        assert s2["val_loss"] > 0 and s2["val_loss_shuffled_prefix"] > 0
    sets = [f"digit_k{k}_ar" for k in ks] + [f"digit_k{main}_maskgit", f"digit_k{main}_cond_ar"]
    sets += ["vq", "vq_cond", f"gt_k{main}_ar", f"gt_k{main}_maskgit", "vq_recon"]
    for name in sets:
        g = zarr.open_group(str(smoke / f"samples/{name}.zarr"), mode="r")
        images = g["images"][:]
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1), name
        assert g["tokens"].shape == g["vq_tokens"].shape == (len(images), 49), name
        assert len(images) == n or name.startswith(("gt_", "vq_recon")), name
        if "cond" in name or name.startswith(("gt_", "vq_recon")):
            assert g["labels"].shape == (len(images),), name
        assert (smoke / f"reports/figures/samples_{name}.png").stat().st_size > 1000, name
    # One stage-1 model, one seed: both renderers start from the same sampled disc tokens.
    a = zarr.open_group(str(smoke / f"samples/digit_k{main}_ar.zarr"), mode="r")["tokens"][:]
    b = zarr.open_group(str(smoke / f"samples/digit_k{main}_maskgit.zarr"), mode="r")["tokens"][:]
    assert np.array_equal(a, b)
    assert not (smoke / "checkpoints").exists() or not any((smoke / "checkpoints").iterdir())


def test_second_repro_is_a_noop(smoke):
    out = dvc(smoke, "repro")
    assert ran_stages(out) == set(), out
    assert "up to date" in dvc(smoke, "status")


@pytest.mark.parametrize("stage", ["ar@8", "renderer@8", "vq@main"])
def test_retraining_with_the_same_inputs_writes_the_same_bytes(smoke, tmp_path, stage):
    """A training stage re-run on unchanged inputs (same seed, machine and thread count) writes
    byte-identical model files, so DVC stops there: nothing downstream becomes stale. Wall-clock
    figures live only in the metrics JSON, which no stage reads."""
    from conftest import clone_run

    work = clone_run(smoke, tmp_path / "work")
    outs = {
        "ar@8": ["models/ar_k8.pt"],
        "renderer@8": ["models/renderer_k8_ar.pt"],
        "vq@main": ["models/vq.pt", "tokens/vq.zarr"],
    }[stage]

    def digest(rel: str) -> dict[str, bytes]:
        path = work / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return {p.relative_to(work).as_posix(): p.read_bytes() for p in files}

    before = {rel: digest(rel) for rel in outs}
    out = dvc(work, "repro", "--force", "--single-item", "--no-run-cache", stage)
    assert ran_stages(out) == {stage}, out
    assert {rel: digest(rel) for rel in outs} == before
    assert "up to date" in dvc(work, "status"), dvc(work, "status")
