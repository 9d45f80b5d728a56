"""One module per DVC stage, each run by dvc.yaml as ``python3 -m pipeline.stages.<name>``.

Importing this package runs two checks first, before any stage module loads:

- The interpreter: dvc.yaml says ``python3``, which is whatever ``python3`` the shell that runs
  ``dvc repro`` finds first, e.g. the system's when ``.venv/bin/dvc repro`` runs from a shell
  without the venv activated. When this interpreter lacks the project's packages and the project
  (or a folder above it: ``dvc exp run --queue`` runs in ``.dvc/tmp/exps/...``) has
  ``.venv/bin/python``, the stage re-executes itself with that one (same arguments); with no venv
  there, it stops at once with one ``error:`` line saying what to run.
- The warm launcher (pipeline/warm.py): run the stage in the warm stage server when one listens.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from pipeline import warm

# Top-level packages every stage imports; find_spec looks them up on sys.path without importing.
REQUIRED = ("numpy", "torch", "pydantic", "yaml", "tqdm", "zarr")
# Set on the re-executed process: a venv that lacks the packages too must not loop.
REEXEC_VAR = "DIGIT_REEXEC"
PROJECT = Path(__file__).resolve().parents[2]


def project_python(start: Path = PROJECT) -> Path:
    """The nearest ``.venv/bin/python`` at or above ``start`` (else ``start``'s, missing)."""
    for folder in (start, *start.parents):
        if (folder / ".venv" / "bin" / "python").is_file():
            return folder / ".venv" / "bin" / "python"
    return start / ".venv" / "bin" / "python"


def missing_packages(names: tuple[str, ...] = REQUIRED) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def interpreter_action(
    missing: list[str], venv_python: Path, executable: str, reexeced: bool
) -> tuple[str, str]:
    """What a stage process does about its interpreter: ("ok", ""), ("exec", path of the project's
    venv python), or ("error", the one line to print)."""
    if not missing:
        return "ok", ""
    same = Path(executable).absolute() == venv_python.absolute()
    if venv_python.is_file() and os.access(venv_python, os.X_OK) and not same and not reexeced:
        return "exec", str(venv_python)
    where = (
        f"nor does {venv_python}"
        if venv_python.is_file()
        else f"and {venv_python} does not exist (`make bootstrap` creates it)"
    )
    return "error", (
        f"error: {executable} lacks the project's packages ({', '.join(missing)}), {where}; "
        "run the pipeline with `make repro`, or `source .venv/bin/activate` and then `dvc repro`"
    )


def ensure_interpreter() -> None:
    """For ``python -m pipeline.stages.<name>`` only (a plain import is left alone): re-exec with
    the project's venv python, or exit with one ``error:`` line, when this one lacks packages."""
    if warm._stage_argv(sys.orig_argv) is None:
        return
    action, what = interpreter_action(
        missing_packages(),
        project_python(),
        sys.executable,
        os.environ.get(REEXEC_VAR) == "1",
    )
    if action == "exec":
        os.environ[REEXEC_VAR] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(what, [what, *sys.orig_argv[1:]])
    elif action == "error":
        sys.exit(what)


ensure_interpreter()
# `python -m pipeline.stages.<name>`: run in the warm stage server when one is listening (it has
# torch & co. imported already; pipeline/warm.py), else here, cold. A no-op on a plain import.
warm.hand_off()
