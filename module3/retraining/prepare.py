"""Job 0: write ``data/banking_train.csv`` from UCI's bank-full.csv.

Online, the UCI zip is downloaded and the nested ``bank.zip`` is opened to get
``bank-full.csv``, which is checked against the published size, row count and
SHA-256. Offline, a local copy is read instead (UCI's ``;`` format or comma
CSV). Either way the schema is validated before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests

from retraining.data import FEATURE_COLUMNS, TARGET_COLUMN, load_table
from retraining.errors import ExternalServiceError, InvalidInputError
from retraining.files import (
    sha256_file,
    utc_timestamp,
    write_atomic,
    write_exclusive,
)

log = logging.getLogger(__name__)

UCI_ZIP_URL = "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip"
UCI_INNER_ZIP = "bank.zip"
UCI_CSV_NAME = "bank-full.csv"
# Published facts of UCI's bank-full.csv (data set 222).
UCI_CSV_BYTES = 4_610_348
UCI_CSV_ROWS = 45_211
UCI_CSV_SHA256 = "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d"


@dataclass
class PrepareResult:
    path: Path
    rows: int
    written: bool
    source: str


def download_uci_csv(url: str, destination: Path, timeout: float) -> Path:
    """Download the UCI zip from ``url`` and extract a checked ``bank-full.csv``.

    Raises ExternalServiceError when the download fails or the archive or its
    CSV does not match UCI's published file.
    """
    log.info("downloading %s (timeout %.0f s)", url, timeout)
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as error:
        raise ExternalServiceError(
            f"cannot download {url} ({error.__class__.__name__}: {error}). Offline, "
            f"pass --source PATH or set BANK_MARKETING_CSV to a local bank-full.csv"
        ) from None
    content = _extract_csv(response.content, url)
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != UCI_CSV_BYTES or digest != UCI_CSV_SHA256:
        raise ExternalServiceError(
            f"{UCI_CSV_NAME} from {url} does not match UCI's published file "
            f"({len(content)} bytes, sha256 {digest}; expected {UCI_CSV_BYTES} "
            f"bytes, sha256 {UCI_CSV_SHA256}). Retry, or pass --source PATH"
        )
    write_atomic(destination, lambda temporary: temporary.write_bytes(content))
    log.info("downloaded %s to %s (%d bytes)", UCI_CSV_NAME, destination, len(content))
    return destination


def _extract_csv(archive: bytes, url: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as outer:
            names = outer.namelist()
            if UCI_CSV_NAME in names:
                return outer.read(UCI_CSV_NAME)
            if UCI_INNER_ZIP not in names:
                raise ExternalServiceError(
                    f"the archive from {url} contains neither {UCI_INNER_ZIP} nor "
                    f"{UCI_CSV_NAME} (found {names}); pass --source PATH"
                )
            with zipfile.ZipFile(io.BytesIO(outer.read(UCI_INNER_ZIP))) as inner:
                return inner.read(UCI_CSV_NAME)
    except (zipfile.BadZipFile, KeyError) as error:
        raise ExternalServiceError(
            f"the archive from {url} is not the UCI bank marketing zip ({error}); "
            f"retry, or pass --source PATH"
        ) from None


def prepare_training_data(
    source: Path, destination: Path, force: bool = False
) -> PrepareResult:
    """Validate ``source`` and write it to ``destination`` as comma CSV.

    A rerun that would write the same content writes nothing. Different content
    is written only with ``force``, and the old file is kept beside it.
    """
    table = load_table(source, "source data", require_target=True)
    if table.rows != UCI_CSV_ROWS:
        log.warning(
            "source data has %d rows; UCI's bank-full.csv has %d", table.rows, UCI_CSV_ROWS
        )
    frame = table.frame[FEATURE_COLUMNS + [TARGET_COLUMN]]
    text = frame.to_csv(index=False)
    if destination.exists():
        if sha256_file(destination) == hashlib.sha256(text.encode()).hexdigest():
            log.info("%s is up to date; nothing written", destination)
            return PrepareResult(destination, table.rows, False, str(source))
        if not force:
            raise InvalidInputError(
                f"{destination} exists with other content; pass --force to replace "
                f"it (the old file is kept as a timestamped copy beside it)"
            )
        _keep_old_copy(destination)
    write_atomic(destination, lambda temporary: temporary.write_text(text))
    log.info("wrote %s: %d rows", destination, table.rows)
    return PrepareResult(destination, table.rows, True, str(source))


def _keep_old_copy(path: Path) -> None:
    stamp = utc_timestamp().replace(":", "").replace("+0000", "Z")
    copy = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    write_exclusive(copy, lambda temporary: temporary.write_bytes(path.read_bytes()))
    log.info("kept the previous %s as %s", path.name, copy)
