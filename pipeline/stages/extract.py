"""extract: the frozen encoder over every image -> features/feats.zarr (N x L x D float16).

Images are read, encoded and written one block at a time, so memory stays flat in N (benchmarks/
measures it). With ``extract.store`` set (a second local path, ``file://``, ``s3://``, ``gs://``,
``memory://``: any fsspec URL Zarr accepts) the features are written there and the dvc.yaml out
becomes a small pointer to them (pipeline/io.py) that the readers follow: at paper scale the
features (~0.5 TB for ImageNet) live on a bucket or a scratch disk, not in the DVC cache.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from digit.progress import progress
from pipeline import io
from pipeline.encoder_files import load_encoder
from pipeline.params import Params
from pipeline.stage import cli, resolve_device, stage

log = logging.getLogger("digit.extract")

CHUNK_BYTES = 1 << 24  # ~16 MB per Zarr chunk whatever L and D are


@torch.inference_mode()
def run(params: Params, images: str, encoder: str, out: str) -> dict:
    device = resolve_device(params.device)
    enc = load_encoder(encoder, device)
    src = io.open_group(images)["images"]
    n = src.shape[0]
    n_tokens, dim = enc.n_tokens, enc.dim
    chunk_rows = max(1, CHUNK_BYTES // (n_tokens * dim * 2))
    # Read blocks aligned to whole output chunks so every chunk is written exactly once.
    block = max(params.extract.batch_size, chunk_rows)
    block = (block // chunk_rows) * chunk_rows
    store = params.extract.store or out
    digest = io.Digest()
    with io.zarr_group_writer(store) as group:
        feats = io.create_array(group, "feats", (n, n_tokens, dim), chunk_rows, "float16")
        bar = progress(total=n, desc="extract", unit="img")
        for rows in io.iter_blocks(n, block):
            pixels = torch.from_numpy(src[rows])
            parts = [
                enc(pixels[i : i + params.extract.batch_size].to(device)).float().cpu()
                for i in range(0, len(pixels), params.extract.batch_size)
            ]
            x = torch.cat(parts).numpy().astype(np.float16)  # (B, L, D)
            feats[rows] = x
            digest.update("feats", rows, x)
            bar.update(len(pixels))
        bar.close()
        group.attrs.update(encoder=enc.name, grid=list(enc.grid()), dim=dim)
        if params.extract.store:  # last: a store without it never finished
            group.attrs[io.DIGEST_KEY] = digest.hexdigest()
    if params.extract.store:
        io.write_pointer(out, params.extract.store, digest.hexdigest())
    log.info("wrote %s: %d x %d x %d float16", store, n, n_tokens, dim)
    return {"n": n, "tokens": n_tokens, "dim": dim, "sha256": digest.hexdigest()}


def main() -> None:
    args = cli(__doc__, "images", "encoder", "out", optional=("name",))
    with stage(args.name or "extract", args.params) as params:
        run(params, args.images, args.encoder, args.out)


if __name__ == "__main__":
    main()
