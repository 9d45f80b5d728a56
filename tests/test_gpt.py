"""digit.gpt: every small registered size in every mode, paper parameter counts, KV cache."""

import dataclasses

import pytest
import torch

from digit.gpt import GPT, GPT_SIZES, GPTConfig, build_gpt, count_params, grid_alignment

pytestmark = pytest.mark.usefixtures("one_thread")


MODES = [
    "uncond",
    "class",
    "prefix_causal",
    "prefix_bidir",
    "aligned_causal",
    "aligned_bidir",
    "both_causal",
    "both_bidir",
    "both_causal_k3",  # align_kernel 3: each cell's 3 x 3 neighbourhood (the default renderer: 5)
    "aligned_bidir_k3",
]
CAUSAL_PREFIX_MODES = ["prefix_causal", "aligned_causal", "both_causal", "both_causal_k3"]
SMALL_SIZES = ["tiny", "small"]
N_CLASSES = 5
PREFIX_VOCAB = 37
PREFIX_LEN = 9  # a 3 x 3 grid; the registered sizes have 4 x 4 targets (aligned: nearest cell)


def make(size: str, mode: str, **overrides) -> GPT:
    kw: dict = {}
    if mode.endswith("_k3"):
        kw["align_kernel"] = 3
        mode = mode.removesuffix("_k3")
    if mode == "class":
        kw["n_classes"] = N_CLASSES
    if mode.startswith(("prefix", "aligned", "both")):
        kw.update(prefix_vocab_size=PREFIX_VOCAB, prefix_len=PREFIX_LEN)
        kw["prefix_mode"] = {"prefix": "sequence"}.get(mode.split("_")[0], mode.split("_")[0])
    if mode.endswith("bidir"):
        kw["causal"] = False
    torch.manual_seed(0)
    return build_gpt(size, **{**kw, **overrides})


def inputs(model: GPT, B: int = 2, gen_seed: int = 0):
    """Training-style inputs for the model's mode: (idx, cond, prefix, targets)."""
    cfg = model.config
    g = torch.Generator().manual_seed(gen_seed)
    tokens = torch.randint(cfg.vocab_size, (B, cfg.block_size), generator=g)
    cond = torch.randint(cfg.n_classes + 1, (B,), generator=g) if cfg.n_classes else None
    prefix = (
        torch.randint(cfg.prefix_vocab_size, (B, cfg.prefix_len), generator=g)
        if cfg.prefix_len
        else None
    )
    if cfg.causal:
        return tokens[:, :-1], cond, prefix, tokens
    masked = tokens.clone()
    masked[:, ::3] = cfg.mask_id
    return masked, cond, prefix, tokens


