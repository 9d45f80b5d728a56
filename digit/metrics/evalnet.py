"""The offline evaluation network: a small CNN classifier that stands in for Inception-v3.

The paper scores samples with torch-fidelity's Inception-v3 (FID / IS on ImageNet 256x256). Those
weights are a download, which is impossible offline, and Inception is a poor judge of 28x28 digits
anyway. This classifier is trained on the project's own data; its penultimate features drive
FID / KID / precision-recall and its logits drive IS, through `digit.metrics.fid` (extractor name
"evalnet"). Numbers computed with it are comparable with each other, never with the paper's.

`EvalNet.from_config` rebuilds the network from the config stored in its model file (written and
read by pipeline/checkpoints.py; torch-fidelity's extractor in `digit.metrics.fid` reads it too).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from digit.images import uint8_to_float
from digit.schedule import lr_at


@dataclass(frozen=True)
class EvalNetConfig:
    """Architecture (first block) and training recipe (second block) of the evaluation network."""

    in_channels: int = 1
    image_size: int = 28  # square; images of another size are resized to this by the extractor
    n_classes: int = 10
    width: int = 16  # channels of the first conv; the second and third have 2 * width
    feat_dim: int = 128  # penultimate features: what FID / KID / PRC see
    dropout: float = 0.2

    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    aug_shift: float = 2.0  # max translation, pixels
    aug_rotate_deg: float = 10.0
    aug_scale: float = 0.1  # scale drawn from [1 - s, 1 + s]

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.image_size < 28:
            raise ValueError(f"image_size must be >= 28, got {self.image_size}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class EvalNet(nn.Module):
    """Three 3x3 conv blocks (two max-pools) and a fully connected feature layer, then the head.

    A flattened fully connected layer (not global pooling) keeps where strokes are, which is most
    of what tells digits apart, and trains in a few epochs. It fixes the input size, so the
    torch-fidelity extractor resizes other sizes to `image_size`, as Inception resizes to 299.
    Features are the post-ReLU outputs of that layer, like Inception's pooled 2048-d features.
    """

    def __init__(self, cfg: EvalNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.trunk = nn.Sequential(
            _conv_bn_relu(cfg.in_channels, w),
            nn.MaxPool2d(2),  # 28 -> 14
            _conv_bn_relu(w, 2 * w),
            nn.MaxPool2d(2),  # 14 -> 7
            _conv_bn_relu(2 * w, 2 * w),
        )
        side = cfg.image_size // 4
        self.fc = nn.Sequential(
            nn.Linear(2 * w * side * side, cfg.feat_dim, bias=False),
            nn.BatchNorm1d(cfg.feat_dim),
            nn.ReLU(inplace=True),
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feat_dim, cfg.n_classes)

    @classmethod
    def from_config(cls, config: dict[str, Any] | EvalNetConfig) -> EvalNet:
        """Rebuild the network from ``dataclasses.asdict(model.cfg)``; unknown keys are errors."""
        if isinstance(config, EvalNetConfig):
            return cls(config)
        unknown = set(config) - {f.name for f in fields(EvalNetConfig)}
        if unknown:
            raise ValueError(f"unknown EvalNetConfig keys: {sorted(unknown)}")
        return cls(EvalNetConfig(**config))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) float in [0, 1], H = W = image_size -> (feat (B, feat_dim), logits)."""
        h = self.trunk((x - 0.5) / 0.5)  # (B, 2w, H/4, W/4)
        feat = self.fc(h.flatten(1))  # (B, feat_dim)
        return feat, self.head(self.drop(feat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]


def _augment(x: torch.Tensor, cfg: EvalNetConfig, gen: torch.Generator) -> torch.Tensor:
    """Random rotation / scale / translation, one affine per image; x: (B, C, H, W)."""
    b, _, h, _ = x.shape
    u = torch.rand(b, 4, generator=gen) * 2 - 1  # (B, 4) in [-1, 1]
    ang = u[:, 0] * math.radians(cfg.aug_rotate_deg)
    scale = 1 + u[:, 1] * cfg.aug_scale
    t = u[:, 2:] * (2 * cfg.aug_shift / h)  # normalized coordinates span 2 over h pixels
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def _batched(
    model: EvalNet, images: np.ndarray | torch.Tensor, layer: int, batch_size: int = 500
) -> torch.Tensor:
    """uint8 (N, H, W, C) images -> one of ``model.features``' outputs (0: features, 1: logits)
    for all of them, on the CPU, with the model in eval mode."""
    x = uint8_to_float(images).contiguous()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [
        model.features(x[i : i + batch_size].to(device))[layer].cpu()
        for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out)


def predict_logits(
    model: EvalNet, images: np.ndarray | torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """uint8 (N, H, W, C) images -> logits (N, n_classes) on the CPU, model in eval mode."""
    return _batched(model, images, 1, batch_size)


def penultimate_features(
    model: EvalNet, images: np.ndarray | torch.Tensor, batch_size: int = 500
) -> np.ndarray:
    """uint8 (N, H, W, C) images -> the (N, feat_dim) features FID / KID use, float32."""
    return _batched(model, images, 0, batch_size).float().numpy()


def accuracy(model: EvalNet, images: np.ndarray | torch.Tensor, labels: Any) -> float:
    """Top-1 accuracy of `model` on uint8 (N, H, W, C) images."""
    pred = predict_logits(model, images).argmax(1)
    return float((pred == torch.as_tensor(np.asarray(labels), dtype=torch.long)).float().mean())


def train_evalnet(
    images: np.ndarray | torch.Tensor,
    labels: Any,
    cfg: EvalNetConfig,
    seed: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    val_images: np.ndarray | torch.Tensor | None = None,
    val_labels: Any = None,
    on_step: Callable[[int, int, EvalNet], None] | None = None,
) -> tuple[EvalNet, list[dict[str, float]]]:
    """Train the evaluation classifier on uint8 (N, H, W, C) images with light affine augmentation.

    AdamW, linear warm-up over 5% of the steps then cosine decay, label smoothing. All randomness
    (init, dropout, shuffling, augmentation) derives from `seed` inside a forked RNG, so two calls
    with the same inputs and thread count give the same weights on the CPU, and the caller's global
    RNG is untouched.
    Returns the model in eval mode on `device` and one history row per epoch (with `val_acc` when
    validation data is given). ``on_step(step, steps_per_epoch, model)`` runs after each optimizer
    step (1-based) and may score the model in eval mode: it draws no training randomness, so the
    weights stay those of a run without it.
    """
    x_all = uint8_to_float(images).contiguous()  # (N, C, H, W)
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if x_all.shape[1] != cfg.in_channels or x_all.shape[2:] != (cfg.image_size, cfg.image_size):
        raise ValueError(
            f"images {tuple(x_all.shape[1:])} (C, H, W) do not match the config "
            f"({cfg.in_channels}, {cfg.image_size}, {cfg.image_size})"
        )
    if len(x_all) != len(y_all):
        raise ValueError(f"{len(x_all)} images but {len(y_all)} labels")
    device = torch.device(device)
    n = len(x_all)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    history: list[dict[str, float]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = EvalNet(cfg).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        step, t0 = 0, time.perf_counter()
        for epoch in range(cfg.epochs):
            model.train()
            perm = torch.randperm(n, generator=gen)
            loss_sum, correct = 0.0, 0
            for i in range(0, n, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                xb = _augment(x_all[idx], cfg, gen).to(device)
                yb = y_all[idx].to(device)
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, cfg.lr, warmup, pi_first=True)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if on_step is not None:
                    on_step(step, steps_per_epoch, model)
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == yb).sum())
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / n,
                "train_acc": correct / n,
            }
            if val_images is not None:
                row["val_acc"] = accuracy(model, val_images, val_labels)
            history.append(row)
            if progress:
                msg = " ".join(f"{k}={v:.4g}" for k, v in row.items())
                elapsed = time.perf_counter() - t0
                print(f"[evalnet] {msg} ({elapsed:.1f} s)", file=sys.stderr, flush=True)
    model.eval()
    return model, history
