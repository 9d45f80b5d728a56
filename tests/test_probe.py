"""digit.metrics.probe: one linear classifier per layer, trained at once on frozen features."""

import numpy as np
import pytest
import torch

from digit.metrics.probe import train_linear_probes


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is as fast as two on an idle machine, and avoids OpenMP threads
    spinning against each other when other processes share the two cores (measured 5-20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _layers(n_train: int, n_val: int, informative: int, n_layers: int = 4, d: int = 16):
    """(n_layers, N, d) features where only layer `informative` carries the class (3 classes):
    train and val features and labels."""
    n = n_train + n_val
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    feats = torch.randn(n_layers, n, d, generator=g) * 5.0 + 3.0  # scaled, off-centre noise
    centres = torch.randn(3, d, generator=g)
    feats[informative] += centres[y] * 5.0
    feats[informative] *= 100.0  # a far larger scale than the other layers: standardization copes
    return feats[:, :n_train], y[:n_train], feats[:, n_train:], y[n_train:]


def test_best_layer_is_the_informative_one():
    xtr, ytr, xva, yva = _layers(600, 300, informative=2)
    out = train_linear_probes(xtr, ytr, xva, yva, n_classes=3, epochs=5, lr=0.1, batch_size=64)
    assert out["best_layer"] == 2
    assert out["best_top1"] > 0.9
    others = [a for i, a in enumerate(out["top1_per_layer"]) if i != 2]
    assert max(others) < 0.6  # chance is 1/3
    assert len(out["top1_per_layer"]) == 4 and len(out["final_train_loss_per_layer"]) == 4


def test_deterministic():
    xtr, ytr, xva, yva = _layers(256, 128, informative=1)
    kw = dict(n_classes=3, epochs=3, lr=0.2, weight_decay=1e-4, batch_size=32, seed=7)
    a = train_linear_probes(xtr, ytr, xva, yva, **kw)
    b = train_linear_probes(xtr, ytr, xva, yva, **kw)
    assert a == b


def test_layers_train_independently():
    """A layer's result does not depend on which other layers are probed beside it."""
    xtr, ytr, xva, yva = _layers(256, 128, informative=1)
    kw = dict(n_classes=3, epochs=3, lr=0.2, batch_size=32, seed=0)
    both = train_linear_probes(xtr, ytr, xva, yva, **kw)
    one = train_linear_probes(xtr[1:2], ytr, xva[1:2], yva, **kw)
    assert one["top1_per_layer"][0] == pytest.approx(both["top1_per_layer"][1])
    assert one["final_train_loss_per_layer"][0] == pytest.approx(
        both["final_train_loss_per_layer"][1], rel=1e-5
    )


def test_shape_errors():
    x = torch.zeros(2, 10, 4)
    y = np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="n_layers"):
        train_linear_probes(x[0], y, x, y, n_classes=2, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="does not match"):
        train_linear_probes(x, y, x[:1], y, n_classes=2, epochs=1, lr=0.1)
