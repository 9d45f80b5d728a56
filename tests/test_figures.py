"""Figures: the sample grid's layout (pipeline/stages/generate.py) and the report figures' panels
(pipeline/report/figures.py), read back from the matplotlib figure before it is saved."""

import numpy as np
import pytest

from pipeline.report import figures
from pipeline.stages.generate import tile


def test_tile_layout():
    """grid x grid cells of H x W with 1 px gray gaps and margins, row-major; blank cells gray."""
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3, 1), dtype=np.uint8)
    canvas = tile(images, grid=3)
    assert canvas.shape == (3 * (4 + 1) + 1, 3 * (3 + 1) + 1, 1) and canvas.dtype == np.uint8
    for i in range(9):
        r, c = divmod(i, 3)
        cell = canvas[1 + 5 * r : 5 + 5 * r, 1 + 4 * c : 4 + 4 * c]
        assert np.array_equal(cell, images[i]) if i < 5 else (cell == 128).all(), i
    assert (canvas[::5] == 128).all() and (canvas[:, ::4] == 128).all()  # gaps and margins
    # more images than cells: only the first grid x grid are shown
    assert np.array_equal(tile(np.repeat(images, 4, axis=0), 2)[1:5, 1:4], images[0])
    rgb = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    assert tile(rgb, 1).shape == (4, 4, 3)


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn instead of saved."""
    out = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: out.append(fig))
    yield out
    for fig in out:
        figures._plt().close(fig)


def test_stability_figure_panels(drawn):
    perts = [{"kind": "gaussian", "label": f"SNR {s}", "value": s} for s in (30, 20, 5)]
    perts += [{"kind": "shift", "label": "shift 1 px", "value": 1}]
    st = {
        "perturbations": perts,
        "tokenizers": {
            "disc": {"token_change": [0.1, 0.2, 0.3, 0.4], "cos_quantized": [0.9, 0.8, 0.7, 0.6]},
            "vq": {"token_change": [0.5, 0.6, 0.7, 0.8], "cos_quantized": [0.5, 0.4, 0.3, 0.2]},
        },
    }
    paper = {
        "snr_db": [30, 20],
        "vq_token_change": [0.3, 0.5],
        "disc_token_change": [0.1, 0.2],
        "vq_cos_sim": [0.8, 0.6],
        "disc_cos_sim": [0.9, 0.85],
    }
    figures.plot_stability(st, paper, "unused.png")
    (fig,) = drawn
    change, cos, bars = fig.axes
    assert [line.get_label() for line in change.lines] == ["disc", "vq", "paper VQ", "paper Disc"]
    assert list(change.lines[1].get_xdata()) == [30, 20, 5]
    assert list(change.lines[1].get_ydata()) == [0.5, 0.6, 0.7]  # Gaussian rows only
    assert list(cos.lines[0].get_ydata()) == [0.9, 0.8, 0.7]
    assert change.xaxis_inverted()  # high SNR (little noise) on the left
    heights = [p.get_height() for p in bars.patches]
    assert heights == [0.4, 0.8]  # one bar per tokenizer for the one non-Gaussian perturbation
    assert [t.get_text() for t in bars.get_xticklabels()] == ["shift 1 px"]


def test_sampling_figure_panels(drawn):
    """Left: each side's FID along the token model's grid, its renderer at the selected setting;
    right: DiGIT's renderer along the grid at the selected token-model setting; rings on the
    selected points."""
    k8, off, p8 = {"top_k": 8, "top_p": 1.0}, {"top_k": 0, "top_p": 1.0}, {"top_k": 0, "top_p": 0.8}
    digit = [
        {"token_model": t, "renderer": r, "fid": f}
        for t, r, f in ((off, off, 6.0), (off, p8, 4.0), (k8, off, 7.0), (k8, p8, 5.0))
    ]
    vq = [{"token_model": t, "renderer": None, "fid": f} for t, f in ((k8, 9.0), (off, 8.0))]
    searches = [
        ("DiGIT", {"rows": digit, "extractor": "evalnet", "selected": digit[1]}),
        ("VQ", {"rows": vq, "extractor": "evalnet", "selected": vq[1]}),
    ]
    figures.plot_sampling(searches, "unused.png")
    (fig,) = drawn
    left, right = fig.axes
    d_line, d_ring, v_line, v_ring = left.lines
    # one truncation axis: top-k strongest first, then off, then top-p weakest to strongest
    assert list(d_line.get_xdata()) == ["k8", "off"] and list(d_line.get_ydata()) == [5.0, 4.0]
    assert list(d_ring.get_ydata()) == [4.0]
    assert list(v_line.get_xdata()) == ["k8", "off"] and list(v_ring.get_ydata()) == [8.0]
    (r_line, r_ring) = right.lines  # VQ has no renderer
    assert list(r_line.get_xdata()) == ["off", "p0.8"] and list(r_line.get_ydata()) == [6.0, 4.0]


def test_probe_figure_panels(drawn):
    curves = [
        ("DiGIT", {"n_layers": 3, "top1_per_layer": [0.2, 0.6, 0.4]}),
        ("VQ", {"n_layers": 3, "top1_per_layer": [0.1, 0.2, 0.3]}),
    ]
    figures.plot_probe(curves, "unused.png")
    (ax,) = drawn[0].axes
    assert [line.get_label() for line in ax.lines] == ["DiGIT", "VQ"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]  # 1-based blocks
    assert list(ax.lines[0].get_ydata()) == [0.2, 0.6, 0.4]
