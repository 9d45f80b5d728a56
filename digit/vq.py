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
- The training loop and its metrics (``train_vq``, ``evaluate_vq``) live in ``digit.vq_train``: a
  stage that only decodes tokens imports the model alone.

Randomness is explicit: the quantizer's data-dependent initialisation and restarts draw from a
``torch.Generator`` passed to ``forward`` (the global RNG if none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        with torch.autocast(x.device.type, enabled=False):  # distances and EMA in float32
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
