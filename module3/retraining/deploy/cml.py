"""Deployment target "cml": register the MLflow run in CML, build and deploy it.

``deploy_to_cml`` registers the run's model in CML's Model Registry, reuses or
creates the CML model, builds the registered version with a runtime and
deploys the build, waiting for each step with a timeout. After every step it
saves its progress in ``outputs/deployment_info.json`` (``deployed`` stays
false until CML reports the deployment as deployed), and a rerun for the same
run continues from there instead of registering, building or deploying again.

``cmlapi`` is imported only inside the functions that call CML, so this module
imports on machines without it.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path
from typing import Any

from retraining.cml_client import (
    CmlClient,
    add_connection_arguments,
    create_client,
    resolve_runtime,
    setting,
)
from retraining.cml_models import (
    DEPLOYMENT_SUCCEEDED,
    ModelSettings,
    Progress,
    ensure_build,
    ensure_deployment,
    ensure_model,
    read_deployment_status,
    register_run,
)
from retraining.config import (
    MODEL_NAME,
    Workspace,
    parse_bool,
    positive_float,
    positive_int,
)
from retraining.files import (
    archive_state_file,
    utc_timestamp,
    write_json_atomic,
)

log = logging.getLogger(__name__)

TARGET = "cml"
# A real row of UCI's bank-full.csv, used when no data file can be read.
FALLBACK_ROW = {
    "age": 58, "job": "management", "marital": "married", "education": "tertiary",
    "default": "no", "balance": 2143, "housing": "yes", "loan": "no",
    "contact": "unknown", "day": 5, "month": "may", "duration": 261, "campaign": 1,
    "pdays": -1, "previous": 0, "poutcome": "unknown",
}
PROGRESS_KEYS = (
    "registered_model_id", "registered_model_version_id", "model_id", "access_key",
    "build_id", "build_status", "deployment_id", "deployment_status",
    "runtime_identifier",
)


def add_cml_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of the CML target; each names its environment variable."""
    add_connection_arguments(parser)
    group = parser.add_argument_group("CML model build and deployment")
    group.add_argument(
        "--cml-replicas", type=int,
        help="replicas of the model deployment (env LOOP_CML_REPLICAS; default 1)",
    )
    group.add_argument(
        "--cml-register-timeout", type=float,
        help="seconds to wait for CML to list the registered version (env "
        "LOOP_CML_REGISTER_TIMEOUT; default 300)",
    )
    group.add_argument(
        "--cml-build-timeout", type=float,
        help="seconds to wait for the model build (env LOOP_CML_BUILD_TIMEOUT; "
        "default 1800)",
    )
    group.add_argument(
        "--cml-deploy-timeout", type=float,
        help="seconds to wait for the model deployment (env LOOP_CML_DEPLOY_TIMEOUT; "
        "default 900)",
    )
    group.add_argument(
        "--cml-poll-interval", type=float,
        help="seconds between two status reads of a build or deployment (env "
        "LOOP_CML_POLL_INTERVAL; default 10)",
    )
    group.add_argument(
        "--cml-disable-auth", action=argparse.BooleanOptionalAction, default=None,
        help="create the CML model without authentication, so calls need no model "
        "API key (env LOOP_CML_DISABLE_AUTH; default: authentication on)",
    )


def resolve_model_settings(args: argparse.Namespace, run_info: dict) -> ModelSettings:
    return ModelSettings(
        name=run_info.get("model_name") or MODEL_NAME,
        disable_auth=setting(
            args.cml_disable_auth, "LOOP_CML_DISABLE_AUTH", False, parse_bool
        ),
        cpu=setting(args.cml_cpu, "LOOP_CML_CPU", 2.0, positive_float),
        memory=setting(args.cml_memory, "LOOP_CML_MEMORY", 4.0, positive_float),
        replicas=setting(args.cml_replicas, "LOOP_CML_REPLICAS", 1, positive_int),
        register_timeout=setting(
            args.cml_register_timeout,
            "LOOP_CML_REGISTER_TIMEOUT",
            300.0,
            positive_float,
        ),
        build_timeout=setting(
            args.cml_build_timeout, "LOOP_CML_BUILD_TIMEOUT", 1800.0, positive_float
        ),
        deploy_timeout=setting(
            args.cml_deploy_timeout, "LOOP_CML_DEPLOY_TIMEOUT", 900.0, positive_float
        ),
        poll_interval=setting(
            args.cml_poll_interval, "LOOP_CML_POLL_INTERVAL", 10.0, positive_float
        ),
    )


def deploy_to_cml(
    args: argparse.Namespace, run_info: dict, workspace: Workspace
) -> int:
    """Register, build and deploy the run's model in CML; return 0 once it is deployed.

    Raises InvalidInputError (exit 2) for invalid configuration, a missing
    ``cmlapi`` or a rejected API key, and ExternalServiceError (exit 3) when a
    build or deployment fails or times out or CML stays unreachable.
    """
    settings = resolve_model_settings(args, run_info)
    client = create_client(args)
    progress = load_progress(workspace, run_info, client, settings)

    if progress.get("deployed") and progress.get("deployment_id"):
        deployment_id = progress.get("deployment_id")
        status = read_deployment_status(client, progress, deployment_id)
        if status == DEPLOYMENT_SUCCEEDED:
            print(
                f"run {run_info['run_id']} is already deployed in CML (deployment "
                f"{deployment_id}); nothing to do"
            )
            return 0
        log.info("the recorded deployment is %s; deploying again", status or "gone")
        progress.update(deployed=False, deployed_at=None, deployment_status=status)

    register_run(client, progress, run_info, settings)
    ensure_model(client, progress, settings)
    runtime = client.settings.runtime or progress.get("runtime_identifier")
    runtime = runtime or resolve_runtime(client)
    progress.update(runtime_identifier=runtime)
    ensure_build(client, progress, settings, runtime)
    ensure_deployment(client, progress, settings)
    progress.update(deployed=True, deployed_at=utc_timestamp())
    print_summary(progress.record)
    return 0


