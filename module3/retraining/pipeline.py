"""Run jobs 0 to 4 as separate processes, the way a scheduler chains them.

Job 1's exit code 1 (drift) is the trigger for jobs 2 to 4; its exit code 0
ends the loop cleanly. Any other code stops the loop and becomes the runner's
own exit code.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from retraining.config import Workspace
from retraining.errors import EXIT_DRIFT, EXIT_OK, EXIT_OTHER_ERROR, Terminated
from retraining.files import read_state_json

log = logging.getLogger(__name__)

MODULE3 = Path(__file__).resolve().parents[1]
JOB_SCRIPTS = {
    0: "0_prepare_data.py",
    1: "1_check_drift.py",
    2: "2_simulate_labeling_job.py",
    3: "3_retrain_model.py",
    4: "4_register_and_deploy.py",
}


def run_step(job: int, arguments: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run one job with this interpreter; return its exit code and wall time.

    SIGINT and SIGTERM received meanwhile are passed on to the job, which
    cleans up and exits; the runner then stops with the job's code.
    """
    command = [sys.executable, str(MODULE3 / JOB_SCRIPTS[job]), *arguments]
    print(f"\n=== job {job}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, env=env)
    try:
        code = process.wait()
    except (KeyboardInterrupt, Terminated) as interruption:
        sent = signal.SIGINT if isinstance(interruption, KeyboardInterrupt) else signal.SIGTERM
        process.send_signal(sent)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        raise
    elapsed = time.monotonic() - started
    print(f"=== job {job} exited with {code} after {elapsed:.1f} s", flush=True)
    return code, elapsed


def child_environment(workspace: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    env["LOOP_WORKDIR"] = str(workspace.root)
    # The runner reads job 1's exit code as the trigger, so chain mode, which
    # turns drift into exit 0, must be off for the jobs it starts.
    env["LOOP_CHAIN_MODE"] = "0"
    env.pop("JOB_ARGUMENTS", None)
    return env


def run_loop(workspace: Workspace, job_arguments: dict[int, list[str]]) -> int:
    """Run the loop and print a summary; return the exit code of the loop."""
    env = child_environment(workspace)
    timings: dict[int, float] = {}
    for job in range(5):
        code, timings[job] = run_step(job, job_arguments.get(job, []), env)
        if job == 1 and code == EXIT_OK:
            print("\nNo data drift: nothing to retrain. The loop ends here.")
            print_timings(timings)
            return EXIT_OK
        if job == 1 and code == EXIT_DRIFT:
            continue
        if code != EXIT_OK:
            print(f"\nThe loop stopped at job {job} with exit code {code}.")
            return code if code != EXIT_DRIFT else EXIT_OTHER_ERROR
    print_summary(workspace)
    print_timings(timings)
    return EXIT_OK


def print_timings(timings: dict[int, float]) -> None:
    parts = ", ".join(f"job {job} {seconds:.1f} s" for job, seconds in timings.items())
    print(f"Wall time: {parts}; total {sum(timings.values()):.1f} s")


def _metric(metrics: dict[str, Any], model: str, holdout: str) -> str:
    value = (metrics.get(model) or {}).get(holdout) or {}
    score = value.get("f1_yes")
    return "n/a" if score is None else f"{score:.3f}"


def print_summary(workspace: Workspace) -> None:
    status = read_state_json(workspace.drift_status, "module3/1_check_drift.py")
    run_info = read_state_json(workspace.retrain_run_info, "module3/3_retrain_model.py")
    deployment = read_state_json(
        workspace.deployment_info, "module3/4_register_and_deploy.py"
    )
    metrics = run_info.get("metrics", {})
    print("\n=== Summary")
    print(f"drifted columns:        {', '.join(status.get('drifted_columns', []))}")
    print(
        f"F1 (yes), new rows:     v1 {_metric(metrics, 'v1', 'new_holdout')} -> "
        f"v2 {_metric(metrics, 'v2', 'new_holdout')}"
    )
    print(
        f"F1 (yes), old rows:     v1 {_metric(metrics, 'v1', 'old_holdout')} -> "
        f"v2 {_metric(metrics, 'v2', 'old_holdout')}"
    )
    print(f"MLflow run:             {run_info.get('run_id')}")
    version = deployment.get("version") or deployment.get("registered_model_version_id")
    print(f"model version:          {deployment.get('model_name')} {version}")
    print(f"endpoint:               {deployment.get('endpoint_url')}")
