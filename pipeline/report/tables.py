"""Every table of reports/: the paper's Tables 1-4, the ablations (tokenizer, K, encoder kind),
the encoder table, the sampling sweeps and the appendix toy. Each is written as markdown + csv,
with the paper's numbers beside ours where the paper gives them.

The rows are the DAG's: sample sets from pipeline/sets.py (``sample_sets``), one row per K of
``kmeans.ks``, the probed token models. A row's metrics files are required (``Metrics.need``):
a missing one stops the report with its name. Only the toy table may be missing (see
pipeline/report/metrics.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io, sets
from pipeline.params import Params
from pipeline.report.figures import plot_probe, plot_sampling, plot_stability
from pipeline.report.metrics import PAPER, Metrics, scale_line
from pipeline.sets import SampleSet, sample_sets


def to_markdown(df: pd.DataFrame) -> str:
    # Object cells keep integers (K, counts) as integers and let missing values print as "-".
    cells = df.astype(object).where(df.notna(), None)
    return cells.to_markdown(index=False, floatfmt=".3f", missingval="-")


@dataclass
class Table:
    name: str  # file stem under reports/
    title: str
    scale: str  # what was run, at which scale, with which protocol
    ours: pd.DataFrame | None
    paper: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def write(self, out: Path) -> None:
        lines = [f"# {self.title}", "", self.scale, ""]
        ours = pd.DataFrame() if self.ours is None else self.ours
        if ours.empty:
            lines += [
                "*Not produced by this run: the metrics behind this table are missing.*",
                "",
            ]
        else:
            lines += ["## This run", "", to_markdown(ours), ""]
        with io.atomic_path(out / f"{self.name}.csv") as tmp:  # always: a DVC out of `report`
            ours.to_csv(tmp, index=False)
        for fig in self.figures:
            lines += [f"![{fig}](figures/{fig})", ""]
        if self.paper is not None:
            lines += [
                "## The paper (ImageNet 256x256; not comparable in absolute terms)",
                "",
                to_markdown(self.paper),
                "",
            ]
        lines += [f"- {n}" for n in self.notes]
        with io.atomic_path(out / f"{self.name}.md") as tmp:
            tmp.write_text("\n".join(lines).rstrip() + "\n")


# --- tables -----------------------------------------------------------------------------------


def table1(params: Params, m: Metrics, figdir: Path) -> Table:
    st = m.need(sets.STABILITY, "Table 1")
    labels = [p["label"] for p in st["perturbations"]]
    rows = []
    for tok, r in st["tokenizers"].items():
        for key, what in (
            ("token_change", "token change"),
            ("cos_quantized", "cos-sim"),
            ("cos_features", "cos-sim (features)"),
        ):
            rows.append(
                {"tokenizer": tok, "measure": what, **dict(zip(labels, r[key], strict=True))}
            )
    notes = [f"`{t}`: {r['describe']}" for t, r in st["tokenizers"].items()]
    notes.append(f"Protocol: {st['protocol']}.")
    p = PAPER["table1_stability"]
    plot_stability(st, p, figdir / "stability.png")
    paper = pd.DataFrame(
        [
            {
                "tokenizer": name,
                "measure": what,
                **{f"SNR {s:g} dB": v for s, v in zip(p["snr_db"], p[key], strict=True)},
            }
            for name, what, key in (
                ("VQ", "token change", "vq_token_change"),
                ("Disc", "token change", "disc_token_change"),
                ("VQ", "cos-sim", "vq_cos_sim"),
                ("Disc", "cos-sim", "disc_cos_sim"),
            )
        ]
    )
    return Table(
        "table1_stability",
        "Table 1: latent-space stability under pixel perturbations",
        scale_line(params, m),
        pd.DataFrame(rows),
        paper,
        notes,
        ["stability.png"],
    )


def ar_params(m: Metrics, model: str, what: str) -> str:
    """The parameter count of token model ``model`` (metrics/ar_<model>.json)."""
    n = m.need(sets.ar(model), what).get("n_params")
    return f"{n / 1e6:.2f}M" if n else "-"


def gen_row(m: Metrics, s: SampleSet, table: str) -> dict:
    """A generation table's row for sample set ``s``: its label, its token model's size (sampled
    sets only), FID / IS / KID / precision / recall, class accuracy for conditional sets."""
    what = f"{table}, row {s.label!r}"
    g = m.need(s.metrics, what)
    return {
        "set": s.label,
        **({"params": ar_params(m, s.token_model, what)} if s.token_model else {}),
        "FID": g.get("fid"),
        "IS": g.get("isc_mean"),
        "KID": g.get("kid_mean"),
        "precision": g.get("precision"),
        "recall": g.get("recall"),
        **({"cond. top-1": g["cond_top1"]} if "cond_top1" in g else {}),
        "n": g.get("n_gen"),
    }


def generation_rows(params: Params, m: Metrics, table: sets.GenTable) -> list[dict]:
    """``table``'s rows: the sample sets pipeline/sets.py assigns to it, in its order."""
    ss = sample_sets(params.kmeans.ks, params.kmeans.main_k).values()
    return [gen_row(m, s, table) for s in ss if s.table == table]


