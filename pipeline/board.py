"""What the flow shows in the Prefect UI: the run's own artifacts and each stage's results.

pipeline/flow.py runs the stages; this module only turns files and stage outcomes into artifacts,
so the page a person reads can change without touching how stages are scheduled. The run's own
artifacts (``RunBoard``) come first in the UI; each stage's metrics, reports and figures become
artifacts of its task run (``publish_outputs``). Every markdown built here is plain CommonMark with
GFM pipe tables: one blank line before each table, a ``|---|`` row under each header.
"""

from __future__ import annotations

import base64
import collections
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from pipeline import sets
from pipeline.checks import load
from pipeline.params import ParamsError

if TYPE_CHECKING:
    from pipeline.flow import StagePlan

REPORT_STAGE = "report"
DONE = ("ran", "up to date", "restored")  # a stage that ended with its outputs in place
# Every result a stage row can show, in the order the progress line counts them.
RESULTS = (
    "ran",
    "restored",
    "up to date",
    "failed",
    "upstream failed",
    "never ran",
    "running",
    "to do",
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _flatten(sub, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and len(value) <= 16 and all(isinstance(v, dict) for v in value):
        for i, sub in enumerate(value):
            yield from _flatten(sub, f"{prefix}.{i}")
    else:
        yield prefix, value if isinstance(value, int | float | str | bool) else json.dumps(value)


def _image_markdown(png: Path, title: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f"### {title}\n\n![{png.stem}](data:image/png;base64,{data})\n"


def publish_outputs(root: Path, outputs: tuple[str, ...]) -> None:
    """A stage's results as artifacts of its own task run: each metrics/*.json as a table
    (``metrics-<stem>``), each reports/*.md as markdown (``report-<stem>``), each
    reports/figures/*.png as an embedded image (``figure-<stem>``)."""
    for rel in outputs:
        path = root / rel
        if not path.is_file():
            continue
        if rel.startswith("metrics/") and path.suffix == ".json":
            try:
                metrics = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
            table = [{"metric": k, "value": v} for k, v in _flatten(metrics)]
            create_table_artifact(table, key=f"metrics-{_slug(path.stem)}", description=rel)
        elif rel.startswith("reports/figures/") and path.suffix == ".png":
            create_markdown_artifact(
                _image_markdown(path, path.stem), key=f"figure-{_slug(path.stem)}", description=rel
            )
        elif rel.startswith("reports/") and path.suffix == ".md":
            create_markdown_artifact(
                path.read_text(), key=f"report-{_slug(path.stem)}", description=rel
            )


# ------------------------------------------------------------------------------ markdown tables


def _cells(line: str) -> list[str]:
    """The cells of one pipe-table row (escaped ``\\|`` stays inside its cell)."""
    body = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", body)]


def md_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a markdown text, each as rows of cells: header first, no ``|---|`` row."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            current = None
            continue
        if current is None:
            current = []
            tables.append(current)
        cells = _cells(line)
        if not all(re.fullmatch(r":?-+:?", c) for c in cells):
            current.append(cells)
    return tables


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A pipe table with blank lines around it, so it never runs into the text or table beside it."""
    lines = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(re.sub(r"(?<!\\)\|", r"\\|", str(c)) for c in row) + " |" for row in rows
    ]
    return [*lines, ""]


def _columns(table: list[list[str]], names: Sequence[str]) -> list[list[str]] | None:
    """The rows of ``table`` cut down to the columns ``names`` in that order; None if one lacks."""
    header = table[0]
    if not set(names) <= set(header):
        return None
    index = [header.index(n) for n in names]
    return [[row[i] if i < len(row) else "" for i in index] for row in table[1:]]


def _section(md: Path, heading: str = "## This run") -> str:
    """The part of a reports/*.md table under ``heading``, up to the next heading or figure."""
    if not md.is_file():
        return f"*{md.name}: not produced yet.*"
    lines = md.read_text().splitlines()
    if heading not in lines:
        return f"*{md.name}: no {heading!r} section.*"
    body = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith(("## ", "![")):
            break
        body.append(line)
    return "\n".join(body).strip()


def _claims(claims: Path) -> list[str]:
    """Verdicts first, one row per claim, and no evidence column, so the page stays readable; then
    the premises that gate them (a failed one makes claims untestable here)."""
    if not claims.is_file():
        return ["*reports/claims.md: not produced yet.*"]
    tables = md_tables(claims.read_text())
    verdicts = next((t for t in tables if t and t[0][:1] == ["#"]), None)
    premises = next((t for t in tables if t and t[0][:1] == ["check"]), None)
    rows = _columns(verdicts, ("#", "verdict", "claim")) if verdicts else None
    if rows is None:
        return ["*reports/claims.md: no verdicts table.*"]
    lines = md_table(("#", "verdict", "claim"), rows)
    lines += ["The numbers behind each verdict: `reports/claims.md`."]
    # The result first: the UI does not wrap table cells, and a long check pushed it off the page.
    order = ("result", "gates claims", "check")
    checks = _columns(premises, order) if premises else None
    if checks is not None:
        lines += ["", "### Premises: can the claims be tested here?"]
        lines += md_table(order, checks)
    return lines


def run_summary(root: Path, status: str) -> str:
    """The run at a glance: claims, headline numbers, Tables 2 and 3, one sample grid."""
    reports = root / "reports"
    lines = ["# Run summary", "", status, "", "## The paper's claims, tested", ""]
    lines += _claims(reports / "claims.md")
    lines += ["", "## Headline numbers (`dvc metrics show`)", ""]
    try:
        summary = json.loads((reports / "summary.json").read_text())
        rows = [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in _flatten(summary)]
        lines += md_table(("metric", "value"), rows)
    except (OSError, json.JSONDecodeError):
        lines.append("*reports/summary.json: not produced yet.*")
    for name, title in (
        ("table3_unconditional", "Table 3: class-unconditional generation"),
        ("table2_probe", "Table 2: linear probe"),
    ):
        lines += ["", f"## {title}", "", _section(reports / f"{name}.md")]
    try:
        params = load(root / "params.yaml")
        main_k = params.kmeans.main_k
        name = sets.seeded(sets.digit_set(main_k), params.seed)  # the main seed's samples
        grid = reports / "figures" / f"samples_{name}.png"
    except ParamsError:
        grid = None
    if grid is not None and grid.is_file():
        title = f"Samples: DiGIT, K={main_k} (+AR renderer), seed {params.seed}"
        lines += ["", _image_markdown(grid, title)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


class RunBoard:
    """The flow run's own artifacts, created when it starts and updated as stages finish, so they
    come first in the UI: ``dvc-progress`` (the share of stages finished), ``dvc-stages`` (a table
    of every stage and its result, one of ``RESULTS``, with seconds) and ``run-summary`` (claims,
    headline numbers, Tables 2 and 3, a sample grid), refreshed when the report stage finishes.
    Each stage's own results are artifacts of its task run (``publish_outputs``)."""

    def __init__(self, root: Path, plans: Sequence[StagePlan]) -> None:
        self.root = root
        self.order = [p.name for p in plans]
        self.status = {p.name: "to do" for p in plans}
        self.seconds: dict[str, float] = {}
        report_stale = any(p.name == REPORT_STAGE and p.stale for p in plans)
        self.progress_id = create_progress_artifact(
            0.0, key="dvc-progress", description=self._describe_progress()
        )
        self.stages_id = create_table_artifact(
            self._rows(), key="dvc-stages", description="Stages of dvc.yaml in this run"
        )
        status = (
            "*The report stage has not finished in this run yet: these are reports/ as they were "
            "when the run started.*"
            if report_stale
            else "*The report stage is up to date: reports/ as this run found them.*"
        )
        self.summary_id = create_markdown_artifact(
            run_summary(root, status), key="run-summary", description="This run at a glance"
        )

    def _rows(self) -> list[dict]:
        return [
            {"stage": n, "result": self.status[n], "seconds": round(self.seconds.get(n, 0.0), 1)}
            for n in self.order
        ]

    def _describe_progress(self) -> str:
        counts = collections.Counter(self.status.values())
        finished = sum(v for k, v in counts.items() if k not in ("to do", "running"))
        parts = [f"{finished}/{len(self.order)} stages finished"]
        parts += [f"{counts[k]} {k}" for k in RESULTS if counts[k]]
        return ", ".join(parts)

    def update(self, name: str, status: str, seconds: float | None = None) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        self.status[name] = status
        if seconds is not None:
            self.seconds[name] = seconds
        finished = sum(s not in ("to do", "running") for s in self.status.values())
        update_progress_artifact(
            self.progress_id, 100.0 * finished / max(1, len(self.order)), self._describe_progress()
        )
        with get_client(sync_client=True) as client:
            client.update_artifact(self.stages_id, ArtifactUpdate(data=json.dumps(self._rows())))
            if name == REPORT_STAGE and status in DONE:
                what = "ran in this run" if status == "ran" else f"{status}"
                md = run_summary(
                    self.root, f"*The report stage {what}: the reports below are this run's.*"
                )
                client.update_artifact(self.summary_id, ArtifactUpdate(data=md))
