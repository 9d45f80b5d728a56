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

The flow succeeds only when every planned stage ran, was restored or was found up to date. A failed
stage fails it, and so does a stage that ended without running for any other reason than a failed
upstream (Dask workers that cannot import the project never run a task, and Prefect leaves it
``Pending``): the error line names those stages and the likely cause (``verdict``).

Torch and faiss use every core by default; stages sharing the machine oversubscribe it badly, so
each stage process gets ``OMP_NUM_THREADS = cores // (stages that can run beside it)``.
Tasks run in threads of the flow's process, or on Dask workers (``flow.runner: dask``: a local
cluster, or the scheduler at ``flow.dask_address``). A worker unpickles each task by importing this
module, so every worker must import the project (``pip install -e .`` there, or ``PYTHONPATH``) and
see the project directory at the same path; the flow's Prefect settings travel with each task, so
its ``PREFECT_API_URL`` must be an address the workers reach. The run's artifacts: pipeline/board.py.

Run: ``make dashboard`` (Prefect server + UI on 127.0.0.1:4200), then ``make flow``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.board import RunBoard, publish_outputs
from pipeline.checks import load
from pipeline.params import ParamsError
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
    target: str = ""  # what `dvc repro` takes from the repo root (default: the name)


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


def stage_target(stage) -> str:
    """The name `dvc repro` takes from the repo root (``Stage.addressing`` is relative to the cwd):
    ``dag/ar/dvc.yaml:ar@256-0`` for a stage outside the root dvc.yaml."""
    path = stage.path_in_repo
    return stage.name if path == "dvc.yaml" else f"{path}:{stage.name}"


def stage_names(stages) -> dict:
    """Stage -> the name the flow shows: its own (``ar@256-0``; pipeline/dag.py keeps them unique
    across the DVC files), or its target where two files share a name."""
    count = collections.Counter(s.name for s in stages)
    return {s: s.name if count[s.name] == 1 else stage_target(s) for s in stages}


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
    name = stage_names(graph.nodes)
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
                target=stage_target(s),
            )
        )
    return plans


def stage_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARS})
    env["PYTHONUNBUFFERED"] = "1"  # stream the stage's output line by line
    env.setdefault("DVC_NO_ANALYTICS", "1")
    # The stage commands say `python3 -m ...`: make that the interpreter running this flow.
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
    target: str, root: str, stale: bool, threads: int, outputs: tuple[str, ...] = ()
) -> State | str:
    """Reproduce one DVC stage (``target``: its address from the repo root) with its output
    streamed into this task's log; its results (metrics JSON, reports, figures among ``outputs``)
    become artifacts of this task run."""
    if not stale:
        publish_outputs(Path(root), outputs)
        return Completed(name="Skipped", message="up to date (dvc status)", data="up to date")
    outcome = _repro(target, root, threads)
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


FAILED, UPSTREAM_FAILED, NEVER_RAN = "failed", "upstream failed", "never ran"


def stage_outcome(state: State | None, upstream: Sequence[str]) -> str:
    """What became of one planned stage: "ran", "up to date", "restored", "failed", "upstream
    failed" or "never ran", from its task's last state and the outcomes of its upstream stages.

    Prefect leaves the same non-final state (``NotReady``, ``Pending``) on a task held back by a
    failed upstream and on one that no worker ever ran (a Dask worker that cannot import the
    project); only the upstream outcomes tell them apart. Below a stage that never ran, nothing ran.
    """
    if state is not None and state.is_completed():
        return {"Skipped": "up to date", "Cached": "restored"}.get(state.name, "ran")
    if state is not None and state.is_final():  # Failed, Crashed, Cancelled
        return FAILED
    if any(o in (FAILED, UPSTREAM_FAILED) for o in upstream):
        return UPSTREAM_FAILED
    return NEVER_RAN


def outcomes(plans: Sequence[StagePlan], states: Mapping[str, State | None]) -> dict[str, str]:
    """Every planned stage's ``stage_outcome``; a stage with no state at all never ran."""
    upstream = {p.name: p.upstream for p in plans}
    out: dict[str, str] = {}

    def outcome(name: str) -> str:
        if name not in out:
            above = [outcome(u) for u in upstream[name] if u in upstream]
            out[name] = stage_outcome(states.get(name), above)
        return out[name]

    return {p.name: outcome(p.name) for p in plans}


def never_ran_cause(on_dask: bool, error: str | None = None) -> str:
    """Why planned tasks ended without running, and what to do about it."""
    seen = f" ({error})" if error else ""
    if on_dask:
        return (
            f"the Dask cluster could not run them{seen}; do its scheduler and workers import "
            "the project? install it there (pip install -e .) or set PYTHONPATH to the project"
        )
    return f"their tasks ended without a final state{seen}"


def _names(names: Sequence[str], limit: int = 10) -> str:
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f", ... ({more} more)" if more > 0 else "")


