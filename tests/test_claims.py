"""pipeline/report/claims.py: every outcome of every claim's rule, forced by hand-made metrics.

One test per (claim, verdict) the rule can give; claims 2-4 from per-seed files as the seed axis
writes them, and the premise checks that turn a verdict into "untestable here"."""

import json
from pathlib import Path

import pytest

from pipeline import checks, sets
from pipeline import params as P
from pipeline.report.claims import (
    Verdict,
    claim_generation,
    claim_k,
    claim_probe,
    claim_stability,
    claim_toy,
    gate,
    premises,
)
from pipeline.report.metrics import Metrics, MissingMetrics

ROOT = Path(__file__).resolve().parents[1]
PARAMS = checks.load(ROOT / "params.yaml").model_copy(
    update={
        "kmeans": checks.load(ROOT / "params.yaml").kmeans.model_copy(
            update={"ks": [8, 16, 32], "main_k": 16}
        )
    }
)


@pytest.fixture(scope="module")
def params() -> P.Params:
    params = checks.load(ROOT / "params.yaml")
    kmeans = params.kmeans.model_copy(update={"ks": [8, 16, 32], "main_k": 16})
    return params.model_copy(update={"kmeans": kmeans})


def metrics(**files: dict) -> Metrics:
    return Metrics(Path("metrics"), dict(files))


# ---------------------------------------------------------------- claim 1: stability (Table 1)

GAUSS = [{"kind": "gaussian", "label": f"SNR {s} dB", "value": s} for s in (30, 20, 5)]
OTHER = [{"kind": "salt_pepper", "label": "s&p", "value": 0.05}]


# The tests' names for the tokenizers -> their rows in params (main K 16; `encoders`' nonoise row).
TOKENIZER = {"disc": "k16", "disc_nonoise": "nonoise", "vq": "vq", "vq_noise": "vq_noise"}


def stability(**token_change: list[float]) -> Metrics:
    """One stability file per tokenizer, as the stability stages write them."""
    files = {
        sets.stability(TOKENIZER[name]): {
            "perturbations": GAUSS + OTHER,
            "protocol": "p",
            "describe": name,
            "token_change": tc,
        }
        for name, tc in token_change.items()
    }
    return metrics(**files)


def test_stability_supported_with_every_control():
    v = claim_stability(
        PARAMS,
        stability(
            disc=[0.0, 0.1, 0.2, 0.1],
            disc_nonoise=[0.1, 0.2, 0.3, 0.2],
            vq=[0.2, 0.3, 0.5, 0.4],
            vq_noise=[0.1, 0.2, 0.4, 0.3],
        ),
    )
    assert v.verdict == "supported", v.evidence
    assert "3/3 SNRs" in v.evidence and "fewer changes in 1/1" in v.evidence


def test_stability_not_supported_when_the_main_encoder_loses_one_snr():
    v = claim_stability(PARAMS, stability(disc=[0.0, 0.1, 0.6, 0.1], vq=[0.2, 0.3, 0.5, 0.4]))
    assert v.verdict == "not supported"
    assert "2/3 SNRs" in v.evidence


def test_stability_a_tie_is_not_a_win():
    v = claim_stability(PARAMS, stability(disc=[0.2, 0.3, 0.5, 0.1], vq=[0.2, 0.3, 0.5, 0.4]))
    assert v.verdict == "not supported"


@pytest.mark.parametrize(
    "control",
    [
        # the encoder trained without noise augmentation is no more stable than the VQ
        {"disc_nonoise": [0.3, 0.4, 0.6, 0.2]},
        # a VQ trained with the same noise is as stable as the main encoder
        {"vq_noise": [0.0, 0.05, 0.1, 0.3]},
    ],
    ids=["disc_nonoise_loses", "vq_noise_wins"],
)
def test_stability_partly_supported_when_a_control_fails(control):
    v = claim_stability(
        PARAMS, stability(disc=[0.0, 0.1, 0.2, 0.1], vq=[0.2, 0.3, 0.5, 0.4], **control)
    )
    assert v.verdict == "partly supported", v.evidence


