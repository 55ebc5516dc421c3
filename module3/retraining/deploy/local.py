"""Local deployment target: MLflow Model Registry plus ``mlflow models serve``.

The retrain run's model becomes a version of ``banking_campaign_predictor_v2``
(one version per run, reused on rerun) and a scoring server for that version
starts in the background. Once the server responds to ``/ping`` and a smoke
test on real batch rows passes, the ``champion`` alias moves to the version,
``deployment_info.json`` is written and the server of the earlier deployment is
stopped. A failed redeploy therefore leaves the alias, the deployment info and
the old server as they were.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retraining.config import (
    CHAMPION_ALIAS,
    MODEL_ARTIFACT_PATH,
    MODEL_NAME,
    Workspace,
    env_setting,
    positive_float,
)
from retraining.data import DEFAULT_ID_COLUMN, FEATURE_COLUMNS, load_table
from retraining.drift_status import relative_to_workspace, resolve_workspace_path
from retraining.errors import ExternalServiceError, InvalidInputError
from retraining.files import (
    ensure_dir,
    read_state_json,
    utc_timestamp,
    write_state_with_history,
)
from retraining.tracking import Tracking, mlflow_errors, safe_uri

log = logging.getLogger(__name__)

HOST_ENV = "LOOP_SERVE_HOST"
PORT_ENV = "LOOP_SERVE_PORT"
SERVE_TIMEOUT_ENV = "LOOP_SERVE_TIMEOUT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
DEFAULT_SERVE_TIMEOUT_SECONDS = 180.0
REGISTRATION_TIMEOUT_SECONDS = 60.0
SMOKE_TEST_ROWS = 5
PROGRESS_INTERVAL_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 15.0
# Hosts that bind every interface; the job probes them through the loopback.
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
MAX_PORT = 65535
# Error codes of MLflow 3.17 stores for an alias that names no version yet.
MISSING_ALIAS_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class LocalSettings:
    """Host, port and startup timeout of the local scoring server."""

    host: str
    port: int
    serve_timeout: float


@dataclass
class ScoringServer:
    """A started ``mlflow models serve`` process."""

    process: subprocess.Popen
    host: str
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return server_url(self.host, self.port)


def add_local_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--host``, ``--port`` and ``--serve-timeout`` to ``parser``."""
    parser.add_argument(
        "--host",
        default=None,
        help=f"interface the local scoring server binds (env {HOST_ENV}; default "
        f"{DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=port_argument,
        default=None,
        help=f"port of the local scoring server; a free port is taken when another "
        f"program uses it (env {PORT_ENV}; default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--serve-timeout",
        type=positive_float,
        default=None,
        help=f"seconds to wait for the local scoring server to respond to /ping "
        f"(env {SERVE_TIMEOUT_ENV}; default {DEFAULT_SERVE_TIMEOUT_SECONDS:g})",
    )


def port_number(raw: str) -> int:
    """Parse a TCP port; raise ValueError unless it is a whole number in 1-65535."""
    try:
        value = int(raw)
    except ValueError:
        message = f"invalid port {raw!r}: use a number in 1-{MAX_PORT}"
        raise ValueError(message) from None
    if not 1 <= value <= MAX_PORT:
        raise ValueError(f"port {value} is out of range: use a port in 1-{MAX_PORT}")
    return value


def port_argument(raw: str) -> int:
    """Parse ``--port``; argparse prints an ArgumentTypeError's message."""
    try:
        return port_number(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_host(host: str) -> None:
    """Raise InvalidInputError unless the server can bind ``host`` on this machine.

    A dotted number that is no IPv4 address (``999.1.1.1``) is rejected without
    a DNS lookup. Other names are resolved, then bound to a free port.
    """
    fix = f"pass --host (env {HOST_ENV}) an address of this machine, e.g. 127.0.0.1"
    if host not in WILDCARD_HOSTS and not is_ip_address(host):
        if all(part.isdigit() for part in host.split(".")):
            raise InvalidInputError(f"invalid host {host!r}: not an IP address; {fix}")
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError) as error:
            raise InvalidInputError(
                f"invalid host {host!r}: the name does not resolve ({error}); {fix}"
            ) from None
    try:
        free_port(host)
    except OSError as error:
        raise InvalidInputError(
            f"invalid host {host!r}: cannot bind it on this machine ({error}); {fix}"
        ) from None


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_local_settings(args: argparse.Namespace) -> LocalSettings:
    """Return the server settings from flags, env vars and defaults.

    Raises InvalidInputError for a port outside 1-65535 or a host that this
    machine cannot bind.
    """
    host = getattr(args, "host", None) or env_setting(HOST_ENV, DEFAULT_HOST, str)
    port = getattr(args, "port", None) or env_setting(
        PORT_ENV, DEFAULT_PORT, port_number
    )
    timeout = getattr(args, "serve_timeout", None) or env_setting(
        SERVE_TIMEOUT_ENV, DEFAULT_SERVE_TIMEOUT_SECONDS, positive_float
    )
    check_host(host)
    return LocalSettings(host=host, port=port, serve_timeout=timeout)


