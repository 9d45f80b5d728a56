"""Quality ladders: can a feature extractor rank generators? A measured check of the FID ruler.

FID compares generators only as well as its features separate good samples from slightly worse ones.
Inception-v3 earns that trust from ImageNet; the embedded default's evaluation network is trained
here, so the run measures it. A ladder is a sequence of image sets whose quality order is known by
construction, each a stand-in for a generator a little worse than the one before:

* ``noise``: the same real images with Gaussian pixel noise of growing std (fidelity), in steps of
  0.05 of the [0, 1] range (~13 grey levels; at 0.02 the trained net's FID moved less than its
  sampling noise at 500 images, so that step ranked by chance);
* ``classes``: real images drawn from fewer and fewer of the classes (mode dropping, diversity).

An extractor ranks a ladder when FID (against the reference statistics) rises strictly at every
step. Scoring the evaluation network at checkpoints of its own training (``check_steps``: steps
1, 2, 4, ... of the first epoch, then the ends of epochs 1, 2, 4, ... and the last) then gives a
measured accuracy threshold: every checkpoint that mis-ranked a ladder had a val top-1 at or below
it (``ranking_threshold``), and the network the run uses must be above it and rank every ladder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digit.metrics.fid import feature_statistics, frechet_distance

NOISE_STDS = (0.0, 0.05, 0.1, 0.15, 0.2)  # Gaussian pixel noise, in units of the [0, 1] range
CLASS_SHARES = (1.0, 0.9, 0.8, 0.7, 0.6)  # share of the classes a set is drawn from


@dataclass(frozen=True)
class Ladder:
    """Image sets of known, worsening quality: ``sets[i]`` uint8 (n, H, W, C) at ``levels[i]``."""

    name: str
    what: str  # the level's meaning, for reports
    levels: tuple[float, ...]
    sets: tuple[np.ndarray, ...]


def noise_ladder(images: np.ndarray, seed: int, stds: tuple[float, ...] = NOISE_STDS) -> Ladder:
    """The same uint8 (n, H, W, C) images under Gaussian pixel noise of each std (one draw)."""
    x = images.astype(np.float32) / 255.0
    z = np.random.default_rng([seed, 31]).standard_normal(x.shape, dtype=np.float32)
    sets = tuple((np.clip(x + s * z, 0.0, 1.0) * 255.0).round().astype(np.uint8) for s in stds)
    return Ladder("noise", "pixel noise std", tuple(stds), sets)


def class_ladder(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    seed: int,
    shares: tuple[float, ...] = CLASS_SHARES,
) -> Ladder:
    """``n`` images drawn (without replacement) from the first ``round(share * n_classes)``
    classes, for each share: fewer modes at each step."""
    classes = np.unique(labels)
    rng = np.random.default_rng([seed, 32])
    sets, kept = [], []
    for share in shares:
        k = max(1, round(share * len(classes)))
        pool = np.flatnonzero(np.isin(labels, classes[:k]))
        if len(pool) < n:
            raise ValueError(f"class ladder: {len(pool)} images in {k} classes, need {n}")
        sets.append(images[np.sort(rng.choice(pool, n, replace=False))])
        kept.append(float(k))
    return Ladder("classes", "classes kept", tuple(kept), tuple(sets))


def quality_ladders(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> list[Ladder]:
    """Both ladders from a pool of real uint8 (N, H, W, C) images (the train split), ``n`` per set,
    or fewer when the fewest classes of the class ladder hold fewer images."""
    classes = np.unique(labels)
    fewest = max(1, round(min(CLASS_SHARES) * len(classes)))
    n = min(n, int(np.isin(labels, classes[:fewest]).sum()))
    base = np.sort(np.random.default_rng([seed, 30]).choice(len(images), n, replace=False))
    return [noise_ladder(images[base], seed), class_ladder(images, labels, n, seed)]


def ladder_fids(
    features: Callable[[np.ndarray], np.ndarray], ladders: list[Ladder], reference: np.ndarray
) -> dict[str, list[float]]:
    """FID of every set of every ladder against the ``reference`` images, with ``features`` the
    extractor (uint8 images -> (N, D) features)."""
    ref = feature_statistics(features(reference))
    return {
        lad.name: [frechet_distance(*feature_statistics(features(s)), *ref) for s in lad.sets]
        for lad in ladders
    }


def check_steps(steps_per_epoch: int, epochs: int) -> set[int]:
    """The optimizer steps after which to score a training net: powers of two inside the first
    epoch (from a barely trained net up), the ends of epochs 1, 2, 4, ..., and the last step."""
    early = {2**i for i in range(steps_per_epoch.bit_length())}  # each <= steps_per_epoch
    ends = {steps_per_epoch * 2**i for i in range(epochs.bit_length())}  # each <= the last
    return early | ends | {steps_per_epoch * epochs}


def ranks(fids: list[float]) -> bool:
    """FID rises strictly at every step of the ladder."""
    return len(fids) >= 2 and all(b > a for a, b in itertools.pairwise(fids))


def ranking_threshold(checkpoints: list[dict]) -> float | None:
    """The highest val top-1 of a checkpoint that mis-ranked a ladder (None: none did).

    checkpoints: rows {"val_top1": float, "fid": {ladder: [FID per level]}}."""
    failed = [c["val_top1"] for c in checkpoints if not all(map(ranks, c["fid"].values()))]
    return max(failed) if failed else None
