"""Presets: partial overrides of params.yaml (the YAML files in this folder), deep-merged onto it.

``python -m pipeline.params apply smoke`` rewrites params.yaml in place with the smoke preset
(``git checkout params.yaml`` returns to the embedded default); the merged file is validated first.
``apply_overrides`` does the same with ``key.sub=value`` pairs (a run started from the dashboard,
pipeline/serve.py), as ``dvc exp run --set-param`` would.
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
    override = yaml.safe_load(preset.read_text()) or {}
    return _merge_into(params_path, override, f"preset {name}", REPLACED_BY_PRESETS)


def _merge_into(
    params_path: str | Path, override: dict, what: str, replaced: tuple[str, ...] = ()
) -> Params:
    """Deep-merge ``override`` onto params.yaml, validate, and only then write it back."""
    merged = deep_merge(yaml.safe_load(Path(params_path).read_text()), override, replaced)
    params = validate(merged, f"{params_path} + {what}")
    Path(params_path).write_text(yaml.safe_dump(merged, sort_keys=False))
    return params


def apply_overrides(pairs: list[str], params_path: str | Path = "params.yaml") -> Params:
    """Set ``section.key=value`` pairs (values read as YAML: 40, 0.5, [1, 2], null) in params.yaml,
    validate, and write it back; nothing is written when a pair or the result is invalid."""
    override: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"override {pair!r} must be key=value, e.g. ar.steps=40")
        *parents, leaf = key.strip().split(".")
        node = override
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return _merge_into(params_path, override, f"overrides {pairs}")
