"""sampling: the paper's Fig. 6 -> metrics/sampling.json.

FID / IS of the main unconditional DiGIT model under a sweep of top-k (top-p off) and a sweep of
top-p (top-k off), ``sampling.n_samples`` images per setting. Everything else is held fixed: the
temperature of ``generate.stage1``, the "+VQGAN" stage-2 renderer with ``generate.stage2_ar``, the
VQ decoder, the extractor of ``evaluate`` and the seed, so every setting starts from the same random
streams and only the filtering differs.
"""

from __future__ import annotations

import logging
import time

from tqdm import tqdm

from pipeline import io
from pipeline.artifacts import load_images
from pipeline.models import load_gpt, load_vq
from pipeline.params import Params
from pipeline.stage import StageError, cli, resolve_device, stage
from pipeline.stages.evaluate import extractor_weights, fidelity
from pipeline.stages.generate import check_vocab, decode, render, sample_stage1

log = logging.getLogger("digit.sampling")

KEEP = ("fid", "isc_mean", "isc_std", "kid_mean", "precision", "recall")


def settings(params: Params) -> list[dict]:
    """The sweep as rows of {sweep, top_k, top_p}; the shared "both off" row appears in each."""
    s = params.sampling
    rows = [{"sweep": "top_k", "top_k": k, "top_p": 1.0} for k in s.top_k]
    return rows + [{"sweep": "top_p", "top_k": 0, "top_p": p} for p in s.top_p]


def run(
    params: Params, stage1: str, stage2: str, vq: str, images: str, evalnet: str, metrics: str
) -> dict:
    device = resolve_device(params.device)
    extractor = extractor_weights(params, evalnet)[0]
    data = load_images(images)
    ref = data.images[data.val]
    ar, _ = load_gpt(stage1, device)
    s2, _ = load_gpt(stage2, device)
    vq_model, _ = load_vq(vq, device)
    if ar.config.n_classes:
        raise StageError(f"{stage1}: the sampling sweep takes an unconditional model")
    check_vocab(stage1, ar.config.vocab_size, s2.config.prefix_vocab_size, stage2)
    check_vocab(vq, vq_model.cfg.codebook_size, s2.config.vocab_size, stage2)
    n = params.sampling.n_samples
    rows = []
    for row in tqdm(settings(params), desc="sampling sweep", unit="setting"):
        t0 = time.perf_counter()
        s1 = params.generate.stage1.model_copy(
            update={"top_k": row["top_k"], "top_p": row["top_p"]}
        )
        p = params.model_copy(
            update={"generate": params.generate.model_copy(update={"stage1": s1})}
        )
        tokens, _, _ = sample_stage1(p, ar, n, device)
        vq_ids, _ = render(p, s2, tokens, device)
        pixels = decode(vq_model, vq_ids, p.generate.batch_size, device)
        result = fidelity(params, pixels, ref, evalnet)
        row |= {k: result[k] for k in KEEP if k in result}
        row["distinct_tokens"] = int(tokens.unique().numel())
        row["seconds"] = round(time.perf_counter() - t0, 1)
        log.info(
            "top-k %d top-p %.2f: FID %.3f IS %.3f",
            row["top_k"],
            row["top_p"],
            row["fid"],
            row["isc_mean"],
        )
        rows.append(row)
    summary = {
        "model": stage1,
        "renderer": stage2,
        "extractor": extractor,
        "n_samples": n,
        "temperature": params.generate.stage1.temperature,
        "reference": f"val split ({len(ref)} images)",
        "rows": rows,
    }
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(__doc__, "stage1", "stage2", "vq", "images", "evalnet", "metrics")
    with stage("sampling", args.params) as params:
        run(params, args.stage1, args.stage2, args.vq, args.images, args.evalnet, args.metrics)


if __name__ == "__main__":
    main()
