"""VQ autoencoder: the reconstructive tokenizer baseline and the pixel renderer of DiGIT.

DiGIT (NeurIPS 2024) compares autoregressive models over K-Means tokens of a frozen self-supervised
encoder with models over the tokens of a reconstructive VQ autoencoder (the paper uses VQGAN), and in
its second stage turns token grids into pixels with such an autoencoder's decoder. This module is that
autoencoder at small scale:

- The paper's VQGAN is trained with adversarial and perceptual (LPIPS) losses. Ours is a plain
  VQ-VAE: MSE reconstruction (optionally + L1) and a commitment term, no GAN and no perceptual loss;
  at 28 px these add cost and instability for little gain.
- Quantizer: EMA codebook updates (van den Oord et al. 2017, appendix), straight-through gradients,
  codebook initialised from the first training batch (k-means++ seeding + a few Lloyd steps), and
  dead-code restart (as in Jukebox / SoundStream): every ``restart_every`` steps, codes assigned to
  fewer than ``restart_threshold`` vectors per step over that window are re-seeded with random
  encoder outputs of the current batch. Without the restart a prototype used 65 of 256 codes; a
  collapsed codebook makes a weak, unfair baseline. Early in training the encoder's output scale
  grows several-fold in a few dozen steps and leaves the data-initialised codebook behind (all
  vectors map to one or two codes); the restarts are what recover from that.
- The decoder output is linear; reconstructions are clamped to [0, 1] (the training loss uses the
  unclamped output so black pixels keep a gradient). Inputs are floats in [0, 1], (B, C, H, W).
- ``train_vq`` / ``evaluate_vq`` (training loop and metrics) live here for now; they do no file
  I/O (checkpointing goes through a callback) and may move to a module of their own. Images are
  converted by ``digit.images``, the noise augmentation is ``digit.noise``.

Randomness is explicit: the quantizer's data-dependent initialisation and restarts draw from a
``torch.Generator`` passed to ``forward`` (the global RNG if none), and ``train_vq`` derives one
generator per step and one permutation per epoch from ``VQTrainConfig.seed``, so a run resumed from
a checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from digit.images import uint8_to_float
from digit.noise import add_gaussian_noise_snr
from digit.schedule import lr_at
from digit.seeding import seeded_generator

# ----------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class VQConfig:
    """Architecture and quantizer of the VQ-VAE. ``downsample`` must equal the patch size of the
    discriminative encoder so both tokenizers give the same token grid (28 px / 4 -> 7x7)."""

    in_channels: int = 1
    image_size: int = 28
    downsample: int = 4  # power of two; one stride-2 conv per factor of two
    hidden: int = 64  # channels at the token resolution; halved per level above it (min 16)
    n_res_blocks: int = 2
    codebook_size: int = 256
    code_dim: int = 64
    ema_decay: float = 0.99
    ema_eps: float = 1e-5  # Laplace smoothing of EMA cluster sizes
    commitment: float = 0.25
    init_kmeans_iters: int = 5  # Lloyd steps after k-means++ seeding at data initialisation
    # Dead-code restart: every `restart_every` training steps, codes assigned to fewer than
    # `restart_threshold` vectors per step on average over that window are re-seeded. A window count
    # reacts at once; the EMA cluster size (decay 0.99) would take hundreds of steps to fall.
    restart_threshold: float = 1.0
    restart_every: int = 10  # 0 disables restarts

    def __post_init__(self) -> None:
        for name in ("in_channels", "image_size", "downsample", "hidden", "code_dim"):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, ">= 1")
        _check(self.n_res_blocks >= 0, "n_res_blocks", ">= 0")
        _check(self.codebook_size >= 2, "codebook_size", ">= 2")
        _check(self.downsample & (self.downsample - 1) == 0, "downsample", "a power of two")
        _check(
            self.image_size % self.downsample == 0,
            "image_size",
            f"divisible by downsample={self.downsample}",
        )
        _check(0.0 < self.ema_decay < 1.0, "ema_decay", "in (0, 1)")
        _check(self.ema_eps > 0.0, "ema_eps", "> 0")
        _check(self.commitment >= 0.0, "commitment", ">= 0")
        _check(self.init_kmeans_iters >= 0, "init_kmeans_iters", ">= 0")
        _check(self.restart_threshold >= 0.0, "restart_threshold", ">= 0")
        _check(self.restart_every >= 0, "restart_every", ">= 0")

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def n_tokens(self) -> int:
        return self.grid_size**2


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


def _check(ok: bool, field: str, requirement: str) -> None:
    if not ok:
        raise ValueError(f"{field} must be {requirement}")


# ----------------------------------------------------------------------------------------------
# Quantizer


class EMAQuantizer(nn.Module):
    """Nearest-code vector quantizer with EMA codebook updates, data initialisation and restarts.

    Updates happen only in training mode, inside ``forward``; ``lookup`` never changes the codebook.
    """

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        K, D = cfg.codebook_size, cfg.code_dim
        self.register_buffer("embed", torch.randn(K, D) / math.sqrt(D))  # (K, D)
        self.register_buffer("cluster_size", torch.ones(K))  # (K,) EMA of assignments per batch
        self.register_buffer("embed_avg", self.embed.clone())  # (K, D) EMA of assigned sums
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("n_updates", torch.tensor(0, dtype=torch.long))
        self.register_buffer("window_counts", torch.zeros(K))  # (K,) assignments since last check

    def lookup(self, flat: Tensor) -> Tensor:
        """flat (N, D) -> ids (N,) of the nearest code in L2."""
        e = self.embed
        d = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ e.t() + e.pow(2).sum(1)[None]  # (N, K)
        return d.argmin(dim=1)

    def forward(
        self, z_e: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z_e (B, D, h, w) -> z_q with straight-through gradient (B, D, h, w), ids (B, h, w), stats.

        stats: commit_loss (differentiable, mean over elements of ||z_e - sg(z_q)||^2), and detached
        usage (fraction of codes used in this batch), perplexity, n_restarted.
        """
        B, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)  # (B*h*w, D)
        x = flat.detach().float()
        if self.training and not bool(self.initialized):
            self._init_from_data(x, generator)
        ids = self.lookup(x)  # (N,)
        z_q = self.embed[ids]  # (N, D), codebook before this step's update
        n_restarted = 0
        if self.training:
            self._ema_update(x, ids)
            self.n_updates += 1
            every = self.cfg.restart_every
            if every > 0 and int(self.n_updates) % every == 0:
                n_restarted = self._restart_dead(x, generator)
        commit = F.mse_loss(flat, z_q.detach().to(flat.dtype))
        z_q_st = flat + (z_q.to(flat.dtype) - flat).detach()  # straight-through
        z_q_st = z_q_st.view(B, h, w, D).permute(0, 3, 1, 2).contiguous()  # (B, D, h, w)
        counts = torch.bincount(ids, minlength=self.cfg.codebook_size).float()
        stats = {"commit_loss": commit, **_code_stats(counts)}
        stats["n_restarted"] = torch.tensor(float(n_restarted))
        return z_q_st, ids.view(B, h, w), stats

    @torch.no_grad()
    def _init_from_data(self, x: Tensor, generator: torch.Generator | None) -> None:
        """k-means++ seeding on one batch of encoder outputs, then a few Lloyd steps."""
        K = self.cfg.codebook_size
        xc = x.cpu()
        n = xc.shape[0]
        if n < K:  # too few vectors: repeat them with a little jitter so codes differ
            idx = torch.randint(0, n, (K,), generator=generator)
            centers = xc[idx] + 1e-3 * xc.std() * torch.randn(K, xc.shape[1], generator=generator)
        else:
            first = int(torch.randint(0, n, (1,), generator=generator))
            chosen = [first]
            d2 = (xc - xc[first]).pow(2).sum(1)  # (n,) squared distance to the nearest chosen
            for _ in range(K - 1):
                weights = d2.clamp_min(0) + 1e-12
                i = int(torch.multinomial(weights, 1, generator=generator))
                chosen.append(i)
                d2 = torch.minimum(d2, (xc - xc[i]).pow(2).sum(1))
            centers = xc[chosen].clone()
        for _ in range(self.cfg.init_kmeans_iters):
            assign = _nearest(xc, centers)
            counts = torch.bincount(assign, minlength=K).float()
            sums = torch.zeros_like(centers).index_add_(0, assign, xc)
            used = counts > 0  # empty clusters keep their seed
            centers[used] = sums[used] / counts[used, None]
        counts = torch.bincount(_nearest(xc, centers), minlength=K).float().clamp_min(1.0)
        self.embed.copy_(centers)
        self.cluster_size.copy_(counts)
        self.embed_avg.copy_(centers * counts[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, x: Tensor, ids: Tensor) -> None:
        K, decay, eps = self.cfg.codebook_size, self.cfg.ema_decay, self.cfg.ema_eps
        counts = torch.bincount(ids, minlength=K).to(x.dtype)  # (K,)
        sums = torch.zeros_like(self.embed_avg).index_add_(0, ids, x)  # (K, D)
        self.window_counts.add_(counts)
        self.cluster_size.mul_(decay).add_(counts, alpha=1.0 - decay)
        self.embed_avg.mul_(decay).add_(sums, alpha=1.0 - decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (total + K * eps) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead(self, x: Tensor, generator: torch.Generator | None) -> int:
        """Re-seed codes used too little in the last window with random encoder outputs of the
        current batch; their EMA statistics restart as one vector's worth, so they move fast."""
        min_count = self.cfg.restart_threshold * self.cfg.restart_every
        dead = (self.window_counts < min_count).nonzero().squeeze(1)  # (n_dead,)
        self.window_counts.zero_()
        n_dead = int(dead.numel())
        if n_dead == 0:
            return 0
        idx = torch.randint(0, x.shape[0], (n_dead,), generator=generator).to(x.device)
        new = x[idx]  # (n_dead, D)
        size = 1.0
        self.embed[dead] = new
        self.embed_avg[dead] = new * size
        self.cluster_size[dead] = size
        return n_dead


def _nearest(x: Tensor, centers: Tensor) -> Tensor:
    d = x.pow(2).sum(1, keepdim=True) - 2.0 * x @ centers.t() + centers.pow(2).sum(1)[None]
    return d.argmin(dim=1)


def _code_stats(counts: Tensor) -> dict[str, Tensor]:
    """counts (K,) of token assignments -> usage (fraction of codes used) and perplexity."""
    p = counts / counts.sum().clamp_min(1.0)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


# ----------------------------------------------------------------------------------------------
# Autoencoder


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _widths(cfg: VQConfig) -> list[int]:
    """Channels per resolution level, full resolution first: hidden at the token grid, halved per
    level above it, at least 16 (keeps 256 px / 16 affordable)."""
    n_down = int(math.log2(cfg.downsample))
    return [max(cfg.hidden >> (n_down - i), min(16, cfg.hidden)) for i in range(n_down + 1)]


class VQVAE(nn.Module):
    """Conv encoder -> EMA vector quantizer -> conv decoder; outputs clamped to [0, 1].

    No normalisation layers: tokens of an image do not depend on the rest of its batch.
    """

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = _widths(cfg)
        n_down = len(widths) - 1
        c_top = widths[-1]

        enc: list[nn.Module] = [nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)]
        for i in range(n_down):
            enc += [nn.ReLU(), nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)]
        enc += [ResBlock(c_top) for _ in range(cfg.n_res_blocks)]
        enc += [nn.ReLU(), nn.Conv2d(c_top, cfg.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)

        self.quantizer = EMAQuantizer(cfg)

        dec: list[nn.Module] = [nn.Conv2d(cfg.code_dim, c_top, 3, padding=1)]
        dec += [ResBlock(c_top) for _ in range(cfg.n_res_blocks)]
        for i in reversed(range(n_down)):
            dec += [nn.ReLU(), nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1)]
        dec += [nn.ReLU(), nn.Conv2d(widths[0], cfg.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @classmethod
    def from_config(cls, config: dict[str, Any] | VQConfig) -> VQVAE:
        """Rebuild a model from ``dataclasses.asdict(model.cfg)`` as stored in a model file."""
        return cls(config if isinstance(config, VQConfig) else VQConfig(**config))

    def _check_images(self, x: Tensor) -> None:
        c, s = self.cfg.in_channels, self.cfg.image_size
        if x.ndim != 4 or x.shape[1] != c or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"expected images (B, {c}, {s}, {s}), got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) in [0, 1] -> z_e (B, D, h, w), before quantization."""
        self._check_images(x)
        return self.encoder(x * 2.0 - 1.0)

    def quantize(
        self, z_e: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z_e (B, D, h, w) -> (z_q (B, D, h, w) straight-through, ids (B, h, w), stats).
        Updates the codebook (EMA, init, restarts) in training mode only."""
        return self.quantizer(z_e, generator)

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (B, D, h, w) -> x_hat (B, C, H, W) clamped to [0, 1]."""
        return self.decoder(z_q).clamp(0.0, 1.0)

    @torch.no_grad()
    def tokenize(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) in [0, 1] -> ids (B, h*w) in raster order; never updates the codebook."""
        z_e = self.encode(x)  # (B, D, h, w)
        B, D = z_e.shape[:2]
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D).float()  # (B*h*w, D)
        return self.quantizer.lookup(flat).view(B, -1)

    def embed_ids(self, ids: Tensor) -> Tensor:
        """ids (B, L) -> quantized vectors (B, L, D)."""
        if ids.ndim != 2:
            raise ValueError(f"ids must be (B, L), got {tuple(ids.shape)}")
        return F.embedding(ids, self.quantizer.embed)

    def decode_ids(self, ids: Tensor) -> Tensor:
        """ids (B, h*w) raster order -> x_hat (B, C, H, W) in [0, 1]."""
        g = self.cfg.grid_size
        if ids.ndim != 2 or ids.shape[1] != g * g:
            raise ValueError(f"ids must be (B, {g * g}), got {tuple(ids.shape)}")
        z_q = self.embed_ids(ids).view(ids.shape[0], g, g, -1).permute(0, 3, 1, 2)  # (B, D, g, g)
        return self.decode(z_q.contiguous())

    def forward(
        self,
        x: Tensor,
        target: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """x (B, C, H, W) -> (x_hat clamped to [0, 1], loss, stats).

        loss = MSE(unclamped decoder output, target or x) + commitment * commit.
        stats (detached): mse (unclamped), commit_loss, usage, perplexity, n_restarted.
        """
        z_e = self.encode(x)
        z_q, _, qstats = self.quantize(z_e, generator)
        raw = self.decoder(z_q)  # (B, C, H, W), unbounded
        # The loss sees the unclamped output: a sigmoid or clamp would stop the gradient on the
        # many pure-black MNIST pixels, and a prototype's decoder died that way (constant black).
        mse = F.mse_loss(raw, x if target is None else target)
        loss = mse + self.cfg.commitment * qstats["commit_loss"]
        stats = {k: v.detach() for k, v in qstats.items()}
        stats["mse"] = mse.detach()
        return raw.clamp(0.0, 1.0), loss, stats


# ----------------------------------------------------------------------------------------------
# Training and evaluation


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
    start = 0
    keys = ("step", "lr", "loss", "mse", "usage", "perplexity", "n_restarted")
    history: dict[str, list[float]] = {k: [] for k in keys}
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        history = {k: list(v) for k, v in state["history"].items()}

    def make_state(step: int) -> dict[str, Any]:
        return {"step": step, "optimizer": opt.state_dict(), "history": history}

    perm, perm_epoch = None, -1
    window: dict[str, float] = {k: 0.0 for k in ("loss", "mse", "usage", "perplexity")}
    window_n, window_restarts = 0, 0.0
    bar = tqdm(total=total, initial=start, disable=not progress, desc="vq", leave=False)
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
        x_hat, loss, stats = model(x_in, target=target, generator=g)
        if cfg.l1_weight > 0:
            loss = loss + cfg.l1_weight * (x_hat - (x if target is None else target)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

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
