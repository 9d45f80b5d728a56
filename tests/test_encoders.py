"""Encoders: the small CNN's patch grid, and the DINOv2 path through timm with a local weights
file that the test writes itself (nothing is downloaded)."""

import pytest
import torch

from digit.encoders import ENCODERS, WeightsNotFoundError, build_encoder


def test_cnn_small_grid_and_backward():
    enc = build_encoder("cnn_small", in_channels=1, input_size=28, width=32)
    x = torch.randint(0, 256, (3, 28, 28, 1), dtype=torch.uint8)
    feats = enc(x)
    assert feats.shape == (3, 49, 32) and enc.grid() == (7, 7)
    assert torch.isfinite(feats).all()
    feats.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_dinov2_loads_local_weights_at_224(tmp_path):
    import timm

    # Written at timm's default 518 px, so loading at 224 px must resample the position table.
    source = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False)
    state = source.state_dict()
    weights = tmp_path / "dinov2_vits14_reg4.pth"
    torch.save(state, weights)
    enc = build_encoder("dinov2_vits14_reg4", input_size=224, weights=str(weights), layer=-3)
    assert enc.block_index == 9  # third-from-last of 12 blocks, as the paper
    for name in ("blocks.9.attn.qkv.weight", "blocks.0.mlp.fc1.bias", "reg_token", "norm.weight"):
        assert torch.equal(enc.model.state_dict()[name], state[name]), name
    x = torch.randint(0, 256, (2, 28, 28, 1), dtype=torch.uint8)
    with torch.no_grad():
        feats = enc(x)
    assert feats.shape == (2, 256, 384)  # 16 x 16 patches, CLS and registers dropped
    # The features are block 9's output through the final norm.
    with torch.no_grad():
        z = enc.model.patch_embed((enc.preprocess(x).expand(-1, 3, -1, -1) - enc.mean) / enc.std)
        z = enc.model.norm_pre(enc.model._pos_embed(z))
        for block in enc.model.blocks[:10]:
            z = block(z)
        expected = enc.model.norm(z)[:, enc.model.num_prefix_tokens :]
    torch.testing.assert_close(feats, expected)


def test_dinov2_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="encoder.weights"):
        build_encoder("dinov2_vitb14_reg4", input_size=224, weights=str(tmp_path / "nope.pth"))


def test_registry_is_complete():
    assert "cnn_small" in ENCODERS and "dinov2_vitb14_reg4" in ENCODERS
    with pytest.raises(KeyError, match="encoder.name"):
        build_encoder("vit_tiny")
