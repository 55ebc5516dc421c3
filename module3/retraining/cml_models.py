"""The CML steps: register the MLflow run, reuse or create the model, build, deploy.

Each step reads and updates a ``Progress`` record, which the caller saves to
``outputs/deployment_info.json`` after every change. So a rerun for the same run
continues where the last one stopped. It reuses the registered version, the
model, and a build or deployment that is running or finished, and creates new
ones only when there are none or they failed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from retraining.cml_client import CmlClient, CmlRequestError
from retraining.errors import ExternalServiceError

log = logging.getLogger(__name__)

BUILD_SUCCEEDED = "built"
BUILD_FAILED = ("build failed", "timedout")
DEPLOYMENT_SUCCEEDED = "deployed"
DEPLOYMENT_FAILED = ("failed", "stopping", "stopped")
DUPLICATE_MODEL_TEXT = "already has a model with that name"


@dataclass(frozen=True)
class ModelSettings:
    """Resources of the CML model and the time limits of each step, in seconds."""

    name: str
    disable_auth: bool
    cpu: float
    memory: float
    replicas: int
    register_timeout: float
    build_timeout: float
    deploy_timeout: float
    poll_interval: float


class Progress:
    """The deployment record, saved by ``save`` after every step."""

    def __init__(self, record: dict[str, Any], save: Callable[[dict[str, Any]], None]):
        self.record = record
        self._save = save

    def get(self, key: str) -> Any:
        return self.record.get(key)

    def update(self, **changes: Any) -> None:
        self.record.update(changes)
        self._save(self.record)


# Registration ---------------------------------------------------------------


def find_registered_model(client: CmlClient, name: str) -> Any | None:
    found = client.list_all(
        "list_registered_models",
        "models",
        search_filter=json.dumps({"model_name": name}),
    )
    exact = [model for model in found if model.name == name]
    return exact[0] if exact else None


def version_ids(client: CmlClient, registered_model_id: str) -> list[str]:
    model = client.call(
        "get_registered_model", registered_model_id, sort="-version_number"
    )
    return [version.model_version_id for version in model.model_versions or []]


def find_new_version(
    client: CmlClient, name: str, known: list[str]
) -> tuple[str, str] | None:
    """Return (registered model id, version id) of the newest version not in ``known``.

    NOTE: CML does not document the values of a version's ``status``; a version
    counts as usable once it is listed with its ``model_version_id``.
    """
    model = find_registered_model(client, name)
    if model is None:
        return None
    listed = client.call("get_registered_model", model.model_id, sort="-version_number")
    new = [
        version
        for version in listed.model_versions or []
        if version.model_version_id and version.model_version_id not in known
    ]
    if not new:
        return None
    newest = max(new, key=lambda version: version.number or 0)
    return model.model_id, newest.model_version_id


def register_run(
    client: CmlClient, progress: Progress, run_info: dict, settings: ModelSettings
) -> None:
    """Register the run's MLflow model and wait until CML lists the new version."""
    if progress.get("registered_model_version_id"):
        log.info(
            "registered version %s recorded earlier, reusing it",
            progress.get("registered_model_version_id"),
        )
        return
    known = progress.get("versions_before_registration")
    if known is not None:
        found = find_new_version(client, settings.name, known)
        if found:
            log.info("found the version registered by an earlier attempt: %s", found[1])
            progress.update(
                registered_model_id=found[0], registered_model_version_id=found[1]
            )
            return
    else:
        existing = find_registered_model(client, settings.name)
        known = version_ids(client, existing.model_id) if existing else []
        progress.update(versions_before_registration=known)

    import cmlapi

    request = cmlapi.CreateRegisteredModelRequest(
        project_id=client.project_id,
        experiment_id=run_info["experiment_id"],
        run_id=run_info["run_id"],
        model_path=run_info.get("model_artifact_path") or "model",
        model_name=settings.name,
        description=f"MLflow run {run_info['run_id']}",
    )
    client.call(
        "create_registered_model",
        request,
        recover=lambda: find_new_version(client, settings.name, known),
    )
    log.info("registered run %s as %s", run_info["run_id"], settings.name)
    found = wait_for_version(client, settings, known)
    progress.update(registered_model_id=found[0], registered_model_version_id=found[1])
    print(f"registered model version {found[1]} of {settings.name}")


