"""The names digit's registries answer to, and their small tables, importable without torch.

pipeline/params.py validates params.yaml against these before a stage imports torch, and the
modules that build the objects key their registries by them, so each name is written once:

- ``GPT_SIZES``: the named transformer sizes (``digit.gpt.build_gpt``);
- ``PREFIX_MODES``: how the renderer reads its prefix (``digit.gpt``);
- ``DINOV2_TIMM``, ``ENCODER_PATCH``, ``TRAINABLE_ENCODERS``, ``TIMM_PREFIX``: the encoders
  (``digit.encoders``);
- ``SSL_OBJECTIVES``: how the in-house encoder is trained (``digit.ssl``; "none": random weights);
- ``EXTRACTORS``: the FID / IS feature extractors (``digit.metrics.fid``).

The learning-rate schedules (``digit.schedule.SCHEDULES``) and the datasets
(``digit.data.DATASETS``) live in modules that import no torch already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- transformer sizes (digit.gpt) -------------------------------------------------------------

# How a renderer reads its discriminative prefix: "sequence" is the paper's stage 2 (the prefix
# tokens first in the sequence); "aligned" adds each prefix token's embedding to the row predicting
# the target at the same image place, with no prefix in the sequence; "both" does the two.
PREFIX_MODES = ("sequence", "aligned", "both")
# Training precision (digit.precision): float32, or autocast to bfloat16 / float16 (+ loss scale).
PRECISIONS = ("fp32", "bf16", "fp16")

# Parameter convention (checked by tests on the meta device): count every parameter -- untied
# input / output embeddings, learned positions, bos or class table. With it
#   base  (16 x 1024, FFN 4096, K=8192, 256 tokens):  218.58M unconditional, 219.61M with 1000
#                                                     classes (paper: 219M)
#   large (24 x 1536, FFN 6144, K=16384, 256 tokens): 730.69M unconditional, 732.22M with 1000
#                                                     classes (paper: 732M)
# A tied head would give 210.2M / 705.5M (4% off), so the paper's models are untied. 24 layers for
# large is the count that fits 732M at d=1536 (23 -> 702M, 25 -> 759M); heads are not reported:
# 16 heads (head dim 96) as in iGPT-L, which has the same width.
GPT_SIZES: dict[str, dict[str, Any]] = {
    # Unit tests only.
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, vocab_size=64, block_size=16),
    # CPU-sized default for the embedded run (e.g. 7x7 = 49 tokens).
    "small": dict(n_layer=4, n_head=4, n_embd=256, vocab_size=1024, block_size=49),
    "base": dict(n_layer=16, n_head=16, n_embd=1024, ffn=4096, vocab_size=8192, block_size=256),
    "large": dict(n_layer=24, n_head=16, n_embd=1536, ffn=6144, vocab_size=16384, block_size=256),
}

# --- encoders (digit.encoders) -----------------------------------------------------------------

DINOV2_TIMM = {  # our name -> timm's model name
    "dinov2_vits14": "vit_small_patch14_dinov2",
    "dinov2_vitb14": "vit_base_patch14_dinov2",
    "dinov2_vitl14": "vit_large_patch14_dinov2",
    "dinov2_vits14_reg4": "vit_small_patch14_reg4_dinov2",
    "dinov2_vitb14_reg4": "vit_base_patch14_reg4_dinov2",
    "dinov2_vitl14_reg4": "vit_large_patch14_reg4_dinov2",
}
# Pixels per token side: cnn_small's stride-4 feature map, the ViTs' 14 px patches.
ENCODER_PATCH = {"cnn_small": 4} | dict.fromkeys(DINOV2_TIMM, 14)
TRAINABLE_ENCODERS = ("cnn_small",)  # the others are frozen as released
TIMM_PREFIX = "timm:"  # encoder.name "timm:<timm model name>": any backbone timm builds, frozen

SSL_OBJECTIVES = ("simclr", "mae", "none")

# --- FID / IS feature extractors (digit.metrics.fid) -------------------------------------------

# torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3 (tests check they match)
URL_INCEPTION_V3 = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
EVALNET_FIDELITY_NAME = "digit-evalnet"


@dataclass(frozen=True)
class ExtractorSpec:
    """One FID feature extractor: its torch-fidelity name, layers, input channels, weights."""

    name: str  # digit's name (what params choose)
    fidelity_name: str  # name in torch-fidelity's registry
    feature_layer: str  # layer for FID / KID / PRC
    logits_layer: str  # layer for IS
    in_channels: int | None  # None: whatever the checkpoint says
    weights_hint: str  # what the weights file is, for error messages


EXTRACTORS: dict[str, ExtractorSpec] = {
    spec.name: spec
    for spec in (
        ExtractorSpec(
            name="evalnet",
            fidelity_name=EVALNET_FIDELITY_NAME,
            feature_layer="features",
            logits_layer="logits",
            in_channels=None,
            weights_hint="an evaluation-network model file written by the evalnet stage",
        ),
        ExtractorSpec(
            name="inception-v3-compat",
            fidelity_name="inception-v3-compat",
            feature_layer="2048",
            logits_layer="logits_unbiased",
            in_channels=3,
            weights_hint=f"torch-fidelity's Inception-v3 weights, a local copy of {URL_INCEPTION_V3}",
        ),
    )
}
