"""ssl: the frozen discriminative encoder -> models/encoder.pt (+ the random-weights baseline).

``cnn_small`` is trained self-supervised (SimCLR, no labels) on the train split; ``ssl.objective:
mae`` trains it as a masked autoencoder instead (reconstructive: the default's row of the encoder
axis, params ``encoders``) and ``none`` keeps random weights. DINOv2 encoders are not trained: the checkpoint is a verified pointer
(path + sha256) to the local weights file. The random-weights twin of the same architecture, with
BatchNorm statistics measured on the train split, is the baseline of metrics/encoder.json.
"""

from __future__ import annotations

import logging
import time

import torch

from digit.encoders import TRAINABLE, EncoderError, WeightsNotFoundError, build_encoder
from digit.ssl import (
    AugmentConfig,
    MAEConfig,
    SimCLRConfig,
    recompute_batchnorm,
    train_mae,
    train_simclr,
)
from pipeline import io
from pipeline.checkpoints import save_model
from pipeline.encoder_files import save_encoder
from pipeline.images import load_images
from pipeline.params import Params, build_config
from pipeline.stage import StageError, cli, record_timing, resolve_device, resolved_params, stage

log = logging.getLogger("digit.ssl")


def encoder_kwargs(params: Params) -> dict:
    e = params.encoder
    size = e.input_size or params.data.image_size
    if e.name == "cnn_small":
        return {"in_channels": params.data.channels, "input_size": size, "width": e.width}
    return {"weights": e.weights, "layer": e.layer, "input_size": size}


def simclr_config(params: Params) -> SimCLRConfig:
    augment = build_config(AugmentConfig, params.ssl)
    return build_config(SimCLRConfig, params.ssl, augment=augment)


def mae_config(params: Params) -> MAEConfig:
    return build_config(MAEConfig, params.ssl)


def run(
    params: Params,
    images: str,
    out: str,
    random_out: str,
    metrics: str,
    row: str | None = None,
) -> dict:
    """``row``: the encoder of row ``row`` of params ``encoders`` (the encoder axis, the paper's
    Fig. 4a), e.g. the same network trained as a masked autoencoder, or released weights."""
    if row is not None:
        try:
            params = params.for_encoder(row)
        except ValueError as err:
            raise StageError(f"--row: {err}") from None
    device = resolve_device(params.device)
    kwargs = encoder_kwargs(params)
    try:
        encoder = build_encoder(params.encoder.name, **kwargs)
    except (WeightsNotFoundError, EncoderError) as err:
        raise StageError(str(err)) from None
    summary: dict = {
        "encoder": params.encoder.name,
        "objective": params.ssl.objective,
        "noise_aug": params.ssl.noise_aug,
    }
    t0 = time.perf_counter()
    if params.encoder.name in TRAINABLE:
        data = load_images(images)  # frozen encoders read no pixels (at scale: 1.2M decodes)
        train = torch.from_numpy(data.images[data.train])
        torch.manual_seed(params.seed)
        random_twin = build_encoder(params.encoder.name, **kwargs)
        random_twin.load_state_dict(encoder.state_dict())  # the same initial weights
        if params.ssl.objective == "simclr":
            history = train_simclr(encoder, train, simclr_config(params), params.seed, device)
            summary["final_loss"] = history[-1]["loss"]
            summary["history"] = history
        elif params.ssl.objective == "mae":
            history = train_mae(encoder, train, mae_config(params), params.seed, device)
            summary["final_loss"] = history[-1]["loss"]
            summary["mask_ratio"] = params.ssl.mask_ratio
            summary["history"] = history
        recompute_batchnorm(encoder, train, device=device)
        recompute_batchnorm(random_twin, train, device=device)
        save_encoder(random_out, random_twin.cpu(), kwargs, random=True)
    else:
        log.info("%s is frozen as released: no SSL training", params.encoder.name)
        config = {"name": params.encoder.name, "kwargs": kwargs}
        save_model(random_out, "encoder", config, None, random_init_seed=params.seed)
    seconds = time.perf_counter() - t0
    summary["n_params"] = sum(p.numel() for p in encoder.parameters())
    save_encoder(out, encoder.cpu(), kwargs, params=resolved_params(params), history=summary)
    record_timing(train_seconds=seconds)  # timings only: no output that a stage reads
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(__doc__, "images", "out", "random_out", "metrics", optional=("row",))
    name = f"ssl_enc@{args.row}" if args.row else "ssl"
    with stage(name, args.params) as params:
        run(params, args.images, args.out, args.random_out, args.metrics, args.row)


if __name__ == "__main__":
    main()
