"""What every stage's ``main()`` shares: CLI paths from dvc.yaml, validated params, logging,
device choice, seeding, and turning known failures into one clear line instead of a traceback."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import sys
import time
from collections.abc import Iterator

import numpy as np

from pipeline import io
from pipeline.checks import load
from pipeline.params import (
    Params,
    ParamsError,
    recorded_keys,
    start_recording,
    stop_recording,
    unrecorded_dump,
)

log = logging.getLogger("digit")

# Wall-clock figures of this stage process: written to ``--timings`` when the stage ends, never to an
# output that another stage reads (a re-run on the same inputs then writes the same bytes and DVC
# stops there). The report reads metrics/, not timings/.
_timings: dict[str, float] = {}
_timings_path: list[str | None] = [None]
_seed: list[int | None] = [None]  # --seed: this branch of the seed axis (replaces params.seed)


def record_timing(**figures: float) -> None:
    """Add wall-clock figures (seconds, throughput) to this stage's timings file."""
    _timings.update({k: round(float(v), 2) for k, v in figures.items()})


class StageError(RuntimeError):
    """A failure the user can fix (bad input file, missing weights): printed as one line."""


def cli(
    doc: str | None,
    *paths: str,
    extra: dict[str, type] | None = None,
    optional: tuple[str, ...] = (),
) -> argparse.Namespace:
    """Parse ``--<name> PATH`` for every path the stage reads or writes (given by dvc.yaml);
    ``optional`` paths default to None (a stage whose inputs depend on what it generates)."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    for name in paths:
        parser.add_argument(f"--{name}", required=True)
    for name in optional:
        parser.add_argument(f"--{name}", default=None)
    for name, typ in (extra or {}).items():
        parser.add_argument(f"--{name}", type=typ, required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--timings", default=None, help="JSON of this run's wall-clock figures")
    parser.add_argument("--seed", type=int, default=None, help="the seed axis: replaces `seed`")
    args = parser.parse_args()
    _timings_path[0] = args.timings
    _seed[0] = args.seed
    return args


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("DIGIT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its INFO lines are about itself


@contextlib.contextmanager
def stage(name: str, params_path: str = "params.yaml") -> Iterator[Params]:
    """Validate params, seed everything, time the stage, and report user errors as one line."""
    setup_logging()
    start = time.perf_counter()
    try:
        params = load(params_path)
        if _seed[0] is not None:  # --seed, not params.yaml's `seed` (so not a params read)
            params = params.model_copy(update={"seed": _seed[0]})
        start_recording()
        seed_everything(params.seed)
        log.info("stage %s: start", name)
        yield params
        check_declared(name)
    except (ParamsError, StageError, FileNotFoundError) as err:
        # One line, not a log record and a copy of it: the flow shows this `error:` line.
        sys.exit(f"error: {err}")
    finally:
        stop_recording()
    seconds = time.perf_counter() - start
    log.info("stage %s: done in %.1f s", name, seconds)
    if _timings_path[0] and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 writes
        io.write_json(
            _timings_path[0], {"stage": name, "stage_seconds": round(seconds, 1), **_timings}
        )


def check_declared(name: str) -> None:
    """Fail the stage if it read a params key that its DVC stage does not list (DVC would not re-run
    it when that key changes). Stage modules only (``python -m pipeline.stages.<module>``)."""
    from pipeline import dag

    module = _main_module()
    if module is None:
        return
    missing = dag.undeclared(recorded_keys(), dag.declared_params(module))
    if missing:
        raise StageError(
            f"stage {name} read params {', '.join(missing)}, which its DVC stage does not list: "
            "add them to its Kind's params in pipeline/dag.py and run `python -m pipeline.dag`"
        )


def resolved_params(params: Params) -> dict:
    """The record of the params a stage's outputs were made with (kept inside model files): the
    keys its DVC stage lists, i.e. what DVC watches; all of them outside a stage process."""
    from pipeline import dag

    record = unrecorded_dump(params)
    module = _main_module()
    return dag.select(record, dag.declared_params(module)) if module else record


def _main_module() -> str | None:
    """``pipeline.stages.<name>`` when this process runs a stage module, else None."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    module = getattr(spec, "name", "") or ""
    return module if module.startswith("pipeline.stages.") else None


def apply_variant(
    params: Params, section: str, variants: dict[str, dict], variant: str | None
) -> Params:
    """``params`` with the overrides of ``--variant`` applied to ``params.<section>``: a DVC stage
    such as ar_variant@long is its base stage with one named change to the recipe;
    ``main`` (or none) is the recipe of params.yaml as it stands."""
    if variant in (None, "main"):
        return params
    if variant not in variants:
        raise StageError(
            f"--variant: expected main or one of {', '.join(variants)}; got {variant!r}"
        )
    old = getattr(params, section)
    return params.model_copy(update={section: old.model_copy(update=variants[variant])})


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StageError(f"device: {device!r} requested but no CUDA device is available")
    return device
