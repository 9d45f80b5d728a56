"""claims.md: the paper's five claims (pipeline/paper.yaml) and its title's thesis (claim 6), each given a verdict computed from
this run's metrics by a fixed rule, with the numbers as evidence.

The premises come first: checks that make the claims testable at all (the encoder beats random
weights, its tokens beat random-encoder tokens, the renderer reproduces ground-truth tokens, enough
samples and seeds). A claim gated by a failed premise is "untestable here", its rule's result kept
in the evidence. Claims 2-4 compare models trained once per seed: their rules are paired
differences over the seeds with a Student-t interval, so the noise they use is measured, not
assumed. A claim whose metrics are missing is "not tested" (write_reports stops earlier, on the
tables, for files the DAG writes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import io, sets
from pipeline.params import Params
from pipeline.report.metrics import (
    PAPER,
    Metrics,
    encoder_vs,
    scale_line,
    stability,
    tokenizer_points,
)


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported | partly supported | not supported | inconclusive | untestable here | not tested
    evidence: str
    # The measures the verdict was reached on ("samples": FID / IS of generated sets; "probe"):
    # a failed premise about one measure voids only the verdicts that rest on it.
    rests_on: frozenset[str] = frozenset()


def claim_stability(params: Params, m: Metrics) -> Verdict:
    claim = PAPER["claims"][0]
    disc = f"k{params.kmeans.main_k}"
    st = stability(params, m, "claim 1", required=False)
    if disc not in st.get("tokenizers", {}) or sets.VQ_MODEL not in st["tokenizers"]:
        missing = disc if disc not in st.get("tokenizers", {}) else sets.VQ_MODEL
        return Verdict(claim, "not tested", f"metrics/{sets.stability(missing)}.json missing")
    perts = st["perturbations"]
    t = st["tokenizers"]
    # The encoder rows trained without the noise augmentation: Table 1's control.
    nonoise = [key for key, row in params.encoders.items() if row.noise_aug is False]
    # The VQ rows trained WITH the encoder's noise augmentation: the fair VQ control.
    vq_noise = [sets.vq_row(key) for key, row in params.vq_rows.items() if row.noise_aug]
    gauss = [i for i, p in enumerate(perts) if p["kind"] == "gaussian"]
    other = [i for i, p in enumerate(perts) if p["kind"] != "gaussian"]

    def wins(a: str, b: str, idx: list[int]) -> tuple[int, int]:
        return sum(t[a]["token_change"][i] < t[b]["token_change"][i] for i in idx), len(idx)

    lines, checks = [], []
    for a, b, what in (
        (disc, "vq", "main encoder vs VQ, Gaussian noise"),
        *(
            (key, "vq", f"encoder trained WITHOUT noise augmentation ({key}) vs VQ, Gaussian noise")
            for key in nonoise
        ),
        *(
            (disc, vq, f"main encoder vs VQ trained WITH the same noise ({vq}), Gaussian noise")
            for vq in vq_noise
        ),
    ):
        if a in t and b in t:
            w, n = wins(a, b, gauss)
            checks.append(w == n)
            lines.append(f"{what}: {a} changes fewer tokens at {w}/{n} SNRs")
    for a, b in ((disc, "vq"), *((key, "vq") for key in nonoise)):
        if a in t and b in t and other:
            w, n = wins(a, b, other)
            checks.append(w == n)
            lines.append(
                f"{a} vs {b}, perturbations other than Gaussian noise (salt-and-pepper: in no "
                "tokenizer's training; shifts: SimCLR's random resized crop translates, so the "
                f"encoder saw some): fewer changes in {w}/{n}"
            )
    if not checks:
        return Verdict(
            claim, "not tested", "no discriminative tokenizer beside a VQ one to compare"
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
RECON_KEEP = 0.95  # VQ reconstructions keep this share of the evaluation net's top-1
SAMPLES_PER_DIM = 2  # FID's covariance: at least this many generated images per feature dimension


@dataclass
class Premise:
    check: str
    passed: bool
    evidence: str
    gates: tuple[int, ...]  # the claims (1-based) that are untestable when it fails
    measure: str | None = None  # only verdicts resting on this measure (None: every verdict)


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
            (1, 2, 3, 4, 6),
        )
    )
    gt, recon = (
        m.need(sets.scores(sets.gt_set(k, "causal")), "premises"),
        m.need(sets.scores(sets.VQ_RECON_SET), "premises"),
    )
    ratio = gt["fid"] / max(recon["fid"], 1e-12)
    label = f", rendered-label top-1 {gt['source_top1']:.3f}" if "source_top1" in gt else ""
    out.append(
        Premise(
            "the renderer reproduces its tokens: ground-truth-token FID within "
            f"{RENDER_BOUND_RATIO:g}x the VQ reconstruction's",
            ratio <= RENDER_BOUND_RATIO,
            f"FID {gt['fid']:.3f} vs {recon['fid']:.3f} ({ratio:.2f}x){label}; below this, "
            "DiGIT's FID measures the renderer rather than the tokens (the renderer samples too: "
            "a weak one does not only hold DiGIT back, its truncation can also flatter it)",
            (2, 4, 6),
            measure="samples",
        )
    )
    ev = m.get(sets.EVALNET) or {}
    if "source_top1" in recon and ev.get("val_top1"):
        kept = recon["source_top1"] / ev["val_top1"]
        out.append(
            Premise(
                "the VQ autoencoder reconstructs in absolute terms: the evaluation net's top-1 on "
                f"VQ reconstructions of val images at least {RECON_KEEP:.0%} of its top-1 on the "
                "originals",
                kept >= RECON_KEEP,
                f"{recon['source_top1']:.3f} vs {ev['val_top1']:.3f} ({kept:.1%}); the renderer "
                "premise divides by the reconstruction's FID, so it needs a good one",
                (2, 4, 6),
                measure="samples",
            )
        )
    ruler = ruler_premise(ev)
    if ruler is not None:
        out.append(ruler)
    g = m.need(sets.scores(sets.digit_set(k)), "premises")
    dim = (m.get(sets.EVALNET) or {}).get("feat_dim") if g.get("extractor") == "evalnet" else 2048
    enough = bool(dim) and g["n_gen"] >= SAMPLES_PER_DIM * dim
    out.append(
        Premise(
            f"enough samples for FID (at least {SAMPLES_PER_DIM} per feature dimension)",
            enough,
            f"{g['n_gen']} generated images per set, {dim} feature dimensions",
            (2, 4, 6),
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


def ruler_premise(ev: dict) -> Premise | None:
    """The evaluation net ranks known-quality image sets (digit.metrics.ladder), at a val top-1
    above the highest at which one of its own training checkpoints still mis-ranked one (the
    threshold the evalnet stage measures). None when the run's extractor is a pretrained one."""
    lad = ev.get("ladders")
    if not lad:
        return None
    last, threshold = lad["checkpoints"][-1], lad["mis_ranking_top1"]
    ranked = all(lad["ranks"].values())
    above = threshold is None or ev["val_top1"] > threshold
    sets_text = "; ".join(
        f"{name} ({info['what']} {', '.join(f'{v:g}' for v in info['values'])}): FID "
        + (" < " if lad["ranks"][name] else ", ").join(f"{f:.2f}" for f in last["fid"][name])
        for name, info in lad["levels"].items()
    )
    good = [c["val_top1"] for c in lad["checkpoints"] if all(c["ranks"].values())]
    least = f", the least accurate one that ranked both had {min(good):.3f}" if good else ""
    bar = (
        f"checkpoints at top-1 <= {threshold:.3f} mis-ranked a ladder (the measured threshold)"
        + least
        if threshold is not None
        else "no checkpoint mis-ranked a ladder (no threshold: accuracy never limited ranking)"
    )
    return Premise(
        "the evaluation net can rank generators: its FID orders two quality ladders (pixel "
        "noise, dropped classes), at a val top-1 above the highest at which one of its training "
        "checkpoints still mis-ranked one",
        ranked and above,
        f"val top-1 {ev['val_top1']:.3f}; at {len(lad['checkpoints'])} checkpoints of its training "
        f"it scored {lad['n_per_set']} train images per set against val: {bar}; the run's net "
        f"{'ranks both' if ranked else 'MIS-RANKS a ladder'}: {sets_text}",
        (2, 4, 6),
        measure="samples",
    )


