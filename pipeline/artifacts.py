"""Loaders for artifacts that several stages read: images, encoders, features, tokens.

Checkpoints describe themselves (STYLE.md 8): the encoder file holds its registry name and builder
arguments, so a loader rebuilds the module from the file alone and loads weights strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digit.encoders import FrozenEncoder, build_encoder, file_sha256
from pipeline import io
from pipeline.stage import StageError


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


def encoder_checkpoint(encoder: FrozenEncoder, kwargs: dict, **extra) -> dict:
    ckpt = {"name": encoder.name, "kwargs": kwargs, **extra}
    if encoder.name.startswith("dinov2"):
        # A verified pointer: the frozen weights stay where the user keeps them.
        ckpt["weights_sha256"] = file_sha256(kwargs["weights"])
    else:
        ckpt["state_dict"] = encoder.state_dict()
    return ckpt


def load_encoder(path: str, device: str = "cpu") -> FrozenEncoder:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: encoder checkpoint not found (run the ssl stage)")
    ckpt = io.load_torch(path)
    if "random_init_seed" in ckpt:  # a random-weights baseline too large to store (DINOv2)
        torch.manual_seed(ckpt["random_init_seed"])
        return build_encoder(ckpt["name"], **ckpt["kwargs"], pretrained=False).to(device).eval()
    encoder = build_encoder(ckpt["name"], **ckpt["kwargs"])
    if "state_dict" in ckpt:
        encoder.load_state_dict(ckpt["state_dict"], strict=True)
    elif ckpt.get("weights_sha256") != file_sha256(ckpt["kwargs"]["weights"]):
        raise StageError(
            f"encoder.weights: {ckpt['kwargs']['weights']} changed since the ssl stage ran "
            "(sha256 differs); re-run `dvc repro`"
        )
    return encoder.to(device).eval()
