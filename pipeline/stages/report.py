"""report: metrics/*.json -> reports/ (tables as markdown + csv, figures, README.md, claims.md).

The one writer of reports/ besides the sample grids of the generate stages (pipeline/report/).
"""

from __future__ import annotations

import logging

from pipeline.params import Params
from pipeline.report.write import write_reports
from pipeline.stage import cli, stage

log = logging.getLogger("digit.report")


def run(params: Params, metrics: str, out: str) -> None:
    for v in write_reports(params, metrics, out):
        log.info("claim: %s -> %s", v.claim[:60], v.verdict)


def main() -> None:
    args = cli(__doc__, "metrics", "out")
    with stage("report", args.params) as params:
        run(params, args.metrics, args.out)


if __name__ == "__main__":
    main()
