"""Faults around the jobs: unwritable folders, a full disk, signals, a second
copy of a job, reruns, broken imports, unexpected exceptions and secrets.

Jobs run as real subprocesses. Faults inside a job are injected through a
``sitecustomize`` module on ``PYTHONPATH``, which Python imports at start-up.
A read-only folder and a full disk are real tmpfs or bind mounts where the
test runs as root; elsewhere those tests are skipped with the reason, and the
injected faults still cover the same code paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SCRIPTS, job_env, run_script

SECRETS = {
    "CDSW_APIV2_KEY": "cdsw-secret-7f3a9c",
    "LOOP_CML_API_KEY": "cml-secret-51bd02",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-password-c4e8",
    "MLFLOW_TRACKING_TOKEN": "mlflow-token-9d21aa",
}

SITECUSTOMIZE = '''
import errno
import os

_fault = os.environ.get("TEST_FAULT", "")
_real_fsync = os.fsync


def _failing_fsync(descriptor):
    if _fault == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if _fault == "secret":
        raise RuntimeError("fsync failed for key " + os.environ["CDSW_APIV2_KEY"])
    return _real_fsync(descriptor)


if _fault:
    os.fsync = _failing_fsync

if _fault == "logging":
    import logging

    def _broken_handler(self, *args, **kwargs):
        raise RuntimeError("log handler broken, key " + os.environ["CDSW_APIV2_KEY"])

    logging.StreamHandler.__init__ = _broken_handler
'''


def snapshot(root: Path) -> dict[str, str]:
    """Return the SHA-256 of every file under ``root`` except the lock files."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".locks" not in path.parts
    }


def leftover_temporaries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


@pytest.fixture(scope="module")
def fault_path(tmp_path_factory) -> Path:
    """A folder with the fault-injecting ``sitecustomize`` module."""
    folder = tmp_path_factory.mktemp("fault-site")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def fault_env(root: Path, fault_path: Path, fault: str, **extra: str) -> dict:
    return job_env(root, PYTHONPATH=str(fault_path), TEST_FAULT=fault, **extra)


