"""Runs started from the dashboard (pipeline/serve.py): params overrides applied to params.yaml,
and the deployment served by `python -m pipeline.serve` (what `make serve` runs), started through
the API of a real Prefect server, running the stages of a toy DAG."""

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import dvc, served

from pipeline.params import ParamsError
from pipeline.presets import apply_overrides

ROOT = Path(__file__).resolve().parents[1]

TOY_DVC_YAML = """\
stages:
  a:
    cmd: echo a > a.txt
    outs: [a.txt]
  b:
    foreach: [1, 2]
    do:
      cmd: cat a.txt > b${item}.txt
      deps: [a.txt]
      outs: ["b${item}.txt"]
  c:
    cmd: cat b1.txt b2.txt > c.txt
    deps: [b1.txt, b2.txt]
    outs: [c.txt]
"""


def params_copy(folder: Path) -> Path:
    path = folder / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    return path


def test_overrides_set_typed_values(tmp_path):
    path = params_copy(tmp_path)
    got = apply_overrides(
        ["ar.steps=40", "seeds=[0, 1]", "sample_seeds=[0]", "encoder.weights=null"], path
    )
    assert got.ar.steps == 40 and got.seeds == [0, 1] and got.encoder.weights is None
    written = yaml.safe_load(path.read_text())
    assert written["ar"]["steps"] == 40 and written["seeds"] == [0, 1]
    assert written["ar"]["lr"] == yaml.safe_load((ROOT / "params.yaml").read_text())["ar"]["lr"]


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["ar.steps"], r"override 'ar.steps' must be key=value"),
        (["=3"], r"override '=3' must be key=value"),
        (["ar.stepz=40"], r"ar\.stepz"),
        (["ar.steps=-1"], r"ar\.steps"),
    ],
)
def test_bad_overrides_name_the_problem_and_write_nothing(tmp_path, pairs, message):
    path = params_copy(tmp_path)
    before = path.read_bytes()
    with pytest.raises(ParamsError, match=message):
        apply_overrides(pairs, path)
    assert path.read_bytes() == before


def toy_project(folder: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    dvc(folder, "init", "-q")
    (folder / "dvc.yaml").write_text(TOY_DVC_YAML)
    params_copy(folder)
    return folder


def test_a_run_started_through_the_api_runs_the_stages(tmp_path, prefect_server):
    """`python -m pipeline.serve` registers digit-run/digit; a run started through the API with
    an override applies it and reproduces the DAG; stopping the server process ends serving."""
    from prefect.deployments import run_deployment

    (tmp_path / "work").mkdir()
    work = toy_project(tmp_path / "work")
    with served(work, tmp_path / "serve.log"):
        run = run_deployment(
            "digit-run/digit", parameters={"overrides": ["flow.max_parallel=1"]}, timeout=300
        )
        assert run.state.is_completed(), (run.state, (tmp_path / "serve.log").read_text()[-3000:])
        assert (work / "c.txt").read_text() == "a\na\n"
        assert yaml.safe_load((work / "params.yaml").read_text())["flow"]["max_parallel"] == 1
        assert "Data and pipelines are up to date" in dvc(work, "status")
