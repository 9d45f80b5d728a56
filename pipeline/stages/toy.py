"""toy: the paper's appendix example -> metrics/toy.json + reports/figures/toy.png.

Two overlapping 2-D Gaussian classes projected to 1-D by PCA (the direction of largest variance:
what a reconstructive objective keeps) and by LDA (Fisher's direction: what a discriminative one
keeps); each projection's nearest-mean classifier is fitted on clean data, then scored as isotropic
Gaussian noise of growing std is added to the test points. The figure shows one geometry
(``toy.angle_deg``); the metrics also hold the same measurement at every tilt of
``toy.sweep_angles_deg``, over which claim 5 is judged.
"""

from __future__ import annotations

import logging

import numpy as np

from digit.metrics.toy import geometry, run_toy
from pipeline import io
from pipeline.params import Params
from pipeline.stage import cli, stage

log = logging.getLogger("digit.toy")


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    x, y = result["x_train"], result["y_train"]
    for c, color in ((0, "tab:blue"), (1, "tab:orange")):
        ax1.scatter(*x[y == c].T, s=4, alpha=0.4, color=color, label=f"class {c}")
    center = x.mean(0)
    for key, style in (("pca", "k--"), ("lda", "r-")):
        d = result[f"dir_{key}"] * 4
        ax1.plot(*np.stack([center - d, center + d]).T, style, lw=2, label=key.upper())
    ax1.set_aspect("equal")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("two overlapping classes and the two 1-D projections")
    stds = result["noise_stds"]
    ax2.plot(stds, result["acc_pca"], "k--o", label="PCA (reconstructive)")
    ax2.plot(stds, result["acc_lda"], "r-o", label="LDA (discriminative)")
    ax2.set_xlabel("std of Gaussian noise added to test points")
    ax2.set_ylabel("accuracy of the 1-D classifier")
    ax2.axhline(0.5, color="gray", lw=0.8)
    ax2.legend()
    ax2.set_title("class separation under noise")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def run(params: Params, metrics: str, figure: str) -> dict:
    t = params.toy

    def at(angle: float) -> dict:
        return run_toy(
            geometry(
                angle,
                n_train_per_class=t.n_train_per_class,
                n_test_per_class=t.n_test_per_class,
                noise_stds=tuple(t.noise_stds),
                seed=params.seed,
            )
        )

    result = at(t.angle_deg)
    plot(result, figure)
    sweep = []
    for angle in t.sweep_angles_deg:
        r = result if angle == t.angle_deg else at(angle)
        sweep.append(
            {
                "angle_deg": float(angle),
                "cos_angle": round(float(r["cos_angle"]), 4),
                "pca_accuracy": [round(float(a), 4) for a in r["acc_pca"]],
                "lda_accuracy": [round(float(a), 4) for a in r["acc_lda"]],
            }
        )
    summary = {
        "protocol": "two 2-D Gaussian classes, 1-D projection + nearest-mean rule fitted on "
        f"{t.n_train_per_class} clean points per class, accuracy on {t.n_test_per_class} noisy "
        "test points per class",
        "angle_deg": float(t.angle_deg),
        "n_test": 2 * t.n_test_per_class,
        "noise_stds": [float(v) for v in result["noise_stds"]],
        "pca_accuracy": [round(float(a), 4) for a in result["acc_pca"]],
        "lda_accuracy": [round(float(a), 4) for a in result["acc_lda"]],
        "pca_direction": [round(float(v), 4) for v in result["dir_pca"]],
        "lda_direction": [round(float(v), 4) for v in result["dir_lda"]],
        "cos_angle": round(float(result["cos_angle"]), 4),
        "sweep": sweep,
    }
    io.write_json(metrics, summary)
    log.info("toy: PCA %s | LDA %s", summary["pca_accuracy"], summary["lda_accuracy"])
    return summary


def main() -> None:
    args = cli(__doc__, "metrics", "figure")
    with stage("toy", args.params) as params:
        run(params, args.metrics, args.figure)


if __name__ == "__main__":
    main()
