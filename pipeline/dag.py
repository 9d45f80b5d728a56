"""The DAG, declared once. Each `Kind` is one kind of DVC stage: the module it runs, its arguments
(the paths among them marked as what it reads, `In`, or writes, `Out` / `Keep` / `Live`), its loop
over params (the K axis, the seed axis, named variants) and the params keys it may read.

``python -m pipeline.dag`` writes the DVC files from it; ``--check`` fails when the committed ones
differ (a test runs it). What follows by construction:

- deps: every `In` path, and the stage module's import closure inside digit/ and pipeline/ (minus the
  infrastructure that moves bytes but cannot change a result, `INFRASTRUCTURE`);
- outs: every `Out` (DVC-cached), `Keep` (in git: metrics JSON, figures, timings) and `Live` (the
  dvclive curves: metrics.json and plots);
- params: the declared keys, which are also all a stage may read: `pipeline.stage` records the
  keys a stage reads and fails it on one that its kind does not list (`undeclared`).

The files: ``dvc.yaml`` at the root holds the report, whose deps (metrics/, dvclive/) reach every
other stage, so a plain ``dvc repro`` runs the whole DAG; ``dag/<kind>/dvc.yaml`` holds one kind of
stage each, with its own ``dvc.lock``. DVC rewrites a stage's whole lock file after the stage
(a round-trip YAML load and dump), so one 400-KB lock cost ~4.6 s a stage at the end of a run; a
lock per kind holds at most a dozen entries.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("digit", "pipeline")
DAG_DIR = "dag"
ROOT_KINDS = ("report",)  # in the root dvc.yaml: `dvc repro` runs them and everything upstream
# What a checkout holds that the pipeline needs (the rest is generated): test and benchmark copies.
PROJECT_FILES = (
    ".dvc/config",
    ".dvc/.gitignore",
    "dvc.yaml",
    DAG_DIR,
    "params.yaml",
    "digit",
    "pipeline",
)
# Atomic writes, the CLI / logging wrapper, the params schema (validated on its own), this file,
# the launcher, the progress bar / log lines: they cannot change a stage's numbers.
INFRASTRUCTURE = {
    "digit/progress.py",
    "pipeline/io.py",
    "pipeline/stage.py",
    "pipeline/params.py",
    "pipeline/checks.py",
    "pipeline/presets/__init__.py",
    "pipeline/dag.py",
    "pipeline/warm.py",
    "pipeline/stages/__init__.py",
}


@dataclass(frozen=True)
class Path_:
    """A path argument of a stage; its class says what the stage does with it."""

    path: str


class In(Path_):
    """A path the stage reads: a dep."""


class Out(Path_):
    """A path the stage writes, kept in DVC's cache (models, tokens, samples)."""


class Keep(Path_):
    """A small file the stage writes, kept in git (``cache: false``): metrics, figures, timings."""


class Live(Path_):
    """A dvclive folder: its metrics.json and its curves (plots) stay in git."""


Arg = str | In | Out | Keep | Live


@dataclass(frozen=True)
class Kind:
    """One kind of stage. ``args`` become ``--name value`` in order (``--timings`` last);
    ``loop`` is DVC's ``foreach`` (a params list, or a dict of named variants) or ``matrix``."""

    name: str
    module: str
    args: dict[str, Arg]
    params: tuple[str, ...]
    doc: str = ""
    loop: dict | None = None
    deps: tuple[str, ...] = ()  # read, but not named on the command line
    writes: tuple[str, ...] = ()  # written (kept in git), but not named on the command line
    metrics: tuple[str, ...] = ()  # `dvc metrics show` files (in git)

    @property
    def stage_name(self) -> str:
        """The DVC stage name as DVC expands it (``ar@${item.k}-${item.seed}`` -> ar@256-0)."""
        loop = self.loop or {}
        if "matrix" in loop:
            return self.name + "@" + "-".join(f"${{item.{axis}}}" for axis in loop["matrix"])
        if "foreach" in loop:
            by_key = isinstance(loop["foreach"], dict) or loop["foreach"] in ROW_LOOPS
            return self.name + ("@${key}" if by_key else "@${item}")
        return self.name

    @property
    def timings(self) -> str:
        """Its wall-clock figures: ``timings/<stage name>.json``, one spelling with the stage."""
        return f"timings/{self.stage_name}.json"

    def paths(self, kind: type) -> list[str]:
        found = [a.path for a in self.args.values() if isinstance(a, kind)]
        return found + ([*self.writes, self.timings] if kind is Keep else [])


# --- Shorthands for the templates. -------------------------------------------------------------

K, S, ITEM, KEY = "${item.k}", "${item.seed}", "${item}", "${key}"
MAIN_K, SEED = "${kmeans.main_k}", "${seed}"
IMAGES = In("data/images.zarr")
EVALNET = In("models/evalnet.pt")
KS_BY_SEEDS = {"matrix": {"k": "${kmeans.ks}", "seed": "${seeds}"}}
KS_BY_SAMPLE_SEEDS = {"matrix": {"k": "${kmeans.ks}", "seed": "${sample_seeds}"}}
ENCODER_ROWS = {"foreach": "${encoders}"}
VQ_ROWS = {"foreach": "${vq_rows}"}
ROW_LOOPS = (ENCODER_ROWS["foreach"], VQ_ROWS["foreach"])  # params dicts: stages named by key
VQ_ROW = f"vq_{KEY}"  # the stem of a vq_rows row's autoencoder, its tokens and its token model


def trained(stem: str) -> dict[str, Arg]:
    """The outputs of a training stage: model, metrics, resumable checkpoints, curves."""
    return {
        "out": Out(f"models/{stem}.pt"),
        "metrics": Keep(f"metrics/{stem}.json"),
        "checkpoints": f"checkpoints/{stem}",
        "live": Live(f"dvclive/{stem}"),
    }


def sampled(name: str) -> dict[str, Arg]:
    """The outputs of a sample set: samples, grid figure, run metrics, FID / IS / KID scores."""
    return {
        "out": Out(f"samples/{name}.zarr"),
        "figure": Keep(f"reports/figures/samples_{name}.png"),
        "metrics": Keep(f"metrics/generate_{name}.json"),
        "evalnet": EVALNET,
        "scores": Keep(f"metrics/scores_{name}.json"),
    }