def verdict(outcome: Mapping[str, str], cause: str) -> str | None:
    """The one line a flow that did not do all its planned work fails with (None: it did all).

    A flow never reports success for work it did not do: a failed stage, and a stage that ended
    without running for any reason but an upstream failure (``cause`` says why), fail the run."""
    named = {o: [n for n, r in outcome.items() if r == o] for o in (FAILED, UPSTREAM_FAILED)}
    lost = [n for n, r in outcome.items() if r == NEVER_RAN]
    parts = []
    if named[FAILED]:
        held = ", ".join(named[UPSTREAM_FAILED]) or "none"
        parts.append(f"failed: {', '.join(named[FAILED])}; upstream failed: {held}")
    if lost:
        what = "stage" if len(lost) == 1 else "stages"
        parts.append(f"{len(lost)} planned {what} never ran ({_names(lost)}): {cause}")
    return "; ".join(parts) or None


def _future_error(future: PrefectFuture) -> str | None:
    """The exception the task runner's own future ended with, which Prefect's state lacks: e.g.
    the Dask scheduler's "Error during deserialization of the task graph" when it cannot import
    the project to unpickle the task."""
    wrapped = getattr(future, "wrapped_future", None)
    try:
        err = wrapped.exception(timeout=0) if wrapped is not None else None
    except Exception:  # still running, cancelled, or a future without .exception()
        return None
    if err is None:
        return None
    text = " ".join(str(err).split())  # Dask's messages span lines
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(err).__name__}: {text}"


def next_done(
    running: list[PrefectFuture],
    runner: object,
    no_workers_s: float = 120.0,
    poll_s: float = 30.0,
) -> PrefectFuture:
    """The next of ``running`` to finish; on Dask, a FlowError instead of waiting forever once the
    cluster has had no worker for ``no_workers_s``. A worker that cannot import the project dies on
    the first task it unpickles, and the scheduler then holds the tasks for workers that never
    come (the grace is for clusters that start workers on demand)."""
    client = getattr(runner, "client", None) if type(runner).__name__ == "DaskTaskRunner" else None
    since = None
    while True:
        try:
            return next(as_completed(running, timeout=None if client is None else poll_s))
        except TimeoutError:
            if client.scheduler_info()["workers"]:
                since = None
            elif since is None:
                since = time.monotonic()
            elif time.monotonic() - since >= no_workers_s:
                raise FlowError(
                    f"the Dask cluster has had no workers for {no_workers_s:.0f} s while "
                    f"{len(running)} stages wait: workers that cannot import the project die on "
                    "their first task; install it there (pip install -e .) or set PYTHONPATH to "
                    "the project"
                ) from None


@flow(name="digit-dvc")
def dvc_flow(root: str = ".") -> dict[str, str]:
    """Every stage of dvc.yaml as a task; stale ones reproduced, independent ones concurrently.
    Returns each stage's outcome; raises FlowError (the run fails) unless all of them did their
    work."""
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
    errors: list[str] = []  # what the task runner said about tasks that never ran
    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx is not None else None
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
                p.target or p.name,
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
        done = next_done(running, runner)
        name = next(n for n, f in futures.items() if f is done)
        done.wait()  # sets the final state locally; `.state` alone may read a lagging API
        states[name] = done.state
        if not states[name].is_final() and (error := _future_error(done)):
            errors.append(error)
        durations[name] = time.perf_counter() - started[name]
        busy.discard(name)
        board.update(name, outcomes(plans, states)[name], durations[name])
    outcome = outcomes(plans, states)
    for name, result in outcome.items():
        if board.status[name] != result:
            board.update(name, result, durations.get(name))
    on_dask = type(runner).__name__ == "DaskTaskRunner"
    line = verdict(outcome, never_ran_cause(on_dask, errors[0] if errors else None))
    if line:
        raise FlowError(line)
    return outcome


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
    if cfg.runner == "dask" and cfg.dask_address:
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            # The flow's in-process server is out of the workers' reach: each would start a server
            # of its own, and the stages' task runs, logs and artifacts would land there.
            raise FlowError(
                f"flow.dask_address ({cfg.dask_address}): the workers of an external Dask cluster "
                "report to the flow's Prefect server, and there is none; start one (make "
                "dashboard) and set PREFECT_API_URL to an address the workers reach"
            )
    with single_flow(root):
        runner = task_runner(cfg.runner, cfg.max_parallel, cfg.dask_address)
        return dvc_flow.with_options(task_runner=runner)(root=str(root), return_state=return_state)


def check_server(needed_for: str | None = None) -> None:
    """Fail in one line when PREFECT_API_URL points at a server that is not up, or (``needed_for``:
    what needs a real server) when it is unset."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url and needed_for:
        raise FlowError(
            f"{needed_for} lives on a Prefect server: start one (make dashboard) and set "
            "PREFECT_API_URL"
        )
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
