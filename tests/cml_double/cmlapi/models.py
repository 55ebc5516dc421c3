"""Request and response classes of the fake ``cmlapi``.

Request classes accept only their declared keyword fields and raise TypeError
for others, as the generated client does. Responses expose attributes and
``to_dict()``; nested records become objects too.
"""

from __future__ import annotations

from typing import Any


class _Record:
    _fields: tuple[str, ...] = ()
    _nested: dict[str, type] = {}

    def __init__(self, **fields: Any) -> None:
        unknown = sorted(set(fields) - set(self._fields))
        if unknown:
            raise TypeError(
                f"__init__() got an unexpected keyword argument '{unknown[0]}'"
            )
        for name in self._fields:
            value = fields.get(name)
            nested = self._nested.get(name)
            if nested is not None and isinstance(value, list):
                value = [
                    nested(**item) if isinstance(item, dict) else item for item in value
                ]
            setattr(self, name, value)

    @classmethod
    def from_record(cls, record: dict[str, Any]):
        return cls(**{name: record.get(name) for name in cls._fields})

    def to_dict(self) -> dict[str, Any]:
        result = {}
        for name in self._fields:
            value = getattr(self, name)
            if isinstance(value, list):
                value = [
                    item.to_dict() if isinstance(item, _Record) else item
                    for item in value
                ]
            elif isinstance(value, _Record):
                value = value.to_dict()
            result[name] = value
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()


def _record_class(name: str, fields: str, nested: dict[str, type] | None = None):
    attributes = {"_fields": tuple(fields.split()), "_nested": nested or {}}
    return type(name, (_Record,), attributes)


CreateRegisteredModelRequest = _record_class(
    "CreateRegisteredModelRequest",
    "project_id experiment_id run_id model_path model_name description visibility",
)
# NOTE: the real CreateModelRequest has more fields than the ones listed in
# the facts this double follows; only those are accepted here.
CreateModelRequest = _record_class(
    "CreateModelRequest",
    "project_id name description registered_model_id disable_authentication",
)
CreateModelBuildRequest = _record_class(
    "CreateModelBuildRequest",
    "registered_model_version_id runtime_identifier comment model_id project_id "
    "file_path function_name kernel",
)
CreateModelDeploymentRequest = _record_class(
    "CreateModelDeploymentRequest",
    "cpu memory nvidia_gpus replicas environment project_id model_id build_id",
)
CreateJobRequest = _record_class(
    "CreateJobRequest",
    "project_id name script runtime_identifier cpu memory nvidia_gpu parent_job_id "
    "schedule environment arguments timeout kernel",
)
CreateJobRunRequest = _record_class(
    "CreateJobRunRequest", "project_id job_id environment arguments"
)

RegisteredModelVersion = _record_class(
    "RegisteredModelVersion", "model_version_id number status created_at"
)
RegisteredModel = _record_class(
    "RegisteredModel",
    "model_id name model_versions created_at",
    {"model_versions": RegisteredModelVersion},
)
Model = _record_class(
    "Model",
    "id name project_id crn access_key auth_enabled registered_model_id description "
    "created_at",
)
ModelBuild = _record_class(
    "ModelBuild",
    "id model_id status runtime_identifier registered_model_version_id comment "
    "crn created_at",
)
ModelDeployment = _record_class(
    "ModelDeployment",
    "id model_id build_id status crn cpu memory nvidia_gpus replicas environment "
    "created_at",
)
Runtime = _record_class(
    "Runtime",
    "image_identifier kernel edition editor full_version short_version description",
)
Job = _record_class(
    "Job",
    "id name project_id script runtime_identifier cpu memory parent_id schedule "
    "environment arguments timeout created_at updated_at",
)
JobRun = _record_class(
    "JobRun", "id job_id project_id status environment arguments created_at"
)


def _list_class(name: str, field: str, item: type):
    return _record_class(name, f"{field} next_page_token", {field: item})


ListRegisteredModelsResponse = _list_class(
    "ListRegisteredModelsResponse", "models", RegisteredModel
)
ListModelsResponse = _list_class("ListModelsResponse", "models", Model)
ListModelBuildsResponse = _list_class(
    "ListModelBuildsResponse", "model_builds", ModelBuild
)
ListModelDeploymentsResponse = _list_class(
    "ListModelDeploymentsResponse", "model_deployments", ModelDeployment
)
ListRuntimesResponse = _list_class("ListRuntimesResponse", "runtimes", Runtime)
ListJobsResponse = _list_class("ListJobsResponse", "jobs", Job)
ListJobRunsResponse = _list_class("ListJobRunsResponse", "job_runs", JobRun)
