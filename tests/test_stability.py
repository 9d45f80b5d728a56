"""Table 1: digit.metrics.stability's perturbations and measures, pinned on hand-made tensors
(the Gaussian noise is digit.noise: tests/test_noise.py), and the stage
(pipeline/stages/stability.py): each perturbation's value, the same noise for every tokenizer,
whole-set averages, and the controls."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from digit.images import uint8_to_float
from digit.metrics.stability import mean_cosine, salt_and_pepper, shift, token_change_rate
from pipeline import checks
from pipeline import params as P
from pipeline.stages import stability as stage

ROOT = Path(__file__).resolve().parents[1]


def test_salt_and_pepper_changes_exactly_the_fraction():
    x = torch.full((4, 3, 10, 10), 0.5)
    out = salt_and_pepper(x, 0.25, torch.Generator().manual_seed(0))
    changed = (out != x).any(dim=1)  # (B, H, W): a position changes in all channels together
    assert changed.flatten(1).sum(1).tolist() == [25, 25, 25, 25]
    assert ((out != x).all(dim=1) == changed).all()
    assert set(out[out != x].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, torch.full((4, 3, 10, 10), 0.5))  # input untouched
    assert torch.equal(salt_and_pepper(x, 0.0), x)


def test_shift_one_pixel():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    right = shift(x, 1)
    assert right[0, 0].tolist() == [[0, 0, 1, 2], [0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14]]
    up_left = shift(x, (-1, -1), fill=-1.0)
    assert up_left[0, 0].tolist() == [[5, 6, 7, -1], [9, 10, 11, -1], [13, 14, 15, -1], [-1] * 4]
    assert torch.equal(shift(x, (0, 0)), x)
    assert torch.equal(shift(x, 4), torch.zeros_like(x))


def test_token_change_rate():
    a = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = torch.tensor([[1, 0, 3, 4], [5, 6, 0, 0]])
    assert token_change_rate(a, b) == pytest.approx(3 / 8)
    assert token_change_rate(a, a) == 0.0
    with pytest.raises(ValueError, match=r"shapes differ: \(2, 4\) vs \(1, 4\)"):
        token_change_rate(a, b[:1])


def test_mean_cosine():
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # (B=1, L=2, D=2)
    b = torch.tensor([[[0.0, 2.0], [3.0, 3.0]]])  # orthogonal, then parallel
    assert mean_cosine(a, b) == pytest.approx(0.5)
    assert mean_cosine(a, -a) == pytest.approx(-1.0)
    assert mean_cosine(a, a) == pytest.approx(1.0)


def test_salt_and_pepper_one_pixel_and_channels_last():
    """A fraction that rounds to one pixel changes exactly one; an input in channels-last memory
    layout gets the same pixels as its contiguous copy."""
    x = torch.full((3, 2, 8, 8), 0.5)
    one = salt_and_pepper(x, 1 / 64, torch.Generator().manual_seed(1))
    assert (one != x).any(dim=1).flatten(1).sum(1).tolist() == [1, 1, 1]
    img = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    last = img.to(memory_format=torch.channels_last)
    a = salt_and_pepper(img, 0.2, torch.Generator().manual_seed(3))
    b = salt_and_pepper(last, 0.2, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_shift_defaults_to_one_pixel_right():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(shift(x), shift(x, (0, 1)))
    assert not torch.equal(shift(x), shift(x, 2))


def test_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"shapes differ: \(1, 2, 2\) vs \(1, 1, 2\)"):
        mean_cosine(torch.ones(1, 2, 2), torch.ones(1, 1, 2))


def test_mean_cosine_eps_floors_short_vectors():
    """eps floors each norm: vectors shorter than eps count as that long."""
    a = torch.tensor([[[0.1, 0.0]]])
    assert mean_cosine(a, a) == pytest.approx(1.0)
    assert mean_cosine(a, a, eps=1.0) == pytest.approx(0.01)


# ---- the stage (pipeline/stages/stability.py) --------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")


def small_params(**stability) -> P.Params:
    p = checks.load(ROOT / "params.yaml")
    st = p.stability.model_copy(
        update={"snr_db": [30, 20, 5], "salt_pepper": [0.05, 0.1], "shift_px": [1, 2]} | stability
    )
    km = p.kmeans.model_copy(update={"ks": [8], "main_k": 8, "niter": 3})
    return p.model_copy(update={"stability": st, "kmeans": km, "device": "cpu"})


def digits(n: int, seed: int = 0) -> np.ndarray:
    """(n, 28, 28, 1) uint8: a bright random blob on black, like an MNIST digit."""
    g = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28, 1), dtype=np.uint8)
    for i in range(n):
        r, c = g.integers(6, 16, size=2)
        x[i, r : r + 10, c : c + 8, 0] = g.integers(100, 256, size=(10, 8))
    return x


def patch_tokenizer(name: str, seed: int, seen: list | None = None) -> stage.Tokenizer:
    """4x4 patches (+ 0.1: no zero vectors) as features (49 x 16), ids = the nearest of 8 random
    codes; records its inputs in `seen`."""
    table = torch.rand(8, 16, generator=torch.Generator().manual_seed(seed))

    def features(x):
        if seen is not None:
            seen.append(x.clone())
        return x.unfold(2, 4, 4).unfold(3, 4, 4).reshape(len(x), 49, 16).double() + 0.1

    def ids(f):
        return torch.cdist(f, table.double().expand(len(f), -1, -1)).argmin(-1)

    return stage.Tokenizer(name, name, features, ids, lambda i: table[i])


def test_each_perturbation_realizes_its_own_value():
    """The SNR is 10 log10(mean(x^2) / sigma^2) per image of [0, 1] pixels; salt-and-pepper sets
    its fraction of pixels; a shift moves by its own pixel count (no value leaks between the
    closures of the list)."""
    params = small_params()
    perts = stage.perturbations(params)
    assert [(k, v) for k, _, v, _ in perts] == [
        ("gaussian", 30),
        ("gaussian", 20),
        ("gaussian", 5),
        ("salt_pepper", 0.05),
        ("salt_pepper", 0.1),
        ("shift", 1),
        ("shift", 2),
    ]
    x = uint8_to_float(torch.from_numpy(digits(64)))
    for kind, label, value, fn in perts:
        out = fn(x, torch.Generator().manual_seed(0), value)
        if kind == "gaussian":
            assert label == f"SNR {value:g} dB"
            signal = x.double().pow(2).flatten(1).mean(1)
            noise = (out.double() - x).pow(2).flatten(1).mean(1)
            snr = 10 * torch.log10(signal / noise)  # per image; 784 values: ~0.2 dB scatter
            assert snr.mean().item() == pytest.approx(value, abs=0.1), label
            assert out.min() < 0  # not clipped
        elif kind == "salt_pepper":
            gray = 0.25 + 0.5 * torch.rand(4, 1, 28, 28)  # no pixel already at 0 or 1
            out = fn(gray, torch.Generator().manual_seed(0), value)
            changed = (out != gray).flatten(1).sum(1)
            assert changed.tolist() == [round(value * 784)] * 4, label
        else:
            assert torch.equal(out, shift(x, (0, value))), label


def test_every_tokenizer_sees_the_same_noise():
    """Two tokenizers measured one after the other get bit-identical perturbed images, and a
    tokenizer's numbers do not depend on what was measured before it."""
    params = small_params()
    perts = stage.perturbations(params)
    pixels = digits(10)
    seen_a, seen_b = [], []
    a = stage.measure(patch_tokenizer("a", 0, seen_a), pixels, perts, 3, 4, "cpu")
    stage.measure(patch_tokenizer("b", 1, seen_b), pixels, perts, 3, 4, "cpu")
    assert len(seen_a) == len(seen_b) == 3 * (1 + len(perts))  # 3 batches: clean + each pert
    for xa, xb in zip(seen_a, seen_b, strict=True):
        assert torch.equal(xa, xb)
    assert stage.measure(patch_tokenizer("a", 0), pixels, perts, 3, 4, "cpu") == a
    # another seed draws other noise
    other = stage.measure(patch_tokenizer("a", 0), pixels, perts, 4, 4, "cpu")
    assert other["cos_features"][:3] != a["cos_features"][:3]


