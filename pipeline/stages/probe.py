"""probe@T: the paper's linear probe of a frozen AR model -> metrics/probe_<name>.json.

One forward pass of the frozen unconditional model over every image's token sequence gives the
hidden states of every block; they are mean-pooled over positions and one linear classifier per
layer is trained at once on the train split (SGD momentum 0.9, cosine schedule; the paper's
recipe, docs/paper.md). Top-1 on val per layer gives Fig. 3(b). Table 2's best layer is chosen
without looking at val: the probes are trained once more on a seeded part of the train split and
the layer that scores best on the held-out rest (``probe.select_fraction``) is the one reported,
with its val top-1. Labels never touch the AR model.

Two baselines say what the AR model adds over its input, probed the same way: layer 0, the
model's own input embedding (token + position) before any block, and the raw tokens themselves
(each image's bag of tokens: how often each of the K tokens occurs).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from digit.gpt import GPT
from digit.metrics.probe import train_linear_probes
from digit.metrics.tokens import bag_of_tokens
from digit.progress import progress
from pipeline import io
from pipeline.checkpoints import load_model, load_tokens
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import StageError, cli, resolve_device, stage

log = logging.getLogger("digit.probe")


@torch.inference_mode()
def pooled_hidden_states(model, tokens: np.ndarray, batch: int, device: str) -> torch.Tensor:
    """(N, L) tokens -> (1 + n_layers, N, D) mean over positions of the input embedding (layer 0)
    and of every block's output."""
    out = []
    for i in progress(range(0, len(tokens), batch), desc="probe features", unit="batch"):
        idx = torch.from_numpy(tokens[i : i + batch].astype(np.int64)).to(device)
        states = model.hidden_states(idx, with_input=True)  # 1 + n_layers x (B, 1 + L, D)
        out.append(torch.stack([h.mean(1) for h in states]).float().cpu())
    return torch.cat(out, dim=1)


def token_frequencies(tokens: np.ndarray, vocab: int) -> torch.Tensor:
    """(N, L) tokens -> (1, N, vocab): each image's token frequencies, as one probe layer."""
    return torch.from_numpy(bag_of_tokens(tokens.astype(np.int64), vocab) / tokens.shape[1])[None]


def select_split(train: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``train`` indices -> (fit, held out): a seeded ``fraction`` of them held out to choose the
    best layer, so the reported val top-1 is not the maximum of several val scores."""
    rng = np.random.default_rng([seed, 17])
    perm = rng.permutation(train)
    n_held = max(1, round(fraction * len(train)))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def run(params: Params, name: str, model: str, tokens: str, images: str, metrics: str) -> dict:
    device = resolve_device(params.device)
    gpt, ckpt = load_model(model, "gpt", GPT.from_config, device)
    if gpt.config.n_classes > 0:
        raise StageError(f"{model}: the probe needs an unconditional model (labels are its input)")
    tok = load_tokens(tokens)
    toks = tok.tokens
    data = load_images(images, with_pixels=False)
    p = params.probe
    feats = pooled_hidden_states(gpt, toks, p.batch_size, device)
    tr, va = data.train, data.val

    def probes(fit: np.ndarray, score: np.ndarray, feats: torch.Tensor = feats) -> dict:
        return train_linear_probes(
            feats[:, fit],
            data.labels[fit],
            feats[:, score],
            data.labels[score],
            n_classes=len(data.class_names),
            epochs=p.epochs,
            lr=p.lr,
            weight_decay=p.weight_decay,
            batch_size=p.batch_size,
            seed=params.seed,
            device=device,
        )

    fit, held = select_split(tr, p.select_fraction, params.seed)
    # Chosen among the blocks on train data the probes did not see (layer 0 is a baseline).
    chosen = int(np.argmax(probes(fit, held)["top1_per_layer"][1:]))
    top1 = probes(tr, va)["top1_per_layer"]
    embedding_top1, blocks = top1[0], top1[1:]
    raw_top1 = probes(tr, va, token_frequencies(toks, tok.vocab))["best_top1"]
    n_layers = len(blocks)
    summary = {
        "model": name,
        "protocol": f"frozen AR model, mean-pooled hidden state of each of {n_layers} blocks, one "
        f"linear classifier per block (SGD momentum 0.9, lr {p.lr}, cosine, {p.epochs} epochs, "
        f"features standardized with train statistics); top-1 on {len(va)} val images",
        "top1_per_layer": [round(v, 4) for v in blocks],
        "best_layer": chosen + 1,  # 1-based block index, chosen on held-out train images
        "best_top1": round(blocks[chosen], 4),
        "embedding_top1": round(embedding_top1, 4),  # layer 0: the input embedding
        "raw_tokens_top1": round(raw_top1, 4),  # bag of tokens
        "best_layer_selected_on": f"{len(held)} held-out train images ({len(fit)} fit)",
        "n_layers": n_layers,
        "n_params": sum(q.numel() for q in gpt.parameters()),
        "val_loss": ckpt["extra"]["metrics"]["val_loss"],
    }
    io.write_json(metrics, summary)
    log.info("%s: best layer %d top-1 %.4f", name, summary["best_layer"], summary["best_top1"])
    return summary


def main() -> None:
    args = cli(__doc__, "name", "model", "tokens", "images", "metrics")
    with stage(f"probe@{args.name}", args.params) as params:
        run(params, args.name, args.model, args.tokens, args.images, args.metrics)


if __name__ == "__main__":
    main()
