"""The project installs as a package (`pip install -e .` on each Dask worker, or `pip install .`):
the wheel holds digit/ and pipeline/ with every subpackage and the data files the code reads at run
time, none of the output folders beside them, the `digit-flow` command, and the pins of
requirements.txt. Built offline from a copy of the checkout, so the repo gets no build/ folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("digit", "pipeline")
OUTPUT_FOLDERS = ("metrics", "reports", "dvclive", "timings", "benchmarks", "tests")
DATA_FILES = (  # opened relative to __file__ at run time
    "pipeline/paper.yaml",
    "pipeline/presets/smoke.yaml",
    "pipeline/presets/imagenet.yaml",
    "pipeline/plots/template.html",
)


def requirement(line: str) -> tuple[str, str]:
    """(normalized name, specifier) of one requirement line."""
    name, spec = re.match(r"\s*([A-Za-z0-9._-]+)\s*(.*)", line).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel of a copy of the checkout (the files git tracks or would add)."""
    tmp = tmp_path_factory.mktemp("install")
    src, out = tmp / "src", tmp / "dist"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--disable-pip-version-check", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("digit-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_wheel_holds_the_packages_and_their_data(wheel):
    names = set(wheel.namelist())
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == set(PACKAGES)
    assert not any(n.startswith(tuple(f"{f}/" for f in OUTPUT_FOLDERS)) for n in names)
    for package in PACKAGES:  # every module of every subpackage, none left behind
        for module in (ROOT / package).rglob("*.py"):
            assert module.relative_to(ROOT).as_posix() in names, module
    for data in DATA_FILES:
        assert data in names, data


def test_wheel_metadata(wheel):
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith("dist-info/METADATA")))
    entry = wheel.read(next(n for n in wheel.namelist() if n.endswith("/entry_points.txt")))
    for command in (
        "digit-flow = pipeline.flow:main",
        "digit-serve = pipeline.serve:main",
        "digit-dashboard = pipeline.serve:dashboard",
    ):
        assert command in entry.decode()
    requires = [
        line.removeprefix("Requires-Dist:").strip()
        for line in meta.decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    default = {requirement(r)[0] for r in requires if "extra ==" not in r}
    assert {"torch", "dvc", "prefect", "prefect-dask"} <= default
    assert "dvc-s3" not in default  # an extra: `pip install -e .[s3]`
    assert any(r.startswith("dvc-s3") and 'extra == "s3"' in r for r in requires), requires


def test_dependencies_match_requirements_txt():
    """requirements.txt stays the pinned file the Makefile installs; pyproject.toml has the same
    pins (its dev extra: the test and lint tools)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = dict(map(requirement, project["dependencies"]))
    declared |= dict(map(requirement, project["optional-dependencies"]["dev"]))
    lines = [
        ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
    ]
    pinned = dict(requirement(ln) for ln in lines if ln)
    assert declared == pinned
