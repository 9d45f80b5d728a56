"""digit.generate: filtering pinned on hand-made logits, cache == recomputation, CFG, MaskGIT."""

import math

import pytest
import torch

from digit.generate import (
    cfg_combine,
    generate,
    maskgit_generate,
    maskgit_mask,
    maskgit_schedule,
    sample_logits,
    top_k_top_p_filtering,
)
from digit.gpt import build_gpt

pytestmark = pytest.mark.usefixtures("one_thread")


INF = float("-inf")


def tiny(sharpen: bool = True, **kw):
    torch.manual_seed(0)
    model = build_gpt("tiny", **kw)
    if sharpen:  # peakier distributions than the 0.02 init, so sampling settings matter
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, 0.2)
    return model.eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- filtering


def test_top_k():
    out = top_k_top_p_filtering(torch.tensor([1.0, 2.0, 3.0, 4.0]), top_k=2)
    assert out.tolist() == [INF, INF, 3.0, 4.0]
    x = torch.tensor([[4.0, 1.0, 3.0, 2.0], [0.0, 5.0, -1.0, 7.0]])
    assert top_k_top_p_filtering(x, top_k=1).tolist() == [[4.0, INF, INF, INF], [INF] * 3 + [7.0]]
    assert torch.equal(top_k_top_p_filtering(x, top_k=0), x)  # off
    assert torch.equal(top_k_top_p_filtering(x, top_k=10), x)  # k >= V keeps everything


def test_top_p():
    # probabilities 0.5, 0.3, 0.15, 0.05 given out of order: cumulative mass 0.5, 0.8, 0.95, 1.0
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    logits = probs.log()

    def kept(p):
        return torch.isfinite(top_k_top_p_filtering(logits, top_p=p)).nonzero()[:, 0].tolist()

    assert kept(1.0) == [0, 1, 2, 3]  # off
    assert kept(0.97) == [0, 1, 2, 3]
    assert kept(0.9) == [0, 1, 3]  # 0.5 + 0.3 = 0.8 < 0.9, so 0.15 joins the nucleus
    assert kept(0.7) == [1, 3]
    assert kept(0.4) == [1]  # the top token alone already reaches top_p
    assert kept(0.0) == [1]  # edge: at least one token is always kept
    out = top_k_top_p_filtering(logits, top_p=0.7)
    assert out[1] == logits[1] and out[3] == logits[3]  # kept logits are unchanged


def test_top_k_then_top_p_batched():
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3], [0.25, 0.25, 0.25, 0.25]]).log()
    out = top_k_top_p_filtering(logits, top_k=3, top_p=0.6)
    # row 0: top-3 = {0.5, 0.3, 0.15} renormalised to 0.526, 0.316, 0.158 -> nucleus {0.5, 0.3}
    assert torch.isfinite(out[0]).tolist() == [False, True, False, True]
    # row 1: ties are all kept by top-k, then 3 tokens of 0.25 each are needed to reach 0.6
    assert torch.isfinite(out[1]).sum() == 3


def test_sample_logits():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, -1.0, 0.0]])
    assert sample_logits(logits, temperature=0).tolist() == [1, 0]
    a = sample_logits(logits.repeat(50, 1), 1.0, generator=gen(3))
    b = sample_logits(logits.repeat(50, 1), 1.0, generator=gen(3))
    assert torch.equal(a, b) and a.shape == (100,)
    # filtered tokens are never drawn
    s = sample_logits(logits.repeat(500, 1), 5.0, top_k=2, generator=gen(1))
    assert set(s[0::2].tolist()) <= {1, 2} and set(s[1::2].tolist()) <= {0, 2}
    # (..., V) in, (...) out
    assert sample_logits(torch.zeros(2, 3, 7), 1.0, generator=gen()).shape == (2, 3)


# ---------------------------------------------------------------------------- AR generate


@pytest.mark.parametrize(
    "kw,cond_kind",
    [
        ({}, None),
        ({"n_classes": 4}, "class"),
        ({"prefix_vocab_size": 11, "prefix_len": 5}, "prefix"),
    ],
)
@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (1.0, 20, 0.9), (0.0, 0, 1.0)])
def test_generate_cache_equals_recompute(kw, cond_kind, temperature, top_k, top_p):
    model = tiny(**kw)
    n = 5
    extra = {}
    if cond_kind == "class":
        extra["cond"] = torch.tensor([0, 1, 2, 3, 4])  # 4 = NULL class
    if cond_kind == "prefix":
        extra["prefix"] = torch.randint(11, (n, 5), generator=gen(7))
    args = dict(temperature=temperature, top_k=top_k, top_p=top_p, batch_size=2, **extra)
    a = generate(model, n, generator=gen(), use_cache=True, **args)
    b = generate(model, n, generator=gen(), use_cache=False, **args)
    assert a.shape == (n, model.config.block_size) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert (a >= 0).all() and (a < model.config.vocab_size).all()
    assert torch.equal(a, generate(model, n, generator=gen(), **args))  # deterministic
    assert model.blocks[0].attn.kv_cache is None  # the cache is freed after sampling


