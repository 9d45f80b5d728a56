import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.dag import copy_project as copy_project_files

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
# Subprocesses (dvc, stages) must find the venv's executables.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
# The stages of every test project share one warm stage server (pipeline/warm.py), private to this
# session and stopped at its end.
os.environ.setdefault("DIGIT_WARM_DIR", tempfile.mkdtemp(prefix="digit-warm-"))


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors (``pytestmark = pytest.mark.usefixtures("one_thread")``): extra
    intra-op threads only spin-wait, which is ~10x slower on a busy 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Stages run by the tests use one thread (the background smoke run shares the 2 cores with the unit
# tests), and every run a test compares with another uses the same count: bit-identical outputs
# hold at one thread count only.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def wait_until(check, timeout: float, what: str, every: float = 0.05) -> None:
    """Wait for a condition another process makes true: a file it creates, a socket it binds.

    The one place the tests poll, and why: the standard library has no event for "a path
    appears" (inotify is not in it) and these processes are not our children. Each condition is
    monotonic (once true it stays true), so the poll cannot race; ``timeout`` only bounds a
    failure, which fails the test with ``what``."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(every)


def wait_for_exit(pid: int, timeout: float, what: str) -> None:
    """Block until process ``pid`` (not necessarily our child) has exited: an event through a
    pidfd (Linux 5.3+), no polling; ``timeout`` only bounds a failure."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, what
    finally:
        os.close(fd)


def dvc(cwd: Path, *args: str) -> str:
    """Run the real DVC CLI (one thread per stage); fail the test with its output tail when it
    fails."""
    env = {**os.environ, **ONE_THREAD_ENV}
    proc = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def copy_project(dst: Path, preset: str | None = "smoke") -> Path:
    """A fresh git checkout of the project at `dst`, with `preset` applied to params.yaml."""
    copy_project_files(ROOT, dst)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    # dvclive (the training curves) needs a commit to start from, as in any real checkout.
    git_id = ["-c", "user.name=digit", "-c", "user.email=digit@localhost"]
    subprocess.run(
        ["git", *git_id, "commit", "-q", "--allow-empty", "-m", "init"], cwd=dst, check=True
    )
    if preset:
        subprocess.run(["python", "-m", "pipeline.params", "apply", preset], cwd=dst, check=True)
    return dst


_SMOKE: dict = {}


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: a run of unit tests starts nothing
def pytest_collection_modifyitems(config, items):
    """When tests need the shared smoke run, start its `dvc repro` in the background right away
    and move those tests to the end: the unit tests run meanwhile (one thread for the stages, so
    the two do not fight over the 2 cores), which saves most of the smoke run's wall time."""
    late = [item for item in items if "smoke_run" in getattr(item, "fixturenames", ())]
    if not late or config.option.collectonly or os.environ.get("DIGIT_SMOKE_RUN"):
        return
    items[:] = [item for item in items if item not in late] + late
    work = copy_project(Path(tempfile.mkdtemp(prefix="digit-smoke-")) / "work")
    env = {**os.environ, **ONE_THREAD_ENV}
    log = (work / "first_run.log").open("w")
    proc = subprocess.Popen(
        ["dvc", "repro"], cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    _SMOKE.update(work=work, proc=proc, log=log)


@pytest.fixture(scope="session")
def smoke_run() -> Path:
    """The smoke preset reproduced once by the real `dvc repro` (about 5 minutes on 2 cores),
    shared read-only by the end-to-end and flow tests: copy it (clone_run) before changing it.
    ``DIGIT_SMOKE_RUN=/tmp/digit-smoke-.../work`` reuses one a session left behind (a developer's
    shortcut while iterating on a test: nothing checks that it matches the checkout)."""
    if os.environ.get("DIGIT_SMOKE_RUN"):
        return Path(os.environ["DIGIT_SMOKE_RUN"])
    if not _SMOKE:  # collected without the hook (e.g. a single test by node id): run it now
        work = copy_project(Path(tempfile.mkdtemp(prefix="digit-smoke-")) / "work")
        (work / "first_run.log").write_text(dvc(work, "repro"))
        return work
    rc = _SMOKE["proc"].wait()
    _SMOKE["log"].close()
    out = (_SMOKE["work"] / "first_run.log").read_text()
    assert rc == 0, out[-3000:]
    return _SMOKE["work"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server with its UI, started as `make dashboard` starts it, private to the
    session (its own PREFECT_HOME and database) and shared by every flow test: it takes about a
    minute to start on 2 loaded cores. While it runs, PREFECT_API_URL in Prefect's settings points
    at it; yields the UI's URL. Stopped, with every process it started, at the end."""
    import httpx
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = f"http://127.0.0.1:{free_port()}"
    home = tmp_path_factory.mktemp("prefect-home")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(home), "PREFECT_UI_API_URL": f"{url}/api"}
    log = (home / "server.log").open("w")
    prefect = str(Path(sys.executable).parent / "prefect")
    port = url.rsplit(":", 1)[1]
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", port],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped whole at the end
    )

    def healthy() -> bool:
        assert server.poll() is None, (home / "server.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 300, f"the Prefect server at {url}", every=0.5)
        with temporary_settings({PREFECT_API_URL: f"{url}/api"}):
            yield url
    finally:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@contextlib.contextmanager
def served(work: Path, log: Path):
    """`python -m pipeline.serve` (what `make serve` runs) on project `work`, against the session's
    Prefect server; yields the deployment digit-run/digit once registered, stops serving after."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    def deployment():
        """The deployment once this process registered it (another test's may still be there)."""
        with get_client(sync_client=True) as client:
            try:
                found = client.read_deployment_by_name("digit-run/digit")
            except Exception:  # not registered yet (ObjectNotFound)
                return None
        return found if found.parameters.get("root") == str(work.resolve()) else None

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "pipeline.serve", "--root", str(work)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: deployment() is not None, 180, "the deployment digit-run/digit")
            yield deployment()
        finally:
            server.terminate()
            wait_for_exit(server.pid, 60, "the serving process")
            server.wait()


def clone_run(src: Path, dst: Path) -> Path:
    """A copy of a reproduced project (workspace, cache, lock) to change without touching `src`."""

    def dvc_tmp(folder: str, names: list[str]) -> list[str]:  # locks and state of the source
        return ["tmp"] if Path(folder).name == ".dvc" else []

    shutil.copytree(src, dst, symlinks=True, ignore=dvc_tmp)
    return dst


def pytest_sessionfinish(session, exitstatus):
    subprocess.run(
        [sys.executable, "-m", "pipeline.warm", "stop"], cwd=ROOT, capture_output=True, timeout=60
    )
