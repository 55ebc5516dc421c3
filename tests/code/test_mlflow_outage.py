"""Jobs 3 and 4 when the MLflow tracking server stops: exit 3, then a clean rerun.

Each test runs its own real ``mlflow server`` and stops it with a real signal,
so the session's shared server is not touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import (
    SCRIPTS,
    free_port,
    job_env,
    run_script,
    start_mlflow_server,
    stop_process,
    stop_scoring_servers,
)

MODEL_NAME = "banking_campaign_predictor_v2"


@pytest.fixture
def labeled(checked):
    """A workspace whose drifted batch job 2 has labeled."""
    result = run_script(2, env=job_env(checked))
    assert result.returncode == 0, result.stderr
    return checked


def run_until_log_line(script, env: dict, marker: str, timeout: float = 300):
    """Start a job and return the process once ``marker`` appears in its log."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS[script])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    seen = []
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            return process, seen
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError(f"{marker!r} not logged; job output:\n{''.join(seen)}")


def test_server_stop_during_retrain(labeled, tmp_path):
    port = free_port()
    server = start_mlflow_server(tmp_path / "mlflow", port)
    env = job_env(labeled, server.uri, LOOP_MLFLOW_TIMEOUT="20")
    try:
        process, _ = run_until_log_line(3, env, "training v2 on")
        stop_process(server.process)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=180)
        elapsed = time.monotonic() - started

        assert process.returncode == 3, stderr[-2000:]
        assert elapsed < 60
        assert f"127.0.0.1:{port}" in stderr
        assert not (labeled / "outputs" / "retrain_run_info.json").exists()

        server = start_mlflow_server(tmp_path / "mlflow", port)
        rerun = run_script(3, env=env)

        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert (labeled / "outputs" / "retrain_run_info.json").exists()
    finally:
        stop_process(server.process)


def test_server_down_before_deploy(labeled, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    port = free_port()
    server = start_mlflow_server(tmp_path / "mlflow", port)
    env = job_env(
        labeled, server.uri, LOOP_MLFLOW_TIMEOUT="10", LOOP_SERVE_PORT=str(free_port())
    )
    deployment_path = labeled / "outputs" / "deployment_info.json"
    try:
        trained = run_script(3, env=env)
        assert trained.returncode == 0, trained.stderr[-2000:]
        stop_process(server.process)

        down = run_script(4, env=env, timeout=180)

        assert down.returncode == 3, down.stderr[-2000:]
        assert f"127.0.0.1:{port}" in down.stderr
        assert not deployment_path.exists()

        server = start_mlflow_server(tmp_path / "mlflow", port)
        client = MlflowClient(tracking_uri=server.uri)
        with pytest.raises(MlflowException):
            client.get_model_version_by_alias(MODEL_NAME, "champion")

        rerun = run_script(4, env=env, timeout=600)
        deployment = json.loads(deployment_path.read_text())
        version = client.get_model_version_by_alias(MODEL_NAME, "champion")
        run_info = json.loads((labeled / "outputs" / "retrain_run_info.json").read_text())

        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert deployment["deployed"] is True
        assert version.run_id == run_info["run_id"]
        assert str(version.version) == str(deployment["version"])
    finally:
        stop_process(server.process)
        stop_scoring_servers(labeled)
