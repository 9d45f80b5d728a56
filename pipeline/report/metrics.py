"""The run's metrics files as the report reads them, and the paper's numbers.

Only the pipeline writes reports/ (the `report` stage). Numbers come from the metrics files alone;
the paper's numbers come from pipeline/paper.yaml and are printed beside ours, never mixed in.

`report` is the DAG's last stage, so every metrics file it reads is there: a table row or cell
whose file is missing stops the report with an error naming the file (``Metrics.need``), instead
of the row silently vanishing. Optional by design (``Metrics.get``), each with a stated fallback:
``toy`` (the toy table says it was not produced, the claim is "not tested") and ``prepare`` /
``evalnet`` (the scale line prints ``?``).

Seeds: files of the seed axis (``<name>_s<seed>.json``, pipeline/sets.py) are read under their name
as one record, the mean over seeds of every number (element-wise for lists; an integer field that
differs between seeds becomes its mean too); ``runs`` gives the per-seed records the claims pair
up and ``spread`` a field's mean, standard deviation and count. Every seed of ``seeds`` must be
there: a missing one is an error naming its file, never a silently shorter average.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline import sets
from pipeline.params import Params

PAPER = yaml.safe_load((Path(__file__).parents[1] / "paper.yaml").read_text())


class MissingMetrics(FileNotFoundError):
    """A metrics file of the DAG that the report needs is not there."""


def mean_record(records: list[Any]) -> Any:
    """The field-wise mean of same-shaped JSON records (module doc)."""
    first = records[0]
    if isinstance(first, bool) or first is None or isinstance(first, str):
        return first
    if isinstance(first, int | float):
        if all(r == first for r in records):
            return first
        return statistics.fmean(records)
    if isinstance(first, list):
        if any(not isinstance(r, list) or len(r) != len(first) for r in records):
            return first
        return [mean_record([r[i] for r in records]) for i in range(len(first))]
    if isinstance(first, dict):
        return {k: mean_record([r.get(k, v) for r in records]) for k, v in first.items()}
    return first


@dataclass
class Metrics:
    """Every metrics/*.json of the run, by file stem (pipeline/sets.py names them); the files of
    the seed axis under their unseeded name (module doc)."""

    root: Path
    data: dict[str, dict] = field(default_factory=dict)
    seeded: dict[str, dict[int, dict]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        root: str | Path,
        seeds: list[int] | None = None,
        sample_seeds: list[int] | None = None,
    ) -> Metrics:
        """``seeds`` / ``sample_seeds``: the seeds each seeded name must have (``sets.seed_axis``;
        ``sample_seeds`` defaults to ``seeds``); None takes whatever seeds are on disk."""
        root = Path(root)
        data, seeded = {}, {}
        for p in sorted(root.glob("*.json")):
            name, seed = sets.seed_of(p.stem)
            record = json.loads(p.read_text())
            if seed is None:
                data[name] = record
            else:
                seeded.setdefault(name, {})[seed] = record
        for name, runs in seeded.items():
            axis = sets.seed_axis(name)
            wanted = {"seeds": seeds, "sample_seeds": sample_seeds or seeds}[axis]
            missing = sorted(set(wanted or []) - set(runs))
            if missing:
                raise MissingMetrics(
                    f"{root / sets.seeded(name, missing[0])}.json is missing: the report needs "
                    f"every seed of `{axis}` {wanted} (run `dvc repro`)"
                )
            runs = {s: runs[s] for s in sorted(runs) if wanted is None or s in wanted}
            seeded[name] = runs
            data[name] = mean_record(list(runs.values()))
        return cls(root, data, seeded)

    def get(self, name: str) -> dict | None:
        """An optional file: None when it is missing."""
        return self.data.get(name)

    def runs(self, name: str) -> dict[int, dict]:
        """The per-seed records of a seeded name, by seed; {} for an unseeded one."""
        return self.seeded.get(name, {})

    def values(self, name: str, key: str) -> list:
        """A field per seed, in seed order; the one value of an unseeded file."""
        runs = self.runs(name)
        return [r[key] for r in runs.values()] if runs else [self.data[name][key]]

    def spread(self, name: str, key: str) -> tuple[float, float, int]:
        """(mean, sample standard deviation, number of seeds) of a field; std 0 for one run."""
        values = [float(v) for v in self.values(name, key)]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), std, len(values)

    def pm(self, name: str, key: str, digits: int = 3) -> str:
        """A field as "mean ± std" over seeds, or the plain value for an unseeded file."""
        mean, std, n = self.spread(name, key)
        return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"

    def need(self, name: str, what: str) -> dict:
        """A file the DAG writes and ``what`` (a table, row or claim) is built from."""
        if name not in self.data:
            raise MissingMetrics(
                f"{self.root / name}.json is missing: the report needs it for {what} "
                "(run the stage that writes it, e.g. `dvc repro`)"
            )
        return self.data[name]


def run_sets(params: Params) -> dict[str, sets.SampleSet]:
    """The run's sample sets (``sets.sample_sets`` over its K list, ``encoders`` and ``vq_rows``)."""
    k = params.kmeans
    return sets.sample_sets(k.ks, k.main_k, list(params.encoders), list(params.vq_rows))


def run_tokenizers(params: Params) -> list[sets.TokenizerRow]:
    """The run's tokenizers, in table order (``sets.tokenizer_rows``)."""
    k = params.kmeans
    return sets.tokenizer_rows(k.ks, k.main_k, list(params.encoders), list(params.vq_rows))


def stability(params: Params, m: Metrics, what: str, required: bool = True) -> dict:
    """Table 1 over every tokenizer of the run (``sets.tokenizer_rows``): the perturbations and
    protocol (the same in every file), and each tokenizer's measurements by its name (without
    ``required``, the tokenizers whose file is there; {} when none is)."""
    rows = run_tokenizers(params)
    files = {}
    for t in rows:
        name = sets.stability(t.name)
        record = m.need(name, what) if required else m.get(name)
        if record is not None:
            files[t.name] = record
    if not files:
        return {}
    first = next(iter(files.values()))
    return {
        "perturbations": first["perturbations"],
        "protocol": first["protocol"],
        "tokenizers": files,
    }


def at_snr(st: dict, snr: float = 20.0) -> int:
    """The index of Table 1's Gaussian perturbation at ``snr`` dB (else the first Gaussian one)."""
    gauss = [i for i, p in enumerate(st["perturbations"]) if p["kind"] == "gaussian"]
    return next((i for i in gauss if st["perturbations"][i]["value"] == snr), gauss[0])


def tokenizer_points(params: Params, m: Metrics, what: str) -> list[dict]:
    """Claim 6's points, one per tokenizer of the run: its token change under Gaussian noise at
    20 dB (Table 1), and what its token model does with it at matched sampling (untruncated at
    every step): FID / IS of its samples and its linear probe's best-layer top-1 (each the mean
    over the seeds that row was trained with)."""
    st = stability(params, m, what)
    i = at_snr(st)
    points = []
    for t in run_tokenizers(params):
        gen, probe = (
            m.need(sets.scores(t.sample_set), what),
            m.need(sets.probe(t.probe_model), what),
        )
        points.append(
            {
                "tokenizer": t.name,
                "family": t.family,
                "describe": st["tokenizers"][t.name]["describe"],
                "token change": st["tokenizers"][t.name]["token_change"][i],
                "FID": gen["fid"],
                "IS": gen["isc_mean"],
                "Acc@LP": probe["best_top1"],
                "seeds (samples, probe)": (
                    f"{len(m.runs(sets.scores(t.sample_set))) or 1}, "
                    f"{len(m.runs(sets.probe(t.probe_model))) or 1}"
                ),
            }
        )
    return points


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


def encoder_vs(e: dict, a: str, b: str, strict: bool) -> tuple[bool, str]:
    """An encoder evaluation (metrics/encoder*.json): do the pooled features of ``a`` (trained,
    random, pixels) beat ``b``'s on k-NN and linear probe alike (``strict``: beat; else at least
    match)? With the numbers, as "k-NN x vs y, linear probe x vs y"."""
    measures = (("k-NN", e["knn_top1"]), ("linear probe", e.get("probe_top1", {})))
    both = [(what, d) for what, d in measures if a in d and b in d]
    ok = all((d[a] > d[b]) if strict else (d[a] >= d[b]) for _, d in both)
    return ok, ", ".join(f"{what} {d[a]:.3f} vs {d[b]:.3f}" for what, d in both)