def probe_host(host: str) -> str:
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def server_url(host: str, port: int) -> str:
    address = probe_host(host)
    if ":" in address:
        address = f"[{address}]"
    return f"http://{address}:{port}"


# Registry


def check_model_artifacts(
    tracking: Tracking, run_id: str, job3_uri: str | None = None
) -> str:
    """Return the artifact URI of the run's model after checking MLmodel is there.

    ``job3_uri`` is the tracking URI that job 3 recorded, named in the error.
    Raises InvalidInputError when the tracking store has no run ``run_id`` or
    the run has no ``model/MLmodel``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.uri)
    with mlflow_errors(tracking.uri, f"read run {run_id}"):
        try:
            run = client.get_run(run_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise run_not_found(tracking, run_id, job3_uri) from None
        listed = client.list_artifacts(run_id, MODEL_ARTIFACT_PATH)
    names = {Path(item.path).name for item in listed}
    if "MLmodel" not in names:
        raise InvalidInputError(
            f"run {run_id} has no {MODEL_ARTIFACT_PATH}/MLmodel artifact: rerun "
            f"module3/3_retrain_model.py --force to log the model again"
        )
    return f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"


def run_not_found(
    tracking: Tracking, run_id: str, job3_uri: str | None
) -> InvalidInputError:
    recorded = f" ({safe_uri(job3_uri)})" if job3_uri else ""
    return InvalidInputError(
        f"run {run_id} named in outputs/retrain_run_info.json was not found in "
        f"{tracking.display_uri}: rerun module3/3_retrain_model.py, or set "
        f"MLFLOW_TRACKING_URI to the tracking store job 3 used{recorded}"
    )


def find_version(client: Any, run_id: str) -> Any:
    """Return the newest non-failed registered version of ``run_id``, or None."""
    versions = client.search_model_versions(
        f"name = '{MODEL_NAME}' and run_id = '{run_id}'"
    )
    usable = [item for item in versions if item.status != "FAILED_REGISTRATION"]
    if not usable:
        return None
    return max(usable, key=lambda item: int(item.version))


def wait_until_ready(client: Any, version: str, timeout: float) -> None:
    """Poll the version until its status is READY; raise ExternalServiceError."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_model_version(MODEL_NAME, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise ExternalServiceError(
                f"registered model {MODEL_NAME} version {version} is {status}, not "
                f"READY: check the tracking server and rerun job 4"
            )
        time.sleep(1)


def register_run_model(
    tracking: Tracking, run_id: str, job3_uri: str | None = None
) -> str:
    """Register the run's model once per run and wait until the version is READY.

    Returns the version number; a rerun for the same run reuses its version.
    The ``champion`` alias is left alone (see ``point_alias``).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    source = check_model_artifacts(tracking, run_id, job3_uri)
    client = MlflowClient(tracking_uri=tracking.uri)
    with mlflow_errors(tracking.uri, f"register the model of run {run_id}"):
        try:
            client.create_registered_model(MODEL_NAME)
            log.info("created registered model %s", MODEL_NAME)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        existing = find_version(client, run_id)
        if existing is not None:
            version = str(existing.version)
            log.info("run %s is already version %s of %s", run_id, version, MODEL_NAME)
        else:
            created = client.create_model_version(MODEL_NAME, source, run_id=run_id)
            version = str(created.version)
            log.info("registered run %s as %s version %s", run_id, MODEL_NAME, version)
        wait_until_ready(client, version, REGISTRATION_TIMEOUT_SECONDS)
    return version


def point_alias(tracking: Tracking, version: str) -> str | None:
    """Point ``champion`` at ``version``; return the version it named before, if any."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.uri)
    with mlflow_errors(tracking.uri, f"set alias {CHAMPION_ALIAS} to {version}"):
        try:
            previous = str(
                client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version
            )
        except MlflowException as error:
            if error.error_code not in MISSING_ALIAS_CODES:
                raise
            previous = None
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, version)
    log.info(
        "alias %s now points at %s version %s", CHAMPION_ALIAS, MODEL_NAME, version
    )
    return previous


