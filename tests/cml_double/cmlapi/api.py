"""``CMLServiceApi`` of the fake ``cmlapi``: the documented methods on a JSON state.

Each method checks its arguments as the generated client does (unknown keyword
-> TypeError, required parameter None -> ValueError), records the call without
the API key, applies the faults a test configured, and returns results from the
state file (see ``_fake``). Status sequences advance by one step per ``get_*`` call.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any, Callable

from cmlapi import _fake, models
from cmlapi.rest import ApiException

COMMON_OPTIONS = (
    "async_req",
    "_request_timeout",
    "_return_http_data_only",
    "_preload_content",
)
LIST_OPTIONS = ("search_filter", "sort", "page_size", "page_token")

# method -> (required parameters in positional order, optional parameters)
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "create_registered_model": (("body",), ()),
    "get_registered_model": (("model_id",), LIST_OPTIONS),
    "list_registered_models": ((), LIST_OPTIONS),
    "create_model": (("body", "project_id"), ()),
    "list_models": (("project_id",), LIST_OPTIONS),
    "get_model": (("project_id", "model_id"), ()),
    "create_model_build": (("body", "project_id", "model_id"), ()),
    "get_model_build": (("project_id", "model_id", "build_id"), ()),
    "list_model_builds": (("project_id", "model_id"), LIST_OPTIONS),
    "create_model_deployment": (("body", "project_id", "model_id", "build_id"), ()),
    "get_model_deployment": (
        ("project_id", "model_id", "build_id", "deployment_id"),
        (),
    ),
    "list_model_deployments": (("project_id", "model_id", "build_id"), LIST_OPTIONS),
    "stop_model_deployment": (
        ("project_id", "model_id", "build_id", "deployment_id"),
        (),
    ),
    "list_runtimes": ((), LIST_OPTIONS),
    "create_job": (("body", "project_id"), ()),
    "list_jobs": (("project_id",), LIST_OPTIONS),
    "get_job": (("project_id", "job_id"), ()),
    "update_job": (("body", "project_id", "job_id"), ()),
    "delete_job": (("project_id", "job_id"), ()),
    "create_job_run": (("body", "project_id", "job_id"), ()),
    "get_job_run": (("project_id", "job_id", "run_id"), ()),
    "list_job_runs": (("project_id", "job_id"), LIST_OPTIONS),
}

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def api_error(status: int, message: str) -> ApiException:
    body = json.dumps({"error": message, "code": status, "message": message})
    return ApiException(status=status, reason=REASONS.get(status, ""), body=body)


class CMLServiceApi:
    """The fake service; create it with ``cmlapi.default_client``."""

    def __init__(self, host: str, api_key: str) -> None:
        self.host = host
        self.__api_key = api_key

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in SIGNATURES:
            raise AttributeError(f"'CMLServiceApi' object has no attribute '{name}'")

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, args, kwargs)

        method.__name__ = name
        return method

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        arguments = bind_arguments(name, args, kwargs)
        with _fake.locked_state() as state:
            state["calls"].append({"method": name, "args": serialize(arguments)})
            expected = state.get("accepted_key_sha256")
            if expected and _fake.key_digest(self.__api_key) != expected:
                raise api_error(401, "invalid or expired API key")
            fault = take_fault(state, name)
            if fault and fault.get("when", "before") == "before":
                raise_fault(fault, self.host)
            handler = globals()[f"handle_{name}"]
            result = handler(state, arguments, fault)
            if fault:
                raise_fault(fault, self.host)
            return result


def bind_arguments(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    required, optional = SIGNATURES[name]
    if len(args) > len(required):
        raise TypeError(f"{name}() takes {len(required)} positional arguments")
    arguments = dict(zip(required, args))
    for key, value in kwargs.items():
        if key in arguments:
            raise TypeError(f"{name}() got multiple values for argument '{key}'")
        if key not in required and key not in optional and key not in COMMON_OPTIONS:
            raise TypeError(
                f"Got an unexpected keyword argument '{key}' to method {name}"
            )
        arguments[key] = value
    for key in required:
        if key not in arguments:
            raise TypeError(f"{name}() missing 1 required positional argument: '{key}'")
        if arguments[key] is None:
            raise ValueError(
                f"Missing the required parameter `{key}` when calling `{name}`"
            )
    return {key: value for key, value in arguments.items() if key not in COMMON_OPTIONS}


def serialize(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.to_dict() if hasattr(value, "to_dict") else value
        for key, value in arguments.items()
    }


def take_fault(state: dict, name: str) -> dict | None:
    for fault in state["faults"]:
        if fault["method"] in (name, "*") and fault.get("count", 1) != 0:
            if fault.get("count", 1) > 0:
                fault["count"] = fault.get("count", 1) - 1
            return dict(fault)
    return None


def raise_fault(fault: dict, host: str) -> None:
    kind = fault.get("kind", "status")
    if kind == "hide":
        return
    if kind == "connection":
        # NOTE: the generated client sends requests through urllib3, so a refused
        # connection surfaces as urllib3's MaxRetryError; the facts this double
        # follows do not describe that case.
        import urllib3

        raise urllib3.exceptions.MaxRetryError(
            None, host, urllib3.exceptions.NewConnectionError(None, "refused")
        )
    raise api_error(fault["status"], fault.get("message", "injected failure"))


def body_fields(body: Any, request_class: type) -> dict[str, Any]:
    """Return the fields of a request object or dict; unknown dict keys -> 400."""
    if isinstance(body, dict):
        unknown = sorted(set(body) - set(request_class._fields))
        if unknown:
            raise api_error(400, f"unknown field(s) {unknown} in the request body")
        return {key: value for key, value in body.items() if value is not None}
    if not isinstance(body, request_class):
        raise api_error(400, f"expected a {request_class.__name__} body")
    return {key: value for key, value in body.to_dict().items() if value is not None}


def next_id(state: dict, kind: str) -> tuple[str, str]:
    """Return a new CML-like id (``4gn3-hx4n-0hlc-cemg``) and a creation time."""
    state["sequence"] += 1
    number = state["sequence"]
    digest = hashlib.sha1(f"{kind}-{number}".encode()).hexdigest()[:16]
    identifier = "-".join(digest[index : index + 4] for index in range(0, 16, 4))
    hours, minutes, seconds = number // 3600, number // 60 % 60, number % 60
    created_at = f"2024-06-01T{hours:02d}:{minutes:02d}:{seconds:02d}Z"
    return identifier, created_at


def matches(record: dict, search_filter: str | None) -> bool:
    # NOTE: whether CML's search_filter matches names exactly or by substring is
    # not documented. The double matches substrings, so callers must compare
    # names themselves.
    if not search_filter:
        return True
    try:
        wanted = json.loads(search_filter)
    except json.JSONDecodeError:
        raise api_error(400, f"search_filter is not JSON: {search_filter}") from None
    for key, value in wanted.items():
        actual = record.get(key)
        if isinstance(value, str) and isinstance(actual, str):
            if value.lower() not in actual.lower():
                return False
        elif actual != value:
            return False
    return True


def sort_records(records: list[dict], sort: str | None) -> list[dict]:
    if not sort:
        # Without a sort the order is not guaranteed; the double lists newest first.
        return list(reversed(records))
    field = sort.lstrip("-+")
    descending = sort.startswith("-")
    return sorted(
        records, key=lambda record: record.get(field) or "", reverse=descending
    )


def page(state: dict, records: list[dict], arguments: dict, response: type):
    """Return one page of ``records`` as ``response``, filtered and sorted."""
    field = response._fields[0]
    item = response._nested[field]
    search_filter = arguments.get("search_filter")
    selected = [record for record in records if matches(record, search_filter)]
    selected = sort_records(selected, arguments.get("sort"))
    size = int(arguments.get("page_size") or state["page_size"])
    start = int(arguments.get("page_token") or 0)
    chunk = selected[start : start + size]
    token = str(start + size) if start + size < len(selected) else ""
    items = [item.from_record(record) for record in chunk]
    return response(**{field: items, "next_page_token": token})


def find(state: dict, kind: str, arguments: dict, id_key: str, scope_key: str) -> dict:
    """Return the ``kind`` record matching ``arguments``, or raise a 404 error."""
    record_id = arguments[id_key]
    for record in state[kind]:
        if record["id"] == record_id and record.get(scope_key) == arguments[scope_key]:
            return record
    raise api_error(404, f"{id_key} {record_id} not found")


def advance(record: dict) -> None:
    record["step"] = min(record["step"] + 1, len(record["statuses"]) - 1)
    record["status"] = record["statuses"][record["step"]]


# Registered models ---------------------------------------------------------


def registered_view(record: dict, sort: str | None = None) -> models.RegisteredModel:
    versions = [item for item in record["versions"] if item["hidden_reads"] <= 0]
    if sort and sort.lstrip("-+") == "version_number":
        descending = sort.startswith("-")
        versions.sort(key=lambda version: version["number"], reverse=descending)
    return models.RegisteredModel(
        model_id=record["id"],
        name=record["name"],
        created_at=record["created_at"],
        model_versions=[models.RegisteredModelVersion.from_record(v) for v in versions],
    )


def handle_create_registered_model(state, arguments, fault):
    fields = body_fields(arguments["body"], models.CreateRegisteredModelRequest)
    name = fields.get("model_name")
    if not name or not fields.get("run_id"):
        raise api_error(400, "model_name and run_id are required")
    record = next((r for r in state["registered_models"] if r["name"] == name), None)
    if record is None:
        identifier, created_at = next_id(state, "registered")
        record = {
            "id": identifier,
            "name": name,
            "created_at": created_at,
            "versions": [],
        }
        state["registered_models"].append(record)
    version_id, created_at = next_id(state, "version")
    record["versions"].append(
        {
            "model_version_id": version_id,
            "number": len(record["versions"]) + 1,
            # NOTE: CML's version status values are not documented.
            "status": "registered",
            "created_at": created_at,
            "run_id": fields["run_id"],
            "model_path": fields.get("model_path"),
            "hidden_reads": state["version_listing_delay"],
        }
    )
    return registered_view(record)


def handle_get_registered_model(state, arguments, fault):
    for record in state["registered_models"]:
        if record["id"] == arguments["model_id"]:
            for version in record["versions"]:
                version["hidden_reads"] -= 1
            return registered_view(record, arguments.get("sort"))
    raise api_error(404, f"registered model {arguments['model_id']} not found")


def handle_list_registered_models(state, arguments, fault):
    rows = [
        {"id": r["id"], "model_id": r["id"], "name": r["name"], "model_name": r["name"],
         "created_at": r["created_at"]}
        for r in state["registered_models"]
    ]
    if fault and fault.get("kind") == "hide":
        rows = []
    selected = [row for row in rows if matches(row, arguments.get("search_filter"))]
    selected = sort_records(selected, arguments.get("sort"))
    size = int(arguments.get("page_size") or state["page_size"])
    start = int(arguments.get("page_token") or 0)
    chunk = selected[start : start + size]
    token = str(start + size) if start + size < len(selected) else ""
    by_id = {r["id"]: r for r in state["registered_models"]}
    return models.ListRegisteredModelsResponse(
        models=[registered_view(by_id[row["id"]]) for row in chunk],
        next_page_token=token,
    )


# Models, builds, deployments -------------------------------------------------


def handle_create_model(state, arguments, fault):
    fields = body_fields(arguments["body"], models.CreateModelRequest)
    project_id = arguments["project_id"]
    name = fields.get("name")
    if not name:
        raise api_error(400, "name is required")
    same_project = [m for m in state["models"] if m["project_id"] == project_id]
    if any(model["name"] == name for model in same_project):
        raise api_error(400, f"project {project_id} already has a model with that name")
    identifier, created_at = next_id(state, "model")
    record = {
        "id": identifier,
        "name": name,
        "project_id": project_id,
        "crn": f"crn:cdp:ml:fake:workspace:{project_id}/{identifier}",
        "access_key": "m" + secrets.token_hex(16),
        "auth_enabled": not fields.get("disable_authentication", False),
        "registered_model_id": fields.get("registered_model_id"),
        "description": fields.get("description"),
        "created_at": created_at,
    }
    state["models"].append(record)
    return models.Model.from_record(record)


def handle_list_models(state, arguments, fault):
    records = [m for m in state["models"] if m["project_id"] == arguments["project_id"]]
    if fault and fault.get("kind") == "hide":
        records = []
    return page(state, records, arguments, models.ListModelsResponse)


def handle_get_model(state, arguments, fault):
    record = find(state, "models", arguments, "model_id", "project_id")
    return models.Model.from_record(record)


def known_version(state: dict, version_id: str) -> bool:
    return any(
        version["model_version_id"] == version_id and version["hidden_reads"] <= 0
        for record in state["registered_models"]
        for version in record["versions"]
    )


def handle_create_model_build(state, arguments, fault):
    fields = body_fields(arguments["body"], models.CreateModelBuildRequest)
    model = find(state, "models", arguments, "model_id", "project_id")
    runtime = fields.get("runtime_identifier")
    if runtime not in [r["image_identifier"] for r in state["runtimes"]]:
        raise api_error(400, f"runtime {runtime} not found")
    version_id = fields.get("registered_model_version_id")
    if version_id and not known_version(state, version_id):
        raise api_error(404, f"registered model version {version_id} not found")
    if state["build_plans"]:
        statuses = state["build_plans"].pop(0)
    else:
        statuses = state["default_build_plan"]
    identifier, created_at = next_id(state, "build")
    record = {
        "id": identifier,
        "model_id": model["id"],
        "project_id": arguments["project_id"],
        "status": statuses[0],
        "statuses": list(statuses),
        "step": 0,
        "runtime_identifier": runtime,
        "registered_model_version_id": version_id,
        "comment": fields.get("comment"),
        "crn": f"{model['crn']}/build/{identifier}",
        "created_at": created_at,
    }
    state["builds"].append(record)
    return models.ModelBuild.from_record(record)


def handle_get_model_build(state, arguments, fault):
    record = find(state, "builds", arguments, "build_id", "model_id")
    advance(record)
    return models.ModelBuild.from_record(record)


def handle_list_model_builds(state, arguments, fault):
    records = [b for b in state["builds"] if b["model_id"] == arguments["model_id"]]
    return page(state, records, arguments, models.ListModelBuildsResponse)


DEPLOYMENT_FIELDS = ("cpu", "memory", "nvidia_gpus", "replicas", "environment")


def handle_create_model_deployment(state, arguments, fault):
    fields = body_fields(arguments["body"], models.CreateModelDeploymentRequest)
    build = find(state, "builds", arguments, "build_id", "model_id")
    if build["status"] != "built":
        raise api_error(400, f"build {build['id']} is {build['status']}, not built")
    statuses = (
        state["deployment_plans"].pop(0)
        if state["deployment_plans"]
        else state["default_deployment_plan"]
    )
    identifier, created_at = next_id(state, "deployment")
    record = {
        "id": identifier,
        "model_id": arguments["model_id"],
        "build_id": build["id"],
        "status": statuses[0],
        "statuses": list(statuses),
        "step": 0,
        "crn": f"{build['crn']}/deployment/{identifier}",
        "created_at": created_at,
        **{key: fields.get(key) for key in DEPLOYMENT_FIELDS},
    }
    state["deployments"].append(record)
    return models.ModelDeployment.from_record(record)


def handle_get_model_deployment(state, arguments, fault):
    record = find(state, "deployments", arguments, "deployment_id", "build_id")
    advance(record)
    return models.ModelDeployment.from_record(record)


def handle_list_model_deployments(state, arguments, fault):
    build_id = arguments["build_id"]
    records = [item for item in state["deployments"] if item["build_id"] == build_id]
    return page(state, records, arguments, models.ListModelDeploymentsResponse)


def handle_stop_model_deployment(state, arguments, fault):
    record = find(state, "deployments", arguments, "deployment_id", "build_id")
    record["statuses"] = ["stopped"]
    record["step"] = 0
    record["status"] = "stopped"
    return None


def handle_list_runtimes(state, arguments, fault):
    return page(state, state["runtimes"], arguments, models.ListRuntimesResponse)


# Jobs ---------------------------------------------------------------------------

JOB_UPDATE_FIELDS = (
    "name",
    "schedule",
    "parent_id",
    "timeout",
    "cpu",
    "memory",
    "environment",
    "arguments",
)


def environment_text(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, dict):
        return json.dumps(value)
    json.loads(value)
    return value


def check_job_links(state: dict, record: dict) -> None:
    if record.get("schedule") and record.get("parent_id"):
        raise api_error(400, "a job cannot have both a schedule and a parent job")
    if record.get("parent_id"):
        parent = {"job_id": record["parent_id"], "project_id": record["project_id"]}
        find(state, "jobs", parent, "job_id", "project_id")


def handle_create_job(state, arguments, fault):
    fields = body_fields(arguments["body"], models.CreateJobRequest)
    for required in ("name", "script", "runtime_identifier"):
        if not fields.get(required):
            raise api_error(400, f"{required} is required")
    identifier, created_at = next_id(state, "job")
    record = {
        "id": identifier,
        "name": fields["name"],
        "project_id": arguments["project_id"],
        "script": fields["script"],
        "runtime_identifier": fields["runtime_identifier"],
        "cpu": fields.get("cpu", 1),
        "memory": fields.get("memory", 1),
        "parent_id": fields.get("parent_job_id") or "",
        "schedule": fields.get("schedule") or "",
        "environment": environment_text(fields.get("environment")),
        "arguments": fields.get("arguments") or "",
        "timeout": fields.get("timeout") or 0,
        "created_at": created_at,
        "updated_at": created_at,
    }
    check_job_links(state, record)
    state["jobs"].append(record)
    return models.Job.from_record(record)


def handle_list_jobs(state, arguments, fault):
    records = [j for j in state["jobs"] if j["project_id"] == arguments["project_id"]]
    return page(state, records, arguments, models.ListJobsResponse)


def handle_get_job(state, arguments, fault):
    record = find(state, "jobs", arguments, "job_id", "project_id")
    return models.Job.from_record(record)


def handle_update_job(state, arguments, fault):
    body = arguments["body"]
    fields = body.to_dict() if isinstance(body, models.Job) else dict(body)
    fields = {key: value for key, value in fields.items() if value is not None}
    if not isinstance(body, models.Job):
        unknown = sorted(set(fields) - set(JOB_UPDATE_FIELDS))
        if unknown:
            raise api_error(400, f"update_job cannot change {unknown}")
    record = find(state, "jobs", arguments, "job_id", "project_id")
    changed = dict(record)
    for key in JOB_UPDATE_FIELDS:
        if key in fields:
            value = fields[key]
            changed[key] = environment_text(value) if key == "environment" else value
    check_job_links(state, changed)
    _, changed["updated_at"] = next_id(state, "update")
    record.update(changed)
    return models.Job.from_record(record)


def handle_delete_job(state, arguments, fault):
    record = find(state, "jobs", arguments, "job_id", "project_id")
    state["jobs"].remove(record)
    return None


def handle_create_job_run(state, arguments, fault):
    fields = body_fields(arguments["body"], models.CreateJobRunRequest)
    job = find(state, "jobs", arguments, "job_id", "project_id")
    identifier, created_at = next_id(state, "run")
    record = {
        "id": identifier,
        "job_id": job["id"],
        "project_id": arguments["project_id"],
        "status": "ENGINE_SCHEDULING",
        "environment": environment_text(fields.get("environment")),
        "arguments": fields.get("arguments") or "",
        "created_at": created_at,
    }
    state["job_runs"].append(record)
    return models.JobRun.from_record(record)


def handle_get_job_run(state, arguments, fault):
    record = find(state, "job_runs", arguments, "run_id", "job_id")
    return models.JobRun.from_record(record)


def handle_list_job_runs(state, arguments, fault):
    records = [r for r in state["job_runs"] if r["job_id"] == arguments["job_id"]]
    return page(state, records, arguments, models.ListJobRunsResponse)
