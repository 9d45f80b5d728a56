"""Seeded random streams: one ``torch.Generator`` per purpose, derived from (seed, *keys).

Every loop that must resume exactly, or that must draw the same numbers whichever stage runs it,
takes its randomness from a generator keyed by what it is for (epoch, step, stage); streams with
different keys are independent (numpy's SeedSequence mixes the keys into the 64-bit seed). One
caveat of SeedSequence: trailing zero keys are padding, so (seed, 3) and (seed, 3, 0) name the
same stream; give streams distinct leading keys.
"""

from __future__ import annotations

import numpy as np
import torch


def seeded_generator(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded from (seed, *keys)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))