def gate(verdict: Verdict, number: int, checks: list[Premise]) -> Verdict:
    """A claim whose premise failed is "untestable here"; the rule's own result stays in the
    evidence. A premise about one measure voids only verdicts that rest on it."""
    failed = [
        p
        for p in checks
        if not p.passed
        and number in p.gates
        and (p.measure is None or p.measure in verdict.rests_on)
    ]
    if not failed or verdict.verdict == "not tested":
        return verdict
    return Verdict(
        verdict.claim,
        "untestable here",
        f"premise failed: {'; '.join(p.check for p in failed)}. The rule alone would say "
        f"{verdict.verdict}: {verdict.evidence}",
        verdict.rests_on,
    )


# --- claims 2-4: seeded comparisons ---------------------------------------------------------------


def stronger_vq(m: Metrics) -> str:
    """The VQ side claim 2 compares against: of the VQ baseline and the same at DiGIT's training
    compute, the one whose own sampling search reached the lower FID on train images (never the
    val FID the tables report)."""
    vq_sides = [x for x in sets.SIDES if x != "digit"]
    return min(vq_sides, key=lambda x: m.need(sets.sampling(x), "claim 2")["selected"]["fid"])


def outcome_label(better: list[bool], worse: list[bool]) -> str:
    """A claim's label from its tests: all for it -> supported; some for it and none against ->
    partly supported; some against -> not supported (partly when others are for it); none
    resolved -> inconclusive. No test at all is never a verdict."""
    if not better:
        raise ValueError("a verdict needs at least one test")
    if any(worse):
        return "partly supported" if any(better) else "not supported"
    if all(better):
        return "supported"
    return "partly supported" if any(better) else "inconclusive"


