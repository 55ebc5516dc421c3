"""The CML deployment target against the fake ``cmlapi`` (tests/cml_double).

Most cases call ``deploy_to_cml`` in this process; the happy path and the
rejected key also run job 4 as a subprocess when its script exists.
"""

from __future__ import annotations

import argparse
import json
import sys

import pytest
from conftest import SCRIPTS, job_env, run_script

from cml_double.helpers import API_KEY, DOMAIN, PROJECT_ID, cml_environment
from cml_double.helpers import subprocess_environment, use_fake_cmlapi
from retraining.config import Workspace
from retraining.errors import ExternalServiceError, InvalidInputError

use_fake_cmlapi()
from cmlapi import _fake  # noqa: E402

from retraining.deploy.cml import add_cml_arguments, deploy_to_cml  # noqa: E402

FAST_FLAGS = ["--cml-poll-interval", "0.01", "--cml-retry-delay", "0.01"]
MODEL = "banking_campaign_predictor_v2"


@pytest.fixture
def state(tmp_path, monkeypatch):
    path = _fake.new_state(tmp_path / "fake-cml.json")
    for name, value in cml_environment(path).items():
        monkeypatch.setenv(name, value)
    return path


@pytest.fixture
def run_info(workspace) -> dict:
    data = workspace / "data"
    data.mkdir()
    (data / "banking_train.csv").write_text(
        "age,job,marital,education,default,balance,housing,loan,contact,day,month,"
        "duration,campaign,pdays,previous,poutcome,y\n"
        "41,technician,single,secondary,no,512,yes,no,cellular,12,jun,180,2,-1,0,"
        "unknown,no\n",
        encoding="utf-8",
    )
    info = {
        "run_id": "4gn3-hx4n-0hlc-cemg",
        "experiment_id": "x1y2-z3w4-0000-aaaa",
        "experiment_name": "banking_retraining_pipeline",
        "model_artifact_path": "model",
        "model_uri": "runs:/4gn3-hx4n-0hlc-cemg/model",
        "model_name": MODEL,
        "training_files": [
            {"path": "data/banking_train.csv", "sha256": "0", "rows": 1}
        ],
        "newest_batch": None,
    }
    outputs = workspace / "outputs"
    outputs.mkdir()
    (outputs / "retrain_run_info.json").write_text(json.dumps(info), encoding="utf-8")
    return info


def deploy(workspace, run_info, *flags: str) -> int:
    parser = argparse.ArgumentParser()
    add_cml_arguments(parser)
    args = parser.parse_args([*FAST_FLAGS, *flags])
    return deploy_to_cml(args, run_info, Workspace(workspace))


def deployment_info(workspace) -> dict:
    return json.loads((workspace / "outputs" / "deployment_info.json").read_text())


def count(state, method: str) -> int:
    return len(_fake.calls(state, method))


def test_deploy_happy_path(state, workspace, run_info, capsys):
    assert deploy(workspace, run_info) == 0
    info = deployment_info(workspace)
    fake = _fake.read_state(state)
    assert info["deployed"] is True
    assert info["target"] == "cml"
    assert info["deployment_status"] == "deployed"
    assert info["build_status"] == "built"
    assert info["model_id"] == fake["models"][0]["id"]
    assert info["access_key"] == fake["models"][0]["access_key"]
    assert info["endpoint_url"] == f"https://modelservice.{DOMAIN}/model"
    assert info["sample_request"]["accessKey"] == info["access_key"]
    assert info["sample_request"]["request"]["dataframe_split"]["data"][0][0] == 41
    assert info["training_files"] == run_info["training_files"]
    assert "Authorization: Bearer <model API key>" in capsys.readouterr().out


def test_deploy_request_fields(state, workspace, run_info):
    flags = ["--cml-cpu", "1", "--cml-memory", "3", "--cml-replicas", "2"]
    deploy(workspace, run_info, *flags)
    registered = _fake.calls(state, "create_registered_model")[0]["args"]["body"]
    deployment = _fake.calls(state, "create_model_deployment")[0]["args"]["body"]
    model = _fake.calls(state, "create_model")[0]["args"]["body"]
    assert registered["run_id"] == run_info["run_id"]
    assert registered["experiment_id"] == run_info["experiment_id"]
    assert registered["model_path"] == "model"
    assert registered["project_id"] == PROJECT_ID
    assert deployment["replicas"] == 2
    assert deployment["memory"] == 3
    assert deployment["nvidia_gpus"] == 0
    assert model["disable_authentication"] is False


