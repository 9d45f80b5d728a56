"""The transformer over discriminative tokens (DiGIT's token model, the paper's stage 1) and the renderer (stage 2).

One nanoGPT-style decoder (pre-LayerNorm blocks, GELU MLP, learned absolute positions) serves
every model of the paper; the config picks the use:

* unconditional (token model):     sequence = [bos] + tokens, causal.
* class-conditional (token model): sequence = [class] + tokens, causal; the class embedding replaces
  bos, and its last row (index ``n_classes``) is the NULL class, used for label dropout in training
  and for classifier-free guidance at sampling time.
* prefix-conditional (renderer, "+VQGAN"): sequence = [prefix] + [bos] + VQ tokens, causal; the
  prefix (the 256 discriminative tokens) has its own embedding table and its own positions, and
  logits / loss cover only the target (VQ) part.
* prefix-conditional, bidirectional (renderer, "+MaskGIT", ``causal=False``): sequence =
  [prefix] + [bos] + target tokens in which masked positions hold ``MASK = vocab_size``; one
  logit row per target position.

How a renderer reads its prefix is ``prefix_mode``:

* ``sequence`` (the paper's form): the prefix tokens come first in the sequence, as above.
* ``aligned``: no prefix in the sequence; the row that predicts target token i gets the embedding
  of the prefix token at the same place of the image grid added to its input (both token grids
  cover the image; when their sides differ, the nearest prefix cell is used). Half the sequence,
  and each output position reads its own token directly.
* ``both``: the prefix in the sequence and the aligned embedding.

``align_kernel`` k > 1 (aligned / both): the aligned embedding of a prefix cell also sees its k x k
neighbourhood, a convolution over the grid of prefix embeddings added to the cell's own (k = 1: the
cell alone). A digit's stroke is rarely inside one cell; on the embedded default k = 5 lifts the
rendered-label top-1 of ground-truth tokens from 0.85 to 0.90 (three seeds, same CPU time).

The model owns its KV cache (LlamaGen style) so that ``digit.generate`` can prefill the
conditioning once and then decode one token at a time. Sizes are named in ``GPT_SIZES``
(``digit.registry``); "base" and "large" reproduce the paper's 219M / 732M parameter counts (see
the note above GPT_SIZES there).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from digit.registry import GPT_SIZES, PREFIX_MODES


def grid_alignment(prefix_len: int, target_len: int) -> Tensor:
    """For each target position, the prefix position covering the same place of the image, (L,).

    Both token sets are square grids in raster order over the whole image; equal sides map one to
    one, otherwise each target cell takes the prefix cell its centre falls in.
    """
    sides = [math.isqrt(n) for n in (prefix_len, target_len)]
    if any(s * s != n for s, n in zip(sides, (prefix_len, target_len), strict=True)):
        raise ValueError(
            f"aligned prefix needs square token grids, got {prefix_len} prefix and "
            f"{target_len} target tokens"
        )
    sp, st = sides
    centre = (torch.arange(st, dtype=torch.float64) + 0.5) * sp / st
    cell = centre.floor().long().clamp(max=sp - 1)  # (st,)
    return (cell[:, None] * sp + cell[None, :]).reshape(-1)  # (L,)


@dataclass
class GPTConfig:
    vocab_size: (
        int  # target-token vocabulary (K for the token model, VQ codebook size for the renderer)
    )
    block_size: int  # number of target tokens per sample (e.g. 49 or 256)
    n_layer: int
    n_head: int
    n_embd: int
    ffn: int | None = None  # MLP hidden size; None -> 4 * n_embd (resolved in __post_init__)
    dropout: float = 0.0
    n_classes: int = 0  # 0 = no class conditioning; else n_classes + 1 rows (last = NULL)
    prefix_vocab_size: int = 0  # renderer: vocabulary of the prefix (discriminative) tokens
    prefix_len: int = 0  # renderer: number of prefix tokens
    prefix_mode: str = "sequence"  # renderer: sequence (paper) | aligned | both (module doc)
    align_kernel: int = 1  # aligned / both: k x k neighbourhood of each prefix cell (module doc)
    causal: bool = True  # False = bidirectional MaskGIT renderer
    bias: bool = True

    def __post_init__(self) -> None:
        if self.ffn is None:
            self.ffn = 4 * self.n_embd
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if (self.prefix_len > 0) != (self.prefix_vocab_size > 0):
            raise ValueError("prefix_len and prefix_vocab_size must be both 0 or both > 0")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "ffn"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.prefix_mode not in PREFIX_MODES:
            raise ValueError(f"prefix_mode must be one of {PREFIX_MODES}, got {self.prefix_mode!r}")
        if self.align_kernel < 1 or self.align_kernel % 2 == 0:
            raise ValueError(f"align_kernel must be odd and >= 1, got {self.align_kernel}")

    @property
    def seq_prefix_len(self) -> int:
        """Prefix tokens placed in the sequence (0 for the aligned renderer and prefix-free models)."""
        return 0 if self.prefix_mode == "aligned" else self.prefix_len

    @property
    def aligned(self) -> bool:
        return self.prefix_len > 0 and self.prefix_mode != "sequence"

    @property
    def mask_id(self) -> int:
        """Token id of MASK in the bidirectional model (one past the real vocabulary)."""
        return self.vocab_size

    @property
    def null_class(self) -> int:
        """Class id of the NULL (unconditional) class embedding."""
        return self.n_classes


class KVCache(nn.Module):
    """Keys and values of one attention layer for positions written so far."""

    def __init__(
        self, batch_size: int, n_head: int, max_len: int, head_dim: int, dtype, device
    ) -> None:
        super().__init__()
        shape = (batch_size, n_head, max_len, head_dim)
        # Buffers (not parameters), non-persistent: the cache never goes into a checkpoint.
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # input_pos: (T,) absolute sequence positions; k, v: (B, nh, T, hs)
        B = k.size(0)
        end = int(input_pos[-1]) + 1
        self.k[:B, :, input_pos] = k.to(self.k.dtype)
        self.v[:B, :, input_pos] = v.to(self.v.dtype)
        # Only the filled part is returned so that attention does not scan the empty tail.
        return self.k[:B, :, :end], self.v[:B, :, :end]  # (B, nh, end, hs)


class SelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.causal = config.causal
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.kv_cache: KVCache | None = None

    def forward(self, x: Tensor, input_pos: Tensor | None = None) -> Tensor:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout if self.training else 0.0
        if input_pos is not None:
            if self.kv_cache is None:
                raise RuntimeError("input_pos given but no cache: call model.setup_cache first")
            k, v = self.kv_cache.update(input_pos, k, v)  # (B, nh, end, hs)
            k, v = k.to(q.dtype), v.to(q.dtype)  # the cache may be kept in another dtype
            # Query at absolute position p sees keys at positions <= p.
            key_pos = torch.arange(k.size(2), device=x.device)
            mask = key_pos[None, :] <= input_pos[:, None]  # (T, end)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.ffn, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(config.ffn, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, input_pos: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), input_pos)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder over target tokens, optionally conditioned on a class and / or a token prefix.

    Sequence layout (T_total = P + 1 + t):
        [prefix (P = prefix_len, 0 if none)] + [start] + [idx (t tokens)]
    where start is the class embedding of ``cond`` if ``n_classes > 0`` and a learned bos vector
    otherwise. Prefix and target parts have their own position tables; start is target position 0.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        # The bidirectional renderer needs one extra row for MASK (id = vocab_size).
        n_tok = config.vocab_size + (0 if config.causal else 1)
        self.wte = nn.Embedding(n_tok, C)
        # block_size + 1 positions: start at 0, target token i at i + 1.
        self.wpe = nn.Parameter(torch.zeros(config.block_size + 1, C))
        if config.n_classes > 0:
            self.class_emb = nn.Embedding(config.n_classes + 1, C)  # last row = NULL class
        else:
            self.bos = nn.Parameter(torch.zeros(1, 1, C))
        if config.seq_prefix_len > 0:
            self.prefix_wte = nn.Embedding(config.prefix_vocab_size, C)
            self.prefix_wpe = nn.Parameter(torch.zeros(config.prefix_len, C))
        if config.aligned:
            self.align_wte = nn.Embedding(config.prefix_vocab_size, C)
            if config.align_kernel > 1:
                k = config.align_kernel
                self.align_conv = nn.Conv2d(C, C, k, padding=k // 2)
            index = grid_alignment(config.prefix_len, config.block_size)
            self.register_buffer("align_index", index, persistent=False)
        self._aligned_prefix: Tensor | None = None  # set by the cached prefill, (B, L + 1, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(C, bias=config.bias)
        # Untied head: the paper's 219M / 732M counts only come out with separate input and output
        # embeddings (tied would give 210M / 705M), and the MASK row has no output anyway.
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for p in (self.wpe, getattr(self, "bos", None), getattr(self, "prefix_wpe", None)):
            if p is not None:
                nn.init.normal_(p, mean=0.0, std=0.02)
        # GPT-2: scale residual projections so the residual stream variance does not grow
        # with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @classmethod
    def from_config(cls, config: dict[str, Any] | GPTConfig) -> GPT:
        """Rebuild a model from ``dataclasses.asdict(model.config)`` as stored in a checkpoint."""
        if isinstance(config, GPTConfig):
            return cls(config)
        return cls(GPTConfig(**config))

    # ----------------------------------------------------------------------------- embedding

    def _start(self, B: int, cond: Tensor | None, device) -> Tensor:
        """Embedding of the start token, (B, 1, C)."""
        if self.config.n_classes > 0:
            if cond is None:
                raise ValueError("class-conditional model: pass cond (B,) class ids")
            if cond.shape != (B,):
                raise ValueError(f"cond must have shape ({B},), got {tuple(cond.shape)}")
            return self.class_emb(cond.to(device))[:, None, :]  # (B, 1, C)
        if cond is not None:
            raise ValueError("unconditional model (n_classes=0) got a cond")
        return self.bos.expand(B, 1, -1)  # (B, 1, C)

    def _check_prefix(self, B: int, prefix: Tensor | None) -> None:
        P = self.config.prefix_len
        if P == 0:
            if prefix is not None:
                raise ValueError("model has no prefix (prefix_len=0) but got one")
            return
        if prefix is None or prefix.shape != (B, P):
            got = None if prefix is None else tuple(prefix.shape)
            raise ValueError(f"prefix must have shape ({B}, {P}), got {got}")

    def _aligned(self, prefix: Tensor) -> Tensor:
        """Per target position, the embedding of the prefix token at its place, plus a zero row
        for the position after the last target token: (B, L + 1, C)."""
        e = self.align_wte(prefix)  # (B, P, C)
        if self.config.align_kernel > 1:  # + the k x k neighbourhood on the prefix grid
            B, P, C = e.shape
            side = math.isqrt(P)
            grid = e.transpose(1, 2).reshape(B, C, side, side)
            e = e + self.align_conv(grid).reshape(B, C, P).transpose(1, 2)
        return F.pad(e[:, self.align_index], (0, 0, 0, 1))  # (B, L + 1, C)

    def _embed(self, idx: Tensor, cond: Tensor | None, prefix: Tensor | None) -> Tensor:
        """Full input sequence [prefix] + [start] + idx, (B, P_seq + 1 + t, C)."""
        B, t = idx.shape
        cfg = self.config
        if t > cfg.block_size:
            raise ValueError(f"idx has {t} tokens, block_size is {cfg.block_size}")
        self._check_prefix(B, prefix)
        x = torch.cat([self._start(B, cond, idx.device), self.wte(idx)], dim=1)  # (B, 1+t, C)
        x = x + self.wpe[: t + 1]
        if cfg.aligned:
            a = self._aligned(prefix)  # (B, L+1, C)
            if cfg.causal:  # row j (start = 0) predicts target token j
                x = x + a[:, : t + 1]
            else:  # row 1 + i holds target token i (or MASK)
                x = torch.cat([x[:, :1], x[:, 1:] + a[:, :t]], dim=1)
        if cfg.seq_prefix_len > 0:
            pre = self.prefix_wte(prefix) + self.prefix_wpe  # (B, P, C)
            x = torch.cat([pre, x], dim=1)  # (B, P+1+t, C)
        return self.drop(x)

    # ------------------------------------------------------------------------------ forward

    def forward(
        self,
        idx: Tensor,
        cond: Tensor | None = None,
        prefix: Tensor | None = None,
        targets: Tensor | None = None,
        label_smoothing: float = 0.0,
        loss_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits over the target positions and, when ``targets`` is given, the loss.

        idx:
            causal model: (B, t) target tokens fed after the start token, 0 <= t <= block_size.
            The returned logits are (B, t + 1, vocab): row i predicts target token i from
            start + idx[:, :i]. Training: ``model(tokens[:, :-1], targets=tokens)``.
            bidirectional model: (B, T) target tokens with MASK (= vocab_size) at masked
            positions; logits are (B, T, vocab), row i predicts token i.
        cond: (B,) class ids in [0, n_classes]; n_classes is the NULL class. Required iff
            n_classes > 0.
        prefix: (B, prefix_len) prefix token ids. Required iff prefix_len > 0.
        targets: same shape as the logits' first two dims, token ids.
        loss_mask: optional (B, T) bool; the loss averages only over True positions (MaskGIT:
            the masked positions). None averages over all positions.
        """
        x = self._embed(idx, cond, prefix)
        for block in self.blocks:
            x = block(x)
        logits = self._logits(x)
        loss = None
        if targets is not None:
            if targets.shape != logits.shape[:2]:
                raise ValueError(
                    f"targets shape {tuple(targets.shape)} != logits shape "
                    f"{tuple(logits.shape[:2])} (causal: pass idx=tokens[:, :-1], targets=tokens)"
                )
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(),
                targets.reshape(-1),
                label_smoothing=label_smoothing,
                reduction="none",
            )  # (B*T,)
            if loss_mask is None:
                loss = loss.mean()
            else:
                m = loss_mask.reshape(-1).to(loss.dtype)
                loss = (loss * m).sum() / m.sum().clamp(min=1.0)
        return logits, loss

    def _logits(self, x: Tensor) -> Tensor:
        # x: (B, P + 1 + t, C) -> logits over the target part only
        skip = self.config.seq_prefix_len + (0 if self.config.causal else 1)
        return self.lm_head(self.ln_f(x[:, skip:]))  # (B, t+1 or T, vocab)

    def hidden_states(
        self,
        idx: Tensor,
        cond: Tensor | None = None,
        prefix: Tensor | None = None,
        with_input: bool = False,
    ) -> list[Tensor]:
        """Output of every block, n_layer tensors of shape (B, P + 1 + t, C) (before ln_f); with
        ``with_input`` the input embedding (token + position, "layer 0") comes first.

        Same inputs as ``forward``; positions are laid out as [prefix] + [start] + idx, so the
        target-token states are ``h[:, config.seq_prefix_len + 1:]`` (for the per-layer probe).
        """
        x = self._embed(idx, cond, prefix)
        out = [x] if with_input else []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    # ------------------------------------------------------------------------------ KV cache

    def setup_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Allocate a KV cache for up to ``batch_size`` sequences of ``max_len`` positions.

        max_len counts the whole sequence (prefix + start + tokens); the default is all of it.
        Later calls may use any batch size up to ``batch_size``.
        """
        if not self.config.causal:
            raise RuntimeError("the KV cache is for causal models only")
        cfg = self.config
        max_len = max_len or cfg.seq_prefix_len + 1 + cfg.block_size
        ref = self.wpe
        dtype = dtype or ref.dtype
        device = device or ref.device
        hs = cfg.n_embd // cfg.n_head
        for block in self.blocks:
            block.attn.kv_cache = KVCache(batch_size, cfg.n_head, max_len, hs, dtype, device)

    def clear_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None
        self._aligned_prefix = None

    def forward_cached(
        self,
        idx: Tensor,
        input_pos: int,
        cond: Tensor | None = None,
        prefix: Tensor | None = None,
    ) -> Tensor:
        """Run new elements through the KV cache; returns logits (B, n_new, vocab).

        input_pos counts target positions as the position table does: start = 0, target token
        i = i + 1. Row j of the logits predicts the token after new element j.
            input_pos == 0, the prefill: writes [prefix] + [start] + idx, with cond / prefix as
            in ``forward`` and idx (B, t) the first t target tokens (usually t = 0); logits have
            t + 1 rows.
            input_pos >= 1, a decode step: idx (B, t) are target tokens input_pos - 1 ..
            input_pos + t - 2; logits have t rows.
        """
        if self.blocks[0].attn.kv_cache is None:
            raise RuntimeError("call setup_cache before forward_cached")
        P = self.config.seq_prefix_len
        if input_pos == 0:
            x = self._embed(idx, cond, prefix)  # (B, P+1+t, C)
            seq_pos = torch.arange(x.size(1), device=x.device)
            if self.config.aligned:
                self._aligned_prefix = self._aligned(prefix)  # read again by the decode steps
        else:
            if cond is not None or prefix is not None:
                raise ValueError("decode steps take idx only; cond / prefix go into the prefill")
            t = idx.size(1)
            if input_pos + t - 1 > self.config.block_size:
                raise ValueError("decoding past block_size")
            tgt_pos = torch.arange(input_pos, input_pos + t, device=idx.device)
            x = self.wte(idx) + self.wpe[tgt_pos]  # (B, t, C)
            if self.config.aligned:
                x = x + self._aligned_prefix[: x.size(0), tgt_pos]
            x = self.drop(x)
            seq_pos = tgt_pos + P
        for block in self.blocks:
            x = block(x, seq_pos)
        if input_pos == 0:
            x = x[:, P:]  # (B, 1+t, C): the start row and the idx rows
        return self.lm_head(self.ln_f(x))  # (B, n_new, vocab)


def count_params(model: nn.Module) -> int:
    """All parameters, embeddings included (the convention that reproduces the paper's counts)."""
    return sum(p.numel() for p in model.parameters())


def build_gpt(size: str, **overrides: Any) -> GPT:
    """Build a registered size; ``overrides`` replace any GPTConfig field (vocab_size=K, ...)."""
    if size not in GPT_SIZES:
        raise KeyError(f"unknown GPT size {size!r}; known: {sorted(GPT_SIZES)}")
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown GPTConfig field(s) {unknown}; known: {sorted(fields)}")
    return GPT(GPTConfig(**{**GPT_SIZES[size], **overrides}))
