"""The report never states a claim holds when its numbers say otherwise (synthetic metrics files),
and never drops a row the DAG is supposed to produce: a missing metrics file stops it, named."""

import json
from pathlib import Path

import pytest
import yaml

from pipeline import checks, sets
from pipeline import params as P
from pipeline.report.metrics import MissingMetrics
from pipeline.report.write import write_reports
from pipeline.sets import dag_sets

ROOT = Path(__file__).resolve().parents[1]


def write(d: Path, name: str, data: dict) -> None:
    (d / f"{name}.json").write_text(json.dumps(data))


def probe(top1: float, best: int) -> dict:
    return {
        "best_top1": top1,
        "best_layer": best,
        "n_layers": 4,
        "top1_per_layer": [0.4, top1, 0.45, 0.5],
        "protocol": "p",
    }


SAMPLER = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
OFF = {"top_k": 0, "top_p": 1.0}


def search(side: str, rows: list[dict] | None = None) -> dict:
    """A side's sampling search (metrics/sampling_<side>.json) over ``rows`` (token-model
    setting, renderer setting, FID), the lowest FID selected."""
    renderer = OFF if side == "digit" else None
    rows = rows or [{"token_model": OFF, "renderer": renderer, "fid": 5.0, "isc_mean": 2.0}]
    best = min(rows, key=lambda r: r["fid"])
    return {
        "side": side,
        "model": "a",
        "renderer": "b" if renderer else None,
        "n_samples": 10,
        "temperature": 1.0,
        "reference": "128 train images",
        "extractor": "evalnet",
        "rows": rows,
        "selected": {
            "token_model": best["token_model"],
            "renderer": best["renderer"],
            "fid": best["fid"],
        },
    }


def dag_metrics(d: Path, params: P.Params) -> None:
    """Plain numbers in every metrics file of the DAG that the report needs, named by
    pipeline/sets.py (per seed where the seed axis runs): what `report` finds after a full repro.
    Tests overwrite what they test."""
    ks, main = params.kmeans.ks, params.kmeans.main_k
    ar = {"n_params": 2e6, "seq_len": 49, "epochs": 1.5, "val_loss": 1.5, "steps": 10}
    encoders, vq_rows = list(params.encoders), list(params.vq_rows)
    for s in dag_sets(ks, main, encoders, vq_rows, params.sample_seeds, params.seed).values():
        gen = {"fid": 12.0, "isc_mean": 4.0, "extractor": "evalnet", "n_gen": 500}
        write(d, s.metrics, gen | ({"source_top1": 0.9} if s.source == "gt" else {}))
        made = {"token_model": SAMPLER} if s.token_model else {}
        if s.renderer:
            made["renderer"] = SAMPLER | {"renderer": "causal", "top_p": 0.8}
            write(d, sets.renderer(s.renderer), {"n_params": 1e6, "epochs": 2.0})
        write(d, sets.generate(s.name), made)
        if s.token_model:
            write(d, sets.ar(s.token_model), ar)
    for model in sets.dag_probed_models(ks, params.seeds, encoders, vq_rows):  # every seed's
        write(d, sets.probe(model), probe(0.5, 2))
        write(d, sets.ar(model), ar)
    write(d, sets.EVALNET, {"feat_dim": 128, "val_top1": 0.98})
    for k in ks:
        scores = {"codes_used": k, "token_probe_top1": 0.6, "bag_knn_top1": 0.5}
        random = scores | {"token_probe_top1": 0.4}
        write(d, sets.tokens(k), {"trained": scores, "random": random})
    scores = {"pixels": 0.8, "random": 0.7, "trained": 0.9}
    for enc in (sets.ENCODER, *map(sets.encoder_of, encoders)):
        write(d, enc, {"knn_top1": scores, "protocol": "p", "probe_top1": scores})
    for side in sets.SIDES:
        write(d, sets.sampling(side), search(side))
    for t in sets.tokenizer_rows(ks, main, encoders, vq_rows):
        write(d, sets.stability(t.name), stability_file(0.2))


PERTS = [{"kind": "gaussian", "label": f"SNR {s} dB", "value": s} for s in (30, 20, 5)]


def stability_file(change: float) -> dict:
    """One tokenizer's Table 1 file (its token change the same at every SNR)."""
    return {
        "describe": "x",
        "protocol": "p",
        "perturbations": PERTS,
        "token_change": [change] * 3,
        "cos_quantized": [0.9] * 3,
        "cos_features": [0.9] * 3,
    }