def test_stability_partly_supported_outside_the_augmentation():
    """Fewer changes under Gaussian noise but more under salt-and-pepper: partly."""
    v = claim_stability(PARAMS, stability(disc=[0.0, 0.1, 0.2, 0.5], vq=[0.2, 0.3, 0.5, 0.4]))
    assert v.verdict == "partly supported"


def test_stability_not_tested():
    assert claim_stability(PARAMS, metrics()).verdict == "not tested"
    assert claim_stability(PARAMS, stability(disc=[0.0, 0.1, 0.2, 0.1])).verdict == "not tested"


# ------------------------------------------ claims 2-4: paired over seeds, files as the DAG writes


def seeded(tmp_path, **per_seed: list[dict]) -> Metrics:
    """Metrics.load over files written as the seed axis writes them: ``<name>_s<seed>.json``."""
    for name, records in per_seed.items():
        for seed, record in enumerate(records):
            (tmp_path / f"{sets.seeded(name, seed)}.json").write_text(json.dumps(record))
    return Metrics.load(tmp_path, list(range(len(next(iter(per_seed.values()))))))


def search(tmp_path, side: str, fid: float) -> None:
    """A side's sampling search file that selected a setting scoring ``fid`` on train images."""
    off = {"top_k": 0, "top_p": 1.0}
    selected = {"token_model": off, "renderer": off if side == "digit" else None, "fid": fid}
    (tmp_path / f"{sets.sampling(side)}.json").write_text(json.dumps({"selected": selected}))


def generation(
    tmp_path, params, disc: list[tuple], vq: list[tuple], selected: list[tuple] | None = None
) -> Metrics:
    """disc / vq: per seed (FID, IS), untruncated and (unless ``selected`` gives DiGIT's own)
    searched alike; the VQ baseline is the stronger VQ side (vq_long searched worse)."""
    k = params.kmeans.main_k
    for side, fid in (("digit", 1.0), ("vq", 2.0), ("vq_long", 3.0)):
        search(tmp_path, side, fid)
    rows = {"untruncated": disc, "selected": selected or disc}
    return seeded(
        tmp_path,
        **{
            sets.scores(sets.side_set("digit", how, k)): [
                {"fid": f, "isc_mean": i} for f, i in rows[how]
            ]
            for how in sets.HOWS
        },
        **{
            sets.scores(sets.side_set(side, how, k)): [{"fid": f, "isc_mean": i} for f, i in vq]
            for side in ("vq", "vq_long")
            for how in sets.HOWS
        },
    )


VQ3 = [(10.0, 5.0), (11.0, 5.2), (10.5, 4.9)]


@pytest.mark.parametrize(
    "disc, verdict",
    [
        # every seed's FID 2 lower and IS 1 higher than the same seed's VQ: supported
        ([(8.0, 6.0), (9.0, 6.2), (8.5, 5.9)], "supported"),
        # FID better by a steady 2; IS differences +0.5, -0.6, +0.2 straddle 0: partly
        ([(8.0, 5.5), (9.0, 4.6), (8.5, 5.1)], "partly supported"),
        # FID differences -2, +3, -1 straddle 0, IS steady +1: partly
        ([(12.0, 6.0), (8.0, 6.2), (11.5, 5.9)], "partly supported"),
        # FID worse by a steady 2, IS unresolved: not supported
        ([(12.0, 5.5), (13.0, 4.6), (12.5, 5.1)], "not supported"),
        # both straddle 0: inconclusive
        ([(12.0, 5.5), (8.0, 4.6), (11.5, 5.1)], "inconclusive"),
    ],
)
def test_generation_rule_pairs_seeds(tmp_path, params, disc, verdict):
    v = claim_generation(params, generation(tmp_path, params, disc, VQ3))
    assert v.verdict == verdict, v.evidence
    assert "t-interval, 3 seeds" in v.evidence


