"""Item 11: a scale rehearsal -- the imagenet preset's shapes through the real stages, on this CPU.

Not a promise but a measurement: the preset (pipeline/presets/imagenet.yaml) with only what a CPU
and a few hundred images force changed, run stage by stage through the same ``run`` functions DVC
calls, on a synthetic ImageFolder of photo-sized JPEGs:

* ``prepare`` with ``data.pixels: folder`` (the preset's) and, for the disk comparison, ``store``;
* ``ssl`` (DINOv2 ViT-B/14-reg4 is frozen: it records the weights file, written here with random
  weights; speed does not depend on them);
* ``extract`` at 224 px (16 x 16 = 256 tokens x 768 dims), keeping ``extract.keep`` images;
* ``kmeans`` at K = 8192 over the kept features (two iterations, each timed; faiss);
* ``tokenize`` at K = 8192, which runs the encoder again over every image (the preset keeps only
  the K-Means sample on disk).

Each stage's wall time per image and the bytes per image of what it writes are measured; they are
projected to ImageNet's 1,281,167 images on one node of 8 x H100 with the assumptions stated in
the section (GPU throughput from items 8-9, decoding spread over the node's cores). The training
stages are not run here (one 219M step takes seconds on this CPU): their time comes from item 9's
measured H100 throughput and item 8's FLOPs, per model the preset trains.

    python -m benchmarks.run --items rehearsal          # ~10 minutes on 2 cores
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.common import ROOT, Section, table
from benchmarks.paper_scale import H100_BF16_PEAK, IMAGENET_TRAIN, Shape, train_flops_per_token
from digit.vq import VQVAE
from pipeline.checks import validate
from pipeline.params import Params
from pipeline.presets import PRESETS_DIR, REPLACED_BY_PRESETS, deep_merge
from pipeline.stages import extract, kmeans, prepare, ssl, tokenize
from pipeline.stages.vq import vq_config

NODE_GPUS = 8
NODE_CORES = 64  # decoding cores assumed on an 8-GPU node (a DGX H100 has 112)
RENDERER_STEP_RATIO = 1.96  # renderer (prefix 256 + 256 tokens) step / token-model step, fp32 H100
H100_FP32_FLOPS = 51e12  # faiss's fp32 GEMMs: H100 SXM fp32 67 TFLOP/s at ~75%
H100_CONV_BF16 = H100_BF16_PEAK * 0.30  # the VQ autoencoder's convolutions: an assumed 30% MFU


def h100_rates(gpu_json: str) -> dict[str, float]:
    """Item 9's measurements (benchmarks/gpu.py's file): the best hours per ImageNet epoch of the
    219M ("base") and 732M ("large") models on one H100, and its bf16 DINOv2 ViT-B/14-reg4
    extraction rate (images / s)."""
    path = Path(gpu_json or "")
    if not path.is_file():
        sys.exit(f"error: {path}: no GPU results (item 9), which the projection is made from")
    r = json.loads(path.read_text())
    rates = {"extract": 0.0}
    for t in r["train"]:
        rates[t["model"]] = min(rates.get(t["model"], float("inf")), t["epoch_h"])
    for e in r["extract"]:
        if e["encoder"] == "dinov2_vitb14_reg4" and e["precision"].startswith("bf16"):
            rates["extract"] = e["images_per_s"]
    return rates


def synthetic_folder(root: Path, n: int, classes: int = 10, seed: int = 0) -> None:
    """``n`` JPEGs of ImageNet's typical size (~400 x 350 px, quality 90): smooth colour fields
    with edges, so they compress like photos rather than like noise (~30-110 KB each)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = int(rng.integers(300, 500)), int(rng.integers(300, 500))
        low = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC)
        px = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))  # texture
        d = root / f"c{i % classes:02d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(px.clip(0, 255).astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)


