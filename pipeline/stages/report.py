"""report: metrics/*.json (+ dvclive/ curves) -> reports/ (tables as markdown + csv, figures,
README.md, claims.md, summary.json).

The one writer of reports/ besides the sample grids of the generate stages (pipeline/report/).
"""

from __future__ import annotations

import logging

from pipeline.params import Params
from pipeline.report.write import write_reports
from pipeline.stage import cli, stage

log = logging.getLogger("digit.report")


def run(params: Params, metrics: str, out: str, live: str | None = None) -> None:
    for v in write_reports(params, metrics, out, live):
        log.info("claim: %s -> %s", v.claim[:60], v.verdict)


def main() -> None:
    args = cli(__doc__, "metrics", "out", optional=("live",))
    with stage("report", args.params) as params:
        run(params, args.metrics, args.out, args.live)


if __name__ == "__main__":
    main()
