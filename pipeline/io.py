"""Artifact I/O for the stages: atomic writes, Zarr stores, JSON metrics, checkpoints.

Every output is written to a temporary sibling and renamed into place only when complete, so a killed
or failed stage never leaves a half-written file that DVC or a later stage could take for a result.
Zarr stores may be local paths or any fsspec URL Zarr accepts (``memory://``, ``s3://`` ...); remote
stores are written in place (object stores have no atomic rename) and DVC tracks local paths only.

Test hooks: with ``DIGIT_TEST_KILL_BEFORE_RENAME=<file name>`` in its environment, a stage SIGKILLs
itself when the output of that name is complete under its temporary name and not yet renamed, the
worst moment for a kill -9; with ``DIGIT_TEST_KILL_AFTER_RENAME=<file name>``, right after the
first file of that name is in place (a training checkpoint: the kill lands between two of them,
with no race against a poll). tests/test_reliability.py; unset, each costs a dict lookup.

A store kept outside the project (``extract.store``) is reached through a *pointer*: a tiny local
Zarr group at the path dvc.yaml names, holding the store's URL and the sha256 of its content. DVC
tracks the pointer, so downstream stages re-run exactly when the content changes; ``open_group``
follows it and refuses a store whose content is not the one pointed at (overwritten by another run,
or a write that never finished: the digest is the last thing written).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

KILL_BEFORE_RENAME = "DIGIT_TEST_KILL_BEFORE_RENAME"
KILL_AFTER_RENAME = "DIGIT_TEST_KILL_AFTER_RENAME"


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def _open_url(url: str, mode: str) -> zarr.Group:
    # fsspec's local filesystem does not create parent folders unless told to (s3 and memory
    # have no folders to create, and some filesystems reject the option).
    options = {"auto_mkdir": True} if url.startswith("file://") and mode != "r" else None
    return zarr.open_group(url, mode=mode, storage_options=options)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def sweep_temporaries(final: str | os.PathLike) -> None:
    """Remove leftovers of killed runs (``.name.tmp-*`` siblings of ``final``)."""
    final = Path(final)
    if final.parent.exists():
        for leftover in final.parent.glob(f".{final.name}.tmp-*"):
            _remove(leftover)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(final)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if os.environ.get(KILL_BEFORE_RENAME) == final.name:
            os.kill(os.getpid(), signal.SIGKILL)
        if final.exists() or final.is_symlink():
            _remove(final)
        os.replace(tmp, final)
        if os.environ.get(KILL_AFTER_RENAME) == final.name:
            os.kill(os.getpid(), signal.SIGKILL)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


# --- Zarr -------------------------------------------------------------------------------------

COMPRESSORS = (BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),)


@contextlib.contextmanager
def zarr_group_writer(final: str | os.PathLike) -> Iterator[zarr.Group]:
    """Create a fresh Zarr group that appears at ``final`` only once the block exits cleanly."""
    if is_url(final):
        yield _open_url(str(final), mode="w")
        return
    with atomic_path(final) as tmp:
        yield zarr.open_group(str(tmp), mode="w")


POINTER_KEY = "digit_store"  # attrs of a pointer group: {"url": ..., "sha256": ...}
DIGEST_KEY = "digit_sha256"  # attrs of the store it points at


def open_group(path: str | os.PathLike) -> zarr.Group:
    """Open a Zarr group for reading; a pointer group (see the module docstring) is followed."""
    if not is_url(path) and not Path(path).exists():
        raise FileNotFoundError(f"{path}: Zarr store not found (run the stage that writes it)")
    group = _open_url(str(path), "r") if is_url(path) else zarr.open_group(str(path), mode="r")
    pointer = group.attrs.get(POINTER_KEY)
    if pointer is None:
        return group
    try:
        target = (
            _open_url(pointer["url"], "r") if is_url(pointer["url"]) else open_group(pointer["url"])
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise FileNotFoundError(
            f"{path}: points at {pointer['url']}, which is not there (re-run the stage that "
            "writes it, or `dvc pull` / copy the store back)"
        ) from None
    if target.attrs.get(DIGEST_KEY) != pointer["sha256"]:
        raise FileNotFoundError(
            f"{path}: the store at {pointer['url']} does not hold the content this pointer "
            "records (overwritten by another run, or its write did not finish); re-run the stage"
        )
    return target


class Digest:
    """sha256 of the arrays written to a store, block by block in write order."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, name: str, rows: slice, block: np.ndarray) -> None:
        self._h.update(f"{name}[{rows.start}:{rows.stop}]{block.shape}{block.dtype.str}".encode())
        self._h.update(np.ascontiguousarray(block).tobytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def write_pointer(path: str | os.PathLike, url: str, sha256: str) -> None:
    """The local stand-in (DVC out) for a store written at ``url`` whose content hashes to sha256."""
    with zarr_group_writer(path) as group:
        group.attrs[POINTER_KEY] = {"url": url, "sha256": sha256}


def stored_rows(group: zarr.Group) -> np.ndarray:
    """The image rows a features store holds, in its row order: every image, or (extract.keep)
    the sample named by its ``rows`` array."""
    if "rows" in group:
        return group["rows"][:]
    return np.arange(group["feats"].shape[0])


def create_array(
    group: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    chunk_rows: int,
    dtype: str,
    compressors=COMPRESSORS,
    dense: bool = False,
) -> zarr.Array:
    """An array chunked along its first axis only: rows are written and read in blocks.
    ``dense``: every chunk is written with data (features), so Zarr skips its check for chunks
    that hold only the fill value: a full pass over each block (10 of 14.5 ms a 16 MB float16
    chunk on this CPU)."""
    chunks = (max(1, min(chunk_rows, shape[0] or 1)), *shape[1:])
    config = {"write_empty_chunks": True} if dense else None
    return group.create_array(
        name=name, shape=shape, chunks=chunks, dtype=dtype, compressors=compressors, config=config
    )


def iter_blocks(n: int, block: int) -> Iterator[slice]:
    for start in range(0, n, block):
        yield slice(start, min(start + block, n))