def test_generation_pairing_removes_the_seed_to_seed_spread(tmp_path, params):
    """Seed-to-seed spread far larger than the gap (FID 5..25), but every seed's DiGIT is 1 lower
    than the same seed's VQ: paired, that is a clear difference."""
    vq = [(5.0, 5.0), (15.0, 5.0), (25.0, 5.0)]
    disc = [(4.0, 5.5), (14.1, 5.45), (23.9, 5.55)]
    assert claim_generation(params, generation(tmp_path, params, disc, vq)).verdict == "supported"


def test_one_seed_measures_no_noise(tmp_path, params):
    v = claim_generation(params, generation(tmp_path, params, [(1.0, 9.0)], [(10.0, 5.0)]))
    assert v.verdict == "inconclusive" and "one seed" in v.evidence


def test_generation_not_tested(tmp_path, params):
    m = generation(tmp_path, params, [(8.0, 6.0)] * 2, VQ3[:2])
    del m.data[sets.scores(sets.vq_set())]
    assert claim_generation(params, m).verdict == "not tested"


def test_generation_needs_both_samplings(tmp_path, params):
    """DiGIT wins untruncated (FID 2 lower, IS 1 higher on every seed) but loses at the searched
    settings (FID 2 higher): claim 2 is not supported outright; the evidence gives both gaps."""
    win = [(8.0, 6.0), (9.0, 6.2), (8.5, 5.9)]
    lose = [(12.0, 4.0), (13.0, 4.2), (12.5, 3.9)]
    v = claim_generation(params, generation(tmp_path, params, win, VQ3, selected=lose))
    assert v.verdict == "partly supported", v.evidence
    assert "untruncated: FID" in v.evidence and "selected: FID" in v.evidence
    assert "Bonferroni over the 4 tests" in v.evidence
    v = claim_generation(params, generation(tmp_path, params, win, VQ3, selected=win))
    assert v.verdict == "supported"


def test_generation_compares_the_stronger_vq_side(tmp_path, params):
    """The VQ side chosen by its own search on train images (lower FID there), never by the
    val FID: here vq_long searched better, so the claim reads vq_long's sets."""
    m = generation(tmp_path, params, [(8.0, 6.0), (9.0, 6.2), (8.5, 5.9)], VQ3)
    search(tmp_path, "vq_long", 0.5)
    m = Metrics.load(tmp_path, [0, 1, 2])
    v = claim_generation(params, m)
    assert "against `vq_long`" in v.evidence


def probes(tmp_path, params, disc: list[float], vq: list[float], n_layers: int = 4) -> Metrics:
    k = params.kmeans.main_k

    def rec(top1: float, seed: int) -> dict:
        return {
            "best_top1": top1,
            "best_layer": 1 + seed % n_layers,
            "n_layers": n_layers,
            "top1_per_layer": [top1] * n_layers,
            "embedding_top1": top1 - 0.1,
            "raw_tokens_top1": top1 + 0.01,
        }

    return seeded(
        tmp_path,
        **{
            sets.probe(sets.disc_model(k)): [rec(t, i) for i, t in enumerate(disc)],
            sets.probe(sets.VQ_MODEL): [rec(t, i) for i, t in enumerate(vq)],
        },
    )


@pytest.mark.parametrize(
    "disc, vq, verdict",
    [
        # the records' raw-token probe is top-1 + 0.01: part B fails, part A holds -> partly
        ([0.80, 0.82, 0.81], [0.70, 0.71, 0.69], "partly supported"),
        # A unresolved (+0, +0.01, 0), B fails: nothing for the claim, one part against it
        ([0.70, 0.72, 0.69], [0.70, 0.71, 0.69], "not supported"),
        ([0.60, 0.61, 0.62], [0.70, 0.71, 0.69], "not supported"),
    ],
)
def test_probe_rule_pairs_seeds(tmp_path, params, disc, vq, verdict):
    v = claim_probe(params, probes(tmp_path, params, disc, vq))
    assert v.verdict == verdict, v.evidence
    assert "A: DiGIT's token model probes better" in v.evidence
    assert "B: its best block beats a probe of its own raw tokens: fails" in v.evidence
    assert "C: a peak in middle layers: not judged" in v.evidence  # 4 blocks: no middle
    assert "best block per seed 1, 2, 3 of 4" in v.evidence
    assert "Bonferroni over the 2 paired tests" in v.evidence


