"""Data-parallel training (pipeline/ddp.py): 2 CPU processes over gloo train what one process
trains, resume after a kill, and the ar stage re-launches itself under torchrun when ar.nproc = 2."""

import contextlib
import json
import math
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from digit.gpt import build_gpt
from pipeline import io
from pipeline.checks import load, validate
from pipeline.ddp import Rank
from pipeline.params import ParamsError
from pipeline.resume import Checkpoints
from pipeline.stages import ar
from pipeline.train import Interrupt, Objective, TrainConfig, train

WORLD = 2
CFG = TrainConfig(
    steps=10, batch_size=16, lr=3e-3, warmup_steps=2, label_smoothing=0.1, eval_every=5,
    checkpoint_every=4, log_every=2, seed=3,
)  # fmt: skip


def progressions(n: int, seed: int, vocab: int = 16, length: int = 12) -> torch.Tensor:
    """Rows (a + b * i) mod vocab: a learnable sequence task."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, vocab, (n, 1), generator=g), torch.randint(1, 4, (n, 1), generator=g)
    return (a + b * torch.arange(length)) % vocab


def setup(kind: str):
    tokens = progressions(72, 0)
    data = {"tokens": tokens}
    torch.manual_seed(0)
    if kind == "class":
        model = build_gpt("tiny", vocab_size=16, block_size=12, n_classes=3)
        objective = Objective(class_dropout=0.3)
        data["labels"] = torch.arange(72) % 3
    else:  # maskgit stage 2: its masks must be the ones a single process draws
        model = build_gpt(
            "tiny", vocab_size=16, block_size=12, prefix_vocab_size=16, prefix_len=12, causal=False
        )
        objective = Objective(masked=True)
        data["prefix"] = tokens.roll(1, 1)
    return (
        model,
        objective,
        {k: v[:64] for k, v in data.items()},
        {k: v[64:] for k, v in data.items()},
    )


def _worker(rank: int, kind: str, tmp: str, kill_at: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=WORLD,
        timeout=timedelta(seconds=60),  # a failing rank must not hang the test for 30 minutes
    )  # fmt: skip
    try:
        ck = Checkpoints(f"{tmp}/ck", "fp")
        if kill_at:  # first a run killed after step `kill_at`, then the resumed run below
            model, objective, tr, va = setup(kind)

            def kill(done: int) -> None:
                if done == kill_at:
                    raise Interrupt

            with contextlib.suppress(Interrupt):
                train(model, objective, tr, va, CFG, checkpoints=ck, on_step=kill, progress=False,
                      rank=Rank(rank, WORLD, rank))  # fmt: skip
            dist.barrier()
        torch.manual_seed(1000 + rank)  # a restarted process: global RNGs anywhere
        model, objective, tr, va = setup(kind)
        hist = train(model, objective, tr, va, CFG, checkpoints=ck, live_dir=f"{tmp}/live",
                     progress=False, rank=Rank(rank, WORLD, rank))  # fmt: skip
        torch.save({"hist": hist, "state": model.state_dict()}, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path, kind: str, kill_at: int = 0) -> list[dict]:
    tmp_path.mkdir(exist_ok=True)
    # fork: the ranks inherit the imported modules (spawn re-imports torch: ~15 s per test).
    mp.start_processes(
        _worker, args=(kind, str(tmp_path), kill_at), nprocs=WORLD, start_method="fork"
    )
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


# Relative error of the ranks' total weight change against one process's (measured: 1.5e-5 for
# the class model, float order only; 0.19 for MaskGIT, whose shard means over unequal mask counts
# are not the batch mean). Ranks that never trained are at 1.0.
DELTA_REL = {"class": 1e-3, "maskgit": 0.35}


@pytest.mark.parametrize(
    ("kind", "rel", "kill_at"),
    [("class", 1e-5, 6), ("maskgit", 0.05, 0)],
    ids=["class-killed-and-resumed", "maskgit"],
)
def test_two_ranks_train_what_one_process_trains(tmp_path, kind, rel, kill_at):
    torch.set_num_threads(1)
    model, objective, tr, va = setup(kind)
    ref = train(model, objective, tr, va, CFG, progress=False)
    ranks = run_ranks(tmp_path, kind, kill_at)  # kill_at 6: resumes from the checkpoint of step 4
    for name, value in ranks[0]["state"].items():  # replicas stay in sync
        assert torch.equal(value, ranks[1]["state"][name]), name
    assert ranks[0]["hist"] == ranks[1]["hist"]
    # Same batches, same masks and dropped classes, averaged shard gradients: one process's run up
    # to float summation order (measured: 1e-7). MaskGIT averages shard means over unequal mask
    # counts, not the batch mean (measured: within 1.5%).
    assert [r["step"] for r in ranks[0]["hist"]] == [r["step"] for r in ref]
    for a, b in zip(ref, ranks[0]["hist"], strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=rel)
        if "val/loss" in a:
            assert b["val/loss"] == pytest.approx(a["val/loss"], rel=rel)
    assert ref[-1]["val/loss"] < math.log(16)  # it learned something
    # The weight changes agree, not only the weights: 10 steps move them little (at most ~0.02),
    # so a closeness of weights alone would pass ranks that never trained.
    init = setup(kind)[0].state_dict()
    moved = torch.cat([(v - init[k]).flatten() for k, v in model.state_dict().items()])
    got = torch.cat([(ranks[0]["state"][k] - init[k]).flatten() for k in init])
    assert moved.norm() > 0.1  # one process's run trained
    assert (got - moved).norm() / moved.norm() < DELTA_REL[kind], (
        got - moved
    ).norm() / moved.norm()
    assert (tmp_path / "live" / "metrics.json").exists()  # written by rank 0


def test_nproc_must_split_the_batch(root):
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["ar"].update(nproc=3, batch_size=64)
    with pytest.raises(ParamsError, match=r"ar\.nproc: batch_size 64 does not split into 3"):
        validate(raw)


def fake_inputs(tmp_path) -> dict[str, str]:
    """A token store and an images store (labels + split only) as the tokenize/prepare stages
    write them: 240 rows of progressions, 40 of them val."""
    tokens = progressions(240, 1).numpy().astype(np.int32)
    with io.zarr_group_writer(tmp_path / "tokens.zarr") as g:
        io.create_array(g, "tokens", tokens.shape, 1024, "int32")[:] = tokens
        g.attrs.update(k=16, kind="disc", grid=[3, 4])
    with io.zarr_group_writer(tmp_path / "images.zarr") as g:
        io.create_array(g, "labels", (240,), 1024, "int64")[:] = np.arange(240) % 2
        io.create_array(g, "is_val", (240,), 1024, "bool")[:] = np.arange(240) >= 200
        g.attrs.update(class_names=["a", "b"])
    return {"tokens": str(tmp_path / "tokens.zarr"), "images": str(tmp_path / "images.zarr")}


def ar_params(root, tmp_path, nproc: int) -> tuple[str, dict[str, str]]:
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["device"] = "cpu"
    raw["ar"].update(size="tiny", n_embd=None, steps=24, batch_size=32, warmup_steps=2,
                     eval_every=12, checkpoint_every=12, nproc=nproc)  # fmt: skip
    work = tmp_path / f"n{nproc}"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    paths = {"out": "model.pt", "metrics": "metrics.json", "checkpoints": "ck", "live": "live"}
    return str(work / "params.yaml"), {k: str(work / v) for k, v in paths.items()}


def test_ar_stage_under_torchrun(root, tmp_path, monkeypatch):
    inputs = fake_inputs(tmp_path)
    # The single-process reference in this process (same code path as nproc 1 in a subprocess).
    monkeypatch.chdir(root)
    torch.set_num_threads(1)
    params, out = ar_params(root, tmp_path, nproc=1)
    one = ar.run(load(params), "t", "none", inputs["tokens"], inputs["images"], **out)

    params, out = ar_params(root, tmp_path, nproc=2)
    cmd = [sys.executable, "-m", "pipeline.stages.ar", "--name", "t", "--conditioning", "none",
           "--params", params, *[f"--{k}={v}" for k, v in {**inputs, **out}.items()]]  # fmt: skip
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torchrun" in proc.stderr  # it did relaunch itself
    work = tmp_path / "n2"  # one model, metrics and curves; checkpoints removed
    assert sorted(p.name for p in work.iterdir()) == [
        "live",
        "metrics.json",
        "model.pt",
        "params.yaml",
    ]
    two = json.loads((work / "metrics.json").read_text())
    assert two["steps"] == one["steps"] == 24
    assert two["val_loss"] < 0.9 * math.log(16)  # learned, not just converged to uniform
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=0.1)
    assert io.load_torch(work / "model.pt")["step"] == 24