GENERATE_PARAMS = (
    "generate.n_samples",
    "generate.batch_size",
    "generate.use_cache",
    "generate.grid",
)
DIGIT_SAMPLING = (
    "device",
    *GENERATE_PARAMS,
    "generate.token_model",
    "generate.renderer_causal",
    "evaluate",
)


def digit_sampled(name: str, k: str, seed: str) -> dict[str, Arg]:
    """A DiGIT sample set from the token model and causal renderer at (``k``, ``seed``), decoded
    by that seed's VQ."""
    return {
        "token_model": In(f"models/ar_k{k}_s{seed}.pt"),
        "renderer": In(f"models/renderer_k{k}_causal_s{seed}.pt"),
        "vq": In(f"models/vq_s{seed}.pt"),
        "images": IMAGES,
        **sampled(name),
    }


KMEANS_FIT = ("kmeans.niter", "kmeans.max_points_per_centroid", "kmeans.spherical")
VQ_PARAMS = (
    "device",
    "data.image_size",
    "data.channels",
    "encoder.name",
    "encoder.input_size",
    "encoder.layer",
    "vq",
)
STABILITY_PARAMS = (
    "seed",
    "device",
    "encoder.name",
    "ssl.objective",
    "ssl.noise_aug",
    "kmeans.spherical",
    "stability",
)
SEARCH_PARAMS = (
    "seed",
    "device",
    "generate.batch_size",
    "generate.use_cache",
    "generate.token_model.temperature",
    "generate.renderer_causal.temperature",
    "evaluate",
    "sampling",
)
REPORTS = (
    "reports/README.md",
    "reports/claims.md",
    *(f"reports/{name}.{ext}" for name in (
        "table1_stability", "table2_probe", "table3_unconditional", "table4_conditional",
        "ablation_tokenizer", "ablation_k", "ablation_encoder", "encoder", "sampling_sweeps", "toy",
        "stability_vs_generation",
    ) for ext in ("md", "csv")),
    *(f"reports/figures/{name}.png" for name in (
        "stability", "probe_per_layer", "sampling_sweeps", "fig1_probe_vs_fid", "loss_curves",
        "stability_vs_generation",
    )),
)  # fmt: skip


