"""pipeline.train: the schedule check, resume after a kill == an uninterrupted run, stale checkpoints,
and stage 2 actually reading its prefix (both renderers)."""

import csv
import dataclasses
import math

import pytest
import torch

from digit.generate import generate, maskgit_generate
from digit.gpt import build_gpt
from pipeline.resume import Checkpoints
from pipeline.stages.renderer import derangement
from pipeline.train import Interrupt, Objective, TrainConfig, evaluate, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(steps=1, batch_size=1, lr=1.0, schedule="linear")


def setup(kind: str):
    """A fresh tiny model (same init every call), its objective and data."""
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 16, (40, 8), generator=g)
    data = {"tokens": tokens}
    torch.manual_seed(0)
    if kind == "uncond":  # dropout exercises the global RNG state in the checkpoint
        model = build_gpt("tiny", vocab_size=16, block_size=8, dropout=0.1)
        objective = Objective()
    elif kind == "class":
        model = build_gpt("tiny", vocab_size=16, block_size=8, n_classes=3)
        objective = Objective(class_dropout=0.3)
        data["labels"] = torch.randint(0, 3, (40,), generator=g)
    else:  # maskgit stage 2
        model = build_gpt(
            "tiny", vocab_size=16, block_size=8, prefix_vocab_size=5, prefix_len=4, causal=False
        )
        objective = Objective(masked=True)
        data["prefix"] = torch.randint(0, 5, (40, 4), generator=g)
    train_data = {k: v[:32] for k, v in data.items()}
    val_data = {k: v[32:] for k, v in data.items()}
    return model, objective, train_data, val_data


CFG = TrainConfig(
    steps=11,
    batch_size=12,  # 32 rows -> 2 steps per epoch: the run crosses several epochs
    lr=3e-3,
    warmup_steps=3,
    label_smoothing=0.1,
    eval_every=4,
    checkpoint_every=3,
    log_every=2,
    seed=7,
)


def curves(live_dir) -> dict[str, list[tuple[str, str]]]:
    """dvclive's tsv curves without the timestamp column."""
    out = {}
    for tsv in sorted((live_dir / "plots" / "metrics").rglob("*.tsv")):
        rows = list(csv.DictReader(tsv.open(), delimiter="\t"))
        out[str(tsv.relative_to(live_dir))] = [(r["step"], r[tsv.stem]) for r in rows]
    return out


@pytest.mark.parametrize(
    ("kind", "precision"),
    [
        ("uncond", "fp32"),
        ("class", "fp32"),
        ("maskgit", "fp32"),
        ("uncond", "bf16"),
        ("class", "fp16"),
    ],
)
def test_resume_after_kill_equals_uninterrupted(tmp_path, kind, precision):
    """Also under autocast: fp16's loss scale is part of the checkpoint."""
    cfg = dataclasses.replace(CFG, precision=precision)
    model, objective, tr, va = setup(kind)
    ref_hist = train(
        model,
        objective,
        tr,
        va,
        cfg,
        checkpoints=Checkpoints(tmp_path / "ck_ref", "fp"),
        live_dir=tmp_path / "live_ref",
        progress=False,
    )
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    def kill_at_8(done: int) -> None:
        if done == 8:  # after the checkpoint of step 6: steps 7-8 are lost and redone
            raise Interrupt

    ck = Checkpoints(tmp_path / "ck", "fp")
    model, *_ = setup(kind)
    with pytest.raises(Interrupt):
        train(
            model, objective, tr, va, cfg, checkpoints=ck, live_dir=tmp_path / "live",
            on_step=kill_at_8, progress=False,
        )  # fmt: skip
    assert ck.load()["step"] == 6
    assert bool(ck.load()["scaler"]) == (precision == "fp16")  # the loss scale and its counters

    torch.manual_seed(12345)  # a new process: the global RNG is wherever it is
    model, *_ = setup(kind)  # fresh weights, as a restarted stage builds them
    hist = train(
        model, objective, tr, va, cfg, checkpoints=ck, live_dir=tmp_path / "live", progress=False
    )
    for name, value in model.state_dict().items():
        assert torch.equal(value, reference[name]), name
    assert hist == ref_hist
    assert curves(tmp_path / "live") == curves(tmp_path / "live_ref")
    steps = [int(s) for s, _ in curves(tmp_path / "live")["plots/metrics/train/loss.tsv"]]
    assert steps == sorted(set(steps))  # no step logged twice by the resumed run


