"""Latent-space stability under pixel perturbations (Table 1 of the paper).

The paper perturbs images with Gaussian noise at a given SNR, tokenizes clean and noisy images, and
reports the fraction of tokens that changed and the mean cosine similarity of the latent vectors.
These are the perturbations and the two measures, as pure functions; the tokenizers are elsewhere,
and the Gaussian noise is `digit.noise` (the same noise the encoder and the denoising VQ train
with). Salt-and-pepper noise and a one-pixel shift give perturbations outside a noise-trained
encoder's augmentation set.

Images are float (B, C, H, W) in [0, 1]. Randomness comes only from the `torch.Generator` passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def mean_cosine(
    a: torch.Tensor, b: torch.Tensor, center: torch.Tensor | None = None, eps: float = 1e-8
) -> float:
    """Mean over all B*L tokens of cos(a[i, j] - c, b[i, j] - c) = <a', b'> / (max(|a'|, eps)
    max(|b'|, eps)), c = ``center`` (D,) or 0.

    a, b: (B, L, D) latent vectors of the clean and the perturbed images (for K-Means or VQ tokens,
    the codebook vectors the ids point to, or the pre-quantization features). Centering on the
    clean vectors' mean makes the cosine fair across spaces: vectors that are all non-negative
    (post-ReLU features and their centroids) sit in one orthant, where any two have a high cosine,
    while signed ones (VQ codes) do not.
    """
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if center is not None:
        c = torch.as_tensor(center).double()
        a, b = a - c, b - c
    return float(F.cosine_similarity(a, b, dim=-1, eps=eps).mean())
