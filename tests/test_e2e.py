"""The smoke preset end to end through the real `dvc repro`, in a temporary copy of the project:
everything runs, a second repro is a no-op, and editing one K re-runs only that K's branch."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COPY = [".dvc/config", ".dvc/.gitignore", "dvc.yaml", "params.yaml", "digit", "pipeline"]


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("smoke")
    for name in COPY:
        src, dst = ROOT / name, work / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["python", "-m", "pipeline.params", "apply", "smoke"], cwd=work, check=True)
    out = dvc(work, "repro")
    (work / "first_run.log").write_text(out)
    return work


def test_smoke_runs_every_stage(smoke):
    out = (smoke / "first_run.log").read_text()
    stages = set(dvc(smoke, "stage", "list", "--name-only").split())
    assert ran_stages(out) == stages
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    for k in params["codebook"]["ks"]:
        assert (smoke / f"codebooks/k{k}.npy").exists()
        assert (smoke / f"tokens/disc_k{k}.zarr").is_dir()
        tokens = json.loads((smoke / f"metrics/tokens_k{k}.json").read_text())
        assert 0 <= tokens["trained"]["token_probe_top1"] <= 1
    enc = json.loads((smoke / "metrics/encoder.json").read_text())
    assert set(enc["knn_top1"]) == {"pixels", "random", "trained"}


def test_second_repro_is_a_noop(smoke):
    out = dvc(smoke, "repro")
    assert ran_stages(out) == set(), out
    assert "up to date" in dvc(smoke, "status")


def test_changing_one_k_reruns_only_its_branch(smoke):
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    old = params["codebook"]["ks"]
    new_k = max(old) + 4
    keep = params["codebook"]["main_k"]
    changed = next(k for k in old if k != keep)
    params["codebook"]["ks"] = [new_k if k == changed else k for k in old]
    (smoke / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(smoke, "repro")
    ran = ran_stages(out)
    branch = {s for s in ran if "@" in s}
    assert branch == {f"codebook@{new_k}", f"tokenize@{new_k}", f"token_eval@{new_k}"}, ran
    assert all(s.endswith(f"@{new_k}") or "@" not in s for s in ran), ran
    assert not (ran & {"prepare", "ssl", "extract", "encoder_eval"}), ran
