"""Concurrent Prefect flow (pipeline/flow.py) vs sequential `dvc repro` on the same stages.

Copies the project to a temporary directory, reproduces the whole DAG once, then copies that state
twice, changes one param in both copies (default ``generate.n_samples``: it re-runs the generate
stage of every generated set, branches independent of each other, and the report) and times
`dvc repro` in one copy and the flow (``flow.max_parallel`` from params.yaml) in the other. The flow
runs against a temporary Prefect server whose start is not timed. Prints a markdown table.

    python benchmarks/flow_speedup.py                    # embedded default, generate.n_samples + 1
    python benchmarks/flow_speedup.py --preset smoke     # tiny sizes
    python benchmarks/flow_speedup.py --whole LOG        # the whole DAG from nothing, vs that
                                                         # benchmarks.repro log's dvc repro time
    python benchmarks/flow_speedup.py --base DIR         # start from a reproduced checkout DIR
                                                         # (e.g. benchmarks.repro --keep's)
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
from pipeline.dag import copy_project  # noqa: E402


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


def fresh_copy(work: Path, preset: str | None) -> None:
    """The project's code and params in ``work``, a git checkout with one commit, no outputs."""
    copy_project(ROOT, work)
    sh(work, "git", "init", "-q")
    # dvclive (the training curves) needs a commit to start from, as in any real checkout.
    git = ["git", "-c", "user.name=digit", "-c", "user.email=d@localhost"]
    sh(work, *git, "commit", "-q", "--allow-empty", "-m", "init")
    if preset:
        sh(work, sys.executable, "-m", "pipeline.params", "apply", preset)


def timed_flow(work: Path) -> tuple[float, dict]:
    """Wall time of the flow over ``work`` against a temporary Prefect server (start not timed)."""
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.flow import run

    with prefect_test_harness(server_startup_timeout=300):
        start = time.perf_counter()
        outcome = run(work)
        return time.perf_counter() - start, outcome


def whole(repro_log: Path, preset: str | None) -> None:
    """The whole DAG from nothing under the flow, against a `dvc repro` log of the same DAG."""
    from benchmarks.repro import parse_log
    from pipeline.checks import load

    stages, t_seq = parse_log(repro_log.read_text())
    if t_seq is None:
        sys.exit(f"error: --whole {repro_log}: no '# dvc repro wall time' line")
    work = Path(tempfile.mkdtemp(prefix="flow_whole_"))
    fresh_copy(work, preset)
    t_flow, outcome = timed_flow(work)
    ran = sum(o == "ran" for o in outcome.values())
    assert "up to date" in sh(work, "dvc", "status"), "dvc status not clean after the flow"
    parallel = load(work / "params.yaml").flow.max_parallel
    print(
        f"| whole DAG from nothing | `dvc repro` ({repro_log.name}) | flow, max_parallel {parallel} |"
    )
    print("|---|---|---|")
    print(f"| {ran} stages ({len(stages)} in the log) | {t_seq:.1f} s | {t_flow:.1f} s |")
    print(f"\nspeed-up {t_seq / t_flow:.2f}x on {os.cpu_count()} cores")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--param", default="generate.n_samples", help="an int param to increment")
    parser.add_argument("--base", type=Path, default=None, help="an already reproduced checkout")
    parser.add_argument(
        "--whole",
        type=Path,
        default=None,
        metavar="REPRO_LOG",
        help=("time the whole DAG from nothing under the flow against this benchmarks.repro log"),
    )
    args = parser.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    if args.whole:
        whole(args.whole, args.preset)
        return

    tmp = Path(tempfile.mkdtemp(prefix="flow_speedup_"))
    base = args.base or tmp / "base"
    if args.base is None:
        fresh_copy(base, args.preset)
        print(f"reproducing the whole DAG once in {base} ...", file=sys.stderr)
        sh(base, "dvc", "repro")
    elif "up to date" not in sh(base, "dvc", "status"):
        sys.exit(f"error: --base {base}: not reproduced (`dvc status` is not clean)")
    seq, par = tmp / "sequential", tmp / "flow"
    for work in (seq, par):
        shutil.copytree(base, work, symlinks=True)
        bump(work, args.param)

    start = time.perf_counter()
    out = sh(seq, "dvc", "repro")
    t_seq = time.perf_counter() - start
    stages = sorted(set(re.findall(r"Running stage '([^']+)'", out)))

    from pipeline.checks import load

    t_flow, outcome = timed_flow(par)
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
