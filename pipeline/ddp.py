"""Data-parallel training of the transformers under torchrun (``ar.nproc`` / ``renderer.nproc`` > 1).

A training stage started by DVC is a single process. When its section asks for N > 1 processes, the
stage re-launches itself as ``python -m torch.distributed.run --standalone --nproc_per_node N -m
<stage module> <same arguments>`` and waits for it: dvc.yaml, the flow and the stage's command line
stay the same whatever N is. Inside torchrun each rank joins one process group (gloo on the CPU,
nccl on CUDA with one GPU per rank), wraps the model in DistributedDataParallel and trains on its
shard of every batch, so the global batch stays ``batch_size`` and the learning-rate schedule means
the same thing for any N. Rank 0 alone writes checkpoints, dvclive curves, the model and metrics.

Multi-node runs use the same code with torchrun's rendezvous flags set by the user's launcher
(SLURM, Kubernetes); the checkpoint directory must then be on a filesystem all ranks see.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pipeline.stage import StageError
from pipeline.warm import parent_death_preexec

log = logging.getLogger("digit.ddp")


@dataclass(frozen=True)
class Rank:
    """This process's place in the process group."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """Rows of a batch of ``n`` that this rank trains on (contiguous, equal when n % world == 0)."""
        return slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)


def in_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def relaunch(nproc: int, key: str) -> bool:
    """Re-run this stage under torchrun with ``nproc`` processes; True when it did (the caller then
    returns: the ranks did the work). False when one process is asked for or we already are a rank.
    ``key`` names the params key in errors."""
    if nproc <= 1 or in_torchrun():
        return False
    module = sys.modules["__main__"].__spec__
    if module is None:  # python path/to/stage.py: torchrun could not re-import it by name
        raise StageError(
            f"{key}: run the stage as `python -m pipeline.stages.<name>` for nproc > 1"
        )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        module.name,
        *sys.argv[1:],
    ]
    # Share this stage's cores between its ranks (the flow may already have narrowed them with
    # OMP_NUM_THREADS) instead of torchrun's blanket OMP_NUM_THREADS=1.
    cores = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc))}
    log.info("%s=%d: relaunching under torchrun: %s", key, nproc, " ".join(cmd))
    # torchrun dies with this stage even when it is killed with -9 (its ranks, in sessions of their
    # own, die with torchrun: they are stages and set the same on start, pipeline/warm.py).
    proc = subprocess.run(cmd, env=env, preexec_fn=parent_death_preexec())
    if proc.returncode != 0:
        raise StageError(f"{key}={nproc}: torchrun exited with status {proc.returncode}")
    return True


def setup(device: str) -> tuple[Rank | None, str]:
    """Join the process group when running under torchrun; returns (rank or None, device).

    On CUDA each rank takes GPU ``LOCAL_RANK`` and nccl; on the CPU, gloo.
    """
    if not in_torchrun():
        return None, device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        atexit.register(teardown)
    rank = Rank(dist.get_rank(), dist.get_world_size(), local_rank)
    if not rank.is_main:  # one log, rank 0's; the others speak up only for problems
        logging.getLogger("digit").setLevel(logging.WARNING)
    log.info("rank %d of %d on %s (%s)", rank.rank, rank.world, device, backend)
    return rank, device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_mean(values: list[float], device: str | torch.device) -> list[float]:
    """The mean of ``values`` over ranks (identity without a process group)."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def all_sum(values: list[float], device: str | torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
