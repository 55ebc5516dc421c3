"""Job 1: batch simulation, the verdict rule and the files the check writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import job_env, run_script
from retraining.data import FEATURE_COLUMNS, load_table
from retraining.drift import (
    NEW_JOB_CATEGORIES,
    DriftSettings,
    check_drift,
    simulate_batch,
)

BANNER = "!!! DATA DRIFT DETECTED! !!!"


@pytest.fixture(scope="module")
def training(prepared_data) -> pd.DataFrame:
    return load_table(prepared_data, "training data", require_target=True).frame


@pytest.fixture(scope="module")
def checked_template(tmp_path_factory, prepared_data):
    """A workspace in which job 1 ran once on the default simulated batch."""
    root = tmp_path_factory.mktemp("checked")
    (root / "data").mkdir()
    shutil.copy(prepared_data, root / "data" / "banking_train.csv")
    result = run_script(1, env=job_env(root))
    return root, result


def test_simulation_is_deterministic(training):
    first, first_outcomes = simulate_batch(training, 500, seed=7)
    second, second_outcomes = simulate_batch(training, 500, seed=7)
    other, _ = simulate_batch(training, 500, seed=8)

    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first_outcomes, second_outcomes)
    assert not first["record_id"].equals(other["record_id"])


def test_simulation_shifts_age_and_job(training):
    batch, outcomes = simulate_batch(training, 3000, seed=42)

    assert batch["age"].mean() > training["age"].mean() + 8
    assert set(NEW_JOB_CATEGORIES) <= set(batch["job"])
    assert "y" not in batch.columns
    assert batch["record_id"].is_unique
    assert list(outcomes["record_id"]) == list(batch["record_id"])


def test_simulation_rejects_oversized_batch(training):
    from retraining.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--batch-size"):
        simulate_batch(training.head(100), 101, seed=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sample_has_no_drift(training, seed):
    sample = training.sample(3000, random_state=seed)

    result = check_drift(training, sample, DriftSettings())

    assert not result.drift_detected
    assert result.drifted_columns == []


def test_empty_batch_column_counts_as_drift(training):
    sample = training.sample(2000, random_state=3).copy()
    sample["poutcome"] = np.nan

    result = check_drift(training, sample, DriftSettings())

    drifted = {column.column: column for column in result.drifted_columns}
    assert result.drift_detected
    assert "poutcome" in drifted
    assert drifted["poutcome"].note == "no values in the batch"


def test_default_batch_exits_1_with_banner(checked_template):
    _, result = checked_template

    assert result.returncode == 1, result.stderr
    assert BANNER in result.stdout.splitlines()
    assert "age:" in result.stdout
    assert "job:" in result.stdout


def test_status_names_age_and_job(checked_template):
    root, _ = checked_template
    status = json.loads((root / "outputs" / "drift_status.json").read_text())

    assert status["drift_detected"] is True
    assert {"age", "job"} <= set(status["drifted_columns"])
    assert status["columns"]["age"]["method"] == "wasserstein"
    assert status["columns"]["job"]["score"] >= status["columns"]["job"]["threshold"]
    assert set(NEW_JOB_CATEGORIES) <= set(status["unseen_categories"]["job"])
    assert status["batch"]["rows"] == 3000
    assert status["reference"]["rows"] == 45_211
    assert len(status["batch"]["sha256"]) == 64
    assert status["thresholds"]["min_batch_rows"] == 1000


def test_report_and_history_written(checked_template):
    root, _ = checked_template
    report = (root / "outputs" / "1_drift_report.html").read_text()
    history = sorted((root / "outputs" / "history").iterdir())

    for column in ("age", "job", "balance", "poutcome"):
        assert f"Drift in column '{column}'" in report
    assert report.count("Data drift detected.") == 2
    assert len([p for p in history if p.name.endswith("_drift_status.json")]) == 1
    assert len([p for p in history if p.name.endswith("_drift_report.html")]) == 1


def test_batch_file_has_ids_and_no_target(checked_template):
    root, _ = checked_template
    batch = pd.read_csv(root / "data" / "production_batch_01.csv")

    assert list(batch.columns) == ["record_id"] + FEATURE_COLUMNS
    assert batch["record_id"].is_unique
    assert (root / "data" / "production_batch_01_outcomes.csv").exists()


def test_rerun_reuses_stored_batch(checked_template, tmp_path):
    template, _ = checked_template
    root = tmp_path / "copy"
    shutil.copytree(template, root)

    again = run_script(1, env=job_env(root))

    assert again.returncode == 1, again.stderr
    assert sorted(p.name for p in (root / "data").glob("production_batch_*.csv")) == [
        "production_batch_01.csv",
        "production_batch_01_outcomes.csv",
    ]
    assert len(list((root / "outputs" / "history").glob("*_drift_status.json"))) == 2


def test_current_random_sample_exits_0(prepared_workspace, training, tmp_path):
    batch = tmp_path / "sample.csv"
    training.drop(columns="y").sample(3000, random_state=11).to_csv(batch, index=False)

    result = run_script(1, "--current", str(batch), env=job_env(prepared_workspace))
    status = json.loads((prepared_workspace / "outputs" / "drift_status.json").read_text())

    assert result.returncode == 0, result.stderr
    assert "No data drift" in result.stdout
    assert status["drift_detected"] is False
    assert status["batch"]["simulated"] is False
    assert status["batch"]["id_column"] == "record_id"
    assert not list((prepared_workspace / "data").glob("production_batch_*"))


def test_current_with_custom_id_column(prepared_workspace, training, tmp_path):
    batch = tmp_path / "drifted.csv"
    frame = training.drop(columns="y").sample(1500, random_state=5).copy()
    frame["age"] += 20
    frame.insert(0, "customer", [f"c{i}" for i in range(len(frame))])
    frame.to_csv(batch, index=False)

    result = run_script(
        1, "--current", str(batch), "--id-column", "customer", env=job_env(prepared_workspace)
    )
    status = json.loads((prepared_workspace / "outputs" / "drift_status.json").read_text())

    assert result.returncode == 1, result.stderr
    assert status["drifted_columns"] == ["age"]
    assert status["batch"]["id_column"] == "customer"
    assert status["batch"]["extra_columns"] == []


def test_small_batch_rejected_with_option(checked_template, training, tmp_path):
    template, _ = checked_template
    root = tmp_path / "copy"
    shutil.copytree(template, root)
    before = (root / "outputs" / "drift_status.json").read_bytes()
    batch = tmp_path / "tiny.csv"
    training.drop(columns="y").head(1).to_csv(batch, index=False)

    result = run_script(1, "--current", str(batch), env=job_env(root))

    assert result.returncode == 2
    assert "minimum of 1000" in result.stderr
    assert "--min-batch-rows" in result.stderr
    assert (root / "outputs" / "drift_status.json").read_bytes() == before


def test_reference_follows_deployed_model(prepared_workspace):
    from retraining.config import Workspace
    from retraining.drift_status import reference_files

    workspace = Workspace(prepared_workspace)
    outputs = prepared_workspace / "outputs"
    outputs.mkdir()
    info = {
        "deployed": True,
        "training_files": [
            {"path": "data/banking_train.csv"},
            {"path": "data/new_labeled_batch_01.csv"},
        ],
    }
    (outputs / "deployment_info.json").write_text(json.dumps(info))
    shutil.copy(
        prepared_workspace / "data" / "banking_train.csv",
        prepared_workspace / "data" / "new_labeled_batch_01.csv",
    )
    deployed = reference_files(workspace)
    info["deployed"] = False
    (outputs / "deployment_info.json").write_text(json.dumps(info))
    not_deployed = reference_files(workspace)

    assert [p.name for p in deployed] == ["banking_train.csv", "new_labeled_batch_01.csv"]
    assert [p.name for p in not_deployed] == ["banking_train.csv"]


def test_missing_training_data_exits_2(workspace):
    result = run_script(1, env=job_env(workspace))

    assert result.returncode == 2
    assert "0_prepare_data.py" in result.stderr


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--numeric-threshold", "-1"),
        ("--categorical-threshold", "nan"),
        ("--numeric-threshold", "inf"),
        ("--min-batch-rows", "0"),
        ("--min-drifted-columns", "-2"),
        ("--batch-size", "many"),
    ],
)
def test_invalid_rule_flag_exits_2(prepared_workspace, flag, value):
    result = run_script(1, flag, value, env=job_env(prepared_workspace))

    assert result.returncode == 2
    assert flag in result.stderr
    assert repr(value) in result.stderr or value in result.stderr
    assert not (prepared_workspace / "outputs" / "drift_status.json").exists()


def test_runner_rejects_bad_target_first(prepared_workspace):
    result = run_script(
        "pipeline", env=job_env(prepared_workspace, LOOP_DEPLOY_TARGET="bogus")
    )

    assert result.returncode == 2
    assert "'bogus'" in result.stderr
    assert not list((prepared_workspace / "data").glob("production_batch_*"))


def test_missing_deployed_training_file_exits_2(prepared_workspace):
    outputs = prepared_workspace / "outputs"
    outputs.mkdir()
    info = {
        "deployed": True,
        "training_files": [
            {"path": "data/banking_train.csv"},
            {"path": "data/new_labeled_batch_07.csv"},
        ],
    }
    (outputs / "deployment_info.json").write_text(json.dumps(info))

    result = run_script(1, env=job_env(prepared_workspace))

    assert result.returncode == 2
    assert "new_labeled_batch_07.csv" in result.stderr
    assert "deployment_info.json" in result.stderr
