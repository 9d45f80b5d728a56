"""The images store that prepare writes (data/images.zarr) as arrays: pixels, labels, split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import io


@dataclass
class Images:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    is_val: np.ndarray  # (N,) bool
    class_names: list[str]

    @property
    def train(self) -> np.ndarray:
        return np.flatnonzero(~self.is_val)

    @property
    def val(self) -> np.ndarray:
        return np.flatnonzero(self.is_val)


def load_images(path: str, with_pixels: bool = True) -> Images:
    g = io.open_group(path)
    return Images(
        images=g["images"][:] if with_pixels else np.empty((0,)),
        labels=g["labels"][:],
        is_val=g["is_val"][:],
        class_names=list(g.attrs["class_names"]),
    )
