"""Measure wall time and peak memory of each job of the loop on the real data.

Runs jobs 0 to 4 once, as separate processes, in a fresh temporary workspace
with its own SQLite MLflow store, and prints one Markdown table row per job.
The scoring server that job 4 starts is stopped at the end.

    python benchmarks/bench_loop.py --source /path/to/bank-full.csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULE3 = Path(__file__).resolve().parents[1] / "module3"
JOBS = [
    ("0 prepare data", "0_prepare_data.py"),
    ("1 check drift", "1_check_drift.py"),
    ("2 acquire labels", "2_simulate_labeling_job.py"),
    ("3 retrain", "3_retrain_model.py"),
    ("4 register and deploy", "4_register_and_deploy.py"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_measured(command: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """Run ``command``; return its exit code, wall seconds and peak RSS in MiB."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    # ru_maxrss is in KiB on Linux.
    return process.returncode, elapsed, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default=os.environ.get("BANK_MARKETING_CSV"),
        help="local bank-full.csv (env BANK_MARKETING_CSV)",
    )
    args = parser.parse_args()
    if not args.source:
        parser.error("pass --source PATH or set BANK_MARKETING_CSV")

    workspace = Path(tempfile.mkdtemp(prefix="loop-bench-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOOP_", "MLFLOW_", "CDSW_")) and key != "JOB_ARGUMENTS"
    }
    env.update(LOOP_WORKDIR=str(workspace), LOOP_SERVE_PORT=str(free_port()))
    expected = {1: 1}
    print(f"workspace {workspace}; Python {platform.python_version()}; {os.cpu_count()} CPUs")
    print("| job | wall time (s) | peak memory (MiB) |")
    print("|---|---|---|")
    total = 0.0
    try:
        for index, (name, script) in enumerate(JOBS):
            extra = ["--source", str(Path(args.source).resolve())] if index == 0 else []
            code, seconds, peak = run_measured(
                [sys.executable, str(MODULE3 / script), *extra], env
            )
            total += seconds
            print(f"| {name} | {seconds:.1f} | {peak:.0f} |", flush=True)
            if code != expected.get(index, 0):
                print(f"job {index} exited with {code}; see its output by rerunning it")
                return 4
        print(f"| whole loop | {total:.1f} | |")
    finally:
        info = workspace / "outputs" / "deployment_info.json"
        if info.exists():
            pid = json.loads(info.read_text()).get("pid")
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
    print(f"benchmark process peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
