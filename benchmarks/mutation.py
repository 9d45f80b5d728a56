"""Mutation testing of the code that decides results -> reports/benchmarks.md item 12.

A test suite is only as trustworthy as the bugs it would catch. mutmut plants one small bug at a
time (a mutant: ``<`` -> ``<=``, ``ddof=1`` -> ``ddof=2``, a constant + 1, a string changed) in
each module that decides a result, runs the fast tests that cover that module, and counts a mutant
killed when a test fails. A surviving mutant is either a gap in the tests or an equivalent program
(no test could tell it apart); ``benchmarks/mutation_equivalent.py`` gives the reason for each
survivor accepted as equivalent, and the output lists every other survivor as unexplained.

Mutants that only change a string literal (log messages, report wording) are counted apart: a
report's wording is read by people, not by the rules. The score is the share of the other mutants
killed (a timeout counts as killed: the mutant hung the tests).

    python -m benchmarks.mutation                      # every module (hours on 2 cores: claims.py has ~1,200 mutants)
    python -m benchmarks.mutation --only ladder,probe  # some of them
    python -m benchmarks.run --items mutation          # the same, into reports/benchmarks.md

Each module runs in a fresh copy of the project (``mutants/`` is mutmut's working folder), so a
run never touches the checkout. Not part of CI: it runs the tests once per mutant.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, Section
from benchmarks.mutation_equivalent import EQUIVALENT
from pipeline.dag import copy_project


@dataclass(frozen=True)
class Target:
    key: str
    what: str
    module: str  # the file mutated
    tests: tuple[str, ...]  # the fast tests that cover it


TARGETS = (
    Target(
        "claims",
        "claim rules and premises",
        "pipeline/report/claims.py",
        ("tests/test_claims.py", "tests/test_rules_exact.py"),
    ),
    Target("fid", "FID / IS / KID", "digit/metrics/fid.py", ("tests/test_fid.py",)),
    Target(
        "sampling",
        "sampling (token model and MaskGIT)",
        "digit/generate.py",
        ("tests/test_generate.py", "tests/test_rules_exact.py"),
    ),
    Target("probe", "the linear probe", "digit/metrics/probe.py", ("tests/test_probe.py",)),
    Target("kmeans", "K-Means and its assignment", "digit/kmeans.py", ("tests/test_kmeans.py",)),
    Target(
        "stability",
        "the stability measures",
        "digit/metrics/stability.py",
        ("tests/test_stability.py",),
    ),
    Target(
        "ladder",
        "the evaluation net's quality ladders",
        "digit/metrics/ladder.py",
        ("tests/test_ladder.py",),
    ),
    Target(
        "flow",
        "the flow's planning and outcomes",
        "pipeline/flow.py",
        ("tests/test_flow_outcome.py",),
    ),
)
KILLED = {"killed", "timeout", "caught by type check"}
# A string literal, with an optional prefix (f, r, b, ...), single or triple quoted.
STRING = re.compile(
    r"""(?:\b[rRbBuUfF]{1,2})?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
)


@dataclass
class Mutant:
    name: str
    status: str
    diff: str = ""

    @property
    def changed(self) -> tuple[str, str]:
        """(removed lines, added lines) of the mutant's diff, each joined into one text."""
        lines = self.diff.splitlines()
        old = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
        new = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
        return "\n".join(old), "\n".join(new)

    @property
    def function(self) -> str:
        """The mutated function, from mutmut's name (``pkg.mod.x_func__mutmut_3``)."""
        stem = self.name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
        return re.sub(r"^(x|xǁ\w+ǁ)_?", "", stem)


def string_only(old: str, new: str) -> bool:
    """The two texts differ only inside string literals."""

    def code(text: str) -> str:
        return re.sub(r"\s+", " ", STRING.sub("S", text)).strip()

    return old != new and code(old) == code(new)


def equivalence_reason(target: Target, mutant: Mutant) -> str | None:
    old, new = mutant.changed
    for module, function, removed, added, reason in EQUIVALENT:
        if (
            (module, function) == (target.module, mutant.function)
            and removed in old
            and added in new
        ):
            return reason
    return None


@dataclass
class Outcome:
    target: Target
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def row(self) -> dict:
        strings = [m for m in self.mutants if string_only(*m.changed)]
        logic = [m for m in self.mutants if m not in strings]
        killed = sum(m.status in KILLED for m in logic)
        return {
            "module": f"`{self.target.module}` ({self.target.what})",
            "tests": ", ".join(f"`{Path(t).name}`" for t in self.target.tests),
            "mutants": len(self.mutants),
            "killed": sum(m.status in KILLED for m in self.mutants),
            "survived": sum(m.status == "survived" for m in self.mutants),
            "not reached": sum(m.status == "no tests" for m in self.mutants),
            "string-only survivors": sum(m.status not in KILLED for m in strings),
            "non-string killed": f"{killed}/{len(logic)} = {killed / max(len(logic), 1):.1%}",
            "minutes": round(self.seconds / 60, 1),
        }

    def survivors(self) -> list[tuple[Mutant, str | None]]:
        out = []
        for m in self.mutants:
            if m.status in KILLED or string_only(*m.changed):
                continue
            out.append((m, equivalence_reason(self.target, m)))
        return out