def wait_for_version(
    client: CmlClient, settings: ModelSettings, known: list[str]
) -> tuple[str, str]:
    started = time.monotonic()
    while True:
        found = find_new_version(client, settings.name, known)
        if found:
            return found
        elapsed = time.monotonic() - started
        if elapsed > settings.register_timeout:
            raise ExternalServiceError(
                f"CML did not list the new version of registered model "
                f"{settings.name} within {settings.register_timeout:.0f} s "
                f"(--cml-register-timeout); check Model Registry in the CML UI, "
                f"then rerun job 4, which looks for that version first"
            )
        time.sleep(settings.poll_interval)


# Model ------------------------------------------------------------------------


def find_model(client: CmlClient, name: str) -> Any | None:
    found = client.list_all(
        "list_models",
        "models",
        client.project_id,
        search_filter=json.dumps({"name": name}),
    )
    exact = [model for model in found if model.name == name]
    exact.sort(key=lambda model: model.created_at or "")
    if len(exact) > 1:
        log.warning(
            "%d CML models are named %s; using the oldest, %s",
            len(exact),
            name,
            exact[0].id,
        )
    return exact[0] if exact else None


def ensure_model(
    client: CmlClient, progress: Progress, settings: ModelSettings
) -> None:
    """Reuse the CML model named ``settings.name`` or create it, never a second one."""
    if progress.get("model_id"):
        return
    model = find_model(client, settings.name)
    if model is None:
        model = create_model(client, progress, settings)
    else:
        log.info("reusing CML model %s (%s)", model.name, model.id)
        if bool(model.auth_enabled) == settings.disable_auth:
            log.warning(
                "model %s has authentication %s; an existing model keeps its setting",
                model.id,
                "on" if model.auth_enabled else "off",
            )
    progress.update(
        model_id=model.id,
        access_key=model.access_key,
        auth_enabled=bool(model.auth_enabled),
    )


def create_model(client: CmlClient, progress: Progress, settings: ModelSettings) -> Any:
    import cmlapi

    request = cmlapi.CreateModelRequest(
        project_id=client.project_id,
        name=settings.name,
        description="Bank marketing campaign predictor, retrained on drift",
        registered_model_id=progress.get("registered_model_id"),
        disable_authentication=settings.disable_auth,
    )
    try:
        model = client.call(
            "create_model",
            request,
            client.project_id,
            recover=lambda: find_model(client, settings.name),
        )
    except CmlRequestError as error:
        if DUPLICATE_MODEL_TEXT not in error.body:
            raise
        log.info("a CML model named %s exists already; reusing it", settings.name)
        model = find_model(client, settings.name)
        if model is None:
            raise
        return model
    print(f"created CML model {settings.name} ({model.id})")
    return model


# Build ------------------------------------------------------------------------


def find_reusable_build(client: CmlClient, progress: Progress) -> Any | None:
    """Return the newest build of the recorded version that has not failed.

    NOTE: ``list_model_builds(project_id, model_id)`` and its ``model_builds``
    field come from the generated client; CML's documentation does not
    describe them.
    """
    builds = client.list_all(
        "list_model_builds", "model_builds", client.project_id, progress.get("model_id")
    )
    version_id = progress.get("registered_model_version_id")
    usable = [
        build
        for build in builds
        if build.registered_model_version_id == version_id
        and build.status not in BUILD_FAILED
    ]
    return max(usable, key=lambda build: build.created_at or "") if usable else None


