"""Sampling from ``digit.gpt.GPT``: autoregressive decoding with a KV cache, and MaskGIT decoding.

Small pure functions beside the model (LlamaGen style):
* ``top_k_top_p_filtering`` / ``sample_logits``: the paper samples the token model with top-k (200 base,
  400 large, 300 class-conditional) and the renderer with top-p 0.8, temperature 1.0 throughout.
* ``prefill`` / ``decode_one_token`` / ``generate``: batched AR sampling of the discriminative
  tokens (token model) or of VQ tokens after a discriminative prefix (renderer, "+VQGAN").
  Classifier-free guidance is available for class-conditional models but the paper does not use
  it for DiGIT (cfg_scale=1.0 switches it off).
* ``maskgit_mask`` / ``maskgit_schedule`` / ``maskgit_generate``: the bidirectional "+MaskGIT"
  renderer's training mask and its 8-step cosine-schedule decoding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from digit.gpt import GPT
from digit.progress import progress as progress_bar


def top_k_top_p_filtering(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set logits outside the top-k / the top-p nucleus to -inf; (..., V) -> (..., V).

    top_k=0 and top_p=1.0 switch each filter off. Ties with the k-th logit are kept. The nucleus
    is the smallest set of most likely tokens whose probability reaches top_p; at least one token
    always survives (top_p <= 0 degenerates to greedy).
    """
    V = logits.size(-1)
    if top_k > 0 and top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)  # (..., V)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of all strictly better tokens
        remove_sorted = mass_before >= top_p
        remove_sorted[..., 0] = False  # keep the most likely token whatever top_p is
        remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)  # back to vocab order
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def sample_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample one token per row; logits (..., V) -> ids (...). temperature 0 = argmax.

    ``generator`` must live on the logits' device.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    shape = logits.shape[:-1]
    logits = top_k_top_p_filtering(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(dim=-1).reshape(-1, logits.size(-1))  # (N, V)
    return torch.multinomial(probs, 1, generator=generator).reshape(shape)


def cfg_combine(cond_logits: Tensor, uncond_logits: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: uncond + scale * (cond - uncond); scale 1 gives cond."""
    return uncond_logits + scale * (cond_logits - uncond_logits)


def _guide(logits: Tensor, guided: bool, cfg_scale: float) -> Tensor:
    # logits: (2b, V) with the conditional half first when guided, else (b, V)
    if not guided:
        return logits
    cond_logits, uncond_logits = logits.chunk(2, dim=0)
    return cfg_combine(cond_logits, uncond_logits, cfg_scale)  # (b, V)


def prefill(model: GPT, batch: int, cond: Tensor | None, prefix: Tensor | None) -> Tensor:
    """Write [prefix] + [start] into the cache; logits (batch, V) for target token 0."""
    idx = torch.zeros(batch, 0, dtype=torch.long, device=model.wpe.device)
    return model.forward_cached(idx, 0, cond=cond, prefix=prefix)[:, -1]


def decode_one_token(model: GPT, token: Tensor, i: int) -> Tensor:
    """Feed target token i, (B,) ids; logits (B, V) for target token i + 1."""
    return model.forward_cached(token[:, None], i + 1)[:, -1]


@torch.no_grad()
def generate(
    model: GPT,
    n: int,
    cond: Tensor | None = None,
    prefix: Tensor | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    cfg_scale: float = 1.0,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> Tensor:
    """Sample n target sequences from a causal GPT; returns (n, block_size) token ids.

    cond: (n,) class ids for a class-conditional model. prefix: (n, prefix_len) for a renderer
    model. cfg_scale != 1 runs each batch twice as large (conditional rows, then NULL-class rows)
    and mixes the logits. use_cache=False recomputes the whole sequence at every step (the
    reference for the KV cache and the benchmark baseline); both give the same tokens up to float
    rounding. The result is deterministic for a seeded ``generator`` and a fixed batch_size.
    """
    cfg = model.config
    if not cfg.causal:
        raise ValueError("generate is for causal models; use maskgit_generate")
    guided = cfg_scale != 1.0
    if guided and cfg.n_classes == 0:
        raise ValueError("classifier-free guidance needs a class-conditional model")
    device = model.wpe.device
    was_training = model.training
    model.eval()
    if use_cache:
        rows = min(batch_size, n) * (2 if guided else 1)
        model.setup_cache(rows, dtype=model.wpe.dtype, device=device)
    out = []
    bar = progress_bar(total=n, desc="sampling", unit="sample", disable=not progress)
    try:
        for s in range(0, n, batch_size):
            b = min(batch_size, n - s)
            c = None if cond is None else cond[s : s + b].to(device)  # (b,)
            p = None if prefix is None else prefix[s : s + b].to(device)  # (b, P)
            if guided:
                c = torch.cat([c, torch.full_like(c, cfg.null_class)])  # (2b,)
                p = None if p is None else torch.cat([p, p])  # (2b, P)
            rows = 2 * b if guided else b
            tokens = torch.zeros(b, cfg.block_size, dtype=torch.long, device=device)
            if use_cache:
                logits = prefill(model, rows, c, p)  # (rows, V)
            for i in range(cfg.block_size):
                if not use_cache:
                    ctx = tokens[:, :i]  # (b, i)
                    ctx = torch.cat([ctx, ctx]) if guided else ctx  # (rows, i)
                    logits = model(ctx, cond=c, prefix=p)[0][:, -1]  # (rows, V)
                logits = _guide(logits, guided, cfg_scale)  # (b, V)
                nxt = sample_logits(logits, temperature, top_k, top_p, generator)  # (b,)
                tokens[:, i] = nxt
                if use_cache and i + 1 < cfg.block_size:
                    fed = torch.cat([nxt, nxt]) if guided else nxt  # (rows,)
                    logits = decode_one_token(model, fed, i)  # (rows, V)
            out.append(tokens)
            bar.update(b)
    finally:
        bar.close()
        if use_cache:
            model.clear_cache()
        model.train(was_training)
    return torch.cat(out)


def maskgit_schedule(T: int, steps: int) -> list[int]:
    """Number of still-masked target positions after each of ``steps`` MaskGIT iterations.

    Cosine schedule: after step t (0-based) floor(T * cos(pi/2 * (t+1)/steps)) stay masked; the
    last step leaves none.
    """
    return [int(math.floor(T * math.cos(math.pi / 2 * (t + 1) / steps))) for t in range(steps)]


def maskgit_mask(
    tokens: Tensor, mask_id: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """MaskGIT training input: (B, T) tokens -> (masked input (B, T), loss_mask (B, T) bool).

    Per sequence r ~ U(0, 1) and ceil(T * cos(pi/2 * r)) random positions are replaced by
    ``mask_id`` (at least one, so every sequence has a loss term). Pass loss_mask to
    ``GPT.forward`` so the loss covers the masked positions only, as in MaskGIT.
    """
    B, T = tokens.shape
    r = torch.rand(B, generator=generator, device=tokens.device)  # (B,)
    n_mask = torch.ceil(T * torch.cos(math.pi / 2 * r)).clamp(1, T).long()  # (B,)
    noise = torch.rand(B, T, generator=generator, device=tokens.device)
    rank = noise.argsort(dim=1).argsort(dim=1)  # (B, T) random permutation ranks
    loss_mask = rank < n_mask[:, None]  # (B, T)
    return tokens.masked_fill(loss_mask, mask_id), loss_mask


@torch.no_grad()
def maskgit_generate(
    model: GPT,
    prefix: Tensor | None = None,
    steps: int = 8,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    cond: Tensor | None = None,
    n: int | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    choice_temperature: float = 4.5,
    batch_size: int = 64,
    progress: bool = False,
) -> Tensor:
    """MaskGIT decoding with a bidirectional GPT; returns (n, block_size) ids, no MASK left.

    Every step predicts all positions, samples the masked ones (temperature / top_k / top_p),
    and re-masks the least confident new tokens so that ``maskgit_schedule`` positions stay
    masked. Confidence is the sampled token's log-probability plus Gumbel noise scaled by
    choice_temperature * (1 - (t+1)/steps), annealed to 0 as in MaskGIT (4.5 is its default);
    tokens already fixed are never re-masked. prefix: (n, P); n is needed only without prefix.
    """
    cfg = model.config
    if cfg.causal:
        raise ValueError("maskgit_generate needs a bidirectional model (causal=False)")
    if n is None:
        for x in (prefix, cond):
            if x is not None:
                n = x.size(0)
                break
        else:
            raise ValueError("pass n when there is neither prefix nor cond")
    device = model.wpe.device
    T = cfg.block_size
    schedule = maskgit_schedule(T, steps)
    was_training = model.training
    model.eval()
    out = []
    bar = progress_bar(total=n, desc="maskgit", unit="sample", disable=not progress)
    try:
        for s in range(0, n, batch_size):
            b = min(batch_size, n - s)
            c = None if cond is None else cond[s : s + b].to(device)
            p = None if prefix is None else prefix[s : s + b].to(device)
            tokens = torch.full((b, T), cfg.mask_id, dtype=torch.long, device=device)
            for t in range(steps):
                unknown = tokens == cfg.mask_id  # (b, T)
                logits = model(tokens, cond=c, prefix=p)[0].float()  # (b, T, V)
                sampled = sample_logits(logits, temperature, top_k, top_p, generator)  # (b, T)
                sampled = torch.where(unknown, sampled, tokens)
                logp = logits.log_softmax(dim=-1).gather(-1, sampled[..., None])[..., 0]
                u = torch.rand(b, T, generator=generator, device=device).clamp(1e-20, 1 - 1e-7)
                gumbel = -torch.log(-torch.log(u))
                conf = logp + choice_temperature * (1 - (t + 1) / steps) * gumbel  # (b, T)
                conf = conf.masked_fill(~unknown, float("inf"))
                n_mask = schedule[t]
                remask = torch.zeros_like(unknown)
                if n_mask > 0:
                    lowest = conf.argsort(dim=1)[:, :n_mask]  # (b, n_mask)
                    remask.scatter_(1, lowest, True)
                tokens = sampled.masked_fill(remask, cfg.mask_id)
            out.append(tokens)
            bar.update(b)
    finally:
        bar.close()
        model.train(was_training)
    return torch.cat(out)
