"""Exact checks of the code that decides results, against independent computations: the claims'
paired intervals against scipy, sampling frequencies against the filtered softmax (chi-square,
fixed seeds), MaskGIT's fixed tokens, KID against a direct polynomial-kernel MMD, IS against its
formula. Each would fail on the mutants a weaker test lets through (``logits * T`` for
``logits / T``, ``ddof=2``, a Bonferroni factor off by one, a KID kernel of another degree)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from digit.generate import maskgit_generate, maskgit_mask, sample_logits, top_k_top_p_filtering
from digit.gpt import build_gpt
from pipeline.report.claims import CONFIDENCE, Paired, outcome_label

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the claims' intervals ---------------------------------------------------------------------


@pytest.mark.parametrize("comparisons", [1, 4])
def test_paired_interval_is_scipys_t_interval(comparisons):
    a, b = [3.1, 2.4, 3.9, 2.8], [1.0, 1.2, 0.7, 1.5]
    diffs = np.subtract(a, b)
    level = 1 - (1 - CONFIDENCE) / comparisons
    lo, hi = stats.t.interval(level, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
    p = Paired.of(a, b, comparisons)
    assert p.mean == pytest.approx(diffs.mean())
    assert p.mean - p.half_width == pytest.approx(lo, rel=1e-12)
    assert p.mean + p.half_width == pytest.approx(hi, rel=1e-12)
    assert p.outcome == ("higher" if lo > 0 else "unresolved")
    if comparisons > 1:
        assert f"Bonferroni x{comparisons}" in p.text()


def test_bonferroni_widens_until_unresolved():
    """diffs 1.0, 1.2, 0.8 (mean 1): the plain 95% interval excludes 0 (half width 0.497), the
    4-test one (t at 0.99375 with 2 df) does not (1.023)."""
    a, b = [2.0, 2.2, 1.8], [1.0, 1.0, 1.0]
    assert Paired.of(a, b).half_width == pytest.approx(0.49683, abs=1e-5)
    assert Paired.of(a, b).outcome == "higher"
    assert Paired.of(a, b, 4).half_width == pytest.approx(1.02309, abs=1e-5)
    assert Paired.of(a, b, 4).outcome == "unresolved"


def test_one_seed_gives_no_interval():
    p = Paired.of([2.0], [1.0])
    assert p.half_width is None and p.outcome == "unresolved" and "one seed" in p.text()


@pytest.mark.parametrize(
    "better, worse, label",
    [
        ([True, True], [False, False], "supported"),
        ([True, False], [False, False], "partly supported"),
        ([True, False], [False, True], "partly supported"),
        ([False, False], [False, True], "not supported"),
        ([False, False], [False, False], "inconclusive"),
    ],
)
def test_outcome_labels(better, worse, label):
    assert outcome_label(better, worse) == label


def test_no_test_is_no_verdict():
    with pytest.raises(ValueError, match="a verdict needs at least one test"):
        outcome_label([], [])


# --- sampling: frequencies against the filtered softmax ------------------------------------------

LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])
N = 40_000


def expected(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """The distribution sample_logits should draw from, computed here without the code under
    test: softmax of logits / T; the top-k kept and renormalised; of those, the top-p nucleus
    kept and renormalised (the order of the common top_k_top_p_filtering)."""
    p = torch.softmax(logits / temperature, dim=-1).double().numpy()
    order = np.argsort(-p)
    keep = np.ones_like(p, dtype=bool)
    if top_k:
        keep[order[top_k:]] = False
    p = np.where(keep, p, 0.0) / np.where(keep, p, 0.0).sum()
    if top_p < 1:
        before = np.cumsum(p[order]) - p[order]  # mass of the strictly more likely tokens
        keep[order[before >= top_p]] = False
    q = np.where(keep, p, 0.0)
    return q / q.sum()


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(1.0, 0, 1.0), (0.5, 0, 1.0), (2.0, 0, 1.0), (1.0, 3, 1.0), (1.0, 0, 0.7), (0.7, 5, 0.9)],
)
def test_sample_frequencies_follow_the_filtered_softmax(temperature, top_k, top_p):
    g = torch.Generator().manual_seed(0)
    ids = sample_logits(LOGITS.expand(N, -1), temperature, top_k, top_p, generator=g)
    counts = np.bincount(ids.numpy(), minlength=len(LOGITS))
    q = expected(LOGITS, temperature, top_k, top_p)
    assert (counts[q == 0] == 0).all()  # filtered tokens never appear
    kept = q > 0
    _, pvalue = stats.chisquare(counts[kept], N * q[kept])
    assert pvalue > 1e-3, (counts, N * q)
    # a mis-scaled temperature (logits * T) draws from another distribution: the test sees it
    if temperature != 1.0:
        wrong = expected(LOGITS, 1 / temperature, top_k, top_p)
        _, p_wrong = stats.chisquare(counts[kept], N * wrong[kept] / wrong[kept].sum())
        assert p_wrong < 1e-6


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    kept = torch.isfinite(top_k_top_p_filtering(probs, top_p=0.8)).tolist()
    assert kept == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    kept = torch.isfinite(top_k_top_p_filtering(probs, top_p=0.81)).tolist()
    assert kept == [True, True, True, False]


def test_sample_logits_defaults_draw_from_the_plain_softmax():
    """No arguments but the logits: temperature 1, nothing filtered."""
    ids = sample_logits(LOGITS.expand(N, -1), generator=torch.Generator().manual_seed(1))
    counts = np.bincount(ids.numpy(), minlength=len(LOGITS))
    q = expected(LOGITS, 1.0, 0, 1.0)
    assert (counts > 0).all()
    assert stats.chisquare(counts, N * q).pvalue > 1e-3, (counts, N * q)


def test_top_p_reaching_the_mass_exactly_stops_there():
    """Four equal logits: probabilities of exactly 1/4, so the mass before each token is exact.
    top_p 0.5 is reached by two tokens; the third's mass before (0.5) already reaches it."""
    kept = torch.isfinite(top_k_top_p_filtering(torch.zeros(4), top_p=0.5))
    assert int(kept.sum()) == 2
    kept = torch.isfinite(top_k_top_p_filtering(torch.zeros(3, 4), top_p=0.75))
    assert kept.sum(dim=-1).tolist() == [3, 3, 3]  # per row, along the last axis