def ensure_build(
    client: CmlClient, progress: Progress, settings: ModelSettings, runtime: str
) -> None:
    """Reuse or create the build of the registered version and wait until it is built.

    A recorded build is reused unless it failed or no longer exists.
    """
    build_id = progress.get("build_id")
    if build_id:
        build = read_build(client, progress, build_id)
        if build is not None and build.status not in BUILD_FAILED:
            log.info("reusing build %s recorded earlier (%s)", build_id, build.status)
        else:
            log.info("build %s recorded earlier failed or is gone", build_id)
            build_id = None
    if not build_id:
        build = find_reusable_build(client, progress)
        if build is None:
            build = create_build(client, progress, runtime)
        else:
            log.info("reusing build %s (status %s)", build.id, build.status)
        build_id = build.id
        progress.update(
            build_id=build_id,
            build_status=build.status,
            deployment_id=None,
            deployment_status=None,
        )
    if progress.get("build_status") != BUILD_SUCCEEDED:
        wait_for_build(client, progress, settings)


def read_build(client: CmlClient, progress: Progress, build_id: str) -> Any | None:
    try:
        build = client.call(
            "get_model_build", client.project_id, progress.get("model_id"), build_id
        )
    except CmlRequestError as error:
        if error.status == 404:
            return None
        raise
    progress.update(build_status=build.status)
    return build


def create_build(client: CmlClient, progress: Progress, runtime: str) -> Any:
    import cmlapi

    request = cmlapi.CreateModelBuildRequest(
        registered_model_version_id=progress.get("registered_model_version_id"),
        runtime_identifier=runtime,
        comment=f"MLflow run {progress.get('run_id')}",
        model_id=progress.get("model_id"),
    )
    build = client.call(
        "create_model_build",
        request,
        client.project_id,
        progress.get("model_id"),
        recover=lambda: find_reusable_build(client, progress),
    )
    print(f"started model build {build.id} with runtime {runtime}")
    return build


def wait_for_build(
    client: CmlClient, progress: Progress, settings: ModelSettings
) -> None:
    build_id = progress.get("build_id")
    logs_hint = (
        f"see the model's build logs in the CML UI (Models > {settings.name} > Builds)"
    )

    def read_status() -> str:
        return client.call(
            "get_model_build", client.project_id, progress.get("model_id"), build_id
        ).status

    status = wait_for_status(
        "build",
        build_id,
        read_status,
        progress,
        "build_status",
        settings.build_timeout,
        settings.poll_interval,
        (BUILD_SUCCEEDED, *BUILD_FAILED),
    )
    if status in BUILD_FAILED:
        raise ExternalServiceError(
            f"model build {build_id} ended with status {status!r}: {logs_hint}. Rerun "
            f"job 4 to start a new build"
        )
    if status != BUILD_SUCCEEDED:
        raise ExternalServiceError(
            f"model build {build_id} still has status {status!r} after "
            f"{settings.build_timeout:.0f} s (--cml-build-timeout): {logs_hint}. "
            f"Rerun job 4 to keep waiting for the same build"
        )


def wait_for_status(
    kind: str,
    identifier: str,
    read_status: Callable[[], str],
    progress: Progress,
    field: str,
    timeout: float,
    interval: float,
    final: tuple[str, ...],
) -> str:
    """Poll ``read_status`` until a final status or ``timeout``; print each change."""
    started = time.monotonic()
    status = progress.get(field)
    while True:
        current = read_status()
        elapsed = time.monotonic() - started
        if current != status:
            print(f"{kind} {identifier}: {current} ({elapsed:.0f} s)")
            progress.update(**{field: current})
            status = current
        if status in final or elapsed >= timeout:
            return status
        time.sleep(min(interval, max(timeout - elapsed, 0.0)))


# Deployment -------------------------------------------------------------------


def list_deployments(client: CmlClient, progress: Progress) -> list[Any]:
    return client.list_all(
        "list_model_deployments",
        "model_deployments",
        client.project_id,
        progress.get("model_id"),
        progress.get("build_id"),
    )


