"""Model files, in one format, and the token sets of the generative half.

Every model file of the DAG (the token models and the renderers, the VQ autoencoder, the
encoders, the evaluation network) is one dict, written by ``save_model`` and read by
``read_model`` / ``load_model``:

    {"kind": "gpt" | "vq" | "encoder" | "evalnet",
     "config": what rebuilds the module (a config dataclass as a dict; encoders: name and kwargs),
     "state_dict": the weights (None for a verified pointer to weights kept elsewhere),
     "step": optimisation steps taken,
     "extra": the resolved params and deterministic metrics of the run, and what loaders need}

Loaders are strict: the keys must be exactly these, the kind the expected one, the config known to
the module's builder, and the weights load with ``strict=True``. A model file holds no wall-clock
figure (seconds, throughput): those go to the metrics JSON only, so a model file is the same bytes
whenever the same stage is re-run. The one reader outside this module is torch-fidelity's evalnet
feature extractor (digit/metrics/fid.py), which torch-fidelity builds from a weights path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import io
from pipeline.stage import StageError

MODEL_KEYS = ("kind", "config", "state_dict", "step", "extra")


def save_model(
    path: str | Path, kind: str, config: dict[str, Any], module=None, step: int = 0, **extra: Any
) -> None:
    """Write a model file atomically; ``module=None`` stores no weights."""
    weights = None
    if module is not None:
        weights = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    io.save_torch(
        path, {"kind": kind, "config": config, "state_dict": weights, "step": step, "extra": extra}
    )


def read_model(path: str | Path, kind: str) -> dict[str, Any]:
    """The dict of a model file of ``kind``; a missing file, another kind or another layout is an
    error naming the file."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: {kind} model not found (run the stage that writes it)")
    ckpt = io.load_torch(path)
    if not isinstance(ckpt, dict) or sorted(ckpt) != sorted(MODEL_KEYS):
        got = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise StageError(
            f"{path}: not a model file of this pipeline (keys {got}, expected {list(MODEL_KEYS)}); "
            "re-run the stage that writes it"
        )
    if ckpt["kind"] != kind:
        raise StageError(f"{path}: a {ckpt['kind']!r} model file, expected {kind!r}")
    return ckpt


def load_model(
    path: str | Path, kind: str, build: Callable[[dict[str, Any]], Any], device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """(module in eval mode on ``device``, the file's dict): ``build(config)`` rebuilds the module,
    then its weights load strictly."""
    ckpt = read_model(path, kind)
    module = build(ckpt["config"])
    module.load_state_dict(ckpt["state_dict"], strict=True)
    return module.to(device).eval(), ckpt


@dataclass
class Tokens:
    tokens: np.ndarray  # (N, L) int32, raster order
    vocab: int  # codebook size: K for disc tokens, the VQ codebook for vq tokens
    kind: str  # "disc" | "vq"


def load_tokens(path: str) -> Tokens:
    g = io.open_group(path)
    return Tokens(tokens=g["tokens"][:], vocab=int(g.attrs["k"]), kind=str(g.attrs["kind"]))


def check_rows(tokens: Tokens, n_images: int, path: str) -> None:
    """A token set must have one row per image of data/images.zarr."""
    if len(tokens.tokens) != n_images:
        raise StageError(
            f"{path}: {len(tokens.tokens)} token rows but {n_images} images; "
            "re-run the stages that write them"
        )
