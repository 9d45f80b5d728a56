"""The pipeline as a Prefect flow over the DVC DAG: watch and drive `dvc repro` from the dashboard.

DVC stays the one source of truth and the one cache. The flow reads the stages and their edges from
dvc.yaml through DVC's Python API, asks DVC which stages are out of date, and runs every stage as a
Prefect task named after it (up-to-date ones finish at once as ``Skipped``). Independent stages run
concurrently, at most ``flow.max_parallel`` at a time; DVC alone runs one stage at a time.

How a stage runs, and why this way: each task runs ``dvc --wait-for-lock repro --single-item
<stage>``. DVC takes its repo lock to check and prepare the stage, *releases it while the command
runs*, then re-takes it to hash the outputs, fill its run cache and update the stage's entry in
dvc.lock. ``--wait-for-lock`` makes concurrent DVC processes queue for those short locked phases
instead of failing after DVC's default 3 s, so several stage commands overlap while every dvc.lock
write stays serialized and is done by DVC itself (run cache, .gitignore and output removal
included). DVC's read/write locks on each stage's paths stay on as a second guard. A stage whose
command fails is not recorded; its downstream never starts (Prefect state ``NotReady``).

Torch and faiss use every core by default; stages sharing the machine oversubscribe it badly, so
each stage process gets ``OMP_NUM_THREADS = cores // (stages that can run beside it)``.
Tasks run in threads of the flow's process, or on Dask workers (``flow.runner: dask``: a local
cluster, or the scheduler at ``flow.dask_address``).

Run: ``make dashboard`` (Prefect server + UI on 127.0.0.1:4200), then ``make flow``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline import sets
from pipeline.params import ParamsError, load
from pipeline.warm import THREAD_VARS

# What `dvc repro` prints for a person at a terminal after each stage; noise in a task log.
DVC_HINTS = (
    "To track the changes with git",
    "git add ",
    "To enable auto staging",
    "dvc config core.autostage",
    "Use `dvc push`",
)


class FlowError(RuntimeError):
    """A failure the user can act on, printed as one line."""


@dataclass(frozen=True)
class StagePlan:
    name: str
    upstream: tuple[str, ...]  # stages whose outputs this one reads
    stale: bool  # out of date per `dvc status`, or downstream of such a stage
    threads: int  # OMP/MKL threads for the stage's process
    weight: int  # number of downstream stages: the longer chain starts first
    outputs: tuple[str, ...] = ()  # its outs, repo-relative: its results go to its task's artifacts


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _with_lock_retry(fn, what: str, timeout_s: float = 300.0):
    """Call a locked DVC API function, waiting (like ``--wait-for-lock``) while others hold it."""
    from dvc.lock import LockError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except LockError:
            if time.monotonic() > deadline:
                raise FlowError(f"{what}: DVC repo lock held for over {timeout_s:.0f} s") from None
            time.sleep(0.5)


def stage_name(stage) -> str:
    """The name `dvc repro` takes from the repo root (``Stage.addressing`` is relative to the cwd)."""
    path = stage.path_in_repo
    return stage.name if path == "dvc.yaml" else f"{path}:{stage.name}"


def plan(root: Path, max_parallel: int, n_cores: int | None = None) -> list[StagePlan]:
    """Every stage of dvc.yaml in topological order, marked stale or up to date by DVC."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    n_cores = n_cores or cores()
    try:
        with Repo(str(root)) as repo:
            graph = repo.index.graph  # edge: stage -> a stage it depends on
            status = _with_lock_retry(repo.status, "dvc status")
    except DvcException as err:
        raise FlowError(f"dvc: {err}".splitlines()[0]) from None
    # Stages with a command are tasks (.dvc data sources are not); frozen ones are never stale.
    graph = graph.subgraph([s for s in graph.nodes if s.cmd])
    name = {s: stage_name(s) for s in graph.nodes}
    # status keys and addressing are both relative to the cwd
    stale = {s for s in graph.nodes if s.addressing in status and not s.frozen}
    for s in list(stale):
        # Downstream may change once s re-runs; `dvc repro` decides then.
        stale |= {d for d in nx.ancestors(graph, s) if not d.frozen}
    order = list(reversed(list(nx.topological_sort(graph))))  # upstream first
    plans = []
    for s in order:
        related = nx.ancestors(graph, s) | nx.descendants(graph, s) | {s}
        beside = len(stale - related) if s in stale else 0
        width = min(max_parallel, 1 + beside)
        plans.append(
            StagePlan(
                name=name[s],
                upstream=tuple(sorted(name[u] for u in graph.successors(s))),
                stale=s in stale,
                threads=max(1, n_cores // width),
                weight=len(nx.ancestors(graph, s)),
                outputs=tuple(o.def_path for o in s.outs),
            )
        )
    return plans


def stage_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARS})
    env["PYTHONUNBUFFERED"] = "1"  # stream the stage's output line by line
    env.setdefault("DVC_NO_ANALYTICS", "1")
    # The stage commands say `python -m ...`: make that the interpreter running this flow.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _failure_line(name: str, rc: int, tail: collections.deque[str]) -> str:
    """The most useful line of a failed stage: its own `error:` line, else DVC's ERROR."""
    for prefix in ("error:", "ERROR:"):
        found = [line for line in tail if line.startswith(prefix)]
        if found:
            return f"stage {name} failed (exit {rc}): {found[-1]}"
    return f"stage {name} failed (exit {rc})" + (f": {tail[-1]}" if tail else "")


