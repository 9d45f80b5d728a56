"""What every training stage shares besides its loop: resumable checkpoints (``Checkpoints``, the
fingerprint that tells a stale one, the RNG states) and the dvclive loss curves (``CurveLogger``).

A checkpoint lives in ``checkpoints/<model>/``, outside DVC's outs: the stage deletes it once the
final model is written, so DVC records only finished results, and a killed stage resumes from it on
the next ``dvc repro``. One whose fingerprint (configs, code, data) differs from the run's is stale
and discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline import io
from pipeline.stage import StageError

log = logging.getLogger("digit.train")


def fingerprint(*parts: Any) -> str:
    """sha256 over JSON-able parts and tensors / arrays (their bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Tensor):
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            h.update(str((part.shape, part.dtype.str)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def code_fingerprint(*modules: Any) -> str:
    """sha256 of the source files of ``modules``: a checkpoint written by other code is stale."""
    return fingerprint(*[Path(m.__file__).read_text() for m in modules])


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpoints:
    """The training-state checkpoint of one run: ``<path>/last.pt``, written atomically.

    ``load`` returns the saved state when its fingerprint matches this run, else None (a stale
    checkpoint is removed). ``clean`` removes the directory once the final model is written.
    """

    FILE = "last.pt"

    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint

    def load(self) -> dict[str, Any] | None:
        file = self.path / self.FILE
        io.sweep_temporaries(file)
        if not file.exists():
            return None
        state = io.load_torch(file)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s: checkpoint of a different run (params or data changed): ignored", file)
            self.clean()
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        io.save_torch(self.path / self.FILE, {**state, "fingerprint": self.fingerprint})

    def clean(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)


# ---------------------------------------------------------------------------------- the loop


class CurveLogger:
    """dvclive curves (``<dir>/plots/metrics/**.tsv`` + ``metrics.json``), replayable on resume.

    The dvclive directory is rewritten from the checkpoint's history when a run resumes, so the
    curves of a resumed run equal those of an uninterrupted one (no duplicated steps).
    """

    def __init__(self, live_dir: str | Path | None, history: list[dict[str, float]]) -> None:
        self.live = None
        if live_dir is None:
            return
        from dvclive import Live
        from scmrepo.exceptions import SCMError

        try:
            # dvcyaml=None: dvclive must not edit dvc.yaml, the curves are declared there by hand.
            self.live = Live(
                dir=str(live_dir), resume=False, report=None, save_dvc_exp=False, dvcyaml=None
            )
        except SCMError as err:  # dvclive 3.49 cannot start in a git repository without commits
            raise StageError(
                f"dvclive: {err}; commit once (git commit --allow-empty -m init) and re-run"
            ) from None
        for row in history:
            self.log(row)

    def log(self, row: dict[str, float]) -> None:
        if self.live is None:
            return
        self.live.step = int(row["step"])
        for key, value in row.items():
            if key != "step":
                self.live.log_metric(key, value)
        self.live.make_summary()

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
