"""params.yaml sections of the generative half (vq, ar, renderer, generate): ranges, names, errors."""

import copy
from pathlib import Path

import pytest
import yaml

from pipeline import checks
from pipeline import params as P

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def with_change(path: str, value):
    raw = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("ar.size", "huge", "ar.size: unknown GPT size 'huge'; known: ['tiny', 'small', 'base'"),
        ("renderer.size", "gpt2", "renderer.size: unknown GPT size 'gpt2'"),
        ("ar.n_embd", 130, "ar.n_embd: 130 is not divisible by n_head=4"),
        ("ar.schedule", "linear", "ar.schedule: Input should be 'cosine', 'inverse_sqrt'"),
        ("ar.label_smoothing", 1.0, "ar.label_smoothing: Input should be less than 1"),
        ("ar.betas", [0.9, 1.0], "ar.betas.1: Input should be less than 1"),
        ("ar.class_dropout", -0.1, "ar.class_dropout: Input should be greater than or equal to 0"),
        ("renderer.steps", 0, "renderer.steps: Input should be greater than 0"),
        (
            "generate.token_model.top_p",
            0.0,
            "generate.token_model.top_p: Input should be greater than 0",
        ),
        (
            "generate.token_model.top_p",
            1.5,
            "generate.token_model.top_p: Input should be less than or equal",
        ),
        (
            "generate.renderer_causal.temperature",
            -1,
            "generate.renderer_causal.temperature: Input should be",
        ),
        (
            "generate.token_model_cond.cfg_scale",
            -2,
            "generate.token_model_cond.cfg_scale: Input should be",
        ),
        ("generate.renderer_maskgit.steps", 0, "generate.renderer_maskgit.steps: Input should be"),
        ("generate.token_model.cfg_scale", 2.0, "generate.token_model.cfg_scale: unknown key"),
        ("vq.ema_decay", 1.0, "vq.ema_decay: Input should be less than 1"),
        ("vq.codebook_size", 1, "vq.codebook_size: Input should be greater than or equal to 2"),
    ],
)
def test_bad_values_name_the_key(path, value, expected):
    with pytest.raises(P.ParamsError) as err:
        checks.validate(with_change(path, value))
    message = str(err.value)
    assert expected in message, message
    assert "\n" not in message


def test_paper_sizes_selectable_by_name():
    for size in ("base", "large"):
        raw = with_change("ar.size", size)
        raw["ar"]["n_embd"] = None  # the named size's own width
        assert checks.validate(raw).ar.size == size


def test_schema_takes_its_names_from_the_registries():
    from digit.gpt import GPT_SIZES, build_gpt
    from digit.schedule import SCHEDULES

    for size in GPT_SIZES:
        raw = with_change("ar.size", size)
        raw["ar"]["n_embd"] = None
        assert checks.validate(raw).ar.size == size
    assert build_gpt("tiny").config.n_embd == GPT_SIZES["tiny"]["n_embd"]
    with pytest.raises(P.ParamsError, match="ar.size: unknown GPT size 'huge'"):
        checks.validate(with_change("ar.size", "huge"))
    for schedule in SCHEDULES:
        assert (
            checks.validate(with_change("renderer.schedule", schedule)).renderer.schedule
            == schedule
        )
    with pytest.raises(P.ParamsError, match="renderer.schedule: Input should be 'cosine'"):
        checks.validate(with_change("renderer.schedule", "linear"))


def test_train_config_covers_the_train_fields():
    import dataclasses

    from pipeline.train import TrainConfig, train_config

    params = checks.validate(DEFAULT)
    cfg = train_config(params.ar, params.seed)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}
    # nproc says how many processes train, not what they compute (pipeline/ddp.py reads it)
    assert fields == set(P.TrainFields.model_fields) - {"nproc"}
    assert cfg.steps == params.ar.steps and cfg.betas == tuple(params.ar.betas)
