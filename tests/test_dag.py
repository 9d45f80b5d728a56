"""The DAG is declared once (pipeline/dag.py) and the DVC files follow from it: code deps are each
stage's import closure, params deps are what each stage reads, and every stage is reached by a
plain `dvc repro`.

The closure of ``python -m pipeline.stages.<name>`` is every file of digit/ and pipeline/ that its
module imports, transitively (function-level imports included), found by reading the source. The
params a stage reads are recorded while it runs (pipeline.params.Section) and checked against its
kind's list at its end (pipeline.stage.check_declared): the end-to-end smoke run exercises every
kind; the tests below show the check bites.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import checks, dag, params

ROOT = Path(__file__).resolve().parents[1]


def test_the_dvc_files_are_generated_from_the_declaration():
    diffs = dag.stale(ROOT)
    assert not diffs, "run `python -m pipeline.dag`:\n" + "".join(diffs)[:3000]


def test_a_hand_edit_of_a_dvc_file_is_caught(tmp_path):
    for rel, text in dag.render(ROOT).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    for rel in ("digit", "pipeline"):
        (tmp_path / rel).symlink_to(ROOT / rel)
    assert dag.stale(tmp_path) == []
    edited = tmp_path / "dag/ar/dvc.yaml"
    edited.write_text(edited.read_text().replace("    - pipeline/train.py\n", ""))
    (diff,) = dag.stale(tmp_path)
    assert "+    - pipeline/train.py" in diff
    (tmp_path / "dag/old_kind").mkdir()
    (tmp_path / "dag/old_kind/dvc.yaml").write_text("stages: {}\n")
    assert any("old_kind" in d for d in dag.stale(tmp_path))


def test_every_stage_module_is_in_the_dag():
    used = {kind.module for kind in dag.KINDS}
    modules = {
        p.stem for p in (ROOT / "pipeline/stages").glob("*.py") if not p.name.startswith("_")
    }
    assert modules == used


def test_kind_names_are_unique_and_every_kind_is_reached_by_dvc_repro():
    names = [kind.name for kind in dag.KINDS]
    assert len(set(names)) == len(names)
    assert dag.check_reach() == []


def test_reach_catches_a_kind_no_root_stage_reads(monkeypatch):
    orphan = dag.Kind("orphan", "toy", {"out": dag.Out("models/orphan.pt")}, ())
    monkeypatch.setattr(dag, "KINDS", (*dag.KINDS, orphan))
    assert dag.check_reach() == ["orphan"]


def test_every_arg_path_becomes_a_dep_or_an_out():
    for kind in dag.KINDS:
        body = dag.stage_body(kind)
        deps = set(body["deps"])
        outs = {o if isinstance(o, str) else next(iter(o)) for o in body["outs"]}
        for arg in kind.args.values():
            if isinstance(arg, dag.In):
                assert arg.path in deps, (kind.name, arg)
            elif isinstance(arg, dag.Out | dag.Keep):
                assert arg.path in outs, (kind.name, arg)
            elif isinstance(arg, dag.Live):
                assert f"{arg.path}/metrics.json" in outs, (kind.name, arg)
        assert kind.timings in outs
        assert f"pipeline/stages/{kind.module}.py" in deps


def test_undeclared_keys_follow_prefixes_and_templates():
    declared = ["ar", "generate.n_samples", "encoders.${key}"]
    reads = {
        "ar.steps",
        "generate.n_samples",
        "encoders.*.label",
        "generate.grid",
        "renderer.align_kernel",
        "ar_x",
    }
    assert dag.undeclared(reads, declared) == ["ar_x", "generate.grid", "renderer.align_kernel"]


def test_a_dict_loop_fills_its_params_templates_per_variant():
    """generate_variant lists generate.${item.sampling}: that is the variants' own sampling
    sections, not every key under generate."""
    declared = dag.declared_params("pipeline.stages.generate")
    assert "generate.renderer_maskgit" in declared and "generate.token_model_cond" in declared
    assert not any("${item." in p for p in declared)
    assert dag.undeclared({"generate.flavour"}, declared) == ["generate.flavour"]


def test_reads_are_recorded_by_params_key():
    p = checks.load(ROOT / "params.yaml")
    params.start_recording()
    try:
        _ = p.ar.steps, p.generate.renderer_causal.top_p, p.generate, p.seed
        p.vq.model_dump()
        row = next(iter(p.encoders.values()), None)
        if row is not None:
            _ = row.label
        keys = params.recorded_keys()
    finally:
        params.stop_recording()
    expected = {"ar.steps", "generate.renderer_causal.top_p", "seed", "vq"}
    assert keys == expected | ({"encoders.*.label"} if row is not None else set())


REPORT_READS = ["renderer.align_kernel", "encoders", "ssl.objective"]


@pytest.mark.parametrize("key", REPORT_READS)
def test_the_report_fails_when_its_kind_forgets_a_key_it_reads(tmp_path, key, root):
    """The report stage on a full set of metrics files, with one key its report prints taken out
    of its declaration: the stage fails naming the key (the report once printed
    renderer.align_kernel and the encoders rows without listing them)."""
    from test_report import fake_metrics

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    fake_metrics(metrics, disc_change=0.1, disc_fid=5.0, disc_probe=0.8)
    (tmp_path / "dvclive").mkdir()
    report = next(k for k in dag.KINDS if k.name == "report")
    assert key in report.params
    script = (
        "import runpy, sys\n"
        "from pipeline import dag\n"
        "report = next(k for k in dag.KINDS if k.name == 'report')\n"
        f"dag.KINDS = (report.__class__(**{{**report.__dict__, 'params': tuple(p for p in report.params if p != {key!r})}}),)\n"
        "sys.argv = ['report', '--metrics', sys.argv[2], '--live', sys.argv[3], '--out', sys.argv[1]]\n"
        "runpy.run_module('pipeline.stages.report', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "reports"),
            str(metrics),
            str(tmp_path / "dvclive"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert f"read params {key}" in proc.stderr or f", {key}" in proc.stderr, proc.stderr[-2000:]


def test_closure_follows_what_a_stage_imports(tmp_path):
    """The finder itself: transitive, relative, function-level and ``from pkg import module``
    imports count; the excluded files, what only they import, and docstring-only ``__init__``
    files do not."""
    files = {
        "digit/__init__.py": '"""The library."""\n',
        "digit/a.py": "from digit import b\n",
        "digit/b.py": "def f():\n    from .c import g\n    return g\n",
        "digit/c.py": "g = 1\n",
        "digit/unused.py": "x = 1\n",
        "digit/names.py": "NAMES = ()\n",
        "digit/sub/__init__.py": "from digit.sub.inner import y\n",
        "digit/sub/inner.py": "y = 2\n",
        "pipeline/__init__.py": "",
        "pipeline/io.py": "import digit.names\n",
        "pipeline/stages/__init__.py": "",
        "pipeline/stages/s.py": "import digit.a\nfrom pipeline import io\nimport digit.sub\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    got = dag.import_closure(tmp_path, "pipeline.stages.s", exclude={"pipeline/io.py"})
    assert got == {  # empty __init__ files hold no code either
        "pipeline/stages/s.py",
        "digit/a.py",
        "digit/b.py",
        "digit/c.py",
        "digit/sub/__init__.py",
        "digit/sub/inner.py",
    }
