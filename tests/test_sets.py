"""pipeline/sets.py is the definition of the generated sets and metrics file names; dvc.yaml, as
DVC resolves it for params.yaml, must write exactly those files and build each set from the token
model and renderer the definition names."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import sets
from pipeline.checks import load
from pipeline.sets import dag_sets, sample_sets

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load(ROOT / "params.yaml")
KS, MAIN_K = PARAMS.kmeans.ks, PARAMS.kmeans.main_k
SEEDS, SAMPLE_SEEDS, MAIN_SEED = PARAMS.seeds, PARAMS.sample_seeds, PARAMS.seed
ENCODERS, VQ_ROWS = list(PARAMS.encoders), list(PARAMS.vq_rows)
SETS = dag_sets(KS, MAIN_K, ENCODERS, VQ_ROWS, SAMPLE_SEEDS, MAIN_SEED)


@dataclass(frozen=True)
class Stage:
    name: str
    deps: frozenset[str]
    outs: frozenset[str]  # outs, metrics and plots


@pytest.fixture(scope="module")
def dag() -> list[Stage]:
    from dvc.repo import Repo

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with Repo(str(ROOT)) as repo:
        return [
            Stage(
                st.addressing,
                frozenset(d.def_path for d in st.deps),
                frozenset(o.def_path for o in st.outs),
            )
            for st in repo.index.stages
        ]


def written(dag: list[Stage], pattern: str, stage_prefix: str = "") -> set[str]:
    return {
        o
        for st in dag
        if st.name.startswith(stage_prefix)
        for o in st.outs
        if re.fullmatch(pattern, o)
    }


def test_the_sample_sets_are_scored_exactly_once(dag):
    expected = {f"metrics/scores_{s}.json" for s in SETS}
    assert written(dag, r"metrics/scores_.*\.json") == expected  # by the stage that generates each


def test_each_stage_writes_its_timings_under_its_own_name(dag):
    """One spelling: stage ar@256-0 writes timings/ar@256-0.json, as DVC names the stage."""
    for st in dag:
        name = st.name.split(":")[-1]
        assert f"timings/{name}.json" in st.outs, st.name


def test_each_set_is_made_from_the_models_its_definition_names(dag):
    made = {o: st for st in dag for o in st.outs}
    for s in SETS.values():
        st = made.get(f"samples/{s.name}.zarr")
        assert st, f"{s.name}: no stage of dvc.yaml writes samples/{s.name}.zarr"
        assert f"reports/figures/samples_{s.name}.png" in st.outs, st.name
        assert f"metrics/{sets.generate(s.name)}.json" in st.outs, st.name
        assert f"metrics/{s.metrics}.json" in st.outs, st.name  # scored where it is generated
        assert "models/evalnet.pt" in st.deps, st.name
        row_vqs = tuple(f"models/{sets.vq_row(key)}.pt" for key in VQ_ROWS)
        decoders = {d for d in st.deps if d.startswith(("models/vq_s", *row_vqs))}
        seed = sets.seed_of(s.name)[1]
        rows = {sets.vq_row(key) for key in VQ_ROWS}
        own = s.tokens if s.tokens in rows else f"vq_s{MAIN_SEED if seed is None else seed}"
        assert decoders == {f"models/{own}.pt"}, st.name  # the codes' own VQ decodes them
        shared = {*decoders, "models/evalnet.pt"}
        models = {d for d in st.deps if d.startswith("models/") and d not in shared}
        expected = set()
        if s.token_model:
            expected.add(f"models/ar_{s.token_model}.pt")
        if s.renderer:
            expected.add(f"models/renderer_{s.renderer}.pt")
        assert models == expected, f"{st.name} ({s.name})"
    assert {s.table for s in SETS.values()} == {
        "table3_unconditional",
        "table4_conditional",
        None,
    }


def test_every_metrics_file_of_the_dag_is_named_in_sets(dag):
    """The DAG's metrics/*.json are exactly the stems pipeline/sets.py names."""
    token_models = {s.token_model for s in SETS.values() if s.token_model}
    renderers = {s.renderer for s in SETS.values() if s.renderer}
    stems = {
        sets.PREPARE,
        sets.SSL,
        sets.ENCODER,
        *(f(key) for key in ENCODERS for f in (sets.ssl_of, sets.encoder_of, sets.kmeans_of)),
        *(sets.seeded(sets.VQ, s) for s in SEEDS),  # the tokenizers: one per seed
        *map(sets.vq_row, VQ_ROWS),
        sets.EVALNET,
        *(sets.stability(t.name) for t in sets.tokenizer_rows(KS, MAIN_K, ENCODERS, VQ_ROWS)),
        *(sets.sampling(side) for side in sets.SIDES),
        sets.TOY,
        *(sets.seeded(sets.kmeans(k), s) for k in KS for s in SEEDS),
        *(sets.tokens(k) for k in KS),
        *(sets.ar(m) for m in token_models),
        *(sets.ar(m) for m in sets.dag_probed_models(KS, SEEDS, ENCODERS, VQ_ROWS)),
        *(sets.renderer(r) for r in renderers),
        *sets.dag_probes(KS, SEEDS, ENCODERS, VQ_ROWS),
        *(sets.generate(s) for s in SETS),
        *(sets.scores(s) for s in SETS),
    }
    assert written(dag, r"metrics/[^/]+\.json") == {f"metrics/{s}.json" for s in stems}


