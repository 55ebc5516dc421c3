"""Job 2: label exactly the batch job 1 checked.

Simulated labels start from the sampled rows' original outcomes and apply new
business rules that shift the concept (who subscribes now); real labels come
from a CSV with the batch's id column and ``y``. Each labeled batch is written
once as ``data/new_labeled_batch_NN.csv`` with a manifest
``data/new_labeled_batch_NN.json`` naming the batch it labels, and is never
overwritten. Job 3 trains only on labeled batches whose manifest matches.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retraining.config import Workspace
from retraining.data import (
    FEATURE_COLUMNS,
    MAX_LISTED_VALUES,
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    TARGET_COLUMN,
    file_line,
    normalize_labels,
    read_text_table,
)
from retraining.errors import InvalidInputError
from retraining.files import (
    ensure_dir,
    next_numbered_path,
    numbered_paths,
    sha256_file,
    write_exclusive,
)

log = logging.getLogger(__name__)

LABELED_PREFIX = "new_labeled_batch_"

# Business rules of the simulated concept shift, applied in this order.
RETIREE_MIN_AGE = 60
RETIREE_MIN_BALANCE = 1000
FATIGUE_MIN_CONTACTS = 5


def apply_business_rules(
    batch: pd.DataFrame, outcomes: pd.Series, known_jobs: set[str]
) -> pd.Series:
    """Return new labels: the original outcomes changed by the shifted concept.

    1. Customers aged 60 or more with no personal loan and a balance of at
       least 1,000 now subscribe (a new pension savings product).
    2. Customers in a job category the training data never had, with no
       housing loan, now subscribe (the product suits new kinds of work).
    3. Customers contacted 5 or more times in this campaign now decline
       (contact fatigue); this rule wins over the two above.
    """
    labels = outcomes.copy()
    retiree = (
        (batch["age"] >= RETIREE_MIN_AGE)
        & (batch["loan"] == "no")
        & (batch["balance"] >= RETIREE_MIN_BALANCE)
    )
    new_job = ~batch["job"].isin(known_jobs) & batch["job"].notna()
    new_worker = new_job & (batch["housing"] == "no")
    fatigued = batch["campaign"] >= FATIGUE_MIN_CONTACTS
    labels[(retiree | new_worker).to_numpy()] = POSITIVE_LABEL
    labels[fatigued.to_numpy()] = NEGATIVE_LABEL
    return labels


def yes_rate(labels: pd.Series) -> float:
    return float((labels == POSITIVE_LABEL).mean())


def read_label_file(path: Path, id_column: str) -> pd.DataFrame:
    """Read real outcomes: a CSV with the id column and ``y`` (any label spelling)."""
    table_ids = read_text_table(path, "labels file")
    missing = [c for c in (id_column, TARGET_COLUMN) if c not in table_ids.columns]
    if missing:
        raise InvalidInputError(
            f"labels file {path} is missing column(s) {missing}; expected the "
            f"batch's id column {id_column!r} and {TARGET_COLUMN!r}"
        )
    ids = table_ids[id_column].str.strip()
    duplicated = sorted(ids[ids.duplicated()].unique())
    if duplicated:
        raise InvalidInputError(
            f"labels file {path} has more than one label for id(s) "
            f"{duplicated[:MAX_LISTED_VALUES]}; keep one row per id"
        )
    labels = normalize_labels(table_ids[TARGET_COLUMN], path, "labels file")
    return pd.DataFrame({id_column: ids, TARGET_COLUMN: labels})


def join_labels(
    batch: pd.DataFrame, labels: pd.DataFrame, id_column: str, source: Path
) -> pd.Series:
    """Return the label of every batch row; raise if any row has none."""
    by_id = labels.set_index(id_column)[TARGET_COLUMN]
    joined = batch[id_column].map(by_id)
    unlabeled = np.flatnonzero(joined.isna().to_numpy())
    if len(unlabeled):
        examples = batch[id_column].iloc[unlabeled[:MAX_LISTED_VALUES]].tolist()
        raise InvalidInputError(
            f"{source} has no label for {len(unlabeled)} of {len(batch)} batch rows "
            f"(ids {examples}, first at batch row {file_line(unlabeled[0])}); add them"
        )
    extra = len(set(labels[id_column]) - set(batch[id_column]))
    if extra:
        log.info("%s: ignored %d label(s) for ids not in the batch", source, extra)
    return joined.astype(object)


def find_labeled_batch(workspace: Workspace, batch_sha256: str) -> Path | None:
    """Return the labeled batch made from the batch with this SHA-256, if any."""
    for path, manifest in labeled_batches(workspace):
        if manifest["source_batch"]["sha256"] == batch_sha256:
            return path
    return None


def labeled_batches(workspace: Workspace) -> list[tuple[Path, dict[str, Any]]]:
    """Return complete labeled batches in number order, with their manifests.

    A batch file without a manifest was left by an interrupted job 2; it is
    skipped with a warning. A batch whose manifest is corrupt or no longer
    matches its content was changed after job 2 wrote it, so training on it
    or without it would be wrong: that raises InvalidInputError.
    """
    complete = []
    for _, path in numbered_paths(workspace.data_dir, LABELED_PREFIX, ".csv"):
        manifest_path = path.with_suffix(".json")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            expected = manifest["sha256"]
            manifest["source_batch"]["sha256"]
        except FileNotFoundError:
            log.warning(
                "skipping %s: it has no manifest %s (an interrupted job 2 left it); "
                "move it away",
                path,
                manifest_path.name,
            )
            continue
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(
                f"manifest {manifest_path} of labeled batch {path.name} is corrupt; "
                f"restore it, or move both files away and rerun "
                f"module3/2_simulate_labeling_job.py"
            ) from None
        actual = sha256_file(path)
        if actual != expected:
            raise InvalidInputError(
                f"labeled batch {path} changed after job 2 wrote it (sha256 "
                f"{actual}, manifest {expected}); restore it, or move it and "
                f"{manifest_path.name} away and rerun "
                f"module3/2_simulate_labeling_job.py"
            )
        complete.append((path, manifest))
    return complete


def write_labeled_batch(
    workspace: Workspace,
    labeled: pd.DataFrame,
    manifest: dict[str, Any],
) -> tuple[Path, Path]:
    """Write the next ``new_labeled_batch_NN.csv`` and its manifest, never overwriting.

    The manifest is written last: a batch without one is incomplete and ignored.
    """
    ensure_dir(workspace.data_dir)
    text = labeled.to_csv(index=False)
    while True:
        path = next_numbered_path(workspace.data_dir, LABELED_PREFIX, ".csv")
        manifest_path = path.with_suffix(".json")
        if manifest_path.exists():
            raise InvalidInputError(
                f"{manifest_path} exists without {path.name}; move it away and rerun"
            )
        try:
            write_exclusive(path, lambda temporary: temporary.write_text(text))
        except FileExistsError:
            continue
        break
    manifest = {**manifest, "path": path.name, "sha256": sha256_file(path)}
    body = json.dumps(manifest, indent=2) + "\n"
    try:
        write_exclusive(manifest_path, lambda temporary: temporary.write_text(body))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, manifest_path


def build_labeled_frame(
    batch: pd.DataFrame, id_column: str, labels: pd.Series
) -> pd.DataFrame:
    labeled = batch[[id_column] + FEATURE_COLUMNS].copy()
    if id_column != "record_id":
        labeled = labeled.rename(columns={id_column: "record_id"})
    labeled[TARGET_COLUMN] = labels.to_numpy()
    return labeled
