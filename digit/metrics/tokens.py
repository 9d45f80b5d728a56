"""How much class information features and tokens keep, without training a generator.

Used to show the encoder and its K-Means tokens are worth more than a random encoder's (the
foundation's sanity check): weighted k-NN on mean-pooled patch features (the DINO protocol: cosine
similarity, k neighbours, votes weighted by exp(sim / 0.07)); a position-aware token probe (one-hot
token per position, multinomial logistic regression); and k-NN on bags of tokens (token counts,
cosine), which ignores position and so rewards tokens that mean the same thing wherever they sit.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_top1(
    train: np.ndarray,
    train_labels: np.ndarray,
    val: np.ndarray,
    val_labels: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    batch: int = 1024,
) -> float:
    """Top-1 of a cosine k-NN classifier; train (N, D), val (M, D)."""
    xt = F.normalize(torch.as_tensor(train, dtype=torch.float32), dim=1)
    yt = torch.as_tensor(train_labels, dtype=torch.long)
    n_classes = int(max(train_labels.max(), val_labels.max())) + 1
    k = min(k, len(xt))
    correct = 0
    for start in range(0, len(val), batch):
        xv = F.normalize(torch.as_tensor(val[start : start + batch], dtype=torch.float32), dim=1)
        sim, idx = (xv @ xt.T).topk(k, dim=1)  # (b, k)
        votes = torch.zeros(len(xv), n_classes).scatter_add_(1, yt[idx], (sim / temperature).exp())
        pred = votes.argmax(1).numpy()
        correct += int((pred == val_labels[start : start + batch]).sum())
    return correct / len(val)


def one_hot_tokens(tokens: np.ndarray, k: int) -> sp.csr_matrix:
    """(N, L) ids -> sparse (N, L*K): token t at position l sets column l*K + t."""
    n, length = tokens.shape
    cols = (np.arange(length)[None, :] * k + tokens).ravel()
    rows = np.repeat(np.arange(n), length)
    return sp.csr_matrix(
        (np.ones(n * length, dtype=np.float32), (rows, cols)), shape=(n, length * k)
    )


def token_probe_top1(
    train_tokens: np.ndarray,
    train_labels: np.ndarray,
    val_tokens: np.ndarray,
    val_labels: np.ndarray,
    k: int,
    c: float = 1.0,
    max_iter: int = 200,
    seed: int = 0,
) -> float:
    """Position-aware linear probe on one-hot tokens (multinomial logistic regression)."""
    return linear_probe_top1(
        one_hot_tokens(train_tokens, k),
        train_labels,
        one_hot_tokens(val_tokens, k),
        val_labels,
        c=c,
        max_iter=max_iter,
        seed=seed,
    )


def linear_probe_top1(
    train_x,
    train_labels: np.ndarray,
    val_x,
    val_labels: np.ndarray,
    c: float = 1.0,
    max_iter: int = 200,
    seed: int = 0,
    standardize: bool = False,
) -> float:
    """Val top-1 of a multinomial logistic regression fit on (train_x, train_labels); dense
    features may be standardized with the train statistics first."""
    from sklearn.linear_model import LogisticRegression

    if standardize:
        mean, std = train_x.mean(0), train_x.std(0) + 1e-6
        train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(train_x, train_labels)
    return float((clf.predict(val_x) == val_labels).mean())


def bag_of_tokens(tokens: np.ndarray, k: int) -> np.ndarray:
    """(N, L) ids -> (N, K) counts."""
    out = np.zeros((len(tokens), k), dtype=np.float32)
    np.add.at(out, (np.repeat(np.arange(len(tokens)), tokens.shape[1]), tokens.ravel()), 1.0)
    return out


def usage(tokens: np.ndarray, k: int) -> dict[str, float]:
    """Codebook usage: codes used at least once, and the perplexity of the code distribution."""
    counts = np.bincount(tokens.ravel(), minlength=k)
    p = counts[counts > 0] / counts.sum()
    return {
        "codes_used": int((counts > 0).sum()),
        "perplexity": float(np.exp(-(p * np.log(p)).sum())),
    }