KINDS: tuple[Kind, ...] = (
    Kind(
        "prepare",
        "prepare",
        {"out": Out("data/images.zarr"), "metrics": Keep("metrics/prepare.json")},
        ("seed", "data"),
        doc="The images: the dataset's train / val split in one Zarr store.",
    ),
    Kind(
        "ssl",
        "ssl",
        {
            "images": IMAGES,
            "out": Out("models/encoder.pt"),
            "random_out": Out("models/encoder_random.pt"),
            "metrics": Keep("metrics/ssl.json"),
        },
        ("seed", "device", "data.image_size", "data.channels", "encoder", "ssl"),
        doc="The main encoder (SimCLR) and its random-weights twin; other encoders are rows of "
        "params `encoders` (the `_enc` kinds).",
    ),
    Kind(
        "extract",
        "extract",
        {
            "images": IMAGES,
            "encoder": In("models/encoder.pt"),
            "out": Out("features/feats.zarr"),
        },
        ("seed", "device", "extract"),
        doc="The main encoder's features of every image (the K-Means input).",
    ),
    Kind(
        "encoder_eval",
        "encoder_eval",
        {
            "images": IMAGES,
            "features": In("features/feats.zarr"),
            "encoder": In("models/encoder.pt"),
            "random_encoder": In("models/encoder_random.pt"),
            "metrics": Keep("metrics/encoder.json"),
        },
        ("seed", "device", "extract", "encoder_eval"),
        doc="The encoder's k-NN and linear-probe check against its random-weights twin.",
    ),
    Kind(
        "kmeans",
        "kmeans",
        {
            "k": K,
            "seed": S,
            "name": f"kmeans_k{K}_s{S}",
            "images": IMAGES,
            "features": In("features/feats.zarr"),
            "out": Out(f"centroids/k{K}_s{S}.npy"),
            "metrics": Keep(f"metrics/kmeans_k{K}_s{S}.json"),
        },
        ("device", *KMEANS_FIT),
        doc="Tokenizers: K-Means centroids, one branch per K and seed.",
        loop=KS_BY_SEEDS,
    ),
    Kind(
        "tokenize",
        "tokenize",
        {
            "k": K,
            "name": f"tokenize_k{K}_s{S}",
            "features": In("features/feats.zarr"),
            "centroids": In(f"centroids/k{K}_s{S}.npy"),
            "out": Out(f"tokens/disc_k{K}_s{S}.zarr"),
            "encoder": In("models/encoder.pt"),
            "images": IMAGES,
        },
        ("seed", "device", "kmeans.spherical", "extract", "tokenize"),
        doc="Nearest-centroid tokens of every image.",
        loop=KS_BY_SEEDS,
    ),
    Kind(
        "token_eval",
        "token_eval",
        {
            "k": ITEM,
            "images": IMAGES,
            "tokens": In(f"tokens/disc_k{ITEM}_s{SEED}.zarr"),
            "random_encoder": In("models/encoder_random.pt"),
            "metrics": Keep(f"metrics/tokens_k{ITEM}.json"),
        },
        ("seed", "device", "extract", *KMEANS_FIT, "encoder_eval"),
        doc="The tokens' k-NN and probe check (Table 2's tokens row), main seed.",
        loop={"foreach": "${kmeans.ks}"},
    ),
    Kind(
        "vq",
        "vq",
        {
            "seed": ITEM,
            "name": f"vq_s{ITEM}",
            "images": IMAGES,
            "out": Out(f"models/vq_s{ITEM}.pt"),
            "tokens": Out(f"tokens/vq_s{ITEM}.zarr"),
            "metrics": Keep(f"metrics/vq_s{ITEM}.json"),
            "checkpoints": f"checkpoints/vq_s{ITEM}",
            "live": Live(f"dvclive/vq_s{ITEM}"),
        },
        VQ_PARAMS,
        doc="The VQ autoencoder: the reconstructive baseline tokenizer and the renderer's pixel "
        "decoder, one per seed. Training stages checkpoint to checkpoints/<model>/ (outside DVC's "
        "outs): a killed stage resumes from there on the next repro.",
        loop={"foreach": "${seeds}"},
    ),
    Kind(
        "vq_row",
        "vq",
        {
            "row": KEY,
            "name": VQ_ROW,
            "images": IMAGES,
            "out": Out(f"models/{VQ_ROW}.pt"),
            "tokens": Out(f"tokens/{VQ_ROW}.zarr"),
            "metrics": Keep(f"metrics/{VQ_ROW}.json"),
            "checkpoints": f"checkpoints/{VQ_ROW}",
            "live": Live(f"dvclive/{VQ_ROW}"),
        },
        ("seed", *VQ_PARAMS, f"vq_rows.{KEY}"),
        doc="More VQ tokenizers (params `vq_rows`, e.g. Table 1's control trained with the "
        "encoder's noise augmentation): each row's autoencoder, then its token model, probe, "
        "untruncated samples and stability, once with the main seed.",
        loop=VQ_ROWS,
    ),
    Kind(
        "ar",
        "ar",
        {
            "name": f"k{K}_s{S}",
            "seed": S,
            "conditioning": "none",
            "tokens": In(f"tokens/disc_k{K}_s{S}.zarr"),
            "images": IMAGES,
            **trained(f"ar_k{K}_s{S}"),
        },
        ("device", "ar"),
        doc="The token model (the paper's stage 1): a GPT over each token set, per K and seed.",
        loop=KS_BY_SEEDS,
    ),
    Kind(
        "ar_variant",
        "ar",
        {
            "name": "${item.name}",
            "conditioning": "${item.conditioning}",
            "variant": "${item.variant}",
            "tokens": In("tokens/${item.tokens}.zarr"),
            "images": IMAGES,
            **trained("ar_${item.name}"),
        },
        (
            "seed",
            "device",
            "ar",
            "path.steps_factor",
            "path.size",
            "path.n_embd",
            "path.large_steps_factor",
        ),
        doc="Token-model variants: class-conditional DiGIT and VQ, and Fig. 3(a)'s path.",
        loop={
            "foreach": {
                "cond": {
                    "name": f"k{MAIN_K}_cond",
                    "conditioning": "class",
                    "tokens": f"disc_k{MAIN_K}_s{SEED}",
                    "variant": "main",
                },
                "vq_cond": {
                    "name": "vq_cond",
                    "conditioning": "class",
                    "tokens": f"vq_s{SEED}",
                    "variant": "main",
                },
                "long": {
                    "name": f"k{MAIN_K}_long",
                    "conditioning": "none",
                    "tokens": f"disc_k{MAIN_K}_s{SEED}",
                    "variant": "long",
                },
                "large": {
                    "name": f"k{MAIN_K}_large",
                    "conditioning": "none",
                    "tokens": f"disc_k{MAIN_K}_s{SEED}",
                    "variant": "large",
                },
            }
        },
    ),
    Kind(
        "ar_vq",
        "ar",
        {
            "name": f"vq_s{ITEM}",
            "seed": ITEM,
            "conditioning": "none",
            "tokens": In(f"tokens/vq_s{ITEM}.zarr"),
            "images": IMAGES,
            **trained(f"ar_vq_s{ITEM}"),
        },
        ("device", "ar"),
        doc="The VQ baseline's token model, once per seed like the DiGIT ones.",
        loop={"foreach": "${seeds}"},
    ),
    Kind(
        "ar_vq_long",
        "ar",
        {
            "name": f"vq_long_s{ITEM}",
            "seed": ITEM,
            "conditioning": "none",
            "variant": "vq_long",
            "tokens": In(f"tokens/vq_s{ITEM}.zarr"),
            "images": IMAGES,
            **trained(f"ar_vq_long_s{ITEM}"),
        },
        ("device", "ar", "path.vq_long_steps_factor"),
        doc="The VQ side at DiGIT's training compute (path.vq_long_steps_factor), per sample seed.",
        loop={"foreach": "${sample_seeds}"},
    ),
    Kind(
        "ar_vq_row",
        "ar",
        {
            "name": VQ_ROW,
            "conditioning": "none",
            "variant": "main",
            "tokens": In(f"tokens/{VQ_ROW}.zarr"),
            "images": IMAGES,
            **trained(f"ar_{VQ_ROW}"),
        },
        ("seed", "device", "ar"),
        doc="The token model over each VQ row's codes (main seed), trained as the VQ baseline's.",
        loop=VQ_ROWS,
    ),
    Kind(
        "renderer",
        "renderer",
        {
            "renderer": "causal",
            "name": f"k{K}_causal_s{S}",
            "seed": S,
            "disc_tokens": In(f"tokens/disc_k{K}_s{S}.zarr"),
            "vq_tokens": In(f"tokens/vq_s{S}.zarr"),
            "images": IMAGES,
            **trained(f"renderer_k{K}_causal_s{S}"),
        },
        ("device", "renderer"),
        doc="The renderer (the paper's stage 2): discriminative-token prefix -> VQ tokens; causal "
        '(the paper\'s "+VQGAN"), per K and sample seed.',
        loop=KS_BY_SAMPLE_SEEDS,
    ),
    Kind(
        "renderer_variant",
        "renderer",
        {
            "renderer": "${item.kind}",
            "name": "${item.name}",
            "disc_tokens": In("tokens/${item.tokens}.zarr"),
            "vq_tokens": In(f"tokens/vq_s{SEED}.zarr"),
            "images": IMAGES,
            **trained("renderer_${item.name}"),
        },
        ("seed", "device", "renderer"),
        doc="The bidirectional (MaskGIT) renderer at the main K.",
        loop={
            "foreach": {
                "maskgit": {
                    "kind": "maskgit",
                    "name": f"k{MAIN_K}_maskgit",
                    "tokens": f"disc_k{MAIN_K}_s{SEED}",
                }
            }
        },
    ),
    Kind(
        "generate",
        "generate",
        {
            "source": "sample",
            "name": f"digit_k{K}_causal_s{S}",
            "seed": S,
            **digit_sampled(f"digit_k{K}_causal_s{S}", K, S),
        },
        DIGIT_SAMPLING,
        doc="Sample sets (Tables 3 and 4): DiGIT per K and sample seed, at the paper's sampling.",
        loop=KS_BY_SAMPLE_SEEDS,
    ),
    Kind(
        "generate_variant",
        "generate",
        {
            "source": "sample",
            "name": "${item.set}",
            "variant": "${item.variant}",
            "token_model": In("models/${item.token_model}.pt"),
            "renderer": In("models/${item.renderer}.pt"),
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            **sampled("${item.set}"),
        },
        (
            "seed",
            "device",
            *GENERATE_PARAMS,
            "generate.${item.sampling}",
            "generate.${item.rendering}",
            "evaluate",
        ),
        doc="DiGIT variants' samples (main seed).",
        loop={
            "foreach": {
                "maskgit": {
                    "set": f"digit_k{MAIN_K}_maskgit",
                    "token_model": f"ar_k{MAIN_K}_s{SEED}",
                    "renderer": f"renderer_k{MAIN_K}_maskgit",
                    "sampling": "token_model",
                    "rendering": "renderer_maskgit",
                    "variant": "main",
                },
                "cond": {
                    "set": f"digit_k{MAIN_K}_cond_causal",
                    "token_model": f"ar_k{MAIN_K}_cond",
                    "renderer": f"renderer_k{MAIN_K}_causal_s{SEED}",
                    "sampling": "token_model_cond",
                    "rendering": "renderer_causal",
                    "variant": "main",
                },
                "cond_maskgit": {
                    "set": f"digit_k{MAIN_K}_cond_maskgit",
                    "token_model": f"ar_k{MAIN_K}_cond",
                    "renderer": f"renderer_k{MAIN_K}_maskgit",
                    "sampling": "token_model_cond",
                    "rendering": "renderer_maskgit",
                    "variant": "main",
                },
                "long": {
                    "set": f"digit_k{MAIN_K}_long_causal",
                    "token_model": f"ar_k{MAIN_K}_long",
                    "renderer": f"renderer_k{MAIN_K}_causal_s{SEED}",
                    "sampling": "token_model",
                    "rendering": "renderer_causal",
                    "variant": "main",
                },
                "large": {
                    "set": f"digit_k{MAIN_K}_large_causal",
                    "token_model": f"ar_k{MAIN_K}_large",
                    "renderer": f"renderer_k{MAIN_K}_causal_s{SEED}",
                    "sampling": "token_model",
                    "rendering": "renderer_causal",
                    "variant": "main",
                },
            }
        },
    ),
    Kind(
        "generate_untruncated",
        "generate",
        {
            "source": "sample",
            "name": f"digit_k{K}_untruncated_s{S}",
            "seed": S,
            "variant": "untruncated",
            **digit_sampled(f"digit_k{K}_untruncated_s{S}", K, S),
        },
        DIGIT_SAMPLING,
        doc="Matched sampling: DiGIT at every K sampled untruncated at every step, every sample "
        "seed (Table 3's fair rows at the main K, the K ablation and claim 6 at every K).",
        loop=KS_BY_SAMPLE_SEEDS,
    ),
    Kind(
        "generate_digit",
        "generate",
        {
            "source": "sample",
            "name": f"digit_k{MAIN_K}_selected_s{ITEM}",
            "seed": ITEM,
            "variant": "selected",
            "sampling": In("metrics/sampling_digit.json"),
            **digit_sampled(f"digit_k{MAIN_K}_selected_s{ITEM}", MAIN_K, ITEM),
        },
        DIGIT_SAMPLING,
        doc="The fair comparison (Table 3, claim 2): DiGIT at the main K sampled at the setting "
        "its own sampling search chose on train images (`sampling_digit`), every sample seed.",
        loop={"foreach": "${sample_seeds}"},
    ),
    Kind(
        "generate_vq_row",
        "generate",
        {
            "source": "sample",
            "name": f"{VQ_ROW}_untruncated",
            "variant": "untruncated",
            "token_model": In(f"models/ar_{VQ_ROW}.pt"),
            "vq": In(f"models/{VQ_ROW}.pt"),
            "images": IMAGES,
            **sampled(f"{VQ_ROW}_untruncated"),
        },
        ("seed", "device", *GENERATE_PARAMS, "generate.token_model", "evaluate"),
        doc="Each VQ row's samples, untruncated (claim 6), decoded by its own decoder.",
        loop=VQ_ROWS,
    ),
    Kind(
        "generate_vq",
        "generate",
        {
            "source": "sample",
            "name": f"${{item.side}}_${{item.how}}_s{S}",
            "seed": S,
            "variant": "${item.how}",
            "sampling": In("metrics/sampling_${item.side}.json"),
            "token_model": In(f"models/ar_${{item.side}}_s{S}.pt"),
            "vq": In(f"models/vq_s{S}.pt"),
            "images": IMAGES,
            **sampled(f"${{item.side}}_${{item.how}}_s{S}"),
        },
        ("device", *GENERATE_PARAMS, "generate.token_model", "evaluate"),
        doc="The VQ side of the fair comparison: its token model's VQ tokens go straight to the VQ "
        "decoder; the VQ baseline, and the same at DiGIT's training compute (vq_long).",
        loop={
            "matrix": {
                "side": ["vq", "vq_long"],
                "how": ["untruncated", "selected"],
                "seed": "${sample_seeds}",
            }
        },
    ),
    Kind(
        "generate_vq_cond",
        "generate",
        {
            "source": "sample",
            "name": "vq_cond",
            "token_model": In("models/ar_vq_cond.pt"),
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            **sampled("vq_cond"),
        },
        ("seed", "device", *GENERATE_PARAMS, "generate.token_model_cond", "evaluate"),
        doc="The class-conditional VQ baseline's samples (Table 4).",
    ),
    Kind(
        "upper_gt",
        "generate",
        {
            "source": "gt",
            "name": f"gt_k{MAIN_K}_{KEY}",
            "tokens": In(f"tokens/disc_k{MAIN_K}_s{SEED}.zarr"),
            "renderer": In("models/${item.renderer}.pt"),
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            **sampled(f"gt_k{MAIN_K}_{KEY}"),
            "compare": Keep(f"reports/figures/render_check_gt_k{MAIN_K}_{KEY}.png"),
        },
        ("seed", "device", *GENERATE_PARAMS, f"generate.renderer_{KEY}", "evaluate"),
        doc="Table 3's upper bound: each renderer on the val images' own discriminative tokens.",
        loop={
            "foreach": {
                "causal": {"renderer": f"renderer_k{MAIN_K}_causal_s{SEED}"},
                "maskgit": {"renderer": f"renderer_k{MAIN_K}_maskgit"},
            }
        },
    ),
    Kind(
        "upper_recon",
        "generate",
        {
            "source": "recon",
            "name": "vq_recon",
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            **sampled("vq_recon"),
        },
        (
            "seed",
            "device",
            "generate.n_samples",
            "generate.batch_size",
            "generate.grid",
            "evaluate",
        ),
        doc="Table 3's other upper bound: the VQ autoencoder's reconstructions of the val images.",
    ),
    Kind(
        "evalnet",
        "evalnet",
        {
            "images": IMAGES,
            "out": Out("models/evalnet.pt"),
            "metrics": Keep("metrics/evalnet.json"),
        },
        (
            "seed",
            "device",
            "data.image_size",
            "data.channels",
            "evalnet",
            "evaluate.extractor",
            "generate.n_samples",
        ),
        doc="Evaluation: the offline evaluation network behind FID / IS / KID (the ruler: fixed), "
        "and its quality-ladder check (can it rank generators?).",
    ),
    Kind(
        "sampling_digit",
        "sampling",
        {
            "side": "digit",
            "token_model": In(f"models/ar_k{MAIN_K}_s{SEED}.pt"),
            "renderer": In(f"models/renderer_k{MAIN_K}_causal_s{SEED}.pt"),
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            "evalnet": EVALNET,
            "metrics": Keep("metrics/sampling_digit.json"),
        },
        SEARCH_PARAMS,
        doc="The sampling search (Fig. 6; the selected sets): one grid at every sampling step of "
        "each side, scored by FID against train images; the main seed's models.",
    ),
    Kind(
        "sampling_vq",
        "sampling",
        {
            "side": ITEM,
            "token_model": In(f"models/ar_{ITEM}_s{SEED}.pt"),
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            "evalnet": EVALNET,
            "metrics": Keep(f"metrics/sampling_{ITEM}.json"),
        },
        SEARCH_PARAMS,
        doc="The same search for each VQ side.",
        loop={"foreach": ["vq", "vq_long"]},
    ),
    Kind(
        "probe",
        "probe",
        {
            "name": f"k{K}_s{S}",
            "seed": S,
            "model": In(f"models/ar_k{K}_s{S}.pt"),
            "tokens": In(f"tokens/disc_k{K}_s{S}.zarr"),
            "images": IMAGES,
            "metrics": Keep(f"metrics/probe_k{K}_s{S}.json"),
        },
        ("device", "probe"),
        doc="Linear probes of the frozen token models, layer by layer (Table 2, Fig. 1).",
        loop=KS_BY_SEEDS,
    ),
    Kind(
        "probe_vq",
        "probe",
        {
            "name": f"vq_s{ITEM}",
            "seed": ITEM,
            "model": In(f"models/ar_vq_s{ITEM}.pt"),
            "tokens": In(f"tokens/vq_s{ITEM}.zarr"),
            "images": IMAGES,
            "metrics": Keep(f"metrics/probe_vq_s{ITEM}.json"),
        },
        ("device", "probe"),
        doc="The VQ token models' probes.",
        loop={"foreach": "${seeds}"},
    ),
    Kind(
        "probe_vq_row",
        "probe",
        {
            "name": VQ_ROW,
            "model": In(f"models/ar_{VQ_ROW}.pt"),
            "tokens": In(f"tokens/{VQ_ROW}.zarr"),
            "images": IMAGES,
            "metrics": Keep(f"metrics/probe_{VQ_ROW}.json"),
        },
        ("seed", "device", "probe"),
        doc="The probe of each VQ row's token model.",
        loop=VQ_ROWS,
    ),
    Kind(
        "ssl_enc",
        "ssl",
        {
            "row": KEY,
            "images": IMAGES,
            "out": Out(f"models/encoder_{KEY}.pt"),
            "random_out": Out(f"models/encoder_{KEY}_random.pt"),
            "metrics": Keep(f"metrics/ssl_{KEY}.json"),
        },
        ("seed", "device", "data.image_size", "data.channels", "encoder", "ssl", f"encoders.{KEY}"),
        doc="The encoder axis (Fig. 4a): each row of params `encoders` through its own branch at "
        "the main K, trained once with the main seed: encoder -> features -> its k-NN / probe "
        "check -> K-Means -> tokens -> token model -> renderer -> samples -> probe.",
        loop=ENCODER_ROWS,
    ),
    Kind(
        "extract_enc",
        "extract",
        {
            "name": f"extract_enc@{KEY}",
            "images": IMAGES,
            "encoder": In(f"models/encoder_{KEY}.pt"),
            "out": Out(f"features/feats_{KEY}.zarr"),
        },
        ("seed", "device", "extract"),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "encoder_eval_enc",
        "encoder_eval",
        {
            "name": f"encoder_eval_enc@{KEY}",
            "images": IMAGES,
            "features": In(f"features/feats_{KEY}.zarr"),
            "encoder": In(f"models/encoder_{KEY}.pt"),
            "random_encoder": In(f"models/encoder_{KEY}_random.pt"),
            "metrics": Keep(f"metrics/encoder_{KEY}.json"),
        },
        ("seed", "device", "extract", "encoder_eval"),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "kmeans_enc",
        "kmeans",
        {
            "name": f"kmeans_enc@{KEY}",
            "k": MAIN_K,
            "images": IMAGES,
            "features": In(f"features/feats_{KEY}.zarr"),
            "out": Out(f"centroids/{KEY}_k{MAIN_K}.npy"),
            "metrics": Keep(f"metrics/kmeans_{KEY}.json"),
        },
        ("seed", "device", *KMEANS_FIT),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "tokenize_enc",
        "tokenize",
        {
            "name": f"tokenize_enc@{KEY}",
            "k": MAIN_K,
            "features": In(f"features/feats_{KEY}.zarr"),
            "centroids": In(f"centroids/{KEY}_k{MAIN_K}.npy"),
            "out": Out(f"tokens/{KEY}_k{MAIN_K}.zarr"),
            "encoder": In(f"models/encoder_{KEY}.pt"),
            "images": IMAGES,
        },
        ("seed", "device", "kmeans.spherical", "extract", "tokenize"),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "ar_enc",
        "ar",
        {
            "name": KEY,
            "conditioning": "none",
            "variant": "row",
            "tokens": In(f"tokens/{KEY}_k{MAIN_K}.zarr"),
            "images": IMAGES,
            **trained(f"ar_{KEY}"),
        },
        ("seed", "device", "ar", "encoders_model"),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "renderer_enc",
        "renderer",
        {
            "renderer": "causal",
            "name": f"{KEY}_causal",
            "variant": "row",
            "disc_tokens": In(f"tokens/{KEY}_k{MAIN_K}.zarr"),
            "vq_tokens": In(f"tokens/vq_s{SEED}.zarr"),
            "images": IMAGES,
            **trained(f"renderer_{KEY}_causal"),
        },
        ("seed", "device", "renderer", "encoders_model"),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "generate_enc",
        "generate",
        {
            "source": "sample",
            "name": f"{KEY}_k{MAIN_K}_untruncated",
            "variant": "untruncated",
            "token_model": In(f"models/ar_{KEY}.pt"),
            "renderer": In(f"models/renderer_{KEY}_causal.pt"),
            "vq": In(f"models/vq_s{SEED}.pt"),
            "images": IMAGES,
            **sampled(f"{KEY}_k{MAIN_K}_untruncated"),
        },
        (
            "seed",
            "device",
            *GENERATE_PARAMS,
            "generate.token_model",
            "generate.renderer_causal",
            "evaluate",
        ),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "probe_enc",
        "probe",
        {
            "name": KEY,
            "model": In(f"models/ar_{KEY}.pt"),
            "tokens": In(f"tokens/{KEY}_k{MAIN_K}.zarr"),
            "images": IMAGES,
            "metrics": Keep(f"metrics/probe_{KEY}.json"),
        },
        ("seed", "device", "probe"),
        loop=ENCODER_ROWS,
    ),
    Kind(
        "stability",
        "stability",
        {
            "tokenizer": f"k{ITEM}",
            "images": IMAGES,
            "encoder": In("models/encoder.pt"),
            "centroids": In(f"centroids/k{ITEM}_s{SEED}.npy"),
            "metrics": Keep(f"metrics/stability_k{ITEM}.json"),
        },
        STABILITY_PARAMS,
        doc="Table 1: how many tokens change under pixel perturbations, one stage per tokenizer: "
        "the main encoder's K-Means at each K (main seed) ...",
        loop={"foreach": "${kmeans.ks}"},
    ),
    Kind(
        "stability_enc",
        "stability",
        {
            "tokenizer": KEY,
            "row": KEY,
            "images": IMAGES,
            "encoder": In(f"models/encoder_{KEY}.pt"),
            "centroids": In(f"centroids/{KEY}_k{MAIN_K}.npy"),
            "metrics": Keep(f"metrics/stability_{KEY}.json"),
        },
        (*STABILITY_PARAMS, "encoder", "ssl", f"encoders.{KEY}"),
        doc="... each row of params `encoders` ...",
        loop=ENCODER_ROWS,
    ),
    Kind(
        "stability_vq",
        "stability",
        {
            "tokenizer": "vq",
            "images": IMAGES,
            "vq": In(f"models/vq_s{SEED}.pt"),
            "metrics": Keep("metrics/stability_vq.json"),
        },
        ("seed", "device", "stability"),
        doc="... the VQ autoencoder (main seed) ...",
    ),
    Kind(
        "stability_vq_row",
        "stability",
        {
            "tokenizer": VQ_ROW,
            "images": IMAGES,
            "vq": In(f"models/{VQ_ROW}.pt"),
            "metrics": Keep(f"metrics/stability_{VQ_ROW}.json"),
        },
        ("seed", "device", "stability"),
        doc="... and each row of params `vq_rows`.",
        loop=VQ_ROWS,
    ),
    Kind(
        "toy",
        "toy",
        {"metrics": Keep("metrics/toy.json"), "figure": Keep("reports/figures/toy.png")},
        ("seed", "toy"),
        doc="The appendix's toy: PCA vs LDA under noise.",
    ),
    Kind(
        "report",
        "report",
        {"metrics": In("metrics"), "live": In("dvclive"), "out": "reports"},
        (
            "seed",
            "seeds",
            "sample_seeds",
            "data",
            "encoder",
            "ssl.objective",
            "ssl.mask_ratio",
            "kmeans",
            "ar.size",
            "ar.n_embd",
            "ar.steps",
            "renderer.size",
            "renderer.n_layer",
            "renderer.steps",
            "renderer.prefix_mode",
            "renderer.align_kernel",
            "encoders",
            "vq_rows",
            "path",
            "evaluate",
            "generate.n_samples",
            "generate.renderer_causal.top_p",
            "generate.token_model_cond.cfg_scale",
            "sampling",
        ),
        doc="The report: every table, figure and claim of reports/ from metrics/ and dvclive/ "
        "(which make it downstream of every stage).",
        deps=("pipeline/paper.yaml",),
        writes=REPORTS,
        metrics=("reports/summary.json",),
    ),
)


