"""Mixed precision, one rule for every training loop (token models, renderers, VQ, SSL encoder).

``fp32``: plain float32, the CPU default (the results of the embedded default are float32's).
``bf16``: the forward and loss under ``torch.autocast`` to bfloat16, float32 weights and optimizer
state, no loss scaling (bfloat16 has float32's range). ``fp16``: the same to float16, with a dynamic
loss scale (``torch.amp.GradScaler``) so small gradients do not flush to zero. ``tf32``: on CUDA,
float32 matmuls and convolutions (what autocast leaves in float32) may use TF32 tensor cores.

Autocast runs on the CPU as well (tests/test_precision.py), so the same code is tested here and
runs on the GPUs; on a CPU without bf16 units it is slower, not wrong (reports/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from digit.registry import PRECISIONS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
assert tuple(DTYPES) == PRECISIONS


@dataclass(frozen=True)
class Precision:
    dtype: str = "fp32"  # fp32 | bf16 | fp16
    tf32: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.dtype!r}")

    def autocast(self, device: str | torch.device) -> AbstractContextManager:
        """The forward pass (and loss) of a training or evaluation step."""
        kind = torch.device(device).type
        return torch.autocast(kind, dtype=DTYPES[self.dtype], enabled=self.dtype != "fp32")

    def scaler(self, device: str | torch.device) -> torch.amp.GradScaler:
        """A loss scale for fp16; a pass-through (enabled=False) otherwise."""
        return torch.amp.GradScaler(torch.device(device).type, enabled=self.dtype == "fp16")

    def set_tf32(self) -> None:
        """Process-wide, as torch has it: call once before training."""
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32


def optimizer_step(
    loss: Tensor,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    params: Iterable[nn.Parameter],
    grad_clip: float = 0.0,
) -> None:
    """backward, clipping of the true (unscaled) gradients when ``grad_clip`` > 0, step: the same
    calls as a plain float32 loop when the scaler is disabled."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()
