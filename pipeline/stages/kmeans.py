"""kmeans@K-SEED: faiss K-Means on patch features of the train split -> centroids/k{K}_s{seed}.npy
(one fit per seed of ``seeds``: the tokenizer is part of every replicate).

Reads only as many train images as faiss would keep (K x max_points_per_centroid points, the
subsampling faiss does anyway), chosen by seed, so memory is bounded at paper scale.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from digit.kmeans import KMeansConfig, fit_kmeans
from pipeline import io
from pipeline.params import Params
from pipeline.stage import StageError, cli, resolve_device, stage

log = logging.getLogger("digit.kmeans")


def train_vectors(params: Params, images: str, features: str, k: int) -> np.ndarray:
    is_val = io.open_group(images)["is_val"][:]
    group = io.open_group(features)
    feats = group["feats"]
    stored = io.stored_rows(group)  # the image of each row of the store (extract.keep)
    train = np.flatnonzero(~is_val[stored])  # rows of the store that hold train images
    n_tokens = feats.shape[1]
    n_vectors = len(train) * n_tokens
    if k > n_vectors:
        raise StageError(
            f"kmeans.ks: K={k} exceeds the {n_vectors} train feature vectors "
            f"({len(train)} images x {n_tokens} tokens)"
        )
    need = math.ceil(k * params.kmeans.max_points_per_centroid / n_tokens)
    sampled = len(train) < int((~is_val).sum())  # extract.keep kept a part of the train split
    if sampled and need > len(train):
        raise StageError(
            f"extract.keep: {len(train)} images' features are kept, K-Means samples {need} for "
            f"K={k} (K x kmeans.max_points_per_centroid / {n_tokens} tokens); keep at least that"
        )
    if need < len(train):
        rng = np.random.default_rng(params.seed)
        train = np.sort(rng.choice(train, size=need, replace=False))
    rows = [
        feats[block][np.isin(np.arange(block.start, block.stop), train)]
        for block in io.iter_blocks(feats.shape[0], feats.chunks[0])
    ]
    return np.concatenate(rows).reshape(-1, feats.shape[2]).astype(np.float32)


def run(params: Params, k: int, images: str, features: str, out: str, metrics: str) -> dict:
    x = train_vectors(params, images, features, k)
    c = params.kmeans
    use_gpu = resolve_device(params.device).startswith("cuda")
    log.info("faiss K-Means: %d x %d -> K=%d (niter %d)", *x.shape, k, c.niter)
    result = fit_kmeans(
        x,
        KMeansConfig(k, c.niter, params.seed, c.max_points_per_centroid, c.spherical, use_gpu),
        verbose=False,
    )
    io.save_npy(out, result.centroids)
    summary = {
        "k": k,
        "n_vectors": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "iterations": len(result.objective),
        "objective": result.objective[-1],
        "gpu": result.used_gpu,
    }
    io.write_json(metrics, summary)
    log.info(
        "K=%d: objective %.4g after %d iterations", k, summary["objective"], summary["iterations"]
    )
    return summary


def main() -> None:
    args = cli(
        __doc__, "images", "features", "out", "metrics", extra={"k": int}, optional=("name",)
    )
    with stage(args.name or f"kmeans@{args.k}", args.params) as params:
        run(params, args.k, args.images, args.features, args.out, args.metrics)


if __name__ == "__main__":
    main()