def test_probe_middle_layers_part(tmp_path, params):
    """With 6 blocks part C is judged: best blocks 2, 3, 4 are in the middle; a best last block
    in one seed fails it, and the label says partly."""
    m = probes(tmp_path, params, [0.80, 0.82, 0.81], [0.70, 0.71, 0.69], n_layers=6)
    for seed, run in m.runs(sets.probe(sets.disc_model(params.kmeans.main_k))).items():
        run["raw_tokens_top1"] = run["best_top1"] - 0.05 - 0.01 * seed
        run["best_layer"] = 2 + seed
    assert claim_probe(params, m).verdict == "supported"
    m.runs(sets.probe(sets.disc_model(params.kmeans.main_k)))[2]["best_layer"] = 6
    v = claim_probe(params, m)
    assert v.verdict == "partly supported" and "C: a peak in middle layers: fails" in v.evidence


def test_probe_supported_when_the_blocks_add_to_their_input(tmp_path, params):
    m = probes(tmp_path, params, [0.80, 0.82, 0.81], [0.70, 0.71, 0.69])
    for seed, run in m.runs(sets.probe(sets.disc_model(params.kmeans.main_k))).items():
        run["raw_tokens_top1"] = run["best_top1"] - 0.05 - 0.01 * seed
    v = claim_probe(params, m)
    assert v.verdict == "supported", v.evidence
    assert "advantage is the tokens'" not in v.evidence


def test_probe_not_tested(tmp_path, params):
    m = probes(tmp_path, params, [0.8, 0.8], [0.5, 0.6])
    del m.data[sets.probe(sets.VQ_MODEL)]
    assert claim_probe(params, m).verdict == "not tested"


def k_ablation(tmp_path, params, top1: dict[int, list[float]], fid: dict[int, list[float]]):
    files = {}
    for k in params.kmeans.ks:
        files[sets.probe(sets.disc_model(k))] = [{"best_top1": p} for p in top1[k]]
        files[sets.scores(sets.digit_set(k))] = [{"fid": f} for f in fid[k]]
    return seeded(tmp_path, **files)


FLAT = {8: [0.5, 0.52, 0.48], 16: [0.51, 0.49, 0.5], 32: [0.5, 0.5, 0.51]}
FLAT_FID = {8: [10.0, 11.0, 9.0], 16: [10.5, 9.5, 10.0], 32: [9.8, 10.6, 10.2]}


def test_k_rule(tmp_path, params):
    v = claim_k(params, k_ablation(tmp_path, params, FLAT, FLAT_FID))
    assert v.verdict == "inconclusive" and "no pair of K differs" in v.evidence
    rising = {8: [0.5, 0.52, 0.48], 16: [0.6, 0.62, 0.58], 32: [0.7, 0.72, 0.68]}
    v = claim_k(params, k_ablation(tmp_path, params, rising, FLAT_FID))
    assert v.verdict == "partly supported" and "probe top-1 K=32 - K=8 +0.2000" in v.evidence
    assert "only probe accuracy resolves" in v.evidence
    # every test the claim runs: 3 pairs of K x 2 measures
    assert "Bonferroni x6" in v.evidence and "over the 6 tests" in v.evidence


RISING_FID = {8: [10.0, 11.0, 9.0], 16: [10.5, 9.5, 10.0], 32: [14.0, 15.0, 13.1]}


def test_k_fid_alone_is_partly(tmp_path, params):
    v = claim_k(params, k_ablation(tmp_path, params, FLAT, RISING_FID))
    assert v.verdict == "partly supported" and "FID K=32 - K=8" in v.evidence
    assert v.rests_on == frozenset({"samples"})


def test_k_both_measures_support(tmp_path, params):
    rising = {8: [0.5, 0.52, 0.48], 16: [0.6, 0.62, 0.58], 32: [0.7, 0.72, 0.68]}
    v = claim_k(params, k_ablation(tmp_path, params, rising, RISING_FID))
    assert v.verdict == "supported", v.evidence


