"""Job 1: compare a production batch with the training data using Evidently.

Verdict rule: every feature column is tested on its own with Evidently's
``ValueDrift`` metric, using a distance, not a p-value: the normed Wasserstein
distance for numeric columns and the Jensen-Shannon distance for categorical
ones. A column drifts when its distance reaches the threshold (default 0.1 for
both). The batch has drifted when at least ``min_drifted_columns`` columns
drift (default 1). Distances do not shrink toward "significant" as batches
grow, so a random sample of the training data stays well below the threshold
while a batch of older customers or new job categories crosses it. Evidently's
own dataset rule (half of the columns) would miss a shift in two key columns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retraining.data import CATEGORICAL_COLUMNS, FEATURE_COLUMNS, NUMERIC_COLUMNS
from retraining.errors import InvalidInputError

log = logging.getLogger(__name__)

DEFAULT_NUMERIC_METHOD = "wasserstein"
DEFAULT_CATEGORICAL_METHOD = "jensenshannon"
# Evidently drift methods whose score grows with drift (distances and PSI), so
# that "score >= threshold" means drift for every one of them.
NUMERIC_METHODS = ("wasserstein", "psi", "hellinger", "kl_div", "jensenshannon")
CATEGORICAL_METHODS = ("jensenshannon", "psi", "hellinger", "kl_div")
DEFAULT_THRESHOLD = 0.1
DEFAULT_MIN_DRIFTED_COLUMNS = 1
DEFAULT_MIN_BATCH_ROWS = 1000

# Job categories the simulation gives to part of the batch; training has none.
NEW_JOB_CATEGORIES = ("gig-worker", "freelancer", "data-scientist")


@dataclass(frozen=True)
class DriftSettings:
    numeric_method: str = DEFAULT_NUMERIC_METHOD
    categorical_method: str = DEFAULT_CATEGORICAL_METHOD
    numeric_threshold: float = DEFAULT_THRESHOLD
    categorical_threshold: float = DEFAULT_THRESHOLD
    min_drifted_columns: int = DEFAULT_MIN_DRIFTED_COLUMNS
    min_batch_rows: int = DEFAULT_MIN_BATCH_ROWS

    def validate(self) -> None:
        if self.numeric_method not in NUMERIC_METHODS:
            raise InvalidInputError(
                f"invalid numeric drift method {self.numeric_method!r}: use one of "
                f"{list(NUMERIC_METHODS)}"
            )
        if self.categorical_method not in CATEGORICAL_METHODS:
            raise InvalidInputError(
                f"invalid categorical drift method {self.categorical_method!r}: use "
                f"one of {list(CATEGORICAL_METHODS)}"
            )
        if not 1 <= self.min_drifted_columns <= len(FEATURE_COLUMNS):
            raise InvalidInputError(
                f"invalid --min-drifted-columns {self.min_drifted_columns}: use a "
                f"number from 1 to {len(FEATURE_COLUMNS)}"
            )


@dataclass
class ColumnDrift:
    column: str
    kind: str
    method: str
    threshold: float
    score: float | None
    drifted: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "note": self.note,
        }


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    unseen_categories: dict[str, dict[str, int]]
    drift_detected: bool
    settings: DriftSettings
    snapshot: Any = field(repr=False, default=None)

    @property
    def drifted_columns(self) -> list[ColumnDrift]:
        return [column for column in self.columns if column.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_columns) / len(self.columns)


def simulate_batch(
    training: pd.DataFrame,
    size: int,
    seed: int,
    age_shift: int = 12,
    new_job_share: float = 0.3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample a drifted production batch from the training data.

    Customers are ``age_shift`` years older (capped at 95) and ``new_job_share``
    of them get a job category never seen in training. Returns the batch
    (``record_id`` plus features, no ``y``) and the sampled rows' original
    outcomes (``record_id``, ``y``), which stand for what the business learns
    later. The same training data, size and seed give the same batch.
    """
    if size > len(training):
        raise InvalidInputError(
            f"invalid --batch-size {size}: the training data has only "
            f"{len(training)} rows to sample from"
        )
    generator = np.random.default_rng(seed)
    positions = np.sort(generator.choice(len(training), size=size, replace=False))
    sample = training.iloc[positions].reset_index(drop=True)

    batch = sample[FEATURE_COLUMNS].copy()
    batch["age"] = np.minimum(batch["age"] + age_shift, 95)
    new_jobs = generator.random(size) < new_job_share
    batch.loc[new_jobs, "job"] = generator.choice(
        NEW_JOB_CATEGORIES, size=int(new_jobs.sum())
    )
    record_ids = [f"s{seed}-r{position}" for position in positions]
    batch.insert(0, "record_id", record_ids)
    outcomes = pd.DataFrame({"record_id": record_ids, "y": sample["y"].to_numpy()})
    return batch, outcomes


