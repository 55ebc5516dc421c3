"""Helpers for tests that run code against the fake ``cmlapi`` in this folder."""

from __future__ import annotations

import sys
from pathlib import Path

CML_DOUBLE = Path(__file__).resolve().parent
PROJECT_ID = "p7q2-4kx1-9zzb-00ab"
DOMAIN = "ml-test.example.invalid"
API_KEY = "fake-apiv2-key-5f1c9d2e7a"


def use_fake_cmlapi() -> None:
    """Make ``import cmlapi`` load the fake in this process."""
    if str(CML_DOUBLE) not in sys.path:
        sys.path.insert(0, str(CML_DOUBLE))


def cml_environment(state_path: Path, api_key: str = API_KEY) -> dict[str, str]:
    """Return the variables CML sets in a job, plus the fake's state file."""
    return {
        "FAKE_CML_STATE": str(state_path),
        "CDSW_PROJECT_ID": PROJECT_ID,
        "CDSW_API_URL": f"https://{DOMAIN}/api/v1",
        "CDSW_APIV2_KEY": api_key,
        "CDSW_DOMAIN": DOMAIN,
    }


def subprocess_environment(
    base: dict[str, str], state_path: Path, **extra: str
) -> dict:
    """Return ``base`` with the fake on PYTHONPATH and CML's variables set."""
    env = dict(base)
    env["PYTHONPATH"] = str(CML_DOUBLE) + (
        f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else ""
    )
    env.update(cml_environment(state_path))
    env.update(extra)
    return env
