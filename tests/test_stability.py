"""digit.metrics.stability: Table 1's perturbations and measures, pinned on hand-made tensors
(the Gaussian noise is digit.noise: tests/test_noise.py)."""

import pytest
import torch

from digit.metrics.stability import mean_cosine, salt_and_pepper, shift, token_change_rate


def test_salt_and_pepper_changes_exactly_the_fraction():
    x = torch.full((4, 3, 10, 10), 0.5)
    out = salt_and_pepper(x, 0.25, torch.Generator().manual_seed(0))
    changed = (out != x).any(dim=1)  # (B, H, W): a position changes in all channels together
    assert changed.flatten(1).sum(1).tolist() == [25, 25, 25, 25]
    assert ((out != x).all(dim=1) == changed).all()
    assert set(out[out != x].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, torch.full((4, 3, 10, 10), 0.5))  # input untouched
    assert torch.equal(salt_and_pepper(x, 0.0), x)


def test_shift_one_pixel():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    right = shift(x, 1)
    assert right[0, 0].tolist() == [[0, 0, 1, 2], [0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14]]
    up_left = shift(x, (-1, -1), fill=-1.0)
    assert up_left[0, 0].tolist() == [[5, 6, 7, -1], [9, 10, 11, -1], [13, 14, 15, -1], [-1] * 4]
    assert torch.equal(shift(x, (0, 0)), x)
    assert torch.equal(shift(x, 4), torch.zeros_like(x))


def test_token_change_rate():
    a = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = torch.tensor([[1, 0, 3, 4], [5, 6, 0, 0]])
    assert token_change_rate(a, b) == pytest.approx(3 / 8)
    assert token_change_rate(a, a) == 0.0
    with pytest.raises(ValueError):
        token_change_rate(a, b[:1])


def test_mean_cosine():
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # (B=1, L=2, D=2)
    b = torch.tensor([[[0.0, 2.0], [3.0, 3.0]]])  # orthogonal, then parallel
    assert mean_cosine(a, b) == pytest.approx(0.5)
    assert mean_cosine(a, -a) == pytest.approx(-1.0)
    assert mean_cosine(a, a) == pytest.approx(1.0)
