"""The warm stage server (pipeline/warm.py): a stage handed to it runs as `python -m` would, in the
caller's directory and environment, with this checkout's files as they are now; its exit status,
error line and signal reach the caller; killing the caller kills the stage. And what keeps it safe:
a private folder, same-user peers, stage modules only, and a stage that dies with whoever ran it."""

import contextlib
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_project, wait_for_exit, wait_until

from pipeline import warm

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
import fsspec.config  # preloaded by the server (zarr's): its settings come from the environment
info["s3_endpoint"] = fsspec.config.conf.get("s3", {}).get("endpoint_url")
with open(out, "w") as f:
    json.dump(info, f)
if action == "fail":
    sys.exit("error: probe.bad: expected a number")
if action == "sleep":  # a stage still at work when its caller is killed (the test kills it)
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
    wait_until(sock.exists, 120, "the warm server never listened", every=0.2)


def test_stage_runs_in_the_server_as_python_m_would(project):
    warm_up(project)
    proc, out = probe(project, WARM_TEST_VAR="seen", FSSPEC_S3_ENDPOINT_URL="http://127.0.0.1:9")
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    info = json.loads(out.read_text())
    assert info["pid"] != proc.pid  # a child of the server did the work
    assert info["cwd"] == str(project) and info["args"] == [str(out), "ok"]
    assert info["var"] == "seen" and info["main"] == "__main__"
    assert info["s3_endpoint"] == "http://127.0.0.1:9"  # fsspec's import-time settings too
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
    wait_until(lambda: out.exists() and out.read_text(), 60, "the stage never started")
    child = json.loads(out.read_text())["pid"]
    assert child != proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for_exit(child, 10, "the stage outlived its caller")


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


# ------------------------------------------------------------------------------------ safety

