"""Items 1, 2 and 7: figures that need the whole DAG, read from runs the lead makes.

1. ``repro``: total and per-stage wall time of the embedded default ``dvc repro`` from a clean clone.
   Per-stage times come from the ``stage X: done in N s`` lines every stage logs
   (pipeline/stage.py); without a log, from the modification times of each stage's outputs in
   dvc.lock (approximate: the time between one stage's last output and the previous one's).
   Making the log (about 15 minutes; not part of ``make bench``):

       python -m benchmarks.repro --clean-clone reports/repro.log

2. ``noop``: ``dvc repro`` and ``dvc status`` on this checkout once it is reproduced (goal <= 2 s),
   and the no-op Prefect flow (its temporary server's start is not timed).
7. ``flow``: benchmarks/flow_speedup.py (reproduces a whole DAG in a temporary copy: slow; or
   ``--flow-base DIR`` starts from a reproduced checkout, such as the one ``--keep`` leaves).
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

from benchmarks.common import ROOT, Section, seconds
from pipeline.dag import copy_project, lock_entries

DONE = re.compile(r"^(\d\d):(\d\d):(\d\d) \S+ INFO stage (\S+): done in ([\d.]+) s", re.M)
TOTAL = re.compile(r"^# dvc repro wall time: ([\d.]+) s", re.M)


def parse_log(text: str) -> tuple[list[tuple[str, float]], float | None]:
    """(stage, seconds) in the order they finished, and the total wall time if the log has it."""
    stages = [(m.group(4), float(m.group(5))) for m in DONE.finditer(text)]
    total = TOTAL.search(text)
    return stages, float(total.group(1)) if total else None


# What each stage's time goes to, by the name the stage logs (first match wins).
GROUPS = [
    ("GPT training (token models, renderers)", re.compile(r"^(ar|renderer)_")),
    ("encoder training (ssl)", re.compile(r"^ssl")),
    ("VQ autoencoder training", re.compile(r"^vq")),
    ("generation and its FID / IS (generate, upper bounds)", re.compile(r"^generate_")),
    ("sampling search (Fig. 6, the selected rows)", re.compile(r"^sampling")),
    ("probes and token / encoder evaluation", re.compile(r"^(probe|token_eval|encoder_eval)")),
    ("the rest", re.compile(r"")),
]


def groups(stages: list[tuple[str, float]]) -> list[tuple[str, float, int]]:
    """(group, seconds, stages) for GROUPS, in that order, empty groups left out."""
    out = {name: [0.0, 0] for name, _ in GROUPS}
    for stage, t in stages:
        name = next(name for name, rx in GROUPS if rx.search(stage))
        out[name][0] += t
        out[name][1] += 1
    return [(name, t, n) for name, (t, n) in out.items() if n]


def from_lock(root: Path) -> list[tuple[str, float]]:
    """Approximate stage times from when each stage's outputs were last written."""
    lock = lock_entries(root)
    done = []
    for name, entry in lock.items():
        mtimes = [_mtime(root / out["path"]) for out in entry.get("outs", [])]
        mtimes = [m for m in mtimes if m is not None]
        if mtimes:
            done.append((max(mtimes), name))
    done.sort()
    return [(name, t - prev) for (prev, _), (t, name) in zip(done, done[1:], strict=False)]


def _mtime(path: Path) -> float | None:
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=None)


def run_repro(opts) -> Section:
    if opts.repro_log:
        stages, total = parse_log(Path(opts.repro_log).read_text())
        source = f"the log {opts.repro_log}"
    else:
        stages, total = from_lock(ROOT), None
        source = "output modification times in dvc.lock (approximate)"
    if not stages:
        sys.exit("error: --repro-log: no 'stage X: done in N s' lines found")
    summed = sum(t for _, t in stages)
    total = total or summed
    rows = [{"stage": "**total**", "seconds": total, "share": "100%"}]
    for group, t, n in groups(stages):
        rows.append({"stage": f"*{group}* ({n})", "seconds": t, "share": f"{t / total:.1%}"})
    if total > summed:
        rows.append({"stage": f"*between stages: DVC + process start-up* ({len(stages)})",
                     "seconds": total - summed, "share": f"{(total - summed) / total:.1%}"})  # fmt: skip
    for name, t in sorted(stages, key=lambda s: -s[1]):
        rows.append({"stage": name, "seconds": t, "share": f"{t / total:.1%}"})
    return Section(
        key="repro",
        title="1. Full `dvc repro` of the embedded default: total and per stage",
        measured=f"read from {source}",
        rows=rows,
        notes=[
            f"From {source}; {len(stages)} stages, {summed / 60:.1f} min inside the stages, "
            f"{total / 60:.1f} min wall. The difference, "
            f"{(total - summed) / max(len(stages), 1):.1f} s per stage, is DVC's bookkeeping "
            "(it re-reads params.yaml for every stage and rewrites the stage's dvc.lock after "
            "each: one per kind of stage, dag/<kind>/dvc.lock, so that file stays small; a single "
            "dvc.lock for 138 stages cost 2.8 s a stage on average, 5-6 s at the end) and each "
            "stage's start: a fork of the warm stage server (pipeline/warm.py), "
            "which has torch & co. imported already, or a cold Python + torch start (3-8 s) "
            "while none is up. "
            f"Goal: 15 min or less on 2 cores ({'met' if total <= 900 else 'NOT met'})."
        ],
    )