def load_progress(
    workspace: Workspace, run_info: dict, client: CmlClient, settings: ModelSettings
) -> Progress:
    """Return the recorded progress for this run, or a fresh record.

    A record of another run, target, project or model is moved to
    ``outputs/history/`` first.
    """
    path = workspace.deployment_info
    previous = read_previous(path)
    same_run = previous is not None and all(
        previous.get(key) == value
        for key, value in (
            ("target", TARGET), ("run_id", run_info["run_id"]),
            ("project_id", client.project_id), ("model_name", settings.name),
        )
    )
    if same_run:
        log.info("continuing the recorded deployment of this run from %s", path)
        record = previous
    else:
        if path.exists():
            archive(path, workspace)
        record = new_record(run_info, client, settings, workspace)
    record["sample_request"] = record.get("sample_request") or sample_request(
        run_info, workspace, record.get("access_key")
    )

    def save(payload: dict[str, Any]) -> None:
        payload["updated_at"] = utc_timestamp()
        payload["sample_request"]["accessKey"] = payload.get("access_key") or ""
        write_json_atomic(path, payload)

    progress = Progress(record, save)
    save(record)
    return progress


def read_previous(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("cannot read %s (%s); starting a new record", path, error)
        return None
    return payload if isinstance(payload, dict) else None


def archive(path: Path, workspace: Workspace) -> None:
    copy = archive_state_file(path, workspace.history_dir)
    if copy:
        log.info("kept the previous deployment record as %s", copy)


def new_record(
    run_info: dict, client: CmlClient, settings: ModelSettings, workspace: Workspace
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "target": TARGET,
        "deployed": False,
        "model_name": settings.name,
        "run_id": run_info["run_id"],
        "training_files": run_info.get("training_files", []),
        "deployed_at": None,
        "endpoint_url": endpoint_url(client.settings.domain),
        "sample_request": None,
        "project_id": client.project_id,
        "auth_enabled": not settings.disable_auth,
    }
    record.update({key: None for key in PROGRESS_KEYS})
    return record


def endpoint_url(domain: str | None) -> str:
    if not domain:
        log.warning("CDSW_DOMAIN is not set; the endpoint URL has a placeholder host")
        domain = "<CDSW_DOMAIN>"
    return f"https://modelservice.{domain}/model"


def input_columns(run_info: dict) -> list[str]:
    """Return the model's input columns: from run info, else the 16 features."""
    from retraining.data import FEATURE_COLUMNS

    for key in ("input_columns", "feature_columns"):
        if isinstance(run_info.get(key), list) and run_info[key]:
            return list(run_info[key])
    if run_info.get("include_duration") is False:
        return [column for column in FEATURE_COLUMNS if column != "duration"]
    return list(FEATURE_COLUMNS)


def sample_row(run_info: dict, workspace: Workspace) -> dict[str, Any]:
    """Return the first row of the newest batch or the training data, numbers parsed."""
    from retraining.data import NUMERIC_COLUMNS

    candidates = [run_info.get("newest_batch")]
    for item in run_info.get("training_files", []):
        if isinstance(item, dict):
            candidates.append(item.get("path"))
    for relative in [c for c in candidates if c]:
        path = workspace.root / relative
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                row = next(csv.DictReader(handle), None)
        except OSError:
            continue
        if row:
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                name = (key or "").strip().lower()
                parsed[name] = parse_number(value) if name in NUMERIC_COLUMNS else value
            return parsed
    log.warning("no data file of the run is readable; sample request uses a fixed row")
    return dict(FALLBACK_ROW)


def parse_number(value: str) -> int | float | str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def sample_request(
    run_info: dict, workspace: Workspace, access_key: str | None
) -> dict:
    """Return a request body for the model: one data row in MLflow's dataframe_split."""
    columns = input_columns(run_info)
    row = sample_row(run_info, workspace)
    values = [row.get(column, FALLBACK_ROW.get(column)) for column in columns]
    return {
        "accessKey": access_key or "",
        "request": {"dataframe_split": {"columns": columns, "data": [values]}},
    }


def print_summary(record: dict[str, Any]) -> None:
    print(
        f"deployed {record['model_name']} (run {record['run_id']}) to CML: model "
        f"{record['model_id']}, build {record['build_id']}, deployment "
        f"{record['deployment_id']}"
    )
    print(f"endpoint: {record['endpoint_url']}")
    print("try it with:")
    print(curl_command(record))


def curl_command(record: dict[str, Any]) -> str:
    lines = [
        f"curl -X POST {record['endpoint_url']}",
        '  -H "Content-Type: application/json"',
    ]
    if record.get("auth_enabled", True):
        # NOTE: CML expects a model API key in the Authorization header; the
        # "Bearer" scheme follows Cloudera's examples.
        lines.append('  -H "Authorization: Bearer <model API key>"')
    lines.append(f"  -d '{json.dumps(record['sample_request'])}'")
    return " \\\n".join(lines)
