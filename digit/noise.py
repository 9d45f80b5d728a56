"""Gaussian pixel noise at a signal-to-noise ratio: the perturbation of the stability table (Table 1)
and the noise augmentation of the SSL encoder and of the denoising VQ.

SNR = 10 log10(mean(x_i^2) / sigma_i^2) per image i, the mean over all C*H*W values (signal power,
not variance: the paper's definition does not subtract the mean). The result is NOT clipped to
[0, 1]: clipping would lower the realized noise power by an amount that depends on the image. The
realized SNR of one draw scatters around the target (relative std of the noise power is
sqrt(2 / (C*H*W))). An all-black image gets sigma 0: no noise.
"""

from __future__ import annotations

import torch


def snr_sigma(
    x: torch.Tensor, snr_db: float | torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Per-image noise std (B,) in ``dtype``: sigma_i = sqrt(mean(x_i^2) / 10^(snr_i / 10)).

    x: (B, ...); snr_db: a scalar or a (B,) tensor, in dB. ``dtype`` is the precision of the
    arithmetic: float64 for the stability measurements, where the SNR is the quantity under test,
    float32 for training augmentations."""
    snr = torch.as_tensor(snr_db, dtype=dtype)
    b = x.shape[0]
    if snr.dim() == 0:
        snr = snr.expand(b)
    if snr.shape != (b,):
        raise ValueError(f"snr_db must be a scalar or shape ({b},), got {tuple(snr.shape)}")
    power = x.to(dtype).pow(2).mean(dim=tuple(range(1, x.dim())))  # (B,)
    return (power / 10.0 ** (snr.to(power.device) / 10.0)).sqrt()


def add_gaussian_noise_snr(
    x: torch.Tensor,
    snr_db: float | torch.Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """x + sigma_i * N(0, 1) with sigma_i from ``snr_sigma(x, snr_db, dtype)``.

    x: (B, C, H, W) float in [0, 1]. The draws are float32 on the CPU from ``generator``, so results
    do not depend on the device.
    """
    sigma = snr_sigma(x, snr_db, dtype).to(x.dtype)  # (B,)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return x + sigma.view(-1, *([1] * (x.dim() - 1))) * noise
