"""Encoder model files: the trained small encoder, or a verified pointer to frozen weights (timm).

Model files describe themselves (pipeline/checkpoints.py): the encoder's holds its registry name
and builder arguments, so the loader rebuilds the module from the file alone and loads weights
strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from digit.encoders import TRAINABLE, FrozenEncoder, build_encoder, file_sha256
from pipeline.checkpoints import read_model, save_model
from pipeline.stage import StageError


def save_encoder(path: str | Path, encoder: FrozenEncoder, kwargs: dict, **extra) -> None:
    """The encoder's model file: a trained encoder with its weights; a frozen one (DINOv2, any timm
    backbone) as a verified pointer (the sha256 of the weights file, which stays where the user
    keeps it)."""
    config = {"name": encoder.name, "kwargs": kwargs}
    if encoder.name not in TRAINABLE:
        extra["weights_sha256"] = file_sha256(kwargs["weights"])
        save_model(path, "encoder", config, None, **extra)
    else:
        save_model(path, "encoder", config, encoder, **extra)


def load_encoder(path: str, device: str = "cpu") -> FrozenEncoder:
    ckpt = read_model(path, "encoder")
    name, kwargs, extra = ckpt["config"]["name"], ckpt["config"]["kwargs"], ckpt["extra"]
    if "random_init_seed" in extra:  # a random-weights baseline too large to store (timm)
        torch.manual_seed(extra["random_init_seed"])
        return build_encoder(name, **kwargs, pretrained=False).to(device).eval()
    encoder = build_encoder(name, **kwargs)
    if ckpt["state_dict"] is not None:
        encoder.load_state_dict(ckpt["state_dict"], strict=True)
    elif extra.get("weights_sha256") != file_sha256(kwargs["weights"]):
        raise StageError(
            f"encoder.weights: {kwargs['weights']} changed since the ssl stage ran "
            "(sha256 differs); re-run `dvc repro`"
        )
    return encoder.to(device).eval()
