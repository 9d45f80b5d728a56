"""What every benchmark item shares: a result section, markdown tables, timing, the machine line.

A benchmark item is a module with ``run(opts) -> Section``. Figures on this shared 2-core machine
move with the load, so each section carries the 1-minute load average at the time it was measured
and every figure sits beside a baseline measured in the same run: the ratio is what to read.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Section:
    key: str  # the item's name on the command line (``--items key``)
    title: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measured: str = ""  # when and under which load; filled by benchmarks.run

    def markdown(self) -> str:
        out = [f"<!-- bench:{self.key} -->", f"## {self.title}", ""]
        if self.measured:
            out += [f"_{self.measured}_", ""]
        if self.rows:
            out += [table(self.rows), ""]
        out += [f"{note}\n" for note in self.notes]
        out.append(f"<!-- /bench:{self.key} -->")
        return "\n".join(out)


def table(rows: list[dict]) -> str:
    """A markdown table over the union of the rows' keys (first-seen order)."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def seconds(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls: the least disturbed by other processes on the machine."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else platform.machine()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_note() -> str:
    return f"measured {now()}, 1-min load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def machine() -> str:
    import torch

    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}); {now()}"
    )
