"""Loading and validating the bank marketing CSV files every job reads.

One function, ``load_table``, reads all of them: UCI's own format (``;``,
quoted fields) or plain comma CSV, with or without a UTF-8 byte order mark and
CRLF line ends. It normalizes headers and values the same way for every job
(spaces trimmed, headers and categories lower-cased), checks the schema, and
raises InvalidInputError naming the file, column, row and value on bad input.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from retraining.errors import InvalidInputError

log = logging.getLogger(__name__)

NUMERIC_COLUMNS = ["age", "balance", "day", "duration", "campaign", "pdays", "previous"]
CATEGORICAL_COLUMNS = [
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "month",
    "poutcome",
]
# The UCI column order, which files written by this project keep.
FEATURE_COLUMNS = [
    "age",
    "job",
    "marital",
    "education",
    "default",
    "balance",
    "housing",
    "loan",
    "contact",
    "day",
    "month",
    "duration",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
]
TARGET_COLUMN = "y"
POSITIVE_LABEL = "yes"
NEGATIVE_LABEL = "no"
DEFAULT_ID_COLUMN = "record_id"

# Accepted spellings of a label, after trimming and lower-casing.
LABEL_SPELLINGS = {
    "yes": POSITIVE_LABEL,
    "y": POSITIVE_LABEL,
    "true": POSITIVE_LABEL,
    "1": POSITIVE_LABEL,
    "1.0": POSITIVE_LABEL,
    "no": NEGATIVE_LABEL,
    "n": NEGATIVE_LABEL,
    "false": NEGATIVE_LABEL,
    "0": NEGATIVE_LABEL,
    "0.0": NEGATIVE_LABEL,
}

# How many bad values an error message lists before it only counts them.
MAX_LISTED_VALUES = 5


@dataclass
class Table:
    """A validated table: features (and ``y`` or an id) plus what loading found."""

    frame: pd.DataFrame
    path: Path
    extra_columns: list[str] = field(default_factory=list)
    missing_values: dict[str, int] = field(default_factory=dict)
    normalized_cells: int = 0
    duplicate_rows: int = 0

    @property
    def rows(self) -> int:
        return len(self.frame)


def file_line(position: int) -> int:
    """Return the line number in the file of the row at ``position`` (header is 1)."""
    return position + 2


def detect_separator(path: Path) -> str:
    """Return ``;`` for UCI's format and ``,`` otherwise, judged by the header."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    return ";" if header.count(";") > header.count(",") else ","