# ---------------------------------------------------------------- premises and "untestable here"


def ladders(final: dict[str, list[float]], failed_top1: float | None = 0.95) -> dict:
    """metrics/evalnet.json's ladder record: one earlier checkpoint mis-ranking the noise ladder
    at ``failed_top1`` (None: no such checkpoint), then the final net's FIDs."""
    from digit.metrics.ladder import ranking_threshold, ranks

    rows = [{"step": 1, "val_top1": failed_top1, "fid": {"noise": [1, 0.9], "classes": [1, 2]}}]
    rows = (rows if failed_top1 is not None else []) + [{"step": 2, "val_top1": 0.98, "fid": final}]
    for row in rows:
        row["ranks"] = {name: ranks(f) for name, f in row["fid"].items()}
    return {
        "n_per_set": 500,
        "levels": {
            "noise": {"what": "pixel noise std", "values": [0.0, 0.02]},
            "classes": {"what": "classes kept", "values": [10.0, 9.0]},
        },
        "checkpoints": rows,
        "ranks": {name: ranks(f) for name, f in final.items()},
        "mis_ranking_top1": ranking_threshold(rows),
    }


RANKED = {"noise": [1.2, 1.5], "classes": [1.5, 4.1]}


def premise_metrics(
    tmp_path,
    params,
    gt_fid=6.0,
    recon_fid=5.0,
    encoder=None,
    n_gen=500,
    recon_top1=0.97,
    ruler=None,
):
    k = params.kmeans.main_k
    good = {
        "knn_top1": {"pixels": 0.9, "random": 0.5, "trained": 0.92},
        "probe_top1": {"pixels": 0.9, "random": 0.6, "trained": 0.93},
    }
    files = {
        sets.ENCODER: encoder or good,
        **{sets.encoder_of(key): good for key in params.encoders},
        sets.tokens(k): {"trained": {"token_probe_top1": 0.9}, "random": {"token_probe_top1": 0.8}},
        sets.scores(sets.gt_set(k, "causal")): {"fid": gt_fid, "source_top1": 0.95},
        sets.scores(sets.VQ_RECON_SET): {"fid": recon_fid, "source_top1": recon_top1},
        sets.EVALNET: {
            "feat_dim": 128,
            "val_top1": 0.98,
            "ladders": ladders(RANKED) if ruler is None else ruler,
        },
    }
    for name, record in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    for seed in params.seeds:
        (tmp_path / f"{sets.seeded(sets.scores(sets.digit_set(k)), seed)}.json").write_text(
            json.dumps({"fid": 7.0, "n_gen": n_gen, "extractor": "evalnet"})
        )
    return Metrics.load(tmp_path, params.seeds)


SAMPLES, PROBE = frozenset({"samples"}), frozenset({"probe"})


def test_premises_pass_and_gate_nothing(tmp_path, params):
    checks = premises(params, premise_metrics(tmp_path, params))
    assert all(p.passed for p in checks), [p.evidence for p in checks if not p.passed]
    v = Verdict("c", "supported", "e", SAMPLES)
    assert gate(v, 2, checks) is v


@pytest.mark.parametrize("verdict", ["not supported", "inconclusive", "partly supported"])
def test_a_weak_renderer_voids_what_it_could_cause(tmp_path, params, verdict):
    """DiGIT not ahead with a renderer far from its bound: the renderer may be why."""
    checks = premises(params, premise_metrics(tmp_path, params, gt_fid=12.0, recon_fid=5.0))
    failed = [p for p in checks if not p.passed]
    assert len(failed) == 1 and "2.40x" in failed[0].evidence and failed[0].gates == (2, 4, 6)
    v = gate(Verdict("c", verdict, "FID 1 vs 2", SAMPLES), 2, checks)
    assert v.verdict == "untestable here"
    assert "renderer" in v.evidence and f"would say {verdict}: FID 1 vs 2" in v.evidence


