"""GPU figures at paper scale (run on a CUDA machine): AR training throughput of the 219M / 732M
models and DINOv2 feature extraction at 224 px. Writes one JSON file that ``benchmarks.run``
renders as its own section (item ``gpu``) beside the CPU figures and the paper arithmetic.

    python -m benchmarks.gpu --out reports/benchmarks_gpu.json [--quick]

Needs torch (+ timm for the encoder), no Zarr, DVC or faiss: the machines that lend a GPU here have
no package index, and faiss-gpu's CUDA 12 runtime does not travel, so K-Means on the GPU is not
timed. Weights are random: speed does not depend on them. The baseline in the same run is a large
bf16 matrix product, the practical peak that the training MFU is also quoted against.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from benchmarks.paper_scale import (
    H100_BF16_PEAK,
    IMAGENET_TRAIN,
    PAPER,
    Shape,
    memory_bytes,
    train_flops_per_token,
)
from digit.gpt import build_gpt


def cuda_time(fn, warmup: int, iters: int) -> float:
    """Seconds per call of fn after warm-up (compilation happens in the warm-up)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def matmul_peak(n: int = 8192) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    return 2 * n**3 / cuda_time(lambda: a @ b, 3, 20)


def train_row(size: str, batch: int, compiled: bool, steps: int) -> dict:
    over = PAPER[size]
    torch.manual_seed(0)
    model = build_gpt(size, **over).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.98), fused=True)
    fwd = torch.compile(model) if compiled else model
    T = model.config.block_size
    idx = torch.randint(0, over["vocab_size"], (batch, T), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = fwd(idx[:, :-1], targets=idx, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    sec = cuda_time(step, 2, steps)
    s = Shape.of(size, **over)
    fpt = train_flops_per_token(s)
    tps = batch * T / sec
    row = {
        "model": size,
        "batch": batch,
        "mode": ("torch.compile + " if compiled else "eager + ") + "bf16 autocast",
        "tokens_per_s": tps,
        "step_s": sec,
        "first_step_s": first,
        "tflops": tps * fpt / 1e12,
        "mfu_vs_989": tps * fpt / H100_BF16_PEAK,
        "epoch_h": IMAGENET_TRAIN * T / tps / 3600,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
        "estimated_mem_gib": memory_bytes(s, batch)["total"] / 2**30,
    }
    return row


@torch.inference_mode()
def extract_row(name: str, batch: int, dtype: torch.dtype | None, iters: int) -> dict:
    from digit.encoders import build_encoder

    enc = build_encoder(name, input_size=224, pretrained=False).cuda().eval()
    # 256 px crops resized to 224 px inside preprocess, as the paper's pipeline does.
    images = torch.randint(0, 256, (batch, 256, 256, 3), dtype=torch.uint8, device="cuda")

    def fwd() -> None:
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            enc(images)

    sec = cuda_time(fwd, 2, iters)
    return {
        "encoder": name,
        "batch": batch,
        "precision": "bf16 autocast" if dtype else "fp32 (TF32 off)",
        "images_per_s": batch / sec,
        "imagenet_train_min": IMAGENET_TRAIN / (batch / sec) / 60,
    }


def run(opts):
    """The section of a JSON file written by ``main`` on a GPU machine (item ``gpu``)."""
    from benchmarks.common import Section, table

    path = Path(opts.gpu_json)
    if not path.exists():
        sys.exit(f"error: {path}: no GPU results (run `python -m benchmarks.gpu` on a GPU machine)")
    r = json.loads(path.read_text())
    rows = [
        {
            "model": f"{t['model']}, {t['mode']}",
            "batch": t["batch"],
            "tokens / s": t["tokens_per_s"],
            "TFLOP/s": t["tflops"],
            "MFU (of 989)": f"{t['mfu_vs_989']:.1%}",
            "h / ImageNet epoch": t["epoch_h"],
            "first step s": t["first_step_s"],
            "peak GiB (est.)": f"{t['peak_mem_gib']:.1f} ({t['estimated_mem_gib']:.1f})",
        }
        for t in r["train"]
    ]
    extract = [
        {"encoder (224 px)": e["encoder"], "precision": e["precision"], "batch": e["batch"],
         "images / s": e["images_per_s"], "min / ImageNet train": e["imagenet_train_min"]}
        for e in r["extract"]
    ]  # fmt: skip
    return Section(
        key="gpu",
        title=f"9. GPU figures at paper scale ({r['device']})",
        measured=f"measured {r['date']} on one {r['device']} (not this machine)",
        rows=rows,
        notes=[
            f"Measured {r['date']} with `python -m benchmarks.gpu` (torch {r['torch']}), random "
            f"weights. Baseline in the same run: an 8192^3 bf16 matmul at "
            f"{r['matmul_bf16_tflops']:.0f} TFLOP/s ({r['matmul_bf16_tflops'] / 989:.0%} of the "
            "989 TFLOP/s datasheet peak). Training: AdamW (fused), label smoothing 0.1, grad clip "
            "1.0, 256 tokens; TFLOP/s and MFU use item 8's FLOPs per token; 'est.' is item 8's "
            "memory formula at the same batch. 'first step' includes torch.compile's compilation.",
            table(extract),
            "Extraction: `digit.encoders` DINOv2 (layer -3 + final norm) from uint8 256 px images "
            "resized to 224 on the GPU; no data loading. K-Means on the GPU was not timed: "
            "faiss-gpu's CUDA 12 runtime wheels (~1.5 GB) cannot travel to the GPU machine, which "
            "has no package index.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps, iters = (3, 3) if args.quick else (10, 10)
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "host": platform.node(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "matmul_bf16_tflops": matmul_peak() / 1e12,
        "train": [],
        "extract": [],
    }
    print(json.dumps({"matmul_bf16_tflops": result["matmul_bf16_tflops"]}), flush=True)
    for size, batch in (("base", 64), ("large", 32)):
        for compiled in (False, True):
            row = train_row(size, batch, compiled, steps)
            result["train"].append(row)
            torch.cuda.empty_cache()  # the model of this row is gone: give its memory back
            print(json.dumps(row), flush=True)
    for name in ("dinov2_vitb14_reg4", "dinov2_vitl14_reg4"):
        for dtype in (None, torch.bfloat16):
            row = extract_row(name, 256, dtype, iters)
            result["extract"].append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
