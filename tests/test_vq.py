"""Tests of the VQ autoencoder (digit.vq): shapes, gradients, codebook restarts, determinism."""

import math

import pytest
import torch

from digit.images import float_to_uint8, uint8_to_float
from digit.vq import VQVAE, EMAQuantizer, VQConfig
from digit.vq_train import NoiseAugConfig, VQTrainConfig, evaluate_vq, train_vq

SMALL = {"hidden": 32, "code_dim": 16, "codebook_size": 32, "n_res_blocks": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed: int = 0, **kw) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE(VQConfig(**{**SMALL, **kw}))


def _images(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Blobby uint8 images (N, H, W, C): random low-resolution noise upsampled, so neighbouring
    pixels correlate like strokes do."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    return float_to_uint8((x - 0.4).clamp(0, 1) * 1.6)


@pytest.mark.parametrize(
    ("channels", "size", "down"),
    [(1, 28, 4), (3, 64, 16)],
)
def test_shapes(channels: int, size: int, down: int) -> None:
    m = _model(in_channels=channels, image_size=size, downsample=down)
    g, D = size // down, m.cfg.code_dim
    x = torch.rand(2, channels, size, size)
    z_e = m.encode(x)
    assert z_e.shape == (2, D, g, g)
    z_q, ids, stats = m.quantize(z_e)
    assert z_q.shape == (2, D, g, g) and ids.shape == (2, g, g)
    assert set(stats) >= {"commit_loss", "usage", "perplexity", "n_restarted"}
    tok = m.tokenize(x)
    assert tok.shape == (2, g * g) and tok.dtype == torch.long
    assert m.embed_ids(tok).shape == (2, g * g, D)
    x_hat = m.decode_ids(tok)
    assert x_hat.shape == x.shape
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    x_hat, loss, stats = m(x)
    assert x_hat.shape == x.shape and loss.ndim == 0


def test_backward_no_nans() -> None:
    m = _model()
    m.train()
    x = torch.rand(4, 1, 28, 28)
    _, loss, _ = m(x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # the straight-through estimator carries the reconstruction gradient into the encoder
    assert m.encoder[0].weight.grad.abs().sum() > 0


def test_round_trip_eval_consistency() -> None:
    m = _model()
    m.train()
    m(uint8_to_float(_images(8)), generator=torch.Generator().manual_seed(0))  # data init
    m.eval()
    x = uint8_to_float(_images(3, seed=1))
    ids = m.tokenize(x)
    z_q, ids_grid, _ = m.quantize(m.encode(x))
    assert torch.equal(ids_grid.view(3, -1), ids)  # raster order
    emb = m.embed_ids(ids)  # (B, L, D)
    assert torch.allclose(emb, z_q.flatten(2).transpose(1, 2))
    assert torch.allclose(m.decode_ids(ids), m.decode(z_q))
    x_hat, _, _ = m(x)
    assert torch.allclose(x_hat, m.decode_ids(ids), atol=1e-6)


def test_tokenize_never_updates_codebook_and_is_batch_independent() -> None:
    m = _model()
    m.train()  # even in training mode
    before = {k: v.clone() for k, v in m.quantizer.state_dict().items()}
    x = uint8_to_float(_images(6))
    ids_all = m.tokenize(x)
    ids_one = torch.cat([m.tokenize(x[i : i + 1]) for i in range(6)])
    assert torch.equal(ids_all, ids_one)
    for k, v in m.quantizer.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_data_init_uses_codebook() -> None:
    cfg = VQConfig(**SMALL)
    q = EMAQuantizer(cfg).train()
    z = torch.randn(4, cfg.code_dim, 7, 7)
    _, ids, stats = q(z, torch.Generator().manual_seed(0))
    assert bool(q.initialized)
    assert stats["usage"] > 0.9  # k-means++ seeds spread over the batch


def test_dead_code_restart_revives_codes() -> None:
    cfg = VQConfig(**{**SMALL, "codebook_size": 64, "restart_every": 2})
    D = cfg.code_dim
    g = torch.Generator().manual_seed(0)

    def make(cfg: VQConfig) -> EMAQuantizer:
        q = EMAQuantizer(cfg).train()
        # 4 codes near the data, 60 far away: 60 dead codes
        q.embed.copy_(torch.randn(64, D, generator=torch.Generator().manual_seed(1)) + 100.0)
        q.embed[:4] = 0.1 * torch.randn(4, D, generator=torch.Generator().manual_seed(2))
        q.embed_avg.copy_(q.embed)
        q.initialized.fill_(True)
        return q

    def usage(q: EMAQuantizer, z: torch.Tensor) -> float:
        ids = q.lookup(z.permute(0, 2, 3, 1).reshape(-1, D))
        return torch.unique(ids).numel() / 64

    z_eval = torch.randn(16, D, 7, 7, generator=g)
    q = make(cfg)
    q_off = make(VQConfig(**{**SMALL, "codebook_size": 64, "restart_every": 0}))
    assert usage(q, z_eval) <= 4 / 64
    restarted = 0.0
    for _ in range(6):
        z = torch.randn(16, D, 7, 7, generator=g)
        restarted += float(q(z, torch.Generator().manual_seed(3))[2]["n_restarted"])
        q_off(z, torch.Generator().manual_seed(3))
    assert restarted >= 60
    assert usage(q, z_eval) > 0.9
    assert usage(q_off, z_eval) <= 4 / 64


def _state(m: VQVAE) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_training_deterministic_and_resumable() -> None:
    images = _images(64)
    cfg = VQTrainConfig(steps=6, batch_size=16, warmup_steps=2, seed=3, checkpoint_every=3)
    noise = NoiseAugConfig(p=0.5, snr_db_lo=5, snr_db_hi=20)
    small = {"restart_every": 2}

    def run(seed: int = 3):
        m = _model(**small)
        c = VQTrainConfig(**{**cfg.__dict__, "seed": seed})
        h = train_vq(m, images, c, noise_aug=noise, progress=False)
        return m, h

    m1, h1 = run()
    m2, h2 = run()
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    assert h1["loss"] == h2["loss"]
    m3, _ = run(seed=4)
    assert not torch.equal(m1.quantizer.embed, m3.quantizer.embed)

    # stop at step 3 through the checkpoint callback, then resume: same result as one run
    saved = {}

    def on_ckpt(step: int, state: dict) -> None:
        if step == 3:
            saved["model"] = _state(m_a)
            saved["state"] = {
                "step": state["step"],
                "optimizer": _clone(state["optimizer"]),
                "history": {k: list(v) for k, v in state["history"].items()},
            }

    m_a = _model(**small)
    train_vq(m_a, images, cfg, noise_aug=noise, on_checkpoint=on_ckpt, progress=False)
    m_b = _model(seed=99, **small)
    m_b.load_state_dict(saved["model"], strict=True)
    h_b = train_vq(m_b, images, cfg, noise_aug=noise, state=saved["state"], progress=False)
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m_b.state_dict()[k]), k
    assert h_b["step"][-1] == 6


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def test_training_reduces_loss_and_evaluate() -> None:
    images = _images(256)
    m = _model()
    ev0 = evaluate_vq(m, images, batch_size=100)
    h = train_vq(
        m, images, VQTrainConfig(steps=40, batch_size=32, warmup_steps=5, lr=3e-3), progress=False
    )
    assert h["mse"][-1] < h["mse"][0]
    ev = evaluate_vq(m, images, batch_size=100)
    assert set(ev) == {"mse", "psnr", "usage", "n_codes_used", "perplexity"}
    assert ev["mse"] < ev0["mse"]
    assert ev["psnr"] == pytest.approx(10 * math.log10(1 / ev["mse"]))
    assert ev["usage"] == ev["n_codes_used"] / m.cfg.codebook_size
    assert 1.0 <= ev["perplexity"] <= ev["n_codes_used"] + 1e-6
    assert ev["usage"] > 0.5
    assert m.training  # evaluate_vq restores the mode
    assert evaluate_vq(m, images, batch_size=7) == pytest.approx(ev, rel=1e-4)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"image_size": 30, "downsample": 4}, "image_size"),
        ({"downsample": 3, "image_size": 27}, "downsample"),
        ({"codebook_size": 1}, "codebook_size"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"commitment": -0.1}, "commitment"),
        ({"restart_every": -1}, "restart_every"),
    ],
)
def test_bad_config_names_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        VQConfig(**kw)


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"), ({"steps": 0, "epochs": 0}, "epochs")],
)
def test_bad_train_config_names_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        VQTrainConfig(**kw)
    with pytest.raises(ValueError, match="target"):
        NoiseAugConfig(target="blurry")


def test_bad_input_shapes() -> None:
    m = _model()
    with pytest.raises(ValueError):
        m.encode(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError):
        m.decode_ids(torch.zeros(2, 50, dtype=torch.long))
