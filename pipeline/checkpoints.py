"""Model files and token sets of the generative half: the self-describing checkpoints of the GPTs
(stage 1, stage 2) and of the VQ autoencoder, and the token stores they are trained on.

A model file holds what rebuilds the module (its config), the weights, the step, and the resolved
params and metrics of the run that made it (STYLE.md 8); loaders rebuild from the file alone and load
strictly. Kept apart from pipeline/artifacts.py so that the foundation stages, which list that file
as a dep, do not re-run when these formats change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digit.gpt import GPT
from digit.vq import VQVAE, VQConfig
from pipeline import io
from pipeline.stage import StageError


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


def _weights(module) -> dict[str, Any]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _checkpoint(kind: str, config_key: str, config: Any, module, step: int, extra: dict) -> dict:
    return {
        "kind": kind,
        config_key: dataclasses.asdict(config),
        "state_dict": _weights(module),
        "step": step,
        **extra,
    }


def gpt_checkpoint(model: GPT, step: int, **extra: Any) -> dict[str, Any]:
    """A GPT model file: config, weights, step, and ``extra`` (resolved params, objective, token
    kind, metrics)."""
    return _checkpoint("gpt", "model_config", model.config, model, step, extra)


def load_gpt(path: str, device: str = "cpu") -> tuple[GPT, dict[str, Any]]:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: model not found (run the stage that trains it)")
    ckpt = io.load_torch(path)
    model = GPT.from_config(ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.to(device).eval(), ckpt


def vq_checkpoint(model: VQVAE, step: int, **extra: Any) -> dict[str, Any]:
    """A VQ autoencoder model file: config, weights (codebook buffers included), step, ``extra``."""
    return _checkpoint("vq", "vq_config", model.cfg, model, step, extra)


def load_vq(path: str, device: str = "cpu") -> tuple[VQVAE, dict[str, Any]]:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: VQ model not found (run the vq stage)")
    ckpt = io.load_torch(path)
    model = VQVAE(VQConfig(**ckpt["vq_config"]))
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.to(device).eval(), ckpt
