"""The learning-rate schedule of every training loop: linear warm-up, then cosine, inverse_sqrt or
constant. Pure arithmetic (no torch), so pipeline/params.py can read ``SCHEDULES`` cheaply.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "inverse_sqrt", "constant")


def lr_at(
    step: int,
    total: int,
    base_lr: float,
    warmup: int = 0,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.0,
    *,
    pi_first: bool = False,
) -> float:
    """Learning rate of optimisation step ``step`` (0-based) of ``total``.

    Steps ``0 .. warmup - 1`` ramp linearly to ``base_lr`` (``base_lr * (step + 1) / warmup``).
    After warm-up, ``cosine`` decays from ``base_lr`` to ``base_lr * min_lr_ratio`` at step
    ``total``; ``inverse_sqrt`` is fairseq's ``base_lr * sqrt(max(warmup, 1) / (step + 1))`` (the
    paper's); ``constant`` stays at ``base_lr``.

    ``pi_first``: take the cosine's angle as ``pi * (step - warmup) / (total - warmup)`` rather than
    ``pi * ((step - warmup) / (total - warmup))``. The two round differently in the last bit for
    about one step in five; the evaluation network and the linear probe were trained with the
    first, the GPTs, the VQ autoencoder and the SSL encoder with the second, and this keeps each
    run's learning rates bit for bit.
    """
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant":
        return base_lr
    if schedule == "inverse_sqrt":
        return base_lr * math.sqrt(max(warmup, 1) / (step + 1))
    if schedule != "cosine":
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    span = max(1, total - warmup)
    angle = math.pi * (step - warmup) / span if pi_first else math.pi * ((step - warmup) / span)
    return base_lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(angle)))
