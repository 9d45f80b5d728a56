"""vq: the VQ autoencoder on the train split -> models/vq.pt, tokens/vq.zarr, metrics/vq.json.

The paper's reconstructive baseline (its AR-over-VQGAN rows) and the pixel decoder of DiGIT's stage
2. Its token grid is the discriminative encoder's (28 px / 4 -> 7x7 on the embedded default), so the
AR models over both token sets see sequences of the same length. tokens/vq.zarr holds the ids of
every image (N x L int32, raster order), laid out like tokens/disc_k{K}.zarr. Training checkpoints
go to a directory outside DVC's outs and resume after a kill (see pipeline/train.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

import digit.vq
import digit.vq_train
from digit.encoders import EncoderError, patch_size
from digit.images import uint8_to_float
from digit.progress import progress
from digit.vq import VQVAE, VQConfig
from digit.vq_train import NoiseAugConfig, VQTrainConfig, evaluate_vq, train_vq
from pipeline import io
from pipeline.checkpoints import save_model
from pipeline.images import load_images
from pipeline.params import Params, build_config, vq_grid_problem
from pipeline.resume import (
    Checkpoints,
    CurveLogger,
    code_fingerprint,
    fingerprint,
    rng_state,
    set_rng_state,
)
from pipeline.stage import StageError, cli, record_timing, resolve_device, resolved_params, stage

log = logging.getLogger("digit.vq")


def token_grid(params: Params) -> int:
    """Tokens per side of the discriminative encoder, which the VQ grid must match."""
    e = params.encoder
    size = e.input_size or params.data.image_size
    try:
        grid = size // patch_size(e.name, size, e.layer)
    except EncoderError as err:
        raise StageError(str(err)) from None
    if problem := vq_grid_problem(params.data.image_size, grid):
        raise StageError(problem)
    return grid


def vq_config(params: Params) -> VQConfig:
    size = params.data.image_size
    return build_config(
        VQConfig,
        params.vq,
        in_channels=params.data.channels,
        image_size=size,
        downsample=size // token_grid(params),
    )


def train_config(params: Params) -> VQTrainConfig:
    return build_config(VQTrainConfig, params.vq, seed=params.seed)


def noise_config(params: Params) -> NoiseAugConfig | None:
    v = params.vq
    if not v.noise_aug:
        return None
    return NoiseAugConfig(p=v.noise_p, snr_db_lo=v.noise_snr_db[0], snr_db_hi=v.noise_snr_db[1])


def history_rows(history: dict[str, list[float]]) -> list[dict[str, float]]:
    """train_vq's column lists -> dvclive rows."""
    keys = [k for k in history if k != "step"]
    return [
        {"step": step, **{(k if k == "lr" else f"train/{k}"): history[k][i] for k in keys}}
        for i, step in enumerate(history["step"])
    ]


@torch.no_grad()
def tokenize_all(model: VQVAE, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """uint8 (N, H, W, C) -> ids (N, L) int32."""
    out = []
    for rows in progress(
        list(io.iter_blocks(len(images), batch_size)), desc="vq tokens", unit="batch"
    ):
        x = uint8_to_float(torch.from_numpy(images[rows])).to(device)
        out.append(model.tokenize(x).cpu().numpy().astype(np.int32))
    return np.concatenate(out)


def run(
    params: Params,
    images: str,
    out: str,
    tokens: str,
    metrics: str,
    checkpoints: str,
    live: str,
    row: str | None = None,
) -> dict:
    """``row``: the VQ of that row of params ``vq_rows`` (e.g. trained with Gaussian pixel noise on
    its inputs, clean targets: the discriminative encoder sees that noise in its augmentations, so
    a fair stability comparison gives the VQ the same chance); None: ``vq`` as it stands."""
    try:
        params = params.for_vq_row(row)
    except ValueError as err:
        raise StageError(f"--row: {err}") from None
    device = resolve_device(params.device)
    data = load_images(images)
    train_images = torch.from_numpy(data.images[data.train])
    cfg, tcfg, noise = vq_config(params), train_config(params), noise_config(params)
    torch.manual_seed(params.seed)
    model = VQVAE(cfg)
    ck = Checkpoints(
        checkpoints,
        fingerprint(
            dataclasses.asdict(cfg),
            dataclasses.asdict(tcfg),
            None if noise is None else dataclasses.asdict(noise),
            code_fingerprint(digit.vq, digit.vq_train),
            train_images,
        ),
    )
    saved = ck.load()
    state = None
    if saved is not None:
        model.load_state_dict(saved["model"], strict=True)
        state = saved["train_state"]
        set_rng_state(saved["rng"])
        log.info("vq: resuming from step %d", state["step"])

    def on_checkpoint(step: int, train_state: dict) -> None:
        ck.save({"model": model.state_dict(), "train_state": train_state, "rng": rng_state()})

    curves = CurveLogger(live, [])  # before training: a logger that cannot start fails fast
    t0 = time.perf_counter()
    history = train_vq(
        model, train_images, tcfg, device, noise_aug=noise, state=state, on_checkpoint=on_checkpoint
    )
    train_seconds = time.perf_counter() - t0
    for row in history_rows(history):
        curves.log(row)
    curves.close()

    model.eval()
    val = evaluate_vq(model, torch.from_numpy(data.images[data.val]), tcfg.batch_size, device)
    ids = tokenize_all(model, data.images, params.vq.eval_batch_size, device)  # (N, L)
    counts = np.bincount(ids.ravel(), minlength=cfg.codebook_size)
    p = counts[counts > 0] / counts.sum()
    summary = {
        "val": {k: round(v, 6) if isinstance(v, float) else v for k, v in val.items()},
        "all_images": {
            "n_codes_used": int((counts > 0).sum()),
            "usage": round(float((counts > 0).mean()), 4),
            "perplexity": round(float(np.exp(-(p * np.log(p)).sum())), 2),
        },
        "codebook_size": cfg.codebook_size,
        "grid": cfg.grid_size,
        "steps": int(history["step"][-1]),
        "final_train_mse": round(history["mse"][-1], 6),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    with io.zarr_group_writer(tokens) as group:
        arr = io.create_array(group, "tokens", ids.shape, 1 << 16, "int32")
        arr[:] = ids
        group.attrs.update(k=cfg.codebook_size, grid=[cfg.grid_size] * 2, kind="vq")
    save_model(
        out,
        "vq",
        dataclasses.asdict(model.cfg),
        model,
        summary["steps"],
        params=resolved_params(params),
        metrics=summary,
    )
    record_timing(train_seconds=train_seconds)  # timings only: no output that a stage reads
    io.write_json(metrics, summary)
    ck.clean()
    log.info(
        "vq: val MSE %.5f (PSNR %.2f dB), %d/%d codes used on val, perplexity %.1f",
        val["mse"],
        val["psnr"],
        val["n_codes_used"],
        cfg.codebook_size,
        val["perplexity"],
    )
    return summary


def main() -> None:
    args = cli(
        __doc__,
        "images",
        "out",
        "tokens",
        "metrics",
        "checkpoints",
        "live",
        optional=("row", "name"),
    )
    name = args.name or (f"vq_row@{args.row}" if args.row else "vq")
    with stage(name, args.params) as params:
        run(
            params,
            args.images,
            args.out,
            args.tokens,
            args.metrics,
            args.checkpoints,
            args.live,
            args.row,
        )


if __name__ == "__main__":
    main()
