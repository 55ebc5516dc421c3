"""Job 3: retrain the campaign model on old and newly labeled rows.

Trains v2 on ``data/banking_train.csv`` plus every ``data/new_labeled_batch_NN.csv``,
compares it with the v1 baseline on held-out old rows and held-out rows of the
newest batch, logs both to MLflow and writes ``outputs/retrain_run_info.json``.
Exit codes: 0 done (or nothing to retrain), 2 invalid input, 3 MLflow failed,
4 other error.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from retraining.cli import run_job
    from retraining.config import env_setting, parse_bool, unit_fraction
except Exception as import_error:  # exit 1 would read as "drift found"
    print(
        f"error: cannot import the retraining package: {import_error}",
        file=sys.stderr,
    )
    sys.exit(4)

JOB_NAME = "3_retrain_model"


def build_parser() -> argparse.ArgumentParser:
    from retraining.tracking import add_tracking_arguments

    parser = argparse.ArgumentParser(
        description="Retrain the bank marketing model on old and newly labeled rows "
        "and log v1 and v2 to MLflow."
    )
    parser.add_argument(
        "--include-duration",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train with the 'duration' column, which is known only after the call "
        "and leaks the outcome (env LOOP_INCLUDE_DURATION; default: left out)",
    )
    parser.add_argument(
        "--old-holdout-fraction",
        type=unit_fraction,
        default=None,
        help="fraction of banking_train.csv held out to score v1 and v2 "
        "(env LOOP_OLD_HOLDOUT_FRACTION; default 0.2)",
    )
    parser.add_argument(
        "--new-holdout-fraction",
        type=unit_fraction,
        default=None,
        help="fraction of the newest labeled batch held out to score v1 and v2 "
        "(env LOOP_NEW_HOLDOUT_FRACTION; default 0.3)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed of the holdout splits and the classifier "
        "(env LOOP_SEED; default 42)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="train a new run even if one exists for the same inputs and settings "
        "(env LOOP_FORCE_RETRAIN; default off)",
    )
    add_tracking_arguments(parser)
    return parser


def resolve_settings(args: argparse.Namespace):
    from retraining import retrain

    def pick(flag, env_name, default, parse):
        return flag if flag is not None else env_setting(env_name, default, parse)

    return retrain.RetrainSettings(
        include_duration=pick(
            args.include_duration, "LOOP_INCLUDE_DURATION", False, parse_bool
        ),
        old_holdout_fraction=pick(
            args.old_holdout_fraction,
            "LOOP_OLD_HOLDOUT_FRACTION",
            retrain.DEFAULT_OLD_HOLDOUT_FRACTION,
            unit_fraction,
        ),
        new_holdout_fraction=pick(
            args.new_holdout_fraction,
            "LOOP_NEW_HOLDOUT_FRACTION",
            retrain.DEFAULT_NEW_HOLDOUT_FRACTION,
            unit_fraction,
        ),
        seed=pick(args.seed, "LOOP_SEED", retrain.DEFAULT_SEED, int),
        force=pick(args.force, "LOOP_FORCE_RETRAIN", False, parse_bool),
        chain_mode=env_setting("LOOP_CHAIN_MODE", False, parse_bool),
    )


def main(args: argparse.Namespace, workspace) -> int:
    from retraining import retrain
    from retraining.tracking import (
        check_tracking_env,
        configure_tracking,
        resolve_timeout,
    )

    settings = resolve_settings(args)
    timeout = resolve_timeout(args)
    check_tracking_env()
    inputs = retrain.load_inputs(workspace)
    if settings.chain_mode and not settings.force:
        # In a CML chain this job runs after every drift check, drift or not,
        # so it trains only when job 2 has added a labeled batch.
        if len(inputs) == 1:
            print("nothing to retrain: no labeled batch yet (chain mode)")
            return 0
        if retrain.already_trained(workspace, inputs, settings):
            print(
                "nothing to retrain: outputs/retrain_run_info.json names a run "
                "trained on the same files and settings"
            )
            return 0
    tracking = configure_tracking(workspace, timeout)
    result = retrain.retrain(workspace, tracking, settings, inputs)
    for line in retrain.summary_lines(result):
        print(line)
    print(f"wrote {workspace.retrain_run_info}")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(JOB_NAME, build_parser, main))
