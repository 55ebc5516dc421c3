"""Deployment targets of job 4 and how one is chosen.

``local`` registers the model in the MLflow Model Registry and serves it with
``mlflow models serve`` on this machine (``deploy/local.py``). ``cml`` deploys
it as a Cloudera Machine Learning model (``deploy/cml.py``). ``auto`` picks
``cml`` inside a CML project whose ``cmlapi`` package imports, else ``local``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os

from retraining.errors import InvalidInputError

log = logging.getLogger(__name__)

TARGET_ENV = "LOOP_DEPLOY_TARGET"
TARGETS = ("auto", "local", "cml")
CML_PROJECT_ENV = "CDSW_PROJECT_ID"
CML_DOMAIN_ENV = "CDSW_DOMAIN"


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--target`` (env LOOP_DEPLOY_TARGET) to ``parser``."""
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default=None,
        help=f"where to deploy: local (MLflow registry + mlflow models serve), "
        f"cml (Cloudera Machine Learning model) or auto (cml inside a CML project "
        f"with cmlapi installed, else local) (env {TARGET_ENV}; default auto)",
    )


def cmlapi_available() -> bool:
    try:
        importlib.import_module("cmlapi")
    except ImportError:
        return False
    return True


def cmlapi_install_hint() -> str:
    domain = os.environ.get(CML_DOMAIN_ENV, "").strip() or "<CDSW_DOMAIN>"
    return (
        f"install it from the workspace with 'pip install "
        f"https://{domain}/api/v2/python.tar.gz'"
    )


def resolve_target(args: argparse.Namespace) -> str:
    """Return ``local`` or ``cml`` from ``--target``, LOOP_DEPLOY_TARGET or auto.

    Raises InvalidInputError for an unknown target, or for ``cml`` when the
    ``cmlapi`` package does not import.
    """
    requested = getattr(args, "target", None) or os.environ.get(TARGET_ENV, "")
    requested = requested.strip().lower() or "auto"
    if requested not in TARGETS:
        raise InvalidInputError(
            f"invalid deployment target {requested!r} in {TARGET_ENV}: use one of "
            f"{', '.join(TARGETS)}"
        )
    if requested == "auto":
        in_cml = bool(os.environ.get(CML_PROJECT_ENV, "").strip())
        target = "cml" if in_cml and cmlapi_available() else "local"
        if in_cml and target == "local":
            log.warning(
                "running inside CML but cmlapi does not import, so the model is "
                "served locally; %s",
                cmlapi_install_hint(),
            )
        log.info("deployment target auto resolved to %s", target)
        return target
    if requested == "cml" and not cmlapi_available():
        raise InvalidInputError(
            f"deployment target cml needs the cmlapi package, which does not "
            f"import: {cmlapi_install_hint()}, or use --target local"
        )
    return requested
