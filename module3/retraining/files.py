"""File helpers that never leave a half-written file or overwrite data silently.

State files (JSON, HTML reports) are replaced atomically: written to a
temporary file in the same folder, flushed to disk, then renamed over the old
one. Data files (batches, labeled batches) are created exclusively: if the name
exists already, the write fails and the existing file stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from retraining.errors import InvalidInputError, JobLockedError, LoopError

log = logging.getLogger(__name__)


class OutputWriteError(LoopError):
    """A job could not write an output file (disk full, read-only, not a folder)."""


def utc_timestamp() -> str:
    """Return the current time as an ISO 8601 string in UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_dir(path: Path) -> Path:
    """Create ``path`` and its parents; raise OutputWriteError with the fix if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputWriteError(
            f"cannot create folder {path}: a file is in the way; move or remove "
            f"that file, or choose another workspace with --workdir"
        ) from None
    except OSError as error:
        raise _write_error(path, error) from None
    return path


def _write_error(path: Path, error: OSError) -> OutputWriteError:
    if error.errno == errno.ENOSPC:
        reason = "no space left on device; free space and rerun the job"
    elif error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = f"{error.strerror}; make the folder writable or use --workdir"
    else:
        reason = f"{error.strerror or error}"
    return OutputWriteError(f"cannot write {path}: {reason}. Earlier outputs are intact")


def _write_temporary(path: Path, write: Callable[[Path], None]) -> Path:
    ensure_dir(path.parent)
    handle, temporary_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise
    return temporary


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write a file through ``write(temporary_path)`` and rename it over ``path``."""
    temporary = _write_temporary(path, write)
    try:
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _write_error(path, error) from None


def write_exclusive(path: Path, write: Callable[[Path], None]) -> None:
    """Write a new file at ``path``; raise FileExistsError if it exists already.

    The content is complete before the name appears, because the temporary file
    is hard-linked to the final name, which fails if the name is taken.
    """
    temporary = _write_temporary(path, write)
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError as error:
        raise _write_error(path, error) from None
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n"
    write_text_atomic(path, text)


def read_state_json(
    path: Path, written_by: str, required_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Read a state file that another job writes, or raise InvalidInputError.

    ``written_by`` names the job to run (for example ``module3/1_check_drift.py``)
    when the file is missing, unreadable, not a JSON object or lacks a key.
    """
    if not path.exists():
        raise InvalidInputError(
            f"{path} not found: run {written_by} first, which writes it"
        )
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(
            f"{path} is corrupt ({error}): rerun {written_by} to write it again"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidInputError(
            f"{path} is corrupt (expected a JSON object): rerun {written_by}"
        )
    missing = [key for key in required_keys if key not in payload]
    if missing:
        raise InvalidInputError(
            f"{path} is corrupt (missing keys {missing}): rerun {written_by}"
        )
    return payload


def numbered_paths(folder: Path, prefix: str, suffix: str) -> list[tuple[int, Path]]:
    """Return ``(number, path)`` for files named ``{prefix}NN{suffix}``, sorted."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+){re.escape(suffix)}$")
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = pattern.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def next_numbered_path(folder: Path, prefix: str, suffix: str) -> Path:
    """Return the first unused ``{prefix}NN{suffix}`` after the highest number."""
    existing = numbered_paths(folder, prefix, suffix)
    number = existing[-1][0] + 1 if existing else 1
    return folder / f"{prefix}{number:02d}{suffix}"


@contextlib.contextmanager
def job_lock(lock_dir: Path, job_name: str) -> Iterator[Path]:
    """Hold an exclusive lock for one job in one workspace, or raise JobLockedError.

    The lock is an ``flock`` on a file, so the kernel releases it when the
    process dies; a stale lock file from a killed run does not block the next.
    """
    ensure_dir(lock_dir)
    lock_path = lock_dir / f"{job_name}.lock"
    try:
        handle = open(lock_path, "a+")
    except OSError as error:
        raise _write_error(lock_path, error) from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLockedError(
                f"job {job_name} is already running in this workspace (lock "
                f"{lock_path} is held); wait for it to finish"
            ) from None
        try:
            yield lock_path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
