"""Figures across models: the analogue of the paper's Fig. 1 (linear probe vs FID, bubble size =
parameters) and the training curves of the main models, read from dvclive/<model>/ (a dep of the
`report` stage in dvc.yaml, so new curves re-draw them)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipeline import sets
from pipeline.params import Params
from pipeline.report.figures import plot_curves, plot_fig1
from pipeline.report.metrics import PAPER, Metrics

FIG1 = "fig1_probe_vs_fid.png"
CURVES = "loss_curves.png"


def _millions(text: str | None) -> float | None:
    """paper.yaml's "219M" / "0.6B" / "3.8B" -> millions."""
    if not text:
        return None
    scale = {"M": 1.0, "B": 1e3}.get(str(text)[-1])
    return float(str(text)[:-1]) * scale if scale else None


def paper_points() -> tuple[list[dict], str]:
    """The paper's (FID, probe) pairs: Fig. 1 itself gives no numbers, so the pairs are those that
    Table 2 (probe) and Table 3 (unconditional FID) both give for one model, and Fig. 4a's (the
    39M AR model over each SSL encoder's tokens)."""
    points = []
    for p in PAPER["table2_probe"]:
        for g in PAPER["table3_unconditional"]:
            if (
                g["type"] == "AR"
                and g["method"].startswith(p["method"])
                and g["params"] == p["params"]
            ):
                label = f"{p['method']} {p['params']}"
                points.append(
                    {
                        "label": label,
                        "fid": g["fid"],
                        "top1": p["top1"] / 100,
                        "params": _millions(p["params"]),
                    }
                )
    size = _millions(PAPER.get("fig4a_ssl_ablation_params"))
    for r in PAPER["fig4a_ssl_ablation"]:
        if r.get("fid") is not None and r.get("acc_lp") is not None and size:
            points.append(
                {
                    "label": f"{r['ssl']} (Fig. 4a)",
                    "fid": r["fid"],
                    "top1": r["acc_lp"] / 100,
                    "params": size,
                }
            )
    note = (
        "Bubble area ~ parameters (token model + renderer; the VQ decoder, shared by all, not "
        "counted). Right: the paper's Fig. 1 prints no numbers, so it shows the pairs the paper "
        "gives elsewhere: DiGIT 219M / 732M (Table 2 probe, Table 3 unconditional FID) and the "
        "39M AR model over MAE / MoCo / iBOT tokens (Fig. 4a). Absolute values are not comparable "
        "across the panels (dataset, scale, FID features)."
    )
    return points, note


def our_points(params: Params, m: Metrics) -> list[dict]:
    """One point per token model that is generated from and probed: DiGIT per K, VQ, each row of
    the encoder axis."""
    k = params.kmeans.main_k
    rows = [
        (
            f"DiGIT K={kk}",
            sets.disc_model(kk),
            sets.digit_set(kk),
            sets.renderer_name("disc", kk, "causal"),
        )
        for kk in params.kmeans.ks
    ]
    rows += [
        ("VQ tokens", sets.VQ_MODEL, sets.vq_set(), None),
        *(
            (
                f"{row.label} K={k}",
                key,
                sets.encoder_set(key, k),
                sets.renderer_name(key, k, "causal"),
            )
            for key, row in params.encoders.items()
        ),
    ]
    points = []
    for label, model, gen_set, renderer in rows:
        what = f"reports/figures/{FIG1}, point {label!r}"
        fid = m.need(sets.scores(gen_set), what).get("fid")
        top1 = m.need(sets.probe(model), what).get("best_top1")
        n = m.need(sets.ar(model), what).get("n_params") or 0
        if renderer:
            n += (m.get(sets.renderer(renderer)) or {}).get("n_params") or 0
        if fid is not None and top1 is not None:
            points.append({"label": label, "fid": fid, "top1": top1, "params": n / 1e6})
    return points


def fig1(params: Params, m: Metrics, figdir: Path) -> str:
    points, note = paper_points()
    plot_fig1(our_points(params, m), points, figdir / FIG1, note)
    return note


def read_curve(live: Path, model: str, split: str) -> list[tuple[float, float]]:
    """dvclive's ``<model>/plots/metrics/<split>/loss.tsv`` as (step, loss) rows; [] if absent."""
    path = live / model / "plots" / "metrics" / split / "loss.tsv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [(float(r["step"]), float(r["loss"])) for r in csv.DictReader(f, delimiter="\t")]


def late_share(curve: list[tuple[float, float]]) -> float | None:
    """How much of a val curve's drop (first evaluation to last) came in the second half of that
    span: near 0 once the steep part is behind, 0.5 on a straight line; None if too short."""
    if len(curve) < 3 or curve[0][1] <= curve[-1][1]:
        return None
    steps, losses = zip(*curve, strict=True)
    mid = float(np.interp((steps[0] + steps[-1]) / 2, steps, losses))
    return (mid - losses[-1]) / (losses[0] - losses[-1])


def curve_panels(params: Params) -> list[tuple[str, list[tuple[str, str]]]]:
    """(panel title, [(label, dvclive folder)]) of the main models (the main seed's)."""
    k, ks = params.kmeans.main_k, params.kmeans.ks
    per_seed = sets.seeded_models(ks)

    def stem(model: str) -> str:  # the main seed's files
        return sets.model_stem(model, params.seed, per_seed)

    token_models = [(f"DiGIT K={kk}", sets.ar(stem(sets.disc_model(kk)))) for kk in ks]
    token_models.append(("VQ tokens", sets.ar(stem(sets.VQ_MODEL))))
    renderers = [
        (f"K={kk} AR", sets.renderer(stem(sets.renderer_name("disc", kk, "causal")))) for kk in ks
    ]
    renderers.append((f"K={k} MaskGIT", sets.renderer(sets.renderer_name("disc", k, "maskgit"))))
    return [
        ("token models (stage 1)", token_models),
        ("renderers (stage 2)", renderers),
        (
            "VQ autoencoder",
            [
                ("VQ", sets.seeded(sets.VQ, params.seed)),
                *((row.label, sets.vq_row(key)) for key, row in params.vq_rows.items()),
            ],
        ),
    ]


def loss_curves(params: Params, live: str | Path | None, figdir: Path) -> None:
    live_dir = Path(live) if live else None
    panels = []
    for title, models in curve_panels(params):
        drawn = []
        for label, folder in models:
            series = {}
            if live_dir is not None:
                series = {s: read_curve(live_dir, folder, s) for s in ("train", "val")}
            if any(series.values()):
                drawn.append((label, series))
        panels.append((title, drawn))
    plot_curves(panels, figdir / CURVES)
