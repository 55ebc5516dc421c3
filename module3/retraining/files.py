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
            f"failed to create folder {path}: a file is in the way; move or remove "
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
    return OutputWriteError(
        f"failed to write {path}: {reason}. Earlier outputs are intact"
    )


# Temporary files of writes in progress; run_job removes what an interrupted
# write left behind.
_PENDING_TEMPORARIES: set[Path] = set()


def remove_pending_temporaries() -> None:
    """Delete the temporary files of writes that did not finish."""
    for temporary in list(_PENDING_TEMPORARIES):
        temporary.unlink(missing_ok=True)
        _PENDING_TEMPORARIES.discard(temporary)


def _discard_temporary(temporary: Path) -> None:
    temporary.unlink(missing_ok=True)
    _PENDING_TEMPORARIES.discard(temporary)


def _write_temporary(path: Path, write: Callable[[Path], None]) -> Path:
    ensure_dir(path.parent)
    try:
        handle, temporary_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as error:
        raise _write_error(path, error) from None
    temporary = Path(temporary_name)
    _PENDING_TEMPORARIES.add(temporary)
    try:
        os.close(handle)
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
    except BaseException as error:
        _discard_temporary(temporary)
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
        raise _write_error(path, error) from None
    finally:
        _discard_temporary(temporary)


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
        _discard_temporary(temporary)


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
    when the file is missing, unreadable, not a JSON object or lacks a key. A
    dotted key (``batch.sha256``) names a key inside a nested object.
    """
    if not path.exists():
        raise InvalidInputError(
            f"{path} not found: run {written_by} first, which writes it"
        )
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _invalid_state(path, written_by, f"not valid JSON: {error}") from None
    except OSError as error:
        raise _invalid_state(path, written_by, f"cannot be read: {error}") from None
    if not isinstance(payload, dict):
        raise _invalid_state(path, written_by, "expected a JSON object")
    missing = [key for key in required_keys if not _has_key(payload, key)]
    if missing:
        raise _invalid_state(path, written_by, f"missing keys {missing}")
    return payload


def _has_key(payload: dict[str, Any], dotted_key: str) -> bool:
    value: Any = payload
    for key in dotted_key.split("."):
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def _invalid_state(path: Path, written_by: str, reason: str) -> InvalidInputError:
    return InvalidInputError(
        f"{path} is corrupt or invalid ({reason}); the file is written by "
        f"{written_by}: rerun that job to write it again"
    )


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


def archive_state_file(path: Path, history_dir: Path) -> Path | None:
    """Copy ``path`` to ``history_dir/<stem>_<UTC time><suffix>``; return the copy.

    Returns None when ``path`` does not exist. Existing copies are never
    overwritten: a second copy in the same second gets a counter.
    """
    if not path.is_file():
        return None
    content = path.read_bytes()
    stamp = utc_timestamp().replace(":", "").replace("+0000", "Z")
    counter = 1
    while True:
        name = f"{path.stem}_{stamp}{'' if counter == 1 else f'_{counter}'}"
        target = history_dir / f"{name}{path.suffix}"
        try:
            write_exclusive(target, lambda temporary: temporary.write_bytes(content))
            return target
        except FileExistsError:
            counter += 1


def write_state_with_history(
    path: Path, history_dir: Path, payload: dict[str, Any]
) -> None:
    """Keep the previous ``path`` under ``history_dir``, then write ``payload``."""
    archived = archive_state_file(path, history_dir)
    if archived:
        log.info("kept the previous %s as %s", path.name, archived)
    write_json_atomic(path, payload)
    log.info("wrote %s", path)
