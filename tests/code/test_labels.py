"""Job 2: business rules, real labels, and labeling exactly the checked batch."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from conftest import job_env, run_script
from retraining.data import FEATURE_COLUMNS
from retraining.labels import apply_business_rules

KNOWN_JOBS = {"admin.", "retired", "technician"}


def customer(**changes) -> dict:
    row = {
        "age": 40,
        "job": "technician",
        "marital": "married",
        "education": "secondary",
        "default": "no",
        "balance": 500,
        "housing": "yes",
        "loan": "no",
        "contact": "cellular",
        "day": 5,
        "month": "may",
        "duration": 100,
        "campaign": 1,
        "pdays": -1,
        "previous": 0,
        "poutcome": "unknown",
    }
    row.update(changes)
    return row


@pytest.mark.parametrize(
    "changes, before, after",
    [
        ({}, "no", "no"),
        ({}, "yes", "yes"),
        ({"age": 65, "balance": 2000}, "no", "yes"),
        ({"age": 65, "balance": 2000, "loan": "yes"}, "no", "no"),
        ({"age": 65, "balance": 999}, "no", "no"),
        ({"job": "gig-worker", "housing": "no"}, "no", "yes"),
        ({"job": "gig-worker", "housing": "yes"}, "no", "no"),
        ({"campaign": 5}, "yes", "no"),
        ({"age": 70, "balance": 5000, "campaign": 6}, "no", "no"),
    ],
)
def test_business_rules_table(changes, before, after):
    batch = pd.DataFrame([customer(**changes)])

    labels = apply_business_rules(batch, pd.Series([before]), KNOWN_JOBS)

    assert labels.tolist() == [after]


def test_labels_exactly_the_checked_batch(checked):
    result = run_script(2, env=job_env(checked))
    batch = pd.read_csv(checked / "data" / "production_batch_01.csv")
    labeled = pd.read_csv(checked / "data" / "new_labeled_batch_01.csv")
    manifest = json.loads((checked / "data" / "new_labeled_batch_01.json").read_text())

    assert result.returncode == 0, result.stderr
    assert "yes-rate" in result.stdout
    assert list(labeled.columns) == ["record_id"] + FEATURE_COLUMNS + ["y"]
    pd.testing.assert_frame_equal(labeled.drop(columns="y"), batch)
    assert set(labeled["y"]) == {"yes", "no"}
    assert manifest["rows"] == 3000
    assert manifest["yes_rate"] > manifest["yes_rate_before_rules"]


def test_labeling_is_deterministic_and_rerun_safe(checked, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(checked, other)

    first = run_script(2, env=job_env(checked))
    again = run_script(2, env=job_env(checked))
    elsewhere = run_script(2, env=job_env(other))

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "already labeled" in again.stdout
    assert sorted(p.name for p in (checked / "data").glob("new_labeled_batch_*")) == [
        "new_labeled_batch_01.csv",
        "new_labeled_batch_01.json",
    ]
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (checked / "data" / "new_labeled_batch_01.csv").read_bytes() == (
        other / "data" / "new_labeled_batch_01.csv"
    ).read_bytes()


def test_changed_batch_is_not_labeled(checked):
    batch_path = checked / "data" / "production_batch_01.csv"
    batch_path.write_text(batch_path.read_text().replace("management", "managers", 1))

    result = run_script(2, env=job_env(checked))

    assert result.returncode == 2
    assert "sha256" in result.stderr
    assert "1_check_drift.py" in result.stderr
    assert not list((checked / "data").glob("new_labeled_batch_*"))


def test_no_drift_labels_nothing_unless_forced(checked):
    status_path = checked / "outputs" / "drift_status.json"
    status = json.loads(status_path.read_text())
    status["drift_detected"] = False
    status_path.write_text(json.dumps(status))

    skipped = run_script(2, env=job_env(checked))
    nothing = list((checked / "data").glob("new_labeled_batch_*"))
    forced = run_script(2, "--force", env=job_env(checked))

    assert skipped.returncode == 0, skipped.stderr
    assert "nothing to label" in skipped.stdout
    assert nothing == []
    assert forced.returncode == 0, forced.stderr
    assert (checked / "data" / "new_labeled_batch_01.csv").exists()


def test_missing_status_names_job_1(prepared_workspace):
    result = run_script(2, env=job_env(prepared_workspace))

    assert result.returncode == 2
    assert "1_check_drift.py" in result.stderr


@pytest.fixture
def current_batch(prepared_workspace, prepared_data, tmp_path):
    """A user batch (custom id column) that job 1 checked, with its true outcomes."""
    train = pd.read_csv(prepared_data).sample(1200, random_state=4).reset_index(drop=True)
    train["age"] += 15
    train.insert(0, "customer", [f"c{i}" for i in range(len(train))])
    batch_path = tmp_path / "batch.csv"
    train.drop(columns="y").to_csv(batch_path, index=False)
    result = run_script(
        1, "--current", str(batch_path), "--id-column", "customer",
        env=job_env(prepared_workspace),
    )
    assert result.returncode == 1, result.stderr
    return prepared_workspace, train


@pytest.mark.parametrize(
    "spelling", [{"yes": "yes", "no": "no"}, {"yes": "Y", "no": "n"}, {"yes": "TRUE", "no": "False"}, {"yes": "1", "no": "0"}]
)
def test_labels_file_spellings(current_batch, tmp_path, spelling):
    root, train = current_batch
    labels = pd.DataFrame(
        {"customer": train["customer"], "y": train["y"].map(spelling)}
    ).sample(frac=1, random_state=1)
    labels_path = tmp_path / "labels.csv"
    labels.to_csv(labels_path, index=False)

    result = run_script(2, "--labels", str(labels_path), env=job_env(root))
    labeled = pd.read_csv(root / "data" / "new_labeled_batch_01.csv")

    assert result.returncode == 0, result.stderr
    assert labeled["record_id"].tolist() == train["customer"].tolist()
    assert labeled["y"].tolist() == train["y"].tolist()


def test_simulated_labels_need_outcomes(current_batch):
    root, _ = current_batch

    result = run_script(2, env=job_env(root))

    assert result.returncode == 2
    assert "--labels" in result.stderr


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda frame: frame.iloc[:-3], "no label for 3 of 1200"),
        (lambda frame: frame.assign(y=frame["y"].where(frame.index != 7, "maybe")), "'maybe'"),
        (lambda frame: frame.assign(y=frame["y"].where(frame.index != 2, "")), "invalid or empty"),
        (lambda frame: pd.concat([frame, frame.head(1)]), "more than one label"),
        (lambda frame: frame.drop(columns="customer"), "missing column(s) ['customer']"),
    ],
)
def test_bad_labels_file_exits_2(current_batch, tmp_path, mutate, message):
    root, train = current_batch
    labels_path = tmp_path / "labels.csv"
    mutate(train[["customer", "y"]]).to_csv(labels_path, index=False)

    result = run_script(2, "--labels", str(labels_path), env=job_env(root))

    assert result.returncode == 2
    assert message in result.stderr
    assert not list((root / "data").glob("new_labeled_batch_*"))


def test_changed_labeled_batch_is_rejected(checked):
    from retraining.config import Workspace
    from retraining.errors import InvalidInputError
    from retraining.labels import labeled_batches

    first = run_script(2, env=job_env(checked))
    labeled = checked / "data" / "new_labeled_batch_01.csv"
    labeled.write_text(labeled.read_text().replace(",no\n", ",yes\n", 2))

    again = run_script(2, env=job_env(checked))

    assert first.returncode == 0, first.stderr
    assert again.returncode == 2
    assert "changed after job 2 wrote it" in again.stderr
    with pytest.raises(InvalidInputError, match="new_labeled_batch_01.csv"):
        labeled_batches(Workspace(checked))


def test_labels_for_labeled_batch_warn(checked, tmp_path):
    first = run_script(2, env=job_env(checked))
    batch = pd.read_csv(checked / "data" / "production_batch_01.csv")
    labels_path = tmp_path / "labels.csv"
    pd.DataFrame({"record_id": batch["record_id"], "y": "yes"}).to_csv(labels_path, index=False)

    again = run_script(2, "--labels", str(labels_path), env=job_env(checked))

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "was not applied" in again.stderr
    assert len(list((checked / "data").glob("new_labeled_batch_*.csv"))) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"drift_detected": "false"},
        {"batch": {"path": 5, "sha256": "0" * 64}},
    ],
)
def test_mistyped_status_exits_2(checked, change):
    status_path = checked / "outputs" / "drift_status.json"
    status = json.loads(status_path.read_text())
    status.update(change)
    status_path.write_text(json.dumps(status))

    result = run_script(2, env=job_env(checked))

    assert result.returncode == 2
    assert "drift_status.json is invalid" in result.stderr
    assert not list((checked / "data").glob("new_labeled_batch_*"))
