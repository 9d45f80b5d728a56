"""tokenize@K-SEED: nearest-centroid ids for every image's patch features -> tokens/disc_k{K}_s{seed}.zarr (N x L)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from digit.kmeans import Assigner
from digit.progress import progress
from pipeline import io
from pipeline.encoder_files import load_encoder
from pipeline.images import pixel_source
from pipeline.params import Params
from pipeline.stage import cli, resolve_device, stage
from pipeline.stages.extract import encoded

log = logging.getLogger("digit.tokenize")


@torch.inference_mode()
def run(
    params: Params, k: int, features: str, centroids: str, out: str, encoder: str, images: str
) -> dict:
    """Tokens of every image: from the stored features, or (``extract.keep`` kept only the K-Means
    sample) from the ``encoder`` run again over ``images``, streamed block by block as extract
    runs it -- the same float16 features, so the same tokens, with no store of them all."""
    centroids = np.load(centroids)
    assign = Assigner(
        centroids, params.kmeans.spherical, resolve_device(params.device).startswith("cuda")
    )
    group = io.open_group(features)
    src = pixel_source(images)
    n_stored, n_images = len(io.stored_rows(group)), src.shape[0]
    if n_stored == n_images:
        feats = group["feats"]
        n, n_tokens, dim = feats.shape
        rows_per_block = max(feats.chunks[0], params.tokenize.batch_size // n_tokens)
        rows_per_block -= rows_per_block % feats.chunks[0]
        blocks = ((b, feats[b]) for b in io.iter_blocks(n, rows_per_block))
    else:
        device = resolve_device(params.device)
        enc = load_encoder(encoder, device)
        n, n_tokens, dim = n_images, enc.n_tokens, enc.dim
        rows_per_block = max(params.extract.batch_size, params.tokenize.batch_size // n_tokens)
        blocks = encoded(enc, src, None, rows_per_block, params, device)
        log.info("features of %d of %d images kept: re-encoding all", n_stored, n)
    counts = np.zeros(k, dtype=np.int64)
    with io.zarr_group_writer(out) as out_group:
        tokens = io.create_array(out_group, "tokens", (n, n_tokens), 1 << 16, "int32")
        bar = progress(total=n, desc=f"tokenize k{k}", unit="img")
        for rows, x in blocks:
            ids = assign(x.reshape(-1, dim)).reshape(-1, n_tokens)
            tokens[rows] = ids.astype(np.int32)
            counts += np.bincount(ids.ravel(), minlength=k)
            bar.update(len(x))
        bar.close()
        out_group.attrs.update(k=k, grid=group.attrs["grid"], kind="disc")
    p = counts / counts.sum()
    used = int((counts > 0).sum())
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    log.info("K=%d: %d codes used, perplexity %.1f", k, used, perplexity)
    return {"k": k, "codes_used": used, "perplexity": perplexity}


def main() -> None:
    args = cli(
        __doc__,
        "features",
        "centroids",
        "out",
        "encoder",
        "images",
        extra={"k": int},
        optional=("name",),
    )
    with stage(args.name or f"tokenize@{args.k}", args.params) as params:
        run(params, args.k, args.features, args.centroids, args.out, args.encoder, args.images)


if __name__ == "__main__":
    main()
