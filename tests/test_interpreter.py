"""`dvc repro` from any shell: a stage command run by an interpreter without the project's packages
(the system python, when the venv is not activated) re-executes itself with the project's
.venv/bin/python, or stops at once with one `error:` line saying what to run."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, copy_project

from pipeline.stages import interpreter_action


def bare_python(tmp_path: Path) -> str:
    """A python without the project's packages: a fresh venv with nothing installed."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True
    )
    python = str(tmp_path / "bare" / "bin" / "python")
    has = subprocess.run([python, "-c", "import tqdm"], capture_output=True).returncode == 0
    assert not has, "the bare venv sees the project's packages"
    return python


def run_stage(python: str, project: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DIGIT_REEXEC")}
    env["DIGIT_WARM"] = "0"
    return subprocess.run(
        [python, "-m", "pipeline.stages.toy", "--help"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_action_decides(tmp_path):
    venv = tmp_path / ".venv/bin/python"
    assert interpreter_action([], venv, "/usr/bin/python3", False) == ("ok", "")
    kind, line = interpreter_action(["tqdm"], venv, "/usr/bin/python3", False)
    assert kind == "error" and line.startswith("error: /usr/bin/python3 lacks")
    assert "make repro" in line and "source .venv/bin/activate" in line and "\n" not in line
    venv.parent.mkdir(parents=True)
    venv.write_text("")
    venv.chmod(0o755)
    assert interpreter_action(["tqdm"], venv, "/usr/bin/python3", False) == ("exec", str(venv))
    # already re-executed, or this is the venv's python: no loop, one line
    assert interpreter_action(["tqdm"], venv, "/usr/bin/python3", True)[0] == "error"
    assert interpreter_action(["tqdm"], venv, str(venv), False)[0] == "error"


def test_the_venv_of_a_folder_above_counts(tmp_path):
    """`dvc exp run --queue` runs stages in .dvc/tmp/exps/<id>/ inside the project."""
    from pipeline.stages import project_python

    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").write_text("")
    inner = tmp_path / ".dvc/tmp/exps/run/abc"
    inner.mkdir(parents=True)
    assert project_python(inner) == tmp_path / ".venv/bin/python"


def test_stage_without_venv_stops_with_one_line(tmp_path):
    project = copy_project(tmp_path / "p", preset=None)
    proc = run_stage(bare_python(tmp_path), project)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "make repro" in lines[0] and "lacks the project's packages" in lines[0]


def test_stage_reexecs_with_the_project_venv(tmp_path):
    project = copy_project(tmp_path / "p", preset=None)
    (project / ".venv").symlink_to(ROOT / ".venv")  # the project's venv, as `make` makes it
    proc = run_stage(bare_python(tmp_path), project)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--metrics" in proc.stdout  # the stage's own --help: it ran with the venv


def test_stage_command_needs_only_python3(tmp_path):
    """Stock Debian has `python3` and no `python`: the generated stage command runs from a PATH
    that holds only a `python3` without the project's packages (it re-executes with the venv)."""
    from pipeline import dag

    project = copy_project(tmp_path / "p", preset=None)
    (project / ".venv").symlink_to(ROOT / ".venv")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(bare_python(tmp_path))
    cmd = str(dag.stage_body(next(k for k in dag.KINDS if k.name == "toy"))["cmd"])
    assert cmd.startswith(f"{dag.STAGE_PYTHON} -m pipeline.stages.toy ")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DIGIT_REEXEC")}
    env.update(DIGIT_WARM="0", PATH=f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    interpreter = cmd.split(" -m ")[0]
    proc = subprocess.run(
        ["bash", "-c", f"{interpreter} -m pipeline.stages.toy --help"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--metrics" in proc.stdout
