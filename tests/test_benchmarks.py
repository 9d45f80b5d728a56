"""benchmarks/: the paper-scale arithmetic and the parsing of `dvc repro` logs (cheap parts only;
the benchmarks themselves run with `make bench`, not in the test suite)."""

import pytest

from benchmarks.common import Section
from benchmarks.paper_scale import (
    PAPER,
    Shape,
    matmul_params,
    memory_bytes,
    module_params,
    total_params,
    train_flops_per_token,
)
from benchmarks.repro import parse_log
from benchmarks.run import existing_sections, render


@pytest.mark.parametrize("size", ["tiny", "small", "base", "large"])
@pytest.mark.parametrize("n_classes", [0, 10])
def test_param_formula_matches_the_module(size, n_classes):
    over = PAPER.get(size, {})
    assert total_params(Shape.of(size, n_classes=n_classes, **over)) == module_params(
        size, n_classes=n_classes, **over
    )


def test_paper_counts_and_flops():
    base = Shape.of("base", **PAPER["base"])
    large = Shape.of("large", **PAPER["large"])
    # The paper's 219M / 732M (digit/gpt.py: 218.58M / 730.69M unconditional, 219.61M / 732.22M
    # with 1000 classes).
    for shape, paper in ((base, 219e6), (large, 732e6)):
        for n_classes in (0, 1000):
            n = total_params(Shape(**{**vars(shape), "n_classes": n_classes}))
            assert n == pytest.approx(paper, rel=0.005)
    # 6N dominates; the attention term is 12 L d T on top.
    extra = train_flops_per_token(base) - 6 * matmul_params(base)
    assert extra == 12 * 16 * 1024 * 256
    assert train_flops_per_token(large) / train_flops_per_token(base) == pytest.approx(3.3, abs=0.1)
    mem = memory_bytes(base, micro_batch=64)
    assert mem["states"] == 16 * total_params(base)
    assert mem["total"] == mem["states"] + mem["activations"]


def test_parse_repro_log():
    log = (
        "Running stage 'prepare':\n"
        "12:00:01 digit INFO stage prepare: start\n"
        "12:00:04 digit INFO stage prepare: done in 3.2 s\n"
        "Running stage 'kmeans@256':\n"
        "12:01:00 digit INFO stage kmeans@256: done in 41.0 s\n"
        "# dvc repro wall time: 60.5 s (exit 0, in /tmp/x)\n"
    )
    stages, total = parse_log(log)
    assert stages == [("prepare", 3.2), ("kmeans@256", 41.0)]
    assert total == 60.5
    assert parse_log("no stages here") == ([], None)


def test_report_keeps_sections_not_rerun(tmp_path):
    out = tmp_path / "benchmarks.md"
    a = Section("kmeans", "4. K-Means", rows=[{"K": 64, "seconds": 1.25}], notes=["note a"])
    b = Section("extract", "3. Extract", rows=[{"images / s": 12345.6}])
    out.write_text(render({"kmeans": a.markdown()}, "cmd"))
    sections = existing_sections(out)
    sections["extract"] = b.markdown()
    text = render(sections, "cmd")
    assert text.index("3. Extract") < text.index("4. K-Means")  # the order
    assert "| 64 | 1.25 |" in text and "| 12,346 |" in text and "note a" in text
    assert existing_sections(out)["kmeans"] == a.markdown()