def test_deploy_job4_subprocess(state, workspace, run_info):
    if not SCRIPTS[4].exists():
        pytest.skip(f"{SCRIPTS[4]} does not exist yet")
    env = subprocess_environment(job_env(workspace), state, LOOP_DEPLOY_TARGET="cml")
    result = run_script(4, *FAST_FLAGS, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert deployment_info(workspace)["deployed"] is True
    assert "curl" in result.stdout
    assert count(state, "create_model_deployment") == 1


def test_model_reused_when_listed(state, workspace, run_info):
    use_fake_cmlapi()
    import cmlapi

    existing = cmlapi.default_client().create_model(
        cmlapi.CreateModelRequest(project_id=PROJECT_ID, name=MODEL), PROJECT_ID
    )
    deploy(workspace, run_info)
    assert count(state, "create_model") == 1
    assert deployment_info(workspace)["model_id"] == existing.id


def test_model_reused_after_duplicate_error(state, workspace, run_info):
    import cmlapi

    cmlapi.default_client().create_model(
        cmlapi.CreateModelRequest(project_id=PROJECT_ID, name=MODEL), PROJECT_ID
    )
    with _fake.locked_state(state) as fake:
        fake["faults"] = [{"method": "list_models", "kind": "hide", "count": 1}]
    assert deploy(workspace, run_info) == 0
    assert len(_fake.read_state(state)["models"]) == 1


def test_model_name_substring_ignored(state, workspace, run_info):
    import cmlapi

    cmlapi.default_client().create_model(
        cmlapi.CreateModelRequest(project_id=PROJECT_ID, name=f"{MODEL}_old"),
        PROJECT_ID,
    )
    deploy(workspace, run_info)
    assert len(_fake.read_state(state)["models"]) == 2


def test_runtime_discovery_newest(state, workspace, run_info):
    deploy(workspace, run_info)
    runtime = deployment_info(workspace)["runtime_identifier"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert runtime.endswith(f"{version}-standard:2024.10.1-b12")
    assert "workbench" in runtime


def test_runtime_configured_used(state, workspace, run_info):
    chosen = _fake.read_state(state)["runtimes"][0]["image_identifier"]
    deploy(workspace, run_info, "--cml-runtime", chosen)
    assert count(state, "list_runtimes") == 0
    assert deployment_info(workspace)["runtime_identifier"] == chosen


def test_runtime_missing_lists_found(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["runtimes"] = [r for r in fake["runtimes"] if r["edition"] != "Standard"]
    with pytest.raises(InvalidInputError) as error:
        deploy(workspace, run_info)
    assert "Nvidia GPU / Workbench" in str(error.value)
    assert "--cml-runtime" in str(error.value)


def test_build_failure_exit_3(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["build_plans"] = [["queued", "building", "build failed"]]
    with pytest.raises(ExternalServiceError) as error:
        deploy(workspace, run_info)
    assert error.value.exit_code == 3
    assert "'build failed'" in str(error.value)
    assert f"Models > {MODEL} > Builds" in str(error.value)
    assert deployment_info(workspace)["deployed"] is False


def test_build_timeout_reports_status(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["build_plans"] = [["queued", "building"]]
    with pytest.raises(ExternalServiceError) as error:
        deploy(workspace, run_info, "--cml-build-timeout", "0.2")
    assert "'building'" in str(error.value)
    assert deployment_info(workspace)["build_status"] == "building"


def test_rerun_after_timeout_continues(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["build_plans"] = [["queued", "building"]]
    with pytest.raises(ExternalServiceError):
        deploy(workspace, run_info, "--cml-build-timeout", "0.2")
    build_id = deployment_info(workspace)["build_id"]
    _fake.update_record(
        state, "builds", build_id, statuses=["building", "built"], step=0
    )
    assert deploy(workspace, run_info) == 0
    assert count(state, "create_registered_model") == 1
    assert count(state, "create_model") == 1
    assert count(state, "create_model_build") == 1
    assert deployment_info(workspace)["build_id"] == build_id


def test_rerun_after_build_failure_rebuilds(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["build_plans"] = [["queued", "build failed"]]
    with pytest.raises(ExternalServiceError):
        deploy(workspace, run_info)
    assert deploy(workspace, run_info) == 0
    assert count(state, "create_model_build") == 2
    assert count(state, "create_registered_model") == 1


def test_rerun_when_deployed_does_nothing(state, workspace, run_info, capsys):
    deploy(workspace, run_info)
    deploy(workspace, run_info)
    assert count(state, "create_model_deployment") == 1
    assert "already deployed" in capsys.readouterr().out


def test_deployment_failed_exit_3(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["deployment_plans"] = [["pending", "deploying", "failed"]]
    with pytest.raises(ExternalServiceError) as error:
        deploy(workspace, run_info)
    assert "'failed'" in str(error.value)
    assert deployment_info(workspace)["deployed"] is False


def test_server_error_retried(state, workspace, run_info, caplog):
    with _fake.locked_state(state) as fake:
        fake["faults"] = [
            {"method": "get_model_build", "status": 500, "count": 1},
            {
                "method": "create_model_deployment",
                "status": 500,
                "count": 1,
                "when": "after",
            },
            {"method": "create_model", "kind": "connection", "count": 1},
        ]
    assert deploy(workspace, run_info) == 0
    assert len(_fake.read_state(state)["deployments"]) == 1
    assert len(_fake.read_state(state)["models"]) == 1
    assert "retry 1 of 3" in caplog.text


def test_deployment_500_checks_list(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["faults"] = [{"method": "get_model_deployment", "status": 500, "count": 4}]
    assert deploy(workspace, run_info) == 0
    assert count(state, "list_model_deployments") >= 2


def test_server_error_gives_up_exit_3(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["faults"] = [{"method": "create_model_build", "status": 503, "count": -1}]
    with pytest.raises(ExternalServiceError) as error:
        deploy(workspace, run_info, "--cml-retries", "3")
    assert "gave up after 3 attempt(s)" in str(error.value)
    assert count(state, "create_model_build") == 3


def test_client_error_not_retried(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["faults"] = [{"method": "create_model_build", "status": 400, "count": -1}]
    with pytest.raises(InvalidInputError):
        deploy(workspace, run_info)
    assert count(state, "create_model_build") == 1


def test_wrong_key_exit_2_hidden(state, workspace, run_info, capsys, caplog):
    _fake.new_state(state, accepted_key="the-right-key-0000")
    with pytest.raises(InvalidInputError) as error:
        deploy(workspace, run_info)
    output = capsys.readouterr()
    assert error.value.exit_code == 2
    assert "API key" in str(error.value)
    assert API_KEY not in str(error.value)
    assert API_KEY not in output.out + output.err + caplog.text
    assert API_KEY not in (workspace / "outputs" / "deployment_info.json").read_text()
    assert API_KEY not in state.read_text()


def test_wrong_key_job4_subprocess(state, workspace, run_info):
    if not SCRIPTS[4].exists():
        pytest.skip(f"{SCRIPTS[4]} does not exist yet")
    _fake.new_state(state, accepted_key="the-right-key-0000")
    env = subprocess_environment(job_env(workspace), state, LOOP_DEPLOY_TARGET="cml")
    result = run_script(4, *FAST_FLAGS, env=env, timeout=300)
    outputs = "".join(p.read_text() for p in (workspace / "outputs").rglob("*.json"))
    assert result.returncode == 2, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    assert API_KEY not in outputs
    assert API_KEY not in state.read_text()


def test_api_url_key_from_env(state, workspace, run_info, monkeypatch):
    monkeypatch.delenv("CDSW_API_URL")
    monkeypatch.delenv("CDSW_APIV2_KEY")
    monkeypatch.setenv("LOOP_CML_API_KEY", "outside-key-1234")
    assert deploy(workspace, run_info, "--cml-api-url", f"https://{DOMAIN}") == 0


def test_missing_project_id_exit_2(state, workspace, run_info, monkeypatch):
    monkeypatch.delenv("CDSW_PROJECT_ID")
    with pytest.raises(InvalidInputError) as error:
        deploy(workspace, run_info)
    assert "--cml-project-id" in str(error.value)


def test_missing_cmlapi_names_install(state, workspace, run_info, monkeypatch):
    monkeypatch.setitem(sys.modules, "cmlapi", None)
    with pytest.raises(InvalidInputError) as error:
        deploy(workspace, run_info)
    assert f"pip install https://{DOMAIN}/api/v2/python.tar.gz" in str(error.value)


def test_progress_saved_per_step(state, workspace, run_info):
    with _fake.locked_state(state) as fake:
        fake["faults"] = [{"method": "list_runtimes", "status": 400, "count": -1}]
    with pytest.raises(InvalidInputError):
        deploy(workspace, run_info)
    info = deployment_info(workspace)
    assert info["registered_model_version_id"] is not None
    assert info["model_id"] is not None
    assert info["build_id"] is None
