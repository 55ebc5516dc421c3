"""Atomic and exclusive writes, state files, the job lock and exit code mapping."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal

import pytest

from retraining import cli, files
from retraining.errors import (
    ExternalServiceError,
    InvalidInputError,
    JobLockedError,
    LoopError,
    Terminated,
)
from retraining.files import (
    OutputWriteError,
    job_lock,
    next_numbered_path,
    read_state_json,
    write_atomic,
    write_exclusive,
    write_json_atomic,
)


@pytest.fixture
def restore_process_state():
    """Undo what run_job changes in this process: logging, signal handlers."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sigterm = signal.getsignal(signal.SIGTERM)
    sigint = signal.getsignal(signal.SIGINT)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    signal.signal(signal.SIGTERM, sigterm)
    signal.signal(signal.SIGINT, sigint)


def write_text(text: str):
    return lambda temporary: temporary.write_text(text)


def fail_with(error: BaseException):
    def write(temporary):
        temporary.write_text("half")
        raise error

    return write


# write_atomic and write_exclusive.


def test_write_atomic_replaces_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")

    write_atomic(path, write_text("new"))

    assert path.read_text() == "new"
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), Terminated(), RuntimeError("bug")]
)
def test_write_atomic_interrupted_keeps_old(tmp_path, error):
    path = tmp_path / "state.json"
    path.write_text("old")

    with pytest.raises(type(error)):
        write_atomic(path, fail_with(error))

    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_write_atomic_enospc_message(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_text("old")

    def no_space(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", no_space)
    with pytest.raises(OutputWriteError) as raised:
        write_atomic(path, write_text("new"))

    assert str(path) in str(raised.value)
    assert "no space left on device" in str(raised.value)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_write_exclusive_never_overwrites(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("first")

    with pytest.raises(FileExistsError):
        write_exclusive(path, write_text("second"))

    assert path.read_text() == "first"
    assert list(tmp_path.iterdir()) == [path]


def test_write_exclusive_interrupted_writes_nothing(tmp_path):
    path = tmp_path / "batch.csv"

    with pytest.raises(KeyboardInterrupt):
        write_exclusive(path, fail_with(KeyboardInterrupt()))

    assert list(tmp_path.iterdir()) == []


def test_file_in_the_way_message(tmp_path):
    (tmp_path / "outputs").write_text("x")

    with pytest.raises(OutputWriteError, match="a file is in the way"):
        write_json_atomic(tmp_path / "outputs" / "state.json", {"a": 1})


def test_pending_temporaries_removed(tmp_path):
    left = tmp_path / ".state.json.abc.tmp"
    left.write_text("half")
    files._PENDING_TEMPORARIES.add(left)

    files.remove_pending_temporaries()

    assert list(tmp_path.iterdir()) == []
    assert files._PENDING_TEMPORARIES == set()


def test_next_numbered_path_skips_taken(tmp_path):
    for name in ("batch_01.csv", "batch_07.csv", "batch_x.csv", "batch_03.json"):
        (tmp_path / name).write_text("")

    assert next_numbered_path(tmp_path, "batch_", ".csv").name == "batch_08.csv"


# read_state_json.

STATE_CASES = {
    "missing": (None, "not found"),
    "truncated": ('{"batch": {"pa', "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "binary": (b"\xff\xfe\x00", "not valid JSON"),
    "list": ("[]", "expected a JSON object"),
    "nested_missing": ('{"batch": {"path": "x"}}', "missing keys ['batch.sha256']"),
    "nested_not_object": ('{"batch": 3}', "missing keys ['batch.path'"),
}


@pytest.mark.parametrize("case", STATE_CASES)
def test_read_state_json_rejects(tmp_path, case):
    content, message = STATE_CASES[case]
    path = tmp_path / "drift_status.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)

    with pytest.raises(InvalidInputError) as raised:
        read_state_json(path, "module3/1_check_drift.py", ("batch.path", "batch.sha256"))

    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert "module3/1_check_drift.py" in str(raised.value)


def test_read_state_json_nested_keys(tmp_path):
    path = tmp_path / "drift_status.json"
    path.write_text(json.dumps({"batch": {"path": "a", "sha256": "b"}}))

    payload = read_state_json(path, "job", ("batch.path", "batch.sha256"))

    assert payload["batch"]["sha256"] == "b"


# job_lock.


def test_job_lock_second_holder_rejected(tmp_path):
    with job_lock(tmp_path, "1_check_drift") as lock_path:
        with pytest.raises(JobLockedError) as raised:
            with job_lock(tmp_path, "1_check_drift"):
                pass

    assert str(lock_path) in str(raised.value)
    assert "already running" in str(raised.value)


def test_job_lock_released_after_use(tmp_path):
    with job_lock(tmp_path, "0_prepare_data"):
        pass

    with job_lock(tmp_path, "0_prepare_data") as lock_path:
        assert lock_path.exists()


# run_job: exit codes.


def run_with(main, tmp_path, parser=None, argv=()):
    parser = parser or argparse.ArgumentParser()
    return cli.run_job("test_job", parser, main, ["--workdir", str(tmp_path), *argv])


def raise_error(error: BaseException):
    def main(args, workspace):
        raise error

    return main


def import_broken_package(args, workspace):
    try:
        exec("raise ImportError('broken build')", {"__name__": "pandas"})
    except ImportError as error:
        raise error


EXIT_CASES = [
    (raise_error(InvalidInputError("bad value")), 2),
    (raise_error(ExternalServiceError("mlflow down")), 3),
    (raise_error(LoopError("other")), 4),
    (raise_error(OSError(errno.EIO, "I/O error")), 4),
    (raise_error(RuntimeError("bug")), 4),
    (raise_error(ModuleNotFoundError("no pandas", name="pandas")), 4),
    (raise_error(SystemExit(1)), 4),
    (raise_error(SystemExit(3)), 3),
    (raise_error(KeyboardInterrupt()), 130),
    (raise_error(Terminated()), 143),
    (lambda args, workspace: 1, 1),
    (lambda args, workspace: 0, 0),
]


@pytest.mark.parametrize("main, code", EXIT_CASES)
def test_run_job_exit_codes(restore_process_state, tmp_path, main, code):
    assert run_with(main, tmp_path) == code


def test_run_job_names_broken_package(restore_process_state, tmp_path, capsys):
    code = run_with(import_broken_package, tmp_path)

    assert code == 4
    assert "failed to import pandas (broken build)" in capsys.readouterr().err


def test_run_job_parser_error_exits_2(restore_process_state, tmp_path):
    def build_parser():
        raise InvalidInputError("invalid value in LOOP_SEED")

    assert run_with(lambda args, workspace: 0, tmp_path, parser=build_parser) == 2


def test_run_job_bad_job_arguments_exits_2(
    restore_process_state, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("JOB_ARGUMENTS", "--seed 'unclosed")

    code = run_with(lambda args, workspace: 0, tmp_path)

    assert code == 2
    assert "JOB_ARGUMENTS" in capsys.readouterr().err


def test_run_job_redacts_secrets(restore_process_state, tmp_path, monkeypatch, capsys):
    secret = "s3cr3t-value-x91"
    monkeypatch.setenv("CDSW_APIV2_KEY", secret)

    def main(args, workspace):
        print(f"token {secret}")
        logging.getLogger("retraining.test").info("using %s", secret)
        raise RuntimeError(f"request failed with key {secret}")

    code = run_with(main, tmp_path)
    captured = capsys.readouterr()

    assert code == 4
    assert secret not in captured.out
    assert secret not in captured.err
    assert "request failed with key ***" in captured.err
