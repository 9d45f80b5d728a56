"""Sampling throughput of digit.generate with and without the KV cache (tokens / s).

    python benchmarks/sampling.py [--model models/ar_k256.pt] [--n 250] [--batch 250]

Without --model, a randomly initialised GPT of the default stage-1 shape (size ``small``, K=256,
49 tokens) is timed; speed does not depend on the weights. Also times a stage-2 model (49-token
prefix) when --stage2 is given. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from digit.generate import generate
from digit.gpt import build_gpt
from pipeline.models import load_gpt


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--stage2", default=None)
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        model, _ = load_gpt(args.model)
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
    if args.stage2:
        s2, _ = load_gpt(args.stage2)
        prefix = torch.randint(0, s2.config.prefix_vocab_size, (args.n, s2.config.prefix_len))
        for use_cache in (True, False):
            row = measure(s2, args.n, args.batch, use_cache, prefix=prefix)
            print(json.dumps({"model": args.stage2, **row}))


if __name__ == "__main__":
    main()
