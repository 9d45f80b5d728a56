"""Progress of long loops: a tqdm bar on a terminal, a log line every few seconds elsewhere.

A bar redraws itself with carriage returns, which a log file, DVC's captured output, the Prefect
task log or CI show as one endless line. So when stderr is not a terminal, ``progress`` returns a
``LogProgress`` instead: the same calls (iterate, ``update``, ``set_postfix``, ``close``, ``with``),
and a line such as ``ar_k256: step 80/160 (50%), train 1.230, 12.3 step/s`` through the ``digit``
logger at most every ``DIGIT_PROGRESS_S`` seconds (default 5) plus one when the loop ends. Neither
touches the numbers: no RNG, no extra evaluation.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tqdm import tqdm

log = logging.getLogger("digit.progress")
INTERVAL_VAR = "DIGIT_PROGRESS_S"


def interval_s() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_VAR, "5")))
    except ValueError:
        return 5.0


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    leave: bool = True,
) -> Any:
    """A tqdm bar when stderr is a terminal, else a ``LogProgress``; nothing at all when
    ``disable``. Use it as tqdm: ``for x in progress(xs, desc=...)`` or ``bar.update(n)``."""
    if disable or _is_tty(sys.stderr):
        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            disable=disable,
            leave=leave,
            mininterval=1.0,
        )
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)


class LogProgress:
    """tqdm's interface, written as a log line every ``interval_s()`` seconds and at the end."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = self.start_n = initial
        self.postfix: dict[str, Any] = {}
        self.interval = interval_s()
        self.t0 = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        assert self.iterable is not None, "LogProgress without an iterable is not iterable"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int | float = 1) -> None:
        self.n += n
        self._maybe_log()

    def set_postfix(
        self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}
        self._maybe_log()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """``desc: unit n/total (pct%), key value, ..., rate unit/s``."""
        now = time.monotonic() if now is None else now
        count = f"{self.n:g}" + (f"/{self.total:g}" if self.total else "")
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.unit} {count}{pct}"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        elapsed = now - self.t0
        if elapsed > 0 and self.n > self.start_n:
            rate = (self.n - self.start_n) / elapsed
            if rate >= 100:
                parts.append(f"{rate:.0f} {self.unit}/s")
            elif rate >= 1:
                parts.append(f"{rate:.3g} {self.unit}/s")
            else:
                parts.append(f"{1 / rate:.3g} s/{self.unit}")
        return f"{self.desc}: " + ", ".join(parts) if self.desc else ", ".join(parts)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = time.monotonic()
        end = "done" if self.total is None or self.n >= self.total else "stopped"
        log.info("%s (%s in %.1f s)", self.line(now), end, now - self.t0)
