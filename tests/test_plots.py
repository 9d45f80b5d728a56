"""`dvc plots show` renders offline: the repo's DVC config points at pipeline/plots/template.html,
which inlines Vega, Vega-Lite and Vega-Embed instead of loading them from a CDN."""

import re
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT, dvc

TEMPLATE = ROOT / "pipeline/plots/template.html"


def test_template_is_self_contained():
    page = TEMPLATE.read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN tags go to {scripts}
    for lib in ("vega 5.", "vega-lite 5.", "vega-embed 6."):
        assert f"<script>/* {lib}" in page, lib
    assert not re.search(r"<script[^>]*\bsrc=", page)
    config = (ROOT / ".dvc/config").read_text()
    assert "html_template = ../pipeline/plots/template.html" in config


def test_dvc_plots_show_has_no_remote_scripts(tmp_path):
    for rel in (".dvc/config", ".dvc/.gitignore", "pipeline/plots/template.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tmp_path / rel)
    curve = tmp_path / "dvclive/m/plots/metrics/train/loss.tsv"
    curve.parent.mkdir(parents=True)
    curve.write_text("step\tloss\n1\t2.0\n2\t1.5\n3\t1.2\n")
    (tmp_path / "dvc.yaml").write_text("plots:\n  - dvclive/m/plots/metrics:\n      x: step\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc(tmp_path, "plots", "show", "--out", "out")
    page = (tmp_path / "out/index.html").read_text()
    assert "vegaEmbed(" in page and "dvclive/m/plots/metrics/train/loss.tsv" in page
    srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", page)
    assert not srcs, srcs
    assert not re.search(r"<(link|img)[^>]*(href|src)\s*=\s*[\"']?https?:", page)
    assert Path(tmp_path / "out/index.html").stat().st_size > 500_000  # the libraries are inline