def sharpen(model: GPT, std: float = 0.2) -> GPT:
    """Larger random weights than the 0.02 init, so numerical comparisons are not trivially met."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std)
    return model.eval()


@pytest.mark.parametrize("size", SMALL_SIZES)
@pytest.mark.parametrize("mode", MODES)
def test_forward_backward_shapes(size, mode):
    model = make(size, mode)
    cfg = model.config
    idx, cond, prefix, targets = inputs(model)
    logits, loss = model(idx, cond=cond, prefix=prefix, targets=targets, label_smoothing=0.1)
    assert logits.shape == (2, cfg.block_size, cfg.vocab_size)
    assert torch.isfinite(logits).all()
    assert loss.ndim == 0 and torch.isfinite(loss)
    # Near-uniform predictions at init: the loss is about log(V).
    assert abs(loss.item() - torch.log(torch.tensor(float(cfg.vocab_size))).item()) < 1.0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.lm_head.weight.grad.abs().sum() > 0

    hs = model.hidden_states(idx, cond=cond, prefix=prefix)
    assert len(hs) == cfg.n_layer
    total = cfg.seq_prefix_len + 1 + idx.size(1)
    assert all(h.shape == (2, total, cfg.n_embd) for h in hs)


def test_forward_without_targets_and_empty_idx():
    model = make("tiny", "uncond").eval()
    logits, loss = model(torch.zeros(3, 0, dtype=torch.long))
    assert logits.shape == (3, 1, model.config.vocab_size) and loss is None


def test_loss_mask_averages_masked_positions_only():
    model = make("tiny", "prefix_bidir").eval()
    idx, cond, prefix, targets = inputs(model)
    mask = idx == model.config.mask_id
    logits, loss = model(idx, prefix=prefix, targets=targets, loss_mask=mask)
    per_pos = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    torch.testing.assert_close(loss, per_pos[mask].mean())


def test_causality():
    """Changing a later token never changes earlier logits in a causal model."""
    model = sharpen(make("tiny", "prefix_causal"))
    idx, cond, prefix, _ = inputs(model)
    other = idx.clone()
    other[:, 7:] = (other[:, 7:] + 1) % model.config.vocab_size
    a, _ = model(idx, prefix=prefix)
    b, _ = model(other, prefix=prefix)
    torch.testing.assert_close(a[:, :8], b[:, :8])  # row i sees idx[:, :i]
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_bidirectional_sees_future():
    model = sharpen(make("tiny", "prefix_bidir"))
    idx, _, prefix, _ = inputs(model)
    other = idx.clone()
    other[:, -1] = (other[:, -1] + 1) % model.config.vocab_size
    a, _ = model(idx, prefix=prefix)
    b, _ = model(other, prefix=prefix)
    assert not torch.allclose(a[:, 0], b[:, 0])


@pytest.mark.parametrize("mode", MODES)
def test_prefix_and_class_are_used(mode):
    model = sharpen(make("tiny", mode))
    idx, cond, prefix, _ = inputs(model)
    a, _ = model(idx, cond=cond, prefix=prefix)
    if prefix is not None:
        b, _ = model(idx, cond=cond, prefix=(prefix + 1) % PREFIX_VOCAB)
        assert not torch.allclose(a, b)
    if cond is not None:
        b, _ = model(idx, cond=(cond + 1) % (N_CLASSES + 1), prefix=prefix)
        assert not torch.allclose(a, b)


def test_wrong_conditioning_is_an_error():
    with pytest.raises(ValueError, match="cond"):
        make("tiny", "class")(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="prefix"):
        make("tiny", "prefix_causal")(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="cond"):
        make("tiny", "uncond")(torch.zeros(2, 3, dtype=torch.long), cond=torch.zeros(2).long())
    with pytest.raises(ValueError, match="targets"):
        model = make("tiny", "uncond")
        tokens = torch.zeros(2, 16, dtype=torch.long)
        model(tokens, targets=tokens)  # causal training passes tokens[:, :-1]


@pytest.mark.parametrize(
    "size,n_classes,expected", [("base", 0, 219e6), ("base", 1000, 219e6), ("large", 0, 732e6)]
)
def test_paper_param_counts(size, n_classes, expected):
    with torch.device("meta"):  # no memory is allocated
        model = build_gpt(size, n_classes=n_classes)
    assert abs(count_params(model) / expected - 1) < 0.01
    assert model.lm_head.weight.device.type == "meta"


def test_param_count_large_class_conditional():
    with torch.device("meta"):
        n = count_params(build_gpt("large", n_classes=1000))
    assert abs(n / 732e6 - 1) < 0.01


def test_registry_and_overrides():
    assert {"tiny", "small", "base", "large"} <= set(GPT_SIZES)
    model = build_gpt("tiny", vocab_size=100, block_size=9)
    assert model.config.vocab_size == 100 and model.config.ffn == 4 * model.config.n_embd
    with pytest.raises(KeyError, match="huge"):
        build_gpt("huge")
    with pytest.raises(ValueError, match="n_layers"):
        build_gpt("tiny", n_layers=3)
    with pytest.raises(ValueError, match="n_head"):
        GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=3, n_embd=64)


def test_from_config_round_trip():
    model = make("tiny", "prefix_bidir")
    args = dataclasses.asdict(model.config)
    clone = GPT.from_config(args)
    clone.load_state_dict(model.state_dict(), strict=True)
    idx, _, prefix, _ = inputs(model)
    torch.testing.assert_close(
        model.eval()(idx, prefix=prefix)[0], clone.eval()(idx, prefix=prefix)[0]
    )
    assert "kv_cache" not in " ".join(model.state_dict())


@pytest.mark.parametrize("mode", ["uncond", "class", *CAUSAL_PREFIX_MODES])
@pytest.mark.parametrize("n_prefill", [0, 4])
def test_kv_cache_matches_full_forward(mode, n_prefill):
    model = sharpen(make("tiny", mode))
    idx, cond, prefix, tokens = inputs(model, B=3)
    full, _ = model(idx, cond=cond, prefix=prefix)  # (B, T, V)
    T = model.config.block_size

    model.setup_cache(batch_size=4)  # larger than needed: the cache is sliced to the batch
    with torch.no_grad():
        rows = [model.forward_cached(tokens[:, :n_prefill], 0, cond=cond, prefix=prefix)]
        for i in range(n_prefill, T - 1):
            rows.append(model.forward_cached(tokens[:, i : i + 1], i + 1))
    model.clear_cache()
    cached = torch.cat(rows, dim=1)
    assert cached.shape == full.shape
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_kv_cache_multi_token_decode_and_reuse():
    """A decode step may carry several tokens, and a second prefill overwrites the first."""
    model = sharpen(make("tiny", "class"))
    idx, cond, _, tokens = inputs(model)
    full, _ = model(idx, cond=cond)
    model.setup_cache(batch_size=2)
    with torch.no_grad():
        model.forward_cached(tokens[:, :0], 0, cond=(cond + 1) % N_CLASSES)  # stale run
        model.forward_cached(tokens[:, :5], 6)
        a = model.forward_cached(tokens[:, :2], 0, cond=cond)
        b = model.forward_cached(tokens[:, 2:9], 3)
    torch.testing.assert_close(torch.cat([a, b], dim=1), full[:, :10], atol=1e-5, rtol=1e-5)


def test_cache_is_causal_only():
    with pytest.raises(RuntimeError, match="causal"):
        make("tiny", "prefix_bidir").setup_cache(2)


def test_grid_alignment():
    torch.testing.assert_close(grid_alignment(49, 49), torch.arange(49))
    # 2 x 2 prefix over a 4 x 4 target grid: each prefix cell covers a 2 x 2 block.
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]).reshape(-1)
    torch.testing.assert_close(grid_alignment(4, 16), expected)
    # A 4 x 4 prefix over 3 x 3 targets: cell centres 0.67, 2, 3.33 fall in prefix cells 0, 2, 3.
    assert grid_alignment(16, 9).tolist() == [0, 2, 3, 8, 10, 11, 12, 14, 15]
    with pytest.raises(ValueError, match="square"):
        grid_alignment(6, 16)


def test_aligned_prefix_reaches_its_own_position_first():
    """Causal and aligned only: prefix cell c is read first by the rows predicting the targets it
    covers; earlier rows cannot see it (no prefix in the sequence)."""
    model = sharpen(make("tiny", "aligned_causal"))
    idx, _, prefix, _ = inputs(model)
    cell = 4  # the centre of the 3 x 3 prefix grid
    first = int((model.align_index == cell).nonzero()[0])
    changed = prefix.clone()
    changed[:, cell] = (changed[:, cell] + 1) % PREFIX_VOCAB
    a, _ = model(idx, prefix=prefix)
    b, _ = model(idx, prefix=changed)
    torch.testing.assert_close(a[:, :first], b[:, :first])
    assert not torch.allclose(a[:, first], b[:, first])
    assert model.config.seq_prefix_len == 0 and not hasattr(model, "prefix_wte")
