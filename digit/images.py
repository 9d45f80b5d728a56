"""uint8 images <-> float images in [0, 1]: the one conversion every model, metric and stage uses.

Images are stored as uint8 (N, H, W, C); the networks take float32 (N, C, H, W) in [0, 1].
``uint8_to_float`` returns a channels-first *view order* of the input's memory (for C > 1 the
result has channels-last strides; call ``.contiguous()`` where NCHW memory is wanted), computed on
the input's device. ``to_unit_float`` only scales, keeping shape and layout.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 -> float32 in [0, 1] (x / 255), same shape and memory layout."""
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {x.dtype}")
    return x.float().div_(255.0)


def uint8_to_float(images: Tensor | np.ndarray) -> Tensor:
    """uint8 (N, H, W, C), or (N, H, W) for one channel -> float32 (N, C, H, W) in [0, 1]."""
    x = images if torch.is_tensor(images) else torch.as_tensor(np.asarray(images))
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {x.dtype} {tuple(x.shape)}")
    if x.dim() == 3:
        x = x.unsqueeze(-1)
    if x.dim() != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got shape {tuple(x.shape)}")
    return to_unit_float(x.permute(0, 3, 1, 2))


def float_to_uint8(x: Tensor) -> Tensor:
    """float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C): clamped, times 255, rounded."""
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W), got {tuple(x.shape)}")
    return (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