@task(cache_policy=NO_CACHE, persist_result=False)
def run_stage(
    name: str, root: str, stale: bool, threads: int, outputs: tuple[str, ...] = ()
) -> State | str:
    """Reproduce one DVC stage with its output streamed into this task's log; its results (metrics
    JSON, reports, figures among ``outputs``) become artifacts of this task run."""
    if not stale:
        publish_outputs(Path(root), outputs)
        return Completed(name="Skipped", message="up to date (dvc status)", data="up to date")
    outcome = _repro(name, root, threads)
    publish_outputs(Path(root), outputs)
    if outcome == "up to date":
        return Completed(name="Skipped", message="up to date once upstream re-ran", data=outcome)
    if outcome == "restored":
        return Completed(
            name="Cached", message="outputs restored from DVC's run cache", data=outcome
        )
    return outcome


def _repro(name: str, root: str, threads: int) -> str:
    """``dvc repro --single-item name``: "ran", "up to date" or "restored"; FlowError if it fails."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", name]
    logger.info("dvc repro --single-item %s  (%s threads)", name, threads)
    outcome = "ran"
    tail: collections.deque[str] = collections.deque(maxlen=50)
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=stage_env(threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # so a cancelled task can stop dvc and the stage together
    )
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line or line.lstrip().startswith(DVC_HINTS):
                continue
            tail.append(line)
            logger.info(line)
            if f"Stage '{name}' didn't change" in line:
                outcome = "up to date"
            elif f"Stage '{name}' is cached" in line:
                outcome = "restored"
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    if rc:
        raise FlowError(_failure_line(name, rc, tail))
    return outcome


def _describe(state: State) -> str:
    if state.is_completed():
        return {"Skipped": "up to date", "Cached": "restored"}.get(state.name, "ran")
    if state.is_failed() or state.is_crashed():
        return "failed"
    return "not run"


@flow(name="digit-dvc")
def dvc_flow(root: str = ".") -> dict[str, str]:
    """Every stage of dvc.yaml as a task; stale ones reproduced, independent ones concurrently."""
    logger = get_run_logger()
    root_path = Path(root).resolve()
    try:
        cfg = load(root_path / "params.yaml").flow
    except ParamsError as err:
        raise FlowError(str(err)) from None
    plans = plan(root_path, cfg.max_parallel)
    n_stale = sum(p.stale for p in plans)
    logger.info(
        "%d stages in dvc.yaml, %d to check or run, at most %d at a time on %d cores",
        len(plans),
        n_stale,
        cfg.max_parallel,
        cores(),
    )
    board = RunBoard(root_path, plans)  # the run's own artifacts, first in the UI
    stage_task = run_stage.with_options(retries=cfg.retries, retry_delay_seconds=cfg.retry_delay_s)
    futures: dict[str, PrefectFuture] = {}
    states: dict[str, State] = {}
    pending = list(plans)
    busy: set[str] = set()  # stages whose command may be running (counted against max_parallel)
    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    while pending or len(states) < len(futures):
        # Longest downstream chain first, then dvc.yaml's topological order.
        for p in sorted(pending, key=lambda p: -p.weight):
            if not all(u in states for u in p.upstream):
                continue
            upstream_ok = all(states[u].is_completed() for u in p.upstream)
            runs = p.stale and upstream_ok
            if runs and len(busy) >= cfg.max_parallel:
                continue
            # wait_for draws the DAG's edges in the UI and makes the task NotReady when an upstream
            # failed. Final states, not futures: Dask would place a task beside its upstream's
            # future (data locality) and so serialize independent stages on one worker.
            futures[p.name] = stage_task.with_options(task_run_name=p.name).submit(
                p.name,
                str(root_path),
                p.stale,
                p.threads,
                p.outputs,
                wait_for=[states[u] for u in p.upstream],
            )
            started[p.name] = time.perf_counter()
            pending.remove(p)
            if runs:
                busy.add(p.name)
                board.update(p.name, "running")
        running = [f for n, f in futures.items() if n not in states]
        if not running:
            if pending:  # cannot happen with a DAG; guards against a silent hang
                raise FlowError(f"stages never became ready: {[p.name for p in pending]}")
            break
        done = next(as_completed(running))
        name = next(n for n, f in futures.items() if f is done)
        done.wait()  # sets the final state locally; `.state` alone may read a lagging API
        states[name] = done.state
        durations[name] = time.perf_counter() - started[name]
        busy.discard(name)
        board.update(name, _describe(states[name]), durations[name])
    outcome = {p.name: _describe(states[p.name]) for p in plans}
    for name, result in outcome.items():  # stages never submitted (upstream failed): not run
        if board.status[name] != result:
            board.update(name, result, durations.get(name))
    failed = [n for n, o in outcome.items() if o == "failed"]
    if failed:
        not_run = [n for n, o in outcome.items() if o == "not run"]
        raise FlowError(f"failed: {', '.join(failed)}; not run: {', '.join(not_run) or 'none'}")
    return outcome


# ---------------------------------------------------------------------------------------- artifacts


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _flatten(sub, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and len(value) <= 16 and all(isinstance(v, dict) for v in value):
        for i, sub in enumerate(value):
            yield from _flatten(sub, f"{prefix}.{i}")
    else:
        yield prefix, value if isinstance(value, int | float | str | bool) else json.dumps(value)


def _image_markdown(png: Path, title: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f"### {title}\n\n![{png.stem}](data:image/png;base64,{data})\n"


def publish_outputs(root: Path, outputs: tuple[str, ...]) -> None:
    """A stage's results as artifacts of its own task run: each metrics/*.json as a table
    (``metrics-<stem>``), each reports/*.md as markdown (``report-<stem>``), each
    reports/figures/*.png as an embedded image (``figure-<stem>``)."""
    for rel in outputs:
        path = root / rel
        if not path.is_file():
            continue
        if rel.startswith("metrics/") and path.suffix == ".json":
            try:
                metrics = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
            table = [{"metric": k, "value": v} for k, v in _flatten(metrics)]
            create_table_artifact(table, key=f"metrics-{_slug(path.stem)}", description=rel)
        elif rel.startswith("reports/figures/") and path.suffix == ".png":
            create_markdown_artifact(
                _image_markdown(path, path.stem), key=f"figure-{_slug(path.stem)}", description=rel
            )
        elif rel.startswith("reports/") and path.suffix == ".md":
            create_markdown_artifact(
                path.read_text(), key=f"report-{_slug(path.stem)}", description=rel
            )


REPORT_STAGE = "report"
DONE = ("ran", "up to date", "restored")


def _section(md: Path, heading: str = "## This run") -> str:
    """The part of a reports/*.md table under ``heading``, up to the next heading or figure."""
    if not md.is_file():
        return f"*{md.name}: not produced yet.*"
    lines = md.read_text().splitlines()
    if heading not in lines:
        return f"*{md.name}: no {heading!r} section.*"
    body = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith(("## ", "![")):
            break
        body.append(line)
    return "\n".join(body).strip()


def run_summary(root: Path, status: str) -> str:
    """The run at a glance: claims, headline numbers, Tables 2 and 3, one sample grid."""
    reports = root / "reports"
    lines = ["# Run summary", "", status, "", "## The paper's claims, tested", ""]
    claims = reports / "claims.md"
    rows = (
        [ln.strip("|").split(" | ") for ln in claims.read_text().splitlines() if ln.startswith("|")]
        if claims.is_file()
        else []
    )
    # Verdict first and no evidence column: the page stays readable; reports/claims.md has the rest.
    table = [f"| {r[0].strip()} | {r[2].strip()} | {r[1].strip()} |" for r in rows if len(r) >= 4]
    table[1:1] = ["|---|---|---|"] if table else []
    lines += table or ["*reports/claims.md: not produced yet.*"]
    if table:
        lines += ["", "The numbers behind each verdict: `reports/claims.md`."]
    lines += ["", "## Headline numbers (`dvc metrics show`)", ""]
    try:
        summary = json.loads((reports / "summary.json").read_text())
        lines += ["| metric | value |", "|---|---|"]
        lines += [
            f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in _flatten(summary)
        ]
    except (OSError, json.JSONDecodeError):
        lines.append("*reports/summary.json: not produced yet.*")
    for name, title in (
        ("table3_unconditional", "Table 3: class-unconditional generation"),
        ("table2_probe", "Table 2: linear probe"),
    ):
        lines += ["", f"## {title}", "", _section(reports / f"{name}.md")]
    try:
        params = load(root / "params.yaml")
        main_k = params.kmeans.main_k
        name = sets.seeded(sets.digit_set(main_k), params.seed)  # the main seed's samples
        grid = reports / "figures" / f"samples_{name}.png"
    except ParamsError:
        grid = None
    if grid is not None and grid.is_file():
        title = f"Samples: DiGIT, K={main_k} (+AR renderer), seed {params.seed}"
        lines += ["", _image_markdown(grid, title)]
    return "\n".join(lines) + "\n"


class RunBoard:
    """The flow run's own artifacts, created when it starts and updated as stages finish, so they
    come first in the UI: ``dvc-progress`` (the share of stages finished), ``dvc-stages`` (a table
    of every stage: to do / running / ran / up to date / restored / failed / not run, and seconds)
    and ``run-summary`` (claims, headline numbers, Tables 2 and 3, a sample grid), refreshed when
    the report stage finishes. Each stage's own results are artifacts of its task run
    (``publish_outputs``)."""

    def __init__(self, root: Path, plans: list[StagePlan]) -> None:
        self.root = root
        self.order = [p.name for p in plans]
        self.status = {p.name: "to do" for p in plans}
        self.seconds: dict[str, float] = {}
        report_stale = any(p.name == REPORT_STAGE and p.stale for p in plans)
        self.progress_id = create_progress_artifact(
            0.0, key="dvc-progress", description=self._describe_progress()
        )
        self.stages_id = create_table_artifact(
            self._rows(), key="dvc-stages", description="Stages of dvc.yaml in this run"
        )
        status = (
            "*The report stage has not finished in this run yet: these are reports/ as they were "
            "when the run started.*"
            if report_stale
            else "*The report stage is up to date: reports/ as this run found them.*"
        )
        self.summary_id = create_markdown_artifact(
            run_summary(root, status), key="run-summary", description="This run at a glance"
        )

    def _rows(self) -> list[dict]:
        return [
            {"stage": n, "result": self.status[n], "seconds": round(self.seconds.get(n, 0.0), 1)}
            for n in self.order
        ]

    def _describe_progress(self) -> str:
        counts = collections.Counter(self.status.values())
        finished = sum(v for k, v in counts.items() if k not in ("to do", "running"))
        parts = [f"{finished}/{len(self.order)} stages finished"]
        parts += [
            f"{counts[k]} {k}"
            for k in ("ran", "restored", "up to date", "failed", "not run", "running", "to do")
            if counts[k]
        ]
        return ", ".join(parts)

    def update(self, name: str, status: str, seconds: float | None = None) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        self.status[name] = status
        if seconds is not None:
            self.seconds[name] = seconds
        finished = sum(s not in ("to do", "running") for s in self.status.values())
        update_progress_artifact(
            self.progress_id, 100.0 * finished / max(1, len(self.order)), self._describe_progress()
        )
        with get_client(sync_client=True) as client:
            client.update_artifact(self.stages_id, ArtifactUpdate(data=json.dumps(self._rows())))
            if name == REPORT_STAGE and status in DONE:
                what = "ran in this run" if status == "ran" else f"{status}"
                md = run_summary(
                    self.root, f"*The report stage {what}: the reports below are this run's.*"
                )
                client.update_artifact(self.summary_id, ArtifactUpdate(data=md))


# ---------------------------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def single_flow(root: Path) -> Iterator[None]:
    """One flow per repository at a time (two would race for the same stages)."""
    path = root / ".dvc" / "tmp" / "flow.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FlowError(f"another flow is running on {root} ({path} is locked)") from None
        yield


def task_runner(kind: str, max_parallel: int, dask_address: str | None = None):
    """Threads of this process, or Dask workers (a given scheduler, else a local cluster)."""
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        import dask

        # One single-threaded worker process per concurrent stage, plus one for instant tasks. By
        # default Dask queues up to ceil(1.1 * threads) tasks on a worker, so two stages could wait
        # in line on one worker while another idles: give each worker thread one task at a time.
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0})
        cluster = {"n_workers": max_parallel + 1, "threads_per_worker": 1, "processes": True}
        return DaskTaskRunner(cluster_kwargs=cluster | {"dashboard_address": None})
    # A few threads beyond max_parallel for the instant Skipped / NotReady tasks.
    return ThreadPoolTaskRunner(max_workers=max_parallel + 4)


def run(root: str | Path = ".", return_state: bool = False):
    """Run the flow on ``root`` with the task runner that params.yaml `flow` asks for."""
    root = Path(root).resolve()
    try:
        cfg = load(root / "params.yaml").flow
    except ParamsError as err:
        raise FlowError(str(err)) from None
    with single_flow(root):
        runner = task_runner(cfg.runner, cfg.max_parallel, cfg.dask_address)
        return dvc_flow.with_options(task_runner=runner)(root=str(root), return_state=return_state)


def check_server() -> None:
    """Fail in one line when PREFECT_API_URL points at a server that is not up."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return  # no server configured: Prefect starts a temporary one for this run
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError:
        raise FlowError(f"no Prefect server at {url}; start one with `make dashboard`") from None


def main() -> None:
    parser = argparse.ArgumentParser(description="Run dvc.yaml as a Prefect flow.")
    parser.add_argument("--root", default=".", help="the DVC project (default: .)")
    args = parser.parse_args()
    try:
        check_server()
        run(args.root)
    except FlowError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
