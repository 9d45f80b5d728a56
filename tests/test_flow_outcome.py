"""What the flow (pipeline/flow.py) makes of its tasks' last states, without a server or a cluster:
each planned stage ran / is up to date / was restored / failed / was held back by a failed upstream
/ never ran, and the run fails, in one line, unless every stage did its work. The case behind it:
Dask workers that cannot import the project never run a task and Prefect leaves it ``Pending``; the
flow used to call that success."""

from __future__ import annotations

import concurrent.futures
import uuid
from types import SimpleNamespace

import pytest
from prefect.futures import PrefectConcurrentFuture
from prefect.states import Cancelled, Completed, Crashed, Failed, Pending

from pipeline import flow
from pipeline.flow import (
    FlowError,
    StagePlan,
    _future_error,
    never_ran_cause,
    next_done,
    outcomes,
    stage_outcome,
    verdict,
)

DASK_CAUSE = (
    "the Dask cluster could not run them; do its scheduler and workers import the project? "
    "install it there (pip install -e .) or set PYTHONPATH to the project"
)


def plans(edges: dict[str, tuple[str, ...]]) -> list[StagePlan]:
    """Stages named by ``edges`` (stage -> its upstream), in the given (topological) order."""
    return [StagePlan(n, up, stale=True, threads=1, weight=0) for n, up in edges.items()]


# a -> b -> c, a -> d: c is two steps below a.
DAG = plans({"a": (), "b": ("a",), "c": ("b",), "d": ("a",)})


@pytest.mark.parametrize(
    ("state", "upstream", "expected"),
    [
        (Completed(), [], "ran"),
        (Completed(name="Skipped"), ["ran"], "up to date"),
        (Completed(name="Cached"), [], "restored"),
        (Failed(), [], "failed"),
        (Crashed(), ["up to date"], "failed"),
        (Cancelled(), [], "failed"),
        (Pending(name="NotReady"), ["ran", "failed"], "upstream failed"),
        (Pending(name="NotReady"), ["upstream failed"], "upstream failed"),
        (Pending(), ["ran", "never ran"], "never ran"),
        (Pending(), [], "never ran"),
        (Pending(name="NotReady"), ["ran", "up to date"], "never ran"),
        (None, ["ran"], "never ran"),
    ],
)
def test_stage_outcome(state, upstream, expected):
    assert stage_outcome(state, upstream) == expected


def test_every_stage_done_is_a_success():
    states = {
        "a": Completed(),
        "b": Completed(name="Skipped"),
        "c": Completed(name="Cached"),
        "d": Completed(),
    }
    outcome = outcomes(DAG, states)
    assert outcome == {"a": "ran", "b": "up to date", "c": "restored", "d": "ran"}
    assert verdict(outcome, DASK_CAUSE) is None


def test_a_failure_holds_back_its_downstream_only():
    states = {"a": Completed(), "b": Failed(), "c": Pending(name="NotReady"), "d": Completed()}
    outcome = outcomes(DAG, states)
    assert outcome == {"a": "ran", "b": "failed", "c": "upstream failed", "d": "ran"}
    assert verdict(outcome, DASK_CAUSE) == "failed: b; upstream failed: c"


def test_workers_that_run_nothing_fail_the_flow():
    """Dask workers that cannot unpickle the tasks: every future ends, every state stays Pending."""
    outcome = outcomes(DAG, dict.fromkeys("abcd", Pending()))
    assert outcome == dict.fromkeys("abcd", "never ran")
    assert verdict(outcome, DASK_CAUSE) == f"4 planned stages never ran (a, b, c, d): {DASK_CAUSE}"


def test_a_stage_with_no_state_never_ran():
    outcome = outcomes(DAG, {"a": Completed(), "b": Completed()})
    assert outcome == {"a": "ran", "b": "ran", "c": "never ran", "d": "never ran"}


def test_failed_and_never_ran_together():
    states = {"a": Completed(), "b": Failed(), "c": Pending(name="NotReady"), "d": Pending()}
    outcome = outcomes(DAG, states)
    assert outcome == {"a": "ran", "b": "failed", "c": "upstream failed", "d": "never ran"}
    line = verdict(outcome, "why")
    assert line == "failed: b; upstream failed: c; 1 planned stage never ran (d): why"


def test_long_lists_are_cut_to_one_readable_line():
    many = plans({f"s{i}": () for i in range(98)})
    outcome = outcomes(many, {})
    cause = never_ran_cause(True, "ModuleNotFoundError: No module named 'pipeline'")
    line = verdict(outcome, cause)
    names = ", ".join(f"s{i}" for i in range(10))
    assert line == (
        f"98 planned stages never ran ({names}, ... (88 more)): the Dask cluster could not run "
        "them (ModuleNotFoundError: No module named 'pipeline'); do its scheduler and workers "
        "import the project? install it there (pip install -e .) or set PYTHONPATH to the project"
    )
    assert "\n" not in line


def test_never_ran_cause():
    assert never_ran_cause(True) == DASK_CAUSE
    assert never_ran_cause(False) == "their tasks ended without a final state"


def test_future_error_reads_the_runner_future():
    failed: concurrent.futures.Future = concurrent.futures.Future()
    failed.set_exception(RuntimeError("Error during deserialization. This\noccurs if ..."))
    fine: concurrent.futures.Future = concurrent.futures.Future()
    fine.set_result(Completed())
    assert (
        _future_error(SimpleNamespace(wrapped_future=failed))
        == "RuntimeError: Error during deserialization. This occurs if ..."
    )
    assert _future_error(SimpleNamespace(wrapped_future=fine)) is None
    assert _future_error(SimpleNamespace(wrapped_future=concurrent.futures.Future())) is None
    assert _future_error(SimpleNamespace()) is None


def test_main_exits_non_zero_with_one_line(monkeypatch):
    def run(root):
        raise FlowError(verdict({"a": "never ran"}, DASK_CAUSE))

    monkeypatch.setattr(flow, "check_server", lambda: None)
    monkeypatch.setattr(flow, "run", run)
    monkeypatch.setattr("sys.argv", ["digit-flow"])
    with pytest.raises(SystemExit) as exit_:
        flow.main()
    assert exit_.value.code == f"error: 1 planned stage never ran (a): {DASK_CAUSE}"


class DaskTaskRunner:
    """Stands in for prefect_dask's runner: a cluster whose workers are all gone."""

    def __init__(self, workers: dict) -> None:
        self.client = SimpleNamespace(scheduler_info=lambda: {"workers": workers})


def test_a_dask_cluster_without_workers_fails_instead_of_hanging():
    """A worker that cannot import the project dies on its first task; the scheduler then waits
    for workers forever. The flow gives up after a grace period instead."""
    stuck = [PrefectConcurrentFuture(uuid.uuid4(), concurrent.futures.Future())]
    with pytest.raises(FlowError, match="no workers for 0 s while 1 stages wait"):
        next_done(stuck, DaskTaskRunner({}), no_workers_s=0.1, poll_s=0.05)


def test_next_done_returns_the_finished_future():
    ready: concurrent.futures.Future = concurrent.futures.Future()
    ready.set_result(Completed())
    futures = [
        PrefectConcurrentFuture(uuid.uuid4(), concurrent.futures.Future()),
        PrefectConcurrentFuture(uuid.uuid4(), ready),
    ]
    assert next_done(futures, DaskTaskRunner({"w": {}}), poll_s=0.05) is futures[1]
    assert next_done(futures, None) is futures[1]