def test_measure_is_the_whole_set_average():
    """Batches of unequal size (10 images by 4) are weighted by their size: the numbers equal
    the measures computed on all images at once (a plain mean of the batch means would not)."""
    pixels = digits(10)
    keep = ("none", "x", 0.0, lambda x, g, v: x)
    dim = ("dim", "0.3 x", 0.3, lambda x, g, v: v * x)  # changes some tokens of each image
    tok = patch_tokenizer("a", 0)
    out = stage.measure(tok, pixels, [keep, dim], 0, 4, "cpu")
    assert (out["token_change"][0], out["cos_quantized"][0], out["cos_features"][0]) == (0, 1, 1)
    x = uint8_to_float(torch.from_numpy(pixels))
    f, fp = tok.features(x), tok.features(0.3 * x)
    ids, idp = tok.ids(f), tok.ids(fp)
    whole = token_change_rate(ids, idp)
    assert out["token_change"][1] == pytest.approx(whole, abs=1e-4)
    per_batch = [token_change_rate(ids[i : i + 4], idp[i : i + 4]) for i in (0, 4, 8)]
    assert abs(sum(per_batch) / 3 - whole) > 1e-3  # the weighting matters on this data
    # cosines around each space's clean mean, over all images at once
    clean_q = tok.quantized(ids)
    q = mean_cosine(clean_q, tok.quantized(idp), clean_q.flatten(0, 1).double().mean(0))
    assert out["cos_quantized"][1] == pytest.approx(q, abs=1e-4)
    cf = mean_cosine(f, fp, f.flatten(0, 1).double().mean(0))
    assert out["cos_features"][1] == pytest.approx(cf, abs=1e-4)