def claim_generation(params: Params, m: Metrics) -> Verdict:
    """Rule: DiGIT (main K) against the stronger VQ side (``stronger_vq``) at two samplings, each
    side sampled alike: untruncated at every sampling step, and each side at the setting its own
    sampling search selected on train images. Paired over the sample seeds, FID lower and IS
    higher for DiGIT, Bonferroni over the four tests (2 samplings x 2 measures): all four for
    DiGIT -> supported; some for and none against -> partly supported; any against -> not
    supported (partly if others are for); none resolved -> inconclusive."""
    claim = PAPER["claims"][1]
    k = params.kmeans.main_k
    names = {how: sets.scores(sets.side_set("digit", how, k)) for how in sets.HOWS}
    if any(not m.get(n) for n in names.values()) or not all(
        m.get(sets.sampling(x)) for x in sets.SIDES
    ):
        return Verdict(claim, "not tested", "fair-comparison sets or sampling searches missing")
    vq_side = stronger_vq(m)
    tests = 2 * len(sets.HOWS)
    better, worse, ev = [], [], []
    for how in sets.HOWS:
        disc, vq = names[how], sets.scores(sets.side_set(vq_side, how, k))
        if not m.get(vq):
            return Verdict(claim, "not tested", f"metrics/{vq}_s*.json missing")
        fid = Paired.of(m.values(vq, "fid"), m.values(disc, "fid"), tests)  # > 0: DiGIT lower
        isc = Paired.of(m.values(disc, "isc_mean"), m.values(vq, "isc_mean"), tests)
        better += [x.outcome == "higher" for x in (fid, isc)]
        worse += [x.outcome == "lower" for x in (fid, isc)]
        ev.append(
            f"{how}: FID {m.pm(disc, 'fid')} (DiGIT K={k}) vs {m.pm(vq, 'fid')} ({vq_side}), "
            f"VQ - DiGIT {fid.text()}; IS {m.pm(disc, 'isc_mean')} vs {m.pm(vq, 'isc_mean')}, "
            f"DiGIT - VQ {isc.text()}"
        )
    searched = {x: m.data[sets.sampling(x)]["selected"]["fid"] for x in sets.SIDES if x != "digit"}
    ev.insert(
        0,
        f"against `{vq_side}`, the stronger VQ side by its own sampling search on train images "
        f"(best FID there: {', '.join(f'{x} {v:.3f}' for x, v in searched.items())})",
    )
    paper = sets.scores(sets.digit_set(k))
    if m.get(paper):
        ev.append(
            f"for reference, DiGIT at the paper's sampling (renderer top-p "
            f"{params.generate.renderer_causal.top_p:g}) FID {m.pm(paper, 'fid')}: not a fair row"
        )
    ev.append(RULE + f", Bonferroni over the {tests} tests")
    verdict = outcome_label(better, worse)
    extractor = m.data[names["untruncated"]].get("extractor")
    return Verdict(
        claim, verdict, "; ".join(ev) + f" ({extractor} features)", frozenset({"samples"})
    )


