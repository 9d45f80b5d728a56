"""The names of what the DAG makes, defined once: the generated sample sets as a function of the
K list and the main K, and the stems of the metrics files (``metrics/<stem>.json``) the stages
write.

A sample set ``<name>`` is ``samples/<name>.zarr``, ``reports/figures/samples_<name>.png``,
``metrics/generate_<name>.json`` (its generate stage) and ``metrics/scores_<name>.json`` (its FID / IS
/ KID). dvc.yaml spells the same names in its templates; tests/test_sets.py resolves dvc.yaml
through DVC and checks that its stages write exactly these sets and read the token models and
renderers named here. The report (pipeline/report/) builds no name of its own.

The seed axis: the models behind the generation and probe claims -- the unconditional token models
over discriminative tokens (every K) and over VQ tokens, and their probes -- are trained once per
entry of ``seeds``; the causal renderers of every K and the sets sampled from the token models once
per entry of ``sample_seeds``, a part of ``seeds`` (``seed_axis``): a sample set costs a renderer
as well, and the probes need more seeds than FID does to resolve a difference of K. Their files
carry ``_s<seed>`` (``models/ar_k256_s1.pt``, ``metrics/scores_digit_k256_causal_s1.json``);
``sample_sets`` names the sets without it, as the report reads them (pipeline/report/metrics.py
gathers the seeds of a name), and ``dag_sets`` lists the files the DAG writes. The variants
(class-conditional, MaskGIT, the encoder axis) run once, from the models of the main ``seed``.

The encoder axis (params ``encoders``, Fig. 4a): each row key names its own branch at the main K --
``models/encoder_<key>.pt``, ``tokens/<key>_k<K>.zarr``, the token model ``<key>``, the renderer
``<key>_causal``, the sample set ``<key>_k<K>_untruncated`` and the probe ``probe_<key>``. A row of ``vq_rows``
(more VQ tokenizers) is ``vq_<key>`` throughout: ``models/vq_<key>.pt``, ``tokens/vq_<key>.zarr``,
the token model ``vq_<key>``, the set ``vq_<key>_untruncated`` (``vq_row``, ``vq_row_set``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

SEED_SUFFIX = re.compile(r"^(?P<name>.+)_s(?P<seed>\d+)$")


def seeded(name: str, seed: int) -> str:
    """The file stem of ``name`` trained / sampled with ``seed``."""
    return f"{name}_s{seed}"


def seed_of(stem: str) -> tuple[str, int | None]:
    """(name, seed) of a file stem; seed None for a stem of the unseeded variants."""
    match = SEED_SUFFIX.match(stem)
    return (match["name"], int(match["seed"])) if match else (stem, None)


# --- token models (metrics/ar_<model>.json, models/ar_<model>.pt) and their probes ------------------

VQ_MODEL = "vq"  # the AR model over VQ tokens, unconditional
# ... trained path.steps_factor x as long: the VQ side given DiGIT's training compute (its token
# model + renderer), the "+ longer training" row beside DiGIT's; along ``sample_seeds``.
VQ_LONG_MODEL = "vq_long"
VQ_COND_MODEL = "vq_cond"  # ... class-conditional
# The AR model over the K-Means tokens (main K) of encoder-axis row <key> is named <key> itself.


def disc_model(k: int, conditional: bool = False) -> str:
    """The AR model over the discriminative (SimCLR + K-Means) tokens of cluster count ``k``."""
    return f"k{k}_cond" if conditional else f"k{k}"


PATH_STEPS = ("long", "large")  # Fig. 3(a) after the tokenizer swap: + longer training, + larger
PATH_LONG_LABEL = "+ longer training"


def path_model(k: int, step: str) -> str:
    """The main-K token model of a Fig. 3(a) path step (``PATH_STEPS``)."""
    return f"k{k}_{step}"


def path_set(k: int, step: str) -> str:
    return f"digit_k{k}_{step}_causal"


def renderer_name(tokens: str, k: int, kind: Literal["causal", "maskgit"]) -> str:
    """A renderer (metrics/renderer_<name>.json): ``tokens`` is disc (the main encoder's at ``k``)
    or the key of an encoder-axis row (its tokens at the main K)."""
    return f"k{k}_{kind}" if tokens == "disc" else f"{tokens}_{kind}"


# --- metrics file stems -------------------------------------------------------------------------

SAMPLE_SIDE = ("renderer_", "generate_", "scores_")  # stems of renderers and sample sets


def seed_axis(name: str) -> str:
    """The params key whose seeds a seeded metrics ``name`` (stem without ``_s<seed>``) is written
    for: renderers, sample sets and the VQ control trained for them (``VQ_LONG_MODEL``) along
    ``sample_seeds``, token models and probes along ``seeds``."""
    sample_side = name.startswith(SAMPLE_SIDE) or name == ar(VQ_LONG_MODEL)
    return "sample_seeds" if sample_side else "seeds"


PREPARE = "prepare"
SSL = "ssl"  # the main (SimCLR) encoder's training
ENCODER = "encoder"  # the main encoder's k-NN evaluation
VQ = "vq"  # the VQ autoencoder, one per entry of ``seeds`` (vq_s<seed>)
EVALNET = "evalnet"


# --- the sampling search: each side of the generation comparison, searched alike -----------------

SIDES = ("digit", "vq", "vq_long")  # DiGIT at the main K; the VQ baseline; ... at DiGIT's compute
HOWS = ("untruncated", "selected")  # every sampling step untruncated | at the side's searched best


def side_models(side: str, main_k: int) -> tuple[str, str | None]:
    """(token model, renderer or None) of a side of the comparison (``SIDES``)."""
    if side == "digit":
        return disc_model(main_k), renderer_name("disc", main_k, "causal")
    return {"vq": VQ_MODEL, "vq_long": VQ_LONG_MODEL}[side], None


def side_set(side: str, how: str, main_k: int) -> str:
    """The sample set of a side sampled ``how`` (``HOWS``)."""
    return f"digit_k{main_k}_{how}" if side == "digit" else f"{side}_{how}"


TOY = "toy"


# --- the stems of files named after what they hold: prefix + name ------------------------------


def _stem(prefix: str) -> Callable[[str | int], str]:
    return lambda name: f"{prefix}{name}"


ar = _stem("ar_")  # a token model: ar(disc_model(256)) -> ar_k256
renderer = _stem("renderer_")  # a renderer (``renderer_name``)
probe = _stem("probe_")  # a token model's linear probes
generate = _stem("generate_")  # a sample set's generation run (settings, counts)
scores = _stem("scores_")  # a sample set's evaluation: FID / IS / KID / precision / recall
stability = _stem("stability_")  # Table 1's measurements of a tokenizer (``tokenizer_rows``)
sampling = _stem("sampling_")  # a side's sampling search: each setting's FID on train images
kmeans = _stem("kmeans_k")  # K-Means at cluster count k (main encoder)
tokens = _stem("tokens_k")  # the token evaluation of the main encoder's tokens at k
ssl_of = _stem("ssl_")  # the training (or check) of encoder-axis row ``key``
encoder_of = _stem("encoder_")  # ... its k-NN / probe evaluation
kmeans_of = _stem("kmeans_")  # ... its K-Means at the main K
# Row ``key`` of ``vq_rows`` (main seed): its autoencoder, tokens, token model and Table 1 entry
# are vq_<key> (models/vq_<key>.pt, ar_vq_<key>, probe_vq_<key>, stability_vq_<key>).
vq_row = _stem("vq_")


def probe_models(ks: list[int], encoders: list[str], vq_rows: list[str]) -> list[str]:
    """Every token model the DAG probes (Table 2, Fig. 3(b), Fig. 4a), in table order."""
    return [disc_model(k) for k in ks] + [VQ_MODEL, *map(vq_row, vq_rows), *encoders]


def seeded_models(ks: list[int]) -> set[str]:
    """The token models and renderers trained once per seed (module doc)."""
    return {
        *(disc_model(k) for k in ks),
        VQ_MODEL,
        VQ_LONG_MODEL,
        *(renderer_name("disc", k, "causal") for k in ks),
    }


def model_stem(model: str, seed: int, per_seed: set[str]) -> str:
    """A model's file stem for ``seed``: seeded if it is trained per seed (``seeded_models``)."""
    return seeded(model, seed) if model in per_seed else model


def dag_probed_models(
    ks: list[int], seeds: list[int], encoders: list[str], vq_rows: list[str]
) -> list[str]:
    """The stems of the token models the DAG probes: the seeded ones once per entry of ``seeds``."""
    per_seed = seeded_models(ks)
    return [
        seeded(m, s) if m in per_seed else m
        for m in probe_models(ks, encoders, vq_rows)
        for s in (seeds if m in per_seed else [None])
    ]


def dag_probes(
    ks: list[int], seeds: list[int], encoders: list[str], vq_rows: list[str]
) -> list[str]:
    """The probe metrics stems the DAG writes."""
    return [probe(m) for m in dag_probed_models(ks, seeds, encoders, vq_rows)]


# --- sample sets --------------------------------------------------------------------------------

Source = Literal["sample", "gt", "recon"]
Tokens = str  # "disc" (the main encoder's K-Means tokens), "vq", an encoder row's key or vq_<row>
GenTable = Literal["table3_unconditional", "table4_conditional"]


@dataclass(frozen=True)
class SampleSet:
    name: str
    label: str  # its row label in the generation table
    source: Source  # sample: a token model samples | gt: val tokens | recon: VQ reconstructions
    tokens: Tokens  # the first-stage tokens: discriminative, an encoder row's K-Means, or VQ
    k: int | None  # K-Means cluster count of those tokens (None: VQ tokens)
    token_model: str | None  # ar_<token_model>; None: nothing sampled (gt, recon)
    renderer: str | None  # renderer_<renderer>; None: VQ tokens go straight to the VQ decoder
    conditional: bool
    table: GenTable | None  # the generation table that shows it (None: only the ablations)
    seeded: bool = False  # one set per seed (module doc); else sampled from the main seed's models
    # How every sampling step samples: as params' generate section says, untruncated, or at the
    # setting the sampling search selected for the set's side (``SIDES``).
    how: Literal["params", "untruncated", "selected"] = "params"

    @property
    def metrics(self) -> str:
        return scores(self.name)

    def for_seed(self, seed: int, per_seed: set[str]) -> SampleSet:
        """The set as the DAG writes it for ``seed``: its own name and its models' file stems
        carry the seed where they are trained per seed (``per_seed``, from seeded_models)."""

        def model(m: str | None) -> str | None:
            return None if m is None else model_stem(m, seed, per_seed)

        return dataclasses.replace(
            self,
            name=seeded(self.name, seed) if self.seeded else self.name,
            token_model=model(self.token_model),
            renderer=model(self.renderer),
        )


def vq_set(conditional: bool = False, how: str = "untruncated") -> str:
    """The VQ baseline's set: class-conditional (sampled as params say), or unconditional
    sampled ``how`` (``HOWS``)."""
    return "vq_cond" if conditional else side_set("vq", how, 0)


VQ_RECON_SET = "vq_recon"


def digit_set(
    k: int, kind: Literal["causal", "maskgit"] = "causal", conditional: bool = False
) -> str:
    return f"digit_k{k}_cond_{kind}" if conditional else f"digit_k{k}_{kind}"


def untruncated_set(k: int) -> str:
    """DiGIT with every sampling step untruncated (generate --variant untruncated)."""
    return side_set("digit", "untruncated", k)


def gt_set(k: int, kind: Literal["causal", "maskgit"]) -> str:
    return f"gt_k{k}_{kind}"


def encoder_set(key: str, k: int) -> str:
    """The samples of encoder-axis row ``key`` (its tokens at the main K ``k``), untruncated at
    every sampling step like every row it is compared with."""
    return f"{key}_k{k}_untruncated"


def vq_row_set(key: str) -> str:
    """The samples of VQ row ``key``, untruncated, decoded by its own decoder."""
    return f"{vq_row(key)}_untruncated"


# --- tokenizers: the rows of every comparison of tokenizers (Table 1, claim 6) -------------------


@dataclass(frozen=True)
class TokenizerRow:
    name: str  # its Table 1 file: stability_<name>
    family: Literal["kmeans", "row", "vq"]  # main encoder + K-Means | an `encoders` row | VQ
    probe_model: str  # probe_<probe_model>
    sample_set: str  # untruncated at every sampling step: the matched sampling of every row
    k: int | None


def tokenizer_rows(
    ks: list[int], main_k: int, encoders: list[str], vq_rows: list[str]
) -> list[TokenizerRow]:
    """Every tokenizer the run builds, in table order: the main encoder's K-Means at each K, each
    row of ``encoders`` (at the main K), the VQ autoencoder and each row of ``vq_rows``."""
    return [
        *(TokenizerRow(f"k{k}", "kmeans", disc_model(k), untruncated_set(k), k) for k in ks),
        *(TokenizerRow(key, "row", key, encoder_set(key, main_k), main_k) for key in encoders),
        TokenizerRow(VQ_MODEL, "vq", VQ_MODEL, vq_set(), None),
        *(TokenizerRow(vq_row(key), "vq", vq_row(key), vq_row_set(key), None) for key in vq_rows),
    ]


def sample_sets(
    ks: list[int], main_k: int, encoders: list[str], vq_rows: list[str]
) -> dict[str, SampleSet]:
    """Every sample set the DAG generates and evaluates, by name. The order is the generation
    tables' row order: Table 3's rows, then Table 4's, then the sets only the ablations show."""
    m = main_k
    t3: GenTable = "table3_unconditional"
    t4: GenTable = "table4_conditional"

    def digit(k: int, kind: Literal["causal", "maskgit"], cond: bool, label: str) -> SampleSet:
        return SampleSet(
            name=digit_set(k, kind, cond),
            label=label,
            source="sample",
            tokens="disc",
            k=k,
            token_model=disc_model(k, cond),
            renderer=renderer_name("disc", k, kind),
            conditional=cond,
            table=(t4 if cond else t3) if k == m else None,
            seeded=kind == "causal" and not cond,
        )

    def vq(cond: bool, label: str) -> SampleSet:
        return SampleSet(
            name=vq_set(cond),
            label=label,
            source="sample",
            tokens="vq",
            k=None,
            token_model=VQ_COND_MODEL if cond else VQ_MODEL,
            renderer=None,
            conditional=cond,
            table=t4 if cond else t3,
            seeded=not cond,
        )

    def gt(kind: Literal["causal", "maskgit"], label: str) -> SampleSet:
        return SampleSet(
            name=gt_set(m, kind),
            label=f"upper bound: ground-truth DiGIT tokens + renderer ({label})",
            source="gt",
            tokens="disc",
            k=m,
            token_model=None,
            renderer=renderer_name("disc", m, kind),
            conditional=False,
            table=t3,
        )

    def main_k_once(name: str, label: str, token_model: str, table: GenTable | None) -> SampleSet:
        """An unconditional main-K DiGIT set through the causal renderer, sampled once."""
        return SampleSet(
            name=name,
            label=label,
            source="sample",
            tokens="disc",
            k=m,
            token_model=token_model,
            renderer=renderer_name("disc", m, "causal"),
            conditional=False,
            table=table,
        )

    def side(side: str, how: Literal["untruncated", "selected"], label: str) -> SampleSet:
        """A side of the fair comparison (``SIDES``), every sampling step sampled ``how``."""
        token_model, renderer = side_models(side, m)
        return SampleSet(
            name=side_set(side, how, m),
            label=f"{label}, {'untruncated' if how == 'untruncated' else 'searched sampling'}",
            source="sample",
            tokens="disc" if side == "digit" else "vq",
            k=m if side == "digit" else None,
            token_model=token_model,
            renderer=renderer,
            conditional=False,
            table=t3,
            seeded=True,
            how=how,
        )

    side_labels = {
        "vq": "AR over VQ tokens",
        "vq_long": f"AR over VQ tokens, {PATH_LONG_LABEL} (DiGIT's training compute)",
        "digit": f"DiGIT (+VQ AR renderer), K={m}",
    }

    def untruncated(k: int) -> SampleSet:
        """DiGIT at a K other than the main one, untruncated at every step (the K ablation)."""
        return SampleSet(
            name=untruncated_set(k),
            label=f"DiGIT (+VQ AR renderer), K={k}, untruncated",
            source="sample",
            tokens="disc",
            k=k,
            token_model=disc_model(k),
            renderer=renderer_name("disc", k, "causal"),
            conditional=False,
            table=None,
            seeded=True,
            how="untruncated",
        )

    sets = [
        *(side(x, how, side_labels[x]) for x in ("vq", "vq_long", "digit") for how in HOWS),
        *(untruncated(k) for k in ks if k != m),
        *(
            digit(k, "causal", False, f"DiGIT (+VQ AR renderer), K={k}, the paper's sampling")
            for k in ks
        ),
        digit(m, "maskgit", False, f"DiGIT (+MaskGIT renderer), K={m}"),
        gt("causal", "AR"),
        gt("maskgit", "MaskGIT"),
        SampleSet(
            name=VQ_RECON_SET,
            label="upper bound: VQ reconstruction only",
            source="recon",
            tokens="vq",
            k=None,
            token_model=None,
            renderer=None,
            conditional=False,
            table=t3,
        ),
        vq(True, "AR over VQ tokens, class-conditional"),
        digit(m, "causal", True, f"DiGIT (+VQ AR renderer), K={m}, class-conditional"),
        digit(m, "maskgit", True, f"DiGIT (+MaskGIT renderer), K={m}, class-conditional"),
        *(
            main_k_once(path_set(m, step), f"DiGIT K={m}, {what}", path_model(m, step), None)
            for step, what in zip(
                PATH_STEPS, ("+ longer training", "+ longer training + larger model"), strict=True
            )
        ),
        *(
            SampleSet(
                name=encoder_set(key, m),
                label=f"DiGIT over the tokens of encoder {key!r} (+VQ AR renderer), K={m}, "
                "untruncated",
                source="sample",
                tokens=key,
                k=m,
                token_model=key,
                renderer=renderer_name(key, m, "causal"),
                conditional=False,
                table=None,
                how="untruncated",
            )
            for key in encoders
        ),
        *(
            SampleSet(
                name=vq_row_set(key),
                label=f"AR over the codes of VQ row {key!r}, untruncated",
                source="sample",
                tokens=vq_row(key),
                k=None,
                token_model=vq_row(key),
                renderer=None,
                conditional=False,
                table=None,
                how="untruncated",
            )
            for key in vq_rows
        ),
    ]
    return {s.name: s for s in sets}


def dag_sets(
    ks: list[int],
    main_k: int,
    encoders: list[str],
    vq_rows: list[str],
    sample_seeds: list[int],
    main_seed: int,
) -> dict[str, SampleSet]:
    """Every set the DAG writes, by file name: the seeded sets once per sample seed, the others
    once from the main seed's models."""
    per_seed = seeded_models(ks)
    out = {}
    for s in sample_sets(ks, main_k, encoders, vq_rows).values():
        for seed in sample_seeds if s.seeded else [main_seed]:
            c = s.for_seed(seed, per_seed)
            out[c.name] = c
    return out
