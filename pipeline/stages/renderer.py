"""renderer: DiGIT's pixel renderer, discriminative tokens -> VQ tokens -> models/stage2_<name>.pt.

The paper's second stage reads the ground-truth discriminative tokens of an image as a prefix and
predicts the image's VQ tokens; the VQ decoder turns them into pixels. Two renderers, by name:

* ``ar`` (the paper's "+VQGAN"): a causal GPT over [prefix] + [bos] + VQ tokens, loss on the VQ
  tokens only; sampled with top-p at generation time.
* ``maskgit`` ("+MaskGIT"): the same transformer with bidirectional attention over [prefix] + [bos]
  + VQ tokens in which a cosine-scheduled random subset is masked, loss on the masked positions;
  decoded in ``generate.renderer_maskgit.steps`` iterations (8 in the paper).

Trained on ground-truth tokens of the train split; at generation time it is fed sampled tokens.
Besides the val loss, metrics report the val loss with every prefix swapped for another image's
(``val_loss_shuffled_prefix``): a renderer that ignored its prefix would show no gap.
``--variant row`` is the encoder rows' renderer (``encoders_model``, Fig. 4(a)).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

import digit.generate
import digit.gpt
import pipeline.train
from digit.gpt import count_params
from digit.seeding import seeded_generator
from pipeline import ddp
from pipeline.checkpoints import check_rows, load_tokens
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import StageError, resolve_device
from pipeline.train import (
    Objective,
    build_model,
    evaluate,
    final_val_loss,
    finish_stage,
    stage_main,
    train_stage,
)

log = logging.getLogger("digit.renderer")

RENDERERS = ("causal", "maskgit")


def derangement(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of range(n) with no fixed point for n >= 2, one cycle through a random
    order: row order[i] takes row order[i - 1]. Indexing val rows' prefixes with it gives every
    row another image's prefix (``val_loss_shuffled_prefix``)."""
    order = torch.randperm(n, generator=seeded_generator(seed, 4))
    other = torch.empty_like(order)
    other[order] = order.roll(1)
    return other


def run(
    params: Params,
    renderer: str,
    name: str,
    disc_tokens: str,
    vq_tokens: str,
    images: str,
    out: str,
    metrics: str,
    checkpoints: str,
    live: str,
) -> dict:
    if renderer not in RENDERERS:
        raise StageError(f"--renderer: expected one of {RENDERERS}, got {renderer!r}")
    rank, device = ddp.setup(resolve_device(params.device))
    disc, vq = load_tokens(disc_tokens), load_tokens(vq_tokens)
    data = load_images(images, with_pixels=False)
    check_rows(disc, len(data.labels), disc_tokens)
    check_rows(vq, len(data.labels), vq_tokens)
    if disc.kind != "disc" or vq.kind != "vq":
        raise StageError(
            f"the renderer reads disc tokens -> vq tokens, got {disc.kind} -> {vq.kind}"
        )
    prefix = torch.from_numpy(disc.tokens.astype(np.int64))  # (N, P)
    target = torch.from_numpy(vq.tokens.astype(np.int64))  # (N, L)
    train_data = {"tokens": target[data.train], "prefix": prefix[data.train]}
    val_data = {"tokens": target[data.val], "prefix": prefix[data.val]}

    torch.manual_seed(params.seed)
    model = build_model(
        params.renderer,
        vocab_size=vq.vocab,
        block_size=target.shape[1],
        prefix_vocab_size=disc.vocab,
        prefix_len=prefix.shape[1],
        prefix_mode=params.renderer.prefix_mode,
        align_kernel=params.renderer.align_kernel,
        causal=renderer == "causal",
    )
    objective = Objective(masked=renderer == "maskgit")
    log.info(
        "renderer_%s: %s GPT, %.2fM params, prefix %d x K=%d -> %d VQ tokens",
        name,
        params.renderer.size,
        count_params(model) / 1e6,
        prefix.shape[1],
        disc.vocab,
        target.shape[1],
    )
    done = train_stage(
        f"renderer_{name}",
        model,
        objective,
        train_data,
        val_data,
        params.renderer,
        params,
        checkpoints=checkpoints,
        live=live,
        device=device,
        rank=rank,
        code=(digit.gpt, digit.generate, pipeline.train),
        meta={"renderer": renderer},
    )
    if not done.is_main:
        return {}  # rank 0 writes the model and metrics
    # The same val rows with each prefix taken from another image (a fixed derangement).
    other = derangement(len(data.val), params.seed)
    shuffled = {"tokens": val_data["tokens"], "prefix": val_data["prefix"][other]}
    val_shuffled = evaluate(model, objective, shuffled, done.cfg.eval_batch_size, params.seed)
    last, val = done.history[-1], final_val_loss(done.history)
    summary = {
        "name": name,
        "renderer": renderer,
        "prefix_mode": params.renderer.prefix_mode,
        "align_kernel": params.renderer.align_kernel,
        "prefix_vocab": disc.vocab,
        "vq_vocab": vq.vocab,
        "n_params": count_params(model),
        "train_flops": done.flops,  # forward + backward, every step (pipeline.train)
        "steps": done.cfg.steps,
        "epochs": round(done.cfg.steps * done.cfg.batch_size / len(data.train), 2),
        # ar: nats per VQ token given the prefix; maskgit: per masked token at random mask ratios
        "val_loss": round(val, 4),  # nats / token, every val row
        "val_bits_per_token": round(val / math.log(2), 4),
        "val_loss_shuffled_prefix": round(val_shuffled, 4),
        "val_bits_per_token_shuffled_prefix": round(val_shuffled / math.log(2), 4),
        "uniform_bits_per_token": round(math.log2(vq.vocab), 4),
        "train_loss_smoothed": round(last["train/loss"], 4),
    }
    timing = {"train_seconds": round(done.seconds, 1)}
    summary = finish_stage(
        done, model, objective, out, metrics, summary, timing, name=name, renderer=renderer
    )
    log.info(
        "renderer_%s: val %.4f bits / VQ token (%.4f with shuffled prefixes)",
        name,
        summary["val_bits_per_token"],
        summary["val_bits_per_token_shuffled_prefix"],
    )
    return summary


def variants(params: Params) -> dict[str, dict]:
    """``row``: the encoder rows' renderer (``encoders_model``, Fig. 4(a)), as overrides of the
    renderer section."""
    return {"row": params.encoders_model.overrides()}


def main() -> None:
    paths = ("disc_tokens", "vq_tokens", "images", "out", "metrics", "checkpoints", "live")
    stage_main(__doc__, "renderer", paths, {"renderer": str, "name": str}, variants, run)


if __name__ == "__main__":
    main()
