"""claims.md: the paper's five claims (pipeline/paper.yaml), each given a verdict computed from
this run's metrics by a fixed rule, with the numbers as evidence.

The premises come first: checks that make the claims testable at all (the encoder beats random
weights, its tokens beat random-encoder tokens, the renderer reproduces ground-truth tokens, enough
samples and seeds). A claim gated by a failed premise is "untestable here", its rule's result kept
in the evidence. Claims 2-4 compare models trained once per seed: their rules are paired
differences over the seeds with a Student-t interval, so the noise they use is measured, not
assumed. A claim whose metrics are missing is "not tested" (write_reports stops earlier, on the
tables, for files the DAG writes)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import io, sets
from pipeline.params import Params
from pipeline.report.metrics import PAPER, Metrics, encoder_vs, scale_line


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported | partly supported | not supported | inconclusive | untestable here | not tested
    evidence: str
    # The measures the verdict was reached on ("samples": FID / IS of generated sets; "probe"):
    # a failed premise about one measure voids only the verdicts that rest on it.
    rests_on: frozenset[str] = frozenset()


def claim_stability(m: Metrics) -> Verdict:
    claim = PAPER["claims"][0]
    st = m.get(sets.STABILITY)
    if not st or "vq" not in st["tokenizers"]:
        return Verdict(claim, "not tested", f"metrics/{sets.STABILITY}.json missing")
    perts = st["perturbations"]
    t = st["tokenizers"]
    gauss = [i for i, p in enumerate(perts) if p["kind"] == "gaussian"]
    other = [i for i, p in enumerate(perts) if p["kind"] != "gaussian"]

    def wins(a: str, b: str, idx: list[int]) -> tuple[int, int]:
        return sum(t[a]["token_change"][i] < t[b]["token_change"][i] for i in idx), len(idx)

    lines, checks = [], []
    for a, b, what in (
        ("disc", "vq", "main encoder vs VQ, Gaussian noise"),
        ("disc_nonoise", "vq", "encoder trained WITHOUT noise augmentation vs VQ, Gaussian noise"),
        ("disc", "vq_noise", "main encoder vs VQ trained WITH the same noise, Gaussian noise"),
    ):
        if a in t and b in t:
            w, n = wins(a, b, gauss)
            checks.append(w == n)
            lines.append(f"{what}: disc changes fewer tokens at {w}/{n} SNRs")
    for a, b in (("disc", "vq"), ("disc_nonoise", "vq")):
        if a in t and b in t and other:
            w, n = wins(a, b, other)
            checks.append(w == n)
            lines.append(
                f"{a} vs {b}, perturbations outside every augmentation set: fewer changes in {w}/{n}"
            )
    i20 = next((i for i in gauss if perts[i]["value"] == 20), gauss[0])
    lines.append(
        f"at SNR {perts[i20]['value']:g} dB: "
        + ", ".join(f"{k} {v['token_change'][i20]:.3f}" for k, v in t.items())
    )
    verdict = (
        "supported" if all(checks) else ("not supported" if not checks[0] else "partly supported")
    )
    return Verdict(claim, verdict, "; ".join(lines))


# --- measured noise: paired comparisons over the seed axis ------------------------------------

CONFIDENCE = 0.95  # two-sided, for every interval below


@dataclass
class Paired:
    """The mean of per-seed differences a - b and its confidence interval (Student t over the
    seeds; ``comparisons`` > 1 widens it by Bonferroni). ``outcome``: "higher" / "lower" when the
    interval excludes 0, "unresolved" when it does not or there is one seed only."""

    diffs: list[float]
    mean: float
    half_width: float | None
    comparisons: int = 1

    @classmethod
    def of(cls, a: list[float], b: list[float], comparisons: int = 1) -> Paired:
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        n = len(diffs)
        mean = float(np.mean(diffs))
        if n < 2:
            return cls(diffs, mean, None, comparisons)
        from scipy import stats

        level = 1 - (1 - CONFIDENCE) / comparisons
        t = float(stats.t.ppf(0.5 + level / 2, n - 1))
        return cls(diffs, mean, t * float(np.std(diffs, ddof=1)) / np.sqrt(n), comparisons)

    @property
    def outcome(self) -> str:
        if self.half_width is None or abs(self.mean) <= self.half_width:
            return "unresolved"
        return "higher" if self.mean > 0 else "lower"

    def text(self, digits: int = 3) -> str:
        if self.half_width is None:
            return f"{self.mean:+.{digits}f} (one seed: no interval)"
        ci = f"{CONFIDENCE:.0%}" + (
            f" Bonferroni x{self.comparisons}" if self.comparisons > 1 else ""
        )
        return f"{self.mean:+.{digits}f} ± {self.half_width:.{digits}f} ({ci} t-interval, {len(self.diffs)} seeds)"


RULE = (
    "rule: per-seed paired differences (same seed on both sides), mean and "
    f"{CONFIDENCE:.0%} Student-t interval over the seeds; a difference counts when its interval "
    "excludes 0"
)


# --- premises: what makes the claims testable here ------------------------------------------------

# The renderer's ground-truth FID at most this times the VQ reconstruction's.
RENDER_BOUND_RATIO = 1.5
SAMPLES_PER_DIM = 2  # FID's covariance: at least this many generated images per feature dimension


@dataclass
class Premise:
    check: str
    passed: bool
    evidence: str
    gates: tuple[int, ...]  # the claims (1-based) that are untestable when it fails
    measure: str | None = None  # only verdicts resting on this measure (None: every verdict)
    # A failure that can only hold DiGIT back (a weak renderer): a DiGIT-over-VQ win of claim 2
    # survives it, since a better renderer could only widen the gap.
    handicaps_digit: bool = False


def premises(params: Params, m: Metrics) -> list[Premise]:
    k = params.kmeans.main_k
    out = []
    # Every encoder row of the run: the main encoder's checks gate the claims; the encoder-kind
    # ablation's row is flagged here (and in its table) and gates none.
    for stem, who, gates, note in (
        (sets.ENCODER, "the encoder", (1, 2, 3, 4), ""),
        *(
            (
                sets.encoder_of(key),
                f"the {row.label} encoder (`encoders.{key}`)",
                (),
                "; flags its row of the encoder ablation, gates no claim",
            )
            for key, row in params.encoders.items()
        ),
    ):
        e = m.need(stem, "the premise checks")
        ok, text = encoder_vs(e, "trained", "random", True)
        out.append(
            Premise(f"{who} beats its random-weight twin (pooled features)", ok, text + note, gates)
        )
        ok, text = encoder_vs(e, "trained", "pixels", False)
        out.append(
            Premise(
                f"{who} is at least as discriminative as raw pixels (pooled features)",
                ok,
                text + "; informative only: the claims compare two tokenizers, not encoder and "
                "pixels",
                (),
            )
        )
    t = m.need(sets.tokens(k), "the premise checks")
    tr, rd = t["trained"]["token_probe_top1"], t["random"]["token_probe_top1"]
    out.append(
        Premise(
            f"K={k} tokens beat the tokens of a random-weight encoder (one-hot token probe)",
            tr > rd,
            f"{tr:.3f} vs {rd:.3f}",
            (1, 2, 3, 4),
        )
    )
    gt, recon = (
        m.need(sets.gen(sets.gt_set(k, "ar")), "premises"),
        m.need(sets.gen(sets.VQ_RECON_SET), "premises"),
    )
    ratio = gt["fid"] / max(recon["fid"], 1e-12)
    label = f", rendered-label top-1 {gt['source_top1']:.3f}" if "source_top1" in gt else ""
    out.append(
        Premise(
            "the renderer reproduces its tokens: ground-truth-token FID within "
            f"{RENDER_BOUND_RATIO:g}x the VQ reconstruction's",
            ratio <= RENDER_BOUND_RATIO,
            f"FID {gt['fid']:.3f} vs {recon['fid']:.3f} ({ratio:.2f}x){label}; below this, "
            "DiGIT's FID measures the renderer rather than the tokens",
            (2, 4),
            measure="samples",
            handicaps_digit=True,
        )
    )
    g = m.need(sets.gen(sets.digit_set(k)), "premises")
    dim = (m.get(sets.EVALNET) or {}).get("feat_dim") if g.get("extractor") == "evalnet" else 2048
    enough = bool(dim) and g["n_gen"] >= SAMPLES_PER_DIM * dim
    out.append(
        Premise(
            f"enough samples for FID (at least {SAMPLES_PER_DIM} per feature dimension)",
            enough,
            f"{g['n_gen']} generated images per set, {dim} feature dimensions",
            (2, 4),
            measure="samples",
        )
    )
    out.append(
        Premise(
            "noise is measurable: at least two seeds",
            min(len(params.seeds), len(params.sample_seeds)) >= 2,
            f"seeds {params.seeds} (token models, probes), of which {params.sample_seeds} also "
            "render and sample",
            (2, 3, 4),
        )
    )
    return out


def gate(verdict: Verdict, number: int, checks: list[Premise]) -> Verdict:
    """A claim whose premise failed is "untestable here"; the rule's own result stays in the
    evidence. A premise about one measure voids only verdicts that rest on it, and a handicap of
    DiGIT's (``handicaps_digit``) leaves claim 2's "supported" standing, said in the evidence."""
    failed = [
        p
        for p in checks
        if not p.passed
        and number in p.gates
        and (p.measure is None or p.measure in verdict.rests_on)
    ]
    if not failed or verdict.verdict == "not tested":
        return verdict
    survives = number == 2 and verdict.verdict == "supported"
    if survives and all(p.handicaps_digit for p in failed):
        names = "; ".join(p.check for p in failed)
        return dataclasses.replace(
            verdict,
            evidence=f"{verdict.evidence}; premise failed ({names}), but it can only hold "
            "DiGIT back, so the win stands",
        )
    return Verdict(
        verdict.claim,
        "untestable here",
        f"premise failed: {'; '.join(p.check for p in failed)}. The rule alone would say "
        f"{verdict.verdict}: {verdict.evidence}",
        verdict.rests_on,
    )


# --- claims 2-4: seeded comparisons ---------------------------------------------------------------


def claim_generation(params: Params, m: Metrics) -> Verdict:
    """Rule: paired over seeds, FID lower and IS higher for DiGIT (main K) than for the AR model
    over VQ tokens; both -> supported, one with the other unresolved -> partly supported, either
    significantly the wrong way -> not supported, neither -> inconclusive."""
    claim = PAPER["claims"][1]
    k = params.kmeans.main_k
    vq, disc = sets.gen(sets.vq_set()), sets.gen(sets.digit_set(k))
    if not m.get(vq) or not m.get(disc):
        return Verdict(claim, "not tested", "generated-set metrics missing")
    fid = Paired.of(m.values(vq, "fid"), m.values(disc, "fid"))  # > 0: DiGIT lower FID
    isc = Paired.of(m.values(disc, "isc_mean"), m.values(vq, "isc_mean"))  # > 0: higher IS
    better = [x.outcome == "higher" for x in (fid, isc)]
    worse = [x.outcome == "lower" for x in (fid, isc)]
    ev = (
        f"FID {m.pm(disc, 'fid')} (DiGIT K={k}) vs {m.pm(vq, 'fid')} (VQ), VQ - DiGIT "
        f"{fid.text()}; IS {m.pm(disc, 'isc_mean')} vs {m.pm(vq, 'isc_mean')}, DiGIT - VQ "
        f"{isc.text()}; {RULE}"
    )
    mg = m.get(sets.gen(sets.digit_set(k, "maskgit")))
    if mg:
        ev += (
            f"; with the MaskGIT renderer (main seed) FID {mg['fid']:.4g}, IS {mg['isc_mean']:.4g}"
        )
    if any(worse):
        verdict = "not supported" if not any(better) else "partly supported"
    elif all(better):
        verdict = "supported"
    elif any(better):
        verdict = "partly supported"
    else:
        verdict = "inconclusive"
    extractor = m.data[disc].get("extractor")
    return Verdict(claim, verdict, ev + f" ({extractor} features)", frozenset({"samples"}))


def claim_probe(params: Params, m: Metrics) -> Verdict:
    """Rule: paired over seeds, the best block's val top-1 of DiGIT's AR model (main K) against
    the VQ AR model's: higher -> supported, lower -> not supported, else inconclusive. "Learns
    better features" also asks that the blocks add to their input: when DiGIT's best block does
    not beat a probe of its own raw tokens (paired), the advantage is the tokens' and the verdict
    is at most partly supported. The evidence says whether "middle layers" can be judged."""
    claim = PAPER["claims"][2]
    k = params.kmeans.main_k
    d, v = sets.probe(sets.disc_model(k)), sets.probe(sets.VQ_MODEL)
    if not m.get(d) or not m.get(v):
        return Verdict(claim, "not tested", "probe metrics missing")
    gap = Paired.of(m.values(d, "best_top1"), m.values(v, "best_top1"))
    over_input = None
    if "raw_tokens_top1" in m.data[d]:
        over_input = Paired.of(m.values(d, "best_top1"), m.values(d, "raw_tokens_top1"))
    ev = [
        f"best-block top-1 {m.pm(d, 'best_top1')} (DiGIT K={k}) vs {m.pm(v, 'best_top1')} (VQ): "
        f"DiGIT - VQ {gap.text(4)}; {RULE}"
    ]
    for name, label in ((d, f"DiGIT K={k}"), (v, "VQ")):
        rec = m.data[name]
        if "embedding_top1" in rec:
            add_emb = Paired.of(m.values(name, "best_top1"), m.values(name, "embedding_top1"))
            add_raw = Paired.of(m.values(name, "best_top1"), m.values(name, "raw_tokens_top1"))
            ev.append(
                f"{label}: layer 0 (input embedding) {m.pm(name, 'embedding_top1')}, raw tokens "
                f"{m.pm(name, 'raw_tokens_top1')}; the blocks add {add_emb.text(4)} over layer 0 "
                f"and {add_raw.text(4)} over the raw tokens"
            )
    n_layers = m.data[d]["n_layers"]
    layers = ", ".join(map(str, m.values(d, "best_layer")))
    if n_layers < 5:
        ev.append(
            f"best block per seed {layers} of {n_layers}: with {n_layers} blocks there is no "
            "middle to speak of, so the paper's 'peaking in middle layers' cannot be judged here"
        )
    else:
        ev.append(f"best block per seed {layers} of {n_layers}")
    outcome = {"higher": "supported", "lower": "not supported", "unresolved": "inconclusive"}
    verdict = outcome[gap.outcome]
    if verdict == "supported" and over_input is not None and over_input.outcome != "higher":
        verdict = "partly supported"
        ev.insert(
            1,
            "DiGIT's best block does not beat a probe of its own raw tokens, so the advantage "
            "is the tokens', not features the AR model learned",
        )
    return Verdict(claim, verdict, "; ".join(ev), frozenset({"probe"}))


def claim_k(params: Params, m: Metrics) -> Verdict:
    """Rule: every pair of K compared paired over seeds (Bonferroni over the pairs), for the
    probe's best-block top-1 and for FID: supported when any pair differs in either; otherwise
    inconclusive (no equivalence margin is set, so "no effect" is never concluded)."""
    claim = PAPER["claims"][3]
    ks = params.kmeans.ks
    probes = {k: sets.probe(sets.disc_model(k)) for k in ks}
    fids = {k: sets.gen(sets.digit_set(k)) for k in ks}
    if any(not m.get(x) for x in [*probes.values(), *fids.values()]) or len(ks) < 2:
        return Verdict(claim, "not tested", "fewer than two K with metrics")
    pairs = [(a, b) for i, a in enumerate(ks) for b in ks[i + 1 :]]
    found, ev, on = [], [], set()
    for what, names, key, digits, measure in (
        ("probe top-1", probes, "best_top1", 4, "probe"),
        ("FID", fids, "fid", 3, "samples"),
    ):
        ev.append(
            f"{what} by K: " + ", ".join(f"K={k} {m.pm(n, key, digits)}" for k, n in names.items())
        )
        for a, b in pairs:
            diff = Paired.of(m.values(names[b], key), m.values(names[a], key), len(pairs))
            if diff.outcome != "unresolved":
                found.append(f"{what} K={b} - K={a} {diff.text(digits)}")
                on.add(measure)
    ev.append("; ".join(found) if found else "no pair of K differs beyond its interval")
    ev.append(RULE + ", Bonferroni over the pairs of K")
    # Supported rests on the measures that differed; inconclusive on both (either could have).
    rests_on = frozenset(on) if found else frozenset({"probe", "samples"})
    return Verdict(claim, "supported" if found else "inconclusive", "; ".join(ev), rests_on)


def toy_tolerance(n_test: int | None) -> float:
    """Two standard errors of a difference of two accuracies on ``n_test`` points (p = 0.5, the
    widest): closer than this, LDA and PCA tie. Without a count, exact comparison."""
    return 2 * float(np.sqrt(0.5 / n_test)) if n_test else 0.0


def pca_ahead(pca: list[float], lda: list[float], stds: list[float], tol: float) -> list[float]:
    """The noise stds at which PCA's accuracy beats LDA's by more than ``tol``."""
    return [s for s, p, q in zip(stds, pca, lda, strict=True) if p - q > tol]


def claim_toy(m: Metrics) -> Verdict:
    """Rule: at each tilt of the sweep (the classes' variance direction against the separating
    one) and each noise level, PCA beats LDA when it is ahead by more than two standard errors.
    Supported: PCA is never ahead; partly supported: PCA is ahead only at tilts other than the
    main one; not supported: PCA is ahead at the main tilt."""
    claim = PAPER["claims"][4]
    t = m.get(sets.TOY)
    if not t:
        return Verdict(claim, "not tested", f"metrics/{sets.TOY}.json missing")
    tol, stds = toy_tolerance(t.get("n_test")), t["noise_stds"]
    main = pca_ahead(t["pca_accuracy"], t["lda_accuracy"], stds, tol)
    sweep = t.get("sweep") or []
    behind = {
        r["angle_deg"]: lost
        for r in sweep
        if (lost := pca_ahead(r["pca_accuracy"], r["lda_accuracy"], stds, tol))
    }
    main_tilt = t.get("angle_deg", "default")
    ev = [
        f"main tilt {main_tilt} deg: LDA {t['lda_accuracy'][0]:.3f} vs PCA "
        f"{t['pca_accuracy'][0]:.3f} clean, {t['lda_accuracy'][-1]:.3f} vs "
        f"{t['pca_accuracy'][-1]:.3f} at noise std {stds[-1]:g}"
    ]
    if sweep:
        wins = [r["angle_deg"] for r in sweep if r["angle_deg"] not in behind]
        ev.append(f"LDA never behind at tilts {', '.join(f'{a:g}' for a in wins) or 'none'}")
        ev += [
            f"PCA ahead at tilt {a:g} deg for noise std >= {min(lost):g}"
            for a, lost in behind.items()
        ]
    ev.append(f"tie within {tol:.4f} (2 SE)")
    if main:
        verdict = "not supported"
        ev.insert(1, f"PCA ahead at the main tilt for noise std >= {min(main):g}")
    else:
        verdict = "partly supported" if behind else "supported"
    return Verdict(claim, verdict, "; ".join(ev))


def write_claims(params: Params, m: Metrics, out: Path) -> list[Verdict]:
    checks = premises(params, m)
    verdicts = [
        gate(v, i, checks)
        for i, v in enumerate(
            [
                claim_stability(m),
                claim_generation(params, m),
                claim_probe(params, m),
                claim_k(params, m),
                claim_toy(m),
            ],
            1,
        )
    ]
    lines = [
        "# The paper's claims, tested at this run's scale",
        "",
        scale_line(params, m),
        "",
        "## Premises: can the claims be tested here?",
        "",
        'A failed premise marks the claims it gates "untestable here" instead of giving them a '
        "verdict; a premise about the generated samples only voids verdicts reached on them (claim "
        "4 can rest on the probes alone). A renderer that falls short of its bound can only hold "
        "DiGIT back, so a DiGIT win in claim 2 stands with it.",
        "",
        "| check | result | numbers | gates claims |",
        "|---|---|---|---|",
    ]
    for p in checks:
        gates = ", ".join(map(str, p.gates)) or "-"
        if p.measure and p.gates:
            gates += f" (verdicts resting on {p.measure})"
        if p.handicaps_digit:
            gates += "; a DiGIT win of claim 2 stands"
        lines.append(
            f"| {p.check} | {'pass' if p.passed else '**fail**'} | {p.evidence} | {gates} |"
        )
    lines += [
        "",
        "## Verdicts",
        "",
        "Each verdict is computed from the metrics files by `pipeline/report/claims.py` with the "
        "rule stated in its evidence: supported / not supported / inconclusive from paired "
        "comparisons over the seeds, no hand-set margins. A claim that does not hold here is "
        "reported as such, with the numbers.",
        "",
        "| # | claim | verdict | evidence |",
        "|---|---|---|---|",
    ]
    for i, v in enumerate(verdicts, 1):
        lines.append(f"| {i} | {v.claim} | **{v.verdict}** | {v.evidence} |")
    with io.atomic_path(out / "claims.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return verdicts
