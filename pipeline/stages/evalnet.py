"""evalnet: the offline evaluation network -> models/evalnet.pt + metrics/evalnet.json.

FID and IS need a feature extractor trained on natural images; the paper uses torch-fidelity's
Inception-v3, which cannot be downloaded here and does not fit 28 px digits anyway. The embedded
default therefore trains a small CNN classifier on the train split (labels are fine here: it is the
judge, not the model under test) and registers it with torch-fidelity; every report names the
extractor behind each number, so an offline number is never taken for an Inception one.

Whether that judge can rank generators is measured, not assumed (``digit.metrics.ladder``): at
checkpoints of its training the net scores two quality ladders of ``generate.n_samples`` train images against the
val split (pixel noise of growing std; fewer and fewer classes). metrics/evalnet.json keeps every
checkpoint's val top-1 and ladder FIDs, and the highest top-1 at which a checkpoint still mis-ranked
a ladder: the report's premise wants the run's net above it and ranking every ladder. Scoring draws
no training randomness, so the weights are those of a run without it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from digit.metrics.evalnet import EvalNetConfig, accuracy, penultimate_features, train_evalnet
from digit.metrics.ladder import check_steps, ladder_fids, quality_ladders, ranking_threshold, ranks
from pipeline import io
from pipeline.checkpoints import save_model
from pipeline.images import load_images
from pipeline.params import Params, build_config
from pipeline.stage import cli, record_timing, resolve_device, stage

log = logging.getLogger("digit.evalnet")


def run(params: Params, images: str, out: str, metrics: str) -> dict:
    device = resolve_device(params.device)
    data = load_images(images)
    e = params.evalnet
    cfg = build_config(
        EvalNetConfig,
        e,
        in_channels=params.data.channels,
        image_size=max(28, params.data.image_size),
        n_classes=len(data.class_names),
    )
    t0 = time.perf_counter()
    tr, va = data.train, data.val
    checkpoints: list[dict] = []
    on_step = None
    if params.evaluate.extractor == "evalnet":  # a pretrained extractor is not the run's to check
        n = min(params.generate.n_samples, len(tr))
        ladders = quality_ladders(data.images[tr], data.labels[tr], n, params.seed)
        val_images = data.images[va]

        def on_step(step: int, steps_per_epoch: int, model) -> None:
            if step not in check_steps(steps_per_epoch, e.epochs):
                return
            fids = ladder_fids(lambda x: penultimate_features(model, x), ladders, val_images)
            top1 = accuracy(model, val_images, data.labels[va])
            epoch = round(step / steps_per_epoch, 3)
            checkpoints.append(
                {"step": step, "epoch": epoch, "val_top1": round(top1, 4), "fid": fids}
            )
            log.info(
                "evalnet step %d (epoch %g): val top-1 %.4f, ladders ranked: %s",
                step,
                epoch,
                top1,
                ", ".join(f"{k} {'yes' if ranks(v) else 'NO'}" for k, v in fids.items()),
            )

    model, history = train_evalnet(
        data.images[tr], data.labels[tr], cfg, params.seed, device, progress=True, on_step=on_step
    )
    summary = {
        "val_top1": round(accuracy(model, data.images[va], data.labels[va]), 4),
        "train_top1": round(accuracy(model, data.images[tr], data.labels[tr]), 4),
        "feat_dim": e.feat_dim,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    if checkpoints:
        summary["ladders"] = {
            "n_per_set": len(ladders[0].sets[0]),
            "levels": {lad.name: {"what": lad.what, "values": lad.levels} for lad in ladders},
            "checkpoints": [
                {
                    **c,
                    "fid": {k: [round(f, 4) for f in v] for k, v in c["fid"].items()},
                    "ranks": {k: ranks(v) for k, v in c["fid"].items()},
                }
                for c in checkpoints
            ],
            "ranks": {k: ranks(v) for k, v in checkpoints[-1]["fid"].items()},
            "mis_ranking_top1": ranking_threshold(checkpoints),
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
