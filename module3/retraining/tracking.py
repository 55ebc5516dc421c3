"""MLflow configuration shared by the jobs that log, register and serve models.

``configure_tracking`` decides where MLflow writes (``MLFLOW_TRACKING_URI``, else
a SQLite file in the workspace, else nothing inside CML, which preconfigures
MLflow), checks that an HTTP tracking server responds before the first MLflow
call, and bounds MLflow's own HTTP retries so that a server that stops during
a job fails the job in about a minute. ``mlflow_errors`` turns MLflow and HTTP
errors into ExternalServiceError (exit code 3) with the URI, without
credentials, in the message.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from retraining.config import EXPERIMENT_NAME, Workspace, env_setting, positive_float
from retraining.errors import ExternalServiceError, InvalidInputError, LoopError

log = logging.getLogger(__name__)

TIMEOUT_ENV = "LOOP_MLFLOW_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 60.0
CML_PROJECT_ENV = "CDSW_PROJECT_ID"

# MLflow 3.17 reads these in mlflow/environment_variables.py. Its defaults (7
# retries with backoff factor 2, 120 s per request) keep a job waiting for
# minutes when the server has gone away.
HTTP_MAX_RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
HTTP_BACKOFF_FACTOR_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
HTTP_BACKOFF_JITTER_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"
HTTP_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
HTTP_MAX_RETRIES = 2
HTTP_BACKOFF_FACTOR = 1
HTTP_BACKOFF_JITTER = 0.5
# Seconds between two reachability probes of the tracking server.
PROBE_INTERVAL_SECONDS = 2.0
# URI schemes that MLflow 3.17 registers a tracking store for (its
# _tracking_store_registry), apart from file paths. "mysql+pymysql" and the
# like count by the part before "+".
TRACKING_SCHEMES = (
    "http",
    "https",
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "databricks",
    "databricks-uc",
    "uc",
)
# MLflow 3.17 rejects a file store (./mlruns, file:///...) unless this is true.
ALLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
ACCEPTED_FORMS = (
    "http(s)://host:port, sqlite:///path/to/mlflow.db, postgresql://, mysql://, "
    "mssql://, databricks, or unset it to use the workspace's SQLite store"
)


@dataclass(frozen=True)
class Tracking:
    """Tracking URI and experiment that a job's MLflow calls use."""

    uri: str
    experiment_id: str
    experiment_name: str

    @property
    def display_uri(self) -> str:
        return safe_uri(self.uri)


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--mlflow-timeout`` (env LOOP_MLFLOW_TIMEOUT) to ``parser``."""
    parser.add_argument(
        "--mlflow-timeout",
        type=positive_float,
        default=None,
        help=f"seconds to wait for an HTTP tracking server to respond before the "
        f"job fails with exit code 3 (env {TIMEOUT_ENV}; default "
        f"{DEFAULT_TIMEOUT_SECONDS:g})",
    )


def resolve_timeout(args: argparse.Namespace) -> float:
    """Return ``--mlflow-timeout``, else LOOP_MLFLOW_TIMEOUT, else 60 seconds."""
    flag = getattr(args, "mlflow_timeout", None)
    if flag is not None:
        return float(flag)
    return env_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS, positive_float)


def safe_uri(uri: str) -> str:
    """Return ``uri`` without user name, password or query string."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc and not parts.query:
        # Unchanged: urlunsplit would drop a slash from "sqlite:////abs/path".
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_http_uri(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def check_tracking_uri(uri: str) -> None:
    """Raise InvalidInputError unless MLflow 3.17 has a tracking store for ``uri``.

    Also rejects an HTTP URI with a port that is no number in 1-65535, and a
    file store path unless MLFLOW_ALLOW_FILE_STORE is true.
    """
    display = safe_uri(uri)
    scheme = urlsplit(uri).scheme.lower()
    base = scheme.split("+", 1)[0]
    if uri.lower() in ("databricks", "databricks-uc", "uc"):
        return
    if base in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter
        check_file_store(display)
        return
    if base not in TRACKING_SCHEMES:
        raise InvalidInputError(
            f"unsupported MLFLOW_TRACKING_URI {display!r}: MLflow has no tracking "
            f"store for scheme {scheme!r}. Use one of: {ACCEPTED_FORMS}"
        )
    if base in ("http", "https"):
        check_http_uri(uri)


def check_tracking_env() -> None:
    """Check MLFLOW_TRACKING_URI if it is set (see ``check_tracking_uri``)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if configured:
        check_tracking_uri(configured)


def check_file_store(display: str) -> None:
    allowed = os.environ.get(ALLOW_FILE_STORE_ENV, "").strip().lower()
    if allowed in ("1", "true", "yes", "on"):
        return
    raise InvalidInputError(
        f"unsupported MLFLOW_TRACKING_URI {display!r}: MLflow 3.17 rejects a file "
        f"store unless {ALLOW_FILE_STORE_ENV}=true. Set that, or use one of: "
        f"{ACCEPTED_FORMS}"
    )


def check_http_uri(uri: str) -> None:
    parts = urlsplit(uri)
    display = safe_uri(uri)
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(
            f"invalid port in MLFLOW_TRACKING_URI {display!r}: use "
            f"http(s)://host:port with a port in 1-65535"
        ) from None
    if port == 0 or not parts.hostname:
        raise InvalidInputError(
            f"invalid MLFLOW_TRACKING_URI {display!r}: use http(s)://host:port "
            f"with a host name and a port in 1-65535"
        )


def inside_cml() -> bool:
    return bool(os.environ.get(CML_PROJECT_ENV, "").strip())


def bound_http_retries(timeout: float) -> None:
    """Limit MLflow's HTTP retries and per-request timeout to about ``timeout``.

    Values the user set in the environment are kept. The per-request timeout is
    a sixth of ``timeout`` (at least 5 s): against a server that accepts
    connections but hangs, MLflow 3.17 took about 100 s to fail with 20 s per
    request and 2 retries, and about half of that with 10 s.
    """
    request_timeout = max(5, int(timeout // 6))
    defaults = {
        HTTP_MAX_RETRIES_ENV: str(HTTP_MAX_RETRIES),
        HTTP_BACKOFF_FACTOR_ENV: str(HTTP_BACKOFF_FACTOR),
        HTTP_BACKOFF_JITTER_ENV: str(HTTP_BACKOFF_JITTER),
        HTTP_TIMEOUT_ENV: str(request_timeout),
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def wait_for_server(uri: str, timeout: float) -> None:
    """Probe an HTTP tracking server until it responds, for at most ``timeout`` s.

    Any HTTP status below 500 counts as a response, because authentication
    errors are reported later by the MLflow call that gets them. Raises
    ExternalServiceError naming the URI and the fix.
    """
    import requests

    display = safe_uri(uri)
    deadline = time.monotonic() + timeout
    attempt = 0
    last_error = "no answer"
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            response = requests.get(
                f"{uri.rstrip('/')}/health", timeout=max(1.0, min(10.0, remaining))
            )
            if response.status_code < 500:
                log.info("MLflow tracking server %s is reachable", display)
                return
            last_error = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last_error = type(error).__name__
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        log.info(
            "MLflow tracking server %s not reachable (%s, attempt %d); retrying "
            "for %.0f more s",
            display,
            last_error,
            attempt,
            remaining,
        )
        time.sleep(min(PROBE_INTERVAL_SECONDS, remaining))
    raise ExternalServiceError(
        f"MLflow tracking server {display} did not respond within {timeout:g} s "
        f"({last_error}): start the server, or fix MLFLOW_TRACKING_URI, or unset it "
        f"to use the local SQLite store; --mlflow-timeout (env {TIMEOUT_ENV}) sets "
        f"the wait"
    )


@contextlib.contextmanager
def mlflow_errors(uri: str, action: str) -> Iterator[None]:
    """Raise ExternalServiceError for MLflow and HTTP errors raised inside.

    ``action`` names what failed ("log the retrain run"); the message adds the
    tracking URI without credentials.
    """
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except LoopError:
        raise
    except (MlflowException, requests.RequestException) as error:
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExternalServiceError(
            f"MLflow call failed while trying to {action} (tracking URI "
            f"{safe_uri(uri)}): {type(error).__name__}: {summary[:500]}. Check that "
            f"the tracking server runs and rerun the job"
        ) from None


def local_store_uri(workspace: Workspace) -> str:
    return f"sqlite:///{workspace.mlflow_db}"


def configure_tracking(workspace: Workspace, timeout: float) -> Tracking:
    """Point MLflow at the job's tracking store and return the experiment to use.

    MLFLOW_TRACKING_URI wins. Outside CML and without it, the store is
    ``sqlite:///<workspace>/mlflow.db`` with artifacts under
    ``<workspace>/mlartifacts``. Inside CML no URI is set. Raises
    InvalidInputError for a URI that MLflow cannot use (see
    ``check_tracking_uri``) and ExternalServiceError when an HTTP server does
    not respond within ``timeout``.
    """
    import mlflow

    configured = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if configured:
        check_tracking_uri(configured)
        uri = configured
    elif inside_cml():
        uri = mlflow.get_tracking_uri()
    else:
        workspace.root.mkdir(parents=True, exist_ok=True)
        uri = local_store_uri(workspace)
        mlflow.set_tracking_uri(uri)
    log.info("MLflow tracking URI: %s", safe_uri(uri))
    # Progress bars of artifact downloads would fill job logs with carriage returns.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    if is_http_uri(uri):
        bound_http_retries(timeout)
        wait_for_server(uri, timeout)
    experiment_id = ensure_experiment(workspace, uri)
    return Tracking(
        uri=uri, experiment_id=experiment_id, experiment_name=EXPERIMENT_NAME
    )


def ensure_experiment(workspace: Workspace, uri: str) -> str:
    """Return the id of the experiment, creating it if needed, and select it.

    Only the local SQLite store gets an explicit artifact location, the
    workspace's ``mlartifacts`` folder; servers and CML choose their own.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    with mlflow_errors(uri, f"find or create experiment {EXPERIMENT_NAME!r}"):
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is None:
            artifact_location = None
            if uri == local_store_uri(workspace):
                workspace.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
                artifact_location = workspace.mlflow_artifacts_dir.resolve().as_uri()
            try:
                experiment_id = client.create_experiment(
                    EXPERIMENT_NAME, artifact_location=artifact_location
                )
                log.info(
                    "created MLflow experiment %s (id %s)",
                    EXPERIMENT_NAME,
                    experiment_id,
                )
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
                log.info("restored deleted MLflow experiment %s", EXPERIMENT_NAME)
        mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
