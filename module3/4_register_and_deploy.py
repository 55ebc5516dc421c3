"""Job 4: register the retrained model and deploy it.

Reads ``outputs/retrain_run_info.json`` (written by job 3) and deploys the
run's model to the target chosen by ``--target``: ``local`` registers it in
the MLflow Model Registry and serves it with ``mlflow models serve``; ``cml``
deploys it as a Cloudera Machine Learning model. Writes
``outputs/deployment_info.json``. Exit codes: 0 deployed (or already
deployed), 2 invalid input, 3 MLflow, scoring server or CML failed, 4 other.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from retraining.cli import run_job
except Exception as import_error:  # exit 1 would read as "drift found"
    print(
        f"error: cannot import the retraining package: {import_error}",
        file=sys.stderr,
    )
    sys.exit(4)

JOB_NAME = "4_register_and_deploy"
RUN_INFO_KEYS = ("run_id", "model_uri", "training_files")


def build_parser() -> argparse.ArgumentParser:
    from retraining.deploy import add_target_argument, cml
    from retraining.deploy.local import add_local_arguments
    from retraining.tracking import add_tracking_arguments

    parser = argparse.ArgumentParser(
        description="Register the model of the last retrain run and deploy it "
        "(local scoring server or CML model)."
    )
    add_target_argument(parser)
    add_tracking_arguments(parser)
    add_local_arguments(parser)
    cml.add_cml_arguments(parser)
    return parser


def main(args: argparse.Namespace, workspace) -> int:
    from retraining.config import env_setting, parse_bool
    from retraining.deploy import resolve_target
    from retraining.files import read_state_json

    chain_mode = env_setting("LOOP_CHAIN_MODE", False, parse_bool)
    # Settings are checked before anything else, so that a wrong value exits 2
    # even on a run that has nothing to deploy.
    target = resolve_target(args)
    settings = check_local_settings(args) if target == "local" else None
    if chain_mode and not workspace.retrain_run_info.exists():
        print("nothing to deploy: job 3 has not trained a model yet (chain mode)")
        return 0
    run_info = read_state_json(
        workspace.retrain_run_info, "module3/3_retrain_model.py", RUN_INFO_KEYS
    )
    if chain_mode:
        if already_deployed(workspace, run_info, target):
            print(f"nothing to deploy: run {run_info['run_id']} is already deployed")
            return 0
    if target == "cml":
        from retraining.deploy import cml

        return cml.deploy_to_cml(args, run_info, workspace)

    from retraining.deploy.local import deploy_local
    from retraining.tracking import configure_tracking, resolve_timeout

    tracking = configure_tracking(workspace, resolve_timeout(args))
    return deploy_local(args, run_info, workspace, tracking, settings)


def check_local_settings(args: argparse.Namespace):
    """Return the local server settings after checking them and the tracking URI."""
    from retraining.deploy.local import resolve_local_settings
    from retraining.tracking import check_tracking_env, resolve_timeout

    resolve_timeout(args)
    check_tracking_env()
    return resolve_local_settings(args)


def already_deployed(workspace, run_info: dict, target: str) -> bool:
    """Return True if deployment_info.json records this run as deployed to ``target``.

    A local deployment counts only while its scoring server responds.
    """
    from retraining.deploy.local import live_local_server, previous_deployment

    previous = previous_deployment(workspace)
    if not previous or not previous.get("deployed"):
        return False
    if previous.get("run_id") != run_info["run_id"] or previous.get("target") != target:
        return False
    return target != "local" or live_local_server(previous)


if __name__ == "__main__":
    sys.exit(run_job(JOB_NAME, build_parser, main))