def find_unseen_categories(
    reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, dict[str, int]]:
    """Return, per categorical column, batch categories absent from the reference."""
    unseen = {}
    for column in CATEGORICAL_COLUMNS:
        known = set(reference[column].dropna().unique())
        counts = current[column].dropna().value_counts()
        new = {str(value): int(count) for value, count in counts.items() if value not in known}
        if new:
            unseen[column] = new
    return unseen


def check_drift(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings
) -> DriftResult:
    """Run Evidently per feature column and apply the verdict rule (module docs)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    settings.validate()
    if len(current) < settings.min_batch_rows:
        raise InvalidInputError(
            f"the batch has {len(current)} rows, below the minimum of "
            f"{settings.min_batch_rows} needed to judge drift; send a larger batch "
            f"or lower --min-batch-rows (env LOOP_MIN_BATCH_ROWS)"
        )
    testable, skipped = _split_testable_columns(reference, current, settings)
    definition = DataDefinition(
        numerical_columns=[c.column for c in testable if c.kind == "numeric"],
        categorical_columns=[c.column for c in testable if c.kind == "categorical"],
    )
    metrics = [
        ValueDrift(column=c.column, method=c.method, threshold=c.threshold)
        for c in testable
    ]
    report = Report(metrics)
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[FEATURE_COLUMNS], data_definition=definition),
        reference_data=Dataset.from_pandas(
            reference[FEATURE_COLUMNS], data_definition=definition
        ),
    )
    scores = _scores_by_column(snapshot.dict())
    for column in testable:
        score = scores.get(column.column)
        if score is None or not math.isfinite(score):
            column.note = f"Evidently returned no finite score ({score})"
            continue
        column.score = float(score)
        column.drifted = column.score >= column.threshold

    columns = sorted(testable + skipped, key=lambda c: FEATURE_COLUMNS.index(c.column))
    drifted = [c for c in columns if c.drifted]
    result = DriftResult(
        columns=columns,
        unseen_categories=find_unseen_categories(reference, current),
        drift_detected=len(drifted) >= settings.min_drifted_columns,
        settings=settings,
        snapshot=snapshot,
    )
    for column in columns:
        log.info(
            "column %s: %s = %s (threshold %s)%s%s",
            column.column,
            column.method,
            "n/a" if column.score is None else f"{column.score:.4f}",
            column.threshold,
            " DRIFTED" if column.drifted else "",
            f" ({column.note})" if column.note else "",
        )
    log.info(
        "%d of %d columns drifted (rule: at least %d) -> %s",
        len(drifted),
        len(columns),
        settings.min_drifted_columns,
        "drift" if result.drift_detected else "no drift",
    )
    return result


def _split_testable_columns(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings
) -> tuple[list[ColumnDrift], list[ColumnDrift]]:
    """Return columns Evidently can test, and columns with no values on one side.

    A column with no values in the batch but values in the reference counts as
    drifted: production stopped sending it.
    """
    testable, skipped = [], []
    for column in FEATURE_COLUMNS:
        numeric = column in NUMERIC_COLUMNS
        entry = ColumnDrift(
            column=column,
            kind="numeric" if numeric else "categorical",
            method=settings.numeric_method if numeric else settings.categorical_method,
            threshold=settings.numeric_threshold
            if numeric
            else settings.categorical_threshold,
            score=None,
            drifted=False,
        )
        empty_reference = reference[column].notna().sum() == 0
        empty_current = current[column].notna().sum() == 0
        if empty_current and not empty_reference:
            entry.drifted = True
            entry.note = "no values in the batch"
            skipped.append(entry)
        elif empty_reference:
            entry.note = "no values in the reference; not tested"
            skipped.append(entry)
        else:
            testable.append(entry)
    return testable, skipped


def _scores_by_column(snapshot: dict[str, Any]) -> dict[str, float]:
    scores = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = metric.get("value")
    return scores


def save_html_report(snapshot: Any, path: Path) -> None:
    """Write Evidently's HTML report to ``path`` (used inside an atomic writer)."""
    snapshot.save_html(str(path))
