"""A test double of Cloudera Machine Learning's ``cmlapi`` client (API v2).

It follows the documented behaviour of the generated client, version 24.05.20:
``default_client`` reads ``CDSW_API_URL`` and ``CDSW_APIV2_KEY``, errors are
``cmlapi.rest.ApiException`` (there is no ``cmlapi.ApiException``), request
classes accept only their declared fields. It makes no network call: the fake
workspace lives in the JSON file named by ``FAKE_CML_STATE`` (see ``_fake``).
Tests make it importable as ``cmlapi`` by putting ``tests/cml_double`` first on
``sys.path`` or ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from cmlapi import rest
from cmlapi.api import CMLServiceApi
from cmlapi.models import (  # noqa: F401
    CreateJobRequest,
    CreateJobRunRequest,
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateModelRequest,
    CreateRegisteredModelRequest,
    Job,
    JobRun,
    Model,
    ModelBuild,
    ModelDeployment,
    RegisteredModel,
    RegisteredModelVersion,
    Runtime,
)

__version__ = "24.05.20"


def default_client(
    url: str | None = None, cml_api_key: str | None = None
) -> CMLServiceApi:
    """Return a client for ``url`` (default: scheme and host of CDSW_API_URL)."""
    if url is None:
        url = os.environ.get("CDSW_API_URL")
        if not url:
            raise ValueError("Environment variable CDSW_API_URL not set.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL {url} must start with http:// or https://")
    if cml_api_key is None:
        cml_api_key = os.environ.get("CDSW_APIV2_KEY")
        if not cml_api_key:
            raise ValueError("Environment variable CDSW_APIV2_KEY not set.")
    return CMLServiceApi(f"{parts.scheme}://{parts.netloc}", cml_api_key)


__all__ = ["CMLServiceApi", "default_client", "rest"]