def run_warm(opts) -> Section:
    """Item 10: the same whole-DAG run with warm and with cold stage starts (two logs)."""
    if not (opts.repro_log and opts.cold_log):
        sys.exit("error: item warm needs --repro-log (warm run) and --cold-log (cold run)")
    rows, totals = [], {}
    for label, path in (
        ("warm (fork server)", opts.repro_log),
        ("cold (DIGIT_WARM=0)", opts.cold_log),
    ):
        text = Path(path).read_text()
        stages, total = parse_log(text)
        if not stages or total is None:
            sys.exit(f"error: {path}: not a complete `benchmarks.repro` log")
        inside = sum(t for _, t in stages)
        totals[label] = total
        rows.append(
            {
                "stage starts": label,
                "stages": len(stages),
                "wall s": total,
                "inside stages s": inside,
                "between stages s / stage": (total - inside) / len(stages),
            }
        )
    warm, cold = totals.values()
    return Section(
        key="warm",
        title="10. Warm vs cold stage starts on the whole DAG",
        measured="two clean-clone `dvc repro` runs made back to back by one command",
        rows=rows,
        notes=[
            f"Cold / warm wall time: {cold / warm:.2f}x ({cold - warm:.0f} s saved). 'Between "
            "stages' is DVC's bookkeeping plus each stage's start: a fork of the warm server, or "
            "a fresh Python importing torch, torchvision and torch-fidelity. Made by "
            "`python -m benchmarks.repro --cold-first COLD.log --clean-clone WARM.log`."
        ],
    )


def dvc(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: dvc {' '.join(args)} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout + proc.stderr


def run_noop(opts) -> Section:
    if "up to date" not in dvc("status"):
        sys.exit("error: item noop: this checkout is not reproduced (`dvc status` is not clean)")
    t_status = seconds(lambda: dvc("status"), repeat=3)
    t_repro = seconds(lambda: dvc("repro"), repeat=3)
    n_stages = len(lock_entries(ROOT))
    rows = [
        {"command": "`dvc status`", "seconds (best of 3)": t_status},
        {"command": "`dvc repro` (no-op)", "seconds (best of 3)": t_repro},
    ]
    if not opts.quick:
        from prefect.testing.utilities import prefect_test_harness

        from pipeline import flow

        with prefect_test_harness(server_startup_timeout=300):
            t_flow = seconds(lambda: flow.run(ROOT))
        rows.append({"command": "Prefect flow (no-op)", "seconds (best of 3)": t_flow})
    return Section(
        key="noop",
        title="2. No-op `dvc repro`, `dvc status` and the no-op flow",
        rows=rows,
        notes=[
            f"On this checkout after a full reproduction: {n_stages} stage entries in the dvc.lock files. "
            f"Goal: no-op `dvc repro` in 2 s or less ({'met' if t_repro <= 2 else 'NOT met'}). "
            "The flow row is one run; its temporary Prefect server's start is not timed."
        ],
    )


def run_flow(opts) -> Section:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "flow_speedup.py")]
    if opts.quick:
        cmd += ["--preset", "smoke"]
    if opts.flow_base:
        cmd += ["--base", opts.flow_base]
    blocks = []
    if opts.flow_whole:
        if not opts.repro_log:
            sys.exit("error: --flow-whole needs --repro-log (the dvc repro it is compared with)")
        blocks.append(_flow_speedup([*cmd, "--whole", opts.repro_log]))
    blocks.append(_flow_speedup(cmd))
    return Section(
        key="flow",
        title="7. Concurrent stages under the Prefect flow vs sequential `dvc repro`",
        notes=[
            *blocks,
            "From benchmarks/flow_speedup.py"
            + (" on the smoke preset." if opts.quick else " on the embedded default."),
        ],
    )


def _flow_speedup(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: flow_speedup.py failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def clean_clone(
    log: Path, keep: bool = False, warm: bool = True, env_extra: dict[str, str] | None = None
) -> Path:
    """Copy the project to a temporary git checkout, time `dvc repro` there, keep the log (and
    with ``keep`` the checkout, whose outputs and DVC cache can then be copied back). ``warm``
    False: every stage starts cold (``DIGIT_WARM=0``), the baseline of item 10. ``env_extra``:
    more environment for the run (thread counts). Returns the checkout's path."""
    work = Path(tempfile.mkdtemp(prefix="bench_repro_"))
    copy_project(ROOT, work)
    git = ["git", "-c", "user.name=digit", "-c", "user.email=digit@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=work, check=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1"}
    env["DIGIT_WARM"] = "1" if warm else "0"
    env.update(env_extra or {})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            ["dvc", "repro"], cwd=work, stdout=f, stderr=subprocess.STDOUT, env=env
        )
    total = time.perf_counter() - t0
    with open(log, "a") as f:
        f.write(f"# stage starts: {'warm' if warm else 'cold (DIGIT_WARM=0)'}\n")
        f.write(f"# dvc repro wall time: {total:.1f} s (exit {proc.returncode}, in {work})\n")
    print(
        f"dvc repro ({'warm' if warm else 'cold'}): {total:.1f} s, exit {proc.returncode}; log {log}"
    )
    if proc.returncode == 0 and not keep:
        shutil.rmtree(work, ignore_errors=True)
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description="time a full `dvc repro` in a clean clone")
    parser.add_argument("--clean-clone", metavar="LOG", required=True, type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the checkout (path in the log)")
    parser.add_argument(
        "--cold-first",
        metavar="LOG",
        type=Path,
        help="item 10: first the same run with every stage started cold (DIGIT_WARM=0), logged here",
    )
    args = parser.parse_args()
    if args.cold_first:
        clean_clone(args.cold_first, keep=False, warm=False)
    clean_clone(args.clean_clone, args.keep)


if __name__ == "__main__":
    main()
