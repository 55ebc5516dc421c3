"""Job 1's files: the batch it checks, the reference it compares with, its verdict.

The verdict goes to ``outputs/drift_status.json`` and the Evidently report to
``outputs/1_drift_report.html``. Both are replaced atomically, and each run
also keeps a copy of both under ``outputs/history/``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retraining.config import Workspace
from retraining.data import (
    DEFAULT_ID_COLUMN,
    FEATURE_COLUMNS,
    Table,
    load_table,
    write_csv,
)
from retraining.drift import DriftResult, save_html_report
from retraining.errors import InvalidInputError, LoopError
from retraining.files import (
    ensure_dir,
    next_numbered_path,
    numbered_paths,
    read_state_json,
    sha256_file,
    utc_timestamp,
    write_atomic,
    write_exclusive,
    write_json_atomic,
)

log = logging.getLogger(__name__)

BATCH_PREFIX = "production_batch_"


@dataclass
class Batch:
    """The production batch job 1 checks, as it is stored on disk."""

    frame: pd.DataFrame
    path: Path
    sha256: str
    id_column: str
    simulated: bool
    outcomes_path: Path | None = None
    extra_columns: list[str] | None = None
    missing_values: dict[str, int] | None = None
    duplicate_rows: int = 0


def relative_to_workspace(path: Path, workspace: Workspace) -> str:
    """Return ``path`` relative to the workspace root if inside it, else absolute."""
    try:
        return path.resolve().relative_to(workspace.root).as_posix()
    except ValueError:
        return str(path.resolve())


def resolve_workspace_path(raw: str, workspace: Workspace) -> Path:
    path = Path(raw)
    return path if path.is_absolute() else workspace.root / path


def store_simulated_batch(
    workspace: Workspace, batch: pd.DataFrame, outcomes: pd.DataFrame
) -> Batch:
    """Write a simulated batch and its outcomes, or reuse an identical stored one.

    Batches are numbered ``production_batch_NN.csv`` and never overwritten; a
    rerun that simulates the same rows finds the earlier file by its SHA-256.
    """
    text = batch.to_csv(index=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    for _, existing in numbered_paths(workspace.data_dir, BATCH_PREFIX, ".csv"):
        outcomes_path = existing.with_name(f"{existing.stem}_outcomes.csv")
        if sha256_file(existing) == digest and outcomes_path.exists():
            log.info("the simulated batch equals %s; reusing it", existing)
            return Batch(batch, existing, digest, DEFAULT_ID_COLUMN, True, outcomes_path)

    ensure_dir(workspace.data_dir)
    path = next_numbered_path(workspace.data_dir, BATCH_PREFIX, ".csv")
    number = int(path.stem.removeprefix(BATCH_PREFIX))
    while True:
        # An outcomes file without its batch (left by a killed run) only makes
        # this loop try the next number; it is never overwritten.
        path = workspace.data_dir / f"{BATCH_PREFIX}{number:02d}.csv"
        outcomes_path = path.with_name(f"{path.stem}_outcomes.csv")
        number += 1
        try:
            write_exclusive(outcomes_path, lambda temporary: write_csv(outcomes, temporary))
        except FileExistsError:
            continue
        try:
            write_exclusive(path, lambda temporary: temporary.write_text(text))
        except BaseException as error:
            outcomes_path.unlink(missing_ok=True)
            if isinstance(error, FileExistsError):
                continue
            raise
        break
    log.info("wrote simulated batch %s (%d rows) and %s", path, len(batch), outcomes_path)
    return Batch(batch, path, digest, DEFAULT_ID_COLUMN, True, outcomes_path)


def load_current_batch(path: Path, id_column: str) -> Batch:
    """Read a batch given with ``--current``; add ids from row positions if absent."""
    table: Table = load_table(path, "batch", id_column=id_column)
    frame = table.frame
    id_column = id_column.strip().lower()
    if id_column not in frame.columns:
        log.info(
            "batch %s has no %r column; ids are the row positions 1..%d",
            path,
            id_column,
            len(frame),
        )
        frame.insert(0, id_column, [str(position + 1) for position in range(len(frame))])
    return Batch(
        frame=frame,
        path=path.resolve(),
        sha256=sha256_file(path),
        id_column=id_column,
        simulated=False,
        extra_columns=table.extra_columns,
        missing_values=table.missing_values,
        duplicate_rows=table.duplicate_rows,
    )


def reference_files(workspace: Workspace) -> list[Path]:
    """Return the training files of the deployed model, or ``banking_train.csv``.

    After a deployment, ``outputs/deployment_info.json`` lists the files the
    deployed model was trained on, so drift the model has learned does not
    fire again.
    """
    if workspace.deployment_info.exists():
        info = read_state_json(
            workspace.deployment_info, "module3/4_register_and_deploy.py"
        )
        files = info.get("training_files") or []
        if info.get("deployed") and files:
            if not isinstance(files, list) or not all(
                isinstance(entry, dict) and isinstance(entry.get("path"), str)
                for entry in files
            ):
                raise InvalidInputError(
                    f"{workspace.deployment_info} is corrupt or invalid "
                    f"(training_files must be a list of objects with a 'path'); the "
                    f"file is written by module3/4_register_and_deploy.py: rerun it"
                )
            paths = [resolve_workspace_path(entry["path"], workspace) for entry in files]
            missing = [str(path) for path in paths if not path.is_file()]
            if missing:
                raise InvalidInputError(
                    f"training file(s) {missing} of the deployed model, listed in "
                    f"{workspace.deployment_info}, not found: restore them, or move "
                    f"that file away to compare with banking_train.csv again"
                )
            log.info("reference: the training files of the deployed model: %s", paths)
            return paths
    return [workspace.train_csv]


def load_reference(paths: list[Path]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    frames, described = [], []
    for path in paths:
        if not path.exists() and path.name == "banking_train.csv":
            raise InvalidInputError(
                f"training data {path} not found: run module3/0_prepare_data.py first"
            )
        table = load_table(
            path, "reference data", require_target=True, id_column=DEFAULT_ID_COLUMN
        )
        frames.append(table.frame[FEATURE_COLUMNS])
        described.append({"path": str(path), "sha256": sha256_file(path), "rows": table.rows})
    return pd.concat(frames, ignore_index=True), described


def build_status(
    workspace: Workspace,
    batch: Batch,
    reference: list[dict[str, Any]],
    reference_rows: int,
    result: DriftResult,
    chain_mode: bool,
) -> dict[str, Any]:
    for entry in reference:
        entry["path"] = relative_to_workspace(Path(entry["path"]), workspace)
    settings = result.settings
    return {
        "drift_detected": result.drift_detected,
        "checked_at": utc_timestamp(),
        "rule": (
            f"drift when at least {settings.min_drifted_columns} feature column(s) "
            f"drift; a column drifts when its distance reaches its threshold"
        ),
        "drifted_columns": [column.column for column in result.drifted_columns],
        "drift_share": round(result.drift_share, 4),
        "columns": {column.column: column.to_dict() for column in result.columns},
        "unseen_categories": result.unseen_categories,
        "thresholds": {
            "numeric_method": settings.numeric_method,
            "numeric_threshold": settings.numeric_threshold,
            "categorical_method": settings.categorical_method,
            "categorical_threshold": settings.categorical_threshold,
            "min_drifted_columns": settings.min_drifted_columns,
            "min_batch_rows": settings.min_batch_rows,
        },
        "batch": {
            "path": relative_to_workspace(batch.path, workspace),
            "sha256": batch.sha256,
            "rows": len(batch.frame),
            "id_column": batch.id_column,
            "simulated": batch.simulated,
            "outcomes_path": relative_to_workspace(batch.outcomes_path, workspace)
            if batch.outcomes_path
            else None,
            "outcomes_sha256": sha256_file(batch.outcomes_path)
            if batch.outcomes_path
            else None,
            "extra_columns": batch.extra_columns or [],
            "missing_values": batch.missing_values or {},
            "duplicate_rows": batch.duplicate_rows,
        },
        "reference": {"files": reference, "rows": reference_rows},
        "report": relative_to_workspace(workspace.drift_report, workspace),
        "chain_mode": chain_mode,
    }


def write_outputs(workspace: Workspace, status: dict[str, Any], snapshot: Any) -> Path:
    """Write the report and the status, and keep copies of both in the history.

    Returns the history copy of the status.
    """
    ensure_dir(workspace.history_dir)
    write_atomic(workspace.drift_report, lambda temporary: save_html_report(snapshot, temporary))
    write_json_atomic(workspace.drift_status, status)
    stamp = status["checked_at"].replace(":", "").replace("+0000", "Z")
    for suffix in range(1000):
        name = f"{stamp}_drift" if suffix == 0 else f"{stamp}-{suffix}_drift"
        status_copy = workspace.history_dir / f"{name}_status.json"
        try:
            write_exclusive(
                status_copy,
                lambda temporary: temporary.write_bytes(workspace.drift_status.read_bytes()),
            )
        except FileExistsError:
            continue
        report_copy = workspace.history_dir / f"{name}_report.html"
        write_atomic(
            report_copy,
            lambda temporary: temporary.write_bytes(workspace.drift_report.read_bytes()),
        )
        return status_copy
    raise LoopError(f"too many drift checks at {stamp} in {workspace.history_dir}")