def test_generate_cfg_cache_equals_recompute():
    model = tiny(n_classes=3)
    cond = torch.tensor([0, 1, 2, 1])
    args = dict(cond=cond, cfg_scale=3.0, top_k=10, batch_size=3)
    a = generate(model, 4, generator=gen(), use_cache=True, **args)
    b = generate(model, 4, generator=gen(), use_cache=False, **args)
    assert torch.equal(a, b)


def test_cfg_scale_one_is_plain_conditional():
    model = tiny(n_classes=3)
    cond = torch.tensor([0, 2])
    idx = torch.randint(64, (2, 7), generator=gen())
    null = torch.full_like(cond, model.config.null_class)
    with torch.no_grad():
        both = model(torch.cat([idx, idx]), cond=torch.cat([cond, null]))[0]  # doubled batch
        plain = model(idx, cond=cond)[0]
    c, u = both.chunk(2)
    torch.testing.assert_close(cfg_combine(c, u, 1.0), plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cfg_combine(c, u, 0.0), u)
    assert not torch.allclose(cfg_combine(c, u, 3.0), plain)
    # and through generate: scale 1 takes the plain path, scale 3 changes the samples
    a = generate(model, 2, cond=cond, cfg_scale=1.0, temperature=0)
    b = generate(model, 2, cond=cond, cfg_scale=3.0, temperature=0)
    assert a.shape == b.shape and not torch.equal(a, b)


def test_prefix_changes_generation():
    model = tiny(prefix_vocab_size=11, prefix_len=5)
    prefix = torch.randint(11, (4, 5), generator=gen(7))
    a = generate(model, 4, prefix=prefix, temperature=0)
    b = generate(model, 4, prefix=(prefix + 1) % 11, temperature=0)
    assert not torch.equal(a, b)


def test_generate_errors_and_progress():
    with pytest.raises(ValueError, match="class-conditional"):
        generate(tiny(), 2, cfg_scale=2.0)
    with pytest.raises(ValueError, match="maskgit"):
        generate(tiny(causal=False), 2)
    out = generate(tiny(sharpen=False), 3, batch_size=2, generator=gen(), progress=True)
    assert out.shape == (3, 16)


# -------------------------------------------------------------------------------- MaskGIT


def test_maskgit_schedule():
    # T = 16, 8 steps: floor(16 cos(pi/2 * k/8)) for k = 1..8
    assert maskgit_schedule(16, 8) == [15, 14, 13, 11, 8, 6, 3, 0]
    s = maskgit_schedule(256, 8)
    assert s[-1] == 0 and all(a >= b for a, b in zip(s, s[1:], strict=False))
    assert s[0] == math.floor(256 * math.cos(math.pi / 16))


def test_maskgit_generate_follows_schedule():
    model = tiny(causal=False, prefix_vocab_size=11, prefix_len=5)
    cfg = model.config
    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, args: seen.append((args[0] == cfg.mask_id).sum(dim=1).tolist())
    )
    prefix = torch.randint(11, (3, 5), generator=gen(7))
    out = maskgit_generate(model, prefix, steps=8, generator=gen(), batch_size=2)
    hook.remove()
    assert out.shape == (3, cfg.block_size)
    assert not (out == cfg.mask_id).any() and (out >= 0).all() and (out < cfg.vocab_size).all()
    expected = [16] + maskgit_schedule(16, 8)[:-1]  # masked count fed into each step
    assert [row[0] for row in seen[:8]] == expected and [row[0] for row in seen[8:]] == expected
    assert torch.equal(out, maskgit_generate(model, prefix, steps=8, generator=gen(), batch_size=2))
    b = maskgit_generate(model, (prefix + 1) % 11, steps=8, temperature=0, choice_temperature=0)
    a = maskgit_generate(model, prefix, steps=8, temperature=0, choice_temperature=0)
    assert not torch.equal(a, b)  # the prefix is used


def test_maskgit_generate_unconditional_and_class():
    out = maskgit_generate(tiny(causal=False), n=2, steps=4, generator=gen(), progress=True)
    assert out.shape == (2, 16) and not (out == 64).any()
    model = tiny(causal=False, n_classes=3)
    out = maskgit_generate(model, cond=torch.tensor([0, 1, 2]), steps=3, top_k=5, generator=gen())
    assert out.shape == (3, 16) and not (out == 64).any()
    with pytest.raises(ValueError, match="bidirectional"):
        maskgit_generate(tiny(), n=1)


def test_maskgit_mask():
    tokens = torch.randint(64, (400, 16), generator=gen())
    masked, loss_mask = maskgit_mask(tokens, mask_id=64, generator=gen(1))
    assert masked.shape == tokens.shape and loss_mask.dtype == torch.bool
    assert torch.equal(masked == 64, loss_mask)
    assert torch.equal(masked[~loss_mask], tokens[~loss_mask])
    counts = loss_mask.sum(dim=1)
    assert counts.min() >= 1 and counts.max() <= 16
    # E[cos(pi/2 r)] = 2/pi; ceil adds up to one token per row
    frac = loss_mask.float().mean().item()
    assert 2 / math.pi - 0.05 < frac < 2 / math.pi + 1 / 16 + 0.05
    again, _ = maskgit_mask(tokens, mask_id=64, generator=gen(1))
    assert torch.equal(masked, again)
