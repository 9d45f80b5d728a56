"""The warm stage server (pipeline/warm.py): a stage handed to it runs as `python -m` would, in the
caller's directory and environment, with this checkout's files as they are now; its exit status,
error line and signal reach the caller; killing the caller kills the stage."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_project

# A stage module that reports where and how it ran, then does what its first argument says.
PROBE = """
import json, os, sys, time
import torch
out, action = sys.argv[1], sys.argv[2]
info = {
    "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "args": sys.argv[1:],
    "var": os.environ.get("WARM_TEST_VAR"), "threads": torch.get_num_threads(),
    "version": VERSION, "main": __name__, "spec": __spec__.name,
}
with open(out, "w") as f:
    json.dump(info, f)
if action == "fail":
    sys.exit("error: probe.bad: expected a number")
if action == "sleep":
    time.sleep(120)
if action == "kill":
    os.kill(os.getpid(), 9)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout of the project with a probe stage added; its own server."""
    copy_project(tmp_path, preset=None)
    write_probe(tmp_path, 1)
    monkeypatch.setenv("DIGIT_WARM_DIR", str(tmp_path / "warm"))
    monkeypatch.delenv("DIGIT_WARM", raising=False)
    yield tmp_path
    subprocess.run([sys.executable, "-m", "pipeline.warm", "stop"], cwd=tmp_path, timeout=30)


def write_probe(project: Path, version: int) -> None:
    (project / "pipeline/stages/probe.py").write_text(f"VERSION = {version}\n{PROBE}")


def probe(project: Path, action: str = "ok", **env: str) -> tuple[subprocess.Popen, Path]:
    out = project / f"run-{time.monotonic_ns()}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.stages.probe", str(out), action],
        cwd=project,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def warm_up(project: Path) -> None:
    """The first stage runs cold and starts the server; wait until it listens."""
    proc, out = probe(project)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert json.loads(out.read_text())["pid"] == proc.pid  # ran in the caller itself
    sock = project / "warm" / "sock"
    deadline = time.monotonic() + 120
    while not sock.exists():
        assert time.monotonic() < deadline, (project / "warm" / "log").read_text()
        time.sleep(0.2)


def test_stage_runs_in_the_server_as_python_m_would(project):
    warm_up(project)
    proc, out = probe(project, WARM_TEST_VAR="seen")
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    info = json.loads(out.read_text())
    assert info["pid"] != proc.pid  # a child of the server did the work
    assert info["cwd"] == str(project) and info["args"] == [str(out), "ok"]
    assert info["var"] == "seen" and info["main"] == "__main__"
    assert info["spec"] == "pipeline.stages.probe"  # what ddp.relaunch re-imports by name
    assert info["threads"] == json.loads(run_cold(project))["threads"]

    write_probe(project, 2)  # an edited stage file is the one that runs next
    proc, out = probe(project, OMP_NUM_THREADS="1")
    assert proc.wait(timeout=60) == 0
    info = json.loads(out.read_text())
    assert info["version"] == 2 and info["threads"] == 1


def run_cold(project: Path) -> str:
    proc, out = probe(project, DIGIT_WARM="0")
    assert proc.wait(timeout=120) == 0
    assert json.loads(out.read_text())["pid"] == proc.pid
    return out.read_text()


def test_exit_status_error_line_and_signal_reach_the_caller(project):
    warm_up(project)
    proc, _ = probe(project, "fail")
    assert proc.wait(timeout=60) == 1
    assert proc.stderr.read().strip() == "error: probe.bad: expected a number"
    proc, out = probe(project, "kill")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert json.loads(out.read_text())["pid"] != proc.pid


def test_killing_the_caller_kills_the_stage(project):
    warm_up(project)
    proc, out = probe(project, "sleep")
    deadline = time.monotonic() + 60
    while not out.exists() or not out.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child = json.loads(out.read_text())["pid"]
    assert child != proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "the stage outlived its caller"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by the server counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_a_real_stage_writes_the_same_bytes_warm_and_cold(project):
    warm_up(project)
    outputs = {}
    for mode in ("0", "1"):
        args = ["--metrics", f"toy{mode}.json", "--figure", f"toy{mode}.png"]
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.stages.toy", *args],
            cwd=project,
            env={**os.environ, "DIGIT_WARM": mode},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "stage toy: done" in proc.stderr  # the stage's log reaches the caller's stderr
        outputs[mode] = [(project / a).read_bytes() for a in args[1::2]]
    assert outputs["0"] == outputs["1"]
