"""Typed schema of params.yaml: one section class per stage, each key's type, range and default.

Reading the file and checking it is pipeline/checks.py (``load``, ``validate``); presets, partial
overrides deep-merged onto it, are pipeline/presets/. The command line joins them:
``python -m pipeline.params check`` validates params.yaml, ``python -m pipeline.params apply smoke``
merges a preset into it in place (``git checkout params.yaml`` returns to the embedded default).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import re
import sys
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    model_validator,
)

from digit.data import DATASETS as DATASET_REGISTRY
from digit.data import FIXED_SIZES
from digit.registry import (
    ENCODER_PATCH,
    EXTRACTORS,
    GPT_SIZES,
    PRECISIONS,
    PREFIX_MODES,
    SSL_OBJECTIVES,
    TIMM_PREFIX,
    TRAINABLE_ENCODERS,
)
from digit.schedule import SCHEDULES as LR_SCHEDULES

# Names that an ablation swaps are chosen from digit's registries, read here from modules that
# import no torch, so a typo fails before a stage imports it.
DATASETS = tuple(DATASET_REGISTRY)
ENCODERS = tuple(ENCODER_PATCH)


class ParamsError(ValueError):
    """A params.yaml problem, already phrased as one line for the user."""


# The fields a stage read, as (section class, field); None: not recording (validation, tests).
# `pipeline.stage` turns them into params keys and fails a stage that read one its DVC stage does
# not list: a stage cannot depend on a key that DVC does not watch.
_reads: set[tuple[type, str]] | None = None


def _holds_sections(value: Any) -> bool:
    """A section, or a dict of them (the rows of ``encoders``): its own fields record the reads."""
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, Section) for v in value.values())
    return isinstance(value, Section)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)
    # Fields the code set (``model_copy(update=...)``: a variant, ``--seed``, a sampling setting):
    # reading them is not reading params.yaml.
    _given: frozenset[str] = PrivateAttr(default=frozenset())

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if _reads is not None and name in type(self).model_fields and not _holds_sections(value):
            private = super().__getattribute__("__pydantic_private__") or {}
            if name not in private.get("_given", ()):
                _reads.add((type(self), name))
        return value

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        if _reads is not None:
            given = self._given
            names = [f for f in type(self).model_fields if f not in given] if given else ["*"]
            _reads.update((type(self), f) for f in names)  # "*": every field of the section
        return super().model_dump(**kwargs)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        new = super().model_copy(update=update, deep=deep)
        if update:
            new._given = self._given | set(update)
        return new


Config = TypeVar("Config")


def build_config(cls: type[Config], section: Section, **given: Any) -> Config:
    """The dataclass ``cls`` (a model's or a training loop's config) from a params section: each of
    its fields that the section has is read from there, ``given`` sets those that come from
    elsewhere (the seed, what the data decides, a derived value) and wins over the section, the
    rest keep the dataclass's defaults. Fields are read one by one, not through ``model_dump``, so
    a stage records the keys its config uses and no others."""
    keys = type(section).model_fields
    read = {
        f.name: getattr(section, f.name)
        for f in dataclasses.fields(cls)
        if f.name in keys and f.name not in given
    }
    return cls(**read, **given)


PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNeg = Annotated[float, Field(ge=0.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]


class DataParams(Section):
    dataset: Literal[DATASETS]  # type: ignore[valid-type]
    root: str | None = None  # imagefolder: root/class/*.jpg|png
    image_size: PosInt
    channels: Literal[1, 3]
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]
    max_images: PosInt | None = None  # seeded stratified subsample (smoke runs)
    on_corrupt: Literal["skip", "error"] = "skip"
    chunk_images: PosInt = 1024
    # store: decoded pixels in data/images.zarr; folder: only the file list there, each read decodes
    # the files under data.root again (paper scale: no ~250 GB copy of ImageNet)
    pixels: Literal["store", "folder"] = "store"

    @model_validator(mode="after")
    def _root_for_imagefolder(self) -> DataParams:
        if self.dataset == "imagefolder" and not self.root:
            raise ValueError("root: dataset 'imagefolder' needs data.root (root/class/*.jpg)")
        if self.pixels == "folder" and self.dataset != "imagefolder":
            raise ValueError(
                f"pixels: 'folder' decodes the files under data.root, so it needs dataset "
                f"'imagefolder' (got {self.dataset!r}; use pixels: store)"
            )
        if self.dataset == "mnist5k" and (self.channels != 1 or self.image_size != 28):
            raise ValueError(
                "image_size: dataset 'mnist5k' is 28x28 grayscale (image_size 28, channels 1)"
            )
        return self


class EncoderParams(Section):
    name: str  # cnn_small | dinov2_* | timm:<any timm model name> (checked below)
    weights: str | None = None  # frozen encoders: local .pth/.safetensors; never downloaded
    layer: int = -3  # ViT block / CNN feature stage (negative = from the end); the paper: -3
    input_size: PosInt | None = None  # encoder input resolution; None = data.image_size
    width: PosInt = 64  # cnn_small feature width (D)

    @model_validator(mode="after")
    def _known_name(self) -> EncoderParams:
        timm_name = self.name.removeprefix(TIMM_PREFIX)
        if self.name not in ENCODERS and not (self.name.startswith(TIMM_PREFIX) and timm_name):
            raise ValueError(
                f"name: unknown encoder {self.name!r}; expected one of "
                f"{', '.join(ENCODERS)} or {TIMM_PREFIX}<timm model name>"
            )
        return self

    @property
    def frozen(self) -> bool:
        """Released weights from a local file (DINOv2 or any timm backbone): nothing trained."""
        return self.name not in TRAINABLE_ENCODERS


class SSLParams(Section):
    objective: Literal[SSL_OBJECTIVES]  # type: ignore[valid-type]
    epochs: PosInt
    batch_size: Annotated[int, Field(ge=2)]
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    warmup_epochs: Annotated[float, Field(ge=0)] = 1.0
    temperature: Annotated[float, Field(gt=0)] = 0.2
    proj_dim: PosInt = 128
    crop_scale: tuple[Prob, Prob] = (0.5, 1.0)
    rotation_deg: Annotated[float, Field(ge=0, le=180)] = 15.0
    blur_p: Prob = 0.3
    noise_aug: bool = True
    noise_p: Prob = 0.5
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    mask_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.5  # objective mae: hidden patch fraction
    precision: Precision = "fp32"  # fp32 | bf16 | fp16 autocast (digit.precision)
    tf32: StrictBool = False

    @model_validator(mode="after")
    def _ranges(self) -> SSLParams:
        if self.crop_scale[0] > self.crop_scale[1] or self.crop_scale[0] <= 0:
            raise ValueError(f"crop_scale: need 0 < lo <= hi <= 1 (got {list(self.crop_scale)})")
        if self.noise_snr_db[0] > self.noise_snr_db[1]:
            raise ValueError(f"noise_snr_db: need lo <= hi (got {list(self.noise_snr_db)})")
        return self


ENCODER_KEY = re.compile(r"^[a-z][a-z0-9]*$")
# Stems of the main branch's own files that an encoder key would collide with (pipeline/sets.py).
RESERVED_KEYS = {"main", "random", "vq", "digit", "gt"}


class RowError(ValueError):
    """A row of ``encoders`` that does not make an encoder (message: ``key: problem``)."""


class EncoderRow(Section):
    """One row of the encoder axis (params ``encoders``, the paper's Fig. 4a): another encoder
    through the whole main-K branch. Without a ``name`` (or with the main one's) it is the main
    encoder with the row's changes; with another ``name`` it is a new encoder, whose other keys
    default as in ``encoder``'s schema. ``objective`` replaces ``ssl.objective`` (released weights:
    none)."""

    label: Annotated[str, Field(min_length=1)]  # its row in the encoder table, e.g. "MAE"
    kind: str = "-"  # the table's kind column, e.g. "patch, reconstructive"
    name: str | None = None
    weights: str | None = None
    layer: int | None = None
    input_size: PosInt | None = None
    width: PosInt | None = None
    objective: Literal[SSL_OBJECTIVES] | None = None  # type: ignore[valid-type]
    noise_aug: bool | None = None  # replaces ssl.noise_aug (Table 1's control: trained without it)

    def apply(self, encoder: EncoderParams, ssl: SSLParams) -> tuple[EncoderParams, SSLParams]:
        fields = ("name", "weights", "layer", "input_size", "width")
        over = {f: getattr(self, f) for f in fields if getattr(self, f) is not None}
        # The main encoder with changes, or (another name) a new encoder from the defaults.
        base = encoder.model_dump() if self.name in (None, encoder.name) else {}
        enc = EncoderParams.model_validate({**base, **over})
        if enc.frozen and self.objective not in (None, "none"):
            whose = "" if self.name else " (the row inherits encoder.name)"
            raise RowError(
                f"objective: {enc.name!r}{whose} is used as released, never trained here, so "
                f"objective {self.objective!r} cannot apply; give the row a trainable name "
                "(cnn_small) or drop the row (encoders: {} runs none)"
            )
        objective = self.objective or ("none" if enc.frozen else ssl.objective)
        update = {"objective": objective}
        if self.noise_aug is not None:
            update["noise_aug"] = self.noise_aug
        return enc, ssl.model_copy(update=update)


class ExtractParams(Section):
    batch_size: PosInt = 256
    # Images whose features stay on disk: all, or a seeded sample of this many train images (the
    # K-Means sample; tokenize and encoder_eval then re-compute features, streamed).
    keep: Literal["all"] | PosInt = "all"
    # The encoder's forward (extract, tokenize's re-encoding, encoder_eval): fp32 | bf16 | fp16
    # autocast (digit.precision); features are stored as float16 either way.
    precision: Precision = "fp32"
    # Where the features go: None = the dvc.yaml path; else a local path or fsspec URL (file://,
    # s3://, memory:// ...) written there, the dvc.yaml path then holding a pointer to it.
    store: Annotated[str, Field(min_length=1)] | None = None


class KMeansParams(Section):
    ks: list[Annotated[int, Field(ge=2)]]
    main_k: Annotated[int, Field(ge=2)]
    niter: PosInt = 20
    max_points_per_centroid: PosInt = 256
    spherical: bool = False

    @model_validator(mode="after")
    def _main_in_ks(self) -> KMeansParams:
        if not self.ks:
            raise ValueError("ks: the cluster-count list is empty")
        if len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks: duplicate K values {self.ks}")
        if self.main_k not in self.ks:
            raise ValueError(f"main_k: {self.main_k} is not one of kmeans.ks {self.ks}")
        return self


class TokenizeParams(Section):
    batch_size: PosInt = 65536  # feature vectors per assignment batch


class EncoderEvalParams(Section):
    knn_k: PosInt = 20
    max_images: PosInt | None = None  # seeded stratified subsample for the probes (paper scale)
    probe_max_iter: PosInt = 200
    probe_C: Annotated[float, Field(gt=0)] = 1.0


class VQParams(Section):
    """The VQ autoencoder (digit.vq): baseline tokenizer and the renderer's pixel decoder. Its token grid
    is the encoder's (downsample = image_size / grid), so both AR models see equal lengths."""

    codebook_size: Annotated[int, Field(ge=2)] = 256
    code_dim: PosInt = 64
    hidden: PosInt = 64
    n_res_blocks: NonNegInt = 2
    commitment: NonNeg = 0.25
    ema_decay: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.99
    restart_every: NonNegInt = 10  # dead-code restart window (steps); 0 = off
    restart_threshold: NonNeg = 1.0  # mean assignments per step below which a code is dead
    epochs: PosInt = 5
    batch_size: PosInt = 128
    lr: PosFloat = 2e-3
    weight_decay: NonNeg = 1e-4
    warmup_steps: NonNegInt = 50
    min_lr_ratio: Prob = 0.05
    grad_clip: NonNeg = 1.0
    l1_weight: NonNeg = 0.0
    noise_aug: bool = False  # Gaussian pixel noise on inputs, clean targets (denoising VQ)
    noise_p: Prob = 0.5
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    checkpoint_every: NonNegInt = 100
    eval_batch_size: PosInt = 256
    precision: Precision = "fp32"  # fp32 | bf16 | fp16 autocast (the quantizer stays float32)
    tf32: StrictBool = False


VQ_ROW_RESERVED = {"long", "cond", "recon", "untruncated", "selected"}  # vq_<key> stems in use


class VQRow(Section):
    """One more reconstructive tokenizer (params ``vq_rows``): the VQ autoencoder of ``vq`` with the
    row's keys replaced (None keeps ``vq``'s), through its own token model, probe, untruncated
    samples and Table 1 entry, trained once with the main seed. Its files are ``vq_<key>``."""

    label: Annotated[str, Field(min_length=1)]  # its row in Tables 1 and 2, claim 6
    codebook_size: Annotated[int, Field(ge=2)] | None = None
    code_dim: PosInt | None = None
    hidden: PosInt | None = None
    n_res_blocks: NonNegInt | None = None
    commitment: NonNeg | None = None
    epochs: PosInt | None = None
    lr: PosFloat | None = None
    l1_weight: NonNeg | None = None
    noise_aug: bool | None = None  # Gaussian pixel noise on its inputs (Table 1's fair control)
    noise_p: Prob | None = None
    noise_snr_db: tuple[float, float] | None = None

    def apply(self, vq: VQParams) -> VQParams:
        over = {f: getattr(self, f) for f in type(self).model_fields if f != "label"}
        return vq.model_copy(update={f: v for f, v in over.items() if v is not None})


class GPTModelFields(Section):
    """A transformer chosen by size name (digit.registry.GPT_SIZES); the other keys override it
    (None: the size's own). Vocabulary and length always come from the token sets. Keys whose
    default differs between the sections that use these fields get it there."""

    size: str
    n_layer: PosInt | None = None
    n_head: PosInt | None = None
    n_embd: PosInt | None
    ffn: PosInt | None = None
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @model_validator(mode="after")
    def _known_size(self) -> GPTModelFields:
        if self.size not in GPT_SIZES:
            raise ValueError(f"size: unknown GPT size {self.size!r}; known: {list(GPT_SIZES)}")
        n_embd = self.n_embd or GPT_SIZES[self.size]["n_embd"]
        n_head = self.n_head or GPT_SIZES[self.size]["n_head"]
        if n_embd % n_head:
            raise ValueError(f"n_embd: {n_embd} is not divisible by n_head={n_head}")
        return self


class TrainFields(Section):
    """pipeline.train.TrainConfig: AdamW, warm-up then decay, clipping, label smoothing. Keys
    whose default differs between the sections that use these fields get it there."""

    steps: PosInt
    batch_size: PosInt
    lr: PosFloat
    weight_decay: NonNeg = 0.01
    betas: tuple[Beta, Beta] = (0.9, 0.98)
    warmup_steps: NonNegInt
    schedule: Literal[LR_SCHEDULES] = "cosine"  # type: ignore[valid-type]
    min_lr_ratio: Prob = 0.1
    grad_clip: NonNeg = 1.0  # 0 = off
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    eval_every: NonNegInt  # 0 = at the end only
    eval_rows: NonNegInt = 256  # val rows of the curve (0 = all); the model's val loss: all rows
    checkpoint_every: NonNegInt  # 0 = no resumable checkpoints
    log_every: PosInt = 10
    eval_batch_size: PosInt = 256
    # Data-parallel processes (pipeline/ddp.py): > 1 runs the stage under torchrun with DDP, gloo on
    # the CPU, nccl with one GPU each; the global batch stays batch_size.
    nproc: PosInt = 1
    compile: StrictBool = False  # torch.compile the training steps (benchmarks: item 6)
    precision: Precision = "fp32"  # fp32 | bf16 | fp16 autocast (fp16: loss scale); digit.precision
    tf32: StrictBool = False  # CUDA: TF32 tensor cores for the float32 matmuls / convolutions

    @model_validator(mode="after")
    def _shards(self) -> TrainFields:
        if self.batch_size % self.nproc:
            raise ValueError(
                f"nproc: batch_size {self.batch_size} does not split into {self.nproc} equal shards"
            )
        return self


class ARParams(GPTModelFields, TrainFields):
    """The token models (the paper's stage 1): the AR models over each token set (unconditional and class-conditional)."""

    n_embd: PosInt | None = 128
    warmup_steps: NonNegInt = 40
    eval_every: NonNegInt = 40
    checkpoint_every: NonNegInt = 100
    class_dropout: Prob = 0.1  # class-conditional: label -> NULL class, for guidance


def _known_gpt_size(size: str | None) -> None:
    if size is not None and size not in GPT_SIZES:
        raise ValueError(f"size: unknown GPT size {size!r}; known: {list(GPT_SIZES)}")


class PathParams(Section):
    """Fig. 3(a)'s path after the tokenizer swap, for the main-K token model (main seed)."""

    steps_factor: PosInt = 2  # "+ longer training": ar.steps x this
    size: str | None = None  # "+ larger model": this GPT size (None: ar.size) ...
    n_embd: PosInt | None = 160  # ... at this width (None: the size's own) ...
    large_steps_factor: PosInt | None = 1  # ... for ar.steps x this (None: steps_factor)
    # The VQ side's control at DiGIT's training compute (token model + renderer FLOPs): the VQ
    # token model trained ar.steps x this, per sample seed (Table 3, claim 2).
    vq_long_steps_factor: PosInt = 3

    @model_validator(mode="after")
    def _known_size(self) -> PathParams:
        _known_gpt_size(self.size)
        return self


class EncodersModelParams(Section):
    """The token model and renderer of every encoder row (Fig. 4(a); the paper's: ~39M, 100 epochs).

    Each key replaces that key of the ar / renderer section for the rows' stages; None keeps it.
    A size brings its own depth, heads, width and FFN unless they are given too."""

    size: str | None = None
    n_layer: PosInt | None = None
    n_head: PosInt | None = None
    n_embd: PosInt | None = None
    ffn: PosInt | None = None
    steps: PosInt | None = None

    @model_validator(mode="after")
    def _known_size(self) -> EncodersModelParams:
        _known_gpt_size(self.size)
        return self

    def overrides(self) -> dict[str, Any]:
        """What a row's ar / renderer section changes ({} when every key is None)."""
        given = {k: v for k, v in self.model_dump().items() if v is not None}
        if self.size is not None:
            return {"n_layer": None, "n_head": None, "n_embd": None, "ffn": None} | given
        return given


class RendererParams(GPTModelFields, TrainFields):
    """The renderer (the paper's stage 2): discriminative-token prefix -> VQ tokens, renderer ar ("+VQGAN") or maskgit."""

    n_layer: PosInt | None = 1
    n_embd: PosInt | None = 128
    warmup_steps: NonNegInt = 20
    eval_every: NonNegInt = 150
    checkpoint_every: NonNegInt = 200
    # sequence: the paper's prefix-first stage 2; aligned / both: digit.registry.PREFIX_MODES
    prefix_mode: Literal[PREFIX_MODES] = "aligned"  # type: ignore[valid-type]
    # aligned / both: each prefix cell's k x k neighbourhood (1: the cell alone; digit/gpt.py)
    align_kernel: PosInt = 5

    @property
    def neighbourhood(self) -> int:
        """The k x k prefix neighbourhood the renderer reads: 1 without the aligned embedding."""
        return 1 if self.prefix_mode == "sequence" else self.align_kernel

    @model_validator(mode="after")
    def _odd_kernel(self) -> RendererParams:
        if self.align_kernel % 2 == 0:
            raise ValueError(f"align_kernel: expected an odd size (got {self.align_kernel})")
        return self


class TopKP(Section):
    temperature: NonNeg = 1.0  # 0 = argmax
    top_k: NonNegInt = 0  # 0 = off
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # 1 = off


class RendererCausalSampling(TopKP):
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8  # the paper's for the "+VQGAN" renderer


class CondSampling(TopKP):
    cfg_scale: NonNeg = 1.0  # classifier-free guidance; 1 = off (the paper's DiGIT uses none)


class MaskGITSampling(TopKP):
    steps: PosInt = 8
    choice_temperature: NonNeg = 4.5  # Gumbel noise on the re-masking confidence, annealed


class GenerateParams(Section):
    n_samples: PosInt = 500  # per set (upper bounds: at most the val split)
    batch_size: PosInt = 250
    use_cache: bool = True  # KV cache (False: full recomputation per token, same samples)
    grid: PosInt = 8  # the figure shows grid x grid samples
    token_model: TopKP = TopKP()  # unconditional AR models
    token_model_cond: CondSampling = CondSampling()  # class-conditional AR models
    renderer_causal: RendererCausalSampling = RendererCausalSampling()
    renderer_maskgit: MaskGITSampling = MaskGITSampling()


class SamplingParams(Section):
    """The sampling search (Fig. 6, and the setting each side of Table 3 / claim 2 is reported at):
    one grid of settings, a top-k sweep (top-p off) and a top-p sweep (top-k off), searched at every
    sampling step of each side -- the token model, and DiGIT's renderer too (the product of the
    grid). Each setting is scored by FID against ``n_reference`` train images, never the val images
    the tables report, and the best is what the "selected" sets sample with."""

    n_samples: PosInt = 256  # per setting (2 per evalnet feature dimension)
    n_reference: PosInt = 1000  # train images (seeded) the search scores against
    top_k: list[NonNegInt] = [16, 64, 0]  # 0 = off (the whole vocabulary)
    top_p: list[Annotated[float, Field(gt=0.0, le=1.0)]] = [0.7, 0.8, 0.9]

    @model_validator(mode="after")
    def _has_untruncated(self) -> SamplingParams:
        if 0 not in self.top_k:
            raise ValueError("top_k: the grid must hold 0 (untruncated, the shared baseline row)")
        return self


class FlowParams(Section):
    """The Prefect flow (pipeline/flow.py): how stages are scheduled, never what they compute."""

    max_parallel: PosInt = 2  # stages run at once (dvc repro alone: 1)
    retries: Annotated[int, Field(ge=0)] = 0  # re-runs of a failed stage before it counts as failed
    retry_delay_s: Annotated[float, Field(ge=0)] = 10.0
    runner: Literal["threads", "dask"] = "threads"  # where tasks run: threads of the flow, or Dask
    dask_address: str | None = None  # a Dask scheduler (tcp://host:8786); None = a local cluster


class EvalNetParams(Section):
    """The offline evaluation classifier (digit.metrics.evalnet) behind FID/IS by default."""

    width: PosInt = 16
    feat_dim: PosInt = 128
    epochs: PosInt = 8
    batch_size: PosInt = 128
    lr: PosFloat = 3e-3


class EvaluateParams(Section):
    extractor: Literal[tuple(EXTRACTORS)] = "evalnet"  # type: ignore[valid-type]
    inception_weights: str | None = None  # inception-v3-compat: local weights file
    batch_size: PosInt = 250
    kid_subset_size: PosInt = 1000
    isc_splits: PosInt = 10
    prc: bool = True

    @model_validator(mode="after")
    def _weights(self) -> EvaluateParams:
        if self.extractor == "inception-v3-compat" and not self.inception_weights:
            raise ValueError(
                "inception_weights: extractor 'inception-v3-compat' needs a local weights file "
                "(torch-fidelity's pt_inception-2015-12-05 .pth); nothing is downloaded at run time"
            )
        return self


class ToyParams(Section):
    n_train_per_class: PosInt = 500
    n_test_per_class: PosInt = 20000
    noise_stds: list[NonNeg] = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
    angle_deg: Annotated[float, Field(ge=0, le=90)] = 45.0  # the figure's geometry
    # The claim depends on the geometry: the tilt of the classes' variance from the separating axis.
    sweep_angles_deg: list[Annotated[float, Field(ge=0, le=90)]] = [0, 10, 20, 30, 45, 60, 75, 90]


class StabilityParams(Section):
    """Table 1: perturbations of the val images (SNRs of the paper + two outside any augmentation)."""

    snr_db: list[float] = [30, 25, 20, 15, 10, 5, 1, 0.01]
    salt_pepper: list[Prob] = [0.02, 0.05, 0.1]  # fraction of pixels set to 0 or 1
    shift_px: list[PosInt] = [1, 2]  # horizontal translation
    max_images: PosInt = 500


class ProbeParams(Section):
    """The linear probe (the paper: SGD momentum 0.9, lr 0.4, cosine, ~80 epochs)."""

    epochs: PosInt = 80
    lr: PosFloat = 0.4
    weight_decay: NonNeg = 0.0
    batch_size: PosInt = 256
    # Share of the train split held out to choose the best layer (never the val split).
    select_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2


class Params(Section):
    seed: int
    # The seed axis (pipeline/sets.py): the models behind claims 2-4 run once per entry; `seed` is
    # the main one, which everything else uses, and must be among them.
    seeds: Annotated[list[NonNegInt], Field(min_length=1)] = [0, 1, 2, 3, 4, 5, 6, 7]
    sample_seeds: Annotated[list[NonNegInt], Field(min_length=1)] = [0, 1, 2]
    device: str = "auto"
    data: DataParams
    encoder: EncoderParams
    ssl: SSLParams
    extract: ExtractParams
    kmeans: KMeansParams
    tokenize: TokenizeParams
    encoder_eval: EncoderEvalParams
    vq: VQParams
    ar: ARParams
    renderer: RendererParams
    path: PathParams = Field(default_factory=PathParams)
    encoders_model: EncodersModelParams = Field(default_factory=EncodersModelParams)
    generate: GenerateParams
    evalnet: EvalNetParams = Field(default_factory=EvalNetParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    probe: ProbeParams = Field(default_factory=ProbeParams)
    stability: StabilityParams = Field(default_factory=StabilityParams)
    toy: ToyParams = Field(default_factory=ToyParams)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    flow: FlowParams = Field(default_factory=FlowParams)
    # The encoder axis (Fig. 4a): key -> another encoder, each through ssl / extract / K-Means at
    # main_k / tokens / token model / renderer / samples / probe (stage@key), trained once (seed).
    encoders: dict[str, EncoderRow]  # {} plans no encoder-axis stage
    # More VQ tokenizers (Table 1, Table 2, claim 6): key -> vq's recipe with the row's changes,
    # each through its own token model / probe / samples / stability (stage@key), main seed.
    vq_rows: dict[str, VQRow]  # {} plans no VQ row

    def for_vq_row(self, key: str | None) -> Params:
        """These params with the VQ autoencoder of row ``key`` of ``vq_rows`` (None: ``vq``)."""
        if key is None:
            return self
        if key not in self.vq_rows:
            raise ValueError(f"vq_rows: no row {key!r} (rows: {', '.join(self.vq_rows) or 'none'})")
        return self.model_copy(update={"vq": self.vq_rows[key].apply(self.vq)})

    def for_encoder(self, key: str | None) -> Params:
        """These params with the encoder of row ``key`` of ``encoders`` (None: the main one)."""
        if key is None:
            return self
        if key not in self.encoders:
            raise ValueError(f"encoders: no row {key!r} (rows: {', '.join(self.encoders)})")
        encoder, ssl = self.encoders[key].apply(self.encoder, self.ssl)
        return self.model_copy(update={"encoder": encoder, "ssl": ssl})

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        if self.seed not in self.seeds or len(set(self.seeds)) < len(self.seeds):
            raise ValueError(
                f"seeds: expected distinct seeds that include seed={self.seed}, got {self.seeds}"
            )
        sample = self.sample_seeds
        if (
            self.seed not in sample
            or len(set(sample)) < len(sample)
            or set(sample) - set(self.seeds)
        ):
            raise ValueError(
                f"sample_seeds: expected distinct seeds out of seeds {self.seeds} that include "
                f"seed={self.seed}, got {sample}"
            )
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device: expected auto, cpu, cuda or cuda:N (got {self.device!r})")
        self._encoder_checks("encoder.")
        for key in self.vq_rows:
            if not ENCODER_KEY.match(key) or key in VQ_ROW_RESERVED or re.fullmatch(r"s\d+", key):
                raise ValueError(
                    f"vq_rows.{key}: a row key is lower-case letters and digits, not one of "
                    f"{sorted(VQ_ROW_RESERVED)} or s<number> (its files are vq_<key>)"
                )
        for key in self.encoders:
            if not ENCODER_KEY.match(key) or key in RESERVED_KEYS or re.fullmatch(r"k\d+", key):
                raise ValueError(
                    f"encoders.{key}: a row key is lower-case letters and digits, not one of "
                    f"{sorted(RESERVED_KEYS)} or k<number> (it names the row's stages and files)"
                )
            try:
                self.for_encoder(key)._encoder_checks(f"encoders.{key}.")
            except ValidationError as err:  # the row's fields, merged onto `encoder`
                msg = err.errors()[0]["msg"].removeprefix("Value error, ")
                raise ValueError(f"encoders.{key}.{msg}") from None
            except RowError as err:
                raise ValueError(f"encoders.{key}.{err}") from None
        return self

    def _encoder_checks(self, where: str) -> Params:
        """The encoder against the data and the DAG (``where``: the params key it came from)."""
        if self.encoder.frozen and not self.encoder.weights:
            raise ValueError(
                f"{where}weights: encoder {self.encoder.name!r} needs a local weights file "
                "(.pth or .safetensors); nothing is downloaded at run time"
            )
        size = self.encoder.input_size or self.data.image_size
        patch = ENCODER_PATCH.get(self.encoder.name)
        if patch is None:  # a timm backbone: its grid is its architecture's (the vq stage checks)
            return self
        if size % patch:
            raise ValueError(
                f"{where}input_size: {size} px is not divisible by the patch size {patch} "
                f"of encoder {self.encoder.name!r}"
            )
        if problem := vq_grid_problem(self.data.image_size, size // patch):
            raise ValueError(problem)
        n = FIXED_SIZES.get(self.data.dataset)
        if n is not None:
            n = min(n, self.data.max_images or n)
            n_vectors = int(n * (1 - self.data.val_fraction)) * (size // patch) ** 2
            too_big = [k for k in self.kmeans.ks if k > n_vectors]
            if too_big:
                raise ValueError(
                    f"kmeans.ks: K={too_big[0]} exceeds the ~{n_vectors} train feature vectors"
                )
        return self


def _section_keys(cls: type | None = None, prefix: str = "") -> dict[type, str]:
    """Section class -> its params key (``RendererCausalSampling`` -> ``generate.renderer_causal``; a row
    of a dict section -> ``encoders.*``); a class at several keys maps to their common parent."""
    cls = cls or Params
    found: dict[type, str] = {cls: prefix}
    for name, info in cls.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        ann = info.annotation
        if getattr(ann, "__origin__", None) is dict:
            ann, key = ann.__args__[1], f"{key}.*"
        if not (isinstance(ann, type) and issubclass(ann, Section)):
            continue
        for sub, sub_key in _section_keys(ann, key).items():
            if sub in found and found[sub] != sub_key:
                pairs = zip(found[sub].split("."), sub_key.split("."), strict=False)
                sub_key = ".".join(a for a, _ in itertools.takewhile(lambda p: p[0] == p[1], pairs))
            found[sub] = sub_key
    return found


def start_recording() -> None:
    """Record the params fields read from now on (``recorded_keys`` returns them)."""
    global _reads
    _reads = set()


def stop_recording() -> None:
    global _reads
    _reads = None


def unrecorded_dump(params: Params) -> dict[str, Any]:
    """``params.model_dump(mode="json")`` that does not count as reading every key."""
    global _reads
    saved, _reads = _reads, None
    try:
        return params.model_dump(mode="json")
    finally:
        _reads = saved


def recorded_keys() -> set[str]:
    """The params keys read since ``start_recording`` (``ar.steps``; ``vq`` for a whole dump)."""
    keys = _section_keys()
    out = set()
    for cls, name in _reads or ():
        base = keys.get(cls, "")
        key = base if name == "*" else (f"{base}.{name}" if base else name)
        if key:
            out.add(key)
    return out


def vq_grid_problem(image_size: int, grid: int) -> str | None:
    """The VQ autoencoder downsamples by a power of two to the encoder's token grid."""
    downsample = image_size // grid
    if image_size % grid or downsample & (downsample - 1):
        return (
            f"data.image_size: the VQ autoencoder needs {image_size} px = {grid} tokens (the "
            "encoder's grid) x a power of two"
        )
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description="Validate params.yaml or apply a preset to it.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="validate params.yaml")
    ap = sub.add_parser("apply", help="deep-merge a preset onto params.yaml")
    ap.add_argument("preset")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    # Run as `python -m pipeline.params`, this file is __main__: the error class the checks raise
    # is the one of the imported module.
    from pipeline.checks import load
    from pipeline.params import ParamsError as FileError
    from pipeline.presets import apply_preset

    try:
        if args.cmd == "check":
            load(args.params)
            print(f"{args.params}: ok")
        else:
            apply_preset(args.preset, args.params)
            print(f"{args.params}: preset {args.preset} applied")
    except FileError as err:
        sys.exit(str(err))


if __name__ == "__main__":
    main()
