"""The run's metrics files as the report reads them, and the paper's numbers.

Only the pipeline writes reports/ (the `report` stage). Numbers come from the metrics files alone;
the paper's numbers come from pipeline/paper.yaml and are printed beside ours, never mixed in.

`report` is the DAG's last stage, so every metrics file it reads is there: a table row or cell
whose file is missing stops the report with an error naming the file (``Metrics.need``), instead
of the row silently vanishing. Optional by design (``Metrics.get``), each with a stated fallback:
``toy`` (the toy table says it was not produced, the claim is "not tested") and ``prepare`` /
``evalnet`` (the scale line prints ``?``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import sets
from pipeline.params import Params

PAPER = yaml.safe_load((Path(__file__).parents[1] / "paper.yaml").read_text())


class MissingMetrics(FileNotFoundError):
    """A metrics file of the DAG that the report needs is not there."""


@dataclass
class Metrics:
    """Every metrics/*.json of the run, by file stem (pipeline/sets.py names them)."""

    root: Path
    data: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> Metrics:
        root = Path(root)
        data = {p.stem: json.loads(p.read_text()) for p in sorted(root.glob("*.json"))}
        return cls(root, data)

    def get(self, name: str) -> dict | None:
        """An optional file: None when it is missing."""
        return self.data.get(name)

    def need(self, name: str, what: str) -> dict:
        """A file the DAG writes and ``what`` (a table, row or claim) is built from."""
        if name not in self.data:
            raise MissingMetrics(
                f"{self.root / name}.json is missing: the report needs it for {what} "
                "(run the stage that writes it, e.g. `dvc repro`)"
            )
        return self.data[name]


def scale_line(params: Params, m: Metrics) -> str:
    prep = m.get(sets.PREPARE) or {}
    ev = m.get(sets.EVALNET) or {}
    extractor = params.evaluate.extractor
    judge = f"FID/IS/KID features from `{extractor}`" + (
        f" (our classifier, val top-1 {ev.get('val_top1')})" if extractor == "evalnet" else ""
    )
    return (
        f"Scale: `{params.data.dataset}` {params.data.image_size}x{params.data.image_size}x"
        f"{params.data.channels}, {prep.get('n_train', '?')} train / {prep.get('n_val', '?')} val "
        f"images; encoder `{params.encoder.name}`; K-Means K in {params.kmeans.ks} (main "
        f"{params.kmeans.main_k}); AR model size `{params.ar.size}`; {judge}; seed "
        f"{params.seed}."
    )
