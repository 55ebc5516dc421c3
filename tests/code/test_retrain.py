"""Job 3 (retrain) on the real data, logging to a real MLflow server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import free_port, job_env, run_script, write_batch_manifest
from retraining import retrain
from retraining.config import EXPERIMENT_NAME
from retraining.errors import InvalidInputError
from retraining.tracking import check_tracking_uri, safe_uri

BATCH_ROWS = 2000


def write_labeled_batch(workspace: Path, number: int, seed: int) -> Path:
    """Write data/new_labeled_batch_NN.csv and drift_status.json from training rows.

    Stands in for jobs 1 and 2: the rows are a sample of banking_train.csv with
    a record_id, and drift_status.json names the unlabeled batch.
    """
    data = workspace / "data"
    rows = pd.read_csv(data / "banking_train.csv").sample(BATCH_ROWS, random_state=seed)
    rows.insert(0, "record_id", [f"b{number}-{index}" for index in range(len(rows))])
    batch = data / f"production_batch_{number:02d}.csv"
    rows.drop(columns="y").to_csv(batch, index=False)
    labeled = data / f"new_labeled_batch_{number:02d}.csv"
    rows.to_csv(labeled, index=False)
    write_batch_manifest(labeled, batch)
    status = {
        "drift_detected": True,
        "batch": {"path": batch.relative_to(workspace).as_posix(), "rows": len(rows)},
    }
    outputs = workspace / "outputs"
    outputs.mkdir(exist_ok=True)
    (outputs / "drift_status.json").write_text(json.dumps(status), encoding="utf-8")
    return labeled


def read_run_info(workspace: Path) -> dict:
    path = workspace / "outputs" / "retrain_run_info.json"
    return json.loads(path.read_text(encoding="utf-8"))


def runs_with_role(uri: str, role: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.role = '{role}'"
    )


@pytest.fixture(scope="module")
def retrain_workspace(tmp_path_factory, prepared_data) -> Path:
    root = tmp_path_factory.mktemp("retrain")
    (root / "data").mkdir()
    (root / "data" / "banking_train.csv").write_bytes(prepared_data.read_bytes())
    write_labeled_batch(root, 1, seed=1)
    return root


@pytest.fixture(scope="module")
def first_run(retrain_workspace, mlflow_server) -> dict:
    env = job_env(retrain_workspace, mlflow_server.uri)
    started = time.monotonic()
    result = run_script(3, env=env)
    assert result.returncode == 0, result.stderr
    info = read_run_info(retrain_workspace)
    info["_stdout"] = result.stdout
    info["_seconds"] = time.monotonic() - started
    return info


@pytest.fixture(scope="module")
def rerun(retrain_workspace, mlflow_server, first_run) -> dict:
    retrain_runs = len(runs_with_role(mlflow_server.uri, "retrain"))
    result = run_script(3, env=job_env(retrain_workspace, mlflow_server.uri))
    assert result.returncode == 0, result.stderr
    return {
        "info": read_run_info(retrain_workspace),
        "runs_before": retrain_runs,
        "runs_after": len(runs_with_role(mlflow_server.uri, "retrain")),
    }


@pytest.fixture(scope="module")
def second_batch_run(retrain_workspace, mlflow_server, rerun) -> dict:
    write_labeled_batch(retrain_workspace, 2, seed=2)
    result = run_script(3, env=job_env(retrain_workspace, mlflow_server.uri))
    assert result.returncode == 0, result.stderr
    return read_run_info(retrain_workspace)


def test_run_info_has_v2_new_holdout_f1(first_run):
    assert 0 < first_run["metrics"]["v2"]["new_holdout"]["f1_yes"] <= 1


def test_run_info_has_v1_old_holdout_roc_auc(first_run):
    assert 0.5 < first_run["metrics"]["v1"]["old_holdout"]["roc_auc"] <= 1


def test_run_info_new_holdout_rows(first_run):
    assert first_run["metrics"]["v2"]["new_holdout"]["rows"] == int(BATCH_ROWS * 0.3)


def test_run_info_lists_training_files(first_run):
    paths = [item["path"] for item in first_run["training_files"]]
    assert paths == ["data/banking_train.csv", "data/new_labeled_batch_01.csv"]


def test_run_info_model_uri(first_run):
    assert first_run["model_uri"] == f"runs:/{first_run['run_id']}/model"


def test_summary_prints_run_id(first_run):
    assert first_run["run_id"] in first_run["_stdout"]


def test_run_artifacts_have_mlmodel(first_run, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    listed = [item.path for item in client.list_artifacts(first_run["run_id"], "model")]
    assert "model/MLmodel" in listed


def test_run_artifacts_have_drift_status(first_run, mlflow_server):
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    listed = [item.path for item in client.list_artifacts(first_run["run_id"], "drift")]
    assert "drift/drift_status.json" in listed


def test_run_tagged_with_inputs_hash(first_run, mlflow_server):
    run = MlflowClient(tracking_uri=mlflow_server.uri).get_run(first_run["run_id"])
    tag = run.data.tags["training_inputs_sha256"]
    assert tag == first_run["training_inputs_sha256"]


def test_rerun_reuses_run_id(first_run, rerun):
    assert rerun["info"]["run_id"] == first_run["run_id"]


def test_rerun_logs_no_new_run(rerun):
    assert rerun["runs_after"] == rerun["runs_before"]


def test_rerun_keeps_previous_info(retrain_workspace, rerun):
    history = list((retrain_workspace / "outputs" / "history").glob("retrain_run*"))
    assert len(history) >= 1


def test_new_batch_logs_new_run(first_run, second_batch_run):
    assert second_batch_run["run_id"] != first_run["run_id"]


def test_new_batch_reuses_baseline(first_run, second_batch_run):
    assert second_batch_run["baseline_run_id"] == first_run["baseline_run_id"]


def test_baseline_logged_once(second_batch_run, mlflow_server):
    train_sha256 = second_batch_run["training_files"][0]["sha256"]
    baselines = [
        run
        for run in runs_with_role(mlflow_server.uri, "baseline")
        if run.data.tags.get("train_data_sha256") == train_sha256
        and run.data.tags.get("include_duration") == "false"
    ]
    assert len(baselines) == 1


def test_newest_batch_is_second(second_batch_run):
    assert second_batch_run["newest_batch"] == "data/new_labeled_batch_02.csv"


def test_chain_mode_nothing_to_retrain(
    retrain_workspace, mlflow_server, second_batch_run
):
    env = job_env(retrain_workspace, mlflow_server.uri, LOOP_CHAIN_MODE="1")
    result = run_script(3, env=env)
    assert result.returncode == 0, result.stderr
    assert "nothing to retrain" in result.stdout


@pytest.fixture(scope="module")
def duration_run(tmp_path_factory, prepared_data, mlflow_server) -> dict:
    """Job 3 with --include-duration in a workspace without labeled batches."""
    root = tmp_path_factory.mktemp("duration")
    (root / "data").mkdir()
    (root / "data" / "banking_train.csv").write_bytes(prepared_data.read_bytes())
    result = run_script(3, "--include-duration", env=job_env(root, mlflow_server.uri))
    assert result.returncode == 0, result.stderr
    info = read_run_info(root)
    info["_stdout"] = result.stdout
    return info


def test_duration_flag_recorded(duration_run):
    assert duration_run["include_duration"] is True


def signature_inputs(uri: str, run_id: str, folder: Path) -> list[str]:
    from mlflow.models import Model

    client = MlflowClient(tracking_uri=uri)
    path = client.download_artifacts(run_id, "model/MLmodel", str(folder))
    return Model.load(path).signature.inputs.input_names()


def test_duration_in_signature(duration_run, mlflow_server, tmp_path):
    names = signature_inputs(mlflow_server.uri, duration_run["run_id"], tmp_path)
    assert "duration" in names


def test_default_signature_has_no_duration(first_run, mlflow_server, tmp_path):
    names = signature_inputs(mlflow_server.uri, first_run["run_id"], tmp_path)
    assert "duration" not in names


def test_no_batch_new_holdout_null(duration_run):
    assert duration_run["metrics"]["v2"]["new_holdout"] is None


def test_no_batch_newest_batch_null(duration_run):
    assert duration_run["newest_batch"] is None


def test_no_batch_summary_says_so(duration_run):
    assert "new_holdout: none" in duration_run["_stdout"]


def test_missing_training_data_exit_2(workspace):
    result = run_script(3, env=job_env(workspace))
    assert result.returncode == 2
    assert "0_prepare_data.py" in result.stderr


def test_unreachable_tracking_exit_3(prepared_workspace):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_script(
        3, "--mlflow-timeout", "3", env=job_env(prepared_workspace, uri), timeout=120
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 3
    assert uri in result.stderr
    assert elapsed < 60


def test_invalid_fraction_exit_2(prepared_workspace):
    env = job_env(prepared_workspace, LOOP_OLD_HOLDOUT_FRACTION="1.5")
    result = run_script(3, env=env)
    assert result.returncode == 2
    assert "LOOP_OLD_HOLDOUT_FRACTION" in result.stderr


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("bogus://x", "bogus://x"),
        ("http://127.0.0.1:notaport", "invalid port"),
    ],
)
def test_unsupported_tracking_uri_exit_2(prepared_workspace, uri, named):
    started = time.monotonic()
    result = run_script(3, env=job_env(prepared_workspace, uri), timeout=120)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://user:secret@mlflow.example.test/prefix",
        "sqlite:////tmp/a/mlflow.db",
        "postgresql://user@db.example.test/mlflow",
        "mysql+pymysql://user@db.example.test/mlflow",
        "databricks",
        "databricks://profile",
    ],
)
def test_check_tracking_uri_accepts(uri):
    check_tracking_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "bogus://x",
        "http://127.0.0.1:notaport",
        "http://127.0.0.1:99999",
        "http://:5000",
        "/tmp/mlruns",
        "file:///tmp/mlruns",
    ],
)
def test_check_tracking_uri_rejects(uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(InvalidInputError):
        check_tracking_uri(uri)


def test_check_tracking_uri_file_store_opt_in(monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_tracking_uri("file:///tmp/mlruns")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://user:secret@host:5000/path?token=x", "http://host:5000/path"),
        ("https://host", "https://host"),
        ("sqlite:////tmp/a/mlflow.db", "sqlite:////tmp/a/mlflow.db"),
    ],
)
def test_safe_uri_strips_credentials(uri, expected):
    assert safe_uri(uri) == expected


def make_frame(labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"x": range(len(labels)), "y": labels})


def test_split_holdout_stratified():
    frame = make_frame(["yes"] * 20 + ["no"] * 80)
    _, holdout = retrain.split_holdout(frame, 0.3, seed=42)
    assert (holdout["y"] == "yes").sum() == 6


def test_split_holdout_tiny_frame():
    train, holdout = retrain.split_holdout(make_frame(["yes", "no", "no"]), 0.3, 42)
    assert (len(train), len(holdout)) == (2, 1)


def test_split_holdout_one_row_raises():
    with pytest.raises(ValueError):
        retrain.split_holdout(make_frame(["yes"]), 0.3, 42)


def test_inputs_hash_changes_with_rows():
    first = retrain.InputFile("data/a.csv", "0" * 64, make_frame(["yes", "no"]))
    second = retrain.InputFile("data/a.csv", "0" * 64, make_frame(["yes"]))
    assert retrain.inputs_sha256([first]) != retrain.inputs_sha256([second])


def test_metrics_flatten_round_trip():
    scores = {"f1_yes": 0.5, "precision_yes": 0.4, "recall_yes": 0.6}
    scores.update({"roc_auc": 0.8, "rows": 10})
    metrics = {
        "v1": {"old_holdout": scores, "new_holdout": None},
        "v2": {"old_holdout": scores, "new_holdout": None},
    }
    flat = retrain.flatten_metrics(metrics)
    assert retrain.unflatten_metrics(flat) == metrics


def test_feature_columns_leave_out_duration():
    assert "duration" not in retrain.model_feature_columns(include_duration=False)


def test_batch_without_manifest_is_not_trained_on(prepared_workspace):
    from retraining.config import Workspace
    from retraining.retrain import load_inputs

    complete = write_labeled_batch(prepared_workspace, 1, seed=5)
    orphan = prepared_workspace / "data" / "new_labeled_batch_02.csv"
    orphan.write_bytes(complete.read_bytes())

    paths = [item.path for item in load_inputs(Workspace(prepared_workspace))]

    assert paths == ["data/banking_train.csv", "data/new_labeled_batch_01.csv"]