def _mutmut(work: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """``python -m mutmut ARGS`` (or ``python -c CODE``) in ``work``, which holds the config."""
    env = {**os.environ, "PYTHONPATH": "", "DIGIT_WARM": "0"}
    argv = ["-c", code] if code is not None else ["-m", "mutmut", *args]
    return subprocess.run(
        [sys.executable, *argv], cwd=work, env=env, capture_output=True, text=True
    )


# Every mutant's status, and its diff, in one process (``mutmut show`` is a process a mutant).
DUMP = """
import json
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

out = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        out.append([name, status_by_exit_code[code], get_diff_for_mutant(name, path=path)])
print(json.dumps(out))
"""


def config(target: Target) -> str:
    tests = ", ".join(f'"{t}"' for t in target.tests)
    return (
        "[tool.mutmut]\n"
        'source_paths = ["digit", "pipeline"]\n'
        f'only_mutate = ["{target.module}"]\n'
        'also_copy = ["params.yaml", "dvc.yaml", "dag", ".dvc", "benchmarks"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        'process_isolation = "forkserver"\n'
        "use_git_change_detection = false\n"
    )


def run_target(target: Target, max_children: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"digit-mutation-{target.key}-") as tmp:
        work = Path(tmp)
        copy_project(ROOT, work)
        shutil.copytree(
            ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copytree(
            ROOT / "benchmarks", work / "benchmarks", ignore=shutil.ignore_patterns("__pycache__")
        )
        (work / "pyproject.toml").write_text(config(target))
        t0 = time.perf_counter()
        ran = _mutmut(work, "run", "--max-children", str(max_children))
        outcome = Outcome(target, seconds=time.perf_counter() - t0)
        dump = _mutmut(work, code=DUMP)
        if dump.returncode != 0:
            tail = (ran.stdout + ran.stderr + dump.stderr)[-3000:]
            raise RuntimeError(f"mutmut on {target.module} left no results:\n{tail}")
        outcome.mutants = [Mutant(*row) for row in json.loads(dump.stdout)]
        if not outcome.mutants:
            raise RuntimeError(f"mutmut found no mutants of {target.module}:\n{ran.stdout[-3000:]}")
        return outcome


def survivor_lines(outcome: Outcome) -> list[str]:
    lines = []
    for mutant, reason in outcome.survivors():
        old, new = mutant.changed
        change = f"`{old.strip()[:90]}` -> `{new.strip()[:90]}`"
        why = f"equivalent: {reason}" if reason else "**unexplained**"
        lines.append(f"- {mutant.status}: `{mutant.function}`: {change}; {why}")
    return lines


def section(outcomes: list[Outcome]) -> Section:
    notes = [
        "From benchmarks/mutation.py (mutmut 3, each module against its fast tests in a fresh "
        "copy of the project). 'non-string killed': killed (or timed out) among the mutants that "
        "change more than a string literal; the goal is at least 90% in every module. Survivors "
        "that change logic, each with the reason it is equivalent or marked unexplained:"
    ]
    for outcome in outcomes:
        lines = survivor_lines(outcome)
        notes.append(f"**{outcome.target.module}**: " + ("none" if not lines else ""))
        if lines:
            notes.append("\n".join(lines))
    return Section(
        "mutation",
        "12. Mutation testing: the tests that guard the results",
        [o.row for o in outcomes],
        notes,
    )


def selected(only: str | None) -> list[Target]:
    if not only:
        return list(TARGETS)
    keys = [k.strip() for k in only.split(",") if k.strip()]
    unknown = sorted(set(keys) - {t.key for t in TARGETS})
    if unknown:
        sys.exit(f"error: --only: unknown {unknown}; known: {[t.key for t in TARGETS]}")
    return [t for t in TARGETS if t.key in keys]


def run(opts) -> Section:
    targets = selected(getattr(opts, "mutation_only", None))
    children = getattr(opts, "mutation_children", None) or os.cpu_count() or 1
    outcomes = []
    for target in targets:
        print(f"[mutation] {target.module} ...", file=sys.stderr, flush=True)
        outcomes.append(run_target(target, children))
        print(f"[mutation] {outcomes[-1].row}", file=sys.stderr, flush=True)
    return section(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", dest="mutation_only", help="comma list of target keys")
    parser.add_argument("--children", dest="mutation_children", type=int, default=None)
    opts = parser.parse_args()
    print(run(opts).markdown())


if __name__ == "__main__":
    main()
