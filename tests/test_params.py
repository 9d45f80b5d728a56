"""params.yaml schema: the defaults and presets validate; every mistake is one line naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from pipeline import checks, presets
from pipeline import params as P

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_change(path: str, value):
    raw = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def test_default_and_presets_validate():
    checks.validate(DEFAULT)
    for preset in presets.PRESETS_DIR.glob("*.yaml"):
        merged = presets.deep_merge(
            DEFAULT, yaml.safe_load(preset.read_text()) or {}, presets.REPLACED_BY_PRESETS
        )
        checks.validate(merged, preset.name)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("kmeans.ks", [1, 256], "kmeans.ks.0: Input should be greater than or equal to 2"),
        ("kmeans.ks", [256, 10**7], "kmeans.ks: K=10000000 exceeds"),
        ("kmeans.main_k", 100, "kmeans.main_k: 100 is not one of kmeans.ks"),
        ("kmeans.niter", "twenty", "kmeans.niter: Input should be a valid integer"),
        ("ssl.lr", -1.0, "ssl.lr: Input should be greater than 0"),
        ("encoder.name", "vit_tiny", "encoder.name: unknown encoder 'vit_tiny'; expected one of"),
        ("data.dataset", "cifar", "data.dataset: Input should be"),
        ("data.image_size", 30, "data.image_size: dataset 'mnist5k' is 28x28"),
        (
            "encoder.input_size",
            30,
            "encoder.input_size: 30 px is not divisible by the patch size 4",
        ),
        ("device", "tpu", "device: expected auto, cpu, cuda or cuda:N"),
        ("sample_seeds", [0, 9], "sample_seeds: expected distinct seeds out of seeds"),
        ("ssl.noise_p", 1.5, "ssl.noise_p: Input should be less than or equal to 1"),
        ("renderer.align_kernel", 4, "renderer.align_kernel: expected an odd size (got 4)"),
        ("encoders_model.size", "huge", "encoders_model.size: unknown GPT size 'huge'"),
        ("path.large_steps_factor", 0, "path.large_steps_factor: Input should be greater than 0"),
        ("data.pixels", "folder", "data.pixels: 'folder' decodes the files under data.root"),
        ("ar.precision", "fp8", "ar.precision: Input should be 'fp32', 'bf16' or 'fp16'"),
        ("extract.keep", 0, "extract.keep"),
        ("encoders.Dino", {"label": "x"}, "encoders.Dino: a row key is lower-case letters"),
        ("vq_rows.long", {"label": "x"}, "vq_rows.long: a row key is lower-case letters"),
        ("vq_rows.s1", {"label": "x"}, "vq_rows.s1: a row key is lower-case letters"),
        ("vq_rows.noise.epochs", 0, "vq_rows.noise.epochs: Input should be greater than 0"),
        ("vq_rows.noise.ema_decay", 0.9, "vq_rows.noise.ema_decay: unknown key"),
        ("vq_rows.wide", {"hidden": 128}, "vq_rows.wide.label: missing key"),
        ("encoders.k64", {"label": "x"}, "encoders.k64: a row key is lower-case letters"),
        ("encoders.mae.objective", "byol", "encoders.mae.objective: Input should be"),
        ("encoders.mae.depth", 3, "encoders.mae.depth: unknown key"),
        ("encoders.mae.name", "vit_tiny", "encoders.mae.name: unknown encoder 'vit_tiny'"),
        (
            "encoders.dino",
            {"label": "DINO", "name": "timm:vit_small_patch16_224.dino"},
            "encoders.dino.weights: encoder 'timm:vit_small_patch16_224.dino' needs a local",
        ),
        (
            "encoders.dino",
            {
                "label": "DINO",
                "name": "timm:vit_small_patch16_224",
                "weights": "w.pth",
                "objective": "mae",
            },
            "encoders.dino.objective: 'timm:vit_small_patch16_224' is used as released",
        ),
    ],
)
def test_bad_values_name_the_key(path, value, expected):
    with pytest.raises(P.ParamsError) as err:
        checks.validate(with_change(path, value))
    message = str(err.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith("params.yaml: ")


def test_a_vq_row_is_vq_with_its_changes():
    raw = copy.deepcopy(DEFAULT)
    raw["vq_rows"] = {"wide": {"label": "wide VQ", "hidden": 128, "codebook_size": 512}}
    params = checks.validate(raw)
    row = params.for_vq_row("wide").vq
    assert (row.hidden, row.codebook_size, row.epochs) == (128, 512, params.vq.epochs)
    assert params.for_vq_row(None).vq == params.vq
    with pytest.raises(ValueError, match=r"vq_rows: no row 'tall' \(rows: wide\)"):
        params.for_vq_row("tall")


def test_unknown_and_missing_keys():
    raw = copy.deepcopy(DEFAULT)
    raw["kmeans"]["sphrical"] = True
    with pytest.raises(P.ParamsError, match=r"kmeans.sphrical: unknown key"):
        checks.validate(raw)
    raw = copy.deepcopy(DEFAULT)
    del raw["ssl"]["epochs"]
    with pytest.raises(P.ParamsError, match=r"ssl.epochs: missing key"):
        checks.validate(raw)


def test_dinov2_needs_weights_and_divisible_size():
    raw = with_change("encoder.name", "dinov2_vitb14_reg4")
    raw["encoder"]["input_size"] = 224
    with pytest.raises(P.ParamsError, match=r"encoder.weights: .* needs a local weights file"):
        checks.validate(raw)
    raw["encoder"]["weights"] = "/some/file.pth"
    raw["encoder"]["input_size"] = 200
    with pytest.raises(P.ParamsError, match=r"not divisible by the patch size 14"):
        checks.validate(raw)


def test_schema_takes_its_names_from_the_registries():
    """Every name a registry builds is accepted, and nothing else: the schema reads the names from
    digit (torch-free modules), the builders are keyed by the same tables."""
    from digit.data import DATASETS, FIXED_SIZES, open_dataset
    from digit.encoders import ENCODERS, TRAINABLE, build_encoder
    from digit.metrics.fid import EXTRACTORS
    from digit.registry import ENCODER_PATCH, SSL_OBJECTIVES

    assert set(ENCODERS) == set(ENCODER_PATCH) and set(ENCODERS) >= TRAINABLE
    assert (
        build_encoder("cnn_small", in_channels=1, input_size=28).patch == ENCODER_PATCH["cnn_small"]
    )
    for name in ENCODERS:  # and "timm:<any timm name>", checked by tests/test_encoders.py
        P.EncoderParams(name=name)
    accepted = {
        "data.dataset": DATASETS,
        "ssl.objective": SSL_OBJECTIVES,
        "evaluate.extractor": EXTRACTORS,
    }
    for path, names in accepted.items():
        section, key = path.split(".")
        field = P.Params.model_fields[section].annotation.model_fields[key]
        assert set(field.annotation.__args__) == set(names), path
    for name, n in FIXED_SIZES.items():
        assert len(open_dataset(name, None, 28, 1).labels) == n


def _schema_defaults(model, node, prefix=""):
    """(dotted key, schema default, params.yaml value) for every key of ``node`` with a default."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    for name, field in model.model_fields.items():
        value = node.get(name) if isinstance(node, dict) else None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _schema_defaults(annotation, value or {}, f"{prefix}{name}.")
        elif field.default is not PydanticUndefined or field.default_factory is not None:
            default = field.get_default(call_default_factory=True)
            yield f"{prefix}{name}", list(default) if isinstance(default, tuple) else default, value


