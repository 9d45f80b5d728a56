"""claims.md: the paper's five claims (pipeline/paper.yaml), each given a verdict computed from
this run's metrics by a fixed rule, with the numbers as evidence. A claim whose metrics are missing
is "not tested" here (write_reports stops earlier, on the tables, for files the DAG writes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import io, sets
from pipeline.params import Params
from pipeline.report.metrics import PAPER, Metrics, scale_line


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported | not supported | partly supported | inconclusive (within noise) | not tested
    evidence: str


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


FID_MARGIN = 0.05  # a relative FID difference below this is within run-to-run noise here


def n_val(m: Metrics) -> int | None:
    return (m.get(sets.PREPARE) or {}).get("n_val")


def probe_noise(m: Metrics, *accs: float) -> float:
    """Two binomial standard errors of a difference of top-1 accuracies on the val split."""
    n = n_val(m)
    if not n:
        return 0.0
    return 2 * float(np.sqrt(sum(a * (1 - a) / n for a in accs)))


def claim_generation(params: Params, m: Metrics) -> Verdict:
    claim = PAPER["claims"][1]
    k = params.kmeans.main_k
    vq, disc = m.get(sets.gen(sets.vq_set())), m.get(sets.gen(sets.digit_set(k)))
    if not vq or not disc:
        return Verdict(claim, "not tested", "generated-set metrics missing")
    fid_gap = (vq["fid"] - disc["fid"]) / max(vq["fid"], 1e-12)  # > 0: DiGIT better
    is_noise = disc.get("isc_std", 0.0) + vq.get("isc_std", 0.0)
    is_gap = disc["isc_mean"] - vq["isc_mean"]
    fid = "better" if fid_gap > FID_MARGIN else "worse" if fid_gap < -FID_MARGIN else "tie"
    isc = "better" if is_gap > is_noise else "worse" if is_gap < -is_noise else "tie"
    ev = (
        f"FID {disc['fid']:.4g} (DiGIT K={k}) vs {vq['fid']:.4g} (VQ): {fid}; IS "
        f"{disc['isc_mean']:.4g} vs {vq['isc_mean']:.4g}: {isc} (noise rule: FID within "
        f"{FID_MARGIN:.0%}, IS within the sum of the split stds {is_noise:.3g}, count as ties)"
    )
    mg = m.get(sets.gen(sets.digit_set(k, "maskgit")))
    if mg:
        ev += f"; with the MaskGIT renderer FID {mg['fid']:.4g}, IS {mg['isc_mean']:.4g}"
    if fid == isc == "better":
        verdict = "supported"
    elif "better" in (fid, isc):
        verdict = "partly supported"  # one better, the other tied or worse: stated in evidence
    elif "worse" in (fid, isc):
        verdict = "not supported"
    else:
        verdict = "inconclusive (within noise)"
    return Verdict(claim, verdict, ev + f" ({disc.get('extractor')} features)")


def claim_probe(params: Params, m: Metrics) -> Verdict:
    claim = PAPER["claims"][2]
    k = params.kmeans.main_k
    d, v = m.get(sets.probe(sets.disc_model(k))), m.get(sets.probe(sets.VQ_MODEL))
    if not d or not v:
        return Verdict(claim, "not tested", "probe metrics missing")
    noise = probe_noise(m, d["best_top1"], v["best_top1"])
    gap = d["best_top1"] - v["best_top1"]
    better = gap > noise
    middle = 1 < d["best_layer"] < d["n_layers"]
    ev = (
        f"best-layer top-1 {d['best_top1']:.4f} (DiGIT K={k}, block {d['best_layer']}/{d['n_layers']}) "
        f"vs {v['best_top1']:.4f} (VQ, block {v['best_layer']}/{v['n_layers']}); difference "
        f"{gap:+.4f}, 2 binomial SE {noise:.4f} on {n_val(m)} val images; DiGIT last block "
        f"{d['top1_per_layer'][-1]:.4f}"
    )
    if better:
        verdict = "supported" if middle else "partly supported"
    else:
        verdict = "inconclusive (within noise)" if gap > -noise else "not supported"
    if better and not middle:
        ev += "; the peak is not in a middle layer"
    return Verdict(claim, verdict, ev)


def claim_k(params: Params, m: Metrics) -> Verdict:
    claim = PAPER["claims"][3]
    ks = params.kmeans.ks
    probes = {k: (m.get(sets.probe(sets.disc_model(k))) or {}).get("best_top1") for k in ks}
    fids = {k: (m.get(sets.gen(sets.digit_set(k))) or {}).get("fid") for k in ks}
    probes = {k: v for k, v in probes.items() if v is not None}
    fids = {k: v for k, v in fids.items() if v is not None}
    if len(probes) < 2 and len(fids) < 2:
        return Verdict(claim, "not tested", "fewer than two K with metrics")
    p_spread = max(probes.values()) - min(probes.values()) if len(probes) > 1 else 0.0
    f_spread = (
        (max(fids.values()) - min(fids.values())) / min(fids.values()) if len(fids) > 1 else 0.0
    )
    noise = probe_noise(m, max(probes.values()), min(probes.values())) if len(probes) > 1 else 0
    fids_txt = {k: round(v, 4) for k, v in fids.items()}
    ev = (
        f"probe top-1 by K {probes} (spread {p_spread:.4f}, 2 binomial SE {noise:.4f}); FID by K "
        f"{fids_txt} (relative spread {f_spread:.1%}); it matters if the probe spread exceeds the "
        f"noise or the FID spread exceeds {2 * FID_MARGIN:.0%}"
    )
    matters = (p_spread > noise and p_spread > 0) or f_spread > 2 * FID_MARGIN
    return Verdict(claim, "supported" if matters else "not supported", ev)


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
    verdicts = [
        claim_stability(m),
        claim_generation(params, m),
        claim_probe(params, m),
        claim_k(params, m),
        claim_toy(m),
    ]
    lines = [
        "# The paper's claims, tested at this run's scale",
        "",
        scale_line(params, m),
        "",
        "Each verdict is computed from the metrics files by `pipeline/report/claims.py`; a claim "
        "that does not hold here is reported as such, with the numbers.",
        "",
        "| # | claim | verdict | evidence |",
        "|---|---|---|---|",
    ]
    for i, v in enumerate(verdicts, 1):
        lines.append(f"| {i} | {v.claim} | **{v.verdict}** | {v.evidence} |")
    with io.atomic_path(out / "claims.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return verdicts
