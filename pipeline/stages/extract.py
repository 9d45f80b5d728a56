"""extract: the frozen encoder over the images -> features/feats.zarr (N x L x D float16).

``extract.keep: all`` stores every image's features; a number stores only that many train images
(a seeded sample, their image rows in ``rows``): what K-Means samples anyway. Then tokenize and
encoder_eval compute the features they need again, streamed through the encoder, so the paper
scale needs no ~0.5 TB feature store (``encoded`` is that stream, shared by the three stages).

Images are read, encoded and written one block at a time, so memory stays flat in N (benchmarks/
measures it). With ``extract.store`` set (a second local path, ``file://``, ``s3://``, ``gs://``,
``memory://``: any fsspec URL Zarr accepts) the features are written there and the dvc.yaml out
becomes a small pointer to them (pipeline/io.py) that the readers follow: at paper scale the
features (~0.5 TB for ImageNet) live on a bucket or a scratch disk, not in the DVC cache.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from digit.precision import Precision
from digit.progress import progress
from pipeline import io
from pipeline.encoder_files import load_encoder
from pipeline.images import pixel_source
from pipeline.params import Params
from pipeline.stage import cli, resolve_device, stage

log = logging.getLogger("digit.extract")

CHUNK_BYTES = 1 << 24  # ~16 MB per Zarr chunk whatever L and D are


def kept_rows(params: Params, is_val: np.ndarray) -> np.ndarray | None:
    """The images whose features extract keeps on disk: None for all of them (``extract.keep:
    all``), else a seeded sample of ``extract.keep`` train images, sorted -- the K-Means sample,
    from which each kmeans@K draws its own (pipeline/stages/kmeans.py)."""
    keep = params.extract.keep
    train = np.flatnonzero(~is_val)
    if keep == "all":
        return None
    if keep >= len(train):
        return train
    return np.sort(np.random.default_rng([params.seed, 29]).choice(train, keep, replace=False))


def encoded(
    enc: Any,
    src: Any,
    rows: np.ndarray | None,
    block: int,
    params: Params,
    device: str,
) -> Iterator[tuple[slice, np.ndarray]]:
    """The encoder's features of images ``rows`` of ``src`` (None: all), block by block: (the
    block's positions in ``rows``, (B, L, D) float16). Features are cast to float16 as extract
    stores them, so a consumer that re-computes them (tokenize over kept features) sees the
    same bytes. A reader thread fetches block i + 1 while block i is encoded. Batches of
    ``extract.batch_size`` under ``extract.precision``."""
    bs = params.extract.batch_size
    precision = Precision(params.extract.precision)
    n = src.shape[0] if rows is None else len(rows)
    blocks = list(io.iter_blocks(n, block))

    def read(b: slice) -> np.ndarray:
        return src[b] if rows is None else src.get_orthogonal_selection((rows[b],))

    with ThreadPoolExecutor(1) as reader:
        fetched = reader.submit(read, blocks[0]) if blocks else None
        for j, b in enumerate(blocks):
            pixels = torch.from_numpy(fetched.result())
            if j + 1 < len(blocks):
                fetched = reader.submit(read, blocks[j + 1])
            x = np.empty((len(pixels), enc.n_tokens, enc.dim), np.float16)  # (B, L, D)
            for i in range(0, len(pixels), bs):  # cast to float16 straight into the block
                with precision.autocast(device):
                    features = enc(pixels[i : i + bs].to(device))
                torch.from_numpy(x[i : i + bs]).copy_(features)
            yield b, x


@torch.inference_mode()
def run(params: Params, images: str, encoder: str, out: str) -> dict:
    device = resolve_device(params.device)
    enc = load_encoder(encoder, device)
    group_in = io.open_group(images)
    src = pixel_source(images)
    rows = kept_rows(params, group_in["is_val"][:])
    n = src.shape[0] if rows is None else len(rows)
    n_tokens, dim = enc.n_tokens, enc.dim
    bs = params.extract.batch_size
    chunk_rows = max(1, CHUNK_BYTES // (n_tokens * dim * 2))
    # Blocks of whole output chunks, so every chunk is written exactly once.
    block = (max(bs, chunk_rows) // chunk_rows) * chunk_rows
    store = params.extract.store or out
    digest = io.Digest()
    # A reader thread (``encoded``) fetches block i + 1 while block i is encoded; each block is
    # written as soon as it is done, from this thread. A writer thread was slower on 2 cores
    # (its Zarr calls compete with the forward: 1.17x a bare forward at 5,000 images against
    # 1.08x, reports/benchmarks.md item 3), and a write is short: features are stored
    # uncompressed (float16 activations shrink ~22% under Blosc-zstd, whose CPU time would
    # compete with the forward) and as dense chunks (no all-fill-value check, io.create_array).
    with io.zarr_group_writer(store) as group:
        feats = io.create_array(
            group, "feats", (n, n_tokens, dim), chunk_rows, "float16", compressors=None, dense=True
        )
        if rows is not None:
            io.create_array(group, "rows", (n,), 1 << 20, "int64")[:] = rows
        bar = progress(total=n, desc="extract", unit="img")
        for b, x in encoded(enc, src, rows, block, params, device):
            feats[b] = x
            if params.extract.store:  # the pointer's check that the store holds these features
                digest.update("feats", b, x)
            bar.update(len(x))
        bar.close()
        group.attrs.update(encoder=enc.name, grid=list(enc.grid()), dim=dim)
        if params.extract.store:  # last: a store without it never finished
            group.attrs[io.DIGEST_KEY] = digest.hexdigest()
    if params.extract.store:
        io.write_pointer(out, params.extract.store, digest.hexdigest())
    log.info("wrote %s: %d x %d x %d float16", store, n, n_tokens, dim)
    info = {"n": n, "tokens": n_tokens, "dim": dim}
    return info | ({"sha256": digest.hexdigest()} if params.extract.store else {})


def main() -> None:
    args = cli(__doc__, "images", "encoder", "out", optional=("name",))
    with stage(args.name or "extract", args.params) as params:
        run(params, args.images, args.encoder, args.out)


if __name__ == "__main__":
    main()
