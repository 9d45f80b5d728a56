"""Frozen self-supervised encoders by name, all with one interface: uint8 images -> patch features.

The paper tokenizes the patch features of a frozen DINOv2 ViT-B/14 with 4 registers: the output of
the third-from-last block, passed through the final LayerNorm, with the CLS and register tokens
dropped (docs/paper.md, "The recipe as published"). ``dinov2_*`` names those models, and
``timm:<model name>`` any other timm backbone (MAE, DINO, CLIP ViTs, ResNets, ...); all load from a
local weights file only (``TimmEncoder``). ``cnn_small`` is the in-house encoder of the embedded default: a small
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
from digit.registry import DINOV2_TIMM, ENCODER_PATCH, TIMM_PREFIX, TRAINABLE_ENCODERS


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


# --- any timm backbone (DINOv2 and the rest) --------------------------------------------------


class WeightsNotFoundError(FileNotFoundError):
    pass


class EncoderError(ValueError):
    """A wrong encoder name or weights that do not fit it, phrased as one line naming the key."""


def timm_model_name(name: str) -> str:
    """Our encoder name -> timm's model name (``dinov2_*`` are aliases, ``timm:<name>`` is any)."""
    return DINOV2_TIMM[name] if name in DINOV2_TIMM else name.removeprefix(TIMM_PREFIX)


def _create(model_name: str, input_size: int):
    """timm's architecture, random weights, no classifier; ViTs built at ``input_size``."""
    import timm

    if not timm.is_model(model_name):
        stem = model_name.split(".")[0].split("_")[0]
        near = ", ".join(timm.list_models(f"{stem}*")[:5]) or "none"
        raise EncoderError(f"encoder.name: timm has no model {model_name!r} (e.g. {near})")
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=0, img_size=input_size)
    except TypeError as err:  # CNNs take any size and no img_size argument
        if "img_size" not in str(err):
            raise
        return timm.create_model(model_name, pretrained=False, num_classes=0)


def _load_weights(model: nn.Module, model_name: str, weights: str | Path) -> None:
    """Strictly, from the local file: timm's own checkpoint filter for the family (format
    conversion, position-table resampling) first; only a classifier head may be left over."""
    import sys

    from timm.models import load_state_dict

    state = load_state_dict(str(weights))
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, model)
    head = model.pretrained_cfg.get("classifier") or ()
    heads = (head,) if isinstance(head, str) else tuple(head)
    state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{h}." for h in heads))}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape that does not fit
        detail = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err))
        raise EncoderError(
            f"encoder.weights: {weights} does not fit timm model {model_name!r}: {detail}"
        ) from None
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise EncoderError(
            f"encoder.weights: {weights} does not fit timm model {model_name!r}: {what}"
            f" ({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )


class TimmEncoder(FrozenEncoder):
    """A frozen timm backbone, weights from a local file, normalised as its pretrained config says.

    ViTs (DINOv2, MAE, DINO, CLIP, ...): the output of block ``layer`` (the paper: third-from-last)
    through the final norm, with the prefix tokens dropped whatever their count (CLS, registers);
    the patch grid is the patch embedding's. CNNs (ResNets, ConvNeXts, ...): ``layer`` indexes the
    feature stages of timm's ``feature_info`` (negative from the end) and that stage's map is the
    patch grid, one token per position, its stride the patch (a ResNet at 224 px: -2 is stride 16,
    14 x 14 tokens, the analogue of a ViT/16 grid; -3 is stride 8)."""

    def __init__(
        self,
        name: str,
        weights: str | Path | None,
        layer: int = -3,
        input_size: int = 224,
        pretrained: bool = True,
    ):
        super().__init__()
        if pretrained and (weights is None or not Path(weights).is_file()):
            raise WeightsNotFoundError(
                f"encoder.weights: weights file {weights!r} for {timm_model_name(name)} not "
                "found; save its state dict (.pth or .safetensors) once and set encoder.weights "
                "to its local path (nothing is fetched at run time)"
            )
        self.name, self.input_size, self.weights_file = name, input_size, str(weights)
        model_name = timm_model_name(name)
        self.model = _create(model_name, input_size).eval()
        if pretrained:
            _load_weights(self.model, model_name, weights)
        self.is_vit = hasattr(self.model, "patch_embed") and hasattr(self.model, "blocks")
        if self.is_vit:
            n = len(self.model.blocks)
            self.patch, self.dim = self.model.patch_embed.patch_size[0], self.model.embed_dim
        else:
            n = len(self.model.feature_info)
        if not -n <= layer < n:
            what = "blocks" if self.is_vit else "feature stages"
            raise EncoderError(f"encoder.layer: {layer} out of range for {n} {what} of {name}")
        self.block_index = layer % n
        if not self.is_vit:
            stage = self.model.feature_info[self.block_index]
            self.patch, self.dim = stage["reduction"], stage["num_chs"]
        if input_size % self.patch:
            raise EncoderError(
                f"encoder.input_size: {input_size} px is not divisible by the patch size "
                f"{self.patch} of encoder {name!r}"
            )
        cfg = self.model.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if self.is_vit:
            (feats,) = self.model.forward_intermediates(
                x,
                indices=[self.block_index],
                norm=True,  # the final LayerNorm, as the paper
                output_fmt="NLC",
                intermediates_only=True,
            )
            return feats  # (B, L, D), prefix tokens dropped
        (fmap,) = self.model.forward_intermediates(
            x, indices=[self.block_index], intermediates_only=True
        )
        return fmap.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, L, D)


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


def _timm(name: str) -> EncoderBuilder:
    def build(
        input_size: int,
        weights: str | None = None,
        layer: int = -3,
        pretrained: bool = True,
        **_: object,
    ) -> FrozenEncoder:
        return TimmEncoder(name, weights, layer, input_size, pretrained)

    return build


ENCODERS: dict[str, EncoderBuilder] = {"cnn_small": _cnn_small} | {
    name: _timm(name) for name in DINOV2_TIMM
}
TRAINABLE = set(TRAINABLE_ENCODERS)


def patch_size(name: str, input_size: int, layer: int = -3) -> int:
    """Pixels per token side, without weights: the registry's, or the timm architecture's."""
    if name in ENCODER_PATCH:
        return ENCODER_PATCH[name]
    return TimmEncoder(name, None, layer, input_size, pretrained=False).patch


def build_encoder(name: str, **kwargs: object) -> FrozenEncoder:
    """kwargs: in_channels, input_size, width (cnn_small); weights, layer (timm backbones)."""
    if name.startswith(TIMM_PREFIX):
        return _timm(name)(**kwargs)
    if name not in ENCODERS:
        raise KeyError(
            f"encoder.name: unknown encoder {name!r}; known: {sorted(ENCODERS)} or "
            f"{TIMM_PREFIX}<any timm model name>"
        )
    return ENCODERS[name](**kwargs)
