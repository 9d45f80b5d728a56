"""digit.seeding: the one seeded generator (pipeline/train.py's and digit/vq.py's copies drew the
same numbers from the same derivation; the reference below is theirs, verbatim)."""

import numpy as np
import torch

from digit.seeding import seeded_generator


def old(seed: int, *keys: int) -> torch.Generator:  # pipeline/train.py, digit/vq.py _generator
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def test_same_streams_as_before_and_independent_keys():
    for seed in (0, 1, 12345):
        for keys in [(), (0, 3), (1, 0), (1, 159), (3,), (4,), (5, 1, 80), (10,), (11,)]:
            a = torch.rand(64, generator=seeded_generator(seed, *keys))
            assert torch.equal(a, torch.rand(64, generator=old(seed, *keys)))
    keys = [(0,), (1,), (0, 1), (1, 0)]
    draws = {k: torch.rand(8, generator=seeded_generator(0, *k)) for k in keys}
    assert not torch.equal(draws[(0,)], draws[(1,)])
    assert not torch.equal(draws[(0, 1)], draws[(1, 0)])
    # SeedSequence pads its entropy with zeros: a trailing zero key names the same stream.
    assert torch.equal(draws[(1,)], torch.rand(8, generator=seeded_generator(0, 1, 0)))
