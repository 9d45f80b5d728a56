"""sampling: the paper's Fig. 6 -> metrics/sampling.json.

FID / IS of the main unconditional DiGIT model under a sweep of top-k (top-p off) and a sweep of
top-p (top-k off), ``sampling.n_samples`` images per setting. Everything else is held fixed: the
temperature of ``generate.token_model``, the "+VQGAN" renderer with ``generate.renderer_ar``, the
VQ decoder, the extractor of ``evaluate`` and the seed, so every setting starts from the same random
streams and only the filtering differs.
"""

from __future__ import annotations

import logging
import time

from digit.gpt import GPT
from digit.progress import progress
from digit.vq import VQVAE
from pipeline import io
from pipeline.checkpoints import load_model
from pipeline.evaluate import extractor_weights, fidelity
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import StageError, cli, record_timing, resolve_device, stage
from pipeline.stages.generate import check_vocab, decode, render, sample_token_model

log = logging.getLogger("digit.sampling")

KEEP = ("fid", "isc_mean", "isc_std", "kid_mean", "precision", "recall")


def settings(params: Params) -> list[dict]:
    """The sweep as rows of {sweep, top_k, top_p}; the shared "both off" row appears in each."""
    s = params.sampling
    rows = [{"sweep": "top_k", "top_k": k, "top_p": 1.0} for k in s.top_k]
    return rows + [{"sweep": "top_p", "top_k": 0, "top_p": p} for p in s.top_p]


def run(
    params: Params,
    token_model: str,
    renderer: str,
    vq: str,
    images: str,
    evalnet: str,
    metrics: str,
) -> dict:
    device = resolve_device(params.device)
    extractor = extractor_weights(params, evalnet)[0]
    data = load_images(images)
    ref = data.images[data.val]
    ar, _ = load_model(token_model, "gpt", GPT.from_config, device)
    s2, _ = load_model(renderer, "gpt", GPT.from_config, device)
    vq_model, _ = load_model(vq, "vq", VQVAE.from_config, device)
    if ar.config.n_classes:
        raise StageError(f"{token_model}: the sampling sweep takes an unconditional model")
    check_vocab(token_model, ar.config.vocab_size, s2.config.prefix_vocab_size, renderer)
    check_vocab(vq, vq_model.cfg.codebook_size, s2.config.vocab_size, renderer)
    n = params.sampling.n_samples
    rows = []
    for row in progress(settings(params), desc="sampling sweep", unit="setting"):
        t0 = time.perf_counter()
        s1 = params.generate.token_model.model_copy(
            update={"top_k": row["top_k"], "top_p": row["top_p"]}
        )
        p = params.model_copy(
            update={"generate": params.generate.model_copy(update={"token_model": s1})}
        )
        tokens, _, _ = sample_token_model(p, ar, n, device)
        vq_ids, _ = render(p, s2, tokens, device)
        pixels = decode(vq_model, vq_ids, p.generate.batch_size, device)
        result = fidelity(params, pixels, ref, evalnet)
        row |= {k: result[k] for k in KEEP if k in result}
        row["distinct_tokens"] = int(tokens.unique().numel())
        record_timing(
            **{f"top_k={row['top_k']},top_p={row['top_p']}.seconds": time.perf_counter() - t0}
        )
        log.info(
            "top-k %d top-p %.2f: FID %.3f IS %.3f",
            row["top_k"],
            row["top_p"],
            row["fid"],
            row["isc_mean"],
        )
        rows.append(row)
    summary = {
        "model": token_model,
        "renderer": renderer,
        "extractor": extractor,
        "n_samples": n,
        "temperature": params.generate.token_model.temperature,
        "reference": f"val split ({len(ref)} images)",
        "rows": rows,
    }
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(__doc__, "token_model", "renderer", "vq", "images", "evalnet", "metrics")
    with stage("sampling", args.params) as params:
        run(
            params,
            args.token_model,
            args.renderer,
            args.vq,
            args.images,
            args.evalnet,
            args.metrics,
        )


if __name__ == "__main__":
    main()
