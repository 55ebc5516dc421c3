"""The whole loop on the real data, run once by module3/run_pipeline.py.

One run is shared by the tests that only read its results: the drift verdict,
the labeled batch, the MLflow run, the registry and the scoring server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import free_port, job_env, run_script, stop_scoring_servers

pytestmark = pytest.mark.loop


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory, bank_csv, mlflow_server):
    root = tmp_path_factory.mktemp("loop")
    env = job_env(root, mlflow_server.uri, LOOP_SERVE_PORT=str(free_port()))
    result = run_script("pipeline", "--source", str(bank_csv), env=env, timeout=1500)
    yield root, result, env
    stop_scoring_servers(root)


def read_json(root: Path, name: str) -> dict:
    return json.loads((root / "outputs" / name).read_text())


def test_loop_exits_0_with_summary(loop_run):
    _, result, _ = loop_run

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "!!! DATA DRIFT DETECTED! !!!" in result.stdout
    assert "=== Summary" in result.stdout
    assert "drifted columns:        age, job" in result.stdout
    assert "endpoint:               http://127.0.0.1:" in result.stdout


def test_drift_status_names_age_and_job(loop_run):
    root, _, _ = loop_run
    status = read_json(root, "drift_status.json")

    assert status["drift_detected"] is True
    assert status["drifted_columns"] == ["age", "job"]


def test_labeled_batch_is_the_checked_batch(loop_run):
    root, _, _ = loop_run
    batch = pd.read_csv(root / "data" / "production_batch_01.csv")
    labeled = pd.read_csv(root / "data" / "new_labeled_batch_01.csv")

    assert labeled["record_id"].tolist() == batch["record_id"].tolist()
    pd.testing.assert_frame_equal(labeled.drop(columns="y"), batch)


def test_run_has_metrics_and_model(loop_run, mlflow_server):
    from mlflow.tracking import MlflowClient

    root, _, _ = loop_run
    info = read_json(root, "retrain_run_info.json")
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(info["run_id"])
    artifacts = [entry.path for entry in client.list_artifacts(info["run_id"], "model")]

    assert run.info.run_name == "retrain_on_drift_v2"
    assert run.data.metrics
    assert "model/MLmodel" in artifacts
    assert info["model_uri"] == f"runs:/{info['run_id']}/model"
    assert info["experiment_name"] == "banking_retraining_pipeline"


def test_v2_beats_v1_on_new_rows(loop_run):
    root, _, _ = loop_run
    metrics = read_json(root, "retrain_run_info.json")["metrics"]

    assert metrics["v2"]["new_holdout"]["f1_yes"] > metrics["v1"]["new_holdout"]["f1_yes"]


def test_registry_version_and_alias(loop_run, mlflow_server):
    from mlflow.tracking import MlflowClient

    root, _, _ = loop_run
    deployment = read_json(root, "deployment_info.json")
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    version = client.get_model_version_by_alias("banking_campaign_predictor_v2", "champion")

    assert deployment["deployed"] is True
    assert str(version.version) == str(deployment["version"])
    assert version.run_id == read_json(root, "retrain_run_info.json")["run_id"]


def test_scoring_server_answers_for_batch(loop_run):
    root, _, _ = loop_run
    deployment = read_json(root, "deployment_info.json")
    batch = pd.read_csv(root / "data" / "production_batch_01.csv").head(25)
    features = batch.drop(columns="record_id")
    body = {"dataframe_split": json.loads(features.to_json(orient="split", index=False))}

    response = requests.post(deployment["endpoint_url"], json=body, timeout=30)

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 25
    assert set(predictions) <= {"yes", "no"}


def test_clean_batch_ends_loop_without_retrain(loop_run, prepared_data, tmp_path):
    root, _, env = loop_run
    runs_before = read_json(root, "retrain_run_info.json")["run_id"]
    # The deployed model was trained on the old rows plus the labeled batch,
    # so a clean batch is a random sample of both.
    trained_on = pd.concat(
        [
            pd.read_csv(prepared_data),
            pd.read_csv(root / "data" / "new_labeled_batch_01.csv").drop(columns="record_id"),
        ]
    )
    sample = trained_on.drop(columns="y").sample(3000, random_state=21)
    batch = tmp_path / "clean.csv"
    sample.to_csv(batch, index=False)

    result = run_script("pipeline", "--current", str(batch), env=env, timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "No data drift: nothing to retrain" in result.stdout
    assert read_json(root, "retrain_run_info.json")["run_id"] == runs_before
