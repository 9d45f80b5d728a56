"""ar: DiGIT's token model (the paper's stage 1), a GPT over one token set -> models/ar_<name>.pt, metrics/ar_<name>.json.

One module for every AR model of the paper's comparison: over the discriminative tokens of each K of
the cluster ablation and over the VQ tokens, unconditional ([bos] + tokens) or class-conditional
(--conditioning class: the class embedding replaces bos; labels are dropped to the NULL class with
probability ``ar.class_dropout`` so guidance can be used at sampling time). Trained on the train
split with pipeline.train (resumable checkpoints, dvclive curves); the validation loss is reported
in nats and bits per token, beside two references: the uniform code (log2 vocab) and a unigram
model of the train tokens, which tell how much of the gain comes from context.

``--variant`` gives the steps of Fig. 3(a)'s path after the tokenizer swap: ``long`` trains
``path.steps_factor`` times the steps, ``large`` trains the wider model of ``path`` for
``path.large_steps_factor`` times them (by default as long as ``long``); ``row`` is the model of
the encoder rows (``encoders_model``, Fig. 4(a)); ``vq_long`` trains ``path.vq_long_steps_factor``
times the steps, the VQ side's control at DiGIT's training compute (Table 3, claim 2).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

import digit.gpt
import pipeline.train
from digit.gpt import count_params
from pipeline import ddp
from pipeline.checkpoints import check_rows, load_tokens
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import StageError, resolve_device
from pipeline.train import (
    Objective,
    build_model,
    final_val_loss,
    finish_stage,
    stage_main,
    train_stage,
)

log = logging.getLogger("digit.ar")

CONDITIONINGS = ("none", "class")


def variants(params: Params) -> dict[str, dict]:
    """Fig. 3(a)'s "+ longer training" and "+ larger model", and the encoder rows' model, as
    overrides of the ar section."""
    path = params.path
    long = {"steps": params.ar.steps * path.steps_factor}
    larger = {
        "steps": params.ar.steps * (path.large_steps_factor or path.steps_factor),
        "size": path.size or params.ar.size,
        "n_embd": path.n_embd,
    }
    if path.size:  # another size: its own depth and heads unless params say otherwise
        larger |= {"n_layer": None, "n_head": None, "ffn": None}
    vq_long = {"steps": params.ar.steps * path.vq_long_steps_factor}
    return {
        "long": long,
        "large": larger,
        "row": params.encoders_model.overrides(),
        "vq_long": vq_long,
    }


def unigram_bits(train_tokens: np.ndarray, val_tokens: np.ndarray, vocab: int) -> float:
    """Cross-entropy (bits / token) of the val tokens under add-one train token frequencies."""
    counts = np.bincount(train_tokens.ravel(), minlength=vocab) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[val_tokens.ravel()].mean())


def run(
    params: Params,
    name: str,
    conditioning: str,
    tokens: str,
    images: str,
    out: str,
    metrics: str,
    checkpoints: str,
    live: str,
) -> dict:
    if conditioning not in CONDITIONINGS:
        raise StageError(f"--conditioning: expected one of {CONDITIONINGS}, got {conditioning!r}")
    rank, device = ddp.setup(resolve_device(params.device))
    tok = load_tokens(tokens)
    data = load_images(images, with_pixels=False)
    check_rows(tok, len(data.labels), tokens)
    x = torch.from_numpy(tok.tokens.astype(np.int64))  # (N, L)
    train_data, val_data = {"tokens": x[data.train]}, {"tokens": x[data.val]}
    n_classes = 0
    if conditioning == "class":
        n_classes = len(data.class_names)
        y = torch.from_numpy(data.labels.astype(np.int64))
        train_data["labels"], val_data["labels"] = y[data.train], y[data.val]

    torch.manual_seed(params.seed)
    model = build_model(params.ar, vocab_size=tok.vocab, block_size=x.shape[1], n_classes=n_classes)
    objective = Objective(class_dropout=params.ar.class_dropout if n_classes else 0.0)
    log.info(
        "ar_%s: %s GPT, %.2fM params, vocab %d, %d tokens, %s",
        name,
        params.ar.size,
        count_params(model) / 1e6,
        tok.vocab,
        x.shape[1],
        f"{n_classes} classes" if n_classes else "unconditional",
    )
    done = train_stage(
        f"ar_{name}",
        model,
        objective,
        train_data,
        val_data,
        params.ar,
        params,
        checkpoints=checkpoints,
        live=live,
        device=device,
        rank=rank,
        code=(digit.gpt, pipeline.train),
    )
    if not done.is_main:
        return {}  # rank 0 writes the model and metrics
    last, cfg = done.history[-1], done.cfg
    val = final_val_loss(done.history)
    summary = {
        "name": name,
        "tokens": tok.kind,
        "vocab": tok.vocab,
        "seq_len": int(x.shape[1]),
        "conditioning": conditioning,
        "n_params": count_params(model),
        "train_flops": done.flops,  # forward + backward, every step (pipeline.train)
        "steps": cfg.steps,
        "epochs": round(cfg.steps * cfg.batch_size / len(data.train), 2),  # train images seen / N
        "val_loss": round(val, 4),  # nats / token, every val row
        "val_bits_per_token": round(val / math.log(2), 4),
        "val_perplexity": round(math.exp(val), 2),
        "uniform_bits_per_token": round(math.log2(tok.vocab), 4),
        "unigram_bits_per_token": round(
            unigram_bits(tok.tokens[data.train], tok.tokens[data.val], tok.vocab), 4
        ),
        "train_loss_smoothed": round(last["train/loss"], 4),  # with label smoothing
    }
    timing = {
        "train_seconds": round(done.seconds, 1),
        "train_tokens_per_second": round(
            (cfg.steps * min(cfg.batch_size, len(data.train)) * x.shape[1])
            / max(done.seconds, 1e-9)
        ),
    }
    summary = finish_stage(
        done,
        model,
        objective,
        out,
        metrics,
        summary,
        timing,
        name=name,
        conditioning=conditioning,
        class_names=data.class_names if n_classes else [],
        token_kind=tok.kind,
    )
    log.info(
        "ar_%s: val %.4f nats = %.4f bits / token (unigram %.3f, uniform %.3f)",
        name,
        summary["val_loss"],
        summary["val_bits_per_token"],
        summary["unigram_bits_per_token"],
        summary["uniform_bits_per_token"],
    )
    return summary


def main() -> None:
    paths = ("tokens", "images", "out", "metrics", "checkpoints", "live")
    stage_main(__doc__, "ar", paths, {"name": str, "conditioning": str}, variants, run)


if __name__ == "__main__":
    main()
