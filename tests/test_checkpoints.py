"""pipeline/checkpoints.py: the one model-file format, written by save_model and read strictly by
read_model / load_model for every kind (GPT, VQ, encoder; the evalnet's is in test_fid.py)."""

import dataclasses
import hashlib

import pytest
import torch

from digit.encoders import build_encoder
from digit.gpt import GPT, build_gpt
from digit.vq import VQVAE, VQConfig
from pipeline.checkpoints import MODEL_KEYS, load_model, read_model, save_model
from pipeline.encoder_files import load_encoder, save_encoder
from pipeline.stage import StageError


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gpt_and_vq_round_trip(tmp_path):
    torch.manual_seed(0)
    gpt = build_gpt("tiny", vocab_size=16, block_size=8)
    save_model(tmp_path / "g.pt", "gpt", dataclasses.asdict(gpt.config), gpt, 7, token_kind="vq")
    back, ckpt = load_model(tmp_path / "g.pt", "gpt", GPT.from_config)
    assert sorted(ckpt) == sorted(MODEL_KEYS) and ckpt["step"] == 7
    assert ckpt["extra"] == {"token_kind": "vq"} and not back.training
    for (k, a), b in zip(gpt.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), k

    vq = VQVAE(VQConfig(hidden=16, code_dim=8, codebook_size=8, n_res_blocks=0))
    save_model(tmp_path / "v.pt", "vq", dataclasses.asdict(vq.cfg), vq, 3)
    back, _ = load_model(tmp_path / "v.pt", "vq", VQVAE.from_config)
    assert back.cfg == vq.cfg
    assert torch.equal(back.quantizer.embed, vq.quantizer.embed)  # buffers travel too

    with pytest.raises(StageError, match="a 'vq' model file, expected 'gpt'"):
        load_model(tmp_path / "v.pt", "gpt", GPT.from_config)
    with pytest.raises(FileNotFoundError, match="gpt model not found"):
        read_model(tmp_path / "nope.pt", "gpt")
    ckpt = torch.load(tmp_path / "v.pt", weights_only=False)
    torch.save({**ckpt, "metrics": {}}, tmp_path / "extra_key.pt")  # an unknown top-level key
    with pytest.raises(StageError, match="not a model file"):
        read_model(tmp_path / "extra_key.pt", "vq")
    torch.save({**ckpt, "config": {**ckpt["config"], "depth": 2}}, tmp_path / "bad_config.pt")
    with pytest.raises(TypeError, match="depth"):
        load_model(tmp_path / "bad_config.pt", "vq", VQVAE.from_config)
    weights = {k: v for k, v in ckpt["state_dict"].items() if "decoder" not in k}
    torch.save({**ckpt, "state_dict": weights}, tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_model(tmp_path / "missing.pt", "vq", VQVAE.from_config)


def test_model_files_are_byte_deterministic(tmp_path):
    """The same model saved twice to the same path is the same bytes (DVC sees no change)."""
    shas = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_gpt("tiny", vocab_size=16, block_size=8)
        save_model(tmp_path / "m.pt", "gpt", dataclasses.asdict(model.config), model, 1, params={})
        shas.append(_sha(tmp_path / "m.pt"))
    assert shas[0] == shas[1]


def test_encoder_round_trip(tmp_path):
    kwargs = {"in_channels": 1, "input_size": 28, "width": 16}
    torch.manual_seed(0)
    enc = build_encoder("cnn_small", **kwargs)
    save_encoder(tmp_path / "e.pt", enc, kwargs, history={"final_loss": 1.0})
    back = load_encoder(str(tmp_path / "e.pt"))
    x = torch.randint(0, 256, (2, 28, 28, 1), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(enc.eval()(x), back(x))
    ckpt = read_model(tmp_path / "e.pt", "encoder")
    assert ckpt["config"] == {"name": "cnn_small", "kwargs": kwargs}
    assert ckpt["extra"] == {"history": {"final_loss": 1.0}}
    with pytest.raises(StageError, match="expected 'gpt'"):
        read_model(tmp_path / "e.pt", "gpt")
