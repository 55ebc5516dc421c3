"""setup_cml_jobs.py against the fake ``cmlapi``: created once, then updated."""

from __future__ import annotations

import json

import pytest
from conftest import job_env, run_script

from cml_double.helpers import PROJECT_ID, subprocess_environment, use_fake_cmlapi

use_fake_cmlapi()
from cmlapi import _fake  # noqa: E402

NAMES = [
    "1 Check drift",
    "2 Acquire labels",
    "3 Retrain model",
    "4 Register and deploy",
]


@pytest.fixture
def state(tmp_path):
    return _fake.new_state(tmp_path / "fake-cml.json")


def setup_jobs(workspace, state, *flags: str):
    env = subprocess_environment(job_env(workspace), state, LOOP_CML_RETRY_DELAY="0.01")
    return run_script("setup_cml_jobs", *flags, env=env, timeout=120)


def jobs_by_name(state) -> dict[str, dict]:
    return {job["name"]: job for job in _fake.read_state(state)["jobs"]}


def test_setup_creates_chain(workspace, state):
    result = setup_jobs(workspace, state)
    jobs = jobs_by_name(state)
    assert result.returncode == 0, result.stderr
    assert sorted(jobs) == NAMES
    assert jobs[NAMES[0]]["schedule"] == "0 6 * * *"
    assert jobs[NAMES[0]]["parent_id"] == ""
    for parent, child in zip(NAMES, NAMES[1:]):
        assert jobs[child]["parent_id"] == jobs[parent]["id"]
        assert jobs[child]["schedule"] == ""
    for job in jobs.values():
        assert json.loads(job["environment"]) == {"LOOP_CHAIN_MODE": "1"}
        assert job["cpu"] == 2
        assert job["memory"] == 4
        assert job["project_id"] == PROJECT_ID
    assert jobs[NAMES[2]]["script"] == "module3/3_retrain_model.py"


def test_setup_rerun_creates_none(workspace, state):
    setup_jobs(workspace, state)
    before = jobs_by_name(state)
    result = setup_jobs(workspace, state)
    assert result.returncode == 0, result.stderr
    assert len(_fake.calls(state, "create_job")) == 4
    assert len(_fake.calls(state, "update_job")) == 0
    assert jobs_by_name(state) == before


def test_setup_rerun_updates_in_place(workspace, state):
    setup_jobs(workspace, state)
    first = jobs_by_name(state)
    _fake.update_record(
        state, "jobs", first[NAMES[1]]["id"], environment='{"MY_SETTING": "x"}'
    )
    result = setup_jobs(workspace, state, "--schedule", "30 5 * * 1", "--cml-cpu", "1")
    jobs = jobs_by_name(state)
    assert result.returncode == 0, result.stderr
    assert len(_fake.calls(state, "create_job")) == 4
    assert jobs[NAMES[0]]["id"] == first[NAMES[0]]["id"]
    assert jobs[NAMES[0]]["schedule"] == "30 5 * * 1"
    assert jobs[NAMES[3]]["cpu"] == 1
    assert json.loads(jobs[NAMES[1]]["environment"]) == {
        "MY_SETTING": "x",
        "LOOP_CHAIN_MODE": "1",
    }


def test_setup_dry_run_changes_nothing(workspace, state):
    result = setup_jobs(workspace, state, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would create job '4 Register and deploy'" in result.stdout
    assert _fake.read_state(state)["jobs"] == []


def test_setup_prefix_and_arguments(workspace, state):
    result = setup_jobs(
        workspace,
        state,
        "--job-name-prefix",
        "loop: ",
        "--job-arguments",
        "4",
        "--target cml",
    )
    jobs = jobs_by_name(state)
    assert result.returncode == 0, result.stderr
    assert "loop: 1 Check drift" in jobs
    assert jobs["loop: 4 Register and deploy"]["arguments"] == "--target cml"


def test_setup_runtime_missing_exit_2(workspace, state):
    with _fake.locked_state(state) as fake:
        fake["runtimes"] = []
    result = setup_jobs(workspace, state)
    assert result.returncode == 2
    assert "found: none" in result.stderr


def test_setup_create_500_not_duplicated(workspace, state):
    with _fake.locked_state(state) as fake:
        fake["faults"] = [
            {"method": "create_job", "status": 500, "count": 1, "when": "after"}
        ]
    result = setup_jobs(workspace, state)
    assert result.returncode == 0, result.stderr
    assert len(_fake.read_state(state)["jobs"]) == 4
