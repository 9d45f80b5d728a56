"""FID / IS / KID / precision-recall of one generated set against the val split
-> metrics/scores_<name>.json, through torch-fidelity with the extractor chosen in params.yaml. Every
generate stage scores its set with ``score`` as its last step (and the sampling sweep with
``fidelity``): scoring takes well under a second here, less than a stage of its own costs DVC.

Sets with labels also get the evaluation network's top-1 against them: for class-conditional sets
the class each sample was conditioned on (``cond_top1``, a direct check that conditioning works,
which FID alone does not show); for the upper bounds the label of the val image whose tokens were
rendered (``source_top1``: does the digit survive tokenizer and renderer?).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from digit.metrics.evalnet import EvalNet, accuracy
from digit.metrics.fid import compute_metrics
from pipeline import io
from pipeline.checkpoints import load_model
from pipeline.params import Params
from pipeline.stage import StageError, record_timing, resolve_device

log = logging.getLogger("digit.evaluate")


def extractor_weights(params: Params, evalnet: str) -> tuple[str, str | None, str]:
    """(extractor name, weights path, params key naming the weights) for this run."""
    e = params.evaluate
    if e.extractor == "evalnet":
        return "evalnet", evalnet, "the evalnet stage output"
    return e.extractor, e.inception_weights, "evaluate.inception_weights"


def label_accuracy(weights: str, images: np.ndarray, labels: np.ndarray, device: str):
    net, _ = load_model(weights, "evalnet", EvalNet.from_config, device)
    return round(accuracy(net, images, labels), 4)


def fidelity(params: Params, images: np.ndarray, ref: np.ndarray, evalnet: str) -> dict:
    """FID / IS / KID / precision-recall of ``images`` against ``ref`` with the params' extractor
    (a missing weights file is one line naming its params key)."""
    extractor, weights, key = extractor_weights(params, evalnet)
    e = params.evaluate
    try:
        return compute_metrics(
            images,
            ref,
            extractor=extractor,
            weights_path=weights,
            device=resolve_device(params.device),
            batch_size=e.batch_size,
            prc=e.prc,
            kid_subset_size=e.kid_subset_size,
            isc_splits=e.isc_splits,
            seed=params.seed,
            weights_key=key,
        )
    except FileNotFoundError as err:
        raise StageError(str(err)) from None


def score(
    params: Params,
    name: str,
    images: np.ndarray,
    labels: np.ndarray | None,
    label_key: str,
    ref: np.ndarray,
    evalnet: str,
    metrics: str,
) -> dict:
    """Score the generated ``images`` against the val images ``ref`` -> ``metrics``; with
    ``labels``, also the evaluation net's top-1 against them, as ``label_key``."""
    t0 = time.perf_counter()
    result = fidelity(params, images, ref, evalnet)
    result = {"set": name, **result, "reference": f"val split ({len(ref)} images)"}
    if labels is not None and params.evaluate.extractor == "evalnet":
        device = resolve_device(params.device)
        result[label_key] = label_accuracy(evalnet, images, labels, device)
    record_timing(score_seconds=time.perf_counter() - t0)
    io.write_json(metrics, result)
    log.info(
        "%s: FID %.3f IS %.3f (%s)", name, result["fid"], result["isc_mean"], result["extractor"]
    )
    return result
