"""pipeline/stages/sampling.py (Fig. 6): every setting of the top-k / top-p sweep changes what the
token model samples, and only that: the same random streams, temperature and renderer for all.
Tiny random models; the FID / IS computation is replaced by a record of the images it gets."""

from pathlib import Path

import numpy as np
import pytest
import torch

from digit.gpt import build_gpt
from digit.vq import VQVAE, VQConfig
from pipeline import params as P
from pipeline.images import Images
from pipeline.stages import sampling as stage

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def sharp(model):
    """Peakier distributions than the 0.02 init, so that filtering changes the samples."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    return model.eval()


def test_settings_are_the_two_sweeps():
    params = P.load(ROOT / "params.yaml")
    s = params.sampling.model_copy(update={"top_k": [8, 0], "top_p": [0.6, 0.9]})
    rows = stage.settings(params.model_copy(update={"sampling": s}))
    assert rows == [
        {"sweep": "top_k", "top_k": 8, "top_p": 1.0},
        {"sweep": "top_k", "top_k": 0, "top_p": 1.0},
        {"sweep": "top_p", "top_k": 0, "top_p": 0.6},
        {"sweep": "top_p", "top_k": 0, "top_p": 0.9},
    ]


def test_each_setting_changes_what_is_sampled(tmp_path, monkeypatch):
    params = P.load(ROOT / "params.yaml")
    params = params.model_copy(
        update={
            "device": "cpu",
            # top-k 1 (greedy), 4, off; top-p 0.5, and 1.0 = the same "both off" as top-k 0
            "sampling": params.sampling.model_copy(
                update={"n_samples": 16, "top_k": [1, 4, 0], "top_p": [0.5, 1.0]}
            ),
        }
    )
    torch.manual_seed(0)
    models = {
        "ar": sharp(build_gpt("tiny", vocab_size=16, block_size=8)),
        "renderer": sharp(
            build_gpt("tiny", vocab_size=16, block_size=16, prefix_vocab_size=16, prefix_len=8)
        ),
        "vq": VQVAE(VQConfig(image_size=16, hidden=16, code_dim=8, codebook_size=16)).eval(),
    }
    val = np.full((5, 16, 16, 1), 7, dtype=np.uint8)
    images = Images(
        np.concatenate([np.zeros((3, 16, 16, 1), np.uint8), val]),
        np.zeros(8, dtype=int),
        np.arange(8) >= 3,
        ["a"],
    )
    sampled, scored = [], []

    def sample_token_model(p, model, n, device):
        out = real_sample(p, model, n, device)
        sampled.append((p.generate.token_model, out[0]))
        return out

    def fidelity(params, pixels, ref, evalnet):
        assert np.array_equal(ref, val) and evalnet == "evalnet.pt"
        scored.append(pixels)
        return {"fid": float(pixels.mean()), "isc_mean": 1.0, "not_kept": 0.0}

    real_sample = stage.sample_token_model
    monkeypatch.setattr(stage, "sample_token_model", sample_token_model)
    monkeypatch.setattr(stage, "fidelity", fidelity)
    monkeypatch.setattr(stage, "load_images", lambda path: images)
    monkeypatch.setattr(stage, "load_model", lambda path, kind, build, device: (models[path], {}))
    out = stage.run(params, "ar", "renderer", "vq", "i", "evalnet.pt", str(tmp_path / "s.json"))

    rows = out["rows"]
    assert [(r["top_k"], r["top_p"]) for r in rows] == [
        (1, 1.0),
        (4, 1.0),
        (0, 1.0),
        (0, 0.5),
        (0, 1.0),
    ]
    base = params.generate.token_model
    for row, (settings, tokens) in zip(rows, sampled, strict=True):
        # the row's filter and nothing else: temperature as in generate.token_model
        assert settings == base.model_copy(update={"top_k": row["top_k"], "top_p": row["top_p"]})
        assert tokens.shape == (16, 8)
        assert row["distinct_tokens"] == len(tokens.unique())
        assert set(row) == {"sweep", "top_k", "top_p", "fid", "isc_mean", "distinct_tokens"}
    tokens = [t for _, t in sampled]
    # greedy: every sample is the same sequence; more filtering, fewer distinct ids
    assert len(tokens[0].unique(dim=0)) == 1
    assert rows[0]["distinct_tokens"] < rows[1]["distinct_tokens"] <= rows[2]["distinct_tokens"]
    # the same setting in both sweeps: the same random streams give the same samples and images
    assert torch.equal(tokens[2], tokens[4]) and np.array_equal(scored[2], scored[4])
    # every other pair of settings samples differently, down to the rendered images
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(tokens[i], tokens[j]), (i, j)
            assert not np.array_equal(scored[i], scored[j]), (i, j)
    assert scored[0].shape == (16, 16, 16, 1) and scored[0].dtype == np.uint8
    assert out["extractor"] == "evalnet" and out["n_samples"] == 16
