"""Latent-space stability under pixel perturbations (Table 1 of the paper).

The paper perturbs images with Gaussian noise at a given SNR, tokenizes clean and noisy images, and
reports the fraction of tokens that changed and the mean cosine similarity of the latent vectors.
These are the perturbations and the two measures, as pure functions; the tokenizers are elsewhere.
Besides Gaussian noise, salt-and-pepper noise and a one-pixel shift give perturbations outside a
noise-trained encoder's augmentation set.

Images are float (B, C, H, W) in [0, 1]. Randomness comes only from the `torch.Generator` passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _snr_per_image(snr_db: float | torch.Tensor, b: int) -> torch.Tensor:
    snr = torch.as_tensor(snr_db, dtype=torch.float64)
    if snr.dim() == 0:
        snr = snr.expand(b)
    if snr.shape != (b,):
        raise ValueError(f"snr_db must be a scalar or shape ({b},), got {tuple(snr.shape)}")
    return snr


def noise_sigma_for_snr(x: torch.Tensor, snr_db: float | torch.Tensor) -> torch.Tensor:
    """Per-image noise std for the SNR, (B,): sigma_i = sqrt(mean(x_i^2) / 10^(snr_i / 10))."""
    power = x.double().pow(2).flatten(1).mean(1)  # (B,)
    snr = _snr_per_image(snr_db, len(x)).to(power.device)
    return (power / 10 ** (snr / 10)).sqrt()


def add_gaussian_noise_snr(
    x: torch.Tensor, snr_db: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """x + sigma_i * N(0, 1), sigma_i per image so that SNR_i = 10 log10(mean(x_i^2) / sigma_i^2).

    x: (B, C, H, W) float in [0, 1]; snr_db: a scalar or a (B,) tensor, in dB. The mean is over all
    C*H*W values of image i (signal power, not variance: the paper's definition does not subtract
    the mean). The result is NOT clipped to [0, 1]: clipping would lower the realized noise power,
    so the SNR would no longer be the one asked for, by an amount that depends on the image. The
    realized SNR of one draw scatters around the target (relative std of the noise power is
    sqrt(2 / (C*H*W))). Draws are float32 on the CPU from `generator`, so results do not depend on
    the device (the same draws as `digit.vq.add_gaussian_noise_snr` and `digit.ssl`'s noise).
    """
    sigma = noise_sigma_for_snr(x, snr_db).to(x.dtype)  # (B,)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return x + sigma.view(-1, *([1] * (x.dim() - 1))) * noise


def salt_and_pepper(
    x: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Set exactly round(fraction * H * W) pixel positions per image to 0 or 1 (each with p = 1/2).

    x: (B, C, H, W). A chosen position changes in all channels together (a dead / hot pixel). The
    positions are distinct within an image and drawn independently for each image.
    """
    b, c, h, w = x.shape
    k = int(round(fraction * h * w))
    out = x.clone(memory_format=torch.contiguous_format)
    if k == 0:
        return out
    order = torch.rand(b, h * w, generator=generator).argsort(dim=1)  # (B, HW) random permutation
    pos = order[:, :k].to(x.device)  # (B, k)
    val = (torch.rand(b, k, generator=generator) < 0.5).to(x.dtype).to(x.device)  # (B, k)
    flat = out.view(b, c, h * w)
    flat.scatter_(2, pos.unsqueeze(1).expand(b, c, k), val.unsqueeze(1).expand(b, c, k))
    return out


def shift(x: torch.Tensor, pixels: int | tuple[int, int] = 1, fill: float = 0.0) -> torch.Tensor:
    """Translate images by whole pixels: an int moves content right by `pixels` along W; a tuple
    (dy, dx) moves it down by dy and right by dx (negative: up / left). Uncovered pixels get `fill`
    (0: the MNIST background); content shifted out is dropped (not wrapped around as torch.roll).
    """
    dy, dx = (0, pixels) if isinstance(pixels, int) else pixels
    _, _, h, w = x.shape
    if abs(dy) >= h or abs(dx) >= w:
        return torch.full_like(x, fill)
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))  # (left, right, top, bottom)
    padded = F.pad(x, pad, mode="constant", value=fill)
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w].contiguous()


def token_change_rate(ids_clean: torch.Tensor, ids_noisy: torch.Tensor) -> float:
    """Fraction of token positions whose id differs: mean over all B*L positions of [a != b].

    ids: integer tensors of the same shape, e.g. (B, L) token grids flattened in raster order.
    """
    a, b = torch.as_tensor(ids_clean), torch.as_tensor(ids_noisy)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a != b).double().mean())


def mean_cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> float:
    """Mean over all B*L tokens of cos(a[i, j], b[i, j]) = <a, b> / (max(|a|, eps) max(|b|, eps)).

    a, b: (B, L, D) latent vectors of the clean and the perturbed images (for K-Means or VQ tokens,
    the codebook vectors the ids point to, or the pre-quantization features).
    """
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float(F.cosine_similarity(a, b, dim=-1, eps=eps).mean())