def table3(params: Params, m: Metrics) -> Table:
    paper = pd.DataFrame(PAPER["table3_unconditional"]).rename(columns={"fid": "FID", "is": "IS"})
    return Table(
        "table3_unconditional",
        "Table 3: class-unconditional generation",
        scale_line(params, m),
        pd.DataFrame(generation_rows(params, m, "table3_unconditional")),
        paper,
        [
            "Generated sets are scored against the val split.",
            "Our VQ autoencoder is a plain VQ-VAE (no adversarial or perceptual loss), standing "
            "in for VQGAN.",
        ],
    )


def table4(params: Params, m: Metrics) -> Table:
    """The DAG renders class-conditional DiGIT tokens with the AR renderer only: no MaskGIT row."""
    paper = pd.DataFrame(PAPER["table4_conditional"]).rename(columns={"fid": "FID", "is": "IS"})
    return Table(
        "table4_conditional",
        "Table 4: class-conditional generation",
        scale_line(params, m),
        pd.DataFrame(generation_rows(params, m, "table4_conditional")),
        paper,
        [
            f"cond. top-1: the evaluation net's accuracy at recognising the class each sample "
            f"was conditioned on; guidance scale {params.generate.token_model_cond.cfg_scale}."
        ],
    )


def table2_models(params: Params) -> list[tuple[str, str, str]]:
    """(token model, table label, figure label) of Table 2's rows and Fig. 3(b)'s curves."""
    disc = [(sets.disc_model(k), f"DiGIT, K={k}", f"DiGIT K={k}") for k in params.kmeans.ks]
    return [*disc, (sets.VQ_MODEL, "VQ tokens", "VQ tokens")]


def table2(params: Params, m: Metrics, figdir: Path) -> Table:
    rows, curves = [], []
    for model, label, curve in table2_models(params):
        what = f"Table 2, row {label!r}"
        p = m.need(sets.probe(model), what)
        a = m.need(sets.ar(model), what)
        rows.append(
            {
                "model": label,
                "tokens": "x".join(map(str, [int(np.sqrt(a.get("seq_len", 0) or 0))] * 2))
                if a.get("seq_len")
                else "-",
                "params": ar_params(m, model, what),
                "best layer": f"{p['best_layer']}/{p['n_layers']}",
                "top-1": p["best_top1"],
                "last layer top-1": p["top1_per_layer"][-1],
            }
        )
        curves.append((curve, p))
    plot_probe(curves, figdir / "probe_per_layer.png")
    first = m.need(sets.probe(table2_models(params)[0][0]), "Table 2")
    notes = [f"Protocol: {first['protocol']}."]
    if "best_layer_selected_on" in first:
        notes.append(
            f"Best layer: chosen on {first['best_layer_selected_on']} by probes trained without "
            "them; top-1 is that layer's on val, so no val score picks the layer it is scored on."
        )
    return Table(
        "table2_probe",
        "Table 2 and Fig. 3(b): linear probe of the AR models",
        scale_line(params, m),
        pd.DataFrame(rows),
        pd.DataFrame(PAPER["table2_probe"]),
        notes,
        ["probe_per_layer.png"],
    )


