"""Item 4: faiss K-Means (digit.kmeans, what the codebook stage runs) against scikit-learn.

Same features, same K, same number of iterations, one thread budget: faiss Lloyd with its
subsampling to ``max_points_per_centroid`` points per centroid, scikit-learn ``KMeans`` (full Lloyd,
one init) and ``MiniBatchKMeans`` (``max_iter`` passes over the data, one init, no early stop).
Inertia is computed once for all three by one exact nearest-centroid pass over *all* features
(sum of squared L2 distances, float64 sum), so the fits are compared on the same objective whatever
subsample each one trained on.

Features: features/feats.zarr when the project has been reproduced, else the patch features of the
MNIST sample under the default encoder architecture with random weights (not trained, but the same
shape and dimension as the default run's).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans

from benchmarks.common import ROOT, Section, seconds
from digit.data import mnist5k
from digit.encoders import build_encoder
from digit.kmeans import Assigner, KMeansConfig, fit_kmeans
from pipeline import io
from pipeline.checks import load
from pipeline.stages.ssl import encoder_kwargs


def features(quick: bool) -> tuple[np.ndarray, str]:
    params = load(ROOT / "params.yaml")
    stored = ROOT / "features" / "feats.zarr"
    n_images = 1000 if quick else 5000
    if stored.exists():
        f = io.open_group(stored)["feats"]
        x = np.asarray(f[:n_images], dtype=np.float32)
        return x.reshape(-1, x.shape[-1]), f"features/feats.zarr ({n_images} images)"
    ds = mnist5k(params.data.image_size, params.data.channels)
    images = torch.from_numpy(np.stack([ds.load_one(i) for i in range(n_images)]))
    torch.manual_seed(0)
    enc = build_encoder(params.encoder.name, **encoder_kwargs(params)).eval()
    with torch.inference_mode():
        x = torch.cat([enc(images[i : i + 500]) for i in range(0, n_images, 500)])
    what = f"random-weight `{params.encoder.name}` features of {n_images} MNIST images"
    return x.reshape(-1, x.shape[-1]).numpy(), what


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    ids = Assigner(centroids)(x)
    total = 0.0
    for i in range(0, len(x), 65536):
        diff = x[i : i + 65536].astype(np.float64) - centroids[ids[i : i + 65536]]
        total += float((diff * diff).sum())
    return total


def run(opts) -> Section:
    params = load(ROOT / "params.yaml")
    x, what = features(opts.quick)
    niter, mppc = params.kmeans.niter, params.kmeans.max_points_per_centroid
    ks = [64, 256] if opts.quick else sorted(set(params.kmeans.ks))
    rows = []
    for k in ks:
        fits = {}
        cfg = KMeansConfig(k=k, niter=niter, seed=params.seed, max_points_per_centroid=mppc)
        t0 = time.perf_counter()
        r = fit_kmeans(x, cfg)
        t = time.perf_counter() - t0
        fits["faiss (digit.kmeans)"] = (t, r.centroids, r.n_train, len(r.objective))
        lloyd = KMeans(k, n_init=1, max_iter=niter, tol=0.0, random_state=params.seed)
        t = seconds(lambda lloyd=lloyd: lloyd.fit(x))
        fits["sklearn KMeans (Lloyd)"] = (t, lloyd.cluster_centers_, len(x), lloyd.n_iter_)
        mb = MiniBatchKMeans(k, n_init=1, max_iter=niter, batch_size=4096, tol=0.0,
                             max_no_improvement=None, random_state=params.seed)  # fmt: skip
        t = seconds(lambda mb=mb: mb.fit(x))
        fits["sklearn MiniBatchKMeans"] = (t, mb.cluster_centers_, len(x), mb.n_iter_)
        base_t = fits["faiss (digit.kmeans)"][0]
        base_i = None
        for name, (t, c, n_train, iters) in fits.items():
            value = inertia(x, np.ascontiguousarray(c, dtype=np.float32))
            base_i = base_i or value
            rows.append({"K": k, "method": name, "trained on": n_train, "iterations": iters,
                         "seconds": t,
                         "time vs faiss": t / base_t, "inertia / point": value / len(x),
                         "inertia vs faiss": value / base_i})  # fmt: skip
    return Section(
        key="kmeans",
        title="4. K-Means: faiss vs scikit-learn at the same K and iterations",
        rows=rows,
        notes=[
            f"{len(x):,} x {x.shape[1]} float32 vectors ({what}); {niter} iterations each, "
            f"one init, seed {params.seed}; faiss subsamples to {mppc} points per centroid as the "
            "codebook stage does. Inertia: sum of squared L2 distances of all vectors to their "
            "nearest centroid, one exact pass for all methods (lower is better). Iterations: "
            "Lloyd steps run (faiss stops when the objective stalls); passes over the data for "
            "MiniBatchKMeans (batch 4096, no early stop).",
            "faiss initialises from K random points, scikit-learn with k-means++ (greedy, "
            "several candidates per centre); the inertia gap is mostly that initialisation.",
        ],
    )
