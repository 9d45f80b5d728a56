"""Self-supervised training of the in-house small encoder (the embedded default's stand-in for DINOv2).

SimCLR (Chen et al. 2020): two augmented views of every image, NT-Xent loss on a projection of the
mean-pooled patch features; no labels. Augmentations run batched on the device: random resized crop
and rotation (one affine warp), Gaussian blur, and optionally Gaussian pixel noise at a random SNR.
The noise augmentation is a switch because it is also the perturbation of the stability table: a fair
table shows the encoder trained without it too (measured while planning: without the noise
augmentation the small encoder's tokens change far more under noise, so the augmentation, not the
method, buys most of its stability).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from digit.encoders import FrozenEncoder
from digit.noise import add_gaussian_noise_snr
from digit.precision import Precision, optimizer_step
from digit.progress import progress as progress_bar
from digit.schedule import lr_at


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.5, 1.0)  # area fraction of the random resized crop
    rotation_deg: float = 15.0
    blur_p: float = 0.3
    noise_aug: bool = True
    noise_p: float = 0.5
    noise_snr_db: tuple[float, float] = (0.0, 30.0)


@dataclass(frozen=True)
class SimCLRConfig:
    epochs: int = 16
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    temperature: float = 0.2
    proj_dim: int = 128
    augment: AugmentConfig = AugmentConfig()
    precision: str = "fp32"  # fp32 | bf16 | fp16 (digit.precision)
    tf32: bool = False


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g).to(device) * (hi - lo) + lo


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """One random view of a batch x (B, C, S, S) in [0, 1]; every draw comes from ``g``."""
    b, c, s, _ = x.shape
    dev = x.device
    # Random resized crop + rotation as a single affine warp (zoom in = scale < 1 in grid units).
    area = _uniform(b, *cfg.crop_scale, g, dev)
    zoom = area.sqrt()
    angle = _uniform(b, -cfg.rotation_deg, cfg.rotation_deg, g, dev) * math.pi / 180
    shift = (1 - zoom).unsqueeze(1) * (torch.rand(b, 2, generator=g).to(dev) * 2 - 1)
    cos, sin = angle.cos() * zoom, angle.sin() * zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Gaussian blur with a per-image sigma, as one grouped convolution.
    blur = torch.rand(b, generator=g).to(dev) < cfg.blur_p
    if blur.any():
        sigma = _uniform(b, 0.1, 1.2, g, dev)
        r = torch.arange(-2, 3, device=dev, dtype=x.dtype)
        k1 = torch.exp(-(r.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
        k1 = k1 / k1.sum(1, keepdim=True)  # (B, 5)
        k2 = (k1.unsqueeze(2) * k1.unsqueeze(1)).repeat_interleave(c, 0).unsqueeze(1)
        blurred = F.conv2d(
            F.pad(x.reshape(1, b * c, s, s), (2, 2, 2, 2), mode="reflect"), k2, groups=b * c
        )
        x = torch.where(blur.view(-1, 1, 1, 1), blurred.view(b, c, s, s), x)

    if cfg.noise_aug:
        snr = _uniform(b, *cfg.noise_snr_db, g, dev)
        noisy = add_gaussian_noise_snr(x, snr, g)
        use = (torch.rand(b, generator=g).to(dev) < cfg.noise_p).view(-1, 1, 1, 1)
        x = torch.where(use, noisy, x)
    return x


class Projector(nn.Module):
    def __init__(self, dim: int, out: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or 2 * dim
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner among the 2B - 1 other views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, P)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def _fit(
    encoder: FrozenEncoder,
    head: nn.Module,
    images: torch.Tensor,
    cfg: SimCLRConfig | MAEConfig,
    seed: int,
    device: str,
    progress: bool,
    desc: str,
    batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
) -> list[dict]:
    """The loop both objectives share: AdamW over encoder + head, linear warm-up then cosine,
    one seeded permutation per epoch, full batches only (BatchNorm needs them).
    ``batch_loss(x, g)``: the objective's loss on a preprocessed batch. Returns per-epoch history."""
    g = torch.Generator().manual_seed(seed)
    encoder.to(device).train()
    head.to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    precision = Precision(cfg.precision, cfg.tf32)
    precision.set_tf32()
    scaler = precision.scaler(device)
    n = images.shape[0]
    batch = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // batch)  # drop the ragged last batch
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    history, step = [], 0
    bar = progress_bar(total=total, desc=desc, unit="step", disable=not progress)
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=g)
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            with precision.autocast(device):
                loss = batch_loss(encoder.preprocess(images[idx].to(device)), g)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.lr, warmup)
            optimizer_step(loss, opt, scaler, params)
            losses.append(loss.item())
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4g}", epoch=epoch)
        history.append({"epoch": epoch, "loss": sum(losses) / len(losses)})
    bar.close()
    encoder.eval()
    return history


