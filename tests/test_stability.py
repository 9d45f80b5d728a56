"""digit.metrics.stability: Table 1's perturbations and measures, pinned on hand-made tensors."""

import math

import pytest
import torch

from digit.metrics.stability import (
    add_gaussian_noise_snr,
    mean_cosine,
    noise_sigma_for_snr,
    salt_and_pepper,
    shift,
    token_change_rate,
)


def _images(b: int = 16, c: int = 1, h: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, h, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("snr_db", [30.0, 20.0, 10.0, 5.0, 0.0])
def test_gaussian_noise_hits_the_target_snr(snr_db):
    x = _images()
    noisy = add_gaussian_noise_snr(x, snr_db, torch.Generator().manual_seed(1))
    signal = x.pow(2).flatten(1).mean(1)
    noise = (noisy - x).pow(2).flatten(1).mean(1)
    measured = 10 * torch.log10(signal / noise)  # (B,)
    assert measured.mean().item() == pytest.approx(snr_db, abs=0.05 + 0.02 * abs(snr_db))
    # each image within a few percent of the noise power it should have (4096 values per image)
    assert ((noise / (signal / 10 ** (snr_db / 10))) - 1).abs().max() < 0.1


def test_gaussian_noise_is_not_clipped_and_is_per_image():
    x = torch.stack([torch.full((1, 8, 8), 0.1), torch.full((1, 8, 8), 0.9)])  # (2, 1, 8, 8)
    sigma = noise_sigma_for_snr(x, 10.0)
    # mean(x^2) = 0.01 and 0.81; 10 dB -> sigma^2 = power / 10
    assert sigma.tolist() == pytest.approx([math.sqrt(0.001), math.sqrt(0.081)])
    noisy = add_gaussian_noise_snr(x, 0.0, torch.Generator().manual_seed(0))
    assert noisy.min() < 0 and noisy.max() > 1  # no clipping
    per_image = add_gaussian_noise_snr(x, torch.tensor([40.0, 0.0]), torch.Generator())
    assert (per_image[0] - x[0]).abs().max() < (per_image[1] - x[1]).abs().max()


def test_gaussian_noise_deterministic_with_generator():
    x = _images(b=2, h=8)
    a = add_gaussian_noise_snr(x, 15.0, torch.Generator().manual_seed(3))
    b = add_gaussian_noise_snr(x, 15.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


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