JITTER = (0.0, 0.02, -0.01, 0.01)  # seed-to-seed spread, the same on both sides of a comparison


def per_seed(d: Path, name: str, params: P.Params, record: dict, key: str, value: float) -> None:
    """``name``'s file for every seed of its axis, ``key`` = value + the seed's jitter."""
    for seed in getattr(params, sets.seed_axis(name)):
        write(d, sets.seeded(name, seed), record | {key: value + JITTER[seed % len(JITTER)]})


def fake_metrics(
    d: Path, disc_change: float, disc_fid: float, disc_probe: float, encoders: dict | None = None
) -> P.Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = checks.validate(raw | ({"encoders": encoders} if encoders is not None else {}))
    k = params.kmeans.main_k
    dag_metrics(d, params)
    write(d, sets.stability(f"k{k}"), stability_file(disc_change))
    write(d, sets.stability(sets.VQ_MODEL), stability_file(0.3))
    gen = {"extractor": "evalnet", "n_gen": 500}
    for how in sets.HOWS:  # the fair comparison: every side both ways
        for side in ("vq", "vq_long"):
            vq = sets.scores(sets.side_set(side, how, k))
            per_seed(d, vq, params, gen | {"isc_mean": 5.0}, "fid", 10.0)
        disc = sets.scores(sets.side_set("digit", how, k))
        per_seed(d, disc, params, gen | {"isc_mean": 6.0}, "fid", disc_fid)
    per_seed(d, f"scores_digit_k{k}_causal", params, gen | {"isc_mean": 6.0}, "fid", disc_fid)
    per_seed(d, f"probe_k{k}", params, probe(disc_probe, 2), "best_top1", disc_probe)
    per_seed(d, "probe_vq", params, probe(0.5, 4), "best_top1", 0.5)
    write(
        d,
        "toy",
        {
            "protocol": "p",
            "noise_stds": [0, 1],
            "pca_accuracy": [0.6, 0.5],
            "lda_accuracy": [0.9, 0.85],
            "cos_angle": 0.1,
        },
    )
    return params


def verdicts(tmp_path: Path, **kw) -> list[str]:
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, **kw)
    return [v.verdict for v in write_reports(params, m, tmp_path / "reports")]


def test_claims_follow_the_numbers(tmp_path):
    v = verdicts(tmp_path, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    assert v[0] == "supported" and v[1] == "supported" and v[2] == "supported"
    assert v[3] == "supported"  # probe top-1 0.8 at the main K, 0.5 at the others
    assert v[4] == "supported"
    text = (tmp_path / "reports/claims.md").read_text()
    assert "**supported**" in text
    assert (tmp_path / "reports/table1_stability.csv").exists()
    from PIL import Image

    # Table 1's figure at its size (15 x 4.2 in at 110 dpi); its panels: tests/test_figures.py
    assert Image.open(tmp_path / "reports/figures/stability.png").size == (1650, 462)


def test_claims_fail_when_numbers_disagree(tmp_path):
    v = verdicts(tmp_path, disc_change=0.5, disc_fid=20.0, disc_probe=0.3)
    assert v[0] == "not supported"
    assert v[1] == "partly supported"  # worse FID, better IS
    assert v[2] == "not supported"


def test_report_writes_every_declared_output(tmp_path):
    """dvc.yaml's `report` outs are exactly files the stage writes; the sampling and encoder-kind
    tables render from their metrics."""
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    k = params.kmeans.main_k
    rows = [
        {"token_model": {"top_k": tk, "top_p": tp}, "renderer": None, "fid": f, "isc_mean": 2.0}
        for tk, tp, f in ((8, 1.0, 4.0), (0, 1.0, 5.0), (0, 0.8, 3.0))
    ]
    write(m, sets.sampling("vq"), search("vq", rows))
    write(m, sets.scores(sets.encoder_set("mae", k)), {"fid": 30.0, "isc_mean": 1.5})
    write(m, "probe_mae", probe(0.2, 1))
    write(m, "encoder_mae", {"knn_top1": {"trained": 0.7}})
    write_reports(params, m, tmp_path / "reports")
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec["stages"]["report"]["outs"]]
    outs = [o for o in outs if not o.startswith("timings/")]  # written by the stage wrapper
    missing = [o for o in outs if not (tmp_path / o).exists()]
    assert not missing, missing
    sweep = (tmp_path / "reports/sampling_sweeps.md").read_text()
    assert "top-k 0, top-p 0.8" in sweep and "5.000" in sweep and "**selected**" in sweep
    enc = (tmp_path / "reports/ablation_encoder.csv").read_text()
    assert "reconstructive" in enc and "30.0" in enc and "0.7" in enc