def _read_raw(path: Path, description: str) -> pd.DataFrame:
    if not path.exists():
        raise InvalidInputError(f"{description} {path} not found: check the path")
    if not path.is_file():
        raise InvalidInputError(f"{description} {path} is not a file: check the path")
    if path.stat().st_size == 0:
        raise InvalidInputError(
            f"{description} {path} is empty: expected a CSV file with a header row"
        )
    try:
        separator = detect_separator(path)
        raw = pd.read_csv(
            path,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            quoting=csv.QUOTE_MINIMAL,
            skip_blank_lines=True,
        )
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"{description} {path} is not UTF-8 text ({error}): save it as UTF-8 CSV"
        ) from None
    except pd.errors.EmptyDataError:
        raise InvalidInputError(
            f"{description} {path} has no header row: expected a CSV file"
        ) from None
    except (pd.errors.ParserError, csv.Error, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else error
        raise InvalidInputError(
            f"{description} {path} is not a valid CSV file ({message}): check its "
            f"separator and quoting"
        ) from None
    if raw.empty:
        raise InvalidInputError(
            f"{description} {path} has a header but no rows: expected at least one row"
        )
    return raw


def _normalize_headers(raw: pd.DataFrame, path: Path, description: str) -> pd.DataFrame:
    headers = [str(name).strip().strip('"').strip().lower() for name in raw.columns]
    duplicates = sorted({name for name in headers if headers.count(name) > 1})
    if duplicates:
        raise InvalidInputError(
            f"{description} {path} has duplicate columns {duplicates} (headers are "
            f"compared trimmed and lower-cased): rename or remove them"
        )
    raw.columns = headers
    return raw


def _parse_numeric(values: pd.Series, column: str, path: Path, description: str):
    numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
    bad = numbers.isna() & (values != "")
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        first = positions[0]
        raise InvalidInputError(
            f"{description} {path}: column {column!r} must be numeric, but row "
            f"{file_line(first)} (line in the file) has {values.iloc[first]!r}; "
            f"{len(positions)} cell(s) in that column are not numbers. Fix or "
            f"remove those rows"
        )
    integral = numbers.dropna()
    if not numbers.isna().any() and (integral == integral.round()).all():
        return numbers.astype("int64")
    return numbers.astype("float64")


def normalize_labels(
    values: pd.Series, path: Path, description: str, column: str = TARGET_COLUMN
) -> pd.Series:
    """Map yes/no, y/n, true/false and 1/0 (any case) to ``yes``/``no``.

    Raises InvalidInputError naming the unknown or empty values and their rows.
    """
    cleaned = values.fillna("").astype(str).str.strip().str.lower()
    mapped = cleaned.map(LABEL_SPELLINGS)
    bad = mapped.isna()
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        listed = ", ".join(
            f"row {file_line(position)}: {values.iloc[position]!r}"
            for position in positions[:MAX_LISTED_VALUES]
        )
        raise InvalidInputError(
            f"{description} {path}: column {column!r} has {len(positions)} invalid "
            f"or empty label(s) ({listed}). Use yes/no, y/n, true/false or 1/0"
        )
    return mapped.astype(object)


def read_text_table(path: Path, description: str) -> pd.DataFrame:
    """Read any CSV as text columns with normalized headers (no schema check)."""
    return _normalize_headers(_read_raw(path, description), path, description)


def load_table(
    path: Path,
    description: str,
    require_target: bool = False,
    id_column: str | None = None,
) -> Table:
    """Read, normalize and validate a bank marketing CSV file.

    ``description`` names the file's role in messages ("training data", "batch").
    With ``require_target`` the ``y`` column must be present and valid. With
    ``id_column`` that column is kept as text; it must be unique if present.
    Columns outside the schema are dropped and listed in ``extra_columns``.
    """
    raw = _normalize_headers(_read_raw(path, description), path, description)
    required = FEATURE_COLUMNS + ([TARGET_COLUMN] if require_target else [])
    missing = [column for column in required if column not in raw.columns]
    if missing:
        raise InvalidInputError(
            f"{description} {path} is missing required column(s) {missing}; "
            f"expected the UCI bank marketing columns {required}"
        )

    stripped = raw.apply(lambda column: column.str.strip())
    normalized_cells = int((stripped != raw).to_numpy().sum())
    frame = pd.DataFrame(index=raw.index)
    for column in FEATURE_COLUMNS:
        values = stripped[column]
        if column in NUMERIC_COLUMNS:
            frame[column] = _parse_numeric(values, column, path, description)
        else:
            lowered = values.str.lower()
            normalized_cells += int((lowered != values).sum())
            frame[column] = lowered.where(lowered != "", np.nan)
    if TARGET_COLUMN in stripped.columns:
        if require_target:
            frame[TARGET_COLUMN] = normalize_labels(
                stripped[TARGET_COLUMN], path, description
            )
    kept = set(FEATURE_COLUMNS) | ({TARGET_COLUMN} if require_target else set())
    if id_column:
        id_column = id_column.strip().lower()
        if id_column in stripped.columns:
            ids = stripped[id_column]
            _check_ids(ids, id_column, path, description)
            frame.insert(0, id_column, ids.astype(str))
            kept.add(id_column)
    extra_columns = [column for column in raw.columns if column not in kept]

    table = Table(
        frame=frame.reset_index(drop=True),
        path=path,
        extra_columns=extra_columns,
        missing_values={
            column: int(count)
            for column, count in frame[FEATURE_COLUMNS].isna().sum().items()
            if count
        },
        normalized_cells=normalized_cells,
        duplicate_rows=int(frame[FEATURE_COLUMNS].duplicated().sum()),
    )
    _log_table(table, description)
    return table


def _check_ids(ids: pd.Series, id_column: str, path: Path, description: str) -> None:
    empty = np.flatnonzero((ids == "").to_numpy())
    if len(empty):
        raise InvalidInputError(
            f"{description} {path}: id column {id_column!r} is empty in "
            f"{len(empty)} row(s), first at row {file_line(empty[0])}; every row "
            f"needs an id"
        )
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        values = sorted(duplicated.unique())[:MAX_LISTED_VALUES]
        raise InvalidInputError(
            f"{description} {path}: id column {id_column!r} has duplicate ids "
            f"{values}; ids must be unique"
        )


def _log_table(table: Table, description: str) -> None:
    log.info("read %s %s: %d rows", description, table.path, table.rows)
    if table.extra_columns:
        log.info(
            "%s: extra columns kept out of drift and training: %s",
            description,
            table.extra_columns,
        )
    if table.normalized_cells:
        log.info(
            "%s: normalized %d cell(s) (spaces trimmed, categories lower-cased)",
            description,
            table.normalized_cells,
        )
    if table.missing_values:
        log.warning("%s: missing values per column: %s", description, table.missing_values)
    if table.duplicate_rows:
        log.info("%s: %d duplicate row(s) in the features", description, table.duplicate_rows)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as comma CSV without the index (used inside atomic writers)."""
    frame.to_csv(path, index=False)
