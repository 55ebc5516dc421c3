"""Bad and unusual input files, run through the real jobs as subprocesses.

Every rejected input must exit 2 with a message that names the file and the
problem, and leave every file in the workspace as it was. Every accepted
variation (UCI's quoted ``;`` format, BOM, CRLF, spaces, letter case, column
order, extra columns, missing values, duplicates) must give the same result as
the clean file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import job_env, run_script
from retraining.data import CATEGORICAL_COLUMNS, FEATURE_COLUMNS, load_table
from retraining.drift import DriftSettings, check_drift


def snapshot(root: Path) -> dict[str, str]:
    """Return the SHA-256 of every file under ``root`` except the lock files."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".locks" not in path.parts
    }


@pytest.fixture(scope="module")
def training(prepared_data) -> pd.DataFrame:
    return load_table(prepared_data, "training data", require_target=True).frame


def write_batch(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def run_rejected(script, root: Path, *args: str) -> str:
    """Run a job that must reject its input; return stderr after the checks."""
    before = snapshot(root)

    result = run_script(script, *args, env=job_env(root), timeout=300)

    assert result.returncode == 2, result.stderr
    assert snapshot(root) == before
    assert "Traceback" not in result.stderr
    return result.stderr


# Missing, empty and header-only files.

EMPTY_CASES = {
    "missing": (None, "not found"),
    "empty": (b"", "is empty"),
    "blank_lines": (b"\r\n\r\n", "is empty"),
    "bom_only": (b"\xef\xbb\xbf", "is empty"),
    "header_only": (",".join(FEATURE_COLUMNS).encode() + b"\n", "header but no rows"),
}


@pytest.mark.parametrize("case", EMPTY_CASES)
def test_batch_missing_or_empty_exits_2(checked, tmp_path, case):
    content, message = EMPTY_CASES[case]
    batch = tmp_path / "batch.csv"
    if content is not None:
        batch.write_bytes(content)

    stderr = run_rejected(1, checked, "--current", str(batch))

    assert str(batch) in stderr
    assert message in stderr


@pytest.mark.parametrize("case", ["missing", "empty", "header_only"])
def test_reference_missing_or_empty_exits_2(checked, case):
    content, message = EMPTY_CASES[case]
    reference = checked / "data" / "banking_train.csv"
    reference.unlink()
    if content is not None:
        reference.write_bytes(content)

    stderr = run_rejected(1, checked)

    assert str(reference) in stderr
    assert message in stderr
    if case == "missing":
        assert "0_prepare_data.py" in stderr


# UCI's format, BOM, CRLF, spaces, letter case, column order and extra columns.


def messy_text(frame: pd.DataFrame) -> bytes:
    """Write ``frame`` the hard way: UCI's quoted ``;`` format, BOM, CRLF,
    reversed columns, extra columns, spaces around everything, mixed case."""
    messy = frame[FEATURE_COLUMNS[::-1]].copy()
    messy.insert(3, "id", range(len(messy)))
    messy["timestamp"] = "2024-05-01T10:00:00"
    for column in CATEGORICAL_COLUMNS:
        upper = messy.index % 3 == 0
        messy[column] = messy[column].astype(str)
        messy.loc[upper, column] = messy.loc[upper, column].str.upper()
    lines = [";".join(f' "{name.upper()}" ' for name in messy.columns)]
    for row in messy.itertuples(index=False):
        lines.append(";".join(f' "{value}" ' for value in row))
    return b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"


@pytest.fixture(scope="module")
def sample(training) -> pd.DataFrame:
    return training.drop(columns="y").sample(1500, random_state=21).reset_index(drop=True)


@pytest.fixture(scope="module")
def clean_and_messy(tmp_path_factory, prepared_data, sample):
    """Job 1 run on one sample written cleanly and written messily."""
    runs = {}
    for name in ("clean", "messy"):
        root = tmp_path_factory.mktemp(f"format-{name}")
        (root / "data").mkdir()
        shutil.copy(prepared_data, root / "data" / "banking_train.csv")
        batch = root.parent / f"{name}-batch.csv"
        if name == "clean":
            write_batch(sample, batch)
        else:
            batch.write_bytes(messy_text(sample))
        result = run_script(1, "--current", str(batch), env=job_env(root))
        status = json.loads((root / "outputs" / "drift_status.json").read_text())
        runs[name] = (result, status)
    return runs


def test_messy_format_exits_like_clean(clean_and_messy):
    clean, _ = clean_and_messy["clean"]
    messy, _ = clean_and_messy["messy"]

    assert clean.returncode == 0, clean.stderr
    assert messy.returncode == 0, messy.stderr


def test_uci_format_bom_crlf_read_correctly(clean_and_messy):
    _, clean = clean_and_messy["clean"]
    _, messy = clean_and_messy["messy"]

    # Categories appear in another order, which changes the last float digits.
    for column in FEATURE_COLUMNS:
        expected = clean["columns"][column]["score"]
        assert messy["columns"][column]["score"] == pytest.approx(expected), column
    assert messy["batch"]["rows"] == 1500
    assert messy["batch"]["missing_values"] == {}


def test_spaces_and_case_normalized_with_count(clean_and_messy):
    messy, _ = clean_and_messy["messy"]
    trimmed = 1500 * (len(FEATURE_COLUMNS) + 2)
    # Every cell has spaces around it; the upper-cased categories change too,
    # but each cell counts once. The extra columns are not counted.
    expected = 1500 * len(FEATURE_COLUMNS)

    assert f"normalized {expected} cell(s)" in messy.stderr
    assert trimmed > expected


def test_extra_columns_listed_and_ignored(clean_and_messy):
    messy, status = clean_and_messy["messy"]

    assert status["batch"]["extra_columns"] == ["id", "timestamp"]
    assert sorted(status["columns"]) == sorted(FEATURE_COLUMNS)
    assert "['id', 'timestamp']" in messy.stderr


def test_column_order_does_not_matter(clean_and_messy, tmp_path):
    _, clean = clean_and_messy["clean"]
    _, messy = clean_and_messy["messy"]

    assert messy["drifted_columns"] == clean["drifted_columns"] == []
    assert messy["columns"]["age"]["score"] == clean["columns"]["age"]["score"]


def test_source_spaces_and_case_normalized(bank_csv, prepared_data, tmp_path):
    text = bank_csv.read_text()
    messy = text.replace('"admin."', ' "Admin." ').replace(';"yes"', '; "YES" ')
    source = tmp_path / "messy-bank-full.csv"
    source.write_bytes(b"\xef\xbb\xbf" + messy.replace("\n", "\r\n").encode())
    root = tmp_path / "workspace"

    result = run_script(0, "--source", str(source), env=job_env(root))

    assert result.returncode == 0, result.stderr
    assert (root / "data" / "banking_train.csv").read_bytes() == prepared_data.read_bytes()
    assert "normalized" in result.stderr


def test_labels_file_spaces_and_case(checked, tmp_path):
    outcomes = pd.read_csv(checked / "data" / "production_batch_01_outcomes.csv")
    spellings = {"yes": [" Yes", "Y ", "TRUE", "1"], "no": ["No ", " n", "False", "0"]}
    labels = outcomes.copy()
    labels["y"] = [
        spellings[value][position % 4] for position, value in enumerate(outcomes["y"])
    ]
    labels.columns = [" Record_ID ", " Y"]
    labels_path = tmp_path / "labels.csv"
    labels.to_csv(labels_path, index=False)

    result = run_script(2, "--labels", str(labels_path), env=job_env(checked))
    labeled = pd.read_csv(checked / "data" / "new_labeled_batch_01.csv")

    assert result.returncode == 0, result.stderr
    assert labeled["y"].tolist() == outcomes["y"].tolist()


# Schema and value errors.


def test_missing_columns_all_listed(checked, sample, tmp_path):
    batch = write_batch(sample.drop(columns=["age", "poutcome"]), tmp_path / "b.csv")

    stderr = run_rejected(1, checked, "--current", str(batch))

    assert str(batch) in stderr
    assert "missing required column(s) ['age', 'poutcome']" in stderr


def test_source_missing_target_exits_2(sample, tmp_path):
    source = write_batch(sample, tmp_path / "source.csv")
    root = tmp_path / "workspace"
    root.mkdir()

    stderr = run_rejected(0, root, "--source", str(source))

    assert "missing required column(s) ['y']" in stderr


@pytest.mark.parametrize("bad", ["35 years", "n/a", "inf"])
def test_text_in_numeric_column_exits_2(checked, sample, tmp_path, bad):
    frame = sample.astype({"age": object})
    frame.loc[[6, 40, 41], "age"] = bad
    batch = write_batch(frame, tmp_path / "b.csv")

    stderr = run_rejected(1, checked, "--current", str(batch))

    assert str(batch) in stderr
    assert "column 'age' must be numeric" in stderr
    assert f"line 8 has {bad!r}" in stderr
    assert "3 cell(s)" in stderr


def test_truncated_row_exits_2(checked, sample, tmp_path):
    batch = write_batch(sample, tmp_path / "b.csv")
    batch.write_bytes(batch.read_bytes()[:-25])

    stderr = run_rejected(1, checked, "--current", str(batch))

    assert "line 1501 has" in stderr
    assert "truncated" in stderr


def test_small_batch_names_option(checked, sample, tmp_path):
    batch = write_batch(sample.head(999), tmp_path / "b.csv")

    stderr = run_rejected(1, checked, "--current", str(batch))

    assert "999 rows" in stderr
    assert "minimum of 1000" in stderr
    assert "--min-batch-rows" in stderr
    assert "LOOP_MIN_BATCH_ROWS" in stderr


def test_invalid_labels_listed_with_lines(checked, tmp_path):
    labels = pd.read_csv(checked / "data" / "production_batch_01_outcomes.csv")
    labels["y"] = labels["y"].astype(object)
    labels.loc[4, "y"] = "maybe"
    labels.loc[9, "y"] = ""
    labels_path = tmp_path / "labels.csv"
    labels.to_csv(labels_path, index=False)

    stderr = run_rejected(2, checked, "--labels", str(labels_path))

    assert str(labels_path) in stderr
    assert "2 invalid or empty label(s)" in stderr
    assert "line 6: 'maybe'" in stderr
    assert "line 11: ''" in stderr


# Missing values, duplicates and a batch larger than the reference.


@pytest.fixture(scope="module")
def large_batch_run(tmp_path_factory, prepared_data, training):
    """Job 1 on 50,000 rows drawn with replacement, with holes in three columns."""
    root = tmp_path_factory.mktemp("large")
    (root / "data").mkdir()
    shutil.copy(prepared_data, root / "data" / "banking_train.csv")
    frame = training.drop(columns="y").sample(50_000, replace=True, random_state=8)
    frame = frame.reset_index(drop=True).astype({"age": "float64"})
    generator = np.random.default_rng(8)
    for column, share in (("age", 0.05), ("job", 0.02), ("poutcome", 0.1)):
        frame.loc[generator.random(len(frame)) < share, column] = np.nan
    batch = write_batch(frame, root.parent / "large-batch.csv")
    result = run_script(1, "--current", str(batch), env=job_env(root))
    status = json.loads((root / "outputs" / "drift_status.json").read_text())
    return frame, result, status


def test_large_batch_with_gaps_has_no_drift(large_batch_run):
    _, result, status = large_batch_run

    assert result.returncode == 0, result.stderr
    assert status["drift_detected"] is False
    assert status["batch"]["rows"] > status["reference"]["rows"]


def test_missing_values_counted_per_column(large_batch_run):
    frame, result, status = large_batch_run
    expected = {
        column: int(count) for column, count in frame.isna().sum().items() if count
    }

    assert status["batch"]["missing_values"] == expected
    assert "missing values per column" in result.stderr


def test_duplicate_rows_counted(large_batch_run):
    frame, result, status = large_batch_run
    expected = int(frame[FEATURE_COLUMNS].duplicated().sum())

    assert expected > 0
    assert status["batch"]["duplicate_rows"] == expected
    assert f"{expected} duplicate row(s)" in result.stderr


def test_missing_values_keep_drift_verdict(training):
    shifted = training.drop(columns="y").sample(3000, random_state=2).copy()
    shifted["age"] = shifted["age"].astype("float64") + 15
    shifted.loc[shifted.index[::4], ["age", "job", "balance"]] = np.nan

    result = check_drift(training, shifted, DriftSettings())

    assert [column.column for column in result.drifted_columns] == ["age"]


# Corrupt state files written by other jobs.

STATE_CASES = {
    "truncated": lambda text: text[: len(text) // 2],
    "binary": lambda text: "\udcff\x00",
    "list": lambda text: "[1, 2]",
}


def write_state(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("case", STATE_CASES)
def test_corrupt_drift_status_exits_2(checked, case):
    status = checked / "outputs" / "drift_status.json"
    write_state(status, STATE_CASES[case](status.read_text()))

    stderr = run_rejected(2, checked)

    assert str(status) in stderr
    assert "1_check_drift.py" in stderr
    assert not list((checked / "data").glob("new_labeled_batch_*"))


def test_drift_status_without_sha256_exits_2(checked):
    path = checked / "outputs" / "drift_status.json"
    status = json.loads(path.read_text())
    del status["batch"]["sha256"]
    path.write_text(json.dumps(status))

    stderr = run_rejected(2, checked)

    assert "batch.sha256" in stderr
    assert "1_check_drift.py" in stderr


@pytest.mark.parametrize("case", STATE_CASES)
def test_corrupt_deployment_info_exits_2(checked, case):
    info = checked / "outputs" / "deployment_info.json"
    payload = {"deployed": True, "training_files": [{"path": "data/banking_train.csv"}]}
    write_state(info, STATE_CASES[case](json.dumps(payload)))

    stderr = run_rejected(1, checked)

    assert str(info) in stderr
    assert "4_register_and_deploy.py" in stderr


def test_deployment_info_bad_files_exits_2(checked):
    info = checked / "outputs" / "deployment_info.json"
    write_state(info, json.dumps({"deployed": True, "training_files": ["x.csv"]}))

    stderr = run_rejected(1, checked)

    assert str(info) in stderr
    assert "4_register_and_deploy.py" in stderr


@pytest.mark.parametrize("case", STATE_CASES)
def test_corrupt_run_info_exits_2(checked, case):
    info = checked / "outputs" / "retrain_run_info.json"
    payload = {"run_id": "abc", "model_uri": "runs:/abc/model", "training_files": []}
    write_state(info, STATE_CASES[case](json.dumps(payload)))

    stderr = run_rejected(4, checked, "--target", "local")

    assert str(info) in stderr
    assert "3_retrain_model.py" in stderr


def test_changed_batch_labels_nothing(checked):
    batch = checked / "data" / "production_batch_01.csv"
    batch.write_text(batch.read_text().replace("management", "manager", 1))

    stderr = run_rejected(2, checked)

    assert str(batch) in stderr
    assert "changed after job 1 checked it" in stderr
    assert "sha256" in stderr
