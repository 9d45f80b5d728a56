"""The report's matplotlib figures (reports/figures/*.png), drawn from metrics dicts as given:
this module knows no file or set names. matplotlib loads on the first figure (Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import io


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _plt().close(fig)


def plot_stability(st: dict, paper: dict, path: Path) -> None:
    """Table 1 as curves (Gaussian noise, with the paper's) and bars (the other perturbations);
    ``paper`` is paper.yaml's table1_stability."""
    plt = _plt()
    perts = st["perturbations"]
    gauss = [i for i, p in enumerate(perts) if p["kind"] == "gaussian"]
    other = [i for i, p in enumerate(perts) if p["kind"] != "gaussian"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    snr = [perts[i]["value"] for i in gauss]
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


def setting_label(setting: dict) -> str:
    """A searched setting as a short axis label: "k16", "p0.9", or "off" (untruncated)."""
    if setting["top_k"]:
        return f"k{setting['top_k']}"
    return f"p{setting['top_p']:g}" if setting["top_p"] < 1 else "off"


def truncation_order(setting: dict) -> float:
    """A setting's place on one truncation axis: strong top-k on the left, untruncated in the
    middle, strong top-p on the right (the two sweeps meet at "off")."""
    if setting["top_k"]:
        return -1.0 / setting["top_k"]
    return 1.0 - setting["top_p"]


def plot_sampling(searches: list[tuple[str, dict]], path: Path) -> None:
    """Fig. 6 for every side searched: FID (against train images) along the grid of the token
    model's setting, the renderer held at the side's selected setting (left); DiGIT's renderer
    along the grid, its token model at the selected setting (right). A ring marks each side's
    selected setting."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, s) in enumerate(searches):
        sel = s["selected"]
        color = f"C{i}"
        for ax, step, other in (
            (axes[0], "token_model", "renderer"),
            (axes[1], "renderer", "token_model"),
        ):
            rows = [r for r in s["rows"] if r[other] == sel[other] and r[step] is not None]
            rows.sort(key=lambda r: truncation_order(r[step]))
            if not rows:
                continue
            xs = [setting_label(r[step]) for r in rows]
            ax.plot(xs, [r["fid"] for r in rows], "o-", color=color, label=label)
            best = next(j for j, r in enumerate(rows) if r[step] == sel[step])
            ax.plot([xs[best]], [rows[best]["fid"]], "o", ms=13, mfc="none", color=color)
    extractor = searches[0][1]["extractor"] if searches else "?"
    axes[0].set_title(f"token model's sampling (FID vs train images, {extractor})", fontsize=10)
    axes[1].set_title("DiGIT's renderer (token model at its selected setting)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("k = top-k (top-p off) | off = untruncated | p = top-p (top-k off)")
        ax.set_ylabel("FID (lower is better)")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path)


def plot_probe(curves: list[tuple[str, dict]], path: Path) -> None:
    """Fig. 3(b): linear-probe top-1 per block, one curve per (label, probe metrics)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for label, p in curves:
        ax.plot(range(1, p["n_layers"] + 1), p["top1_per_layer"], "o-", label=label)
    ax.xaxis.get_major_locator().set_params(integer=True)  # blocks are whole numbers
    ax.set_xlabel("transformer block")
    ax.set_ylabel("linear probe top-1 (val)")
    ax.set_title("linear probe per layer (Fig. 3(b))")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside: no curve hidden
    fig.tight_layout()
    _save(fig, path)


def plot_curves(
    panels: list[tuple[str, list[tuple[str, dict[str, list[tuple[float, float]]]]]]], path: Path
) -> None:
    """Training curves, one panel per (title, [(model label, {"train": [(step, loss)], "val":
    [...]})]): train loss solid, val loss dashed with markers, in the same colour."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (title, models) in zip(axes[0], panels, strict=True):
        for i, (label, series) in enumerate(models):
            color = f"C{i % 10}"
            if series.get("train"):
                xs, ys = zip(*series["train"], strict=True)
                ax.plot(xs, ys, "-", color=color, label=f"{label} train")
            if series.get("val"):
                xs, ys = zip(*series["val"], strict=True)
                ax.plot(xs, ys, "o--", color=color, label=f"{label} val", markersize=3)
        if not models:
            ax.text(0.5, 0.5, "no curves (dvclive/ is empty)", ha="center", transform=ax.transAxes)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        if models:
            ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_fig1(ours: list[dict], paper: list[dict], path: Path, note: str) -> None:
    """Fig. 1's analogue: linear-probe top-1 (best layer) vs FID, bubble area ~ parameters; one
    point per model of this run (left) beside the paper's pairs (right). Each point: {"label",
    "fid", "top1", "params"} (params in millions)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, points, title in (
        (axes[0], ours, "this run"),
        (axes[1], paper, "the paper (ImageNet 256x256)"),
    ):
        top = max([p["params"] for p in points] + [1e-9])
        for i, p in enumerate(points):
            size = 60 + 1400 * p["params"] / top
            ax.scatter(p["fid"], p["top1"], s=size, alpha=0.45, color=f"C{i % 10}")
            ax.annotate(
                f"{p['label']} ({p['params']:.3g}M)",
                (p["fid"], p["top1"]),
                xytext=(7, 7),
                textcoords="offset points",
                fontsize=7,
            )
        ax.set_xlabel("FID (lower is better)")
        ax.set_ylabel("linear probe top-1, best layer")
        ax.set_title(title)
        ax.margins(0.2)
    fig.text(0.5, 0.01, note, ha="center", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save(fig, path)


def plot_thesis(points: list[dict], path: Path) -> None:
    """Claim 6: each tokenizer's token change at 20 dB against its FID and its probe accuracy."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"kmeans": "tab:blue", "row": "tab:green", "vq": "tab:red"}
    for ax, measure, better in ((axes[0], "FID", "lower"), (axes[1], "Acc@LP", "higher")):
        for p in points:
            ax.scatter(p["token change"], p[measure], color=colors.get(p["family"], "k"))
            ax.annotate(p["tokenizer"], (p["token change"], p[measure]), fontsize=8,
                        xytext=(4, 3), textcoords="offset points")  # fmt: skip
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.set_xlabel("fraction of tokens changed at SNR 20 dB (lower: more stable)")
        ax.set_ylabel(f"{measure} ({better} is better)")
    axes[0].set_title("samples, untruncated at every step")
    axes[1].set_title("best-layer linear probe of the token model")
    fig.suptitle("Does a more stable tokenizer make a better AR model? (blue: K-Means at each K, "
                 "green: other encoders, red: VQ)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    _save(fig, path)