def ablation_tokenizer(params: Params, m: Metrics) -> Table:
    k = params.kmeans.main_k
    ss = sample_sets(params.kmeans.ks, k)
    rows = []
    for label, s in (
        ("VQ tokens", ss[sets.vq_set()]),
        (f"discriminative tokens (K={k})", ss[sets.digit_set(k)]),
    ):
        what = f"Fig. 3(a), row {label!r}"
        g = m.need(s.metrics, what)
        p = m.need(sets.probe(s.token_model), what)
        a = m.need(sets.ar(s.token_model), what)
        rows.append(
            {
                "tokens": label,
                "FID": g.get("fid"),
                "IS": g.get("isc_mean"),
                "probe top-1": p.get("best_top1"),
                "AR val bits/token": a.get("val_bits_per_token"),
            }
        )
    return Table(
        "ablation_tokenizer",
        "Fig. 3(a): VQ tokens vs discriminative tokens (unconditional)",
        scale_line(params, m),
        pd.DataFrame(rows),
        pd.DataFrame(PAPER["fig3a_tokenizer_ablation"]),
        [
            "Bits per token are not comparable across vocabularies of different size; "
            "FID/IS and probe accuracy are."
        ],
    )


def ablation_k(params: Params, m: Metrics) -> Table:
    ss = sample_sets(params.kmeans.ks, params.kmeans.main_k)
    rows = []
    for k in params.kmeans.ks:
        s = ss[sets.digit_set(k)]
        what = f"the K ablation, row K={k}"
        t = m.need(sets.tokens(k), what)
        g = m.need(s.metrics, what)
        p = m.need(sets.probe(s.token_model), what)
        a = m.need(sets.ar(s.token_model), what)
        rows.append(
            {
                "K": k,
                "codes used": (t.get("trained") or {}).get("codes_used"),
                "token probe top-1": (t.get("trained") or {}).get("token_probe_top1"),
                "AR probe top-1": p.get("best_top1"),
                "best layer": p.get("best_layer"),
                "AR val bits/token": a.get("val_bits_per_token"),
                "FID": g.get("fid"),
                "IS": g.get("isc_mean"),
            }
        )
    return Table(
        "ablation_k",
        "Fig. 3(b) / ablation over the number of clusters K",
        scale_line(params, m),
        pd.DataFrame(rows),
        None,
        ["The paper shows this ablation as a plot (K = 1024 / 4096 / 8192) without numbers."],
    )


def encoder_table(params: Params, m: Metrics) -> Table:
    e = m.need(sets.ENCODER, "the encoder table")
    rows = [{"what": "pooled-feature k-NN top-1", **e["knn_top1"]}]
    for k in params.kmeans.ks:
        t = m.need(sets.tokens(k), f"the encoder table, K={k}")
        rows.append(
            {
                "what": f"K={k} token probe top-1",
                "trained": t["trained"]["token_probe_top1"],
                "random": t["random"]["token_probe_top1"],
            }
        )
        rows.append(
            {
                "what": f"K={k} bag-of-tokens k-NN top-1",
                "trained": t["trained"]["bag_knn_top1"],
                "random": t["random"]["bag_knn_top1"],
            }
        )
    return Table(
        "encoder",
        "The tokenizer's encoder: trained vs random weights vs pixels",
        scale_line(params, m),
        pd.DataFrame(rows),
        None,
        [f"k-NN protocol: {e['protocol']}."],
    )


