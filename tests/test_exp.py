"""A researcher's ablation with DVC's own tools, on a copy of the smoke run: `dvc exp run -S` with a
new K list, `dvc exp show` with the experiment's params and headline metrics, and `dvc metrics diff`
/ `dvc params diff` between two commits."""

import csv
import io
import json
import re
import subprocess

from conftest import clone_run, dvc

GIT_ID = ["-c", "user.name=digit", "-c", "user.email=digit@localhost"]


def git(cwd, *args: str) -> str:
    proc = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_metrics_show_is_the_headline_table(smoke_run):
    out = dvc(smoke_run, "metrics", "show", "--json")
    files = next(iter(json.loads(out).values()))["data"]  # the workspace's
    assert "reports/summary.json" in files
    assert not [f for f in files if f.startswith(("metrics/", "dvclive/"))], sorted(files)
    summary = files["reports/summary.json"]["data"]
    assert {"fid", "is", "probe", "noise20db", "knn", "claims"} <= set(summary)
    assert {"k8", "k16", "vq"} <= set(summary["probe"])
    table = dvc(smoke_run, "metrics", "show")
    assert len(table.strip().splitlines()) <= 4, (
        table
    )  # header, the summary (+ the report's timings)


def test_exp_run_show_and_diff(smoke_run, tmp_path):
    work = clone_run(smoke_run, tmp_path / "work")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "smoke run")
    # The K ablation without K=8: only the report reads the K list as a whole, so only it re-runs.
    out = dvc(work, "exp", "run", "-n", "only-k16", "-S", "kmeans.ks=[16]")
    assert set(re.findall(r"Running stage '([^']+)'", out)) == {"report"}, out
    rows = list(csv.DictReader(io.StringIO(dvc(work, "exp", "show", "--csv", "--no-pager"))))
    exp = next(r for r in rows if r["Experiment"] == "only-k16")
    base = next(r for r in rows if r["Experiment"] != "only-k16" and r["rev"] != "workspace")
    assert exp["kmeans.ks"] == "[16]" and base["kmeans.ks"] == "[8, 16]"
    assert exp["probe.k16"] and not exp.get("probe.k8") and base["probe.k8"]

    # Two commits: the experiment's results committed on top of the baseline.
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "K=16 only")
    params = json.loads(dvc(work, "params", "diff", "HEAD~1", "HEAD", "--json"))
    change = params["params.yaml"]["kmeans.ks"]  # lists print as text: "[8, 16]"
    assert (str(change["old"]), str(change["new"])) == ("[8, 16]", "[16]"), change
    metrics = json.loads(dvc(work, "metrics", "diff", "HEAD~1", "HEAD", "--json", "--all"))
    summary = metrics["reports/summary.json"]
    assert summary["probe.k8"]["new"] is None and summary["probe.k8"]["old"] is not None
    assert summary["probe.k16"]["old"] == summary["probe.k16"]["new"]
    assert "Data and pipelines are up to date" in dvc(work, "status")
