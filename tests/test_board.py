"""The markdown the flow publishes (pipeline/board.py) reads right: parsed by a real CommonMark + GFM
table parser, every table of the run summary is its own table, with the header and the number of
rows its source holds. Built from the committed reports/ and from small fixture files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from markdown_it import MarkdownIt

from pipeline.board import _flatten, _image_markdown, md_tables, run_summary

ROOT = Path(__file__).resolve().parents[1]
MD = MarkdownIt("commonmark").enable("table")


def parsed_tables(text: str) -> list[dict]:
    """Every table a markdown parser finds: the heading above it, its header cells, its rows."""
    tables: list[dict] = []
    heading, in_heading, cell, row = "", False, None, None
    for tok in MD.parse(text):
        if tok.type == "heading_open":
            in_heading = True
        elif tok.type == "inline" and in_heading:
            heading, in_heading = tok.content, False
        elif tok.type == "table_open":
            tables.append({"heading": heading, "header": [], "rows": []})
        elif tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open"):
            cell = ""
        elif tok.type == "inline" and cell is not None:
            cell = tok.content
        elif tok.type in ("th_close", "td_close"):
            row.append(cell)
            cell = None
        elif tok.type == "tr_close":
            table = tables[-1]
            if table["header"]:
                table["rows"].append(row)
            else:
                table["header"] = row
    return tables


def source_table(path: Path, first_header: str) -> dict:
    """The table of a committed report whose header starts with ``first_header``."""
    return next(t for t in parsed_tables(path.read_text()) if t["header"][0] == first_header)


def test_run_summary_of_the_committed_reports():
    reports = ROOT / "reports"
    md = run_summary(ROOT, "*status*")
    tables = parsed_tables(md)
    by_heading = {t["heading"]: t for t in tables}
    assert len(by_heading) == len(tables) == 5, [t["heading"] for t in tables]

    verdicts = source_table(reports / "claims.md", "#")
    claims = by_heading["The paper's claims, tested"]
    assert claims["header"] == ["#", "verdict", "claim"]
    assert len(claims["rows"]) == len(verdicts["rows"]) > 0
    assert [r[0] for r in claims["rows"]] == [r[0] for r in verdicts["rows"]]

    checks = source_table(reports / "claims.md", "check")
    premises = by_heading["Premises: can the claims be tested here?"]
    assert premises["header"] == ["result", "gates claims", "check"]
    assert len(premises["rows"]) == len(checks["rows"]) > 0

    headline = by_heading["Headline numbers (`dvc metrics show`)"]
    summary = json.loads((reports / "summary.json").read_text())
    assert headline["header"] == ["metric", "value"]
    assert len(headline["rows"]) == len(list(_flatten(summary))) > 0

    for name, title in (
        ("table3_unconditional", "Table 3: class-unconditional generation"),
        ("table2_probe", "Table 2: linear probe"),
    ):
        source = parsed_tables((reports / f"{name}.md").read_text())[0]
        assert source["heading"] == "This run"
        table = by_heading[title]
        assert table["header"] == source["header"]
        assert len(table["rows"]) == len(source["rows"]) > 0


def test_run_summary_with_nothing_produced_yet(tmp_path):
    md = run_summary(tmp_path, "*status*")
    assert parsed_tables(md) == []
    for missing in ("claims.md", "summary.json", "table3_unconditional.md", "table2_probe.md"):
        assert f"{missing}: not produced yet." in md


def test_run_summary_of_fixture_claims(tmp_path):
    """Two tables in claims.md (premises, then verdicts), a pipe inside a cell, no other reports."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "claims.md").write_text(
        "# Claims\n\n## Premises\n\nText.\n\n"
        "| check | result | numbers | gates claims |\n|---|---|---|---|\n"
        "| enough seeds | pass | 4 | 2, 3 |\n| a \\| b | **fail** | x | - |\n\n"
        "## Verdicts\n\nText.\n\n"
        "| # | claim | verdict | evidence |\n| --- | --- | --- | --- |\n"
        "| 1 | one | **supported** | e |\n| 2 | two | inconclusive | e |\n"
        "| 3 | three \\| four | not supported | e |\n"
    )
    tables = parsed_tables(run_summary(tmp_path, "*status*"))
    assert [(t["header"], len(t["rows"])) for t in tables] == [
        (["#", "verdict", "claim"], 3),
        (["result", "gates claims", "check"], 2),
    ]
    assert tables[0]["rows"][2] == ["3", "not supported", "three | four"]
    assert tables[1]["rows"][1] == ["**fail**", "-", "a | b"]


def test_md_tables_splits_adjacent_tables_and_drops_separators():
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| c |\n|:-:|\n| 3 |\n| 4 |\n"
    assert md_tables(text) == [[["a", "b"], ["1", "2"]], [["c"], ["3"], ["4"]]]


def test_figure_markdown_embeds_the_image(tmp_path):
    png = tmp_path / "samples.png"
    shutil.copy(next((ROOT / "reports" / "figures").glob("*.png")), png)
    tokens = MD.parse(_image_markdown(png, "Samples"))
    images = [c for t in tokens if t.children for c in t.children if c.type == "image"]
    assert len(images) == 1
    assert images[0].attrs["src"].startswith("data:image/png;base64,")
    assert [t.content for t in tokens if t.type == "inline"][0] == "Samples"