# --- Code deps: the import closure. -------------------------------------------------------------


def _module_file(root: Path, dotted: str) -> Path | None:
    path = root.joinpath(*dotted.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imported_names(root: Path, path: Path) -> set[str]:
    """Dotted names this file imports (``from a.b import c`` gives a.b and a.b.c: c may be a
    module), relative imports resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def import_closure(root: Path, module: str, exclude: set[str] = INFRASTRUCTURE) -> set[str]:
    """Repo-relative paths of the project files ``module`` imports, transitively (function-level
    imports included), minus ``exclude`` and docstring-only ``__init__`` files. An excluded file is
    opaque: the params schema imports registry names to validate against, which are not the
    stage's computation (a stage that computes with them imports them itself)."""
    start = _module_file(root, module)
    if start is None:
        raise ValueError(f"{module}: no such module under {root}")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.relative_to(root).as_posix() in exclude:
            continue
        for name in _imported_names(root, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                found = _module_file(root, ".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    rel = {p.relative_to(root).as_posix(): p for p in seen}
    return {
        r
        for r, p in rel.items()
        if r not in exclude and not (p.name == "__init__.py" and _docstring_only(p))
    }


# --- Params: what a stage may read. -------------------------------------------------------------

_TEMPLATE = re.compile(r"\$\{[^}]*\}")


def declared_params(module: str) -> list[str]:
    """The params keys the kinds running ``pipeline.stages.<module>`` list (a template segment,
    e.g. ``generate.${item.sampling}``, matches any key there)."""
    module = module.removeprefix("pipeline.stages.")
    return sorted({p for kind in KINDS if kind.module == module for p in _expanded_params(kind)})


def _expanded_params(kind: Kind) -> set[str]:
    """``kind.params`` with the templates of a literal dict ``foreach`` filled in per variant
    (``generate.${item.sampling}`` -> generate.token_model, ...); other templates stay."""
    variants = (kind.loop or {}).get("foreach")
    if not isinstance(variants, dict):
        return set(kind.params)
    out = set()
    for key, item in variants.items():
        for p in kind.params:
            p = p.replace("${key}", key)
            for field_name, value in item.items():
                p = p.replace(f"${{item.{field_name}}}", str(value))
            out.add(p)
    return out


def select(record: dict, declared: list[str]) -> dict:
    """The parts of a params record (``model_dump``) under the ``declared`` keys, nested as in
    params.yaml (a template segment takes every key there)."""
    out: dict = {}
    for key in declared:
        parts = _TEMPLATE.sub("\0", key).split(".")

        def take(src: Any, dst: dict, rest: list[str]) -> None:
            head, *tail = rest
            names = list(src) if head == "\0" else [head]
            for name in names:
                if name not in src:
                    continue
                if not tail:
                    dst[name] = src[name]
                elif isinstance(src[name], dict):
                    take(src[name], dst.setdefault(name, {}), tail)

        take(record, out, parts)
    return out


def undeclared(read: set[str], declared: list[str]) -> list[str]:
    """Keys in ``read`` that no declared key covers (a key covers itself and what is under it)."""
    patterns = [
        re.compile(
            ".".join(
                "[^.]+" if s == "\0" else re.escape(s) for s in _TEMPLATE.sub("\0", d).split(".")
            )
            + r"(\..*)?"
        )
        for d in declared
    ]
    return sorted(key for key in read if not any(p.fullmatch(key) for p in patterns))


# --- The DVC files. ----------------------------------------------------------------------------


class _Inline(dict):
    """A mapping written on one line: ``{cache: false}``."""


class _Folded(str):
    """A string written folded (``>-``), wrapped at the file's width."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Inline, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)
_Dumper.add_representer(
    _Folded, lambda d, data: d.represent_scalar("tag:yaml.org,2002:str", data, style=">")
)


def _entry(path: str, **options) -> str | dict:
    return {path: _Inline(options)} if options else path


# The interpreter word of every stage command: `python3`, which every Python 3 install and venv
# provides (stock Debian has no `python`); one without the project's packages re-executes itself
# with the project's .venv/bin/python (pipeline/stages/__init__.py).
STAGE_PYTHON = "python3"


def stage_body(kind: Kind, root: Path = ROOT, wdir: str | None = None) -> dict:
    """The DVC stage (or ``do:`` body) of ``kind``."""
    words = [f"{STAGE_PYTHON} -m pipeline.stages.{kind.module}"]
    for name, arg in {**kind.args, "timings": kind.timings}.items():
        words.append(f"--{name} {arg if isinstance(arg, str) else arg.path}")
    code = sorted(import_closure(root, f"pipeline.stages.{kind.module}"))
    body: dict = {"wdir": wdir} if wdir else {}
    body["cmd"] = _Folded(" ".join(words))
    body["deps"] = [*kind.paths(In), *kind.deps, *code]
    body["params"] = list(kind.params)
    outs = [_entry(p) for p in kind.paths(Out)]
    outs += [_entry(p, cache=False) for p in kind.paths(Keep)]
    outs += [_entry(f"{p}/metrics.json", cache=False) for p in kind.paths(Live)]
    body["outs"] = outs
    if kind.paths(Live):
        body["plots"] = [
            _entry(f"{p}/plots/metrics", cache=False, x="step") for p in kind.paths(Live)
        ]
    if kind.metrics:
        body["metrics"] = [_entry(p, cache=False) for p in kind.metrics]
    return body


def stage_entry(kind: Kind, root: Path = ROOT, wdir: str | None = None) -> dict:
    body = stage_body(kind, root, wdir)
    if kind.loop is None:
        return body
    if "matrix" in kind.loop:
        return {"matrix": _Inline(kind.loop["matrix"]), **body}
    return {**kind.loop, "do": body}


HEADER = """\
# Generated by `python -m pipeline.dag` from pipeline/dag.py: edit that file, not this one
# (a test fails when the two differ).
"""
ROOT_HEADER = (
    HEADER
    + """#
# The DAG: this file holds the report, whose deps (metrics/, dvclive/) reach every stage, so
# `dvc repro` here runs them all; dag/<kind>/dvc.yaml holds one kind of stage each, with its own
# dvc.lock (DVC rewrites a stage's whole lock file after the stage: small files keep that short).
# Stage names there: `dvc repro dag/ar/dvc.yaml:ar@256-0`. Along the axes: `foreach` over
# `kmeans.ks` is stage@K, over `seeds` stage@SEED (`sample_seeds`, part of it, for renderers and
# samples), a `matrix` over both stage@K-SEED, a dict `foreach` names the variants of a kind, over
# `encoders` the encoder axis (one stage per row). Metrics JSON, figures, timings and curves stay
# in git (`cache: false`); timings/ holds wall-clock figures that no stage reads.
"""
)


def _dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, default_flow_style=False)


def _with_doc(kind: Kind, text: str) -> str:
    if not kind.doc:
        return text
    doc = textwrap.fill(kind.doc, 98, initial_indent="# ", subsequent_indent="# ")
    return f"{doc}\n{text}"


def render(root: Path = ROOT) -> dict[str, str]:
    """Repo-relative path -> content of every DVC file of the DAG."""
    files = {}
    root_stages = []
    for kind in KINDS:
        if kind.name in ROOT_KINDS:
            root_stages.append(_with_doc(kind, _dump({kind.name: stage_entry(kind, root)})))
            continue
        up = "/".join([".."] * len(Path(DAG_DIR, kind.name).parts))
        text = _dump(
            {"vars": [f"{up}/params.yaml"], "stages": {kind.name: stage_entry(kind, root, up)}}
        )
        files[f"{DAG_DIR}/{kind.name}/dvc.yaml"] = HEADER + _with_doc(kind, text)
    indented = "".join(
        "\n" + "".join(f"  {line}\n" if line else "\n" for line in s.splitlines())
        for s in root_stages
    )
    files["dvc.yaml"] = ROOT_HEADER + "stages:" + indented
    return dict(sorted(files.items()))


def check_reach() -> list[str]:
    """Kinds that neither write under a root kind's deps nor feed a kind that does: `dvc repro`
    at the root would not run them."""
    roots = [k for k in KINDS if k.name in ROOT_KINDS]
    reached = {k.name for k in roots}
    watched = {p for k in roots for p in k.paths(In)}

    def under(path: str) -> bool:
        return any(path == w or path.startswith(w + "/") for w in watched)

    changed = True
    while changed:
        changed = False
        for kind in KINDS:
            if kind.name in reached:
                continue
            outs = kind.paths(Out) + kind.paths(Keep) + kind.paths(Live)
            if any(under(p) for p in outs):
                reached.add(kind.name)
                watched |= set(kind.paths(In))
                changed = True
    return [k.name for k in KINDS if k.name not in reached]


def write(root: Path = ROOT) -> list[str]:
    """Write the DVC files; remove dag/<kind>/ folders of kinds no longer declared. Returns the
    paths that changed."""
    files = render(root)
    changed = []
    for rel, text in files.items():
        path = root / rel
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(rel)
    for rel in _undeclared_files(root, files):
        (root / rel).unlink()
        (root / rel).with_name("dvc.lock").unlink(missing_ok=True)
        changed.append(rel)
    return changed


def _undeclared_files(root: Path, files: dict[str, str]) -> list[str]:
    """dag/<kind>/dvc.yaml files on disk whose kind is no longer declared."""
    found = (p.relative_to(root).as_posix() for p in sorted((root / DAG_DIR).glob("*/dvc.yaml")))
    return [rel for rel in found if rel not in files]


def stale(root: Path = ROOT) -> list[str]:
    """Unified diffs of the committed DVC files against the declaration (empty: in step)."""
    diffs = []
    files = render(root)
    for rel, text in files.items():
        path = root / rel
        old = path.read_text() if path.exists() else ""
        if old != text:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        old.splitlines(True), text.splitlines(True), f"{rel} (committed)", rel
                    )
                )
            )
    for rel in _undeclared_files(root, files):
        diffs.append(f"{rel}: no longer declared in pipeline/dag.py (delete it)\n")
    return diffs


def copy_project(src: Path, dst: Path) -> None:
    """The files a checkout needs to run the DAG (``PROJECT_FILES``), from ``src`` to ``dst``,
    without any run's results: no dvc.lock, no __pycache__."""
    for name in PROJECT_FILES:
        out = dst / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if (src / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__", "dvc.lock")
            shutil.copytree(src / name, out, ignore=skip)
        else:
            shutil.copy2(src / name, out)


def target(name: str) -> str:
    """What `dvc repro` / `dvc status` take from the repo root for stage ``name``:
    ``ar@256-0`` -> ``dag/ar/dvc.yaml:ar@256-0`` (the report, in the root dvc.yaml: itself)."""
    kind = name.split("@")[0]
    return name if kind in ROOT_KINDS else f"{DAG_DIR}/{kind}/dvc.yaml:{name}"


def lock_entries(root: Path = ROOT) -> dict[str, dict]:
    """Every stage's dvc.lock entry, from the root lock and those of dag/<kind>/."""
    entries: dict[str, dict] = {}
    for lock in [root / "dvc.lock", *sorted((root / DAG_DIR).glob("*/dvc.lock"))]:
        if lock.exists():
            entries.update((yaml.safe_load(lock.read_text()) or {}).get("stages", {}))
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write the DVC files of the DAG (pipeline/dag.py)."
    )
    parser.add_argument("--check", action="store_true", help="fail when the files differ")
    args = parser.parse_args()
    unreached = check_reach()
    if unreached:
        sys.exit(
            f"error: `dvc repro` would not reach kinds {unreached}: give them an out the report reads"
        )
    if args.check:
        diffs = stale()
        if diffs:
            sys.stdout.write("".join(diffs))
            sys.exit(
                "error: the DVC files differ from pipeline/dag.py; run `python -m pipeline.dag`"
            )
        print("DVC files in step with pipeline/dag.py")
        return
    changed = write()
    print("\n".join(f"wrote {p}" for p in changed) or "DVC files already in step")


if __name__ == "__main__":
    main()
