"""digit.images: the uint8 <-> float conversion, bit for bit what each copy it replaced computed
(digit/vq.py, digit/metrics/evalnet.py, digit/encoders.py, digit/metrics/fid.py, the stability and
encoder_eval stages; kept here as references)."""

import numpy as np
import pytest
import torch

from digit.images import float_to_uint8, to_unit_float, uint8_to_float


def _uint8(shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, dtype, shape and memory layout (layout decides convolution kernels)."""
    return torch.equal(a, b) and a.dtype == b.dtype and a.stride() == b.stride()


@pytest.mark.parametrize("shape", [(5, 28, 28, 1), (4, 32, 32, 3), (2, 64, 48, 3)])
def test_same_bits_and_layout_as_the_old_copies(shape):
    u = _uint8(shape)
    new = uint8_to_float(u)
    assert _same(new, u.permute(0, 3, 1, 2).float().div_(255.0))  # vq, encoders.preprocess
    assert _same(new, u.permute(0, 3, 1, 2).float() / 255)  # the stability stage
    evalnet = torch.as_tensor(u.numpy()).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    assert _same(uint8_to_float(u.numpy()).contiguous(), evalnet)  # evalnet, from numpy
    nchw = u.permute(0, 3, 1, 2)
    for x in (nchw, nchw.expand(-1, 3, -1, -1) if shape[-1] == 1 else nchw):
        assert _same(to_unit_float(x), x.float() / 255.0)  # fid's torch-fidelity extractor
    flat = u.numpy().reshape(len(u), -1)
    old = flat.astype(np.float32) / 255.0  # encoder_eval's pixel baseline, in numpy
    new_flat = to_unit_float(u).reshape(len(u), -1).numpy()
    assert new_flat.dtype == old.dtype and np.array_equal(new_flat, old)


def test_all_byte_values_and_grayscale():
    u = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)  # (N, H, W): one channel
    x = uint8_to_float(u)
    assert x.shape == (1, 1, 16, 16)
    assert torch.equal(x.flatten(), torch.arange(256).float().div_(255.0))
    assert torch.equal(float_to_uint8(x)[..., 0], u)


def test_uint8_round_trip() -> None:
    images = _uint8((3, 28, 28, 3))
    x = uint8_to_float(images)
    assert x.shape == (3, 3, 28, 28) and x.dtype == torch.float32
    assert torch.equal(float_to_uint8(x), images)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, H, W, C\), got torch.float32"):
        uint8_to_float(x)
    with pytest.raises(ValueError, match="expected uint8 images, got torch.float32"):
        to_unit_float(x)
    assert torch.equal(
        float_to_uint8(torch.tensor([-0.5, 1.5, 0.5]).view(1, 3, 1, 1)).flatten(),
        torch.tensor([0, 255, 128], dtype=torch.uint8),
    )
