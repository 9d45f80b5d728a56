"""The paper's linear probe (Table 2, Fig. 3(b)): one linear classifier per layer, trained at once.

The AR model stays frozen; the caller runs it once and hands over mean-pooled hidden states of every
layer, (n_layers, N, D). All n_layers classifiers then train together as one batched matmul with
SGD (momentum 0.9) and a cosine learning-rate schedule, as dinov2 trains its many probes on one
forward pass. The summed loss has no cross-layer terms, so each classifier gets exactly the gradient
it would get alone.

Features are standardized per layer and dimension with train statistics, what MAE's probe does with
a BatchNorm without affine parameters before the linear layer: hidden-state scales differ by orders
of magnitude across layers and dimensions, and without normalization one learning rate cannot fit
them all (shallow layers diverge or deep ones barely move). A fixed affine map of the input does not
change what a linear classifier can express, only how fast SGD gets there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from digit.schedule import lr_at


def _as_feats(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
    if t.dim() != 3:
        raise ValueError(f"{name} must be (n_layers, N, D), got {tuple(t.shape)}")
    return t


def train_linear_probes(
    train_feats: torch.Tensor,
    train_labels: Any,
    val_feats: torch.Tensor,
    val_labels: Any,
    n_classes: int,
    epochs: int = 80,
    lr: float = 0.4,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    seed: int = 0,
    warmup_epochs: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train one linear classifier per layer on frozen features; report val top-1 per layer.

    train_feats: (n_layers, N, D), val_feats: (n_layers, M, D); labels (N,) / (M,) ints in
    [0, n_classes). `lr` is used as given (no batch-size scaling); the schedule is per step, linear
    warm-up over `warmup_epochs` then cosine to 0. Weights start at zero (the problem is convex, so
    this costs nothing and removes one source of randomness); `seed` drives the shuffling.
    Returns top1_per_layer (list of floats, layer i = train_feats[i]), best_layer (index into that
    list, the first on ties), best_top1, and final_train_loss_per_layer.
    """
    xtr, xva = _as_feats(train_feats, "train_feats"), _as_feats(val_feats, "val_feats")
    ytr = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    yva = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    n_layers, n, d = xtr.shape
    if xva.shape[0] != n_layers or xva.shape[2] != d:
        raise ValueError(
            f"val_feats {tuple(xva.shape)} does not match train_feats {tuple(xtr.shape)}"
        )
    if len(ytr) != n or len(yva) != xva.shape[1]:
        raise ValueError("labels and features disagree in length")
    device = torch.device(device)

    # Train-set statistics, per layer and dimension, like BatchNorm1d(affine=False) at eval time.
    mean = xtr.mean(dim=1, keepdim=True)  # (L, 1, D)
    std = xtr.std(dim=1, keepdim=True, unbiased=False).clamp_min(1e-6)
    xtr = ((xtr - mean) / std).to(device)
    xva = ((xva - mean) / std).to(device)
    ytr, yva = ytr.to(device), yva.to(device)

    w = torch.zeros(n_layers, d, n_classes, device=device, requires_grad=True)
    b = torch.zeros(n_layers, 1, n_classes, device=device, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(n / batch_size)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    step = 0
    last_loss = torch.zeros(n_layers)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, lr, warmup, pi_first=True)
            logits = torch.bmm(xtr[:, idx], w) + b  # (L, B, C)
            y = ytr[idx].expand(n_layers, -1)  # (L, B)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            per_layer = loss.view(n_layers, -1).mean(1)  # (L,)
            opt.zero_grad(set_to_none=True)
            per_layer.sum().backward()
            opt.step()
            last_loss = per_layer.detach().cpu()
            step += 1

    with torch.no_grad():
        pred = (torch.bmm(xva, w) + b).argmax(-1)  # (L, M)
        top1 = (pred == yva).float().mean(1).cpu()  # (L,)
    top1_list = [float(v) for v in top1]
    best = int(np.argmax(top1_list))
    return {
        "top1_per_layer": top1_list,
        "best_layer": best,
        "best_top1": top1_list[best],
        "final_train_loss_per_layer": [float(v) for v in last_loss],
    }