def restore_alias(tracking: Tracking, previous: str | None) -> None:
    """Point ``champion`` back at ``previous`` (or remove it); log any failure."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.uri)
    try:
        if previous is None:
            client.delete_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS)
        else:
            client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, previous)
    except Exception as error:  # the job is failing already; keep its error
        log.error(
            "could not restore alias %s to version %s: %s",
            CHAMPION_ALIAS,
            previous,
            error,
        )
        return
    log.info("restored alias %s to version %s", CHAMPION_ALIAS, previous)


# Scoring server processes


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in probe_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in probe_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def choose_port(host: str, requested: int) -> int:
    """Return ``requested`` if it is free on ``host``, else a free port (logged)."""
    if port_is_free(host, requested):
        return requested
    port = free_port(host)
    log.warning(
        "port %d on %s is in use; serving on free port %d", requested, host, port
    )
    return port


def is_scoring_server(pid: int) -> bool:
    """Return True if process ``pid`` runs ``mlflow models serve``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    parts = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    text = " ".join(parts)
    return "mlflow" in text and "models" in parts and "serve" in parts


def is_healthy(host: str, port: int, timeout: float = 3.0) -> bool:
    import requests

    try:
        response = requests.get(f"{server_url(host, port)}/ping", timeout=timeout)
    except requests.RequestException:
        return False
    return response.status_code == 200


def serve_command(version: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{MODEL_NAME}/{version}",
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
    ]


