"""pipeline/report/claims.py: every outcome of every claim's rule, forced by hand-made metrics.

One test per (claim, verdict) the rule can give. The "untestable here" outcome (a claim whose
premise fails at this scale) is not in the rules yet, so it has no test here."""

from pathlib import Path

import pytest

from pipeline import params as P
from pipeline import sets
from pipeline.report.claims import (
    claim_generation,
    claim_k,
    claim_probe,
    claim_stability,
    claim_toy,
)
from pipeline.report.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params() -> P.Params:
    params = P.load(ROOT / "params.yaml")
    kmeans = params.kmeans.model_copy(update={"ks": [8, 16, 32], "main_k": 16})
    return params.model_copy(update={"kmeans": kmeans})


def metrics(**files: dict) -> Metrics:
    return Metrics(Path("metrics"), dict(files))


# ---------------------------------------------------------------- claim 1: stability (Table 1)

GAUSS = [{"kind": "gaussian", "label": f"SNR {s} dB", "value": s} for s in (30, 20, 5)]
OTHER = [{"kind": "salt_pepper", "label": "s&p", "value": 0.05}]


def stability(**token_change: list[float]) -> Metrics:
    toks = {name: {"token_change": tc} for name, tc in token_change.items()}
    return metrics(**{sets.STABILITY: {"perturbations": GAUSS + OTHER, "tokenizers": toks}})


def test_stability_supported_with_every_control():
    v = claim_stability(
        stability(
            disc=[0.0, 0.1, 0.2, 0.1],
            disc_nonoise=[0.1, 0.2, 0.3, 0.2],
            vq=[0.2, 0.3, 0.5, 0.4],
            vq_noise=[0.1, 0.2, 0.4, 0.3],
        )
    )
    assert v.verdict == "supported", v.evidence
    assert "3/3 SNRs" in v.evidence and "fewer changes in 1/1" in v.evidence


def test_stability_not_supported_when_the_main_encoder_loses_one_snr():
    v = claim_stability(stability(disc=[0.0, 0.1, 0.6, 0.1], vq=[0.2, 0.3, 0.5, 0.4]))
    assert v.verdict == "not supported"
    assert "2/3 SNRs" in v.evidence


def test_stability_a_tie_is_not_a_win():
    v = claim_stability(stability(disc=[0.2, 0.3, 0.5, 0.1], vq=[0.2, 0.3, 0.5, 0.4]))
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
    v = claim_stability(stability(disc=[0.0, 0.1, 0.2, 0.1], vq=[0.2, 0.3, 0.5, 0.4], **control))
    assert v.verdict == "partly supported", v.evidence


def test_stability_partly_supported_outside_the_augmentation():
    """Fewer changes under Gaussian noise but more under salt-and-pepper: partly."""
    v = claim_stability(stability(disc=[0.0, 0.1, 0.2, 0.5], vq=[0.2, 0.3, 0.5, 0.4]))
    assert v.verdict == "partly supported"


def test_stability_not_tested():
    assert claim_stability(metrics()).verdict == "not tested"
    assert claim_stability(stability(disc=[0.0, 0.1, 0.2, 0.1])).verdict == "not tested"


# ---------------------------------------------------------------- claim 2: generation (Table 3)


def generation(params, disc: tuple[float, float], vq: tuple[float, float], std=0.1) -> Metrics:
    k = params.kmeans.main_k
    return metrics(
        **{
            sets.gen(sets.digit_set(k)): {"fid": disc[0], "isc_mean": disc[1], "isc_std": std},
            sets.gen(sets.vq_set()): {"fid": vq[0], "isc_mean": vq[1], "isc_std": std},
        }
    )


@pytest.mark.parametrize(
    "disc, vq, verdict",
    [
        ((8.0, 6.0), (10.0, 5.0), "supported"),  # FID 20% lower, IS 1.0 higher (noise 0.2)
        ((8.0, 5.1), (10.0, 5.0), "partly supported"),  # FID better, IS tied
        ((10.2, 6.0), (10.0, 5.0), "partly supported"),  # FID tied, IS better
        ((8.0, 4.0), (10.0, 5.0), "partly supported"),  # FID better, IS worse
        ((12.0, 5.0), (10.0, 5.0), "not supported"),  # FID worse, IS tied
        ((12.0, 4.0), (10.0, 5.0), "not supported"),  # both worse
        ((9.8, 5.15), (10.0, 5.0), "inconclusive (within noise)"),  # 2% FID, IS within stds
    ],
)
def test_generation_rule(params, disc, vq, verdict):
    assert claim_generation(params, generation(params, disc, vq)).verdict == verdict


def test_generation_is_noise_comes_from_the_split_stds(params):
    """The same IS gap is a win with small split stds and a tie with large ones."""
    m = generation(params, (8.0, 5.5), (10.0, 5.0), std=0.1)
    assert claim_generation(params, m).verdict == "supported"
    m = generation(params, (8.0, 5.5), (10.0, 5.0), std=0.3)
    assert claim_generation(params, m).verdict == "partly supported"


def test_generation_not_tested(params):
    m = generation(params, (8.0, 6.0), (10.0, 5.0))
    del m.data[sets.gen(sets.vq_set())]
    assert claim_generation(params, m).verdict == "not tested"


# ---------------------------------------------------------------- claim 3: linear probe (Table 2)


