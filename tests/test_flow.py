"""The Prefect flow over dvc.yaml (pipeline/flow.py), against a temporary Prefect server, on a copy
of the smoke project that the shared `smoke_run` fixture reproduced with `dvc repro`: every stage is
a task and up-to-date ones skip; after one K changes, exactly that K's branch runs, independent
stages overlap (at most flow.max_parallel), and dvc.lock ends up as `dvc repro` would leave it; a
failing stage stops its downstream and records nothing. Then the same flow on Dask workers, on a toy
DAG whose two middle stages can only finish if they run at the same time."""

import re
import subprocess
import time
from pathlib import Path

import networkx as nx
import pytest
import yaml
from conftest import clone_run, dvc

from pipeline.dag import lock_entries, target

ROOT = Path(__file__).resolve().parents[1]


def task_runs(state) -> dict:
    """Task runs of one flow run by name, once the API holds a final state for each."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        # Task states reach the API through Prefect's event stream, which a client cannot wait
        # on: poll the API until every run holds a final state (the count only bounds a failure).
        for _ in range(60):
            runs = client.read_task_runs(flow_run_filter=flow_filter)
            if runs and all(
                r.state and (r.state.is_final() or r.state.name == "NotReady") for r in runs
            ):
                break
            time.sleep(0.5)
        artifacts = client.read_artifacts(flow_run_filter=flow_filter)
    return {"tasks": {r.name: r for r in runs}, "artifacts": {a.key: a for a in artifacts}}


def stage_outs(work: Path) -> set[str]:
    """Every out of every stage of dvc.yaml, repo-relative."""
    from dvc.repo import Repo

    with Repo(str(work)) as repo:
        return {o.def_path for st in repo.index.stages for o in st.outs}


def stage_graph(work: Path) -> nx.DiGraph:
    from dvc.repo import Repo

    from pipeline.flow import stage_names

    with Repo(str(work)) as repo:
        graph = repo.index.graph  # edge: stage -> upstream
        return nx.relabel_nodes(graph, stage_names(graph.nodes))


def change_one_k(work: Path) -> str:
    """Swap the non-main K of params.yaml for a new one; return the new K's kmeans stage of the
    main seed (K-Means is fit once per seed: kmeans@K-SEED)."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    ks, main = params["kmeans"]["ks"], params["kmeans"]["main_k"]
    old = next(k for k in ks if k != main)
    new = max(ks) + 4
    params["kmeans"]["ks"] = [new if k == old else k for k in ks]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return f"kmeans@{new}-{params['seed']}"


def k_of(stage: str) -> str:
    """The K of a kmeans@K-SEED stage name."""
    return stage.split("@")[1].split("-")[0]


