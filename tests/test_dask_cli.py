"""The flow on a real Dask cluster started the way a user starts one: `dask scheduler` and
`dask worker` from their own CLIs, as separate processes (README.md, "More than one machine").

With the project importable on the workers (PYTHONPATH, as README says), a stale stage of the
smoke run runs on a worker, and its task run, logs and artifacts reach the flow's own Prefect
server: no worker starts a server of its own. Without it, the flow fails in one line that says
what to do. Every process the test starts is gone when it ends."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import clone_run, dvc, free_port

ROOT = Path(__file__).resolve().parents[1]


class Cluster:
    """A scheduler and one single-threaded worker, from the `dask` CLI; their logs in `logs`."""

    def __init__(self, folder: Path, pythonpath: str | None):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.logs = folder
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREFECT_API_URL")}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        dask = str(Path(sys.executable).parent / "dask")
        port = self.address.rsplit(":", 1)[1]
        self.procs = [
            self._start(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
                "scheduler",
                env,
            ),
            self._start(
                [
                    dask,
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                ],
                "worker",
                env,
            ),
        ]

    def _start(self, argv: list[str], name: str, env: dict) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        # cwd outside the project: a worker imports it only if it is installed or on PYTHONPATH.
        return subprocess.Popen(argv, cwd=self.logs, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_for_worker(self) -> None:
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop(self) -> None:
        """Stop the scheduler and worker and every process they started; all must be gone."""
        family = []
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                family += [
                    psutil.Process(proc.pid),
                    *psutil.Process(proc.pid).children(recursive=True),
                ]
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(family, timeout=30)
        for p in alive:
            p.kill()
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"


@pytest.fixture
def stale_smoke(smoke_run, tmp_path):
    """A copy of the smoke run whose `toy` stage is stale, set to run on a Dask cluster."""
    work = clone_run(smoke_run, tmp_path / "work")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["toy"]["n_test_per_class"] += 1
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def use_cluster(work: Path, address: str) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["flow"] |= {"runner": "dask", "dask_address": address}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_flow_cli(work: Path) -> subprocess.CompletedProcess:
    """`python -m pipeline.flow` (what `make flow` and `digit-flow` run) against the test's server."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.flow", "--root", str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def latest_flow_run():
    """Task runs by name, logs and artifacts of the newest flow run on the test's server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterTaskRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        only = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        tasks = {t.name: t for t in client.read_task_runs(flow_run_filter=only)}
        logs = client.read_logs(LogFilter(task_run_id=LogFilterTaskRunId(any_=[tasks["toy"].id])))
        artifacts = client.read_artifacts(flow_run_filter=only)
    return run, tasks, logs, artifacts


def test_a_stale_stage_runs_on_a_worker_and_reports_to_the_flows_server(
    stale_smoke, prefect_server, tmp_path
):
    cluster = Cluster(tmp_path, pythonpath=str(ROOT))
    try:
        cluster.wait_for_worker()
        use_cluster(stale_smoke, cluster.address)
        done = run_flow_cli(stale_smoke)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        run, tasks, logs, artifacts = latest_flow_run()
        assert run.state.is_completed()
        assert tasks["toy"].state.name == "Completed"
        assert {t.state.name for n, t in tasks.items() if n != "toy"} <= {"Skipped", "Completed"}
        assert any("toy" in log.message for log in logs), [log.message for log in logs][:5]
        assert artifacts  # the board and the stage's results
        assert dvc(stale_smoke, "status").strip().endswith("Data and pipelines are up to date.")
        worker = cluster.log("worker")
        assert "toy" in worker  # the stage's log lines were written on the worker
        assert "temporary server" not in worker.lower()  # no Prefect server of its own
    finally:
        cluster.stop()


def test_workers_that_cannot_import_the_project_fail_the_flow_in_one_line(prefect_server, tmp_path):
    """On a toy DAG (the message does not depend on the project's size)."""
    from test_serve import toy_project

    (tmp_path / "work").mkdir()
    work = toy_project(tmp_path / "work")
    cluster = Cluster(tmp_path, pythonpath=None)
    try:
        cluster.wait_for_worker()
        use_cluster(work, cluster.address)
        done = run_flow_cli(work)
        assert done.returncode != 0
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("error: ") and "never ran" in line, line
        assert "import the project" in line and "PYTHONPATH" in line, line
        assert not (work / "a.txt").exists()  # nothing ran
    finally:
        cluster.stop()


def test_an_external_cluster_needs_a_real_prefect_server(tmp_path):
    """Without PREFECT_API_URL the flow's server lives in its own process, out of the workers'
    reach: the flow refuses before it starts anything."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    use_cluster(tmp_path, "tcp://127.0.0.1:1")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.flow", "--root", str(tmp_path)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: flow.dask_address (tcp://127.0.0.1:1)"), line
    assert "PREFECT_API_URL" in line, line
