"""Encoders: the small CNN's patch grid, and the timm path (DINOv2 and any other backbone) with
local weights files that the tests write themselves (nothing is downloaded)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from digit.encoders import ENCODERS, EncoderError, WeightsNotFoundError, build_encoder

ROOT = Path(__file__).resolve().parents[1]


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


# --- any timm backbone, through the stage code --------------------------------------------------

# (encoder.name, encoder.input_size, encoder.layer, (tokens, dim)): a ViT with one prefix token
# (CLS), a ViT with registers (CLS + 4), a CNN whose stride-16 stage is the patch grid.
FAMILIES = [
    ("timm:vit_tiny_patch16_224", 32, -3, (4, 192)),
    ("timm:vit_small_patch14_reg4_dinov2", 28, -3, (4, 384)),
    ("timm:resnet18", 32, -2, (4, 256)),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Six random 28-px grey images, as the prepare stage writes them."""
    from pipeline import io

    path = tmp_path_factory.mktemp("images") / "images.zarr"
    rng = np.random.default_rng(0)
    with io.zarr_group_writer(path) as g:
        io.create_array(g, "images", (6, 28, 28, 1), 6, "uint8")[:] = rng.integers(
            0, 256, (6, 28, 28, 1), dtype=np.uint8
        )
        io.create_array(g, "labels", (6,), 6, "int64")[:] = np.arange(6) % 2
        io.create_array(g, "is_val", (6,), 6, "bool")[:] = np.arange(6) >= 4
        g.attrs.update(class_names=["a", "b"])
    return str(path)


def encoder_params(name: str, weights, input_size: int, layer: int, row: str | None = None):
    """params.yaml with this encoder as the main one, or (``row``) as that row of the encoder axis
    beside the default's main encoder."""
    from pipeline.checks import validate

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["device"] = "cpu"
    encoder = dict(name=name, weights=str(weights), input_size=input_size, layer=layer)
    if row:
        raw["encoders"] = {row: {"label": row, **encoder}}
    else:
        raw["encoder"].update(encoder)  # the default's row stays a cnn_small trained as MAE
    return validate(raw)


def timm_reference(model_name: str, weights, input_size: int, layer: int, x01):
    """timm's own forward with timm's own loading of the same file: block ``layer`` through the
    final norm without prefix tokens (ViT), or feature stage ``layer`` (CNN)."""
    import timm

    overlay = dict(file=str(weights))
    common = dict(pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0)
    probe = timm.create_model(model_name, pretrained=False)
    cfg = timm.data.resolve_model_data_config(probe)
    x = (x01.expand(-1, 3, -1, -1) - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(
        cfg["std"]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        if hasattr(probe, "blocks"):
            model = timm.create_model(model_name, img_size=input_size, **common).eval()
            z = model.norm_pre(model._pos_embed(model.patch_embed(x)))
            for block in model.blocks[: layer % len(model.blocks) + 1]:
                z = block(z)
            return model.norm(z)[:, model.num_prefix_tokens :]
        index = layer % len(probe.feature_info)
        model = timm.create_model(
            model_name, features_only=True, out_indices=(index,), **common
        ).eval()
        (fmap,) = model(x)
        return fmap.flatten(2).transpose(1, 2)


@pytest.mark.parametrize(("name", "size", "layer", "shape"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_timm_backbone_through_the_stages(tmp_path, images, name, size, layer, shape):
    import timm

    from pipeline.encoder_files import load_encoder
    from pipeline.stages import ssl

    model_name = name.removeprefix("timm:")
    torch.manual_seed(0)
    weights = tmp_path / "weights.pth"  # as released: with its classifier head, timm's key names
    torch.save(timm.create_model(model_name, pretrained=False).state_dict(), weights)
    params = encoder_params(name, weights, size, layer)
    out, random_out = tmp_path / "encoder.pt", tmp_path / "encoder_random.pt"
    ssl.run(params, images, str(out), str(random_out), str(tmp_path / "ssl.json"))
    encoder = load_encoder(str(out))
    x = torch.randint(0, 256, (2, 28, 28, 1), dtype=torch.uint8)
    with torch.no_grad():
        feats = encoder(x)
        random_feats = load_encoder(str(random_out))(x)
    assert feats.shape == (2, *shape) and encoder.grid() == (2, 2)
    expected = timm_reference(model_name, weights, size, layer, encoder.preprocess(x))
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-4)
    assert random_feats.shape == feats.shape and not torch.allclose(random_feats, feats)
    # The same backbone as a row of the encoder axis (Fig. 4a) goes through the same code.
    row_params = encoder_params(name, weights, size, layer, row="mine")
    assert row_params.encoder.name == "cnn_small"  # the main encoder stays the default's
    row_out = tmp_path / "encoder_mine.pt"
    summary = ssl.run(
        row_params,
        images,
        str(row_out),
        str(tmp_path / "r.pt"),
        str(tmp_path / "s.json"),
        row="mine",
    )
    assert summary["encoder"] == name and summary["objective"] == "none"
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(str(row_out))(x), feats, rtol=0, atol=0)


def test_timm_backbone_errors_name_the_key(tmp_path):
    import timm

    from pipeline.checks import validate
    from pipeline.params import ParamsError
    from pipeline.stage import StageError
    from pipeline.stages import vq

    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    with pytest.raises(EncoderError, match=r"encoder\.name: timm has no model 'resnet19'"):
        build_encoder("timm:resnet19", input_size=32, weights=str(weights))
    with pytest.raises(
        EncoderError, match=r"encoder\.weights: .*does not fit timm model 'resnet34'"
    ):
        build_encoder("timm:resnet34", input_size=32, weights=str(weights))
    with pytest.raises(EncoderError, match=r"encoder\.weights: .*does not fit.*vit_tiny"):
        build_encoder("timm:vit_tiny_patch16_224", input_size=32, weights=str(weights))
    with pytest.raises(WeightsNotFoundError, match=r"encoder\.weights"):
        build_encoder("timm:resnet18", input_size=32, weights=str(tmp_path / "nope.pth"))
    with pytest.raises(EncoderError, match=r"encoder\.layer"):
        build_encoder("timm:resnet18", input_size=32, weights=str(weights), layer=5)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["encoder"].update(name="timm:", weights=str(weights))
    with pytest.raises(ParamsError, match=r"encoder\.name"):
        validate(raw)
    # The VQ grid of a timm backbone is checked where its architecture is known.
    params = encoder_params("timm:resnet18", weights, 112, -2)  # stride 16: a 7x7 grid
    assert vq.token_grid(params) == 7
    with pytest.raises(StageError, match=r"data\.image_size"):
        vq.token_grid(encoder_params("timm:resnet18", weights, 48, -2))  # 3x3: 28 px / 3
