"""Loading and validating the bank marketing CSV files every job reads.

One function, ``load_table``, reads all of them: UCI's own format (``;``,
quoted fields) or plain comma CSV, with or without a UTF-8 byte order mark and
CRLF line ends. It normalizes headers and values the same way for every job
(spaces trimmed, headers and categories lower-cased), checks the schema, and
raises InvalidInputError naming the file, column, row and value on bad input.
"""

from __future__ import annotations

import csv
import io
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

# Name of the index that contains each row's line number in its file.
LINE_INDEX = "line"

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
    """Return the line number in the file of the row at ``position`` (header is 1).

    Exact only for files with one line per row and no blank lines; tables read
    by ``read_text_table`` carry the real line numbers in their index instead.
    """
    return position + 2


def _line_of(values: pd.Series, position: int) -> int:
    """Return the file line of the row at ``position`` in ``values``."""
    if values.index.name == LINE_INDEX:
        return int(values.index[position])
    return file_line(position)


def detect_separator(text: str) -> str:
    """Return ``;`` for UCI's format and ``,`` otherwise, judged by the header."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    return ";" if header.count(";") > header.count(",") else ","


def _read_text(path: Path, description: str) -> str:
    if not path.exists():
        raise InvalidInputError(f"{description} {path} not found: check the path")
    if not path.is_file():
        raise InvalidInputError(f"{description} {path} is not a file: check the path")
    try:
        content = path.read_bytes()
    except OSError as error:
        raise InvalidInputError(
            f"cannot read {description} {path} ({error.strerror}): check the file's "
            f"permissions"
        ) from None
    if b"\x00" in content:
        raise InvalidInputError(
            f"{description} {path} is not a text CSV file (it contains NUL bytes): "
            f"export it again as UTF-8 CSV"
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"{description} {path} is not UTF-8 text (invalid byte at offset "
            f"{error.start}): save it as UTF-8 CSV"
        ) from None
    if not text.strip():
        raise InvalidInputError(
            f"{description} {path} is empty: expected a CSV file with a header row"
        )
    return text


def _parse_rows(text: str, separator: str, path: Path, description: str):
    """Return the header, the data rows and each row's line number in the file."""
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=separator, skipinitialspace=True
    )
    rows, lines = [], []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as error:
        raise InvalidInputError(
            f"{description} {path} is not a valid CSV file (line {reader.line_num}: "
            f"{error}): check its separator and quoting"
        ) from None
    if len(rows) < 2:
        raise InvalidInputError(
            f"{description} {path} has a header but no rows: expected at least one row"
        )
    return rows[0], rows[1:], lines[1:]


def _check_row_lengths(
    header: list[str], rows: list[list[str]], lines: list[int], path: Path, description: str
) -> None:
    bad = [position for position, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        first = bad[0]
        raise InvalidInputError(
            f"{description} {path}: line {lines[first]} has {len(rows[first])} "
            f"field(s), but the header has {len(header)}; {len(bad)} row(s) differ. "
            f"The file may be truncated or mix separators: fix or remove those rows"
        )


def _read_raw(path: Path, description: str) -> pd.DataFrame:
    """Read a CSV file as text cells, indexed by each row's line in the file."""
    text = _read_text(path, description)
    separator = detect_separator(text)
    header, rows, lines = _parse_rows(text, separator, path, description)
    _check_row_lengths(header, rows, lines, path, description)
    names = [f"column {position + 1}" for position in range(len(header))]
    raw = pd.DataFrame(rows, columns=names, dtype=object)
    raw.index = pd.Index(lines, name=LINE_INDEX)
    raw.attrs["header"] = header
    return raw


def _normalize_headers(raw: pd.DataFrame, path: Path, description: str) -> pd.DataFrame:
    headers = []
    for position, name in enumerate(raw.attrs.get("header", raw.columns)):
        cleaned = str(name).strip().strip('"').strip().lower()
        headers.append(cleaned or f"(unnamed column {position + 1})")
    duplicates = sorted({name for name in headers if headers.count(name) > 1})
    if duplicates:
        raise InvalidInputError(
            f"{description} {path} has duplicate columns {duplicates} (headers are "
            f"compared trimmed and lower-cased): rename or remove them"
        )
    raw.columns = headers
    return raw


def _parse_numeric(
    values: pd.Series, column: str, path: Path, description: str
) -> pd.Series:
    numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
    numbers = numbers.astype("float64")
    bad = ~np.isfinite(numbers) & (values != "")
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        first = positions[0]
        raise InvalidInputError(
            f"{description} {path}: column {column!r} must be numeric, but line "
            f"{_line_of(values, first)} has {values.iloc[first]!r}; "
            f"{len(positions)} cell(s) in that column are not finite numbers. Fix or "
            f"remove those rows"
        )
    present = numbers.dropna()
    whole = (present == present.round()).all() and (present.abs() <= 2**53).all()
    if not numbers.isna().any() and whole:
        return numbers.astype("int64")
    return numbers


def normalize_labels(
    values: pd.Series, path: Path, description: str, column: str = TARGET_COLUMN
) -> pd.Series:
    """Map yes/no, y/n, true/false and 1/0 (any case) to ``yes``/``no``.

    Raises InvalidInputError naming the invalid or empty values and their lines.
    """
    cleaned = values.fillna("").astype(str).str.strip().str.lower()
    mapped = cleaned.map(LABEL_SPELLINGS)
    bad = mapped.isna()
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        listed = ", ".join(
            f"line {_line_of(values, position)}: {values.iloc[position]!r}"
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
    changed = stripped != raw
    frame = pd.DataFrame(index=raw.index)
    for column in FEATURE_COLUMNS:
        values = stripped[column]
        if column in NUMERIC_COLUMNS:
            frame[column] = _parse_numeric(values, column, path, description)
        else:
            lowered = values.str.lower()
            changed[column] |= lowered != values
            frame[column] = lowered.where(lowered != "", np.nan)
    normalized_cells = int(changed[FEATURE_COLUMNS].to_numpy().sum())
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
            f"{len(empty)} row(s), first at line {_line_of(ids, empty[0])}; every row "
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
