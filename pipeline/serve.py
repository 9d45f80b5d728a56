"""Runs started from the dashboard: the DAG flow served as a Prefect deployment.

``make serve`` (``python -m pipeline.serve``, or the ``digit-serve`` command) registers the
deployment ``digit-run/digit`` on the Prefect server at ``PREFECT_API_URL`` and runs what is asked
of it until stopped. A researcher starts a run from the UI (Deployments, ``digit``, Run) or from a
shell::

    prefect deployment run digit-run/digit
    prefect deployment run digit-run/digit --param preset=smoke
    prefect deployment run digit-run/digit --param 'overrides=["ar.steps=40", "seeds=[0, 1]"]'

A run applies the preset, then the overrides, to the project's params.yaml (validated first; a bad
key fails the run in one line and leaves the file as it was), as ``python -m pipeline.params
apply`` and ``dvc exp run --set-param`` do: the file keeps the run's settings (``git diff
params.yaml`` shows them). Then the DAG flow (pipeline/flow.py) runs as its subflow, on the task
runner params.yaml's ``flow`` section asks for.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from prefect import flow, get_run_logger

from pipeline.flow import FlowError, check_server, run
from pipeline.params import ParamsError
from pipeline.presets import apply_overrides, apply_preset

FLOW_NAME, DEPLOYMENT = "digit-run", "digit"


@flow(name=FLOW_NAME)
def digit_run(
    root: str = ".", preset: str | None = None, overrides: list[str] | None = None
) -> dict[str, str]:
    """Apply ``preset`` and ``overrides`` (``section.key=value``) to params.yaml, then reproduce
    the DAG. Returns each stage's outcome."""
    logger = get_run_logger()
    params = Path(root).resolve() / "params.yaml"
    try:
        if preset:
            apply_preset(preset, params)
            logger.info("params.yaml: preset %s applied", preset)
        if overrides:
            apply_overrides(list(overrides), params)
            logger.info("params.yaml: %s", ", ".join(overrides))
    except ParamsError as err:
        raise FlowError(str(err)) from None
    return run(root)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the flow as a Prefect deployment.")
    parser.add_argument("--root", default=".", help="the DVC project (default: .)")
    args = parser.parse_args()
    root = str(Path(args.root).resolve())
    try:
        check_server(needed_for="a deployment")
    except FlowError as err:
        sys.exit(f"error: {err}")
    digit_run.serve(name=DEPLOYMENT, parameters={"root": root}, print_starting_message=True)


def dashboard() -> None:
    """``digit-dashboard``: a Prefect server and its UI (``make dashboard`` without make)."""
    parser = argparse.ArgumentParser(description="Start the Prefect server and dashboard.")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to reach it from elsewhere")
    parser.add_argument("--port", default="4200")
    args = parser.parse_args()
    host = "127.0.0.1" if args.host == "0.0.0.0" else args.host
    os.environ.setdefault("PREFECT_UI_API_URL", f"http://{host}:{args.port}/api")
    prefect = str(Path(sys.executable).parent / "prefect")
    os.execv(prefect, [prefect, "server", "start", "--host", args.host, "--port", args.port])


if __name__ == "__main__":
    main()
