"""Presets: partial overrides of params.yaml (the YAML files in this folder), deep-merged onto it.

``python -m pipeline.params apply smoke`` rewrites params.yaml in place with the smoke preset
(``git checkout params.yaml`` returns to the embedded default); the merged file is validated first.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.checks import validate
from pipeline.params import Params, ParamsError

PRESETS_DIR = Path(__file__).parent


# A preset's value of these keys replaces params.yaml's whole: its encoder axis is its own list.
REPLACED_BY_PRESETS = ("encoders",)


def deep_merge(base: dict, override: dict, replaced: tuple[str, ...] = ()) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in replaced:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_preset(name: str, params_path: str | Path = "params.yaml") -> Params:
    """Deep-merge ``presets/<name>.yaml`` onto params.yaml, validate, and write it back."""
    preset = PRESETS_DIR / f"{name}.yaml"
    if not preset.exists():
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise ParamsError(f"preset {name!r} not found; known presets: {known}")
    base = yaml.safe_load(Path(params_path).read_text())
    merged = deep_merge(base, yaml.safe_load(preset.read_text()) or {}, REPLACED_BY_PRESETS)
    params = validate(merged, f"{params_path} + preset {name}")
    Path(params_path).write_text(yaml.safe_dump(merged, sort_keys=False))
    return params
