"""Do the claims' verdicts survive a change of floating-point order? -> reports/verdict_stability.md

Bit-identical results hold on one machine at one thread count only; another machine changes the
order of floating-point sums, and with it every training trajectory. Running the whole default
with a different thread count (``OMP_NUM_THREADS`` 1 vs 2) changes that order the same way, so
this script reproduces the default from clean clones at each count and prints the two sets of
verdicts side by side with the numbers behind them. They must agree.

    python -m benchmarks.verdicts                      # two clean-clone runs (about 40 minutes)
    python -m benchmarks.verdicts --reuse 2=/tmp/run   # reuse a finished run for one count

Not part of ``make bench``: it reproduces the DAG twice.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from benchmarks.common import ROOT, machine, table
from benchmarks.repro import clean_clone

ROW = re.compile(r"^\| (\d) \| (.+?) \| \*\*(.+?)\*\* \| (.*) \|$", re.M)
PREMISE = re.compile(r"^\| (.+?) \| (pass|\*\*fail\*\*) \| (.*?) \| (.*?) \|$", re.M)
OUT = ROOT / "reports" / "verdict_stability.md"


def verdicts(run: Path) -> list[tuple[str, str, str, str]]:
    """(claim number, claim, verdict, evidence) from a run's reports/claims.md."""
    text = (run / "reports" / "claims.md").read_text()
    return [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in ROW.finditer(text)]


def premises(run: Path) -> list[tuple[str, str]]:
    text = (run / "reports" / "claims.md").read_text()
    return [(m.group(1), m.group(2).strip("*")) for m in PREMISE.finditer(text)]


def headline(run: Path) -> dict[str, float]:
    """reports/summary.json (group -> name -> number) as "group.name" -> number."""
    summary = json.loads((run / "reports" / "summary.json").read_text())
    return {f"{group}.{name}": v for group, d in summary.items() for name, v in d.items()}


def report(runs: dict[int, Path]) -> tuple[str, bool]:
    counts = sorted(runs)
    v = {n: verdicts(runs[n]) for n in counts}
    p = {n: dict(premises(runs[n])) for n in counts}
    rows, agree = [], True
    differ = []
    for i, (num, claim, _, _) in enumerate(v[counts[0]]):
        got = [v[n][i][2] for n in counts]
        same = len(set(got)) == 1
        agree &= same
        if not same:
            differ += [f"### Claim {num}", ""]
            differ += [f"- {n} thread(s): **{v[n][i][2]}**: {v[n][i][3]}" for n in counts]
            differ.append("")
        rows.append(
            {
                "#": num,
                "claim": claim,
                **{f"{n} thread(s)": g for n, g in zip(counts, got, strict=True)},
                "agree": "yes" if same else "**NO**",
            }
        )
    prem = [
        {"premise": check, **{f"{n} thread(s)": p[n].get(check, "-") for n in counts}}
        for check in p[counts[0]]
    ]
    nums = {n: headline(runs[n]) for n in counts}
    figures = [
        {"number": key, **{f"{n} thread(s)": nums[n].get(key) for n in counts}}
        for key in nums[counts[0]]
    ]
    lines = [
        "# Verdict stability across floating-point order",
        "",
        f"The embedded default reproduced from clean clones with OMP_NUM_THREADS = "
        f"{' and '.join(map(str, counts))} (`python -m benchmarks.verdicts`), on {machine()}. "
        "Another thread count reorders floating-point sums as another machine would; every "
        "training trajectory moves, so the numbers differ. The verdicts must not.",
        "",
        f"**Verdicts {'agree' if agree else 'DISAGREE'}.**",
        "",
        table(rows),
        "",
        *(["## Where they differ", "", *differ] if differ else []),
        "## Premises",
        "",
        table(prem),
        "",
        "## Headline numbers (reports/summary.json of each run)",
        "",
        table(figures),
        "",
    ]
    return "\n".join(lines), agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="N=DIR",
        help="a finished run for thread count N (a reproduced checkout) instead of a new one",
    )
    parser.add_argument("--logs", type=Path, default=Path("/tmp"), help="where the repro logs go")
    args = parser.parse_args()
    runs = {int(n): Path(d) for n, d in (r.split("=", 1) for r in args.reuse)}
    for n in args.threads:
        if n not in runs:
            env = {var: str(n) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            runs[n] = clean_clone(args.logs / f"verdicts_{n}threads.log", keep=True, env_extra=env)
    text, agree = report({n: runs[n] for n in args.threads})
    OUT.write_text(text)
    print(text)
    print(f"-> {OUT.relative_to(ROOT)}")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
