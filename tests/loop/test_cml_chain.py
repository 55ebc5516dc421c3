"""The CML job chain, simulated: each job runs only when its parent exited 0.

The four real job scripts run as subprocesses in one workspace with
``LOOP_CHAIN_MODE=1`` and CML's environment, against the real MLflow server and
the fake ``cmlapi``. A drifted (simulated) batch must flow through labeling and
retraining to a CML deployment; a clean batch, sampled from the training data,
must flow through to no new deployment.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import SCRIPTS, job_env, run_script

from cml_double.helpers import subprocess_environment, use_fake_cmlapi

use_fake_cmlapi()
from cmlapi import _fake  # noqa: E402

pytestmark = pytest.mark.loop
CHAIN = (1, 2, 3, 4)
FAST_CML = {
    "LOOP_CML_POLL_INTERVAL": "0.01",
    "LOOP_CML_RETRY_DELAY": "0.01",
    "LOOP_DEPLOY_TARGET": "cml",
}


def run_chain(env: dict, first_job_args: tuple[str, ...] = ()) -> dict[int, int]:
    """Run jobs 1 to 4 as CML would: a child starts only after its parent exits 0."""
    codes: dict[int, int] = {}
    for number in CHAIN:
        args = first_job_args if number == 1 else ()
        result = run_script(number, *args, env=env, timeout=900)
        codes[number] = result.returncode
        if result.returncode != 0:
            print(result.stdout, result.stderr)
            break
    return codes


@pytest.fixture(scope="module")
def chain_scripts():
    missing = [str(SCRIPTS[number]) for number in CHAIN if not SCRIPTS[number].exists()]
    if missing:
        pytest.skip(f"job scripts not written yet: {', '.join(missing)}")


def test_chain_drift_then_clean(
    chain_scripts, prepared_workspace, mlflow_server, tmp_path
):
    state = _fake.new_state(tmp_path / "fake-cml.json")
    env = subprocess_environment(
        job_env(prepared_workspace, mlflow_server.uri),
        state,
        LOOP_CHAIN_MODE="1",
        **FAST_CML,
    )
    outputs = prepared_workspace / "outputs"

    drifted = run_chain(env)
    drift_status = json.loads((outputs / "drift_status.json").read_text())
    deployment = json.loads((outputs / "deployment_info.json").read_text())
    run_info = json.loads((outputs / "retrain_run_info.json").read_text())
    assert drifted == {1: 0, 2: 0, 3: 0, 4: 0}
    assert drift_status["drift_detected"] is True
    assert deployment["deployed"] is True
    assert deployment["target"] == "cml"
    assert deployment["run_id"] == run_info["run_id"]
    assert len(_fake.read_state(state)["deployments"]) == 1

    # The deployed model was trained on the old rows plus the labeled batch,
    # so a clean batch is a random sample of both.
    data = prepared_workspace / "data"
    trained_on = pd.concat(
        [
            pd.read_csv(data / "banking_train.csv"),
            pd.read_csv(data / "new_labeled_batch_01.csv").drop(columns="record_id"),
        ]
    )
    clean = trained_on.drop(columns=["y"]).sample(n=3000, random_state=7)
    clean.insert(0, "record_id", [f"clean-{i}" for i in range(len(clean))])
    clean_path = tmp_path / "clean_batch.csv"
    clean.to_csv(clean_path, index=False)

    clean_codes = run_chain(env, ("--current", str(clean_path)))
    drift_status = json.loads((outputs / "drift_status.json").read_text())
    assert clean_codes == {1: 0, 2: 0, 3: 0, 4: 0}
    assert drift_status["drift_detected"] is False
    assert json.loads((outputs / "retrain_run_info.json").read_text()) == run_info
    assert len(_fake.calls(state, "create_model_deployment")) == 1
    assert len(_fake.calls(state, "create_registered_model")) == 1


def test_chain_clean_first_trains_nothing(
    chain_scripts, prepared_workspace, mlflow_server, tmp_path
):
    state = _fake.new_state(tmp_path / "fake-cml.json")
    env = subprocess_environment(
        job_env(prepared_workspace, mlflow_server.uri),
        state,
        LOOP_CHAIN_MODE="1",
        **FAST_CML,
    )
    train = pd.read_csv(prepared_workspace / "data" / "banking_train.csv")
    clean_path = tmp_path / "clean_batch.csv"
    train.drop(columns=["y"]).sample(n=3000, random_state=8).to_csv(clean_path, index=False)

    codes = run_chain(env, ("--current", str(clean_path)))
    outputs = prepared_workspace / "outputs"

    assert codes == {1: 0, 2: 0, 3: 0, 4: 0}
    assert not (outputs / "retrain_run_info.json").exists()
    assert not (outputs / "deployment_info.json").exists()
    assert _fake.calls(state, "create_registered_model") == []
    assert not list((prepared_workspace / "data").glob("new_labeled_batch_*"))
