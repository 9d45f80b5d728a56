"""extract: the frozen encoder over every image -> features/feats.zarr (N x L x D float16).

Images are read, encoded and written one block at a time, so memory stays flat in N (benchmarks/
measures it). The output may be any fsspec URL Zarr accepts; local paths are written atomically.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from pipeline import io
from pipeline.artifacts import load_encoder
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
    with io.zarr_group_writer(out) as group:
        feats = io.create_array(group, "feats", (n, n_tokens, dim), chunk_rows, "float16")
        bar = tqdm(total=n, desc="extract", unit="img", mininterval=1.0)
        for rows in io.iter_blocks(n, block):
            pixels = torch.from_numpy(src[rows])
            parts = [
                enc(pixels[i : i + params.extract.batch_size].to(device)).float().cpu()
                for i in range(0, len(pixels), params.extract.batch_size)
            ]
            feats[rows] = torch.cat(parts).numpy().astype(np.float16)
            bar.update(len(pixels))
        bar.close()
        group.attrs.update(encoder=enc.name, grid=list(enc.grid()), dim=dim)
    log.info("wrote %s: %d x %d x %d float16", out, n, n_tokens, dim)
    return {"n": n, "tokens": n_tokens, "dim": dim}


def main() -> None:
    args = cli(__doc__, "images", "encoder", "out")
    with stage("extract", args.params) as params:
        run(params, args.images, args.encoder, args.out)


if __name__ == "__main__":
    main()
