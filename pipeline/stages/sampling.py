"""sampling: the sampling search of one side of the generation comparison ->
metrics/sampling_<side>.json (the paper's Fig. 6, and the setting behind the "selected" rows of
Table 3 and claim 2).

Each side gets the same search at every sampling step it has: one grid of settings
(``sampling.top_k`` with top-p off, then ``sampling.top_p`` with top-k off; the temperatures of
``generate``) for the token model and, on DiGIT's side, for the renderer as well, over every pair
of the grid (the renderer reads each token-model setting's sequences). Every setting is scored by
FID against ``sampling.n_reference`` train images (a seeded sample), never against the val images
the tables report, so what is selected is not tuned on what is reported. The lowest FID is the
side's selected setting; the generate stages of its "selected" sets sample with it on every sample
seed. The main seed's models are searched, and every setting starts from the same random streams,
so only the filtering differs.
"""

from __future__ import annotations

import logging
import time

import numpy as np

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

KEEP = ("fid", "isc_mean", "kid_mean", "precision", "recall")


def grid(params: Params) -> list[dict]:
    """The settings every sampling step is searched over: {top_k, top_p}, the untruncated one
    (top-k 0, top-p 1) once."""
    s = params.sampling
    rows = [{"top_k": k, "top_p": 1.0} for k in s.top_k]
    return rows + [{"top_k": 0, "top_p": p} for p in s.top_p if p < 1.0]


def with_step(params: Params, step: str, setting: dict) -> Params:
    """``params`` with ``generate.<step>`` (token_model, renderer_causal) filtered as ``setting``."""
    g = params.generate
    new = getattr(g, step).model_copy(update=setting)
    return params.model_copy(update={"generate": g.model_copy(update={step: new})})


def reference(params: Params, images, seed: int) -> np.ndarray:
    """``sampling.n_reference`` train images, a seeded sample: what the search scores against."""
    train = images.train
    n = params.sampling.n_reference
    if n > len(train):
        raise StageError(
            f"params.yaml: sampling.n_reference: {n} train images asked, the train split has "
            f"{len(train)}"
        )
    rows = np.sort(np.random.default_rng(seed).choice(train, n, replace=False))
    return images.images[rows]


def run(
    params: Params,
    side: str,
    token_model: str,
    vq: str,
    images: str,
    evalnet: str,
    metrics: str,
    renderer: str | None = None,
) -> dict:
    device = resolve_device(params.device)
    extractor = extractor_weights(params, evalnet)[0]
    data = load_images(images)
    ref = reference(params, data, params.seed)
    ar, _ = load_model(token_model, "gpt", GPT.from_config, device)
    vq_model, _ = load_model(vq, "vq", VQVAE.from_config, device)
    if ar.config.n_classes:
        raise StageError(f"{token_model}: the sampling search takes an unconditional model")
    s2 = None
    if renderer is not None:
        s2, _ = load_model(renderer, "gpt", GPT.from_config, device)
        check_vocab(token_model, ar.config.vocab_size, s2.config.prefix_vocab_size, renderer)
        check_vocab(vq, vq_model.cfg.codebook_size, s2.config.vocab_size, renderer)
    else:
        check_vocab(token_model, ar.config.vocab_size, vq_model.cfg.codebook_size, vq)
    n = params.sampling.n_samples
    settings = grid(params)
    pairs = [(t, r) for t in settings for r in (settings if s2 is not None else [None])]
    rows = []
    bar = progress(total=len(pairs), desc=f"sampling search {side}", unit="setting")
    for t in settings:
        p = with_step(params, "token_model", t)
        tokens, _, _ = sample_token_model(p, ar, n, device)
        for r in settings if s2 is not None else [None]:
            t0 = time.perf_counter()
            if r is None:
                vq_ids = tokens
            else:
                vq_ids, _ = render(with_step(p, "renderer_causal", r), s2, tokens, device)
            pixels = decode(vq_model, vq_ids, params.generate.batch_size, device)
            result = fidelity(params, pixels, ref, evalnet)
            row = {"token_model": t, "renderer": r} | {k: result[k] for k in KEEP if k in result}
            rows.append(row)
            record_timing(**{f"{setting_text(t, r)}.seconds": time.perf_counter() - t0})
            log.info("%s %s: FID %.3f", side, setting_text(t, r), row["fid"])
            bar.update(1)
    bar.close()
    best = min(rows, key=lambda row: row["fid"])
    summary = {
        "side": side,
        "model": token_model,
        "renderer": renderer,
        "extractor": extractor,
        "n_samples": n,
        "temperature": params.generate.token_model.temperature,
        "reference": f"{len(ref)} train images (seeded sample; the tables score against val)",
        "grid": settings,
        "rows": rows,
        "selected": {
            "token_model": best["token_model"],
            "renderer": best["renderer"],
            "fid": best["fid"],
        },
    }
    io.write_json(metrics, summary)
    log.info(
        "%s: selected %s (FID %.3f on train images)",
        side,
        setting_text(best["token_model"], best["renderer"]),
        best["fid"],
    )
    return summary


def setting_text(token_model: dict, renderer: dict | None) -> str:
    """A searched setting as "token model top-k 0 top-p 0.9 | renderer top-k 16 top-p 1"."""

    def one(s: dict) -> str:
        return f"top-k {s['top_k']} top-p {s['top_p']:g}"

    return f"token model {one(token_model)}" + (
        f" | renderer {one(renderer)}" if renderer is not None else ""
    )


def main() -> None:
    args = cli(
        __doc__,
        "token_model",
        "vq",
        "images",
        "evalnet",
        "metrics",
        extra={"side": str},
        optional=("renderer",),
    )
    with stage(f"sampling_{args.side}", args.params) as params:
        run(
            params,
            args.side,
            args.token_model,
            args.vq,
            args.images,
            args.evalnet,
            args.metrics,
            renderer=args.renderer,
        )


if __name__ == "__main__":
    main()
