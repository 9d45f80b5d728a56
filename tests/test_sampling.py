"""pipeline/stages/sampling.py (Fig. 6, the sampling search): every sampling step of a side is
searched over the same grid, scored against train images, the best selected; the same random
streams and temperatures for every setting. Tiny random models; the FID computation is replaced
by a record of the images it gets."""

from pathlib import Path

import numpy as np
import pytest
import torch

from digit.gpt import build_gpt
from digit.vq import VQVAE, VQConfig
from pipeline import checks
from pipeline import params as P
from pipeline.images import Images
from pipeline.stage import StageError
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


def test_the_grid_is_the_two_sweeps():
    params = checks.load(ROOT / "params.yaml")
    s = params.sampling.model_copy(update={"top_k": [8, 0], "top_p": [0.6, 0.9]})
    assert stage.grid(params.model_copy(update={"sampling": s})) == [
        {"top_k": 8, "top_p": 1.0},
        {"top_k": 0, "top_p": 1.0},
        {"top_k": 0, "top_p": 0.6},
        {"top_k": 0, "top_p": 0.9},
    ]


def test_the_grid_must_hold_the_untruncated_setting():
    raw = {"n_samples": 8, "top_k": [8], "top_p": [0.9]}
    with pytest.raises(Exception, match="top_k: the grid must hold 0"):
        P.SamplingParams(**raw)


def searched(tmp_path, monkeypatch, renderer: bool, n_reference: int = 3):
    """The search run on tiny random models: (summary, [(token-model settings, tokens)],
    [(renderer settings, prefix)], [scored images])."""
    params = checks.load(ROOT / "params.yaml")
    params = params.model_copy(
        update={
            "device": "cpu",
            "sampling": params.sampling.model_copy(
                update={
                    "n_samples": 16,
                    "n_reference": n_reference,
                    "top_k": [1, 0],
                    "top_p": [0.5],
                }
            ),
        }
    )
    torch.manual_seed(0)
    models = {
        "ar": sharp(build_gpt("tiny", vocab_size=16, block_size=8)),
        "ar_vq": sharp(build_gpt("tiny", vocab_size=16, block_size=16)),
        "renderer": sharp(
            build_gpt("tiny", vocab_size=16, block_size=16, prefix_vocab_size=16, prefix_len=8)
        ),
        "vq": VQVAE(VQConfig(image_size=16, hidden=16, code_dim=8, codebook_size=16)).eval(),
    }
    train = np.zeros((3, 16, 16, 1), np.uint8)
    images = Images(
        np.concatenate([train, np.full((5, 16, 16, 1), 7, np.uint8)]),
        np.zeros(8, dtype=int),
        np.arange(8) >= 3,
        ["a"],
    )
    sampled, rendered, scored = [], [], []
    real_sample, real_render = stage.sample_token_model, stage.render

    def sample_token_model(p, model, n, device):
        out = real_sample(p, model, n, device)
        sampled.append((p.generate.token_model, out[0]))
        return out

    def render(p, model, prefix, device):
        rendered.append((p.generate.renderer_causal, prefix))
        return real_render(p, model, prefix, device)

    def fidelity(params, pixels, ref, evalnet):
        assert np.array_equal(ref, train) and evalnet == "evalnet.pt"  # train images, never val
        scored.append(pixels)
        return {"fid": float(pixels.mean()) + len(scored) * 1e-3, "isc_mean": 1.0, "x": 0.0}

    monkeypatch.setattr(stage, "sample_token_model", sample_token_model)
    monkeypatch.setattr(stage, "render", render)
    monkeypatch.setattr(stage, "fidelity", fidelity)
    monkeypatch.setattr(stage, "load_images", lambda path: images)
    monkeypatch.setattr(stage, "load_model", lambda path, kind, build, device: (models[path], {}))
    out = stage.run(
        params,
        "digit" if renderer else "vq",
        "ar" if renderer else "ar_vq",  # the VQ side's tokens go straight to the decoder
        "vq",
        "i",
        "evalnet.pt",
        str(tmp_path / "s.json"),
        renderer="renderer" if renderer else None,
    )
    return params, out, sampled, rendered, scored


def test_every_step_is_searched_over_the_same_grid(tmp_path, monkeypatch):
    """DiGIT: every pair of the grid (token model x renderer), the renderer reading each token
    setting's sequences; the same random streams for every setting; the lowest FID selected."""
    params, out, sampled, rendered, scored = searched(tmp_path, monkeypatch, renderer=True)
    grid = stage.grid(params)
    assert len(grid) == 3 and len(out["rows"]) == 9 and len(scored) == 9
    assert [r["token_model"] for r in out["rows"]] == [t for t in grid for _ in grid]
    assert [r["renderer"] for r in out["rows"]] == grid * 3
    base = params.generate
    for (settings, _), t in zip(sampled, grid, strict=True):
        assert settings == base.token_model.model_copy(update=t)  # temperature kept
    for i, (settings, prefix) in enumerate(rendered):
        assert settings == base.renderer_causal.model_copy(update=grid[i % 3])
        assert torch.equal(prefix, sampled[i // 3][1])
    greedy = sampled[0][1]
    assert len(greedy.unique(dim=0)) == 1  # top-k 1: every sample the same sequence
    assert not torch.equal(sampled[1][1], sampled[2][1])
    best = min(out["rows"], key=lambda r: r["fid"])
    assert out["selected"] == {
        "token_model": best["token_model"],
        "renderer": best["renderer"],
        "fid": best["fid"],
    }
    assert "train images" in out["reference"] and out["n_samples"] == 16


def test_the_vq_side_searches_its_one_step(tmp_path, monkeypatch):
    _, out, sampled, rendered, scored = searched(tmp_path, monkeypatch, renderer=False)
    assert len(out["rows"]) == 3 and not rendered and out["selected"]["renderer"] is None
    assert all(r["renderer"] is None for r in out["rows"])


def test_too_many_reference_images_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(
        StageError, match="sampling.n_reference: 4 train images asked, the train split has 3"
    ):
        searched(tmp_path, monkeypatch, renderer=False, n_reference=4)