def test_a_weak_renderer_voids_a_digit_win_too(tmp_path, params):
    """The renderer samples as well (its truncation gave DiGIT most of its lead once): a win
    resting on samples is no more testable than a loss; probe-based verdicts are untouched."""
    checks = premises(params, premise_metrics(tmp_path, params, gt_fid=12.0, recon_fid=5.0))
    v = gate(Verdict("c", "supported", "FID 1 vs 2", SAMPLES), 2, checks)
    assert v.verdict == "untestable here" and "would say supported" in v.evidence
    assert gate(Verdict("c", "supported", "e", SAMPLES), 4, checks).verdict == "untestable here"
    assert gate(Verdict("c", "supported", "e", PROBE), 4, checks).verdict == "supported"
    assert gate(Verdict("c", "supported", "e", PROBE), 3, checks).verdict == "supported"


def test_a_poor_vq_reconstruction_gates_the_sample_claims(tmp_path, params):
    """The renderer premise divides by the reconstruction's FID: a reconstruction that loses the
    digits (evalnet top-1 0.80 against 0.98 on the originals) voids the sample-based verdicts."""
    checks = premises(params, premise_metrics(tmp_path, params, recon_top1=0.80))
    (poor,) = [p for p in checks if not p.passed]
    assert "0.800 vs 0.980" in poor.evidence and poor.gates == (2, 4, 6)
    assert gate(Verdict("c", "supported", "e", SAMPLES), 2, checks).verdict == "untestable here"
    assert gate(Verdict("c", "supported", "e", PROBE), 4, checks).verdict == "supported"


def test_the_evaluation_net_must_rank_the_ladders(tmp_path, params):
    """A ruler that orders noisier images as better voids the sample verdicts, not the probes."""
    ruler = ladders({"noise": [1.2, 1.1], "classes": [1.5, 4.1]})
    checks = premises(params, premise_metrics(tmp_path, params, ruler=ruler))
    (bad,) = [p for p in checks if not p.passed]
    assert "MIS-RANKS" in bad.evidence and "FID 1.20, 1.10" in bad.evidence
    assert "FID 1.50 < 4.10" in bad.evidence and bad.gates == (2, 4, 6)
    assert gate(Verdict("c", "supported", "e", SAMPLES), 6, checks).verdict == "untestable here"
    assert gate(Verdict("c", "supported", "e", PROBE), 4, checks).verdict == "supported"


@pytest.mark.parametrize(
    "failed_top1, passed, text",
    [
        (
            0.95,
            True,
            "top-1 <= 0.950 mis-ranked a ladder (the measured threshold), the least "
            "accurate one that ranked both had 0.980",
        ),
        (0.98, False, "top-1 <= 0.980 mis-ranked"),  # not above its own failing checkpoint
        (None, True, "no checkpoint mis-ranked"),
    ],
)
def test_the_ruler_threshold_is_measured(tmp_path, params, failed_top1, passed, text):
    ruler = ladders(RANKED, failed_top1)
    checks = premises(params, premise_metrics(tmp_path, params, ruler=ruler))
    (ruler_check,) = [p for p in checks if "rank generators" in p.check]
    assert ruler_check.passed is passed and text in ruler_check.evidence


def test_a_pretrained_extractor_has_no_ruler_premise(tmp_path, params):
    checks = premises(params, premise_metrics(tmp_path, params, ruler={}))
    assert not [p for p in checks if "rank generators" in p.check]


def test_an_encoder_no_better_than_random_gates_claims_1_to_4(tmp_path, params):
    enc = {"knn_top1": {"pixels": 0.9, "random": 0.6, "trained": 0.6}}
    checks = premises(params, premise_metrics(tmp_path, params, encoder=enc))
    for claim in (1, 2, 3, 4):
        v = gate(Verdict("c", "supported", "e", SAMPLES | PROBE), claim, checks)
        assert v.verdict == "untestable here"
    assert gate(Verdict("c", "supported", "e"), 5, checks).verdict == "supported"


def test_encoder_below_pixels_is_reported_but_gates_nothing(tmp_path, params):
    enc = {"knn_top1": {"pixels": 0.95, "random": 0.5, "trained": 0.9}}
    checks = premises(params, premise_metrics(tmp_path, params, encoder=enc))
    pixels = next(p for p in checks if "pixels" in p.check)
    assert not pixels.passed and pixels.gates == ()


