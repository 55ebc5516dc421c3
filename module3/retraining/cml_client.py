"""A CML API v2 client with bounded retries and errors mapped to exit codes.

``cmlapi`` is preinstalled in CML runtimes and is not on PyPI, so it is
imported only when a CML call is about to happen. ``CmlClient.call`` retries
server errors (5xx, 429), connection errors and timeouts with exponential
backoff, logging each retry, and raises:

- InvalidInputError (exit 2) for a rejected API key (401/403) and for any other
  4xx status, which means the request or the configuration is invalid;
- ExternalServiceError (exit 3) when retries are used up.

The API key is read from the environment only and never logged or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from retraining.cli import redact
from retraining.config import env_setting, positive_float, positive_int
from retraining.errors import ExternalServiceError, InvalidInputError

log = logging.getLogger(__name__)

PROJECT_ENV = "CDSW_PROJECT_ID"
DOMAIN_ENV = "CDSW_DOMAIN"
CML_KEY_ENV = "CDSW_APIV2_KEY"
API_URL_ENV = "LOOP_CML_API_URL"
API_KEY_ENV = "LOOP_CML_API_KEY"
RUNTIME_EDITION = "Standard"
RUNTIME_EDITOR = "Workbench"
MAX_BODY_CHARS = 300
RETRYABLE_STATUSES = {0, 429}


class CmlRequestError(InvalidInputError):
    """CML rejected a request with a 4xx status (exit code 2)."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class ConnectionSettings:
    """Connection and resource settings of the CML calls."""

    project_id: str
    api_url: str | None
    domain: str | None
    runtime: str | None
    cpu: float
    memory: float
    retries: int
    retry_delay: float


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags every CML command shares (project, API, runtime, resources)."""
    group = parser.add_argument_group("CML connection and resources")
    group.add_argument(
        "--cml-project-id",
        help=f"CML project id (env LOOP_CML_PROJECT_ID, else {PROJECT_ENV}, which "
        f"CML sets in sessions and jobs)",
    )
    group.add_argument(
        "--cml-api-url",
        help=f"CML workspace URL for running outside CML, e.g. "
        f"https://ml-xxxx.example.com (env {API_URL_ENV}); the API key is then read "
        f"from the environment variable {API_KEY_ENV}, never from a flag. Default: "
        f"CDSW_API_URL and {CML_KEY_ENV}, which CML sets",
    )
    group.add_argument(
        "--cml-domain",
        help=f"workspace host name used in the model endpoint URL (env "
        f"LOOP_CML_DOMAIN, else {DOMAIN_ENV}, else the host of --cml-api-url)",
    )
    group.add_argument(
        "--cml-runtime",
        help="runtime image identifier (env LOOP_CML_RUNTIME; default: the newest "
        "Standard Workbench runtime whose kernel matches this Python's version)",
    )
    group.add_argument(
        "--cml-cpu",
        type=float,
        help="vCPUs per replica or job (env LOOP_CML_CPU; default 2)",
    )
    group.add_argument(
        "--cml-memory",
        type=float,
        help="memory in GB per replica or job (env LOOP_CML_MEMORY; default 4)",
    )
    group.add_argument(
        "--cml-retries",
        type=int,
        help="attempts per CML call on server or connection errors (env "
        "LOOP_CML_RETRIES; default 4)",
    )
    group.add_argument(
        "--cml-retry-delay",
        type=float,
        help="seconds before the first retry, doubled at each retry up to 60 "
        "(env LOOP_CML_RETRY_DELAY; default 2)",
    )


def setting(value: Any, env: str, default: Any, parse: Callable[[str], Any]) -> Any:
    """Return the flag ``value``, else environment variable ``env``, else ``default``.

    Raises InvalidInputError naming the variable when its value does not parse.
    """
    if value is not None:
        return value
    return env_setting(env, default, parse)


def resolve_connection(args: argparse.Namespace) -> ConnectionSettings:
    """Read the connection settings from flags and environment variables."""
    project_id = setting(args.cml_project_id, "LOOP_CML_PROJECT_ID", None, str)
    project_id = project_id or os.environ.get(PROJECT_ENV, "").strip()
    if not project_id:
        raise InvalidInputError(
            f"no CML project id: run inside a CML project (which sets {PROJECT_ENV}) "
            f"or pass --cml-project-id"
        )
    api_url = setting(args.cml_api_url, API_URL_ENV, None, str)
    domain = setting(args.cml_domain, "LOOP_CML_DOMAIN", None, str)
    domain = domain or os.environ.get(DOMAIN_ENV) or None
    if not domain and api_url:
        domain = urlsplit(api_url).hostname
    cpu = setting(args.cml_cpu, "LOOP_CML_CPU", 2.0, positive_float)
    memory = setting(args.cml_memory, "LOOP_CML_MEMORY", 4.0, positive_float)
    retries = setting(args.cml_retries, "LOOP_CML_RETRIES", 4, positive_int)
    delay = setting(args.cml_retry_delay, "LOOP_CML_RETRY_DELAY", 2.0, positive_float)
    for name, value in (("--cml-cpu", cpu), ("--cml-memory", memory)):
        if value <= 0:
            raise InvalidInputError(f"invalid {name} {value}: use a positive number")
    if retries <= 0:
        raise InvalidInputError(f"invalid --cml-retries {retries}: use 1 or more")

    return ConnectionSettings(
        project_id=project_id,
        api_url=api_url,
        domain=domain,
        runtime=setting(args.cml_runtime, "LOOP_CML_RUNTIME", None, str),
        cpu=cpu,
        memory=memory,
        retries=retries,
        retry_delay=delay,
    )


def import_cmlapi(settings: ConnectionSettings):
    """Import ``cmlapi``, or raise InvalidInputError with the install command."""
    try:
        import cmlapi
    except ImportError:
        domain = settings.domain or "<your CML workspace domain>"
        raise InvalidInputError(
            f"the Python package cmlapi is not installed. It comes with CML runtimes "
            f"and is not on PyPI; outside CML install it from your workspace with "
            f"'pip install https://{domain}/api/v2/python.tar.gz'"
        ) from None
    return cmlapi


def create_api(settings: ConnectionSettings):
    """Return a ``cmlapi`` CMLServiceApi from CML's environment or --cml-api-url."""
    cmlapi = import_cmlapi(settings)
    try:
        if settings.api_url:
            key = os.environ.get(API_KEY_ENV) or os.environ.get(CML_KEY_ENV)
            if not key:
                raise InvalidInputError(
                    f"--cml-api-url is set but no API key: export {API_KEY_ENV} with "
                    f"an API v2 key (User Settings > API Keys in CML)"
                )
            return cmlapi.default_client(url=settings.api_url, cml_api_key=key)
        return cmlapi.default_client()
    except ValueError as error:
        raise InvalidInputError(
            f"cannot create the CML API client: {redact(str(error))}. Inside CML the "
            f"job environment sets CDSW_API_URL and {CML_KEY_ENV}; outside CML pass "
            f"--cml-api-url (an https:// URL) and export {API_KEY_ENV}"
        ) from None