def ablation_encoder(params: Params, m: Metrics) -> Table:
    k = params.kmeans.main_k
    ss = sample_sets(params.kmeans.ks, k)
    rows = []
    for label, kind, s, enc in (
        (f"SimCLR + K-Means (K={k})", "discriminative", ss[sets.digit_set(k)], sets.ENCODER),
        (f"MAE + K-Means (K={k})", "reconstructive", ss[sets.mae_set(k)], sets.ENCODER_MAE),
        ("VQ autoencoder", "-", ss[sets.vq_set()], None),
    ):
        what = f"the encoder-kind ablation, row {label!r}"
        g = m.need(s.metrics, what)
        p = m.need(sets.probe(s.token_model), what)
        e = m.need(enc, what) if enc else None
        rows.append(
            {
                "encoder": label,
                "kind": kind,
                "FID": g.get("fid"),
                "IS": g.get("isc_mean"),
                "Acc@LP": p.get("best_top1"),
                "Acc@OL (k-NN)": e["knn_top1"]["trained"] if e else None,
            }
        )
    notes = [
        f"The same {params.encoder.name} encoder trained by SimCLR (discriminative) or as a masked "
        f"autoencoder (ssl.mask_ratio {params.ssl.mask_ratio}, reconstructive); each then goes "
        "through the same K-Means -> tokens -> token model -> renderer (+VQGAN) -> samples branch. "
        "Acc@LP: best-layer linear probe of the AR model (Table 2 protocol); Acc@OL: the encoder's "
        "own pooled-feature k-NN top-1 on val (the paper uses a linear probe).",
    ]
    return Table(
        "ablation_encoder",
        "Ablation over the kind of SSL encoder (Fig. 4a)",
        scale_line(params, m),
        pd.DataFrame(rows),
        pd.DataFrame(PAPER["fig4a_ssl_ablation"]),
        notes,
    )


def toy_table(params: Params, m: Metrics) -> Table:
    """Optional: without metrics/toy.json the table says it was not produced."""
    t = m.get(sets.TOY)
    ours, notes = None, []
    if t:
        main = {
            "tilt (deg)": f"{t.get('angle_deg', 45):g} (figure)",
            "|cos(PCA, LDA)|": t["cos_angle"],
        }
        rows = [main | _toy_row(t["noise_stds"], t["pca_accuracy"], t["lda_accuracy"])]
        for r in t.get("sweep") or []:
            rows.append(
                {"tilt (deg)": f"{r['angle_deg']:g}", "|cos(PCA, LDA)|": r["cos_angle"]}
                | _toy_row(t["noise_stds"], r["pca_accuracy"], r["lda_accuracy"])
            )
        ours = pd.DataFrame(rows)
        notes = [
            "Cells: LDA accuracy minus PCA accuracy at each std of the noise added to the test "
            "points (positive: the discriminative projection keeps the classes apart better). "
            "Tilt: the angle between the classes' direction of largest variance and the axis that "
            "separates their means (0: PCA and LDA agree; 90: PCA keeps the useless direction).",
            "Main tilt, accuracies: "
            + "; ".join(
                f"std {s:g}: PCA {p:.3f}, LDA {q:.3f}"
                for s, p, q in zip(
                    t["noise_stds"], t["pca_accuracy"], t["lda_accuracy"], strict=True
                )
            ),
        ]
    return Table(
        "toy",
        "Appendix toy: PCA (reconstructive) vs LDA (discriminative) under noise, over geometries",
        t["protocol"] if t else "",
        ours,
        None,
        notes,
        ["toy.png"] if t else [],
    )


def _toy_row(stds: list[float], pca: list[float], lda: list[float]) -> dict[str, float]:
    return {f"std {s:g}": round(q - p, 3) for s, p, q in zip(stds, pca, lda, strict=True)}


def sampling_table(params: Params, m: Metrics, figdir: Path) -> Table:
    s = m.need(sets.SAMPLING, "Fig. 6's sampling sweeps")
    cols = ("sweep", "top_k", "top_p", "fid", "isc_mean", "precision", "recall")
    rows = [
        {c: r.get(c) for c in cols} | {"distinct tokens": r["distinct_tokens"]} for r in s["rows"]
    ]
    plot_sampling(s, figdir / "sampling_sweeps.png")
    notes = [
        f"Model `{s['model']}`, renderer `{s['renderer']}`, {s['n_samples']} samples per "
        f"setting, temperature {s['temperature']}, against the {s['reference']}; "
        f"top-k 0 / top-p 1.0 = off. Extractor `{s['extractor']}`.",
        "The paper gives Fig. 6 as plots only (no numbers); it samples with top-k 200 at "
        "K=8192 (base), i.e. ~2.4% of the vocabulary.",
    ]
    return Table(
        "sampling_sweeps",
        "Fig. 6: FID / IS under top-k and top-p sampling",
        scale_line(params, m),
        pd.DataFrame(rows),
        None,
        notes,
        ["sampling_sweeps.png"],
    )
