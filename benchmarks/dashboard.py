"""Screenshots of the Prefect dashboard: one flow run on a real Prefect server, its run page and
its run-summary artifact, taken by headless Chromium (Debian package `chromium`).

    python -m benchmarks.dashboard [--out reports/figures] [--preset smoke]   # a whole smoke run
    python -m benchmarks.dashboard --from /tmp/bench_repro_...                # the default's run

``--from`` copies a reproduced checkout (the one ``benchmarks.repro --keep`` leaves) and deletes the
report stage's claims.md there, so the flow skips every other stage and re-runs the report: the
pictures show the default run's own verdicts.

Writes ``dashboard.png`` (the flow run page: the timeline of its stage tasks, the log) and
``dashboard_artifact.png`` (the run-summary markdown artifact). Everything runs on 127.0.0.1 in a
temporary copy of the project; nothing is fetched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import ROOT

PORT = 4242


def screenshot(url: str, out: Path, size: str = "1500,1100") -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("error: no chromium on PATH (Debian: apt-get install chromium)")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={size}",
         "--virtual-time-budget=20000", "--hide-scrollbars", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "figures")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--from", dest="source", type=Path, help="a reproduced checkout")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import clone_run, copy_project

    tmp = Path(tempfile.mkdtemp(prefix="digit-dashboard-"))
    if args.source:
        work = clone_run(args.source, tmp / "work")
        for package in ("digit", "pipeline"):  # this checkout's code: its board and flow
            skip = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / package, work / package, dirs_exist_ok=True, ignore=skip)
        (work / "reports" / "claims.md").unlink()  # the report stage re-runs; the rest skips
    else:
        work = copy_project(tmp / "work", args.preset)
    api = f"http://127.0.0.1:{PORT}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(PORT)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        subprocess.run([sys.executable, "-m", "pipeline.flow"], cwd=work, env=env, check=True)
        # Artifacts reach the API through Prefect's event stream, which a client cannot wait on:
        # ask up to 30 times, a second apart (the count only bounds a failure).
        code = (
            "import time\n"
            "from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    for _ in range(30):\n"
            "        arts = [a for a in c.read_artifacts() if a.key == 'run-summary']\n"
            "        if arts:\n"
            "            break\n"
            "        time.sleep(1)\n"
            "    run = c.read_flow_runs(limit=1)[0]\n"
            "    print(run.id, arts[0].id)\n"
        )
        found = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        if found.returncode != 0:
            sys.exit(f"error: the flow run or its run-summary not found:\n{found.stderr[-2000:]}")
        ids = found.stdout.split()
        args.out.mkdir(parents=True, exist_ok=True)
        base = f"http://127.0.0.1:{PORT}"
        screenshot(f"{base}/runs/flow-run/{ids[0]}", args.out / "dashboard.png")
        screenshot(f"{base}/artifacts/artifact/{ids[1]}", args.out / "dashboard_artifact.png")
        print(f"wrote {args.out / 'dashboard.png'} and {args.out / 'dashboard_artifact.png'}")
    finally:
        os.killpg(server.pid, 15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
