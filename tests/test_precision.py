"""digit.precision in every training loop, on the CPU (autocast runs here too): fp32 is the plain
float32 loop to the bit, bf16 / fp16 really compute in half precision and still learn, the VQ
quantizer stays float32 under autocast, and the params name a bad value."""

import copy

import pytest
import torch
import yaml
from conftest import ROOT

from digit.gpt import build_gpt
from digit.precision import Precision, optimizer_step
from digit.vq import VQVAE, VQConfig
from digit.vq_train import VQTrainConfig, train_vq
from pipeline import checks, presets
from pipeline import params as P
from pipeline.train import Objective, TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def data():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 16, (48, 8), generator=g)
    return {"tokens": tokens[:40]}, {"tokens": tokens[40:]}


def model():
    torch.manual_seed(0)
    return build_gpt("tiny", vocab_size=16, block_size=8)


CFG = TrainConfig(steps=12, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=6, seed=3)


def test_fp32_is_the_plain_float32_loop_to_the_bit():
    tr, _ = data()
    a, b = model(), model()
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-3)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-3)
    fp32 = Precision("fp32")
    scaler = fp32.scaler("cpu")
    for step in range(3):
        x = tr["tokens"][step * 8 : (step + 1) * 8]
        with fp32.autocast("cpu"):
            _, loss_a = a(x[:, :-1], targets=x)
        optimizer_step(loss_a, opt_a, scaler, a.parameters(), grad_clip=1.0)
        _, loss_b = b(x[:, :-1], targets=x)  # the loop as it was written before precision
        opt_b.zero_grad(set_to_none=True)
        loss_b.backward()
        torch.nn.utils.clip_grad_norm_(b.parameters(), 1.0)
        opt_b.step()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_computes_in_half_and_still_learns(precision):
    tr, va = data()
    seen = set()
    m = model()
    hook = m.lm_head.register_forward_hook(lambda mod, inp, out: seen.add(out.dtype))
    import dataclasses

    cfg = dataclasses.replace(CFG, precision=precision)
    hist = train(m, Objective(), tr, va, cfg, progress=False)
    hook.remove()
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert seen == {half}  # every forward, training and evaluation, ran the head in half
    assert all(p.dtype == torch.float32 for p in m.parameters())  # weights stay float32
    ref = model()
    ref_hist = train(ref, Objective(), tr, va, CFG, progress=False)
    first, last = hist[0]["train/loss"], hist[-1]["train/loss"]
    assert last < first  # it learns
    assert hist != ref_hist  # not silently float32 ...
    assert abs(hist[-1]["val/loss"] - ref_hist[-1]["val/loss"]) < 0.05  # ... and close to it


def test_vq_trains_under_autocast_with_a_float32_quantizer():
    imgs = torch.randint(0, 256, (32, 16, 16, 1), dtype=torch.uint8)
    cfg = VQConfig(
        in_channels=1, image_size=16, downsample=4, codebook_size=8, code_dim=8, hidden=8
    )
    vq = VQVAE(cfg)
    lookups = []
    orig = vq.quantizer.lookup

    def lookup(flat):
        lookups.append((flat.dtype, torch.is_autocast_enabled("cpu")))
        return orig(flat)

    vq.quantizer.lookup = lookup
    tcfg = VQTrainConfig(steps=6, batch_size=8, warmup_steps=1, precision="bf16", log_every=2)
    history = train_vq(vq, imgs, tcfg, progress=False)
    assert lookups and set(lookups) == {(torch.float32, False)}  # distances in float32
    assert len(history["loss"]) == 3 and all(torch.isfinite(torch.tensor(history["loss"])))


def test_precision_is_a_checked_param_of_every_training_section():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section in ("ssl", "vq", "ar", "renderer"):
        assert raw[section]["precision"] == "fp32" and raw[section]["tf32"] is False
        bad = copy.deepcopy(raw)
        bad[section]["precision"] = "fp8"
        with pytest.raises(P.ParamsError, match=rf"{section}\.precision: Input should be 'fp32'"):
            checks.validate(bad)
    preset = yaml.safe_load((presets.PRESETS_DIR / "imagenet.yaml").read_text())
    for section in ("vq", "ar", "renderer"):
        assert (preset[section]["precision"], preset[section]["tf32"]) == ("bf16", True)
    with pytest.raises(ValueError, match="precision must be one of"):
        Precision("fp8")


def test_the_ssl_encoder_trains_under_autocast():
    from test_mae import images

    from digit.encoders import build_encoder
    from digit.ssl import MAEConfig, train_mae

    def run(precision: str):
        torch.manual_seed(0)
        enc = build_encoder("cnn_small", in_channels=1, input_size=28, width=16)
        cfg = MAEConfig(epochs=4, batch_size=16, lr=3e-3, warmup_epochs=0.0, precision=precision)
        return train_mae(enc, images(), cfg, 0, progress=False)

    half, full = run("bf16"), run("fp32")
    assert half[-1]["loss"] < 0.8 * half[0]["loss"]  # it learns in bf16
    assert half != full  # and really ran in bf16