def find_live_deployment(client: CmlClient, progress: Progress) -> Any | None:
    deployments = list_deployments(client, progress)
    live = [item for item in deployments if item.status not in DEPLOYMENT_FAILED]
    if not live:
        return None
    return max(live, key=lambda deployment: deployment.created_at or "")


def ensure_deployment(
    client: CmlClient, progress: Progress, settings: ModelSettings
) -> None:
    """Reuse or create the deployment of the build and wait until it is deployed."""
    deployment_id = progress.get("deployment_id")
    if deployment_id:
        status = read_deployment_status(client, progress, deployment_id)
        if status in DEPLOYMENT_FAILED or status is None:
            log.info(
                "deployment %s recorded earlier is %s; creating a new one",
                deployment_id,
                status or "gone",
            )
            deployment_id = None
    if not deployment_id:
        deployment = find_live_deployment(client, progress)
        if deployment is None:
            deployment = create_deployment(client, progress, settings)
        else:
            log.info("reusing deployment %s (%s)", deployment.id, deployment.status)
        progress.update(
            deployment_id=deployment.id, deployment_status=deployment.status
        )
    if progress.get("deployment_status") != DEPLOYMENT_SUCCEEDED:
        wait_for_deployment(client, progress, settings)


def read_deployment_status(
    client: CmlClient, progress: Progress, deployment_id: str
) -> str | None:
    """Return the deployment's status (None if not found), listing it if a get fails."""
    try:
        status = client.call(
            "get_model_deployment",
            client.project_id,
            progress.get("model_id"),
            progress.get("build_id"),
            deployment_id,
        ).status
    except CmlRequestError as error:
        if error.status != 404:
            raise
        return None
    except ExternalServiceError as error:
        # The gateway can return 500 while a deployment is still being created.
        deployments = list_deployments(client, progress)
        listed = [item for item in deployments if item.id == deployment_id]
        if not listed:
            raise
        log.warning(
            "reading deployment %s failed (%s); the list shows status %s",
            deployment_id,
            error,
            listed[0].status,
        )
        status = listed[0].status
    return status


def create_deployment(
    client: CmlClient, progress: Progress, settings: ModelSettings
) -> Any:
    import cmlapi

    request = cmlapi.CreateModelDeploymentRequest(
        cpu=settings.cpu,
        memory=settings.memory,
        nvidia_gpus=0,
        replicas=settings.replicas,
    )
    deployment = client.call(
        "create_model_deployment",
        request,
        client.project_id,
        progress.get("model_id"),
        progress.get("build_id"),
        recover=lambda: find_live_deployment(client, progress),
    )
    print(f"started model deployment {deployment.id}")
    return deployment


def wait_for_deployment(
    client: CmlClient, progress: Progress, settings: ModelSettings
) -> None:
    deployment_id = progress.get("deployment_id")

    def read_status() -> str:
        return read_deployment_status(client, progress, deployment_id) or "gone"

    status = wait_for_status(
        "deployment",
        deployment_id,
        read_status,
        progress,
        "deployment_status",
        settings.deploy_timeout,
        settings.poll_interval,
        (DEPLOYMENT_SUCCEEDED, "gone", *DEPLOYMENT_FAILED),
    )
    hint = (
        f"see the deployment's logs in the CML UI "
        f"(Models > {settings.name} > Deployments)"
    )
    if status == DEPLOYMENT_SUCCEEDED:
        return
    if status in (*DEPLOYMENT_FAILED, "gone"):
        raise ExternalServiceError(
            f"model deployment {deployment_id} ended with status {status!r}: {hint}. "
            f"Rerun job 4 to deploy the same build again"
        )
    raise ExternalServiceError(
        f"model deployment {deployment_id} still has status {status!r} after "
        f"{settings.deploy_timeout:.0f} s (--cml-deploy-timeout): {hint}. Rerun job 4 "
        f"to keep waiting for it"
    )
