"""Job 4 with the local target: real registry, real ``mlflow models serve``."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from conftest import (
    free_port,
    job_env,
    run_script,
    stop_scoring_servers,
    write_batch_manifest,
)
from retraining.config import CHAMPION_ALIAS, MODEL_NAME, Workspace
from retraining.deploy import resolve_target
from retraining.deploy.local import process_exists
from retraining.deploy.local import sample_rows, stop_process_group
from retraining.errors import InvalidInputError

BATCH_ROWS = 300


def write_batch(workspace: Path, seed: int = 1) -> Path:
    """Write a labeled batch and drift_status.json from training rows.

    Stands in for jobs 1 and 2, so these tests depend only on jobs 0, 3 and 4.
    """
    data = workspace / "data"
    rows = pd.read_csv(data / "banking_train.csv").sample(BATCH_ROWS, random_state=seed)
    rows.insert(0, "record_id", [f"r{index}" for index in range(len(rows))])
    batch = data / "production_batch_01.csv"
    rows.drop(columns="y").to_csv(batch, index=False)
    rows.to_csv(data / "new_labeled_batch_01.csv", index=False)
    write_batch_manifest(data / "new_labeled_batch_01.csv", batch)
    status = {"drift_detected": True, "batch": {"path": "data/production_batch_01.csv"}}
    (workspace / "outputs").mkdir(exist_ok=True)
    (workspace / "outputs" / "drift_status.json").write_text(json.dumps(status))
    return batch


def write_outside_batch(workspace: Path, folder: Path) -> Path:
    """Copy the batch to ``folder`` and name it in drift_status.json by its
    absolute path, as job 1 records a ``--current`` file outside the workspace."""
    folder.mkdir(parents=True, exist_ok=True)
    outside = folder / "outside_batch.csv"
    outside.write_bytes((workspace / "data" / "production_batch_01.csv").read_bytes())
    status = {"drift_detected": True, "batch": {"path": str(outside)}}
    (workspace / "outputs" / "drift_status.json").write_text(json.dumps(status))
    return outside


def champion_version(uri: str) -> str:
    client = MlflowClient(tracking_uri=uri)
    return client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version


def read_deployment(workspace: Path) -> dict:
    path = workspace / "outputs" / "deployment_info.json"
    return json.loads(path.read_text(encoding="utf-8"))


def deploy(workspace: Path, uri: str, port: int, **extra: str):
    env = job_env(workspace, uri, LOOP_DEPLOY_TARGET="local", **extra)
    return run_script(4, "--port", str(port), env=env, timeout=400)


@pytest.fixture(scope="module")
def deploy_workspace(tmp_path_factory, prepared_data, mlflow_server):
    root = tmp_path_factory.mktemp("deploy")
    (root / "data").mkdir()
    (root / "data" / "banking_train.csv").write_bytes(prepared_data.read_bytes())
    write_batch(root)
    result = run_script(3, env=job_env(root, mlflow_server.uri))
    assert result.returncode == 0, result.stderr
    yield root
    stop_scoring_servers(root)


@pytest.fixture(scope="module")
def first_deploy(deploy_workspace, mlflow_server) -> dict:
    started = time.monotonic()
    result = deploy(deploy_workspace, mlflow_server.uri, free_port())
    assert result.returncode == 0, result.stderr
    info = read_deployment(deploy_workspace)
    info["_stdout"] = result.stdout
    info["_seconds"] = time.monotonic() - started
    return info


def test_deploy_marks_deployed(first_deploy):
    assert first_deploy["deployed"] is True


def test_deploy_registers_run(first_deploy, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    version = client.get_model_version(MODEL_NAME, first_deploy["version"])
    assert version.run_id == first_deploy["run_id"]


def test_deploy_sets_champion_alias(first_deploy, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    assert version.version == first_deploy["version"]


def test_deploy_smoke_test_ok(first_deploy):
    assert first_deploy["smoke_test"]["ok"] is True


def test_deploy_prints_kill_hint(first_deploy):
    assert f"kill {first_deploy['pid']}" in first_deploy["_stdout"]


def test_server_predicts_batch_rows(first_deploy, deploy_workspace):
    rows = pd.read_csv(deploy_workspace / "data" / "production_batch_01.csv")
    rows = rows.drop(columns="record_id").head(50)
    payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    response = requests.post(first_deploy["endpoint_url"], json=payload, timeout=60)
    predictions = response.json()["predictions"]
    assert len(predictions) == 50
    assert set(predictions) <= {"yes", "no"}


def test_rerun_starts_no_second_server(first_deploy, deploy_workspace, mlflow_server):
    result = deploy(deploy_workspace, mlflow_server.uri, first_deploy["port"])
    assert result.returncode == 0, result.stderr
    assert "no second server" in result.stdout
    assert read_deployment(deploy_workspace)["pid"] == first_deploy["pid"]


@pytest.fixture(scope="module")
def failed_redeploy(deploy_workspace, mlflow_server, first_deploy) -> dict:
    """A forced retrain, then job 4 whose new server misses a 0.5 s startup limit."""
    result = run_script(3, "--force", env=job_env(deploy_workspace, mlflow_server.uri))
    assert result.returncode == 0, result.stderr
    port = str(free_port())
    env = job_env(deploy_workspace, mlflow_server.uri, LOOP_DEPLOY_TARGET="local")
    result = run_script(4, "--port", port, "--serve-timeout", "0.5", env=env)
    return {
        "returncode": result.returncode,
        "stderr": result.stderr,
        "champion": champion_version(mlflow_server.uri),
        "deployment": read_deployment(deploy_workspace),
        "old_server_runs": process_exists(first_deploy["pid"]),
    }


def test_failed_redeploy_exit_3(failed_redeploy):
    assert failed_redeploy["returncode"] == 3, failed_redeploy["stderr"]


def test_failed_redeploy_keeps_alias(failed_redeploy, first_deploy):
    assert failed_redeploy["champion"] == first_deploy["version"]


def test_failed_redeploy_keeps_info(failed_redeploy, first_deploy):
    assert failed_redeploy["deployment"]["run_id"] == first_deploy["run_id"]


def test_failed_redeploy_keeps_old_server(failed_redeploy):
    assert failed_redeploy["old_server_runs"] is True


@pytest.fixture(scope="module")
def redeploy(deploy_workspace, mlflow_server, first_deploy, failed_redeploy) -> dict:
    """After the failed attempt, job 4 asked for a port another program holds,
    with drift_status.json naming a batch outside the workspace."""
    outside = write_outside_batch(deploy_workspace, deploy_workspace.parent / "ext")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        blocked_port = blocker.getsockname()[1]
        result = deploy(deploy_workspace, mlflow_server.uri, blocked_port)
    assert result.returncode == 0, result.stderr
    info = read_deployment(deploy_workspace)
    info["_blocked_port"] = blocked_port
    info["_outside_batch"] = str(outside)
    return info


def test_redeploy_new_run(redeploy, first_deploy):
    assert redeploy["run_id"] != first_deploy["run_id"]


def test_redeploy_new_version(redeploy, first_deploy):
    assert int(redeploy["version"]) > int(first_deploy["version"])


def test_redeploy_reuses_registered_version(redeploy, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    versions = client.search_model_versions(f"run_id = '{redeploy['run_id']}'")
    assert len(versions) == 1


def test_redeploy_sets_alias(redeploy, mlflow_server):
    assert champion_version(mlflow_server.uri) == redeploy["version"]


def test_redeploy_samples_outside_batch(redeploy):
    assert redeploy["smoke_test"]["source"] == redeploy["_outside_batch"]


def test_redeploy_avoids_taken_port(redeploy):
    assert redeploy["port"] != redeploy["_blocked_port"]


def test_redeploy_stops_old_server(redeploy, first_deploy):
    assert not process_exists(first_deploy["pid"])


def test_redeploy_new_server_answers(redeploy):
    base = redeploy["endpoint_url"].rsplit("/", 1)[0]
    assert requests.get(f"{base}/ping", timeout=10).status_code == 200


def test_redeploy_keeps_history(redeploy, deploy_workspace):
    history = list((deploy_workspace / "outputs" / "history").glob("deployment_info*"))
    assert len(history) >= 1


def test_unactivated_interpreter_serves(redeploy, deploy_workspace, mlflow_server):
    stop_process_group(redeploy["pid"])
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        part for part in os.environ.get("PATH", "").split(os.pathsep)
        if part and Path(part) != Path(venv_bin)
    )
    env = job_env(deploy_workspace, mlflow_server.uri, LOOP_DEPLOY_TARGET="local")
    env["PATH"] = path or "/usr/bin:/bin"
    env.pop("VIRTUAL_ENV", None)
    result = run_script(4, "--port", str(free_port()), env=env, timeout=400)
    assert result.returncode == 0, result.stderr
    assert read_deployment(deploy_workspace)["pid"] != redeploy["pid"]


def test_missing_run_info_exit_2(workspace):
    result = run_script(4, env=job_env(workspace))
    assert result.returncode == 2
    assert "3_retrain_model.py" in result.stderr


def test_corrupt_run_info_exit_2(workspace):
    (workspace / "outputs").mkdir()
    (workspace / "outputs" / "retrain_run_info.json").write_text("{not json")
    result = run_script(4, env=job_env(workspace))
    assert result.returncode == 2
    assert "corrupt" in result.stderr


def test_unreachable_tracking_exit_3(workspace):
    (workspace / "outputs").mkdir()
    run_info = {"run_id": "0" * 32, "model_uri": "runs:/x/model", "training_files": []}
    (workspace / "outputs" / "retrain_run_info.json").write_text(json.dumps(run_info))
    uri = f"http://127.0.0.1:{free_port()}"
    env = job_env(workspace, uri, LOOP_DEPLOY_TARGET="local")
    started = time.monotonic()
    result = run_script(4, "--mlflow-timeout", "3", env=env, timeout=120)
    assert result.returncode == 3
    assert uri in result.stderr
    assert time.monotonic() - started < 60


def test_run_not_in_store_exit_2(workspace, mlflow_server):
    (workspace / "outputs").mkdir()
    run_id = "0" * 32
    run_info = {"run_id": run_id, "model_uri": "runs:/x/model", "training_files": []}
    (workspace / "outputs" / "retrain_run_info.json").write_text(json.dumps(run_info))
    env = job_env(workspace, mlflow_server.uri, LOOP_DEPLOY_TARGET="local")
    result = run_script(4, "--port", str(free_port()), env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"run {run_id}" in result.stderr
    assert f"not found in {mlflow_server.uri}" in result.stderr
    assert "3_retrain_model.py" in result.stderr


SETTINGS_ERRORS = [
    (["--port", "99999"], {}, "99999"),
    ([], {"LOOP_SERVE_PORT": "70000"}, "70000"),
    (["--host", "999.1.1.1"], {}, "999.1.1.1"),
    ([], {"LOOP_DEPLOY_TARGET": "bogus"}, "bogus"),
    ([], {"MLFLOW_TRACKING_URI": "bogus://x"}, "bogus://x"),
    ([], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:notaport"}, "invalid port"),
]


@pytest.mark.parametrize("flags, env_vars, named", SETTINGS_ERRORS)
def test_settings_error_exit_2(workspace, flags, env_vars, named):
    # Chain mode without retrain_run_info.json: nothing to deploy, but the
    # settings are checked first.
    env = job_env(workspace, LOOP_CHAIN_MODE="1", **env_vars)
    result = run_script(4, *flags, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_sample_rows_outside_workspace(tmp_path, prepared_data):
    root = tmp_path / "workspace"
    (root / "outputs").mkdir(parents=True)
    rows = pd.read_csv(prepared_data).drop(columns="y").head(20)
    outside = tmp_path / "elsewhere" / "batch.csv"
    outside.parent.mkdir()
    rows.to_csv(outside, index=False)
    status = {"batch": {"path": str(outside)}}
    (root / "outputs" / "drift_status.json").write_text(json.dumps(status))
    _, source = sample_rows(Workspace(root))
    assert source == str(outside)


def target_args(target: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(target=target)


def test_target_auto_outside_cml(monkeypatch):
    monkeypatch.delenv("CDSW_PROJECT_ID", raising=False)
    monkeypatch.delenv("LOOP_DEPLOY_TARGET", raising=False)
    assert resolve_target(target_args()) == "local"


def test_target_env_local(monkeypatch):
    monkeypatch.setenv("LOOP_DEPLOY_TARGET", "local")
    assert resolve_target(target_args()) == "local"


def test_target_flag_wins_over_env(monkeypatch):
    monkeypatch.setenv("LOOP_DEPLOY_TARGET", "cml")
    assert resolve_target(target_args("local")) == "local"


def test_target_invalid_env_raises(monkeypatch):
    monkeypatch.setenv("LOOP_DEPLOY_TARGET", "cloud")
    with pytest.raises(InvalidInputError):
        resolve_target(target_args())


def test_target_cml_without_cmlapi_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "cmlapi", None)
    monkeypatch.setenv("CDSW_DOMAIN", "ml.example.test")
    with pytest.raises(InvalidInputError, match="ml.example.test/api/v2/python.tar.gz"):
        resolve_target(target_args("cml"))
