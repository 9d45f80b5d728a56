"""metrics/*.json -> reports/: one markdown table (+ csv) per paper table and ablation, figures, an
index, and claims.md, which checks the paper's five claims against this run's numbers.

Only the pipeline writes reports/ (the `report` stage). Numbers come from the metrics files alone;
the paper's numbers come from pipeline/paper.yaml and are printed beside ours, never mixed in.
A table whose metrics are missing (a stage not in this DAG yet) says so instead of inventing rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline import io
from pipeline.params import Params

PAPER = yaml.safe_load((Path(__file__).parent / "paper.yaml").read_text())


@dataclass
class Metrics:
    """Every metrics/*.json of the run, by file stem."""

    root: Path
    data: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> Metrics:
        root = Path(root)
        data = {p.stem: json.loads(p.read_text()) for p in sorted(root.glob("*.json"))}
        return cls(root, data)

    def get(self, name: str) -> dict | None:
        return self.data.get(name)


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


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
                "*Not produced by this run: the stages behind this table are not in the DAG yet.*",
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


def scale_line(params: Params, m: Metrics) -> str:
    prep = m.get("prepare") or {}
    ev = m.get("evalnet") or {}
    extractor = params.evaluate.extractor
    judge = f"FID/IS/KID features from `{extractor}`" + (
        f" (our classifier, val top-1 {ev.get('val_top1')})" if extractor == "evalnet" else ""
    )
    return (
        f"Scale: `{params.data.dataset}` {params.data.image_size}x{params.data.image_size}x"
        f"{params.data.channels}, {prep.get('n_train', '?')} train / {prep.get('n_val', '?')} val "
        f"images; encoder `{params.encoder.name}`; K-Means K in {params.kmeans.ks} (main "
        f"{params.kmeans.main_k}); AR model size `{params.ar.size}`; {judge}; seed "
        f"{params.seed}."
    )


# --- tables -----------------------------------------------------------------------------------


def table1(params: Params, m: Metrics, figdir: Path) -> Table:
    st = m.get("stability")
    ours = None
    notes = []
    if st:
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
        ours = pd.DataFrame(rows)
        notes = [f"`{t}`: {r['describe']}" for t, r in st["tokenizers"].items()]
        notes.append(f"Protocol: {st['protocol']}.")
        plot_stability(st, figdir / "stability.png")
    p = PAPER["table1_stability"]
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
        ours,
        paper,
        notes,
        ["stability.png"] if st else [],
    )


def gen_row(m: Metrics, set_name: str, label: str, **extra) -> dict | None:
    g = m.get(f"gen_{set_name}")
    if g is None:
        return None
    return {
        "set": label,
        **extra,
        "FID": g.get("fid"),
        "IS": g.get("isc_mean"),
        "KID": g.get("kid_mean"),
        "precision": g.get("precision"),
        "recall": g.get("recall"),
        **({"cond. top-1": g["cond_top1"]} if "cond_top1" in g else {}),
        "n": g.get("n_gen"),
    }


def ar_params(m: Metrics, name: str) -> str:
    a = m.get(f"ar_{name}") or {}
    n = a.get("n_params")
    return f"{n / 1e6:.2f}M" if n else "-"


def table3(params: Params, m: Metrics) -> Table:
    k = params.kmeans.main_k
    rows = [
        gen_row(m, "vq", "AR over VQ tokens", params=ar_params(m, "vq")),
        gen_row(
            m, f"digit_k{k}_ar", f"DiGIT (+VQ AR renderer), K={k}", params=ar_params(m, f"k{k}")
        ),
        gen_row(
            m,
            f"digit_k{k}_maskgit",
            f"DiGIT (+MaskGIT renderer), K={k}",
            params=ar_params(m, f"k{k}"),
        ),
        gen_row(m, f"gt_k{k}_ar", "upper bound: ground-truth DiGIT tokens + stage 2 (AR)"),
        gen_row(
            m, f"gt_k{k}_maskgit", "upper bound: ground-truth DiGIT tokens + stage 2 (MaskGIT)"
        ),
        gen_row(m, "vq_recon", "upper bound: VQ reconstruction only"),
    ]
    ours = pd.DataFrame([r for r in rows if r])
    paper = pd.DataFrame(PAPER["table3_unconditional"]).rename(columns={"fid": "FID", "is": "IS"})
    return Table(
        "table3_unconditional",
        "Table 3: class-unconditional generation",
        scale_line(params, m),
        ours,
        paper,
        [
            "Generated sets are scored against the val split.",
            "Our VQ autoencoder is a plain VQ-VAE (no adversarial or perceptual loss), standing "
            "in for VQGAN.",
        ],
    )


def table4(params: Params, m: Metrics) -> Table:
    k = params.kmeans.main_k
    rows = [
        gen_row(
            m, "vq_cond", "AR over VQ tokens, class-conditional", params=ar_params(m, "vq_cond")
        ),
        gen_row(
            m,
            f"digit_k{k}_cond_ar",
            f"DiGIT (+VQ AR renderer), K={k}, class-conditional",
            params=ar_params(m, f"k{k}_cond"),
        ),
        gen_row(
            m,
            f"digit_k{k}_cond_maskgit",
            f"DiGIT (+MaskGIT renderer), K={k}, class-conditional",
            params=ar_params(m, f"k{k}_cond"),
        ),
    ]
    ours = pd.DataFrame([r for r in rows if r])
    paper = pd.DataFrame(PAPER["table4_conditional"]).rename(columns={"fid": "FID", "is": "IS"})
    return Table(
        "table4_conditional",
        "Table 4: class-conditional generation",
        scale_line(params, m),
        ours,
        paper,
        [
            f"cond. top-1: the evaluation net's accuracy at recognising the class each sample "
            f"was conditioned on; guidance scale {params.generate.token_model_cond.cfg_scale}."
        ],
    )


def probe_rows(params: Params, m: Metrics) -> list[dict]:
    rows = []
    names = [(f"k{k}", f"DiGIT, K={k}") for k in params.kmeans.ks] + [("vq", "VQ tokens")]
    for name, label in names:
        p = m.get(f"probe_{name}")
        if p:
            a = m.get(f"ar_{name}") or {}
            rows.append(
                {
                    "model": label,
                    "tokens": "x".join(map(str, [int(np.sqrt(a.get("seq_len", 0) or 0))] * 2))
                    if a.get("seq_len")
                    else "-",
                    "params": ar_params(m, name),
                    "best layer": f"{p['best_layer']}/{p['n_layers']}",
                    "top-1": p["best_top1"],
                    "last layer top-1": p["top1_per_layer"][-1],
                }
            )
    return rows


def table2(params: Params, m: Metrics, figdir: Path) -> Table:
    rows = probe_rows(params, m)
    figs = []
    if rows:
        plot_probe(params, m, figdir / "probe_per_layer.png")
        figs = ["probe_per_layer.png"]
    any_probe = next((m.get(f"probe_k{k}") for k in params.kmeans.ks if m.get(f"probe_k{k}")), None)
    notes = [f"Protocol: {any_probe['protocol']}."] if any_probe else []
    return Table(
        "table2_probe",
        "Table 2 and Fig. 3(b): linear probe of the AR models",
        scale_line(params, m),
        pd.DataFrame(rows),
        pd.DataFrame(PAPER["table2_probe"]),
        notes,
        figs,
    )


def ablation_tokenizer(params: Params, m: Metrics) -> Table:
    k = params.kmeans.main_k
    rows = []
    for label, set_name, model in (
        ("VQ tokens", "vq", "vq"),
        (f"discriminative tokens (K={k})", f"digit_k{k}_ar", f"k{k}"),
    ):
        g = m.get(f"gen_{set_name}") or {}
        p = m.get(f"probe_{model}") or {}
        a = m.get(f"ar_{model}") or {}
        if g or p:
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
    rows = []
    for k in params.kmeans.ks:
        t = m.get(f"tokens_k{k}") or {}
        g = m.get(f"gen_digit_k{k}_ar") or {}
        p = m.get(f"probe_k{k}") or {}
        a = m.get(f"ar_k{k}") or {}
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
    e = m.get("encoder") or {}
    rows = []
    if e:
        rows.append({"what": "pooled-feature k-NN top-1", **e["knn_top1"]})
    for k in params.kmeans.ks:
        t = m.get(f"tokens_k{k}")
        if t:
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
    notes = [f"k-NN protocol: {e['protocol']}."] if e else []
    return Table(
        "encoder",
        "The tokenizer's encoder: trained vs random weights vs pixels",
        scale_line(params, m),
        pd.DataFrame(rows),
        None,
        notes,
    )


def ablation_encoder(params: Params, m: Metrics) -> Table:
    k = params.kmeans.main_k
    rows = []
    for label, kind, gen, probe, enc in (
        (f"SimCLR + K-Means (K={k})", "discriminative", f"digit_k{k}_ar", f"k{k}", "encoder"),
        (f"MAE + K-Means (K={k})", "reconstructive", f"mae_k{k}_ar", "mae", "encoder_mae"),
        ("VQ autoencoder", "-", "vq", "vq", None),
    ):
        g, p = m.get(f"gen_{gen}"), m.get(f"probe_{probe}")
        e = m.get(enc) if enc else None
        if g or p:
            rows.append(
                {
                    "encoder": label,
                    "kind": kind,
                    "FID": (g or {}).get("fid"),
                    "IS": (g or {}).get("isc_mean"),
                    "Acc@LP": (p or {}).get("best_top1"),
                    "Acc@OL (k-NN)": e["knn_top1"]["trained"] if e else None,
                }
            )
    notes = [
        f"The same {params.encoder.name} encoder trained by SimCLR (discriminative) or as a masked "
        f"autoencoder (ssl.mask_ratio {params.ssl.mask_ratio}, reconstructive); each then goes "
        "through the same K-Means -> tokens -> AR -> stage 2 (+VQGAN renderer) -> samples branch. "
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
    t = m.get("toy")
    ours = None
    if t:
        ours = pd.DataFrame(
            {
                "noise std": t["noise_stds"],
                "PCA accuracy": t["pca_accuracy"],
                "LDA accuracy": t["lda_accuracy"],
            }
        )
    return Table(
        "toy",
        "Appendix toy: PCA (reconstructive) vs LDA (discriminative) under noise",
        t["protocol"] if t else "",
        ours,
        None,
        [f"|cos| between the PCA and LDA directions: {t['cos_angle']}."] if t else [],
        ["toy.png"] if t else [],
    )


def sampling_table(params: Params, m: Metrics, figdir: Path) -> Table:
    s = m.get("sampling")
    rows, figs, notes = [], [], []
    if s:
        cols = ("sweep", "top_k", "top_p", "fid", "isc_mean", "precision", "recall")
        rows = [
            {c: r.get(c) for c in cols} | {"distinct tokens": r["distinct_tokens"]}
            for r in s["rows"]
        ]
        plot_sampling(s, figdir / "sampling_sweeps.png")
        figs = ["sampling_sweeps.png"]
        notes = [
            f"Model `{s['model']}`, stage 2 `{s['renderer']}`, {s['n_samples']} samples per "
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
        figs,
    )


# --- figures ----------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _plt().close(fig)


def plot_stability(st: dict, path: Path) -> None:
    plt = _plt()
    perts = st["perturbations"]
    gauss = [i for i, p in enumerate(perts) if p["kind"] == "gaussian"]
    other = [i for i, p in enumerate(perts) if p["kind"] != "gaussian"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    snr = [perts[i]["value"] for i in gauss]
    paper = PAPER["table1_stability"]
    for name, r in st["tokenizers"].items():
        axes[0].plot(snr, [r["token_change"][i] for i in gauss], "o-", label=name)
        axes[1].plot(snr, [r["cos_quantized"][i] for i in gauss], "o-", label=name)
    axes[0].plot(paper["snr_db"], paper["vq_token_change"], "k:", label="paper VQ")
    axes[0].plot(paper["snr_db"], paper["disc_token_change"], "k--", label="paper Disc")
    axes[1].plot(paper["snr_db"], paper["vq_cos_sim"], "k:", label="paper VQ")
    axes[1].plot(paper["snr_db"], paper["disc_cos_sim"], "k--", label="paper Disc")
    for ax, title in (
        (axes[0], "fraction of tokens changed"),
        (axes[1], "cos-sim of quantized vectors"),
    ):
        ax.set_xlabel("SNR (dB)")
        ax.invert_xaxis()
        ax.set_title(title)
        ax.legend(fontsize=7)
    width = 0.8 / max(1, len(st["tokenizers"]))
    x = np.arange(len(other))
    for j, (name, r) in enumerate(st["tokenizers"].items()):
        axes[2].bar(x + j * width, [r["token_change"][i] for i in other], width, label=name)
    axes[2].set_xticks(
        x + 0.4 - width / 2, [perts[i]["label"] for i in other], rotation=20, fontsize=8
    )
    axes[2].set_title("tokens changed: perturbations outside the augmentation")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_sampling(s: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, sweep, label in ((axes[0], "top_k", "top-k (0 = off)"), (axes[1], "top_p", "top-p")):
        rows = [r for r in s["rows"] if r["sweep"] == sweep]
        xs = [str(r[sweep]) for r in rows]
        ax.plot(xs, [r["fid"] for r in rows], "o-", color="C0", label="FID (lower is better)")
        ax.set_xlabel(label)
        ax.set_ylabel("FID", color="C0")
        twin = ax.twinx()
        twin.plot(xs, [r["isc_mean"] for r in rows], "s--", color="C1", label="IS")
        twin.set_ylabel("IS (higher is better)", color="C1")
        ax.set_title(f"{sweep.replace('_', '-')} sweep ({s['extractor']})")
    fig.tight_layout()
    _save(fig, path)


def plot_probe(params: Params, m: Metrics, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, label in [(f"k{k}", f"DiGIT K={k}") for k in params.kmeans.ks] + [
        ("vq", "VQ tokens")
    ]:
        p = m.get(f"probe_{name}")
        if p:
            ax.plot(range(1, p["n_layers"] + 1), p["top1_per_layer"], "o-", label=label)
    ax.set_xlabel("transformer block")
    ax.set_ylabel("linear probe top-1 (val)")
    ax.set_title("linear probe per layer (Fig. 3(b))")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


# --- claims -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported | not supported | partly supported | inconclusive (within noise) | not tested
    evidence: str


def claim_stability(m: Metrics) -> Verdict:
    claim = PAPER["claims"][0]
    st = m.get("stability")
    if not st or "vq" not in st["tokenizers"]:
        return Verdict(claim, "not tested", "metrics/stability.json missing")
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
    return (m.get("prepare") or {}).get("n_val")


def probe_noise(m: Metrics, *accs: float) -> float:
    """Two binomial standard errors of a difference of top-1 accuracies on the val split."""
    n = n_val(m)
    if not n:
        return 0.0
    return 2 * float(np.sqrt(sum(a * (1 - a) / n for a in accs)))


def claim_generation(params: Params, m: Metrics) -> Verdict:
    claim = PAPER["claims"][1]
    k = params.kmeans.main_k
    vq, disc = m.get("gen_vq"), m.get(f"gen_digit_k{k}_ar")
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
    mg = m.get(f"gen_digit_k{k}_maskgit")
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
    d, v = m.get(f"probe_k{k}"), m.get("probe_vq")
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
    probes = {k: (m.get(f"probe_k{k}") or {}).get("best_top1") for k in params.kmeans.ks}
    fids = {k: (m.get(f"gen_digit_k{k}_ar") or {}).get("fid") for k in params.kmeans.ks}
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


def claim_toy(m: Metrics) -> Verdict:
    claim = PAPER["claims"][4]
    t = m.get("toy")
    if not t:
        return Verdict(claim, "not tested", "metrics/toy.json missing")
    pairs = list(zip(t["noise_stds"], t["pca_accuracy"], t["lda_accuracy"], strict=True))
    wins = sum(lda >= pca for _, pca, lda in pairs)
    ev = "; ".join(f"std {s:g}: LDA {lda:.3f} vs PCA {pca:.3f}" for s, pca, lda in pairs)
    return Verdict(
        claim,
        "supported" if wins == len(pairs) else "not supported",
        f"LDA >= PCA at {wins}/{len(pairs)} noise levels ({ev})",
    )


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
        "Each verdict is computed from the metrics files by `pipeline/report.py`; a claim that "
        "does not hold here is reported as such, with the numbers.",
        "",
        "| # | claim | verdict | evidence |",
        "|---|---|---|---|",
    ]
    for i, v in enumerate(verdicts, 1):
        lines.append(f"| {i} | {v.claim} | **{v.verdict}** | {v.evidence} |")
    with io.atomic_path(out / "claims.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return verdicts


def write_reports(params: Params, metrics_dir: str | Path, out: str | Path) -> list[Verdict]:
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    m = Metrics.load(metrics_dir)
    builders: list[Callable[[], Table]] = [
        lambda: table1(params, m, figdir),
        lambda: table2(params, m, figdir),
        lambda: table3(params, m),
        lambda: table4(params, m),
        lambda: ablation_tokenizer(params, m),
        lambda: ablation_k(params, m),
        lambda: ablation_encoder(params, m),
        lambda: encoder_table(params, m),
        lambda: sampling_table(params, m, figdir),
        lambda: toy_table(params, m),
    ]
    tables = [b() for b in builders]
    for t in tables:
        t.write(out)
    verdicts = write_claims(params, m, out)
    index = [
        "# Reports",
        "",
        "Generated by the `report` stage from metrics/*.json; never edited by "
        "hand. Paper numbers: pipeline/paper.yaml.",
        "",
        "- [claims.md](claims.md): the paper's five claims, tested",
    ]
    index += [f"- [{t.name}.md]({t.name}.md): {t.title}" for t in tables]
    grids = sorted(p.name for p in figdir.glob("samples_*.png"))
    if grids:
        index += ["", "## Sample grids", ""] + [f"- [{g}](figures/{g})" for g in grids]
    with io.atomic_path(out / "README.md") as tmp:
        tmp.write_text("\n".join(index) + "\n")
    return verdicts
