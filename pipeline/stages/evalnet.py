"""evalnet: the offline evaluation network -> models/evalnet.pt + metrics/evalnet.json.

FID and IS need a feature extractor trained on natural images; the paper uses torch-fidelity's
Inception-v3, which cannot be downloaded here and does not fit 28 px digits anyway. The embedded
default therefore trains a small CNN classifier on the train split (labels are fine here: it is the
judge, not the model under test) and registers it with torch-fidelity; every report names the
extractor behind each number, so an offline number is never taken for an Inception one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from digit.metrics.evalnet import EvalNetConfig, accuracy, train_evalnet
from pipeline import io
from pipeline.checkpoints import save_model
from pipeline.images import load_images
from pipeline.params import Params
from pipeline.stage import cli, record_timing, resolve_device, stage

log = logging.getLogger("digit.evalnet")


def run(params: Params, images: str, out: str, metrics: str) -> dict:
    device = resolve_device(params.device)
    data = load_images(images)
    e = params.evalnet
    cfg = EvalNetConfig(
        in_channels=params.data.channels,
        image_size=max(28, params.data.image_size),
        n_classes=len(data.class_names),
        width=e.width,
        feat_dim=e.feat_dim,
        epochs=e.epochs,
        batch_size=e.batch_size,
        lr=e.lr,
    )
    t0 = time.perf_counter()
    tr, va = data.train, data.val
    model, history = train_evalnet(
        data.images[tr], data.labels[tr], cfg, params.seed, device, progress=True
    )
    summary = {
        "val_top1": round(accuracy(model, data.images[va], data.labels[va]), 4),
        "train_top1": round(accuracy(model, data.images[tr], data.labels[tr]), 4),
        "feat_dim": e.feat_dim,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    record_timing(train_seconds=time.perf_counter() - t0)
    save_model(out, "evalnet", asdict(model.cfg), model.cpu(), history=history, seed=params.seed)
    io.write_json(metrics, summary)
    log.info("evalnet: val top-1 %.4f", summary["val_top1"])
    return summary


def main() -> None:
    args = cli(__doc__, "images", "out", "metrics")
    with stage("evalnet", args.params) as params:
        run(params, args.images, args.out, args.metrics)


if __name__ == "__main__":
    main()
