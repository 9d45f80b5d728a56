"""Frozen self-supervised encoders by name, all with one interface: uint8 images -> patch features.

The paper tokenizes the patch features of a frozen DINOv2 ViT-B/14 with 4 registers: the output of
the third-from-last block, passed through the final LayerNorm, with the CLS and register tokens
dropped (docs/paper.md, "The recipe as published"). ``dinov2_*`` loads those models through timm from a
local weights file only. ``cnn_small`` is the in-house encoder of the embedded default: a small
convolutional network whose stride-4 feature map is the patch grid (7x7 for 28x28 MNIST); planning
found that small ViTs trained for minutes on a CPU give tokens no better than random ones (their
patch features seemed dominated by position; DINO collapsed), while this CNN trained with SimCLR
gives tokens that beat a random CNN's and a VQ-VAE's in a token probe.

Every encoder exposes ``patch``, ``dim``, ``grid(size)``, ``preprocess(uint8 NHWC) -> float NCHW in
[0, 1] at the encoder's input size`` and ``patch_features(x01) -> (B, L, D)``; ``forward`` chains the
two. Pixel perturbations for the stability table are applied between the two, in [0, 1] space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from digit.images import uint8_to_float
from digit.registry import DINOV2_TIMM, ENCODER_PATCH, TRAINABLE_ENCODERS


class FrozenEncoder(nn.Module):
    name: str
    patch: int
    dim: int
    input_size: int

    def grid(self) -> tuple[int, int]:
        side = self.input_size // self.patch
        return side, side

    @property
    def n_tokens(self) -> int:
        h, w = self.grid()
        return h * w

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) uint8 -> (B, C, S, S) float in [0, 1] at the encoder's input size."""
        x = uint8_to_float(images)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            # The paper resizes 256 px crops to 224 px with bicubic interpolation for DINOv2.
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bicubic", antialias=True
            ).clamp_(0.0, 1.0)
        return x

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, L, D)
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_features(self.preprocess(images))


# --- in-house small CNN -----------------------------------------------------------------------


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(h)))


class SmallConvEncoder(FrozenEncoder):
    """conv 3x3 -> two stride-2 convs -> 2 residual blocks; the stride-4 map is the patch grid.

    No position embedding: a token then describes local content, not where it sits, which is what
    K-Means over patch features needs (planning saw ViT patch features dominated by position).
    """

    def __init__(self, in_channels: int = 1, width: int = 128, input_size: int = 28):
        super().__init__()
        self.name, self.dim, self.input_size = "cnn_small", width, input_size
        self.patch = ENCODER_PATCH[self.name]  # two stride-2 convolutions
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            _conv_bn(in_channels, width // 4),
            _conv_bn(width // 4, width // 2, stride=2),
            _conv_bn(width // 2, width, stride=2),
        )
        self.blocks = nn.Sequential(ResBlock(width), ResBlock(width))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, D, S/4, S/4)
        return self.blocks(self.stem((x - 0.5) / 0.5))

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            x = x.mean(1, keepdim=True) if self.in_channels == 1 else x.expand(-1, 3, -1, -1)
        return self.feature_map(x).flatten(2).transpose(1, 2)  # (B, L, D)


# --- DINOv2 through timm ----------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsNotFoundError(FileNotFoundError):
    pass


class DinoV2Encoder(FrozenEncoder):
    """A timm DINOv2 ViT; features of block ``layer`` after the final norm, prefix tokens dropped."""

    def __init__(
        self,
        name: str,
        weights: str | Path | None,
        layer: int = -3,
        input_size: int = 224,
        pretrained: bool = True,
    ):
        super().__init__()
        import timm

        if pretrained and (weights is None or not Path(weights).is_file()):
            raise WeightsNotFoundError(
                f"encoder.weights: DINOv2 weights file {weights!r} not found; download "
                f"{DINOV2_TIMM[name]} (.pth or .safetensors) once and set encoder.weights to its "
                "local path (nothing is fetched at run time)"
            )
        self.name, self.patch, self.input_size = name, ENCODER_PATCH[name], input_size
        self.weights_file = str(weights)
        self.model = timm.create_model(
            DINOV2_TIMM[name],
            pretrained=pretrained,
            pretrained_cfg_overlay=dict(file=str(weights)) if pretrained else None,
            img_size=input_size,
            num_classes=0,
        )
        self.model.eval()
        n_blocks = len(self.model.blocks)
        self.block_index = layer % n_blocks
        if not -n_blocks <= layer < n_blocks:
            raise ValueError(f"encoder.layer: {layer} out of range for {n_blocks} blocks")
        self.dim = self.model.embed_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        (feats,) = self.model.forward_intermediates(
            x,
            indices=[self.block_index],
            norm=True,  # the final LayerNorm, as the paper
            output_fmt="NLC",
            intermediates_only=True,
        )
        return feats  # (B, L, D), prefix (CLS, register) tokens dropped


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- registry ---------------------------------------------------------------------------------

EncoderBuilder = Callable[..., FrozenEncoder]


def _cnn_small(in_channels: int, input_size: int, width: int = 128, **_: object) -> FrozenEncoder:
    return SmallConvEncoder(in_channels=in_channels, width=width, input_size=input_size)


def _dinov2(name: str) -> EncoderBuilder:
    def build(
        input_size: int,
        weights: str | None = None,
        layer: int = -3,
        pretrained: bool = True,
        **_: object,
    ) -> FrozenEncoder:
        return DinoV2Encoder(name, weights, layer, input_size, pretrained)

    return build


ENCODERS: dict[str, EncoderBuilder] = {"cnn_small": _cnn_small} | {
    name: _dinov2(name) for name in DINOV2_TIMM
}
TRAINABLE = set(TRAINABLE_ENCODERS)


def build_encoder(name: str, **kwargs: object) -> FrozenEncoder:
    """kwargs: in_channels, input_size, width (cnn_small); weights, layer (DINOv2)."""
    if name not in ENCODERS:
        raise KeyError(f"encoder.name: unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name](**kwargs)
