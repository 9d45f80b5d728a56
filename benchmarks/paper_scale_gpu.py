"""Throughput of the paper-scale models on one GPU, for README.md "Paper scale" time estimates.

Measures, with random weights and random tokens (the cost does not depend on the values):
* a training step of the 219M GPT (digit.gpt "base", K=8192, 256 tokens) at the per-GPU batch of
  the imagenet preset (512 over 8 GPUs = 64), in the float32 the training loop uses (TF32 off, the
  PyTorch default) and with TF32 on for reference; also the stage-2 model (256-token prefix);
* DINOv2 ViT-B/14-reg4 at 224 px up to block 10 of 12 (the extract stage), when timm is installed.

    python benchmarks/paper_scale_gpu.py   # needs CUDA; prints one line per measurement
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.gpu import cuda_time  # noqa: E402
from digit.gpt import build_gpt, count_params  # noqa: E402


def gpt_step(batch: int, prefix: bool, tf32: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    extra = dict(prefix_vocab_size=8192, prefix_len=256, vocab_size=1024) if prefix else {}
    model = build_gpt("base", **extra).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.98))
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (batch, 256), device="cuda")
    pre = torch.randint(0, 8192, (batch, 256), device="cuda") if prefix else None

    def step() -> None:
        _, loss = model(tokens[:, :-1], prefix=pre, targets=tokens, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    s = cuda_time(step, warmup=3, iters=10)
    name = "renderer (prefix 256)" if prefix else "ar"
    print(
        f"gpt base {name}: {count_params(model) / 1e6:.0f}M params, batch {batch}, "
        f"tf32={tf32}: {s * 1000:.0f} ms/step, {batch / s:.0f} seq/s, "
        f"peak mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB",
        flush=True,
    )


@torch.inference_mode()
def dinov2(batch: int) -> None:
    try:
        import timm
    except ImportError:
        print("dinov2: timm not installed, skipped")
        return
    model = timm.create_model("vit_base_patch14_reg4_dinov2", pretrained=False, img_size=224)
    model = model.cuda().eval()
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    s = cuda_time(
        lambda: model.forward_intermediates(x, indices=[9], intermediates_only=True), 3, 10
    )
    print(f"dinov2 vitb14_reg4 224px to block 10, batch {batch}, fp32: {batch / s:.0f} img/s")


def main() -> None:
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    for prefix in (False, True):
        for tf32 in (False, True):
            gpt_step(64, prefix, tf32)
            torch.cuda.empty_cache()  # the model and optimizer went out of scope
            torch.cuda.reset_peak_memory_stats()
    torch.backends.cuda.matmul.allow_tf32 = False
    dinov2(256)


if __name__ == "__main__":
    main()
