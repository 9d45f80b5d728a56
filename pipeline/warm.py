"""Warm stage starts: a fork server that has torch and the other heavy libraries imported already.

Every DVC stage is a fresh ``python -m pipeline.stages.<name>`` process, and importing torch,
torchvision and torch-fidelity takes 3 to 8 s of a 2-core CPU before the stage does any work: on the
65-stage default that is about 4 minutes of every ``dvc repro``, and more of the tests. So a stage
process (the caller) first looks for this server:

- none running: the caller starts one in the background (``python -m pipeline.warm serve``) and
  runs its stage itself, cold, as always. The server imports the libraries of ``PRELOAD`` once, then
  listens on a socket private to this user and this virtual environment.
- one listening: the caller hands over its argv, working directory, environment and stdin / stdout /
  stderr; the server forks a child that runs the stage exactly as ``python -m`` would, and the
  caller exits with the child's exit status or dies by the child's signal. DVC, the Prefect flow and
  the tests see an ordinary process.

What keeps it honest:

- Only third-party libraries are preloaded. The child drops every module of this project
  (``digit``, ``pipeline``, ...) and puts the caller's directory first on ``sys.path`` before it runs
  the stage, so the files on disk are the ones that run, whichever checkout the caller is in.
- The child takes the caller's environment and sets torch's and the BLAS / OpenMP thread counts from
  it (``OMP_NUM_THREADS``, or what a fresh process would use), so results match a cold start.
- The server exits after ``IDLE_S`` seconds without work, when the installed packages change, or on
  ``python -m pipeline.warm stop`` (the test session ends with it).
- ``DIGIT_WARM=0`` turns it off: every stage then starts cold.

What keeps it safe (as tmux's and ssh-agent's sockets are):

- A private folder: the socket, lock and log live in a directory of mode 0700 (``DIGIT_WARM_DIR``,
  default ``/tmp/digit-warm-<uid>-<hash>``). If it exists as a symbolic link, or belongs to another
  user, or is open to group or others, caller and server both refuse it: the stage runs cold with
  one warning line saying why. The folder is never chmod-ed or chown-ed.
- Same user only: the server reads each connection's credentials from the kernel (SO_PEERCRED)
  and closes any whose uid is not its own; the caller checks the server's the same way.
- Stages only: the server runs ``pipeline.stages.<name>`` and nothing else (not ``os``, not
  ``pipeline.flow``); any other request is closed and its caller runs cold.
- The stage dies with its caller: the child leads a process group of its own, which the stage's
  subprocesses (torchrun among them) join, and the whole group gets SIGKILL when the caller is gone
  (kill -9, the flow cancelling a task): the server kills it, and so does a thread of the child that
  watches a pipe from the caller, in case the server is gone or stuck. A signal the caller catches
  (Ctrl-C, SIGTERM) is passed on to the group.
- The caller dies with its parent: every ``python -m pipeline.stages.<name>``, warm or cold (a
  torchrun rank too), asks Linux for SIGKILL when its parent dies (PR_SET_PDEATHSIG), so a kill -9
  of DVC does not leave it running; torchrun, started by ``pipeline.ddp``, asks the same.

What remains: a cold stage's own subprocesses that do not ask for PDEATHSIG outlive a kill -9 of
the stage (nothing is left to kill its group), as do, warm, those that start a session of their own
(torchrun's ranks do, and ask for PDEATHSIG); a shell that DVC runs the command under and that does
not exec it keeps the stage's parent alive; a kill -9 of the Prefect flow leaves its ``dvc repro``
(started in a session of its own) running.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ENABLE = "DIGIT_WARM"  # "0": never hand a stage to the server
DIR_VAR = "DIGIT_WARM_DIR"  # where the socket, lock and log live (default: a private /tmp folder)
IDLE_S = 120.0
PRELOAD = (
    "numpy",
    "torch",
    "torch._dynamo",  # ~1 s: the first optimizer of a training (or probe) stage imports it
    "torch_fidelity",  # torchvision with it: 4-5 s of a scoring (generate) stage's start
    "zarr",
    "faiss",
    "scipy.linalg",
    "scipy.sparse",
    "sklearn.linear_model",
    "sklearn.neighbors",
    "matplotlib.pyplot",
    "pandas",
    "PIL.Image",
    "pydantic",
    "ruamel.yaml",
    "tqdm",
    "dvclive",
    "threadpoolctl",
)
# Modules a child must import afresh from the caller's checkout.
PROJECT = ("digit", "pipeline", "benchmarks", "tests")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# The only modules a server runs: a stage, never an arbitrary `python -m` (fullmatch: no newline).
STAGE_MODULE = re.compile(r"pipeline\.stages\.[A-Za-z_][A-Za-z0-9_]*")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_HEADER = struct.Struct("!I")
_lock = None  # the server's lock file: held while it lives


def state_dir() -> Path:
    """One server per user and virtual environment (``sys.prefix``)."""
    if os.environ.get(DIR_VAR):
        return Path(os.environ[DIR_VAR])
    key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"digit-warm-{os.getuid()}-{key}"


def _paths() -> tuple[Path, Path, Path]:
    folder = state_dir()
    return folder / "sock", folder / "lock", folder / "log"


def private_dir() -> str | None:
    """Create the state folder (mode 0700) if missing. None when it is this user's alone, else why
    not: another user who could enter it could plant a socket or read the stages' environments.
    An unsafe folder is only reported, never chmod-ed or chown-ed (it may be someone else's)."""
    folder = state_dir()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as err:
        return f"cannot create {folder}: {err.strerror}"
    try:
        info = os.lstat(folder)  # lstat: a symbolic link is refused, not followed
    except OSError as err:
        return f"cannot stat {folder}: {err.strerror}"
    mode, uid = stat.S_IMODE(info.st_mode), os.getuid()
    if stat.S_ISLNK(info.st_mode):
        why = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        why = "is not a directory"
    elif info.st_uid != uid:
        why = f"belongs to uid {info.st_uid}, not {uid}"
    elif mode & 0o077:
        why = "is open to group or others"
    else:
        return None
    return f"{folder} {why} (owner uid {info.st_uid}, mode {mode:04o}; needs uid {uid}, mode 0700)"


def trusted_peer(conn: socket.socket, uid: int | None = None) -> bool:
    """Whether the process at the other end of a UNIX socket runs as ``uid`` (default: this one's),
    by the kernel's SO_PEERCRED (Linux); False where the platform cannot tell."""
    if not hasattr(socket, "SO_PEERCRED"):
        return False
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, peer_uid, _gid = struct.unpack("3i", creds)
    return peer_uid == (os.getuid() if uid is None else uid)


# ----------------------------------------------------------------- dying with the parent (Linux)


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies: DVC (or the flow, a test) killed
    with -9 must not leave its stage running. Linux only; a no-op elsewhere.

    The kernel sends it when the parent *thread* that started us exits; DVC and the flow start
    stages from the thread that then waits for them. A shell between DVC and the stage (``$SHELL
    -c cmd``) usually execs the command; one that does not keeps it alive when DVC dies."""
    prctl = _prctl()
    if prctl is not None:
        _pdeathsig(prctl, os.getppid())


def parent_death_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess``: the child gets SIGKILL when the thread that started it
    exits (say torchrun, when its stage is killed with -9). None off Linux.

    It runs between fork and exec, so it only calls a ``prctl`` looked up beforehand."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    return lambda: _pdeathsig(prctl, parent)


def _pdeathsig(prctl: Callable[..., int], parent: int) -> None:
    """SIGKILL this process when its parent dies, or now if ``parent`` already died (the kernel
    only tells about deaths after the call)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    """Signal a stage's process group: the stage and all it started (torchrun, its subprocesses)."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pgid, signum)
    except PermissionError:  # a member changed user: nothing of ours to signal there
        pass


# ------------------------------------------------------------------------------------ the caller


def _stage_argv(argv: list[str]) -> tuple[bool, str, list[str]] | None:
    """``python [options] -m pipeline.stages.<name> args``: (no options?, module, args), else None.
    torchrun starts its ranks with ``-u -m``."""
    i = 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 2 if argv[i] in ("-X", "-W") else 1
    if i + 1 >= len(argv) or argv[i] != "-m" or not STAGE_MODULE.fullmatch(argv[i + 1]):
        return None
    return i == 1, argv[i + 1], argv[i + 2 :]


def hand_off() -> None:
    """Called on import of ``pipeline.stages``: when this process is ``python -m
    pipeline.stages.<name> ...`` and a warm server is listening, run the stage there and exit with
    its status. Otherwise return (the stage runs here) after starting a server for the next one."""
    stage = _stage_argv(sys.orig_argv)
    if stage is None:  # a plain import (tests, the flow): leave this process alone
        return
    die_with_parent()  # warm or cold, ranks too
    plain, module, args = stage
    if not plain or os.environ.get(ENABLE, "1") == "0" or "TORCHELASTIC_RUN_ID" in os.environ:
        return
    if not hasattr(socket, "SO_PEERCRED"):  # not Linux: no way to tell whose server it is
        return
    unsafe = private_dir()
    if unsafe:
        sys.stderr.write(f"warning: warm stage server not used: {unsafe}; running cold\n")
        return
    sock_path, _, _ = _paths()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(sock_path))
    except OSError:
        client.close()
        _start_server()
        return
    if not trusted_peer(client):  # only root could have put it there; do not hand it our env
        client.close()
        sys.stderr.write(f"warning: {sock_path} is not this user's server; running cold\n")
        return
    # The child watches `alive`'s read end: it reads EOF once this process is gone, however it
    # died, and then kills the stage's process group even if the server is gone too.
    alive, alive_w = os.pipe()
    with client:
        status = _run_remote(client, module, args, alive)
    os.close(alive)
    if status is None:  # the server refused (packages changed, bad request) or died before forking
        os.close(alive_w)
        return
    kind, value = status
    if kind == "signal":
        sys.stdout.flush()
        if value not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(value, signal.SIG_DFL)
        os.kill(os.getpid(), value)
        time.sleep(5)  # a stopped or ignored signal: fall through to an exit status
        os._exit(128 + value)
    os._exit(value)


def _run_remote(
    client: socket.socket, module: str, args: list[str], alive: int
) -> tuple[str, int] | None:
    request = json.dumps(
        {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    ).encode()
    try:
        socket.send_fds(client, [_HEADER.pack(len(request))], [0, 1, 2, alive])
        client.sendall(request)
        reader = client.makefile("r")
        first = reader.readline().split()
    except OSError:
        return None
    if first[:1] != ["pid"]:
        return None
    child = int(first[1])  # also its process group

    def forward(signum: int, _frame: object) -> None:
        _kill_group(child, signum)  # the stage's subprocesses get it too, as from a terminal

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    try:
        last = reader.readline().split()
    except OSError:
        last = []
    if len(last) == 2 and last[0] in ("exit", "signal"):
        return last[0], int(last[1])
    _kill_group(child)  # the server died: do not leave the stage
    sys.stderr.write("error: the warm stage server stopped during the stage (see DIGIT_WARM)\n")
    return "exit", 1


def _start_server() -> None:
    """Start a server in the background unless one is starting already (it holds the lock)."""
    folder = state_dir()  # private_dir() checked it
    _, lock_path, log_path = _paths()
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a server is alive (importing, or exiting): this stage runs cold
        fcntl.flock(lock, fcntl.LOCK_UN)
    # A clean start: the thread defaults of a fresh process, no caller's PYTHONPATH in sys.path.
    env = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARS, "PYTHONPATH")}
    env[DIR_VAR] = str(folder)
    with open(log_path, "a") as log:
        subprocess.Popen(
            [sys.executable, "-m", "pipeline.warm", "serve"],
            cwd=Path(__file__).resolve().parents[1],  # `-m pipeline.warm` from this checkout
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this stage and its process group
        )


def stop() -> bool:
    """Ask a running server to exit once its current children finish; True if one was running."""
    unsafe = private_dir()
    if unsafe:
        sys.stderr.write(f"warning: {unsafe}\n")
        return False
    sock_path, _, _ = _paths()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(sock_path))
        except OSError:
            return False
        socket.send_fds(client, [_HEADER.pack(0)], [])
    return True


# ------------------------------------------------------------------------------------ the server


def _site_packages_mtime() -> float:
    import sysconfig

    return os.stat(sysconfig.get_paths()["purelib"]).st_mtime


def serve(idle_s: float = IDLE_S, preload: tuple[str, ...] = PRELOAD) -> None:
    unsafe = private_dir()  # before the lock, log and socket go into it
    if unsafe:
        print(f"warm: not serving: {unsafe}", file=sys.stderr, flush=True)
        return
    sock_path, lock_path, _ = _paths()
    global _lock
    _lock = open(lock_path, "a")  # noqa: SIM115 (held for the server's lifetime, not by children)
    try:
        fcntl.flock(_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server won the race
    os.chdir("/")
    started = time.perf_counter()
    for name in preload:
        try:
            __import__(name)
        except Exception as err:  # noqa: BLE001 (a missing optional library is only slower)
            print(f"warm: preload {name} failed: {err}", flush=True)
    import threading

    if threading.active_count() > 1:  # fork copies one thread only: refuse to serve
        print(f"warm: {threading.active_count()} threads after preload; not serving", flush=True)
        return
    defaults = _thread_defaults()
    packages = _site_packages_mtime()
    print(
        f"warm: preloaded in {time.perf_counter() - started:.1f} s; pid {os.getpid()}", flush=True
    )

    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}  # child pid (= its process group) -> caller's conn
    last_work, stopping = time.monotonic(), False
    try:
        while True:
            for key, _ in selector.select(timeout=0.1):
                if key.fileobj is server:
                    conn, _ = server.accept()
                    if not trusted_peer(conn):  # another user: never run anything for them
                        conn.close()
                        continue
                    if _site_packages_mtime() != packages:
                        conn.close()  # the caller runs cold; the next one starts a new server
                        stopping = True
                        continue
                    pid = _accept(conn, defaults, server, children)
                    if pid == 0:
                        stopping = True
                    elif pid > 0:
                        children[pid] = conn
                        selector.register(conn, selectors.EVENT_READ, pid)
                else:  # a caller's connection: readable only when it closed (the caller died)
                    pid = key.data
                    if not key.fileobj.recv(1):
                        _kill_group(pid)
                        selector.unregister(key.fileobj)
            if _reap(children, selector) or children:
                last_work = time.monotonic()
            elif stopping or time.monotonic() - last_work > idle_s:
                break
    finally:
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        server.close()
        print("warm: stopped", flush=True)


def _thread_defaults() -> int:
    """torch's thread count in a process started without thread variables; 0 if not preloaded."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch else 0


def _valid(request: object, fds: list[int]) -> bool:
    """A stage request: stdin, stdout, stderr and the caller's pipe; a stage module; plain strings."""
    return (
        isinstance(request, dict)
        and len(fds) == 4
        and isinstance(request.get("module"), str)
        and STAGE_MODULE.fullmatch(request["module"]) is not None
        and isinstance(request.get("cwd"), str)
        and isinstance(request.get("args"), list)
        and all(isinstance(a, str) for a in request["args"])
        and isinstance(request.get("env"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in request["env"].items())
    )


def _accept(
    conn: socket.socket, defaults: int, server: socket.socket, children: dict[int, socket.socket]
) -> int:
    """Read one request and fork its child; the child's pid, 0 for a stop request, -1 on refusal."""
    conn.settimeout(10)
    fds: list[int] = []
    try:
        data, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 4)
        (size,) = _HEADER.unpack(data)
        if size == 0 and not fds:
            conn.close()
            return 0
        payload = b""
        while len(payload) < size:
            chunk = conn.recv(size - len(payload))
            if not chunk:
                raise OSError("caller closed")
            payload += chunk
        request = json.loads(payload)
        if not _valid(request, fds):
            raise ValueError("not a stage request")
    except (OSError, ValueError, struct.error):
        for fd in fds:
            os.close(fd)
        conn.close()  # the caller runs its stage cold
        return -1
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.setpgid(0, 0)  # its own process group, which everything it starts joins
        server.close()
        if _lock is not None:
            _lock.close()
        for other in children.values():
            other.close()
        conn.close()
        _run_child(request, fds, defaults)
    with contextlib.suppress(OSError):  # here too, so a killpg right after the fork finds it
        os.setpgid(pid, pid)
    for fd in fds:
        os.close(fd)
    conn.settimeout(None)
    conn.sendall(f"pid {pid}\n".encode())
    return pid


def _reap(children: dict[int, socket.socket], selector: selectors.BaseSelector) -> list[int]:
    done = []
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        conn = children.pop(pid, None)
        done.append(pid)
        if conn is None:
            continue
        if os.WIFSIGNALED(status):
            reply = f"signal {os.WTERMSIG(status)}\n"
        else:
            reply = f"exit {os.waitstatus_to_exitcode(status)}\n"
        with contextlib.suppress(OSError):
            conn.sendall(reply.encode())
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn)
        conn.close()
    return done


