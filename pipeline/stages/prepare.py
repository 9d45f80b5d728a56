"""prepare: dataset by name -> data/images.zarr (uint8 N x H x W x C, labels, seeded stratified split).

Images are decoded and written block by block, so an ImageFolder the size of ImageNet streams through
constant memory. Undecodable files are skipped and counted (``data.on_corrupt: skip``) or stop the
stage with the file named (``error``).

``data.pixels: folder`` (an ImageFolder only) decodes every file just the same, to find the ones
that fail, but stores no pixels: the store lists the files that decoded (relative to ``data.root``)
with their size and mtime, and every reader decodes them again (``pipeline.images.pixel_source``).
At paper scale that is the difference between ~250 GB of decoded ImageNet and ~50 MB.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr

from digit.data import (
    CorruptImageError,
    DataError,
    open_dataset,
    stratified_split,
    stratified_subsample,
)
from digit.progress import progress
from pipeline import io
from pipeline.params import Params
from pipeline.stage import StageError, cli, stage

log = logging.getLogger("digit.prepare")


def write_file_list(group: zarr.Group, root: str, sources: list[str]) -> None:
    """The decoded files of a ``pixels: folder`` store, relative to ``root``, with the size and
    mtime each had (digit.data.FolderImages refuses a file that changed since)."""
    stats = [os.stat(f) for f in sources]
    rel = np.array([os.path.relpath(f, root) for f in sources], dtype=object)
    group.create_array(name="files", shape=rel.shape, dtype=str, chunks=(1 << 16,))[:] = rel
    group.create_array(name="file_sizes", data=np.array([s.st_size for s in stats], np.int64))
    group.create_array(name="file_mtimes", data=np.array([s.st_mtime_ns for s in stats], np.int64))


def run(params: Params, out: str, metrics: str) -> dict:
    p = params.data
    try:
        ds = open_dataset(p.dataset, p.root, p.image_size, p.channels)
    except DataError as err:
        raise StageError(str(err)) from None
    indices = np.arange(len(ds))
    if p.max_images:
        indices = stratified_subsample(ds.labels, p.max_images, params.seed)
    h, w, c = ds.image_shape
    log.info("%s: %d images of %dx%dx%d", p.dataset, len(indices), h, w, c)

    kept, corrupt = [], []
    store_pixels = p.pixels == "store"
    with io.zarr_group_writer(out) as group, ThreadPoolExecutor(max_workers=4) as pool:
        if store_pixels:
            shape = (len(indices), h, w, c)
            images = io.create_array(group, "images", shape, p.chunk_images, "uint8")
        n_ok = 0

        def decode(i: int) -> np.ndarray | CorruptImageError:
            try:
                return ds.load_one(int(i))
            except CorruptImageError as err:
                return err

        # Closed on errors too, so a stopping error is the last line, not followed by the bar.
        with progress(total=len(indices), desc="prepare", unit="img") as bar:
            for block in io.iter_blocks(len(indices), p.chunk_images):
                decoded = list(pool.map(decode, indices[block]))
                good = []
                for i, img in zip(indices[block], decoded, strict=True):
                    if isinstance(img, CorruptImageError):
                        if p.on_corrupt == "error":
                            raise StageError(
                                f"{img} (set data.on_corrupt: skip to skip such files)"
                            )
                        log.warning("skipping %s", img)
                        corrupt.append(ds.sources[i])
                    else:
                        good.append(img)
                        kept.append(int(i))
                if good and store_pixels:
                    images[n_ok : n_ok + len(good)] = np.stack(good)
                n_ok += len(good)
                bar.update(block.stop - block.start)
        if n_ok == 0:
            raise StageError(f"{p.dataset}: no decodable images")
        if store_pixels and n_ok < len(indices):
            images.resize((n_ok, h, w, c))
        if not store_pixels:
            write_file_list(group, p.root, [ds.sources[i] for i in kept])

        labels = ds.labels[kept]
        is_val = stratified_split(labels, p.val_fraction, params.seed)
        group.create_array(name="labels", data=labels.astype(np.int64))
        group.create_array(name="is_val", data=is_val)
        group.attrs.update(
            dataset=p.dataset,
            class_names=ds.class_names,
            image_size=p.image_size,
            channels=p.channels,
            source_index=[int(i) for i in kept] if p.dataset == "mnist5k" else None,
            pixels=p.pixels,
            root=str(Path(p.root).resolve()) if not store_pixels else None,
        )

    summary = {
        "dataset": p.dataset,
        "n_images": n_ok,
        "n_train": int((~is_val).sum()),
        "n_val": int(is_val.sum()),
        "n_classes": len(ds.class_names),
        "n_corrupt_skipped": len(corrupt),
        "corrupt_files": corrupt[:100],
        "image_shape": [h, w, c],
    }
    io.write_json(metrics, summary)
    log.info("wrote %s: %d train / %d val", out, summary["n_train"], summary["n_val"])
    return summary


def main() -> None:
    args = cli(__doc__, "out", "metrics")
    with stage("prepare", args.params) as params:
        run(params, args.out, args.metrics)


if __name__ == "__main__":
    main()