def test_sets_follow_the_k_list():
    got = sample_sets([8, 16], 16, ["mae"], ["noise"])
    assert list(got) == [
        "vq_untruncated",
        "vq_selected",
        "vq_long_untruncated",
        "vq_long_selected",
        "digit_k16_untruncated",
        "digit_k16_selected",
        "digit_k8_untruncated",
        "digit_k8_causal",
        "digit_k16_causal",
        "digit_k16_maskgit",
        "gt_k16_causal",
        "gt_k16_maskgit",
        "vq_recon",
        "vq_cond",
        "digit_k16_cond_causal",
        "digit_k16_cond_maskgit",
        "digit_k16_long_causal",
        "digit_k16_large_causal",
        "mae_k16_untruncated",
        "vq_noise_untruncated",
    ]
    tables = {n: s.table for n, s in got.items() if s.table}
    assert [n for n, t in tables.items() if t == "table4_conditional"] == [
        "vq_cond",
        "digit_k16_cond_causal",
        "digit_k16_cond_maskgit",
    ]
    assert "digit_k8_causal" not in tables and "mae_k16_untruncated" not in tables


def test_seeded_sets_expand_per_seed_and_variants_use_the_main_seed():
    got = dag_sets([8, 16], 16, ["mae"], ["noise"], [3, 5], 5)
    assert {
        "vq_untruncated_s3",
        "vq_selected_s5",
        "digit_k8_causal_s3",
        "digit_k16_causal_s5",
    } <= set(got)
    assert "vq_untruncated" not in got and "digit_k16_causal" not in got
    # the fair comparison's sets: every side sampled both ways on every sample seed
    assert got["digit_k16_selected_s3"].how == "selected"
    assert got["digit_k16_selected_s3"].renderer == "k16_causal_s3"
    assert got["vq_long_untruncated_s5"].token_model == "vq_long_s5"
    assert got["digit_k8_causal_s3"].token_model == "k8_s3"
    assert got["digit_k8_causal_s3"].renderer == "k8_causal_s3"
    assert got["digit_k16_maskgit"].token_model == "k16_s5"  # the main seed's token model
    assert got["digit_k16_cond_causal"].renderer == "k16_causal_s5"
    assert got["gt_k16_causal"].renderer == "k16_causal_s5"
    assert got["digit_k16_cond_maskgit"].renderer == "k16_maskgit"  # trained once
    assert sets.seed_of("scores_digit_k8_causal_s3") == ("scores_digit_k8_causal", 3)
    assert sets.seed_of("scores_vq_cond") == ("scores_vq_cond", None)


def test_the_encoder_axis_names_a_branch_per_row():
    got = sample_sets([8, 16], 16, ["mae", "dino"], [])
    assert [n for n in got if n.endswith(("mae_k16_untruncated", "dino_k16_untruncated"))] == [
        "mae_k16_untruncated",
        "dino_k16_untruncated",
    ]
    dino = got["dino_k16_untruncated"]
    assert (dino.tokens, dino.token_model, dino.renderer, dino.table) == (
        "dino",
        "dino",
        "dino_causal",
        None,
    )
    assert sets.dag_probes([8], [0], ["dino"], ["noise"]) == [
        "probe_k8_s0",
        "probe_vq_s0",
        "probe_vq_noise",
        "probe_dino",
    ]
    assert "mae_k16_untruncated" not in sample_sets([8, 16], 16, [], [])  # an empty axis: no row


def test_a_vq_row_names_its_own_chain():
    """A row of vq_rows is vq_<key> throughout, decoded by its own autoencoder; none: no set."""
    got = sample_sets([8], 8, [], ["noise", "wide"])
    wide = got["vq_wide_untruncated"]
    assert (wide.tokens, wide.token_model, wide.renderer, wide.how) == (
        "vq_wide",
        "vq_wide",
        None,
        "untruncated",
    )
    rows = sets.tokenizer_rows([8], 8, [], ["noise", "wide"])
    assert [(t.name, t.probe_model, t.sample_set) for t in rows if t.family == "vq"] == [
        ("vq", "vq", "vq_untruncated"),
        ("vq_noise", "vq_noise", "vq_noise_untruncated"),
        ("vq_wide", "vq_wide", "vq_wide_untruncated"),
    ]
    assert not any(n.startswith("vq_noise") for n in sample_sets([8], 8, [], []))