@pytest.fixture(scope="module")
def flow_runs(smoke_run, tmp_path_factory, prefect_server) -> dict:
    """The flow three times over a copy of the reproduced smoke project: with nothing to do, after
    one K changed (that K's branch re-runs), and after another K change with its codebook stage
    made to fail."""
    from pipeline.flow import run

    work = clone_run(smoke_run, tmp_path_factory.mktemp("flow") / "work")
    listed = dvc(
        work, "stage", "list", "--all", "--name-only"
    ).split()  # dag/<kind>/dvc.yaml:<name>
    out: dict = {"work": work, "stages": {s.split(":")[-1] for s in listed}}
    out["skip"] = task_runs(run(work, return_state=True))

    out["changed"] = change_one_k(work)
    out["graph_branch"] = stage_graph(work)
    out["branch"] = task_runs(run(work, return_state=True))
    out["branch_outs"] = stage_outs(work)
    out["status_after_branch"] = dvc(work, "status")
    out["repro_after_branch"] = dvc(work, "repro")

    # The next new K's kmeans stage fails before doing anything; the rest of the DAG is unaffected.
    out["bad"] = change_one_k(work)
    out["graph_bad"] = stage_graph(work)
    out["lock_before"] = lock_entries(work)
    spec = yaml.safe_load((work / "dag/kmeans/dvc.yaml").read_text())
    kmeans = spec["stages"]["kmeans"]  # a matrix: the template is the block itself
    kmeans["cmd"] = f'test "$DVC_STAGE" != {target(out["bad"])} && {kmeans["cmd"]}'
    (work / "dag/kmeans/dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    failed = run(work, return_state=True)
    out["failed_state"] = failed
    out["failed"] = task_runs(failed)
    out["lock_after"] = lock_entries(work)
    out["status_after_failure"] = dvc(work, "status")
    return out


def test_every_stage_is_a_task_and_up_to_date_ones_skip(flow_runs):
    tasks = flow_runs["skip"]["tasks"]
    assert set(tasks) == flow_runs["stages"]
    assert {t.state.name for t in tasks.values()} == {"Skipped"}


def test_changed_branch_runs_and_the_rest_skips(flow_runs):
    tasks = flow_runs["branch"]["tasks"]
    graph = flow_runs["graph_branch"]
    k = k_of(flow_runs["changed"])
    params = yaml.safe_load((flow_runs["work"] / "params.yaml").read_text())
    changed = {f"kmeans@{k}-{seed}" for seed in params["seeds"]}  # one fit per seed
    branch = set(changed).union(*(nx.ancestors(graph, c) for c in changed))  # edges point upstream
    per_k = (
        "kmeans",
        "tokenize",
        "token_eval",
        "ar",
        "renderer",
        "generate",
        "generate_untruncated",
        "probe",
        "stability",
    )
    per_k_seed = {
        "kmeans": "seeds",
        "tokenize": "seeds",
        "ar": "seeds",
        "probe": "seeds",
        "renderer": "sample_seeds",
        "generate": "sample_seeds",
        "generate_untruncated": "sample_seeds",
    }
    expected = {f"{s}@{k}" for s in per_k if s not in per_k_seed}
    expected |= {f"{s}@{k}-{seed}" for s, axis in per_k_seed.items() for seed in params[axis]}
    assert expected | {"report"} <= branch, branch
    # Nothing else: not the shared upstream, the main-K-only or VQ stages, nor the other K.
    mine = {
        n
        for n in branch
        if n.endswith(f"@{k}") or n.startswith(tuple(f"{s}@{k}-" for s in per_k_seed))
    }
    assert branch - {"report"} == mine, branch
    states = {n: t.state.name for n, t in tasks.items()}
    assert {states[n] for n in branch} == {"Completed"}, states
    assert {states[n] for n in set(tasks) - branch} == {"Skipped"}, states


def test_dvc_agrees_after_the_flow(flow_runs):
    assert "Data and pipelines are up to date" in flow_runs["status_after_branch"]
    assert not re.findall(r"Running stage", flow_runs["repro_after_branch"])


def test_artifacts_published(flow_runs):
    artifacts = flow_runs["branch"]["artifacts"]
    assert "dvc-stages" in artifacts
    rows = artifacts["dvc-stages"].data
    rows = yaml.safe_load(rows) if isinstance(rows, str) else rows  # the API returns JSON text
    assert {r["stage"] for r in rows} == set(flow_runs["branch"]["tasks"])
    # The run's own artifacts, updated to the end: progress, the stage table, the summary.
    assert artifacts["dvc-progress"].data == 100
    assert {r["result"] for r in rows} <= {"ran", "up to date", "restored"}, rows
    summary = artifacts["run-summary"].data
    assert "The report stage ran in this run" in summary and "## Headline numbers" in summary
    assert "data:image/png;base64," in summary  # a sample grid
    for key in ("dvc-progress", "dvc-stages", "run-summary"):
        assert artifacts[key].task_run_id is None, key
    # Each stage's results (its metrics JSON, reports, figures) are artifacts of its task run;
    # files of stages no longer in dvc.yaml (the K that was swapped out) are not.
    work, outs = flow_runs["work"], flow_runs["branch_outs"]
    expected = {
        "metrics": sorted(o for o in outs if re.fullmatch(r"metrics/[^/]+\.json", o)),
        "report": sorted(o for o in outs if re.fullmatch(r"reports/[^/]+\.md", o)),
        "figure": sorted(o for o in outs if re.fullmatch(r"reports/figures/[^/]+\.png", o)),
    }
    assert expected["metrics"] and expected["report"] and expected["figure"]
    tasks = {t.id: name for name, t in flow_runs["branch"]["tasks"].items()}
    for kind, paths in expected.items():
        for rel in paths:
            assert (work / rel).is_file(), rel
            key = f"{kind}-" + re.sub(r"[^a-z0-9]+", "-", Path(rel).stem.lower()).strip("-")
            assert key in artifacts, (key, sorted(artifacts))
            assert tasks.get(artifacts[key].task_run_id), key  # attached to a stage's task
    seed = yaml.safe_load((work / "params.yaml").read_text())["seed"]
    assert f"metrics-ar-k{k_of(flow_runs['changed'])}-s{seed}" in artifacts


def test_failed_stage_stops_its_downstream_and_records_nothing(flow_runs):
    bad = flow_runs["bad"]
    assert flow_runs["failed_state"].is_failed()
    tasks = flow_runs["failed"]["tasks"]
    graph = flow_runs["graph_bad"]
    downstream = nx.ancestors(graph, bad)
    assert downstream
    assert tasks[bad].state.is_failed()
    for name in downstream:
        assert tasks[name].state.name == "NotReady", (name, tasks[name].state)
    for name in set(tasks) - downstream - {bad}:
        assert tasks[name].state.is_completed(), (name, tasks[name].state)
    # Nothing recorded for the failed (new) stage nor for anything downstream of it.
    before, after = flow_runs["lock_before"], flow_runs["lock_after"]
    assert bad not in after
    assert {n: after.get(n) for n in downstream} == {n: before.get(n) for n in downstream}
    assert bad in flow_runs["status_after_failure"]


TOY_DVC_YAML = """
stages:
  a:
    cmd: echo a > a.txt
    outs: [a.txt]
  b:
    foreach: [1, 2]
    do:
      cmd: >-
        touch barrier/${item} && for i in $(seq 1200); do
        [ -e barrier/1 ] && [ -e barrier/2 ] && break; sleep 0.1; done;
        [ -e barrier/1 ] && [ -e barrier/2 ] && cat a.txt > b${item}.txt
      deps: [a.txt]
      outs: ["b${item}.txt"]
  c:
    cmd: cat b1.txt b2.txt > c.txt
    deps: [b1.txt, b2.txt]
    outs: [c.txt]
"""


@pytest.mark.parametrize("runner", ["threads", "dask"])
def test_independent_stages_run_at_once(tmp_path, prefect_server, runner):
    """The flow, with tasks in threads of its process or in a local Dask cluster (prefect-dask),
    on a toy DAG whose two independent stages can only finish if they run at the same time: each
    waits on a barrier file of the other (a shell poll: a stage command has no other way to wait
    for another process; up to 2 min, which only bounds a failure)."""
    from pipeline.flow import run

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc(tmp_path, "init", "-q")
    (tmp_path / "dvc.yaml").write_text(TOY_DVC_YAML)
    (tmp_path / "barrier").mkdir()  # each b@ waits (up to 2 min) until both have started
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["flow"] |= {"runner": runner, "max_parallel": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    state = run(tmp_path, return_state=True)
    assert state.is_completed(), state
    tasks = task_runs(state)["tasks"]
    assert {n: t.state.name for n, t in tasks.items()} == dict.fromkeys(
        ["a", "b@1", "b@2", "c"], "Completed"
    )
    assert (tmp_path / "c.txt").read_text() == "a\na\n"
    assert "Data and pipelines are up to date" in dvc(tmp_path, "status")
