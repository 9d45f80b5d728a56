"""Item 8: the paper-scale AR models on paper -- parameters, FLOPs, memory, time per epoch on an H100.

Pure arithmetic over ``digit.gpt.GPT_SIZES`` (base 219M, large 732M; 256 tokens; ImageNet-1k train),
so it runs anywhere; the parameter count is also read off the real module on the meta device so the
formula cannot drift from the model. Conventions, stated once because every number depends on them:

* FLOPs per trained token = 6 N_matmul + 12 L d T (PaLM, appendix B): N_matmul counts the weights
  used in matrix products (blocks + untied head; embedding and position tables are lookups), and
  12 L d T is QK^T and AV over the T-token sequence, forward + backward, without discounting the
  causal mask (the MFU convention; a causal kernel does about half of that term).
* Memory = weights + grads + AdamW states under autocast mixed precision (fp32 master weights,
  fp32 grads, two fp32 moments: 16 bytes / parameter) + activations at a stated micro-batch: 34 T b d
  bytes per layer (Korthikanti et al. 2022 with bf16 activations; the 5 a T^2 b attention-score
  term is gone with flash / SDPA attention) + 10 bytes per logit (bf16 logits, fp32 loss, fp32 grad).
* Time per epoch = tokens per epoch x FLOPs per token / (peak x MFU), H100 SXM bf16 dense peak
  989 TFLOP/s and an assumed MFU range; the CPU cross-check applies the utilisation the CPU reaches
  on the default model (measured, relative to its own matmul peak) to the H100's peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from digit.gpt import GPT_SIZES, build_gpt, count_params

IMAGENET_TRAIN = 1_281_167
H100_BF16_PEAK = 989e12  # dense, SXM
MFU_RANGE = (0.35, 0.45)
PAPER = {"base": {"vocab_size": 8192}, "large": {"vocab_size": 16384}}


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    ffn: int
    vocab_size: int
    seq_len: int  # T: [bos] + tokens[:-1] -> one logit row per target token
    n_classes: int = 0

    @classmethod
    def of(cls, size: str, n_classes: int = 0, **overrides) -> Shape:
        cfg = {**GPT_SIZES[size], **overrides}
        return cls(
            n_layer=cfg["n_layer"],
            n_embd=cfg["n_embd"],
            ffn=cfg.get("ffn") or 4 * cfg["n_embd"],
            vocab_size=cfg["vocab_size"],
            seq_len=cfg["block_size"],
            n_classes=n_classes,
        )


def block_params(s: Shape) -> int:
    d = s.n_embd
    attn = d * 3 * d + 3 * d + d * d + d
    mlp = d * s.ffn + s.ffn + s.ffn * d + d
    return attn + mlp + 4 * d  # + two LayerNorms


def matmul_params(s: Shape) -> int:
    """Weights that take part in matrix products: the blocks and the (untied) head."""
    return s.n_layer * block_params(s) + s.n_embd * s.vocab_size


def total_params(s: Shape) -> int:
    d = s.n_embd
    start = (s.n_classes + 1) * d if s.n_classes else d  # class table (+ NULL) or bos
    tables = s.vocab_size * d + (s.seq_len + 1) * d + start
    return matmul_params(s) + tables + 2 * d  # + final LayerNorm


def module_params(size: str, **overrides) -> int:
    """The count of the real digit.gpt module, built without allocating (meta device)."""
    with torch.device("meta"):
        return count_params(build_gpt(size, **overrides))


def train_flops_per_token(s: Shape) -> float:
    return 6.0 * matmul_params(s) + 12.0 * s.n_layer * s.n_embd * s.seq_len


def memory_bytes(s: Shape, micro_batch: int) -> dict[str, float]:
    states = 16.0 * total_params(s)
    acts = 34.0 * s.seq_len * micro_batch * s.n_embd * s.n_layer
    logits = 10.0 * s.seq_len * micro_batch * s.vocab_size
    return {"states": states, "activations": acts + logits, "total": states + acts + logits}


def epoch_seconds(flops_per_token: float, tokens: float, flops_per_second: float) -> float:
    return flops_per_token * tokens / flops_per_second


def paper_rows(micro_batch: int, cpu_utilisation: float | None = None) -> list[dict]:
    """One row per paper model (unconditional and class-conditional counts)."""
    rows = []
    for size, over in PAPER.items():
        s = Shape.of(size, **over)
        real = module_params(size, **over)
        if real != total_params(s):  # the formula must describe the module that trains
            raise AssertionError(f"{size}: formula {total_params(s)} != module {real} params")
        tokens = IMAGENET_TRAIN * s.seq_len
        fpt = train_flops_per_token(s)
        mem = memory_bytes(s, micro_batch)
        lo, hi = (epoch_seconds(fpt, tokens, H100_BF16_PEAK * m) for m in reversed(MFU_RANGE))
        row = {
            "model": f"{size} (L{s.n_layer} d{s.n_embd}, K={s.vocab_size})",
            "params": f"{real / 1e6:.1f}M ({module_params(size, n_classes=1000, **over) / 1e6:.1f}M cond.)",
            "matmul params": f"{matmul_params(s) / 1e6:.1f}M",
            "train GFLOP / token": f"{fpt / 1e9:.2f}",
            "PFLOP / epoch": f"{fpt * tokens / 1e15:,.0f}",
            "states GiB": f"{mem['states'] / 2**30:.1f}",
            f"activations GiB (b={micro_batch})": f"{mem['activations'] / 2**30:.1f}",
            "total GiB": f"{mem['total'] / 2**30:.1f}",
            f"H100 h / epoch (MFU {MFU_RANGE[1]:.0%}-{MFU_RANGE[0]:.0%})": f"{lo / 3600:.2f}-{hi / 3600:.2f}",
        }
        if cpu_utilisation:
            at_cpu_util = epoch_seconds(fpt, tokens, H100_BF16_PEAK * cpu_utilisation)
            row[f"H100 h / epoch at CPU utilisation {cpu_utilisation:.0%}"] = (
                f"{at_cpu_util / 3600:.1f}"
            )
        rows.append(row)
    return rows


def cpu_matmul_flops(n: int = 1024, repeat: int = 10) -> float:
    """The CPU's practical fp32 peak: best of ``repeat`` n x n x n matrix products."""
    import time

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def run(opts):
    from benchmarks.common import Section
    from benchmarks.training import throughput

    micro_batch = 32
    peak = cpu_matmul_flops()
    r = throughput(compiled=False, bf16=False, steps=5 if opts.quick else 20)
    c = r["model"].config
    small = Shape(c.n_layer, c.n_embd, c.ffn, c.vocab_size, c.block_size)
    achieved = r["tokens / s"] * train_flops_per_token(small)
    util = achieved / peak
    return Section(
        key="paper",
        title="8. Paper scale on paper: parameters, FLOPs, memory, H100 time per epoch",
        rows=paper_rows(micro_batch, cpu_utilisation=util),
        notes=[
            f"Parameters: every parameter of digit.gpt (untied head, positions, bos; the module is "
            f"built on the meta device and must equal the formula). ImageNet-1k train "
            f"{IMAGENET_TRAIN:,} images x 256 tokens per epoch. FLOPs per token = 6 N_matmul + "
            "12 L d T (PaLM's convention, attention without the causal discount). Memory: 16 "
            "bytes / parameter (fp32 weights, grads, two AdamW moments; bf16 autocast), "
            f"activations at micro-batch {micro_batch} (34 T b d bytes per layer with flash "
            "attention, 10 bytes per logit).",
            f"Assumptions: H100 SXM bf16 dense peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s, MFU "
            f"{MFU_RANGE[0]:.0%}-{MFU_RANGE[1]:.0%}. CPU cross-check, measured in this run: the "
            f"default `ar` model trains at {r['tokens / s']:,.0f} tokens/s = "
            f"{achieved / 1e9:.2f} GFLOP/s, {util:.0%} of this CPU's fp32 matmul peak "
            f"({peak / 1e9:.0f} GFLOP/s, 1024^3 products); the last column assumes the H100 "
            "reaches that same fraction of its peak (a pessimistic bound: a model this small is "
            "dominated by overheads that a 219M model amortises).",
            f"Per epoch on this CPU at the measured {achieved / 1e9:.2f} GFLOP/s: base "
            f"{train_flops_per_token(Shape.of('base', **PAPER['base'])) * IMAGENET_TRAIN * 256 / achieved / 86400 / 365:.1f}"
            " years, which is why the paper-scale preset is for GPUs.",
            *gpu_check(opts),
        ],
    )


def gpu_check(opts) -> list[str]:
    """The estimate against the H100 measurement of item 9, when there is one."""
    import json
    from pathlib import Path

    path = Path(getattr(opts, "gpu_json", "") or "")
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    best = {}
    for t in r["train"]:
        if t["tokens_per_s"] > best.get(t["model"], {}).get("tokens_per_s", 0):
            best[t["model"]] = t
    parts = [
        f"{m} {t['epoch_h']:.2f} h ({t['mode']}, MFU {t['mfu_vs_989']:.0%})"
        for m, t in best.items()
    ]
    return [
        f"Measured on one {r['device']} (item 9), time per epoch: {'; '.join(parts)}: inside "
        "the assumed MFU range; the CPU-utilisation bound is the pessimistic side."
    ]
