"""encoder_eval: does the SSL encoder know more than pixels or random weights? -> metrics/encoder.json.

k-NN top-1 on val of mean-pooled patch features (train split as the memory bank) and a linear
probe of the same features (logistic regression on standardized features, fit on train), for raw
pixels, the same architecture with random weights, and the trained encoder. No labels touch the
encoder. The claims report checks its premises on these numbers.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from digit.data import stratified_subsample
from digit.images import to_unit_float
from digit.metrics.tokens import knn_top1, linear_probe_top1
from digit.precision import Precision
from pipeline import io
from pipeline.checkpoints import read_model
from pipeline.encoder_files import load_encoder
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import cli, resolve_device, stage

log = logging.getLogger("digit.encoder_eval")


def eval_indices(params: Params, labels: np.ndarray) -> np.ndarray:
    n = params.encoder_eval.max_images
    return stratified_subsample(labels, n, params.seed) if n else np.arange(len(labels))


@torch.inference_mode()
def encode(
    encoder_path: str, pixels: np.ndarray, params: Params, pooled: bool = False
) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, L, D) float32 patch features, or (``pooled``) their (N, D) mean
    over the patches, pooled batch by batch so memory stays at (N, D)."""
    device = resolve_device(params.device)
    enc = load_encoder(encoder_path, device)
    bs = params.extract.batch_size
    precision = Precision(params.extract.precision)  # as extract runs the encoder
    out = []
    for i in range(0, len(pixels), bs):
        with precision.autocast(device):
            x = enc(torch.from_numpy(pixels[i : i + bs]).to(device))
        x = x.float().cpu().numpy()
        out.append(x.mean(1) if pooled else x)
    return np.concatenate(out)


def run(
    params: Params, images: str, features: str, random_encoder: str, metrics: str, encoder: str
) -> dict:
    data = load_images(images)
    idx = eval_indices(params, data.labels)
    tr, va = idx[~data.is_val[idx]], idx[data.is_val[idx]]
    k = params.encoder_eval.knn_k

    def knn(x: np.ndarray) -> float:
        return round(knn_top1(x[tr], data.labels[tr], x[va], data.labels[va], k=k), 4)

    e = params.encoder_eval

    def probe(x: np.ndarray) -> float:
        top1 = linear_probe_top1(
            x[tr],
            data.labels[tr],
            x[va],
            data.labels[va],
            e.probe_C,
            e.probe_max_iter,
            params.seed,
            standardize=True,
        )
        return round(top1, 4)

    pixels = to_unit_float(torch.from_numpy(data.images[:])).reshape(len(data.images), -1).numpy()
    group = io.open_group(features)
    if len(io.stored_rows(group)) == len(data.images):
        feats = group["feats"]
        trained = np.concatenate(
            [
                feats[b].astype(np.float32).mean(1)
                for b in io.iter_blocks(feats.shape[0], feats.chunks[0])
            ]
        )
    else:  # extract.keep kept the K-Means sample only: the evaluated images, encoded again
        trained = np.zeros((len(data.images), group["feats"].shape[2]), np.float32)
        trained[idx] = encode(encoder, data.images[idx], params, pooled=True)
    rand = np.zeros_like(trained)
    rand[idx] = encode(random_encoder, data.images[idx], params, pooled=True)
    summary = {
        "protocol": f"weighted k-NN (k={k}, cosine, T=0.07) on val; mean-pooled patch features; "
        f"memory bank = train split ({len(tr)} train / {len(va)} val images)",
        "encoder": read_model(random_encoder, "encoder")["config"]["name"],
        "knn_top1": {"pixels": knn(pixels), "random": knn(rand), "trained": knn(trained)},
        "probe_protocol": f"logistic regression (C={e.probe_C}, {e.probe_max_iter} iterations) "
        "on mean-pooled features standardized with train statistics; top-1 on val",
        "probe_top1": {"pixels": probe(pixels), "random": probe(rand), "trained": probe(trained)},
    }
    log.info("k-NN top-1: %s; linear probe: %s", summary["knn_top1"], summary["probe_top1"])
    io.write_json(metrics, summary)
    return summary


def main() -> None:
    args = cli(
        __doc__, "images", "features", "encoder", "random_encoder", "metrics", optional=("name",)
    )
    with stage(args.name or "encoder_eval", args.params) as params:
        run(params, args.images, args.features, args.random_encoder, args.metrics, args.encoder)


if __name__ == "__main__":
    main()