def test_maskgit_mask_hides_ceil_t_cos_positions_at_least_one():
    """n = clamp(ceil(T cos(pi/2 r)), 1, T) positions per row, r ~ U(0, 1) from the generator's
    first draw; among 4,000 rows of T=49 some hide exactly one."""
    B, T = 4000, 49
    tokens = torch.arange(T).repeat(B, 1)
    masked, loss_mask = maskgit_mask(tokens, T, generator=torch.Generator().manual_seed(3))
    r = torch.rand(B, generator=torch.Generator().manual_seed(3))
    n = torch.ceil(T * torch.cos(math.pi / 2 * r)).clamp(1, T).long()
    assert torch.equal(loss_mask.sum(dim=1), n)
    assert (n == 1).any() and (n == T).any()
    assert torch.equal(masked == T, loss_mask) and torch.equal(
        masked[~loss_mask], tokens[~loss_mask]
    )


def test_maskgit_never_changes_a_fixed_token(monkeypatch):
    """Once a position is decoded it stays: record every step's input and check that no position
    that held a token at step t holds another one later."""
    torch.manual_seed(0)
    model = build_gpt("tiny", vocab_size=16, block_size=16, causal=False).eval()
    seen = []
    forward = model.forward

    def spy(tokens, *args, **kwargs):
        seen.append(tokens.clone())
        return forward(tokens, *args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    monkeypatch.setattr(model, "__call__", spy, raising=False)
    g = torch.Generator().manual_seed(0)
    out = maskgit_generate(model, n=8, steps=6, generator=g, choice_temperature=4.5)
    mask_id = model.config.mask_id
    steps = [*seen, out]
    assert len(seen) == 6
    for before, after in zip(steps, steps[1:], strict=False):
        fixed = before != mask_id
        assert torch.equal(after[fixed], before[fixed])
    assert (out != mask_id).all()


# --- KID and IS against direct computations ------------------------------------------------------


def test_kid_is_the_unbiased_polynomial_mmd():
    """torch-fidelity's KID with one subset of the whole sets equals the unbiased MMD^2 with the
    cubic kernel k(x, y) = (x.y / d + 1)^3, computed here directly."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    y = rng.normal(0.3, 1.2, size=(60, 8))
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    out = kid_features_to_metric(
        torch.from_numpy(x), torch.from_numpy(y), kid_subsets=1, kid_subset_size=m, verbose=False
    )
    assert out["kernel_inception_distance_mean"] == pytest.approx(mmd, rel=1e-6)
    assert mmd > 0.01  # the two sets differ: a kernel of another degree would give another value