def rehearsal_params(root: Path, weights: Path, keep: int, points_per_centroid: int):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    preset = yaml.safe_load((PRESETS_DIR / "imagenet.yaml").read_text())
    raw = deep_merge(raw, preset, REPLACED_BY_PRESETS)
    raw["device"] = "cpu"
    raw["data"]["root"] = str(root)
    raw["encoder"]["weights"] = str(weights)
    # On the CPU: fp32 (bf16 autocast is emulated without AMX), batches that fit two cores.
    raw["extract"].update(keep=keep, precision="fp32", batch_size=32)
    raw["kmeans"].update(
        ks=[8192], main_k=8192, niter=2, max_points_per_centroid=points_per_centroid
    )
    raw["tokenize"]["batch_size"] = 8192
    return validate(raw)


def vq_train_flops_per_image(params: Params) -> float:
    """Forward + backward FLOPs of the preset's VQ autoencoder on one 256 px image (counted by
    torch's FlopCounterMode on the real module: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = VQVAE(vq_config(params)).eval()  # eval: no codebook initialisation from one image
    x = torch.rand(1, params.data.channels, params.data.image_size, params.data.image_size)
    with FlopCounterMode(display=False) as counter:
        _, loss, _ = model(x)
        loss.backward()
    return float(counter.get_total_flops())


def size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(opts) -> Section:
    import timm

    n = 160 if opts.quick else 480  # images; keep a third: the K-Means sample (>= 2 per centroid)
    keep = max(n // 3, 64)
    tmp = Path(tempfile.mkdtemp(prefix="bench_rehearsal_"))
    try:
        synthetic_folder(tmp / "imgs", n)
        jpeg_bytes = size_bytes(tmp / "imgs") / n
        weights = tmp / "dinov2_vitb14_reg4.pth"
        torch.manual_seed(0)
        torch.save(
            timm.create_model("vit_base_patch14_reg4_dinov2", pretrained=False).state_dict(),
            weights,
        )
        # K-Means needs K x points_per_centroid / 256 kept images; a CPU rehearsal keeps few.
        ppc = max(1, keep * 256 // 8192)
        params = rehearsal_params(tmp / "imgs", weights, keep, ppc)
        store_params = params.model_copy(
            update={"data": params.data.model_copy(update={"pixels": "store"})}
        )
        w = {k: str(tmp / k) for k in ("images", "stored", "encoder", "random", "feats", "tokens")}
        m = {k: str(tmp / f"{k}.json") for k in ("prep", "prep2", "ssl", "km", "tok")}
        centroids = str(tmp / "k8192.npy")
        rows, t = [], {}
        t["prepare"] = timed(lambda: prepare.run(params, w["images"], m["prep"]))
        t["prepare_store"] = timed(lambda: prepare.run(store_params, w["stored"], m["prep2"]))
        t["ssl"] = timed(lambda: ssl.run(params, w["images"], w["encoder"], w["random"], m["ssl"]))
        t["extract"] = timed(lambda: extract.run(params, w["images"], w["encoder"], w["feats"]))
        t["kmeans"] = timed(
            lambda: kmeans.run(params, 8192, w["images"], w["feats"], centroids, m["km"])
        )
        t["tokenize"] = timed(
            lambda: tokenize.run(
                params, 8192, w["feats"], centroids, w["tokens"], w["encoder"], w["images"]
            )
        )
        b = {k: size_bytes(Path(v)) for k, v in w.items()}
        km_points = min(32 * ppc, keep) * 256  # kmeans samples K x ppc / 256 tokens images
        vq_flops = vq_train_flops_per_image(params)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    N = IMAGENET_TRAIN
    gb = 1e9
    # Disk at ImageNet scale: per-image outputs scale with N; the K-Means sample with keep.
    full_keep = 8192  # the preset's extract.keep
    # Uncompressed float16 features fill whole ~16 MB chunks: per image, divide by the rows the
    # chunks hold (at 8192 images the last chunk's padding is negligible).
    chunk = extract.CHUNK_BYTES // (256 * 768 * 2)
    feat_rows = -(-keep // chunk) * chunk
    file_list, features, tokens = (
        b["images"] / n * N,
        b["feats"] / feat_rows * full_keep,
        b["tokens"] / n * N,
    )
    disk = {
        "data/images.zarr (folder: the file list)": file_list,
        "features/feats.zarr (extract.keep 8192), per encoder": features,
        "tokens/disc_k*.zarr, per token set": tokens,
    }
    n_encoders = 1 + 4  # main + the preset's four Fig. 4(a) rows
    n_token_sets = 3 + 4 + 1  # K = 1024 / 4096 / 8192, the rows' K = 8192, the VQ tokens
    intermediates = file_list + n_encoders * features + n_token_sets * tokens
    stored_copy = b["stored"] / n * N

    # Time on the node. Decoding (prepare; the JPEG reads inside extract / tokenize) is CPU work
    # over NODE_CORES; the encoder's forward is the H100's measured bf16 rate over 8 GPUs.
    h100 = h100_rates(getattr(opts, "gpu_json", ""))
    cores = torch.get_num_threads()
    decode_s_img = t["prepare"] / n * cores  # one core's seconds per image
    fwd_node = N / (NODE_GPUS * h100["extract"])
    decode_node = N * decode_s_img / NODE_CORES
    kmeans_iter_cpu = t["kmeans"] / 2  # upper bound: includes the sample's read
    km_flops = 2 * 8192 * 768 * km_points  # one assignment pass, the bulk of an iteration
    km_node = 20 * 2 * 8192 * 768 * (8192 * 256) / H100_FP32_FLOPS
    # Passes of an encoder over every image: tokenize at 3 K (main) and at the rows' K (4 rows);
    # extract and encoder_eval touch 8192 and 50,000 images per encoder (5 encoders).
    passes = 3 + 4 + 5 * (8192 + 50_000) / N
    stage_hours = {
        "prepare (decode 1.28M JPEGs, once)": decode_node / 3600,
        f"extract, tokenize, encoder_eval ({passes:.1f} encoder passes over 1.28M images: decode "
        "+ bf16 forward)": passes * (fwd_node + decode_node) / 3600,
        "kmeans x3 K (faiss, 20 iterations, 2.1M points)": 3 * km_node / 3600,
    }

    # Training, from item 9's measured H100 rates (per GPU) over 8 GPUs.
    def model_hours(epochs: float, epoch_h: float) -> float:
        return epochs * epoch_h / NODE_GPUS

    base = Shape.of("base", vocab_size=8192)
    o = params.encoders_model.overrides()
    row = Shape.of(
        o.get("size") or params.ar.size,
        vocab_size=8192,
        **{k: o[k] for k in ("n_layer", "n_embd", "ffn") if o.get(k)},
    )
    row_ratio = train_flops_per_token(row) / train_flops_per_token(base)
    n_train = N * (1 - params.data.val_fraction)
    ar_epochs = params.ar.steps * params.ar.batch_size / n_train
    row_epochs = params.encoders_model.steps * params.ar.batch_size / n_train
    vq_h = 2 * params.vq.epochs * n_train * vq_flops / H100_CONV_BF16 / 3600  # one GPU: no DDP
    large_factor = params.path.large_steps_factor or params.path.steps_factor
    train = {
        f"VQ autoencoder x2 (main, noise; {params.vq.epochs} epochs, "
        f"{vq_flops / 1e9:.0f} GFLOP an image, one GPU at an assumed 30% MFU)": vq_h,
        "token models: ar@K x3, ar_vq, ar_variant@{cond,vq_cond} (219M)": 6
        * model_hours(ar_epochs, h100["base"]),
        "renderers: renderer@K x3, @maskgit (219M, prefix + target)": 4
        * model_hours(ar_epochs, h100["base"] * RENDERER_STEP_RATIO),
        "Fig. 3(a): ar_variant@long (219M, x2 epochs)": model_hours(
            ar_epochs * params.path.steps_factor, h100["base"]
        ),
        f"Fig. 3(a): ar_variant@large (732M, x{large_factor} epochs)": model_hours(
            ar_epochs * large_factor, h100["large"]
        ),
        f"Fig. 4(a) rows x4: token model + renderer ({row_ratio:.2f}x the FLOPs, "
        f"{row_epochs:.0f} epochs)": 4
        * model_hours(row_epochs, h100["base"] * row_ratio * (1 + RENDERER_STEP_RATIO)),
    }
    total_h = sum(stage_hours.values()) + sum(train.values())

    for name, secs, out, per_image in (
        ("prepare, pixels: folder", t["prepare"], "images", n),
        ("prepare, pixels: store (for comparison)", t["prepare_store"], "stored", n),
        ("ssl (frozen: records the weights)", t["ssl"], "encoder", None),
        (f"extract (keep {keep} of {n}; chunks of {chunk} rows)", t["extract"], "feats", feat_rows),
        ("kmeans K=8192, 2 iterations", t["kmeans"], None, None),
        ("tokenize K=8192 (re-encodes every image)", t["tokenize"], "tokens", n),
    ):
        rows.append(
            {
                "stage (this CPU)": name,
                "seconds": secs,
                "s / image": secs / n,
                "output MB": b[out] / 1e6 if out else "",
                "output bytes / image": b[out] / per_image if per_image else "",
            }
        )
    proj = [{"intermediate at 1.28M images": k, "GB": v / gb} for k, v in disk.items()]
    proj.append(
        {
            "intermediate at 1.28M images": f"**total before samples** ({n_encoders} encoders' "
            f"features, {n_token_sets} token sets, the file list)",
            "GB": intermediates / gb,
        }
    )
    proj.append(
        {"intermediate at 1.28M images": "(pixels: store would add)", "GB": stored_copy / gb}
    )
    time_rows = [{"stage group on 8 x H100": k, "hours": v} for k, v in stage_hours.items()]
    time_rows += [{"stage group on 8 x H100": k, "hours": v} for k, v in train.items()]
    time_rows.append({"stage group on 8 x H100": "**total**", "hours": total_h})
    return Section(
        key="rehearsal",
        title="11. Scale rehearsal: the imagenet preset's shapes on this CPU, projected",
        rows=rows,
        notes=[
            f"{n} synthetic JPEGs ({jpeg_bytes / 1e3:.0f} KB on average, 300-500 px sides, "
            "10 classes) through the real stage functions with the imagenet "
            "preset: DINOv2 ViT-B/14-reg4 (random weights) at 224 px, 256 tokens x 768 dims, "
            f"K = 8192 (faiss, {km_points:,} points at {ppc} per centroid: K-Means' sample is "
            "what the CPU can hold, its iterations are timed), data.pixels folder. Changed for "
            "the CPU: fp32 forward (bf16 is emulated here), extract batch 32, kmeans.niter 2. "
            f"Two threads; one kmeans iteration took {kmeans_iter_cpu:.1f} s "
            f"({km_flops / kmeans_iter_cpu / 1e9:.0f} GFLOP/s of assignment at most).",
            table(proj),
            f"Disk: per-image outputs scale with the 1,281,167 images; the features with the "
            f"preset's extract.keep (8192 images per encoder, {n_encoders} encoders); "
            f"{n_token_sets} token sets (3 K, 4 encoder rows, VQ). Target: under 50 GB before "
            f"generated samples ({'met' if intermediates < 50 * gb else 'NOT met'}). Samples add "
            "~10 GB per 50k-image set (uint8 256 px, compressed).",
            table(time_rows),
            f"Time on one node: the encoder forward at item 9's measured {h100['extract']:,.0f} "
            f"img/s per H100 (bf16) over {NODE_GPUS} GPUs, plus JPEG decoding at this run's "
            f"{decode_s_img * 1e3:.1f} ms an image per core over {NODE_CORES} cores (no overlap "
            "assumed); K-Means at 75% of the H100's fp32 peak; training at item 9's measured "
            f"rates (219M: {h100['base']:.2f} h an epoch per GPU, 732M: {h100['large']:.2f} h; "
            f"renderer step {RENDERER_STEP_RATIO}x a token model's; the rows' model by FLOPs, "
            "which flatters a small model's utilisation) with perfect 8-GPU scaling (not "
            f"measured). Total **{total_h / 24:.1f} days** (target: under 7). Generation, FID "
            "and probes (hours) are left out.",
        ],
    )
