"""tokenize@K: nearest-centroid ids for every image's patch features -> tokens/disc_k{K}.zarr (N x L)."""

from __future__ import annotations

import logging

import numpy as np

from digit.kmeans import Assigner
from digit.progress import progress
from pipeline import io
from pipeline.params import Params
from pipeline.stage import cli, resolve_device, stage

log = logging.getLogger("digit.tokenize")


def run(params: Params, k: int, features: str, centroids: str, out: str) -> dict:
    centroids = np.load(centroids)
    assign = Assigner(
        centroids, params.kmeans.spherical, resolve_device(params.device).startswith("cuda")
    )
    feats = io.open_group(features)["feats"]
    n, n_tokens, dim = feats.shape
    rows_per_block = max(feats.chunks[0], params.tokenize.batch_size // n_tokens)
    rows_per_block -= rows_per_block % feats.chunks[0]
    counts = np.zeros(k, dtype=np.int64)
    with io.zarr_group_writer(out) as group:
        tokens = io.create_array(group, "tokens", (n, n_tokens), 1 << 16, "int32")
        for rows in progress(
            list(io.iter_blocks(n, rows_per_block)), desc=f"tokenize k{k}", unit="block"
        ):
            ids = assign(feats[rows].reshape(-1, dim)).reshape(-1, n_tokens)
            tokens[rows] = ids.astype(np.int32)
            counts += np.bincount(ids.ravel(), minlength=k)
        group.attrs.update(k=k, grid=io.open_group(features).attrs["grid"], kind="disc")
    p = counts / counts.sum()
    used = int((counts > 0).sum())
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    log.info("K=%d: %d codes used, perplexity %.1f", k, used, perplexity)
    return {"k": k, "codes_used": used, "perplexity": perplexity}


def main() -> None:
    args = cli(__doc__, "features", "centroids", "out", extra={"k": int}, optional=("name",))
    with stage(args.name or f"tokenize@{args.k}", args.params) as params:
        run(params, args.k, args.features, args.centroids, args.out)


if __name__ == "__main__":
    main()
