"""State of the fake CML workspace, kept in the JSON file named by FAKE_CML_STATE.

Every call of the fake client loads the file under an exclusive lock, applies
the call and saves the file, so a job running as a subprocess and the test that
started it see the same models, builds, deployments and jobs. A test sets the
behaviour (build and deployment status sequences, faults, runtimes, the
accepted key) with ``new_state`` and reads the recorded calls with ``calls``.
The API key is never written here: only its SHA-256 digest, when a test asks
the double to reject other keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

STATE_ENV = "FAKE_CML_STATE"

DEFAULT_BUILD_PLAN = ["queued", "building", "pushing", "built"]
DEFAULT_DEPLOYMENT_PLAN = ["pending", "deploying", "deployed"]


def default_runtimes() -> list[dict[str, Any]]:
    """Return a runtime catalogue with several kernels, editions and versions."""
    runtimes = []
    for kernel in ("Python 3.10", "Python 3.11", "Python 3.12"):
        for edition in ("Standard", "Nvidia GPU"):
            for editor in ("Workbench", "JupyterLab"):
                for full_version in ("2024.02.1-b4", "2024.10.1-b12", "2024.5.1-b8"):
                    tag = kernel.split()[1].replace(".", "")
                    runtimes.append(
                        {
                            "image_identifier": (
                                f"docker.repository.cloudera.com/cloudera/cdsw/"
                                f"ml-runtime-{editor.lower()}-python{kernel[7:]}-"
                                f"{edition.split()[0].lower()}:{full_version}"
                            ),
                            "kernel": kernel,
                            "edition": edition,
                            "editor": editor,
                            "full_version": full_version,
                            "short_version": full_version.split("-")[0],
                            "description": f"py{tag}",
                        }
                    )
    return runtimes


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_state(path: Path, accepted_key: str | None = None, **options: Any) -> Path:
    """Write a fresh workspace state to ``path`` and return ``path``.

    ``options`` override the defaults below, for example
    ``build_plans=[["building", "build failed"]]`` (one list per future build),
    ``faults=[{"method": "get_model_build", "status": 500, "count": 1}]`` or
    ``runtimes=[]``.
    """
    state: dict[str, Any] = {
        "sequence": 0,
        "accepted_key_sha256": key_digest(accepted_key) if accepted_key else None,
        "page_size": 2,
        "version_listing_delay": 1,
        "build_plans": [],
        "deployment_plans": [],
        "default_build_plan": DEFAULT_BUILD_PLAN,
        "default_deployment_plan": DEFAULT_DEPLOYMENT_PLAN,
        "faults": [],
        "runtimes": default_runtimes(),
        "registered_models": [],
        "models": [],
        "builds": [],
        "deployments": [],
        "jobs": [],
        "job_runs": [],
        "calls": [],
    }
    state.update(options)
    Path(path).write_text(json.dumps(state, indent=1), encoding="utf-8")
    return Path(path)


def state_path() -> Path:
    raw = os.environ.get(STATE_ENV)
    if not raw:
        raise RuntimeError(f"the fake cmlapi needs {STATE_ENV} set to a state file")
    return Path(raw)


def read_state(path: Path | None = None) -> dict[str, Any]:
    return json.loads(Path(path or state_path()).read_text(encoding="utf-8"))


@contextlib.contextmanager
def locked_state(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Yield the state for changing; save it when the block ends, even on error."""
    path = Path(path or state_path())
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            try:
                yield state
            finally:
                temporary = path.with_name(path.name + ".tmp")
                temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
                os.replace(temporary, path)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def calls(path: Path | None = None, method: str | None = None) -> list[dict[str, Any]]:
    """Return the recorded calls, all or those of one method."""
    recorded = read_state(path)["calls"]
    return [call for call in recorded if method is None or call["method"] == method]


def update_record(path: Path, kind: str, record_id: str, **changes: Any) -> None:
    """Change fields of one stored record, e.g. a build's remaining ``statuses``."""
    with locked_state(path) as state:
        for record in state[kind]:
            if record["id"] == record_id:
                record.update(changes)
                return
        raise KeyError(f"no {kind} record with id {record_id}")
