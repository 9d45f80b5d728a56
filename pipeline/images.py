"""The images store that prepare writes (data/images.zarr) as arrays: pixels, labels, split.

The pixels are the store's own ``images`` array (``data.pixels: store``), or, for a store that keeps
only the file list (``folder``), a ``digit.data.FolderImages`` that decodes the files under the
recorded root on each read: the same bytes, indexed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from digit.data import FolderImages
from pipeline import io


@dataclass
class Images:
    images: Any  # (N, H, W, C) uint8: an array, or FolderImages (index it to decode)
    labels: np.ndarray  # (N,) int64
    is_val: np.ndarray  # (N,) bool
    class_names: list[str]

    @property
    def train(self) -> np.ndarray:
        return np.flatnonzero(~self.is_val)

    @property
    def val(self) -> np.ndarray:
        return np.flatnonzero(self.is_val)


def pixel_source(path: str) -> Any:
    """The store's pixels, read on demand: its Zarr array, or the folder it lists."""
    g = io.open_group(path)
    if g.attrs.get("pixels", "store") != "folder":
        return g["images"]
    return FolderImages(
        g.attrs["root"],
        g["files"][:],
        g["file_sizes"][:],
        g["file_mtimes"][:],
        int(g.attrs["image_size"]),
        int(g.attrs["channels"]),
    )


def load_images(path: str, with_pixels: bool = True) -> Images:
    """Labels and split, and the pixels: in memory from a store that keeps them, decoded where
    indexed from a folder store (a stage reads only the rows it uses)."""
    g = io.open_group(path)
    pixels = np.empty((0,))
    if with_pixels:
        pixels = pixel_source(path)
        pixels = pixels if isinstance(pixels, FolderImages) else pixels[:]
    return Images(
        images=pixels,
        labels=g["labels"][:],
        is_val=g["is_val"][:],
        class_names=list(g.attrs["class_names"]),
    )