def test_schema_defaults_are_the_params_yaml_values():
    """A key left out of params.yaml (or a preset's base) means what params.yaml says."""
    rows = list(_schema_defaults(P.Params, DEFAULT))
    assert len(rows) > 100
    for key, default, value in rows:
        assert default == value, f"{key}: schema default {default!r}, params.yaml {value!r}"


def test_stage_reports_one_line(tmp_path):
    import subprocess
    import sys

    bad = with_change("kmeans.ks", [1])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.stages.prepare",
            "--out",
            str(tmp_path / "x.zarr"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "kmeans.ks.0" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_path_and_encoder_row_variants():
    """Fig. 3(a)'s long / large and the encoder rows' model as overrides of the ar section: the
    default's rows train the main recipe; the paper's large row and rows train their own length."""
    from pipeline.stages.ar import variants

    v = variants(checks.validate(DEFAULT))
    steps = DEFAULT["ar"]["steps"]
    assert v["row"] == {} and v["long"] == {"steps": 2 * steps}
    assert v["large"]["steps"] == steps and v["large"]["n_embd"] == 160  # as the paper's 732M
    raw = with_change("path.large_steps_factor", None)  # null: as long as "+ longer training"
    raw["encoders_model"].update(size="base", n_embd=512, steps=7)
    v = variants(checks.validate(raw))
    assert v["large"]["steps"] == 2 * steps
    # a size brings its own depth, heads and FFN; given keys win
    assert v["row"] == {
        "size": "base",
        "n_layer": None,
        "n_head": None,
        "n_embd": 512,
        "ffn": None,
        "steps": 7,
    }


def test_a_config_built_from_a_section_reads_only_its_own_fields():
    """``build_config`` reads each field of the dataclass that the section has (and records it as a
    params read), takes ``given`` values instead of the section's and leaves the rest at the
    dataclass's defaults: a stage depends on exactly the keys its config uses."""
    from digit.ssl import MAEConfig

    params = checks.validate(DEFAULT)
    P.start_recording()
    try:
        cfg = P.build_config(MAEConfig, params.ssl, epochs=3)
        keys = P.recorded_keys()
    finally:
        P.stop_recording()
    assert cfg == MAEConfig(
        epochs=3,
        batch_size=params.ssl.batch_size,
        lr=params.ssl.lr,
        weight_decay=params.ssl.weight_decay,
        warmup_epochs=params.ssl.warmup_epochs,
        mask_ratio=params.ssl.mask_ratio,
        precision=params.ssl.precision,
        tf32=params.ssl.tf32,
    )
    read = ("batch_size", "lr", "weight_decay", "warmup_epochs", "mask_ratio", "precision", "tf32")
    assert keys == {f"ssl.{k}" for k in read}  # not ssl.epochs (given), nor temperature etc.
