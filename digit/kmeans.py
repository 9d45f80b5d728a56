"""faiss K-Means over patch features, and nearest-centroid tokenization (the paper: faiss.Kmeans, L2,
niter=20; faiss subsamples to ``max_points_per_centroid`` points per centroid).

The fit runs on a GPU when faiss sees one and the caller allows it, else on the CPU; the same
``faiss-gpu`` package serves both. Assignment is exact and independent of the batch size: faiss's
float32 search picks two candidates, and rows whose best two distances are within float32 noise are
re-decided in float64, so a token never flips with how the rows were batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class KMeansConfig:
    k: int
    niter: int = 20
    seed: int = 0
    max_points_per_centroid: int = 256
    spherical: bool = False
    use_gpu: bool = False  # honoured only when faiss sees a GPU


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (K, D) float32
    objective: list[float]  # per iteration; faiss stops early when it stalls
    n_train: int  # points faiss actually used (after its subsampling)
    used_gpu: bool


def gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def fit_kmeans(x: np.ndarray, cfg: KMeansConfig, verbose: bool = False) -> KMeansResult:
    """Fit K centroids to x (N, D); deterministic for a given seed and input order."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if cfg.k < 2:
        raise ValueError(f"K must be >= 2 (got {cfg.k})")
    if cfg.k > n:
        raise ValueError(f"K={cfg.k} exceeds the {n} feature vectors to cluster")
    if cfg.spherical:
        faiss.normalize_L2(x)
    use_gpu = cfg.use_gpu and gpu_available()
    km = faiss.Kmeans(
        d,
        cfg.k,
        niter=cfg.niter,
        seed=cfg.seed,
        spherical=cfg.spherical,
        max_points_per_centroid=cfg.max_points_per_centroid,
        gpu=use_gpu,
        verbose=verbose,
    )
    km.train(x)
    return KMeansResult(
        centroids=np.asarray(km.centroids, dtype=np.float32),
        objective=[float(o) for o in km.obj],
        n_train=min(n, cfg.k * cfg.max_points_per_centroid),
        used_gpu=use_gpu,
    )


class Assigner:
    """Nearest-centroid ids for feature rows (L2, as the paper), exact and batch-independent."""

    def __init__(self, centroids: np.ndarray, spherical: bool = False, use_gpu: bool = False):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.spherical = spherical
        index = faiss.IndexFlatL2(self.centroids.shape[1])
        if use_gpu and gpu_available():
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(self.centroids)
        self.index = index
        self._c64 = self.centroids.astype(np.float64)
        self._c64_sq = (self._c64**2).sum(1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> ids (N,) int64."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.spherical:
            x = x.copy()
            faiss.normalize_L2(x)
        k = min(2, len(self.centroids))
        dist, ids = self.index.search(x, k)  # (N, 2) squared L2, float32
        best = ids[:, 0].astype(np.int64)
        if k == 2:
            scale = np.maximum(np.abs(dist[:, 0]), 1.0)
            close = np.flatnonzero(dist[:, 1] - dist[:, 0] <= 1e-4 * scale)
            if close.size:
                xc = x[close].astype(np.float64)
                d64 = self._c64_sq[None, :] - 2.0 * xc @ self._c64.T  # ||x||^2 is shared per row
                best[close] = d64.argmin(1)
        return best

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Token ids (...,) -> their centroid vectors (..., D) (the quantized features)."""
        return self.centroids[ids]