def claim_probe(params: Params, m: Metrics) -> Verdict:
    """Rule: the claim in three parts, each with its own outcome. (A) higher probe accuracy: the
    best block's val top-1 of DiGIT's token model (main K) above the VQ model's; (B) features
    beyond the input: DiGIT's best block above a probe of its own raw tokens; both paired over the
    seeds, Bonferroni over the two. (C) a peak in middle layers: in every seed the best block is
    neither the first nor the last; judged only with at least 5 blocks. The label follows from
    the parts that could be judged (``outcome_label``), and the evidence names each part's
    outcome."""
    claim = PAPER["claims"][2]
    k = params.kmeans.main_k
    d, v = sets.probe(sets.disc_model(k)), sets.probe(sets.VQ_MODEL)
    if not m.get(d) or not m.get(v):
        return Verdict(claim, "not tested", "probe metrics missing")
    tests = 2 if "raw_tokens_top1" in m.data[d] else 1
    gap = Paired.of(m.values(d, "best_top1"), m.values(v, "best_top1"), tests)
    parts = [("A: DiGIT's token model probes better than the VQ one", gap)]
    if tests == 2:
        over_input = Paired.of(m.values(d, "best_top1"), m.values(d, "raw_tokens_top1"), tests)
        parts.append(("B: its best block beats a probe of its own raw tokens", over_input))
    better = [p.outcome == "higher" for _, p in parts]
    worse = [p.outcome == "lower" for _, p in parts]
    word = {"higher": "holds", "lower": "fails", "unresolved": "unresolved"}
    ev = [f"{what}: {word[p.outcome]} ({p.text(4)})" for what, p in parts]
    n_layers = m.data[d]["n_layers"]
    best = m.values(d, "best_layer")
    layers = ", ".join(map(str, best))
    if n_layers < 5:
        ev.append(
            f"C: a peak in middle layers: not judged (best block per seed {layers} of "
            f"{n_layers}; with fewer than 5 blocks there is no middle to speak of)"
        )
    else:
        middle = all(1 < b < n_layers for b in best)
        better.append(middle)
        worse.append(not middle)
        ev.append(
            f"C: a peak in middle layers: {'holds' if middle else 'fails'} (best block per seed "
            f"{layers} of {n_layers})"
        )
    ev.append(
        f"best-block top-1 {m.pm(d, 'best_top1')} (DiGIT K={k}) vs {m.pm(v, 'best_top1')} (VQ); "
        f"raw tokens {m.pm(d, 'raw_tokens_top1') if tests == 2 else '-'} (DiGIT)"
    )
    ev.append(RULE + (f", Bonferroni over the {tests} paired tests" if tests > 1 else ""))
    return Verdict(claim, outcome_label(better, worse), "; ".join(ev), frozenset({"probe"}))


