"""The report never states a claim holds when its numbers say otherwise (synthetic metrics files)."""

import json
from pathlib import Path

import yaml

from pipeline import params as P
from pipeline.report import write_reports

ROOT = Path(__file__).resolve().parents[1]


def write(d: Path, name: str, data: dict) -> None:
    (d / f"{name}.json").write_text(json.dumps(data))


def fake_metrics(d: Path, disc_change: float, disc_fid: float, disc_probe: float) -> P.Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = P.validate(raw)
    k = params.codebook.main_k
    perts = [{"kind": "gaussian", "label": f"SNR {s} dB", "value": s} for s in (30, 20, 5)]

    def tok(c):
        return {
            "describe": "x",
            "token_change": [c] * 3,
            "cos_quantized": [0.9] * 3,
            "cos_features": [0.9] * 3,
        }

    write(
        d,
        "stability",
        {
            "protocol": "p",
            "perturbations": perts,
            "tokenizers": {"disc": tok(disc_change), "vq": tok(0.3)},
        },
    )
    write(d, "gen_vq", {"fid": 10.0, "isc_mean": 5.0, "extractor": "evalnet"})
    write(d, f"gen_digit_k{k}_ar", {"fid": disc_fid, "isc_mean": 6.0, "extractor": "evalnet"})
    for name, top1, best in ((f"probe_k{k}", disc_probe, 2), ("probe_vq", 0.5, 4)):
        write(
            d,
            name,
            {
                "best_top1": top1,
                "best_layer": best,
                "n_layers": 4,
                "top1_per_layer": [0.4, top1, 0.45, 0.5],
                "protocol": "p",
            },
        )
    write(
        d,
        "toy",
        {
            "protocol": "p",
            "noise_stds": [0, 1],
            "pca_accuracy": [0.6, 0.55],
            "lda_accuracy": [0.9, 0.7],
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
    assert v[4] == "supported"
    text = (tmp_path / "reports/claims.md").read_text()
    assert "**supported**" in text
    assert (tmp_path / "reports/table1_stability.csv").exists()
    assert (tmp_path / "reports/figures/stability.png").stat().st_size > 1000


def test_claims_fail_when_numbers_disagree(tmp_path):
    v = verdicts(tmp_path, disc_change=0.5, disc_fid=20.0, disc_probe=0.3)
    assert v[0] == "not supported"
    assert v[1] == "partly supported"  # worse FID, better IS
    assert v[2] == "not supported"