def probes(params, disc: float, vq: float, best: int = 2, n_layers: int = 4, n_val=400):
    k = params.kmeans.main_k
    files = {
        sets.probe(sets.disc_model(k)): {
            "best_top1": disc,
            "best_layer": best,
            "n_layers": n_layers,
            "top1_per_layer": [disc] * n_layers,
        },
        sets.probe(sets.VQ_MODEL): {"best_top1": vq, "best_layer": 1, "n_layers": n_layers},
    }
    if n_val:
        files[sets.PREPARE] = {"n_val": n_val}
    return metrics(**files)


@pytest.mark.parametrize(
    "disc, vq, best, verdict",
    [
        # two binomial SEs of the gap on 400 val images: 2 sqrt(2 * 0.25 / 400) ~ 0.07
        (0.8, 0.5, 2, "supported"),  # a middle block
        (0.8, 0.5, 4, "partly supported"),  # the peak is the last block
        (0.8, 0.5, 1, "partly supported"),  # ... or the first
        (0.54, 0.5, 2, "inconclusive (within noise)"),
        (0.46, 0.5, 2, "inconclusive (within noise)"),
        (0.3, 0.5, 2, "not supported"),
    ],
)
def test_probe_rule(params, disc, vq, best, verdict):
    v = claim_probe(params, probes(params, disc, vq, best))
    assert v.verdict == verdict, v.evidence


def test_probe_noise_shrinks_with_more_val_images(params):
    assert claim_probe(params, probes(params, 0.54, 0.5, n_val=400)).verdict.startswith("incon")
    assert claim_probe(params, probes(params, 0.54, 0.5, n_val=40000)).verdict == "supported"


def test_probe_not_tested(params):
    m = probes(params, 0.8, 0.5)
    del m.data[sets.probe(sets.VQ_MODEL)]
    assert claim_probe(params, m).verdict == "not tested"


# ---------------------------------------------------------------- claim 4: the K ablation


def k_ablation(params, top1: list[float | None], fid: list[float | None], n_val=400) -> Metrics:
    files = {sets.PREPARE: {"n_val": n_val}}
    for k, p, f in zip(params.kmeans.ks, top1, fid, strict=True):
        if p is not None:
            files[sets.probe(sets.disc_model(k))] = {"best_top1": p}
        if f is not None:
            files[sets.gen(sets.digit_set(k))] = {"fid": f}
    return metrics(**files)


@pytest.mark.parametrize(
    "top1, fid, verdict",
    [
        ([0.4, 0.5, 0.7], [10.0, 10.0, 10.0], "supported"),  # probe spread 0.3 > 2 SE ~ 0.07
        ([0.5, 0.5, 0.5], [10.0, 11.5, 10.5], "supported"),  # FID spread 15% > 10%
        ([0.5, 0.52, 0.48], [10.0, 10.5, 10.8], "not supported"),  # both within noise
        ([0.5, 0.5, 0.5], [10.0, 10.0, 10.0], "not supported"),  # identical
        ([None, 0.5, 0.7], [None, 10.0, None], "supported"),  # two K suffice
        ([None, 0.5, None], [None, 10.0, None], "not tested"),  # one K
    ],
)
def test_k_rule(params, top1, fid, verdict):
    v = claim_k(params, k_ablation(params, top1, fid))
    assert v.verdict == verdict, v.evidence


def test_k_probe_noise_uses_the_val_size(params):
    """The same probe spread matters on many val images and not on few."""
    top1, fid = [0.5, 0.55, 0.6], [10.0, 10.0, 10.0]
    assert claim_k(params, k_ablation(params, top1, fid, n_val=100)).verdict == "not supported"
    assert claim_k(params, k_ablation(params, top1, fid, n_val=10000)).verdict == "supported"


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


LDA_AHEAD = ([0.6, 0.55, 0.5], [0.9, 0.7, 0.5])
PCA_AHEAD_AT_HIGH_NOISE = ([0.6, 0.55, 0.52], [0.9, 0.7, 0.5])


def test_toy_rule():
    assert claim_toy(toy(*LDA_AHEAD)).verdict == "supported"  # exact ties count as ties
    v = claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE))
    assert v.verdict == "not supported" and "noise std >= 2" in v.evidence
    assert claim_toy(metrics()).verdict == "not tested"


def test_toy_rule_over_geometries():
    """PCA ahead at another tilt only: partly supported, naming the tilt; ahead nowhere in the
    sweep: supported; ahead at the main tilt: not supported whatever the sweep says."""
    v = claim_toy(toy(*LDA_AHEAD, sweep={20: PCA_AHEAD_AT_HIGH_NOISE, 45: LDA_AHEAD}))
    assert v.verdict == "partly supported" and "PCA ahead at tilt 20 deg" in v.evidence
    assert "never behind at tilts 45" in v.evidence
    v = claim_toy(toy(*LDA_AHEAD, sweep={0: LDA_AHEAD, 90: LDA_AHEAD}))
    assert v.verdict == "supported"
    v = claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE, sweep={90: LDA_AHEAD}))
    assert v.verdict == "not supported"


def test_toy_ties_within_two_standard_errors():
    """A 0.02 lead for PCA is a tie on 400 test points (2 SE of a difference = 0.071) and a loss
    on 40,000 (0.0071)."""
    assert claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE, n=400)).verdict == "supported"
    assert claim_toy(toy(*PCA_AHEAD_AT_HIGH_NOISE, n=40000)).verdict == "not supported"
