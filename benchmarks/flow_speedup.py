"""Concurrent Prefect flow (pipeline/flow.py) vs sequential `dvc repro` on the same stages.

Copies the project to a temporary directory, reproduces the whole DAG once, then copies that state
twice, changes one param in both copies (default ``codebook.niter``: it re-runs the codebook,
tokenize and token_eval branch of every K, which are independent of each other) and times
`dvc repro` in one copy and the flow (``flow.max_parallel`` from params.yaml) in the other. The flow
runs against a temporary Prefect server whose start is not timed. Prints a markdown table.

    python benchmarks/flow_speedup.py                    # embedded default, codebook.niter + 1
    python benchmarks/flow_speedup.py --preset smoke     # tiny sizes
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COPY = [".dvc/config", ".dvc/.gitignore", "dvc.yaml", "params.yaml", "digit", "pipeline"]


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd}: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout + proc.stderr


def bump(work: Path, key: str) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    *path, last = key.split(".")
    section = params
    for part in path:
        section = section[part]
    section[last] += 1
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--param", default="codebook.niter", help="an int param to increment")
    args = parser.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    tmp = Path(tempfile.mkdtemp(prefix="flow_speedup_"))
    base = tmp / "base"
    for name in COPY:
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, base / name)
    sh(base, "git", "init", "-q")
    # dvclive (the training curves) needs a commit to start from, as in any real checkout.
    sh(
        base,
        "git",
        "-c",
        "user.name=digit",
        "-c",
        "user.email=d@localhost",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "init",
    )
    if args.preset:
        sh(base, sys.executable, "-m", "pipeline.params", "apply", args.preset)
    print(f"reproducing the whole DAG once in {base} ...", file=sys.stderr)
    sh(base, "dvc", "repro")
    seq, par = tmp / "sequential", tmp / "flow"
    for work in (seq, par):
        shutil.copytree(base, work, symlinks=True)
        bump(work, args.param)

    start = time.perf_counter()
    out = sh(seq, "dvc", "repro")
    t_seq = time.perf_counter() - start
    stages = sorted(set(re.findall(r"Running stage '([^']+)'", out)))

    from prefect.testing.utilities import prefect_test_harness

    from pipeline.flow import run
    from pipeline.params import load

    with prefect_test_harness(server_startup_timeout=300):
        start = time.perf_counter()
        outcome = run(par)
        t_flow = time.perf_counter() - start
    ran = sorted(n for n, o in outcome.items() if o == "ran")
    assert "up to date" in sh(par, "dvc", "status"), "dvc status not clean after the flow"
    load_avg = os.getloadavg()[0]
    parallel = load(par / "params.yaml").flow.max_parallel
    print(
        f"| stages re-run after `{args.param}` + 1 | `dvc repro` | flow, max_parallel {parallel} |"
    )
    print("|---|---|---|")
    print(f"| {len(stages)} ({', '.join(stages)}) | {t_seq:.1f} s | {t_flow:.1f} s |")
    print(f"\nspeed-up {t_seq / t_flow:.2f}x on {os.cpu_count()} cores, 1-min load {load_avg:.1f}")
    if ran != stages:
        print(f"note: the flow ran {ran}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