def test_one_stage_per_tokenizer(tmp_path, monkeypatch):
    """The stage measures one tokenizer: K-Means tokens of an encoder (main, or a row of
    `encoders`) or a VQ's codes. Every tokenizer sees the same noise draws (the same model under
    two names measures the same), the description says what the tokenizer is (a row's label and
    recipe; a VQ's noise augmentation, from its file), and the file is what the run returns."""
    from digit.encoders import build_encoder
    from digit.kmeans import KMeansConfig, fit_kmeans
    from digit.vq import VQVAE, VQConfig
    from pipeline.images import Images

    params = small_params(max_images=12)
    data = digits(52, seed=1)
    is_val = np.zeros(52, dtype=bool)
    is_val[40:] = True
    images = Images(data, np.arange(52) % 10, is_val, [str(i) for i in range(10)])
    torch.manual_seed(0)
    encoder = build_encoder("cnn_small", in_channels=1, input_size=28, width=8).eval()
    vq = VQVAE(VQConfig(hidden=16, code_dim=8, codebook_size=16, n_res_blocks=0)).eval()
    with torch.inference_mode():
        feats = encoder(torch.from_numpy(data[~is_val])).float().reshape(-1, encoder.dim).numpy()
    centroids = tmp_path / "k8.npy"
    np.save(centroids, fit_kmeans(feats, KMeansConfig(8, 3, 0, 256, False)).centroids)
    vq_meta = {"v": {"extra": {}}, "v_noise": {"extra": {"params": {"vq": {"noise_aug": True}}}}}
    monkeypatch.setattr(stage, "load_images", lambda path: images)
    monkeypatch.setattr(stage, "load_encoder", lambda path, device: encoder)
    monkeypatch.setattr(stage, "load_model", lambda path, kind, build, device: (vq, vq_meta[path]))

    def run(name: str, **files):
        return stage.run(params, name, "i", str(tmp_path / f"{name}.json"), **files)

    main = run("k8", encoder="e", centroids=str(centroids))
    row = run("nonoise", encoder="e", centroids=str(centroids), row="nonoise")
    codes = run("vq", vq="v")
    noisy = run("vq_noise", vq="v_noise")
    assert json.loads((tmp_path / "k8.json").read_text()) == main
    same = ("perturbations", "token_change", "cos_quantized", "cos_features")
    assert {k: row[k] for k in same} == {k: main[k] for k in same}
    assert {k: noisy[k] for k in same} == {k: codes[k] for k in same}
    assert "K-Means K=8" in main["describe"] and "noise-augmented" in main["describe"]
    assert row["describe"].startswith("SimCLR without noise augmentation: ")
    assert "no noise augmentation" in row["describe"]
    assert codes["describe"] == "VQ autoencoder"
    assert "noise augmentation" in noisy["describe"]
    perts = main["perturbations"]
    assert [p["kind"] for p in perts] == ["gaussian"] * 3 + ["salt_pepper"] * 2 + ["shift"] * 2
    # the measures respond to the perturbation: more noise, more tokens change
    change = main["token_change"]
    assert change[0] <= change[1] <= change[2] and change[2] > 0
    assert "12 val images" in main["protocol"]
    with pytest.raises(stage.StageError, match="give --vq, or --encoder with --centroids"):
        run("x", encoder="e")


def test_centred_cosine_ignores_a_shared_offset():
    """Vectors in one orthant all have a high plain cosine; around their mean, an offset that
    clean and perturbed share no longer counts, and opposite deviations give -1."""
    from digit.metrics.stability import mean_cosine

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    offset = torch.full((4,), 50.0)
    assert mean_cosine(a + offset, b + offset) > 0.99  # the orthant, not the vectors
    assert mean_cosine(a + offset, b + offset, offset) == pytest.approx(mean_cosine(a, b), abs=1e-5)
    assert mean_cosine(offset + a, offset - a, offset) == pytest.approx(-1.0)