def _watch_caller(alive: int) -> None:
    """In the child: when the caller is gone (EOF on its pipe; it never writes), kill this process
    group. The server does the same, but this holds when the server is gone or stuck too."""
    import threading

    def watch() -> None:
        try:
            os.read(alive, 1)
        except OSError:
            return  # cannot watch (not expected): the server still kills the group
        if os.getpgrp() == os.getpid():  # never the server's group, should setpgid have failed
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    os.set_inheritable(alive, False)
    threading.Thread(target=watch, name="warm-caller-watch", daemon=True).start()


def _reread_import_time_settings() -> None:
    """What the preloaded libraries read from the environment when imported, read again from the
    caller's: fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>`` settings (an S3 endpoint for
    ``extract.store``, say) would otherwise be the server's, not the stage's."""
    if "fsspec.config" in sys.modules:
        import fsspec.config

        fsspec.config.conf.clear()
        fsspec.config.set_conf_files(fsspec.config.conf_dir, fsspec.config.conf)
        fsspec.config.set_conf_env(fsspec.config.conf)


def _run_child(request: dict, fds: list[int], defaults: int) -> None:
    """Become ``python -m <module> <args>`` started in the caller's directory and environment."""
    import atexit
    import io
    import runpy
    import traceback

    for fd, target in zip(fds[:3], (0, 1, 2), strict=True):
        os.dup2(fd, target)
        os.close(fd)
    _watch_caller(fds[3])
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _reread_import_time_settings()
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        line_buffering=os.isatty(1),
        write_through=unbuffered,
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    for name in list(sys.modules):
        if name.split(".")[0] in PROJECT:
            del sys.modules[name]
    # What `python -m` would search: the caller's directory, its PYTHONPATH, then site-packages.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:1] = [request["cwd"], *extra]
    _set_threads(defaults)
    sys.argv = ["-m", *request["args"]]
    code, kill_with = 0, 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        kill_with = signal.SIGINT
    except BaseException:  # noqa: BLE001 (what the interpreter would print, then status 1)
        traceback.print_exc()
        code = 1
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    if kill_with:
        signal.signal(kill_with, signal.SIG_DFL)
        os.kill(os.getpid(), kill_with)
    os._exit(code)


def _set_threads(defaults: int) -> None:
    """The thread counts a fresh process would pick up from this environment. A library the
    server did not preload is imported afresh by the stage and reads the variables itself."""
    torch = sys.modules.get("torch")
    raw = os.environ.get("OMP_NUM_THREADS", "")
    if not (raw.isdigit() and int(raw) > 0):
        if torch and defaults:
            torch.set_num_threads(defaults)  # the server's own: it started with no thread variables
        return
    from threadpoolctl import threadpool_limits

    if torch:
        torch.set_num_threads(int(raw))
    threadpool_limits(limits=int(raw))


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "serve":
        serve()
    elif command == "stop":
        print("warm stage server stopped" if stop() else "no warm stage server running")
    else:
        sys.exit("usage: python -m pipeline.warm serve | stop")


if __name__ == "__main__":
    main()