def test_differences_within_noise_are_not_claimed(tmp_path):
    """Per-seed differences that straddle 0 (FID, IS and probe) support nothing."""
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=10.0, disc_probe=0.5)
    k = params.kmeans.main_k
    gen = {"extractor": "evalnet", "n_gen": 500}
    straddling = ((9.0, 5.5, 0.55), (11.0, 4.5, 0.45), (10.2, 5.1, 0.51), (9.8, 4.9, 0.49))
    straddling += ((9.5, 5.3, 0.53), (10.5, 4.7, 0.47), (9.9, 5.05, 0.505), (10.1, 4.95, 0.495))
    for seed, (f, i, p) in zip(params.seeds, straddling, strict=True):
        if seed in params.sample_seeds:
            for how in sets.HOWS:
                disc = sets.scores(sets.side_set("digit", how, k))
                write(m, sets.seeded(disc, seed), gen | {"fid": f, "isc_mean": i})
                for side in ("vq", "vq_long"):
                    vq = sets.scores(sets.side_set(side, how, k))
                    write(m, sets.seeded(vq, seed), gen | {"fid": 10.0, "isc_mean": 5.0})
        write(m, f"probe_k{k}_s{seed}", probe(p, 2))
        write(m, f"probe_vq_s{seed}", probe(0.5, 2))
    v = [x.verdict for x in write_reports(params, m, tmp_path / "reports")]
    assert v[1] == "inconclusive" and v[2] == "inconclusive", v


def test_a_weak_renderer_makes_a_digit_loss_untestable(tmp_path):
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=15.0, disc_probe=0.8)  # VQ: 10
    k = params.kmeans.main_k
    write(
        m,
        f"scores_gt_k{k}_causal",
        {"fid": 30.0, "isc_mean": 4.0, "n_gen": 500, "source_top1": 0.5},
    )
    v = [x.verdict for x in write_reports(params, m, tmp_path / "reports")]
    assert v[1] == "untestable here" and v[2] == "supported", v
    text = (tmp_path / "reports/claims.md").read_text()
    assert "## Premises" in text and "**fail**" in text and "2.50x" in text


def test_a_weak_ablation_encoder_is_flagged_not_ranked(tmp_path):
    """Every encoder row gets the premise checks: an encoder-kind row no better than its random
    twin is flagged in claims.md and in its table, and gates no claim."""
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    weak = {"pixels": 0.8, "random": 0.7, "trained": 0.6}
    write(m, sets.encoder_of("mae"), {"knn_top1": weak, "protocol": "p", "probe_top1": weak})
    v = [x.verdict for x in write_reports(params, m, tmp_path / "reports")]
    assert v[:4] == ["supported"] * 4, v
    text = (tmp_path / "reports/claims.md").read_text()
    row = "| the MAE encoder (`encoders.mae`) beats its random-weight twin (pooled features)"
    assert f"{row} | **fail** | k-NN 0.600 vs 0.700, linear probe 0.600 vs 0.700" in text
    assert "| the encoder beats its random-weight twin (pooled features) | pass |" in text
    assert "**no**" in (tmp_path / "reports/ablation_encoder.md").read_text()


@pytest.mark.parametrize("rows", [{}, {"mae": "MAE", "dino": "DINO", "clip": "CLIP"}])
def test_the_encoder_table_has_a_row_per_encoder_of_the_run(tmp_path, rows):
    """The encoder axis is params.yaml's: one table row and one premise per row, none if empty."""
    m = tmp_path / "metrics"
    m.mkdir()
    encoders = {key: {"label": label, "kind": f"kind of {label}"} for key, label in rows.items()}
    params = fake_metrics(m, disc_change=0.1, disc_fid=5.0, disc_probe=0.8, encoders=encoders)
    write_reports(params, m, tmp_path / "reports")
    table = (tmp_path / "reports/ablation_encoder.md").read_text().split("## The paper")[0]
    body = [line for line in table.splitlines() if line.startswith("| ") and "K-Means" in line]
    assert [line.split("|")[1].strip() for line in body] == [
        f"cnn_small (simclr) + K-Means (K={params.kmeans.main_k})",
        *(f"{label} + K-Means (K={params.kmeans.main_k})" for label in rows.values()),
    ]
    claims = (tmp_path / "reports/claims.md").read_text()
    for key, label in rows.items():
        assert f"| the {label} encoder (`encoders.{key}`) beats its random-weight twin" in claims
    assert ("`encoders.") in claims if rows else "`encoders." not in claims


