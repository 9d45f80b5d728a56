"""digit.schedule.lr_at: the one learning-rate schedule, bit for bit what each of the five loops
computed before it replaced their own copies (the old formulas are kept here as references)."""

import math

import pytest

from digit.schedule import SCHEDULES, lr_at

# ---- the formulas lr_at replaced, verbatim ----------------------------------------------------


def old_train(step, steps, lr, warmup_steps, schedule, min_lr_ratio):  # pipeline/train.py
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "inverse_sqrt":
        return lr * math.sqrt(max(warmup_steps, 1) / (step + 1))
    t = (step - warmup_steps) / max(1, steps - warmup_steps)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def old_vq(step, total, lr, warmup_steps, min_lr_ratio):  # digit/vq.py _lr_at
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total - warmup_steps)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def old_ssl(step, total, warmup, base):  # digit/ssl.py lr_at
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def old_evalnet(step, total, base, warmup):  # digit/metrics/evalnet.py _cosine_lr
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def old_probe(step, total, lr, warmup):  # digit/metrics/probe.py, inline
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# (total steps, warm-up steps): params.yaml, the presets and the paper's scale, and odd sizes.
SPANS = [(160, 20), (120, 20), (12, 2), (480000, 6250), (155, 50), (1, 0), (7, 3), (1000, 0)]
LRS = [0.004, 2e-3, 3e-3, 0.4, 1.0, 1e-4]


def steps(total):
    if total <= 5000:
        return range(total + 1)
    return [*range(0, 7000), *range(total - 2000, total + 1), *range(7000, total, 997)]


@pytest.mark.parametrize("total, warmup", SPANS)
def test_training_loops_bit_identical(total, warmup):
    for lr in LRS:
        for schedule in SCHEDULES:
            for m in (0.1, 0.05, 0.0):
                for s in steps(total):
                    new = lr_at(s, total, lr, warmup, schedule, m)
                    assert new == old_train(s, total, lr, warmup, schedule, m), (s, schedule)
        for m in (0.05, 0.1, 0.0):
            for s in steps(total):
                assert lr_at(s, total, lr, warmup, "cosine", m) == old_vq(s, total, lr, warmup, m)
        for s in steps(total):
            assert lr_at(s, total, lr, warmup) == old_ssl(s, total, warmup, lr), s


@pytest.mark.parametrize("total", [256, 32, 8, 1280, 400, 80, 1, 2, 3, 5, 1000, 3125])
def test_evalnet_and_probe_bit_identical(total):
    for lr in LRS:
        # evalnet: warm-up over 5% of the steps (at least one); probe: warmup_epochs * steps/epoch
        for warmup in (max(1, total // 20), 0, 16):
            for s in steps(total):
                new = lr_at(s, total, lr, warmup, pi_first=True)
                assert new == old_evalnet(s, total, lr, warmup), (s, warmup)
                assert new == old_probe(s, total, lr, warmup), (s, warmup)


def test_shapes_of_the_schedules():
    assert lr_at(0, 100, 1.0, 10, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, min_lr_ratio=0.1) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, 10, min_lr_ratio=0.1) == pytest.approx(1.0)
    assert lr_at(99, 100, 1.0, 10, min_lr_ratio=0.1) == pytest.approx(0.1, abs=1e-3)
    lrs = [lr_at(s, 100, 1.0, 10, min_lr_ratio=0.1) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))  # decays monotonically
    assert lr_at(15, 100, 1.0, 4, "inverse_sqrt") == pytest.approx(math.sqrt(4 / 16))
    assert lr_at(50, 100, 1.0, 0, "constant") == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_at(5, 10, 1.0, 0, "linear")