@contextlib.contextmanager
def mounted(target: Path, *options: str):
    """Mount at ``target`` for the block, or skip the test where mount is denied."""
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", *options, str(target)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"mount is not permitted here: {result.stderr.decode().strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` a read-only bind mount of itself for the block."""
    with mounted(folder, "--bind", str(folder)):
        remount = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True
        )
        if remount.returncode != 0:
            pytest.skip(f"read-only remount denied: {remount.stderr.decode().strip()}")
        yield folder


# Output folders that cannot be written.


def test_file_instead_of_outputs_exits_4(checked):
    outputs = checked / "outputs"
    shutil.rmtree(outputs)
    outputs.write_text("not a folder\n")
    before = snapshot(checked)

    result = run_script(1, env=job_env(checked))

    assert result.returncode == 4, result.stderr
    assert "a file is in the way" in result.stderr
    assert str(outputs) in result.stderr
    assert snapshot(checked) == before


def test_file_instead_of_data_exits_4(bank_csv, tmp_path):
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "data").write_text("not a folder\n")
    before = snapshot(root)

    result = run_script(0, "--source", str(bank_csv), env=job_env(root))

    assert result.returncode == 4, result.stderr
    assert "a file is in the way" in result.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("folder", ["outputs", "data"])
def test_read_only_folder_exits_4(checked, folder):
    (checked / "data" / "production_batch_01.csv").unlink()
    (checked / "data" / "production_batch_01_outcomes.csv").unlink()
    before = snapshot(checked)

    with read_only(checked / folder):
        result = run_script(1, env=job_env(checked))
        after = snapshot(checked)

    assert result.returncode == 4, result.stderr
    assert "Read-only file system" in result.stderr
    assert "Earlier outputs are intact" in result.stderr
    assert after == before


# A full disk.


def test_full_disk_exits_4(checked):
    outputs = checked / "outputs"
    saved = checked.parent / "outputs-before"
    shutil.move(outputs, saved)
    size = sum(path.stat().st_size for path in saved.rglob("*") if path.is_file())
    with mounted(outputs, "-t", "tmpfs", "-o", f"size={size + (1 << 20)}", "tmpfs"):
        shutil.copytree(saved, outputs, dirs_exist_ok=True)
        with open(outputs / "filler", "wb") as filler:
            with contextlib.suppress(OSError):
                filler.write(b"\0" * (2 << 20))
        before = snapshot(outputs)
        result = run_script(1, env=job_env(checked))
        after = snapshot(outputs)
        temporaries = leftover_temporaries(outputs)

    assert result.returncode == 4, result.stderr
    assert "no space left on device" in result.stderr
    assert "Earlier outputs are intact" in result.stderr
    assert after == before
    assert temporaries == []


def test_injected_enospc_exits_4(checked, fault_path):
    before = snapshot(checked)

    result = run_script(2, env=fault_env(checked, fault_path, "enospc"))

    assert result.returncode == 4, result.stderr
    assert "no space left on device" in result.stderr
    assert "new_labeled_batch_01.csv" in result.stderr
    assert snapshot(checked) == before
    assert leftover_temporaries(checked) == []


# Signals.


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def start_job(script, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS[script])],
        env=job_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lock_is_held(lock_path: Path) -> bool:
    if not lock_path.exists():
        return False
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


SIGNAL_CASES = [
    # The signal, what the job is doing when it arrives, and the exit code.
    (signal.SIGINT, "checking drift", 130),
    (signal.SIGTERM, "reading the reference", 143),
]


@pytest.mark.parametrize("signum, moment, code", SIGNAL_CASES)
def test_signal_leaves_no_partial_files(prepared_workspace, signum, moment, code):
    root = prepared_workspace
    lock = root / "outputs" / ".locks" / "1_check_drift.lock"
    batch = root / "data" / "production_batch_01.csv"
    process = start_job(1, root)
    wait_for(lambda: lock_is_held(lock))
    if moment == "checking drift":
        wait_for(lambda: batch.exists())
        time.sleep(0.5)
    else:
        time.sleep(0.3)

    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    again = run_script(1, env=job_env(root))
    batches = sorted(p.name for p in (root / "data").glob("production_batch_*"))

    assert process.returncode == code, stderr
    assert "no partial output was kept" in stderr
    assert leftover_temporaries(root) == []
    assert again.returncode == 1, again.stderr
    assert batches == ["production_batch_01.csv", "production_batch_01_outcomes.csv"]
    assert len(list((root / "outputs" / "history").glob("*_status.json"))) == 1


def test_orphan_outcomes_file_does_not_block(prepared_workspace):
    data = prepared_workspace / "data"
    (data / "production_batch_01_outcomes.csv").write_text("record_id,y\n")

    result = run_script(1, env=job_env(prepared_workspace), timeout=120)

    assert result.returncode == 1, result.stderr
    assert (data / "production_batch_02.csv").exists()
    assert (data / "production_batch_01_outcomes.csv").read_text() == "record_id,y\n"


# The same job twice at once.


def test_second_copy_exits_4_at_once(prepared_workspace):
    root = prepared_workspace
    lock = root / "outputs" / ".locks" / "1_check_drift.lock"
    first = start_job(1, root)
    wait_for(lambda: lock_is_held(lock))

    started = time.monotonic()
    second = run_script(1, env=job_env(root), timeout=60)
    waited = time.monotonic() - started
    first_stdout, first_stderr = first.communicate(timeout=300)

    assert second.returncode == 4, second.stderr
    assert "already running" in second.stderr
    assert str(lock) in second.stderr
    assert waited < 10
    assert first.returncode == 1, first_stderr
    assert len(list((root / "data").glob("production_batch_*.csv"))) == 2
    assert len(list((root / "outputs" / "history").glob("*_status.json"))) == 1


# Reruns.


def test_rerun_jobs_0_1_2_is_safe(checked, bank_csv):
    train = checked / "data" / "banking_train.csv"
    train_before = train.read_bytes()

    prepare = run_script(0, "--source", str(bank_csv), env=job_env(checked))
    check = run_script(1, env=job_env(checked))
    first_label = run_script(2, env=job_env(checked))
    second_label = run_script(2, env=job_env(checked))
    data = sorted(p.name for p in (checked / "data").iterdir())

    assert prepare.returncode == 0, prepare.stderr
    assert "up to date" in prepare.stdout
    assert train.read_bytes() == train_before
    assert check.returncode == 1, check.stderr
    assert first_label.returncode == 0, first_label.stderr
    assert second_label.returncode == 0, second_label.stderr
    assert "already labeled" in second_label.stdout
    assert data == [
        "banking_train.csv",
        "new_labeled_batch_01.csv",
        "new_labeled_batch_01.json",
        "production_batch_01.csv",
        "production_batch_01_outcomes.csv",
    ]


# Broken imports and unexpected exceptions.


@pytest.fixture(scope="module")
def broken_pandas(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("broken-site")
    package = folder / "pandas"
    package.mkdir()
    (package / "__init__.py").write_text(
        'raise ImportError("this pandas build is broken")\n'
    )
    return folder


@pytest.mark.parametrize("script", [0, 1, 2, 3, 4])
def test_broken_pandas_exits_4(workspace, broken_pandas, script):
    env = job_env(workspace, PYTHONPATH=str(broken_pandas))

    result = run_script(script, env=env, timeout=120)

    assert result.returncode == 4, result.stderr
    assert "pandas" in result.stderr
    assert "this pandas build is broken" in result.stderr


def test_unexpected_exception_exits_4(checked, fault_path):
    before = snapshot(checked)

    result = run_script(2, env=fault_env(checked, fault_path, "secret"))

    assert result.returncode == 4, result.stderr
    assert "unexpected error" in result.stderr
    assert snapshot(checked) == before


def test_error_outside_run_job_exits_4(workspace, fault_path):
    env = fault_env(workspace, fault_path, "logging", **SECRETS)

    result = run_script(1, env=env)

    assert result.returncode == 4, result.stderr
    assert "log handler broken" in result.stderr
    assert SECRETS["CDSW_APIV2_KEY"] not in result.stderr


@pytest.mark.parametrize("variable", ["LOOP_BATCH_SIZE", "LOOP_SEED", "LOOP_CHAIN_MODE"])
def test_bad_environment_value_exits_2(workspace, variable):
    result = run_script(1, env=job_env(workspace, **{variable: "many"}))

    assert result.returncode == 2, result.stderr
    assert variable in result.stderr
    assert "'many'" in result.stderr


# Secrets.


def test_secrets_never_written(checked, fault_path, tmp_path):
    secret = SECRETS["CDSW_APIV2_KEY"]
    runs = [
        run_script(2, env=fault_env(checked, fault_path, "secret", **SECRETS)),
        run_script(
            1,
            "--current",
            str(tmp_path / secret / "batch.csv"),
            env=job_env(checked, **SECRETS),
        ),
        run_script(1, env=job_env(checked, LOOP_BATCH_SIZE=secret, **SECRETS)),
        run_script(
            1, env=job_env(checked, JOB_ARGUMENTS=f"--seed '{secret}", **SECRETS)
        ),
    ]
    files = [path for path in checked.rglob("*") if path.is_file()]

    assert [run.returncode for run in runs] == [4, 2, 2, 2]
    assert "***" in runs[0].stderr
    for value in SECRETS.values():
        for run in runs:
            assert value not in run.stdout
            assert value not in run.stderr
        for path in files:
            assert value.encode() not in path.read_bytes(), path


# Paths.


def test_workdir_that_is_a_file_exits_2(tmp_path):
    not_a_folder = tmp_path / "workspace"
    not_a_folder.write_text("x\n")

    result = run_script(1, env=job_env(not_a_folder))

    assert result.returncode == 2, result.stderr
    assert "is not a directory" in result.stderr


def test_relative_workdir_resolved(bank_csv, tmp_path):
    result = run_script(
        0, "--workdir", "relative/ws", "--source", str(bank_csv),
        env=job_env(tmp_path / "unused"), cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "relative" / "ws" / "data" / "banking_train.csv").is_file()
    assert not (tmp_path / "unused").exists()


def test_files_outside_workspace_untouched(checked, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious.json"
    target.write_text('{"keep": true}\n')
    status = checked / "outputs" / "drift_status.json"
    status.unlink()
    status.symlink_to(target)
    (checked / "data" / "production_batch_02.csv").symlink_to(target)
    before = snapshot(outside)

    result = run_script(1, env=job_env(checked))

    assert result.returncode == 1, result.stderr
    assert snapshot(outside) == before
    assert not status.is_symlink()
    assert json.loads(status.read_text())["drift_detected"] is True
