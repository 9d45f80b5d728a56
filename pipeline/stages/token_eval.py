"""token_eval@K: are the K-Means tokens of the trained encoder better than a random encoder's?
-> metrics/tokens_k{K}.json.

For the trained encoder's tokens (tokens/disc_k{K}.zarr) and for tokens of the random-weights twin
(faiss K-Means with the same settings, fitted here on its train features): the position-aware token
probe, bag-of-tokens k-NN, codebook usage and perplexity, all on the val split.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from digit.kmeans import Assigner, KMeansConfig, fit_kmeans
from digit.metrics.tokens import bag_of_tokens, knn_top1, token_probe_top1, usage
from pipeline import io
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import cli, stage
from pipeline.stages.encoder_eval import encode, eval_indices

log = logging.getLogger("digit.token_eval")


def random_tokens(params: Params, k: int, pixels: np.ndarray, is_train: np.ndarray, encoder: str):
    feats = encode(encoder, pixels, params)  # (N, L, D)
    n, length, dim = feats.shape
    c = params.kmeans
    train = np.flatnonzero(is_train)
    need = math.ceil(k * c.max_points_per_centroid / length)
    if need < len(train):
        train = np.sort(np.random.default_rng(params.seed).choice(train, need, replace=False))
    fit = fit_kmeans(
        feats[train].reshape(-1, dim),
        KMeansConfig(k, c.niter, params.seed, c.max_points_per_centroid, c.spherical),
    )
    return Assigner(fit.centroids, c.spherical)(feats.reshape(-1, dim)).reshape(n, length)


def scores(
    tokens: np.ndarray, labels: np.ndarray, is_val: np.ndarray, k: int, params: Params
) -> dict:
    tr, va = ~is_val, is_val
    e = params.encoder_eval
    bag = bag_of_tokens(tokens, k)
    return {
        "token_probe_top1": round(
            token_probe_top1(
                tokens[tr],
                labels[tr],
                tokens[va],
                labels[va],
                k,
                e.probe_C,
                e.probe_max_iter,
                params.seed,
            ),
            4,
        ),
        "bag_knn_top1": round(knn_top1(bag[tr], labels[tr], bag[va], labels[va], k=e.knn_k), 4),
        **usage(tokens, k),
    }


def run(
    params: Params, k: int, images: str, tokens: str, random_encoder: str, metrics: str
) -> dict:
    data = load_images(images)
    idx = eval_indices(params, data.labels)
    labels, is_val = data.labels[idx], data.is_val[idx]
    trained = io.open_group(tokens)["tokens"][:][idx]
    rand = random_tokens(params, k, data.images[idx], ~is_val, random_encoder)
    summary = {
        "k": k,
        "protocol": "val split; token probe = multinomial logistic regression on one-hot tokens per "
        f"position (C={params.encoder_eval.probe_C}); bag k-NN = weighted cosine k-NN "
        f"(k={params.encoder_eval.knn_k}) on token counts",
        "trained": scores(trained, labels, is_val, k, params),
        "random": scores(rand, labels, is_val, k, params),
    }
    log.info("K=%d trained %s | random %s", k, summary["trained"], summary["random"])
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(__doc__, "images", "tokens", "random_encoder", "metrics", extra={"k": int})
    with stage(f"token_eval@{args.k}", args.params) as params:
        run(params, args.k, args.images, args.tokens, args.random_encoder, args.metrics)


if __name__ == "__main__":
    main()
