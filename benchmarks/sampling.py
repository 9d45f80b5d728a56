"""Item 5: sampling throughput of digit.generate with and without the KV cache (tokens / s).

    python -m benchmarks.run --items sampling      # the report section (run(opts) below)
    python -m benchmarks.sampling [--model models/ar_k256_s0.pt] [--n 250] [--batch 250]

Without --model, a randomly initialised GPT of the default stage-1 shape (size ``small``, K=256,
49 tokens) is timed; speed does not depend on the weights. Also times a stage-2 model (49-token
prefix) when --renderer is given. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.common import ROOT, Section
from digit.generate import generate
from digit.gpt import GPT, build_gpt
from pipeline.checkpoints import load_model
from pipeline.checks import load
from pipeline.train import build_model


def measure(model, n: int, batch: int, use_cache: bool, prefix=None) -> dict:
    cond = None
    if model.config.n_classes:
        cond = torch.arange(n) % model.config.n_classes
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    out = generate(
        model, n, cond=cond, prefix=prefix, batch_size=batch, generator=g, use_cache=use_cache
    )
    seconds = time.perf_counter() - t0
    return {
        "use_cache": use_cache,
        "n": n,
        "batch_size": batch,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(out.numel() / seconds, 1),
    }


def run(opts) -> Section:
    """The default AR model (params.yaml ``ar``, K = kmeans.main_k) at 49 and 256 tokens.

    Full recomputation costs O(T^2) per sequence; at 256 tokens its large batches would take many
    minutes on 2 cores, so there it runs at the small batch sizes only (the ratio is what matters).
    """
    params = load(ROOT / "params.yaml")
    k = params.kmeans.main_k
    if opts.quick:
        plan = {49: ([1, 16, 64], [1, 16, 64]), 256: ([1, 16], [1])}
    else:
        plan = {49: ([1, 16, 64, 256], [1, 16, 64, 256]), 256: ([1, 16, 64, 256], [1, 16])}
    rows = []
    for seq_len, (cached, recompute) in plan.items():
        torch.manual_seed(0)
        model = build_model(params.ar, vocab_size=k, block_size=seq_len).eval()
        for batch in cached:
            with_cache = measure(model, batch, batch, True)
            row = {
                "tokens": seq_len,
                "batch": batch,
                "KV cache tok/s": with_cache["tokens_per_second"],
            }
            if batch in recompute:
                full = measure(model, batch, batch, False)
                row["recompute tok/s"] = full["tokens_per_second"]
                row["speed-up"] = with_cache["tokens_per_second"] / full["tokens_per_second"]
            rows.append(row)
    return Section(
        key="sampling",
        title="5. Sampling: KV cache vs full recomputation",
        rows=rows,
        notes=[
            f"Default AR model (`ar`: size {params.ar.size}, n_embd {params.ar.n_embd}, K={k}), "
            "random weights, unconditional, temperature 1, one batch of `batch` sequences per "
            "measurement (prefill + decode). Blank cells: full recomputation not run at that size."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--renderer", default=None)
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        model, _ = load_model(args.model, "gpt", GPT.from_config)
    else:
        torch.manual_seed(0)
        model = build_gpt("small", vocab_size=256, block_size=49).eval()
    for use_cache in (True, False):
        print(
            json.dumps(
                {
                    "model": args.model or "small/K256",
                    **measure(model, args.n, args.batch, use_cache),
                }
            )
        )
    if args.renderer:
        s2, _ = load_model(args.renderer, "gpt", GPT.from_config)
        prefix = torch.randint(0, s2.config.prefix_vocab_size, (args.n, s2.config.prefix_len))
        for use_cache in (True, False):
            row = measure(s2, args.n, args.batch, use_cache, prefix=prefix)
            print(json.dumps({"model": args.renderer, **row}))


if __name__ == "__main__":
    main()