def _missing_cases() -> list[str]:
    """One file of each kind the report needs, for params.yaml's K list."""
    params = checks.load(ROOT / "params.yaml")
    ks, main = params.kmeans.ks, params.kmeans.main_k
    return [
        sets.scores(sets.digit_set(main, "maskgit")),  # Table 3
        sets.scores(sets.vq_set(conditional=True)),  # Table 4
        sets.seeded(
            sets.scores(sets.digit_set(ks[0])), params.sample_seeds[-1]
        ),  # K ablation, a seed
        sets.seeded(sets.probe(sets.disc_model(ks[0])), params.seeds[-1]),  # ... a probe-only seed
        sets.scores(sets.encoder_set("mae", main)),  # only in the encoder ablation
        sets.ar(sets.disc_model(main, conditional=True)),  # Table 4's parameter count
        sets.scores(sets.digit_set(main, "maskgit", conditional=True)),  # Table 4's MaskGIT row
        sets.probe("mae"),  # the token model of encoders.mae
        sets.tokens(ks[-1]),
        sets.encoder_of("mae"),
        sets.stability("vq_noise"),
        sets.stability("mae"),
        sets.sampling("vq_long"),
    ]


@pytest.mark.parametrize("stem", _missing_cases())
def test_a_missing_dag_metrics_file_stops_the_report(tmp_path, stem):
    """Rows no longer vanish: the error names the file."""
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    (m / f"{stem}.json").unlink()
    with pytest.raises(MissingMetrics, match=f"{stem}.json is missing"):
        write_reports(params, m, tmp_path / "reports")


def test_the_toy_section_is_optional(tmp_path):
    """The one optional section: without metrics/toy.json its table says so and the claim is
    not tested; every declared out is still written."""
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    (m / f"{sets.TOY}.json").unlink()
    v = write_reports(params, m, tmp_path / "reports")
    assert v[4].verdict == "not tested"
    assert "Not produced by this run" in (tmp_path / "reports/toy.md").read_text()
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec["stages"]["report"]["outs"]]
    outs = [o for o in outs if not o.startswith("timings/")]  # written by the stage wrapper
    assert all((tmp_path / o).exists() for o in outs)


def test_the_reports_index_says_what_the_default_leaves_small(tmp_path):
    m = tmp_path / "metrics"
    m.mkdir()
    params = fake_metrics(m, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    k = params.kmeans.main_k
    write(m, f"ar_k{k}_long", {"n_params": 2e6, "epochs": 3.0, "val_loss": 1.2, "steps": 20})
    # The main seed's val curves, as dvclive writes them: DiGIT bends early, VQ is a line.
    live = tmp_path / "dvclive"
    curves = {
        f"ar_k{k}_s{params.seed}": [3.0, 2.0, 1.2, 1.1, 1.0],
        f"ar_vq_s{params.seed}": [4.0, 3.75, 3.5, 3.25, 3.0],
    }
    for folder, losses in curves.items():
        tsv = live / folder / "plots/metrics/val/loss.tsv"
        tsv.parent.mkdir(parents=True)
        rows = [f"{10 * (i + 1)}\t{loss}" for i, loss in enumerate(losses)]
        tsv.write_text("step\tloss\n" + "\n".join(rows) + "\n")
    write_reports(params, m, tmp_path / "reports", live)
    index = (tmp_path / "reports/README.md").read_text()
    assert "## What the default leaves small" in index
    assert f"K={k} val loss 1.500 nats after 10 steps, 1.200 after 20" in index
    # (loss at the middle step, 30, - last) / (first - last): DiGIT 0.2 / 2.0, VQ 0.5 / 1.0
    assert f"the second half of that span made DiGIT K={k} 10%, VQ 50%" in index


def test_the_encoder_table_says_which_measure_puts_pixels_ahead():
    from pipeline.report.tables import vs_pixels

    split = {
        "knn_top1": {"pixels": 0.95, "random": 0.5, "trained": 0.89},
        "probe_top1": {"pixels": 0.88, "random": 0.6, "trained": 0.96},
    }
    (note,) = vs_pixels(split, "mnist5k")
    assert "below raw pixels by k-NN but not by linear probe" in note and "MNIST" in note
    (note,) = vs_pixels(split, "imagefolder")
    assert "MNIST" not in note
    split["knn_top1"]["trained"] = 0.97
    assert "at least as discriminative" in vs_pixels(split, "mnist5k")[0]