def is_connection_error(error: BaseException) -> bool:
    """Return True for network failures: OSError subclasses or urllib3's errors."""
    if isinstance(error, (OSError, TimeoutError)):
        return True
    return type(error).__module__.startswith("urllib3")


def version_key(version: str | None) -> tuple[int, ...]:
    """Return the numbers in a runtime ``full_version`` such as ``2024.05.1-b8``."""
    return tuple(int(part) for part in re.findall(r"\d+", version or ""))


class CmlClient:
    """Calls ``cmlapi`` methods with retries and maps their errors to exit codes."""

    def __init__(self, api: Any, settings: ConnectionSettings, sleep=time.sleep):
        self.api = api
        self.settings = settings
        self.sleep = sleep
        from cmlapi.rest import ApiException

        self.api_exception = ApiException

    @property
    def project_id(self) -> str:
        return self.settings.project_id

    def call(
        self,
        method: str,
        *args: Any,
        recover: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``api.<method>`` with retries; before a retry, try ``recover()`` first.

        ``recover`` serves create calls: a 5xx can come while the creation still
        goes on, so a retry first looks for what the failed call created.
        """
        attempts = self.settings.retries
        for attempt in range(1, attempts + 1):
            try:
                return getattr(self.api, method)(*args, **kwargs)
            except self.api_exception as error:
                failure = self._describe(method, error)
                if not self._is_retryable(error.status):
                    raise self._client_error(method, error, failure) from None
            except Exception as error:  # noqa: BLE001 - filtered right below
                if not is_connection_error(error):
                    raise
                failure = f"cannot reach CML for {method}: {redact(str(error))[:200]}"
            if attempt == attempts:
                raise ExternalServiceError(
                    f"{failure}; gave up after {attempts} attempt(s). Check the CML "
                    f"workspace status and rerun the job, which continues from the "
                    f"last recorded step"
                )
            delay = min(self.settings.retry_delay * 2 ** (attempt - 1), 60.0)
            log.warning(
                "%s; retry %d of %d in %.1f s", failure, attempt, attempts - 1, delay
            )
            self.sleep(delay)
            if recover is not None:
                found = recover()
                if found is not None:
                    log.info("%s: reusing what the failed call created", method)
                    return found
        raise AssertionError("unreachable")

    def list_all(self, method: str, field: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Return the items of every page of a list method."""
        items: list[Any] = []
        token = None
        while True:
            if token:
                kwargs["page_token"] = token
            response = self.call(method, *args, **kwargs)
            items.extend(getattr(response, field) or [])
            token = getattr(response, "next_page_token", "") or ""
            if not token:
                return items

    def _is_retryable(self, status: int | None) -> bool:
        return status is None or status in RETRYABLE_STATUSES or status >= 500

    def _describe(self, method: str, error: Any) -> str:
        body = redact(str(error.body or ""))[:MAX_BODY_CHARS].strip()
        status = f"CML {method} failed with HTTP {error.status} {error.reason or ''}"
        return status.strip() + (f": {body}" if body else "")

    def _client_error(self, method: str, error: Any, failure: str) -> CmlRequestError:
        body = redact(str(error.body or ""))
        if error.status in (401, 403):
            source = API_KEY_ENV if self.settings.api_url else CML_KEY_ENV
            message = (
                f"CML rejected the API key (HTTP {error.status} {error.reason or ''}) "
                f"for {method} in project {self.project_id}: set {source} to a valid "
                f"API v2 key of a user with access to the project (CML: User Settings "
                f"> API Keys)"
            )
        else:
            message = (
                f"{failure}. The request or the configuration is invalid: check "
                f"--cml-project-id, --cml-runtime and the resource flags"
            )
        return CmlRequestError(message, error.status, body)


def create_client(args: argparse.Namespace) -> CmlClient:
    """Resolve the connection settings and return a ready CmlClient."""
    settings = resolve_connection(args)
    return CmlClient(create_api(settings), settings)


def python_kernel() -> str:
    return f"Python {sys.version_info.major}.{sys.version_info.minor}"


def resolve_runtime(client: CmlClient) -> str:
    """Return the configured runtime, else the newest matching Standard Workbench one.

    Raises InvalidInputError listing the runtimes found when none matches.
    """
    if client.settings.runtime:
        return client.settings.runtime
    kernel = python_kernel()
    expected = {"kernel": kernel, "edition": RUNTIME_EDITION, "editor": RUNTIME_EDITOR}
    found = client.list_all(
        "list_runtimes", "runtimes", search_filter=json.dumps(expected)
    )
    matching = [
        runtime
        for runtime in found
        if (runtime.kernel, runtime.edition, runtime.editor)
        == (kernel, RUNTIME_EDITION, RUNTIME_EDITOR)
    ]
    if matching:
        newest = max(matching, key=lambda runtime: version_key(runtime.full_version))
        log.info(
            "runtime: %s (newest of %d matching)",
            newest.image_identifier,
            len(matching),
        )
        return newest.image_identifier
    available = client.list_all("list_runtimes", "runtimes")
    listed = sorted({f"{r.kernel} / {r.edition} / {r.editor}" for r in available})
    listed = listed or ["none"]
    raise InvalidInputError(
        f"no CML runtime with kernel {kernel!r}, edition {RUNTIME_EDITION!r} and "
        f"editor {RUNTIME_EDITOR!r}; found: {'; '.join(listed)}. Pass --cml-runtime "
        f"(or LOOP_CML_RUNTIME) with the image identifier of a runtime from "
        f"Site Administration > Runtime Catalog"
    )