def claim_k(params: Params, m: Metrics) -> Verdict:
    """Rule: every pair of K compared paired over seeds, for the probe's best-block top-1 and for
    FID (the paper's sets, sampled alike for every K), Bonferroni over every test the claim runs
    (pairs x 2 measures): supported when both measures have a pair that differs; partly supported
    when one does; otherwise inconclusive (no equivalence margin is set, so "no effect" is never
    concluded)."""
    claim = PAPER["claims"][3]
    ks = params.kmeans.ks
    probes = {k: sets.probe(sets.disc_model(k)) for k in ks}
    fids = {k: sets.scores(sets.digit_set(k)) for k in ks}
    if any(not m.get(x) for x in [*probes.values(), *fids.values()]) or len(ks) < 2:
        return Verdict(claim, "not tested", "fewer than two K with metrics")
    pairs = [(a, b) for i, a in enumerate(ks) for b in ks[i + 1 :]]
    tests = 2 * len(pairs)
    found, ev, on = [], [], set()
    for what, names, key, digits, measure in (
        ("probe top-1", probes, "best_top1", 4, "probe"),
        ("FID", fids, "fid", 3, "samples"),
    ):
        ev.append(
            f"{what} by K: " + ", ".join(f"K={k} {m.pm(n, key, digits)}" for k, n in names.items())
        )
        for a, b in pairs:
            diff = Paired.of(m.values(names[b], key), m.values(names[a], key), tests)
            if diff.outcome != "unresolved":
                found.append(f"{what} K={b} - K={a} {diff.text(digits)}")
                on.add(measure)
    ev.append("; ".join(found) if found else "no pair of K differs beyond its interval")
    ev.append(RULE + f", Bonferroni over the {tests} tests (pairs of K x 2 measures)")
    if on == {"probe", "samples"}:
        verdict = "supported"
    elif on:
        verdict = "partly supported"
        ev.insert(-1, f"only {'probe accuracy' if 'probe' in on else 'FID'} resolves a pair of K")
    else:
        verdict = "inconclusive"
    # Rests on the measures that differed; inconclusive on both (either could have).
    rests_on = frozenset(on) if on else frozenset({"probe", "samples"})
    return Verdict(claim, verdict, "; ".join(ev), rests_on)


def toy_tolerance(n_test: int | None) -> float:
    """Two standard errors of a difference of two accuracies on ``n_test`` points (p = 0.5, the
    widest): closer than this, LDA and PCA tie. Without a count, exact comparison."""
    return 2 * float(np.sqrt(0.5 / n_test)) if n_test else 0.0


def pca_ahead(pca: list[float], lda: list[float], stds: list[float], tol: float) -> list[float]:
    """The noise stds at which PCA's accuracy beats LDA's by more than ``tol``."""
    return [s for s, p, q in zip(stds, pca, lda, strict=True) if p - q > tol]


def deg(angle: float | str) -> str:
    """A tilt as the evidence prints it (the main one may be unnamed: "default")."""
    return f"{angle:g}" if isinstance(angle, int | float) else str(angle)


def drops(acc: list[float]) -> list[float]:
    """Accuracy lost from clean (the first noise level) at every noise level."""
    return [acc[0] - a for a in acc]