def test_stale_checkpoint_is_ignored(tmp_path):
    model, objective, tr, va = setup("uncond")
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-3, checkpoint_every=2, seed=0)
    train(model, objective, tr, va, cfg, checkpoints=Checkpoints(tmp_path, "a"), progress=False)
    assert Checkpoints(tmp_path, "a").load()["step"] == 2
    assert Checkpoints(tmp_path, "b").load() is None  # other params / data: start over
    assert not tmp_path.exists()


@pytest.mark.parametrize("n", [2, 3, 10, 80])
def test_shuffled_prefixes_are_a_derangement(n):
    """Every val row gets another row's prefix (no fixed point), each prefix is used once, and the
    draw is fixed by the seed."""
    other = derangement(n, 0)
    assert sorted(other.tolist()) == list(range(n))
    assert (other != torch.arange(n)).all()
    assert torch.equal(derangement(n, 0), other)
    if n > 3:
        assert not torch.equal(derangement(n, 1), other)


def mapping_data(n: int, seed: int):
    """Stage-2 toy: VQ tokens are a position-wise function of the discriminative prefix."""
    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(0, 8, (n, 6), generator=g)
    return {"prefix": prefix, "tokens": (prefix * 3 + 1) % 8}


@pytest.mark.parametrize("renderer", ["causal", "maskgit"])
def test_stage2_uses_its_prefix(renderer):
    torch.manual_seed(0)
    model = build_gpt(
        "tiny",
        vocab_size=8,
        block_size=6,
        prefix_vocab_size=8,
        prefix_len=6,
        causal=renderer == "causal",
    )
    objective = Objective(masked=renderer == "maskgit")
    tr, va = mapping_data(512, 0), mapping_data(64, 1)
    cfg = TrainConfig(steps=60, batch_size=32, lr=1e-2, warmup_steps=10, seed=0)
    train(model, objective, tr, va, cfg, progress=False)
    val = evaluate(model, objective, va, 64, 0)
    # the renderer stage's val_loss_shuffled_prefix: each row gets another row's prefix
    other = derangement(len(va["prefix"]), 0)
    shuffled = evaluate(model, objective, {**va, "prefix": va["prefix"][other]}, 64, 0)
    assert val < 0.5 * math.log(8) < shuffled  # the right prefix explains the tokens

    # Sampling: two different prefixes give two different output distributions, each
    # concentrated on the tokens its own prefix implies.
    a, b = va["prefix"][:1].expand(200, -1), va["prefix"][1:2].expand(200, -1)
    assert not torch.equal(a[0], b[0])
    outs = []
    for p in (a, b):
        g = torch.Generator().manual_seed(0)
        if renderer == "causal":
            outs.append(generate(model, 200, prefix=p, generator=g))
        else:
            outs.append(maskgit_generate(model, prefix=p, steps=4, generator=g))
    for out, p in zip(outs, (a, b), strict=True):
        assert (out == (p * 3 + 1) % 8).float().mean() > 0.8
    hist = [torch.stack([torch.bincount(o[:, i], minlength=8) for i in range(6)]) for o in outs]
    assert (hist[0] - hist[1]).abs().sum() > 200  # total-variation gap of the two distributions


def test_val_curve_on_a_subset_val_loss_on_every_row():
    """eval_rows: the curve scores a fixed subset; the model's val loss is every val row."""
    from pipeline.train import VAL_ALL, final_val_loss

    torch.manual_seed(0)
    model = build_gpt("tiny", vocab_size=8, block_size=6, prefix_vocab_size=8, prefix_len=6)
    objective = Objective()
    tr, va = mapping_data(256, 0), mapping_data(64, 1)
    cfg = TrainConfig(steps=20, batch_size=32, lr=1e-2, eval_every=10, eval_rows=16, seed=0)
    history = train(model, objective, tr, va, cfg, progress=False)
    evals = [r for r in history if "val/loss" in r]
    assert [r["step"] for r in evals] == [10, 20]
    subset = {k: v[:16] for k, v in va.items()}
    assert evals[-1]["val/loss"] == pytest.approx(evaluate(model, objective, subset, 256, 0))
    assert final_val_loss(history) == evals[-1][VAL_ALL]
    assert final_val_loss(history) == pytest.approx(evaluate(model, objective, va, 256, 0))
    assert final_val_loss(history) != pytest.approx(evals[-1]["val/loss"])
