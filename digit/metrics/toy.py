"""The paper's appendix toy: reconstructive (PCA) vs discriminative (LDA) projections under noise.

Two overlapping 2-D Gaussian classes are projected to one dimension, either on the top principal
direction of the pooled data (unsupervised, "reconstructive": keeps the most variance) or on
Fisher's discriminant direction (supervised, "discriminative": keeps the most class separation).
A nearest-class-mean rule is fitted on the clean projected training points; its test accuracy is
measured as isotropic Gaussian noise of growing std is added to the 2-D test points. The paper's
claim 5 is that the discriminative projection keeps class separation better.

The classes share one covariance, elongated along a tilt angle (45 degrees by default), with means
apart along x, so the direction of most variance is not the separating one. The answer depends on
that geometry: with a small tilt (e.g. 20 degrees) the PCA projection overtakes LDA at high noise,
because under heavy isotropic noise the best direction tends to the mean difference itself. So the
pipeline sweeps the tilt (``geometry``) and reports where LDA wins; `run_toy` reports what happens,
it does not assume the claim.
No plotting here: the result holds the arrays a figure needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def tilted_cov(
    std_major: float, std_minor: float, angle_deg: float
) -> tuple[tuple[float, ...], ...]:
    """2x2 covariance with std ``std_major`` along ``angle_deg`` (from the x axis, the direction
    that separates the class means) and ``std_minor`` across it."""
    t = np.radians(angle_deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    c = r @ np.diag([std_major**2, std_minor**2]) @ r.T
    return tuple(tuple(float(v) for v in row) for row in c)


_DEFAULT_COV = tilted_cov(2.0, 0.5, 45.0)


@dataclass(frozen=True)
class ToyConfig:
    mean0: tuple[float, float] = (-1.0, 0.0)
    mean1: tuple[float, float] = (1.0, 0.0)
    cov0: tuple[tuple[float, float], tuple[float, float]] = _DEFAULT_COV
    cov1: tuple[tuple[float, float], tuple[float, float]] = _DEFAULT_COV
    n_train_per_class: int = 500
    n_test_per_class: int = 20000
    noise_stds: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    seed: int = 0


def geometry(angle_deg: float, **kw) -> ToyConfig:
    """The default toy with both classes' covariance tilted by ``angle_deg`` (0: the variance
    direction is the separating one, PCA = LDA; 90: it is orthogonal to it)."""
    cov = tilted_cov(2.0, 0.5, angle_deg)
    return ToyConfig(cov0=cov, cov1=cov, **kw)


def pca_direction(x: np.ndarray) -> np.ndarray:
    """Unit top principal direction of (N, 2) points (labels unused); first nonzero entry > 0."""
    xc = x - x.mean(axis=0)
    _, vecs = np.linalg.eigh(xc.T @ xc / (len(x) - 1))
    return _canonical_sign(vecs[:, -1])


def lda_direction(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unit Fisher direction S_w^-1 (m1 - m0), S_w the sum of the two class covariances."""
    x0, x1 = x[y == 0], x[y == 1]
    sw = np.cov(x0, rowvar=False) + np.cov(x1, rowvar=False)
    w = np.linalg.solve(sw, x1.mean(axis=0) - x0.mean(axis=0))
    return _canonical_sign(w / np.linalg.norm(w))


def _canonical_sign(w: np.ndarray) -> np.ndarray:
    nz = w[np.abs(w) > 1e-12]
    return -w if len(nz) and nz[0] < 0 else w


def _fit_nearest_mean(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """1-D nearest-class-mean rule -> (threshold, sign): class 1 iff sign * (z - threshold) > 0."""
    m0, m1 = z[y == 0].mean(), z[y == 1].mean()
    return float((m0 + m1) / 2), float(np.sign(m1 - m0) or 1.0)


def run_toy(cfg: ToyConfig) -> dict[str, np.ndarray | float]:
    """Sample the two classes, fit both projections and classifiers on clean train data, test them
    under noise. Returns numpy arrays: noise_stds, acc_pca, acc_lda (one per noise std), dir_pca,
    dir_lda (unit 2-vectors), threshold_pca / threshold_lda (on the projected axis),
    cos_angle (|<dir_pca, dir_lda>|), x_train, y_train, x_test, y_test (clean, for a figure).
    """
    rng = np.random.default_rng(cfg.seed)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x0 = rng.multivariate_normal(cfg.mean0, cfg.cov0, size=n)
        x1 = rng.multivariate_normal(cfg.mean1, cfg.cov1, size=n)
        return np.concatenate([x0, x1]), np.repeat([0, 1], n)

    x_train, y_train = sample(cfg.n_train_per_class)  # (2n, 2), (2n,)
    x_test, y_test = sample(cfg.n_test_per_class)
    dirs = {"pca": pca_direction(x_train), "lda": lda_direction(x_train, y_train)}
    rules = {k: _fit_nearest_mean(x_train @ w, y_train) for k, w in dirs.items()}

    acc: dict[str, list[float]] = {"pca": [], "lda": []}
    for std in cfg.noise_stds:
        x_noisy = x_test + std * rng.standard_normal(x_test.shape)  # same draw for both methods
        for k, w in dirs.items():
            thr, sign = rules[k]
            pred = (sign * (x_noisy @ w - thr) > 0).astype(int)
            acc[k].append(float((pred == y_test).mean()))

    return {
        "noise_stds": np.asarray(cfg.noise_stds, dtype=float),
        "acc_pca": np.asarray(acc["pca"]),
        "acc_lda": np.asarray(acc["lda"]),
        "dir_pca": dirs["pca"],
        "dir_lda": dirs["lda"],
        "threshold_pca": rules["pca"][0],
        "threshold_lda": rules["lda"][0],
        "cos_angle": float(abs(dirs["pca"] @ dirs["lda"])),
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
    }