def claim_toy(m: Metrics) -> Verdict:
    """Rule: two readings of "keeps class separation under noise better", at each tilt of the
    sweep (the classes' variance direction against the separating one) and each noise level:
    the accuracy itself (PCA counts as ahead when it beats LDA by more than two standard errors)
    and its drop from clean (PCA counts as ahead when it loses less than LDA by more than that).
    Supported: PCA is ahead on neither reading at any tilt; not supported: PCA is ahead on both
    readings at the main tilt; otherwise partly supported, the evidence saying which reading
    holds where."""
    claim = PAPER["claims"][4]
    t = m.get(sets.TOY)
    if not t:
        return Verdict(claim, "not tested", f"metrics/{sets.TOY}.json missing")
    tol, stds = toy_tolerance(t.get("n_test")), t["noise_stds"]
    geometries = [(t.get("angle_deg", "default"), t["pca_accuracy"], t["lda_accuracy"], True)]
    geometries += [
        (r["angle_deg"], r["pca_accuracy"], r["lda_accuracy"], False) for r in t.get("sweep") or []
    ]
    ev = [
        f"main tilt {geometries[0][0]} deg: LDA {t['lda_accuracy'][0]:.3f} vs PCA "
        f"{t['pca_accuracy'][0]:.3f} clean, {t['lda_accuracy'][-1]:.3f} vs "
        f"{t['pca_accuracy'][-1]:.3f} at noise std {stds[-1]:g} (drops "
        f"{drops(t['lda_accuracy'])[-1]:+.3f} vs {drops(t['pca_accuracy'])[-1]:+.3f})"
    ]
    main_fails, sweep_fails = set(), []
    for reading, view in (
        ("accuracy", lambda a: a),
        ("drop from clean", lambda a: [-x for x in drops(a)]),  # less lost = ahead
    ):
        lost = {
            angle: ahead
            for angle, pca, lda, _ in geometries
            if (ahead := pca_ahead(view(pca), view(lda), stds, tol))
        }
        if geometries[0][0] in lost:
            main_fails.add(reading)
        if any(a in lost for a, *_ in geometries[1:]):
            sweep_fails.append(reading)
        holds = [deg(a) for a, *_ in geometries[1:] if a not in lost]
        ev.append(
            f"{reading}: PCA ahead "
            + (
                ", ".join(
                    f"at tilt {deg(a)} deg for noise std >= {min(x):g}" for a, x in lost.items()
                )
                if lost
                else "nowhere"
            )
            + (
                f"; LDA never behind at tilts {', '.join(holds) or 'none'}"
                if len(geometries) > 1
                else ""
            )
        )
    ev.append(f"tie within {tol:.4f} (2 SE of a difference of accuracies)")
    if main_fails == {"accuracy", "drop from clean"}:
        verdict = "not supported"
    elif main_fails or sweep_fails:
        verdict = "partly supported"
        ev.insert(
            1,
            "holds at the main tilt on "
            + (
                " and ".join(r for r in ("accuracy", "drop from clean") if r not in main_fails)
                or "neither reading"
            )
            + (f", fails there on {' and '.join(sorted(main_fails))}" if main_fails else ""),
        )
    else:
        verdict = "supported"
    return Verdict(claim, verdict, "; ".join(ev))


# --- claim 6 (beyond the paper): does stability predict generation? ------------------------------

THESIS = (
    "Beyond the paper, its title's thesis: a more stable latent space makes a better AR model - "
    "across tokenizers, fewer token changes under pixel noise go with lower FID and higher "
    "linear-probe accuracy."
)


@dataclass
class RankCorrelation:
    """Spearman's rho over n points and its interval: Fisher z with the Bonett-Wright standard
    error sqrt((1 + rho^2 / 2) / (n - 3)), widened by Bonferroni over ``comparisons``; no interval
    below 4 points. ``outcome``: "positive" / "negative" when it excludes 0, else "unresolved"."""

    rho: float
    low: float | None
    high: float | None
    n: int
    comparisons: int = 1

    @classmethod
    def of(cls, x: list[float], y: list[float], comparisons: int = 1) -> RankCorrelation:
        from scipy import stats

        n = len(x)
        varies = len(set(x)) > 1 and len(set(y)) > 1  # else rho is undefined
        rho = float(stats.spearmanr(x, y).statistic) if varies else float("nan")
        if n < 4 or not np.isfinite(rho):
            return cls(rho, None, None, n, comparisons)
        level = 1 - (1 - CONFIDENCE) / comparisons
        q = float(stats.norm.ppf(0.5 + level / 2))
        z = float(np.arctanh(np.clip(rho, -0.999999, 0.999999)))
        se = float(np.sqrt((1 + rho**2 / 2) / (n - 3)))
        return cls(rho, float(np.tanh(z - q * se)), float(np.tanh(z + q * se)), n, comparisons)

    @property
    def outcome(self) -> str:
        if self.low is None or self.high is None or self.low <= 0 <= self.high:
            return "unresolved"
        return "positive" if self.low > 0 else "negative"

    def text(self) -> str:
        if self.low is None:
            return f"Spearman rho {self.rho:+.2f} ({self.n} tokenizers: no interval)"
        ci = f"{CONFIDENCE:.0%}" + (
            f" Bonferroni x{self.comparisons}" if self.comparisons > 1 else ""
        )
        return (
            f"Spearman rho {self.rho:+.2f}, {ci} interval [{self.low:+.2f}, {self.high:+.2f}] "
            f"(Fisher z, {self.n} tokenizers)"
        )