def test_too_few_samples_for_fid(tmp_path, params):
    checks = premises(params, premise_metrics(tmp_path, params, n_gen=200))
    (few,) = [p for p in checks if not p.passed]
    assert "200 generated images" in few.evidence and few.gates == (2, 4, 6)
    v = gate(Verdict("c", "supported", "e", SAMPLES), 2, checks)
    assert v.verdict == "untestable here"


def test_a_missing_seed_is_an_error(tmp_path, params):
    (tmp_path / "scores_vq_s0.json").write_text("{}")
    with pytest.raises(MissingMetrics, match="scores_vq_s1.json"):
        Metrics.load(tmp_path, [0, 1])


# ---------------------------------------------------------------- claim 5: the PCA vs LDA toy


def toy(pca: list[float], lda: list[float], sweep: dict | None = None, n: int = 0) -> Metrics:
    """The toy's metrics at the main tilt (45), and at the tilts of ``sweep`` {angle: (pca, lda)}."""
    t = {"noise_stds": [0.0, 1.0, 2.0], "pca_accuracy": pca, "lda_accuracy": lda, "angle_deg": 45}
    t |= {"n_test": n} if n else {}
    if sweep is not None:
        t["sweep"] = [
            {"angle_deg": a, "pca_accuracy": p, "lda_accuracy": q} for a, (p, q) in sweep.items()
        ]
    return metrics(**{sets.TOY: t})


LDA_AHEAD = ([0.6, 0.5, 0.4], [0.9, 0.85, 0.8])  # LDA higher and loses less (0.1 vs 0.2)
HIGHER_BUT_LOSES_MORE = ([0.6, 0.55, 0.5], [0.9, 0.7, 0.5])  # LDA never behind, drops 0.4 vs 0.1
PCA_AHEAD_AT_HIGH_NOISE = ([0.6, 0.55, 0.52], [0.9, 0.7, 0.5])


def test_toy_rule():
    assert claim_toy(toy(*LDA_AHEAD)).verdict == "supported"
    v = claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE))
    assert v.verdict == "not supported" and "noise std >= 2" in v.evidence
    assert claim_toy(metrics()).verdict == "not tested"


def test_toy_two_readings():
    """LDA keeps the higher accuracy but loses more of it: the accuracy reading holds, the
    drop reading fails; the label is partly and the evidence says which reading holds."""
    v = claim_toy(toy(*HIGHER_BUT_LOSES_MORE))
    assert v.verdict == "partly supported", v.evidence
    assert "holds at the main tilt on accuracy, fails there on drop from clean" in v.evidence
    assert "accuracy: PCA ahead nowhere" in v.evidence


def test_toy_rule_over_geometries():
    """PCA ahead at another tilt only: partly supported, naming the tilt; ahead nowhere in the
    sweep: supported; ahead on both readings at the main tilt: not supported."""
    v = claim_toy(toy(*LDA_AHEAD, sweep={20: PCA_AHEAD_AT_HIGH_NOISE, 45: LDA_AHEAD}))
    assert v.verdict == "partly supported" and "at tilt 20 deg for noise std >= 2" in v.evidence
    assert "never behind at tilts 45" in v.evidence
    v = claim_toy(toy(*LDA_AHEAD, sweep={0: LDA_AHEAD, 90: LDA_AHEAD}))
    assert v.verdict == "supported"
    v = claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE, sweep={90: LDA_AHEAD}))
    assert v.verdict == "not supported"


def test_toy_ties_within_two_standard_errors():
    """A 0.02 lead for PCA is a tie on 400 test points (2 SE of a difference = 0.071) and a loss
    on 40,000 (0.0071); the drops (0.4 vs 0.08) differ beyond either."""
    v = claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE, n=400))
    assert v.verdict == "partly supported" and "accuracy: PCA ahead nowhere" in v.evidence
    assert claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE, n=40000)).verdict == "not supported"
