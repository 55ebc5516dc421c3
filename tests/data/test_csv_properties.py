"""Property-based tests of ``load_table`` on generated CSV content.

Whatever bytes a file holds, ``load_table`` either returns a table with the 16
feature columns (numeric dtypes for the numeric ones) or raises
InvalidInputError. Any other exception would reach the job as exit code 4
("other error") instead of 2 ("invalid input").
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retraining.data import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    NUMERIC_COLUMNS,
    TARGET_COLUMN,
    load_table,
)
from retraining.errors import InvalidInputError

SETTINGS = settings(
    deadline=None,
    database=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HEADER_NAMES = FEATURE_COLUMNS + [TARGET_COLUMN, "record_id", "timestamp", "", "Age "]
NUMBER_TEXT = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " 35 ", "35 years", "n/a", "1e400", "+7", ".5", "1_000"]),
)
CATEGORY_TEXT = st.one_of(
    st.sampled_from(["admin.", " Admin. ", "YES", "no", "unknown", "", "a;b", 'q"t']),
    st.text(max_size=8),
)


def header_strategy() -> st.SearchStrategy[list[str]]:
    shuffled = st.permutations(FEATURE_COLUMNS + [TARGET_COLUMN])
    dropped = st.lists(st.sampled_from(HEADER_NAMES), min_size=0, max_size=20)
    return st.one_of(
        shuffled,
        shuffled.map(lambda names: names[1:]),
        shuffled.map(lambda names: [f" {name.upper()} " for name in names]),
        shuffled.map(lambda names: names + ["record_id"]),
        dropped,
    )


def cell_for(name: str) -> st.SearchStrategy[str]:
    if name.strip().lower() in NUMERIC_COLUMNS:
        return NUMBER_TEXT
    if name.strip().lower() in CATEGORICAL_COLUMNS + [TARGET_COLUMN]:
        return CATEGORY_TEXT
    return st.text(max_size=6)


@st.composite
def csv_bytes(draw) -> bytes:
    header = draw(header_strategy())
    rows = [
        [draw(cell_for(name)) for name in header]
        for _ in range(draw(st.integers(0, 4)))
    ]
    if draw(st.booleans()) and rows:
        rows[-1] = rows[-1][: draw(st.integers(0, len(rows[-1])))]
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=draw(st.sampled_from([",", ";", "\t", "|"])),
        quoting=draw(
            st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])
        ),
        lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])),
    )
    writer.writerow(header)
    writer.writerows(rows)
    content = buffer.getvalue().encode("utf-8")
    if draw(st.booleans()):
        content = b"\xef\xbb\xbf" + content
    if draw(st.booleans()):
        content = content[: draw(st.integers(0, len(content)))]
    if draw(st.integers(0, 4)) == 0:
        position = draw(st.integers(0, len(content)))
        content = content[:position] + draw(st.binary(max_size=12)) + content[position:]
    return content


def check_loaded(path: Path) -> None:
    try:
        table = load_table(path, "batch", id_column="record_id")
    except InvalidInputError as error:
        assert str(path) in str(error)
        return
    frame = table.frame
    assert set(FEATURE_COLUMNS) <= set(frame.columns)
    for column in NUMERIC_COLUMNS:
        assert pd.api.types.is_numeric_dtype(frame[column]), column
        assert all(math.isfinite(value) for value in frame[column].dropna())
    for column in CATEGORICAL_COLUMNS:
        values = frame[column].dropna()
        assert all(value == value.strip().lower() for value in values), column


@SETTINGS
@given(content=csv_bytes())
@example(content=b"")
@example(content=b"\xef\xbb\xbf")
@example(content=b"\xff\xfe\x00a")
@example(content=",".join(FEATURE_COLUMNS).encode() + b"\n")
def test_load_table_generated_csv(tmp_path, content):
    path = tmp_path / "generated.csv"
    path.write_bytes(content)

    check_loaded(path)


@SETTINGS
@given(content=st.binary(max_size=300))
def test_load_table_binary_junk(tmp_path, content):
    path = tmp_path / "junk.csv"
    path.write_bytes(content)

    check_loaded(path)


@pytest.mark.parametrize("separator", [",", ";"])
@SETTINGS
@given(
    ages=st.lists(st.integers(18, 95), min_size=1, max_size=5),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_load_table_valid_rows_round_trip(tmp_path, separator, ages, crlf, bom):
    frame = pd.DataFrame(
        {
            column: ages if column == "age" else (
                [1] * len(ages) if column in NUMERIC_COLUMNS else ["Yes "] * len(ages)
            )
            for column in FEATURE_COLUMNS
        }
    )
    text = frame.to_csv(
        index=False,
        sep=separator,
        quoting=csv.QUOTE_NONNUMERIC,
        lineterminator="\r\n" if crlf else "\n",
    )
    path = tmp_path / "valid.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())

    table = load_table(path, "batch")

    assert table.frame["age"].tolist() == ages
    assert set(table.frame["job"]) == {"yes"}
    assert table.normalized_cells == len(ages) * len(CATEGORICAL_COLUMNS)
