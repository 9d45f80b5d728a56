"""Reading params.yaml: parse, validate against the schema (pipeline/params.py), check files.

Every stage and the flow call ``load`` before any compute starts, so a typo in a section that a
late stage reads is caught by the first stage. A problem is reported as one line that names the
key, e.g. ``params.yaml: kmeans.ks.0: K must be >= 2 (got 1)``; a weights file that params.yaml
names and that is missing is reported the same way (nothing is downloaded at run time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from digit.registry import URL_INCEPTION_V3
from pipeline.params import Params, ParamsError


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    # Model-level validators report the offending key at the start of the message.
    if ": " in msg and " " not in msg.split(": ", 1)[0]:
        key, msg = msg.split(": ", 1)
        loc = f"{loc}.{key}" if loc else key
    got = first.get("input")
    shown = "" if isinstance(got, dict) or first["type"] == "value_error" else f" (got {got!r})"
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    if first["type"] == "missing":
        msg = "missing key"
        shown = ""
    return f"{source}: {loc}: {msg}{shown}"


def validate(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def check_files(params: Params, root: str | Path = ".", source: str = "params.yaml") -> None:
    """Weights files named in params.yaml must exist: a missing one is reported by the first stage
    (and the flow) before any compute, not by the stage that needs it an hour later. Relative paths
    are taken from ``root``, the folder of params.yaml, where the stages run."""
    needed = []
    rows = {"encoder": params.encoder}
    rows |= {f"encoders.{k}": params.for_encoder(k).encoder for k in params.encoders}
    for key, encoder in rows.items():
        if encoder.frozen and encoder.weights:
            needed.append(
                (
                    f"{key}.weights",
                    encoder.weights,
                    f"the {encoder.name} checkpoint (.pth or .safetensors)",
                )
            )
    if params.evaluate.extractor == "inception-v3-compat" and params.evaluate.inception_weights:
        needed.append(
            (
                "evaluate.inception_weights",
                params.evaluate.inception_weights,
                f"torch-fidelity's Inception-v3 weights, a local copy of {URL_INCEPTION_V3}",
            )
        )
    for key, file, expected in needed:
        if not (Path(root) / file).is_file():  # an absolute file replaces root
            raise ParamsError(
                f"{source}: {key}: file {file!r} not found; expected {expected} "
                "(nothing is downloaded at run time)"
            )


def load(path: str | Path = "params.yaml") -> Params:
    """Read, validate and check the weights files of params.yaml (one line per problem)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    params = validate(raw, str(path))
    check_files(params, path.parent, str(path))
    return params