def thesis_correlations(points: list[dict]) -> dict[str, RankCorrelation]:
    """Token change against FID (the thesis: positive) and against probe accuracy (negative)."""
    change = [p["token change"] for p in points]
    return {
        measure: RankCorrelation.of(change, [p[measure] for p in points], comparisons=2)
        for measure in ("FID", "Acc@LP")
    }


def claim_thesis(params: Params, m: Metrics) -> Verdict:
    """Rule: over every tokenizer of the run (sets.tokenizer_rows), Spearman's rho between the
    token change at 20 dB and (a) the FID of its samples at matched sampling, (b) its probe's
    accuracy; Fisher-z intervals, Bonferroni x2. The thesis predicts (a) positive and (b)
    negative: both resolved that way -> supported; one, and none against -> partly supported;
    any resolved against -> not supported (partly if the other is for); none -> inconclusive."""
    points = tokenizer_points(params, m, "claim 6")
    r = thesis_correlations(points)
    better = [r["FID"].outcome == "positive", r["Acc@LP"].outcome == "negative"]
    worse = [r["FID"].outcome == "negative", r["Acc@LP"].outcome == "positive"]
    order = sorted(points, key=lambda p: p["token change"])
    evidence = (
        f"token change at 20 dB vs FID (untruncated at every step): {r['FID'].text()}; vs probe "
        f"accuracy: {r['Acc@LP'].text()}. From most to least stable: "
        + ", ".join(
            f"{p['tokenizer']} ({p['token change']:.3f}: FID {p['FID']:.2f}, probe "
            f"{p['Acc@LP']:.3f})"
            for p in order
        )
        + ". The tokenizers differ in more than stability (K, objective, K-Means vs VQ): a "
        "correlation across them, not a controlled effect; rule: the thesis predicts a positive "
        "rho with FID and a negative one with probe accuracy, each counted when its interval "
        "excludes 0"
    )
    return Verdict(THESIS, outcome_label(better, worse), evidence, frozenset({"samples", "probe"}))


def write_claims(params: Params, m: Metrics, out: Path) -> list[Verdict]:
    checks = premises(params, m)
    verdicts = [
        gate(v, i, checks)
        for i, v in enumerate(
            [
                claim_stability(params, m),
                claim_generation(params, m),
                claim_probe(params, m),
                claim_k(params, m),
                claim_toy(m),
                claim_thesis(params, m),
            ],
            1,
        )
    ]
    lines = [
        "# The paper's claims, tested at this run's scale (and one beyond it)",
        "",
        scale_line(params, m),
        "",
        "## Premises: can the claims be tested here?",
        "",
        'A failed premise marks the claims it gates "untestable here" instead of giving them a '
        "verdict; a premise about the generated samples only voids verdicts reached on them (claim "
        "4 can rest on the probes alone).",
        "",
        "| check | result | numbers | gates claims |",
        "|---|---|---|---|",
    ]
    for p in checks:
        gates = ", ".join(map(str, p.gates)) or "-"
        if p.measure and p.gates:
            gates += f" (verdicts resting on {p.measure})"
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