# A test-only stage: writes its pid and, when it sleeps, the pids of two `sleep`s it starts: a plain
# one, which only the stage's process group takes down, and one started as ddp.relaunch starts
# torchrun (SIGKILL when its parent dies).
SLEEPER = """
import os, subprocess, sys, time
from pipeline import warm
out, seconds = sys.argv[1], float(sys.argv[2])
pids = [os.getpid()]
if seconds:
    pids.append(subprocess.Popen(["sleep", "60"]).pid)
    pids.append(subprocess.Popen(["sleep", "60"], preexec_fn=warm.parent_death_preexec()).pid)
with open(out + ".tmp", "w") as f:
    f.write(" ".join(map(str, pids)))
os.replace(out + ".tmp", out)
time.sleep(seconds)  # busy until killed: the test ends it, the sleep only stands in for work
"""
LIGHT_SERVER = "from pipeline import warm; warm.serve(preload=())"


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout of the project with the sleeper stage added."""
    copy_project(tmp_path, preset=None)
    (tmp_path / "pipeline/stages/_sleeper.py").write_text(SLEEPER)
    monkeypatch.setenv("DIGIT_WARM_DIR", str(tmp_path / "warm"))
    monkeypatch.delenv("DIGIT_WARM", raising=False)
    return tmp_path


@pytest.fixture
def light(checkout):
    """Its own server, preloading nothing: it listens within a second, and what keeps the server
    safe does not depend on what it preloaded."""
    server = subprocess.Popen(
        [sys.executable, "-c", LIGHT_SERVER], cwd=checkout, start_new_session=True
    )
    try:
        wait_until(lambda: (checkout / "warm/sock").exists(), 30, "the server never listened")
        yield checkout, server
    finally:
        server.kill()
        server.wait()


def kill_leftover(pid: int) -> None:
    """SIGKILL a process of this test still running (checked by its command line: pids recycle)."""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"sleep" in cmdline or LIGHT_SERVER.encode() in cmdline:
            os.kill(pid, signal.SIGKILL)


# What DVC does: start the stage and wait for it (here it also writes the stage's pid).
DVC = (
    "import subprocess, sys; "
    "p = subprocess.Popen([sys.executable, '-m', 'pipeline.stages._sleeper', sys.argv[1], '60']); "
    "open(sys.argv[2], 'w').write(str(p.pid)); p.wait()"
)


@pytest.mark.parametrize("way", ["warm", "warm, server stopped", "cold"])
def test_kill_9_of_dvc_kills_the_stage_and_what_it_started(light, way):
    project, server = light
    pids_file, caller_file = project / "pids", project / "caller"
    env = {**os.environ, "DIGIT_WARM": "0" if way == "cold" else "1"}
    dvc = subprocess.Popen(
        [sys.executable, "-c", DVC, str(pids_file), str(caller_file)], cwd=project, env=env
    )
    pids: list[int] = []
    try:
        wait_until(lambda: pids_file.exists() and caller_file.exists(), 30, "the stage never ran")
        wait_until(lambda: caller_file.read_text() != "", 5, "no caller pid")
        caller = int(caller_file.read_text())
        stage, plain, guarded = map(int, pids_file.read_text().split())
        pids = [caller, stage, plain, guarded]
        assert (stage == caller) == (way == "cold")  # warm: a child of the server ran it
        if way == "warm, server stopped":  # only the stage's own watch of its caller can act
            os.kill(server.pid, signal.SIGSTOP)
        dvc.kill()
        dvc.wait()
        # Cold, a plain subprocess of the stage outlives it: nothing is left to kill its group.
        gone = [caller, stage, guarded] + ([] if way == "cold" else [plain])
        for pid in gone:
            wait_for_exit(pid, 10, f"{pid} of {gone} still running")
    finally:
        dvc.kill()
        for pid in pids:
            kill_leftover(pid)


@pytest.mark.parametrize("kind", ["open to others", "a symbolic link"])
def test_a_state_folder_others_could_use_is_refused(checkout, kind):
    folder, mine = checkout / "shared", checkout / "mine"
    if kind == "open to others":
        folder.mkdir()
        folder.chmod(0o755)
    else:
        mine.mkdir(mode=0o700)
        folder.symlink_to(mine)
    env = {**os.environ, "DIGIT_WARM_DIR": str(folder)}
    out = checkout / "pids"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.stages._sleeper", str(out), "0"],
        cwd=checkout,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert int(out.read_text()) == proc.pid  # ran cold, in the caller
    (line,) = stderr.splitlines()  # one warning line, saying why
    assert line.startswith("warning:") and str(folder) in line and "running cold" in line
    assert ("mode 0755" if kind == "open to others" else "symbolic link") in line
    server = subprocess.run(
        [sys.executable, "-c", LIGHT_SERVER],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 0 and "not serving" in server.stderr
    assert list(folder.iterdir()) == []  # no socket, lock or log was put there
    if kind == "open to others":
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # reported, never chmod-ed
    else:
        assert folder.is_symlink()


def test_private_dir_creates_0700_and_says_why_it_refuses(tmp_path, monkeypatch):
    folder = tmp_path / "a" / "warm"
    monkeypatch.setenv("DIGIT_WARM_DIR", str(folder))
    assert warm.private_dir() is None
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    monkeypatch.setattr(warm.os, "getuid", lambda: os.geteuid() + 1)
    assert "belongs to uid" in warm.private_dir()
    monkeypatch.undo()
    monkeypatch.setenv("DIGIT_WARM_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("")
    assert "is not a directory" in warm.private_dir()


def test_only_the_same_user_is_trusted():
    a, b = socket.socketpair()
    with a, b:
        assert warm.trusted_peer(a)
        assert not warm.trusted_peer(a, uid=os.getuid() + 1)


def test_only_stage_commands_are_handed_off():
    assert warm._stage_argv(["py", "-m", "pipeline.stages.ar", "x"]) == (
        True,
        "pipeline.stages.ar",
        ["x"],
    )
    assert warm._stage_argv(["py", "-u", "-m", "pipeline.stages.ar"])[0] is False  # a rank
    for argv in (["py", "-m", "pipeline.flow"], ["py", "-c", "1"], ["py", "s.py", "-m", "x"]):
        assert warm._stage_argv(argv) is None


def request(project: Path, module: str) -> str:
    """Send the server a request as a caller does; its whole reply ('' when it refused)."""
    body = json.dumps(
        {
            "module": module,
            "args": [str(project / "pids"), "0"],
            "cwd": str(project),
            "env": dict(os.environ),
        }
    ).encode()
    alive_r, alive_w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(project / "warm/sock"))
            socket.send_fds(client, [struct.pack("!I", len(body))], [null, null, null, alive_r])
            client.sendall(body)
            client.settimeout(30)
            return client.makefile().read()  # up to the server's close
    finally:
        for fd in (alive_r, alive_w, null):
            os.close(fd)


def test_the_server_runs_pipeline_stages_only(light):
    project, _ = light
    for module in ("os", "pipeline.flow", "pipeline.stages.a.b", "pipeline.stages._sleeper\n"):
        assert request(project, module) == "", module
    assert not (project / "pids").exists()
    reply = request(project, "pipeline.stages._sleeper").split()  # and it still serves
    assert reply[0] == "pid" and reply[2:] == ["exit", "0"]
    assert (project / "pids").exists()
