"""Training and evaluation of the VQ autoencoder (``digit.vq``): the loop, its noise augmentation
and the reconstruction / codebook metrics. No file I/O: checkpointing goes through a callback.

``train_vq`` derives one generator per step and one permutation per epoch from
``VQTrainConfig.seed``, so a run resumed from a checkpoint continues exactly as an uninterrupted one.
Images are converted by ``digit.images``; the noise augmentation is ``digit.noise``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from digit.images import uint8_to_float
from digit.noise import add_gaussian_noise_snr
from digit.precision import Precision, optimizer_step
from digit.progress import progress as progress_bar
from digit.schedule import lr_at
from digit.seeding import seeded_generator
from digit.vq import VQVAE, _check, _code_stats


@dataclass(frozen=True)
class VQTrainConfig:
    """Optimisation of ``train_vq``. ``steps`` > 0 overrides ``epochs``."""

    epochs: int = 5
    steps: int = 0
    batch_size: int = 16  # small batches win on the CPU: more updates per second
    lr: float = 2e-3
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.99
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # max grad norm; 0 disables
    l1_weight: float = 0.0  # added to the MSE reconstruction loss
    seed: int = 0
    log_every: int = 10  # steps between history entries / progress-bar updates
    checkpoint_every: int = 0  # steps between on_checkpoint calls; 0 disables
    precision: str = "fp32"  # fp32 | bf16 | fp16 (digit.precision); the quantizer stays float32
    tf32: bool = False

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "epochs", ">= 0")
        _check(self.steps >= 0, "steps", ">= 0")
        _check(self.steps > 0 or self.epochs > 0, "epochs", "> 0 when steps is 0")
        _check(self.batch_size >= 1, "batch_size", ">= 1")
        _check(self.lr > 0.0, "lr", "> 0")
        _check(self.weight_decay >= 0.0, "weight_decay", ">= 0")
        _check(0.0 <= self.beta1 < 1.0, "beta1", "in [0, 1)")
        _check(0.0 <= self.beta2 < 1.0, "beta2", "in [0, 1)")
        _check(self.warmup_steps >= 0, "warmup_steps", ">= 0")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "in [0, 1]")
        _check(self.grad_clip >= 0.0, "grad_clip", ">= 0")
        _check(self.l1_weight >= 0.0, "l1_weight", ">= 0")
        _check(self.log_every >= 1, "log_every", ">= 1")
        _check(self.checkpoint_every >= 0, "checkpoint_every", ">= 0")


@dataclass(frozen=True)
class NoiseAugConfig:
    """Gaussian pixel noise applied to training inputs with probability ``p`` at an SNR drawn
    uniformly in [snr_db_lo, snr_db_hi] dB, SNR = 10 log10(mean(x^2) / sigma^2) per image, no
    clipping (the same perturbation as the encoder's augmentation and the stability table).
    ``target='clean'`` trains a denoising autoencoder (noisy and clean inputs pushed towards the
    same tokens), the fair "VQ trained with the same noise" baseline; ``'noisy'`` reconstructs the
    noisy input."""

    p: float = 0.5
    snr_db_lo: float = 0.0
    snr_db_hi: float = 30.0
    target: str = "clean"

    def __post_init__(self) -> None:
        _check(0.0 <= self.p <= 1.0, "p", "in [0, 1]")
        _check(self.snr_db_lo <= self.snr_db_hi, "snr_db_lo", "<= snr_db_hi")
        _check(self.target in ("clean", "noisy"), "target", "'clean' or 'noisy'")


def train_vq(
    model: VQVAE,
    images: Tensor,
    cfg: VQTrainConfig,
    device: str | torch.device = "cpu",
    *,
    noise_aug: NoiseAugConfig | None = None,
    state: dict[str, Any] | None = None,
    on_checkpoint: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``model`` in place on uint8 images (N, H, W, C) with AdamW, warm-up + cosine.

    Deterministic given ``cfg.seed`` and the model's initial weights (the caller seeds its
    construction): batch order comes from one permutation per epoch and noise / codebook restarts
    from one generator per step, all derived from the seed, so resuming is exact.

    Resuming: pass ``state`` as given to ``on_checkpoint`` (keys: step, optimizer, history) and load
    the model's own state_dict (weights and codebook buffers) beforehand. ``on_checkpoint(step,
    state)`` runs every ``cfg.checkpoint_every`` steps and after the last step; it must save
    ``state`` together with ``model.state_dict()`` at once, as the tensors in it keep changing.

    Returns the history: lists step, lr, loss, mse, usage, perplexity, n_restarted (summed over
    the logging window), one entry per ``cfg.log_every`` steps and at the last step.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("images must be a uint8 (N, H, W, C) tensor")
    n = images.shape[0]
    if n == 0:
        raise ValueError("images is empty")
    model.to(device)
    model.train()
    bs = min(cfg.batch_size, n)
    steps_per_epoch = n // bs  # drop the last partial batch: restarts assume full batches
    total = cfg.steps if cfg.steps > 0 else cfg.epochs * steps_per_epoch

    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )
    precision = Precision(cfg.precision, cfg.tf32)
    precision.set_tf32()
    scaler = precision.scaler(device)
    start = 0
    keys = ("step", "lr", "loss", "mse", "usage", "perplexity", "n_restarted")
    history: dict[str, list[float]] = {k: [] for k in keys}
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state.get("scaler", {}))
        start = int(state["step"])
        history = {k: list(v) for k, v in state["history"].items()}

    def make_state(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict(),
            "history": history,
        }

    perm, perm_epoch = None, -1
    window: dict[str, float] = {k: 0.0 for k in ("loss", "mse", "usage", "perplexity")}
    window_n, window_restarts = 0, 0.0
    bar = progress_bar(
        total=total, initial=start, disable=not progress, desc="vq", unit="step", leave=False
    )
    for step in range(start, total):
        epoch, i = divmod(step, steps_per_epoch)
        if epoch != perm_epoch:
            perm = torch.randperm(n, generator=seeded_generator(cfg.seed, 0, epoch))
            perm_epoch = epoch
        g = seeded_generator(cfg.seed, 1, step)
        x = uint8_to_float(images[perm[i * bs : (i + 1) * bs]]).to(device)  # (B, C, H, W)
        x_in, target = x, None
        if noise_aug is not None and noise_aug.p > 0:
            apply = torch.rand(x.shape[0], generator=g) < noise_aug.p  # (B,)
            snr = noise_aug.snr_db_lo + (noise_aug.snr_db_hi - noise_aug.snr_db_lo) * torch.rand(
                x.shape[0], generator=g
            )
            noisy = add_gaussian_noise_snr(x, snr, g)
            x_in = torch.where(apply.to(device).view(-1, 1, 1, 1), noisy, x)
            target = x if noise_aug.target == "clean" else x_in

        lr = lr_at(step, total, cfg.lr, cfg.warmup_steps, "cosine", cfg.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        with precision.autocast(device):
            x_hat, loss, stats = model(x_in, target=target, generator=g)
            if cfg.l1_weight > 0:
                target_px = x if target is None else target
                loss = loss + cfg.l1_weight * (x_hat - target_px).abs().mean()
        optimizer_step(loss, opt, scaler, model.parameters(), cfg.grad_clip)

        window["loss"] += float(loss.detach())
        for k in ("mse", "usage", "perplexity"):
            window[k] += float(stats[k])
        window_restarts += float(stats["n_restarted"])
        window_n += 1
        done = step + 1
        if done % cfg.log_every == 0 or done == total:
            history["step"].append(done)
            history["lr"].append(lr)
            for k, v in window.items():
                history[k].append(v / window_n)
            history["n_restarted"].append(window_restarts)
            bar.set_postfix(
                loss=f"{history['loss'][-1]:.4f}",
                mse=f"{history['mse'][-1]:.4f}",
                usage=f"{history['usage'][-1]:.2f}",
            )
            window = dict.fromkeys(window, 0.0)
            window_n, window_restarts = 0, 0.0
        bar.update(1)
        checkpoint_due = cfg.checkpoint_every > 0 and (
            done % cfg.checkpoint_every == 0 or done == total
        )
        if on_checkpoint is not None and checkpoint_due:
            on_checkpoint(done, make_state(done))
    bar.close()
    return history


@torch.no_grad()
def evaluate_vq(
    model: VQVAE, images: Tensor, batch_size: int = 256, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Reconstruction and codebook metrics on uint8 images (N, H, W, C), codebook untouched.

    mse: mean squared error over all pixels in [0, 1] units; psnr: 10 log10(1 / mse) of that pooled
    mse (dB); usage: fraction of codes used at least once over all tokens; n_codes_used; perplexity:
    exp(entropy) of the code histogram over all tokens.
    """
    was_training = model.training
    model.eval()
    model.to(device)
    se, n_px = 0.0, 0
    counts = torch.zeros(model.cfg.codebook_size, dtype=torch.float64)
    for s in range(0, images.shape[0], batch_size):
        x = uint8_to_float(images[s : s + batch_size]).to(device)
        ids = model.tokenize(x)  # (B, L)
        x_hat = model.decode_ids(ids)
        se += float((x_hat - x).pow(2).sum())
        n_px += x.numel()
        counts += torch.bincount(ids.reshape(-1).cpu(), minlength=counts.numel()).double()
    model.train(was_training)
    mse = se / max(n_px, 1)
    stats = _code_stats(counts)
    return {
        "mse": mse,
        "psnr": 10.0 * math.log10(1.0 / max(mse, 1e-12)),
        "usage": float(stats["usage"]),
        "n_codes_used": int((counts > 0).sum()),
        "perplexity": float(stats["perplexity"]),
    }
