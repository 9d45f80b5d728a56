"""digit/progress.py: a tqdm bar on a terminal; elsewhere log lines every few seconds, no bar."""

import io
import logging
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from digit import progress as progress_mod
from digit.progress import LogProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress(total=3, desc="x")
    assert isinstance(bar, tqdm)
    bar.close()


def test_disabled_is_silent(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with caplog.at_level(logging.INFO, logger="digit.progress"):
        bar = progress(total=3, desc="x", disable=True)
        bar.update(3)
        bar.close()
    assert not caplog.records


def test_not_a_terminal_logs_lines(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv(progress_mod.INTERVAL_VAR, "0")  # a line on every update
    with caplog.at_level(logging.INFO, logger="digit.progress"):
        bar = progress(total=160, initial=40, desc="ar_k256", unit="step")
        assert isinstance(bar, LogProgress)
        bar.update(40)
        bar.set_postfix({"train": "1.230"})
        bar.update(80)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("ar_k256: step 80/160 (50%), ")
    assert lines[0].endswith("step/s") or lines[0].endswith("s/step")
    assert "train 1.230" in lines[-2]
    assert lines[-1].startswith("ar_k256: step 160/160 (100%), train 1.230, ")
    assert "(done in " in lines[-1]
    assert all("\r" not in line for line in lines)


def test_iterable_and_throttling(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv(progress_mod.INTERVAL_VAR, "3600")
    with caplog.at_level(logging.INFO, logger="digit.progress"):
        assert list(progress(range(5), desc="probe", unit="batch")) == [0, 1, 2, 3, 4]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("probe: batch 5/5 (100%)"), lines


def test_piped_stage_output_has_no_carriage_returns(tmp_path):
    """A loop in a process whose stderr is a pipe (DVC, the flow, a log file) writes lines."""
    code = (
        "import logging, sys; logging.basicConfig(level='INFO', stream=sys.stderr);"
        "from digit.progress import progress\n"
        "for _ in progress(range(50), desc='loop', unit='it'): pass"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"DIGIT_PROGRESS_S": "0"},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "loop: it 50/50 (100%)" in proc.stderr