def train_simclr(
    encoder: FrozenEncoder,
    images: torch.Tensor,
    cfg: SimCLRConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Train ``encoder`` in place on uint8 images (N, H, W, C); returns per-epoch history."""
    projector = Projector(encoder.dim, cfg.proj_dim)

    def batch_loss(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        v1, v2 = augment(x, cfg.augment, g), augment(x, cfg.augment, g)
        h = encoder.patch_features(torch.cat([v1, v2])).mean(1)  # (2B, D) pooled
        z = projector(h)
        return nt_xent(z[: len(x)], z[len(x) :], cfg.temperature)

    return _fit(encoder, projector, images, cfg, seed, device, progress, "ssl simclr", batch_loss)


@torch.no_grad()
def recompute_batchnorm(
    encoder: FrozenEncoder, images: torch.Tensor, batch_size: int = 256, device: str = "cpu"
) -> None:
    """Set BatchNorm running statistics to the exact mean/var of clean training images.

    Training leaves running statistics of augmented (noisy, cropped) views, and a random network has
    none at all; both are then measured on the inputs the frozen encoder will actually see.
    """
    bns = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
    encoder.to(device).train()
    for start in range(0, images.shape[0], batch_size):
        encoder(images[start : start + batch_size].to(device))
    for bn in bns:
        bn.momentum = 0.1
    encoder.eval()


# --- the reconstructive baseline: a masked autoencoder of the same encoder (the paper's Fig. 4a) ---


@dataclass(frozen=True)
class MAEConfig:
    epochs: int = 16
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    mask_ratio: float = 0.5  # fraction of patches hidden from the encoder; 0 = a plain autoencoder
    precision: str = "fp32"  # fp32 | bf16 | fp16 (digit.precision)
    tf32: bool = False


class PixelDecoder(nn.Module):
    """Patch features (B, D, g, g) -> pixels (B, C, g * 4, g * 4): two stride-2 up-convolutions."""

    def __init__(self, dim: int, channels: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim, hidden, 1),
            nn.GELU(),
            nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(hidden, channels, 4, stride=2, padding=1),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


def patch_mask(b: int, grid: int, ratio: float, g: torch.Generator) -> torch.Tensor:
    """(b, grid, grid) bool, True = hidden; exactly round(ratio * grid^2) patches per image."""
    n = grid * grid
    hidden = round(ratio * n)
    ranks = torch.rand(b, n, generator=g).argsort(1).argsort(1)
    return (ranks < hidden).view(b, grid, grid)


def train_mae(
    encoder: FrozenEncoder,
    images: torch.Tensor,
    cfg: MAEConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Train ``encoder`` in place to reconstruct its input from its patch features: the hidden
    patches are filled with grey (0.5) before the encoder sees the image, and the loss is the pixel
    MSE on the hidden patches (on every pixel when ``mask_ratio`` is 0). No augmentation and no
    labels: the features are shaped by reconstruction alone, which is the point of the baseline.
    Returns per-epoch history."""
    if encoder.patch != 4:
        raise ValueError(
            f"the MAE decoder upsamples by 4; encoder {encoder.name} has patch {encoder.patch}"
        )
    grid = encoder.grid()[0]
    decoder = PixelDecoder(encoder.dim, images.shape[-1])

    def batch_loss(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        mask = patch_mask(len(x), grid, cfg.mask_ratio, g).to(x.device)
        pixel_mask = mask.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].float()
        f = encoder.patch_features(x * (1 - pixel_mask) + 0.5 * pixel_mask)  # (B, L, D)
        recon = decoder(f.transpose(1, 2).reshape(len(x), encoder.dim, grid, grid))
        err = (recon - x).pow(2)
        weight = pixel_mask if cfg.mask_ratio > 0 else torch.ones_like(pixel_mask)
        return (err * weight).sum() / (weight.sum() * x.shape[1]).clamp_min(1.0)

    return _fit(encoder, decoder, images, cfg, seed, device, progress, "ssl mae", batch_loss)
