"""reports/summary.json: the run's headline numbers, the one file dvc.yaml declares as `metrics`, so
that `dvc metrics show` is a short table and `dvc metrics diff` compares two commits at a glance.

Numbers only (DVC's metrics are numbers), one level deep; DVC shows ``fid.digit_k256`` etc.:

- ``fid`` / ``is``: DiGIT at the main K (+AR renderer), the AR model over VQ tokens, and (FID)
  Table 3's two upper bounds: ``gt`` (ground-truth DiGIT tokens + AR renderer), ``recon`` (VQ
  reconstruction);
- ``probe``: best-layer linear-probe top-1 of the token model of every K and of the VQ one;
- ``noise20db``: fraction of tokens changed by Gaussian noise at SNR 20 dB (Table 1), disc vs VQ
  (the first SNR of the run when it has no 20 dB);
- ``knn``: the trained encoder's pooled-feature k-NN top-1 (``encoder``);
- ``thesis``: claim 6's Spearman rho over the run's tokenizers of the token change at 20 dB against
  FID (``rho_fid``; the thesis predicts > 0) and against probe accuracy (``rho_probe``; < 0);
- ``claims``: how many of the six claims (the paper's five and its thesis) this run supports (claims.md has the verdicts).
"""

from __future__ import annotations

import math
from pathlib import Path

from pipeline import io, sets
from pipeline.params import Params
from pipeline.report.claims import Verdict, thesis_correlations
from pipeline.report.metrics import Metrics, stability, tokenizer_points


def _num(value: object) -> float | None:
    """A number DVC can show; None (left out) for anything else, NaN included."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def summary(params: Params, m: Metrics, verdicts: list[Verdict]) -> dict[str, dict[str, float]]:
    k = params.kmeans.main_k
    gen_sets = {
        f"digit_k{k}": sets.digit_set(k),
        "vq": sets.vq_set(),
        # The fair comparison (claim 2): every side untruncated, and at its searched setting.
        **{
            f"{side}_{how}": sets.side_set(side, how, k) for side in sets.SIDES for how in sets.HOWS
        },
        "gt": sets.gt_set(k, "causal"),
        "recon": sets.VQ_RECON_SET,
    }
    gens = {label: m.need(sets.scores(s), "reports/summary.json") for label, s in gen_sets.items()}
    out: dict[str, dict[str, float | None]] = {
        "fid": {label: _num(g.get("fid")) for label, g in gens.items()},
        "is": {label: _num(gens[label].get("isc_mean")) for label in (f"digit_k{k}", "vq")},
        "probe": {
            model: _num(m.need(sets.probe(model), "reports/summary.json").get("best_top1"))
            for model in [*(sets.disc_model(kk) for kk in params.kmeans.ks), sets.VQ_MODEL]
        },
    }
    st = stability(params, m, "reports/summary.json")
    gauss = [i for i, p in enumerate(st["perturbations"]) if p["kind"] == "gaussian"]
    if gauss:
        at = next((i for i in gauss if st["perturbations"][i]["value"] == 20), gauss[0])
        out[f"noise{st['perturbations'][at]['value']:g}db"] = {
            ("disc" if tok == f"k{k}" else tok): _num(st["tokenizers"][tok]["token_change"][at])
            for tok in (f"k{k}", sets.VQ_MODEL)
        }
    enc = m.need(sets.ENCODER, "reports/summary.json")
    out["knn"] = {"encoder": _num(enc["knn_top1"].get("trained"))}
    r = thesis_correlations(tokenizer_points(params, m, "reports/summary.json"))
    out["thesis"] = {
        "rho_fid": _num(round(r["FID"].rho, 4)),
        "rho_probe": _num(round(r["Acc@LP"].rho, 4)),
    }
    out["claims"] = {"supported": sum(v.verdict == "supported" for v in verdicts)}
    # DVC shows a missing value as "-": leave out what a file did not hold.
    return {group: {k: v for k, v in d.items() if v is not None} for group, d in out.items()}


def write_summary(params: Params, m: Metrics, verdicts: list[Verdict], out: Path) -> dict:
    data = summary(params, m, verdicts)
    io.write_json(out / "summary.json", data)
    return data