def serve_environment(tracking: Tracking) -> dict[str, str]:
    """Return the server's environment: the tracking URI and this venv on PATH.

    ``mlflow models serve`` starts ``uvicorn`` by name, so the folder of this
    interpreter goes first on PATH even when the virtualenv is not activated.
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")]).rstrip(os.pathsep)
    env["MLFLOW_TRACKING_URI"] = tracking.uri
    return env


def start_server(
    workspace: Workspace, tracking: Tracking, version: str, host: str, port: int
) -> ScoringServer:
    """Start ``mlflow models serve`` detached, logging to outputs/serving/."""
    log_dir = ensure_dir(workspace.outputs_dir / "serving")
    log_path = log_dir / f"server_{port}.log"
    command = serve_command(version, host, port)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=serve_environment(tracking),
            cwd=workspace.root,
            start_new_session=True,
        )
    log.info(
        "started scoring server pid %d for %s version %s on %s:%d (log %s)",
        process.pid,
        MODEL_NAME,
        version,
        host,
        port,
        log_path,
    )
    return ScoringServer(process=process, host=host, port=port, log_path=log_path)


def stop_process_group(pid: int) -> None:
    """Send SIGTERM to the process group of ``pid``, then SIGKILL if it stays."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not process_exists(pid):
            return
        time.sleep(0.2)
    log.warning("pid %d did not stop after SIGTERM; sending SIGKILL", pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def process_exists(pid: int) -> bool:
    """Return True if ``pid`` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_server(server: ScoringServer) -> None:
    stop_process_group(server.pid)
    try:
        server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("scoring server pid %d did not exit", server.pid)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_server(server: ScoringServer, timeout: float) -> None:
    """Wait until the server responds to GET /ping, else stop it and raise.

    Raises ExternalServiceError with the log path when the process exits or
    ``timeout`` seconds pass.
    """
    started = time.monotonic()
    next_progress = started + PROGRESS_INTERVAL_SECONDS
    while True:
        if server.process.poll() is not None:
            raise ExternalServiceError(
                f"scoring server exited with code {server.process.returncode} "
                f"before responding; see {server.log_path}:\n"
                f"{log_tail(server.log_path)}"
            )
        if is_healthy(server.host, server.port, timeout=2.0):
            print(f"scoring server is up after {time.monotonic() - started:.0f} s")
            return
        now = time.monotonic()
        if now - started > timeout:
            stop_server(server)
            raise ExternalServiceError(
                f"scoring server on port {server.port} did not respond to /ping within "
                f"{timeout:g} s and was stopped; see {server.log_path}, or raise "
                f"--serve-timeout (env {SERVE_TIMEOUT_ENV})"
            )
        if now >= next_progress:
            print(
                f"waiting for the scoring server on port {server.port} "
                f"({now - started:.0f} s of {timeout:g} s)",
                flush=True,
            )
            next_progress = now + PROGRESS_INTERVAL_SECONDS
        time.sleep(0.5)


# Smoke test


def sample_rows(workspace: Workspace) -> tuple[Any, str]:
    """Return up to SMOKE_TEST_ROWS feature rows and the file they came from.

    The rows come from the batch named in outputs/drift_status.json, as job 1
    wrote them minus the id column, else from banking_train.csv.
    """
    source = workspace.train_csv
    description = "training data"
    try:
        status = read_state_json(workspace.drift_status, "module3/1_check_drift.py")
        batch_path = (status.get("batch") or {}).get("path")
        # Job 1 records a batch outside the workspace by its absolute path.
        if batch_path and resolve_workspace_path(batch_path, workspace).is_file():
            source = resolve_workspace_path(batch_path, workspace)
            description = "batch"
    except InvalidInputError as error:
        log.info("smoke test uses training rows: %s", error)
    table = load_table(source, description, id_column=DEFAULT_ID_COLUMN)
    rows = table.frame[FEATURE_COLUMNS].head(SMOKE_TEST_ROWS)
    return rows, relative_to_workspace(source, workspace)


def request_payload(rows: Any) -> dict[str, Any]:
    """Return ``{"dataframe_split": ...}`` for ``rows``; missing values become null."""
    split = json.loads(rows.to_json(orient="split", index=False))
    return {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}


def smoke_test(base_url: str, payload: dict[str, Any]) -> list[str]:
    """POST ``payload`` to /invocations and return the predictions.

    Raises ExternalServiceError unless there is one "yes"/"no" per row.
    """
    import requests

    rows = len(payload["dataframe_split"]["data"])
    url = f"{base_url}/invocations"
    try:
        response = requests.post(url, json=payload, timeout=60)
    except requests.RequestException as error:
        raise ExternalServiceError(
            f"smoke test request to {url} failed: {error}"
        ) from None
    if response.status_code != 200:
        raise ExternalServiceError(
            f"smoke test: {url} returned HTTP {response.status_code}: "
            f"{response.text[:500]}"
        )
    predictions = response.json().get("predictions")
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise ExternalServiceError(
            f"smoke test: expected {rows} predictions from {url}, got {predictions!r}"
        )
    unexpected = [value for value in predictions if value not in ("yes", "no")]
    if unexpected:
        raise ExternalServiceError(
            f"smoke test: predictions must be 'yes' or 'no', got {unexpected[:5]}"
        )
    return predictions


# Deployment state


def previous_deployment(workspace: Workspace) -> dict[str, Any] | None:
    """Return the last deployment_info.json, or None if missing or corrupt."""
    if not workspace.deployment_info.exists():
        return None
    try:
        return read_state_json(
            workspace.deployment_info, "module3/4_register_and_deploy.py"
        )
    except InvalidInputError as error:
        log.warning("ignoring the previous deployment info: %s", error)
        return None


def live_local_server(previous: dict[str, Any] | None) -> bool:
    """Return True if ``previous`` is a local deployment whose server responds."""
    if not previous or previous.get("target") != "local":
        return False
    pid = previous.get("pid")
    port = previous.get("port")
    host = previous.get("host") or DEFAULT_HOST
    if not isinstance(pid, int) or not isinstance(port, int):
        return False
    return is_scoring_server(pid) and is_healthy(host, port)


def stop_previous_server(previous: dict[str, Any] | None, keep_pid: int) -> None:
    """Stop the server of ``previous`` if it is still an ``mlflow models serve``."""
    if not previous or previous.get("target") != "local":
        return
    pid = previous.get("pid")
    if not isinstance(pid, int) or pid == keep_pid:
        return
    if not is_scoring_server(pid):
        log.info("previous scoring server pid %s is not running", pid)
        return
    log.info("stopping the previous scoring server pid %d", pid)
    stop_process_group(pid)
    print(f"stopped the previous scoring server (pid {pid})")


def build_deployment_info(
    run_info: dict[str, Any],
    version: str,
    server: ScoringServer,
    workspace: Workspace,
    payload: dict[str, Any],
    predictions: list[str],
    sample_source: str,
) -> dict[str, Any]:
    return {
        "target": "local",
        "deployed": True,
        "model_name": MODEL_NAME,
        "run_id": run_info["run_id"],
        "training_files": run_info.get("training_files", []),
        "deployed_at": utc_timestamp(),
        "endpoint_url": f"{server.base_url}/invocations",
        "sample_request": payload,
        "version": version,
        "alias": CHAMPION_ALIAS,
        "host": server.host,
        "port": server.port,
        "pid": server.pid,
        "server_log": server.log_path.relative_to(workspace.root).as_posix(),
        "smoke_test": {
            "ok": True,
            "rows": len(predictions),
            "predictions": predictions,
            "source": sample_source,
        },
    }


def publish_deployment(
    workspace: Workspace,
    tracking: Tracking,
    server: ScoringServer,
    version: str,
    info: dict[str, Any],
) -> None:
    """Point ``champion`` at the served version, then write deployment_info.json.

    When either step fails (or the job is stopped), the new server stops and
    the alias goes back to the version it named before.
    """
    moved = False
    previous = None
    try:
        previous = point_alias(tracking, version)
        moved = True
        write_state_with_history(workspace.deployment_info, workspace.history_dir, info)
    except BaseException:
        stop_server(server)
        if moved:
            restore_alias(tracking, previous)
        raise


def print_usage(info: dict[str, Any]) -> None:
    body = json.dumps(info["sample_request"], separators=(",", ":"))
    print(f"endpoint: {info['endpoint_url']}")
    print(
        f"try it:   curl -X POST {info['endpoint_url']} -H "
        f"'Content-Type: application/json' -d '{body}'"
    )
    print(f"stop it:  kill {info['pid']}   (log: {info['server_log']})")


def deploy_local(
    args: argparse.Namespace,
    run_info: dict[str, Any],
    workspace: Workspace,
    tracking: Tracking,
    settings: LocalSettings | None = None,
) -> int:
    """Register, serve, smoke-test and alias the run's model; return the exit code.

    ``settings`` defaults to ``resolve_local_settings(args)``.
    """
    settings = settings or resolve_local_settings(args)
    run_id = run_info["run_id"]
    previous = previous_deployment(workspace)
    same_run = bool(previous and previous.get("run_id") == run_id)
    if same_run and previous.get("deployed") and live_local_server(previous):
        print(
            f"nothing to deploy: run {run_id} is already served as version "
            f"{previous.get('version')} at {previous.get('endpoint_url')} "
            f"(pid {previous.get('pid')}); no second server started"
        )
        return 0

    version = register_run_model(tracking, run_id, run_info.get("tracking_uri"))
    port = choose_port(settings.host, settings.port)
    server = start_server(workspace, tracking, version, settings.host, port)
    try:
        wait_for_server(server, settings.serve_timeout)
        rows, sample_source = sample_rows(workspace)
        payload = request_payload(rows)
        predictions = smoke_test(server.base_url, payload)
    except BaseException:
        stop_server(server)
        raise
    print(
        f"smoke test passed: {len(predictions)} rows of {sample_source} -> "
        f"{predictions}"
    )

    info = build_deployment_info(
        run_info, version, server, workspace, payload, predictions, sample_source
    )
    publish_deployment(workspace, tracking, server, version, info)
    stop_previous_server(previous, keep_pid=server.pid)
    print(f"serving {MODEL_NAME} version {version} (alias {CHAMPION_ALIAS})")
    print_usage(info)
    return 0
