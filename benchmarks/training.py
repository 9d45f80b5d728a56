"""Item 6: training throughput of the default AR model on the CPU: eager fp32 vs torch.compile vs
bf16 autocast (and both), each step exactly the pipeline's (pipeline.train: the next-token
Objective with label smoothing, AdamW with its two parameter groups, gradient clipping).

The warm-up steps (where torch.compile compiles) are timed apart from the steady state; tokens / s
counts the target tokens of the timed steps. The baseline is eager fp32, what ``ar`` runs today.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import ROOT, Section
from digit.encoders import build_encoder
from digit.seeding import seeded_generator
from pipeline.checks import load
from pipeline.stages.ssl import encoder_kwargs
from pipeline.train import Objective, build_model

VARIANTS = {
    "eager fp32": (False, False),
    "torch.compile": (True, False),
    "bf16 autocast": (False, True),
    "torch.compile + bf16": (True, True),
}


def default_model():
    """The ``ar`` model of params.yaml over the main codebook's tokens (the encoder's grid)."""
    params = load(ROOT / "params.yaml")
    n_tokens = build_encoder(params.encoder.name, **encoder_kwargs(params)).n_tokens
    torch.manual_seed(params.seed)
    model = build_model(params.ar, vocab_size=params.kmeans.main_k, block_size=n_tokens)
    return model, params


def throughput(
    compiled: bool, bf16: bool, steps: int, warmup: int = 3, budget_s: float = 60.0
) -> dict:
    """Seconds of the warm-up and tokens / s of the timed training steps."""
    model, params = default_model()
    ar = params.ar
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ar.weight_decay}, {"params": no_decay}],
        lr=ar.lr,
        betas=tuple(ar.betas),
    )
    fwd = torch.compile(model) if compiled else model
    objective = Objective()
    g = seeded_generator(params.seed, 0)
    batch = {
        "tokens": torch.randint(
            0, model.config.vocab_size, (ar.batch_size, model.config.block_size), generator=g
        )
    }

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = objective.loss(fwd, batch, g, ar.label_smoothing, train=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), ar.grad_clip)
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    t1 = time.perf_counter()
    done = 0
    # At most ``steps`` steps or ~budget_s seconds: a slow variant (bf16 emulated on a CPU
    # without bf16 units) must not hold up the whole run.
    while done < steps and (done < 3 or time.perf_counter() - t1 < budget_s):
        step()
        done += 1
    t2 = time.perf_counter()
    tokens = done * ar.batch_size * model.config.block_size
    return {"warm-up s": t1 - t0, "tokens / s": tokens / (t2 - t1), "steps": done, "model": model}


def run(opts) -> Section:
    steps = 10 if opts.quick else 40
    rows, base = [], None
    for name, (compiled, bf16) in VARIANTS.items():
        r = throughput(compiled, bf16, steps)
        base = base or r["tokens / s"]
        rows.append({"variant": name, "warm-up s (3 steps)": r["warm-up s"], "timed steps": r["steps"],
                     "tokens / s": r["tokens / s"], "vs eager fp32": r["tokens / s"] / base})  # fmt: skip
    model, params = default_model()
    best = max(rows, key=lambda row: row["tokens / s"])
    verdict = "none helps: eager fp32 stays" if best["vs eager fp32"] < 1.1 else ""
    if best["vs eager fp32"] >= 1.1:
        tokens = params.ar.batch_size * model.config.block_size
        saved = tokens / rows[0]["tokens / s"] - tokens / best["tokens / s"]  # s per step
        extra = best["warm-up s (3 steps)"] - rows[0]["warm-up s (3 steps)"]
        repaid = (
            f"its warm-up costs {extra:.0f} s more, repaid after ~{extra / saved:.0f} steps"
            if extra > 0
            else "its warm-up cost nothing extra here (graphs cached on disk by an earlier run)"
        )
        verdict = (
            f"{best['variant']} is {best['vs eager fp32']:.2f}x per step and {repaid} (the "
            f"default `ar` run has {params.ar.steps} steps). The pipeline trains eager fp32: the "
            "ratio swings with the machine's load, so torch.compile is not a param yet"
        )
    return Section(
        key="training",
        title="6. AR training throughput on the CPU: eager vs torch.compile vs bf16 autocast",
        rows=rows,
        notes=[
            f"Default `ar` model: size {params.ar.size}, n_embd {params.ar.n_embd}, "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, K="
            f"{model.config.vocab_size}, {model.config.block_size} tokens, batch "
            f"{params.ar.batch_size}; up to {steps} timed steps (or ~60 s) after 3 warm-up steps; "
            f"{torch.get_num_threads()} torch threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()} (no native bf16: autocast converts).",
            f"Verdict: {verdict}. bf16 autocast is slower on this CPU (no bf16 units).",
        ],
    )
