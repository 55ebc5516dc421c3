"""Shared fixtures: the real data, a real MLflow server and job runners.

The data comes from ``BANK_MARKETING_CSV`` (UCI's ``bank-full.csv``); tests
that need it are skipped with the reason when it is unset. The MLflow server is
a real ``mlflow server`` process on 127.0.0.1 with a SQLite backend and a
temporary artifact root, started once per test session.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
MODULE3 = REPOSITORY_ROOT / "module3"
sys.path.insert(0, str(MODULE3))

SCRIPTS = {
    0: MODULE3 / "0_prepare_data.py",
    1: MODULE3 / "1_check_drift.py",
    2: MODULE3 / "2_simulate_labeling_job.py",
    3: MODULE3 / "3_retrain_model.py",
    4: MODULE3 / "4_register_and_deploy.py",
    "pipeline": MODULE3 / "run_pipeline.py",
    "setup_cml_jobs": MODULE3 / "setup_cml_jobs.py",
}

# Variables from the developer's shell that would change what a job does.
ISOLATED_ENV_VARS = (
    "BANK_MARKETING_CSV",
    "LOOP_DATA_URL",
    "LOOP_WORKDIR",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_REGISTRY_URI",
    "JOB_ARGUMENTS",
    "CDSW_PROJECT_ID",
    "CDSW_API_URL",
    "CDSW_APIV2_KEY",
    "CDSW_DOMAIN",
    "LOOP_CHAIN_MODE",
    "LOOP_DEPLOY_TARGET",
)


def write_batch_manifest(labeled: Path, source_batch: Path) -> None:
    """Write the manifest job 2 writes beside a labeled batch, for tests that
    stand in for jobs 1 and 2 with files of their own."""
    manifest = {
        "source_batch": {
            "path": f"data/{source_batch.name}",
            "sha256": hashlib.sha256(source_batch.read_bytes()).hexdigest(),
        },
        "label_source": {"kind": "test"},
        "path": labeled.name,
        "sha256": hashlib.sha256(labeled.read_bytes()).hexdigest(),
    }
    labeled.with_suffix(".json").write_text(json.dumps(manifest), encoding="utf-8")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def bank_csv() -> Path:
    """Path of UCI's bank-full.csv, from BANK_MARKETING_CSV."""
    raw = os.environ.get("BANK_MARKETING_CSV")
    if not raw:
        pytest.skip("BANK_MARKETING_CSV is not set: point it at UCI's bank-full.csv")
    path = Path(raw)
    if not path.is_file():
        pytest.fail(f"BANK_MARKETING_CSV={raw} is not a file")
    return path


@dataclass
class MlflowServer:
    uri: str
    process: subprocess.Popen
    log_path: Path

    def is_alive(self) -> bool:
        return self.process.poll() is None


def start_mlflow_server(folder: Path, port: int | None = None) -> MlflowServer:
    """Start ``mlflow server`` on 127.0.0.1 with SQLite and a local artifact root."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = folder / "mlflow-server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode}; see {log_path}"
            )
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                return MlflowServer(uri, process, log_path)
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_process(process)
    raise RuntimeError(f"mlflow server did not answer within 120 s; see {log_path}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)


def recorded_pids(workspace: Path) -> set[int]:
    """Return the scoring server pids that job 4 recorded in a workspace."""
    outputs = workspace / "outputs"
    paths = [outputs / "deployment_info.json"]
    paths += list((outputs / "history").glob("deployment_info*.json"))
    pids = set()
    for path in paths:
        if path.is_file():
            pid = json.loads(path.read_text(encoding="utf-8")).get("pid")
            if isinstance(pid, int):
                pids.add(pid)
    return pids


def stop_scoring_servers(workspace: Path) -> None:
    """Stop every scoring server job 4 started in ``workspace`` and left running."""
    from retraining.deploy.local import is_scoring_server, stop_process_group

    for pid in recorded_pids(workspace):
        if is_scoring_server(pid):
            stop_process_group(pid)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> MlflowServer:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    stop_process(server.process)


def job_env(workspace: Path, tracking_uri: str | None = None, **extra: str) -> dict:
    """Return an environment for a job subprocess, isolated from the caller's."""
    env = {
        key: value for key, value in os.environ.items() if key not in ISOLATED_ENV_VARS
    }
    env["LOOP_WORKDIR"] = str(workspace)
    env["PYTHONUNBUFFERED"] = "1"
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    env.update(extra)
    return env


def run_script(
    script, *args: str, env: dict, timeout: float = 900, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a job script with this interpreter and capture its output."""
    path = SCRIPTS.get(script, script)
    return subprocess.run(
        [sys.executable, str(path), *args],
        env=env,
        cwd=cwd or REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def workspace(tmp_path) -> Path:
    """An empty workspace folder for one test."""
    root = tmp_path / "workspace"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory, bank_csv) -> Path:
    """A ``banking_train.csv`` written once by job 0 from the real data."""
    root = tmp_path_factory.mktemp("prepared")
    result = run_script(0, "--source", str(bank_csv), env=job_env(root))
    assert result.returncode == 0, result.stderr
    return root / "data" / "banking_train.csv"


@pytest.fixture
def prepared_workspace(workspace, prepared_data) -> Path:
    """A workspace whose ``data/banking_train.csv`` is already written."""
    data = workspace / "data"
    data.mkdir()
    (data / "banking_train.csv").write_bytes(prepared_data.read_bytes())
    return workspace


@pytest.fixture(scope="session")
def checked_template(tmp_path_factory, prepared_data) -> Path:
    """A workspace in which job 1 checked the default simulated batch (drift)."""
    root = tmp_path_factory.mktemp("checked")
    (root / "data").mkdir()
    shutil.copy(prepared_data, root / "data" / "banking_train.csv")
    result = run_script(1, env=job_env(root))
    assert result.returncode == 1, result.stderr
    return root


@pytest.fixture
def checked(checked_template, tmp_path) -> Path:
    """A copy of ``checked_template`` that one test may change."""
    root = tmp_path / "checked"
    shutil.copytree(checked_template, root)
    return root
