"""Job 1: check a production batch for data drift against the training data.

By default the batch is simulated from the training data (older customers, new
job categories) and stored under data/ so later jobs use the same rows; pass
--current PATH to check a CSV of your own. Writes outputs/1_drift_report.html
and outputs/drift_status.json. Exits 1 when drift is found (the trigger for
the next job), 0 when not, and 2, 3 or 4 on errors. In chain mode
(LOOP_CHAIN_MODE=1, set on CML jobs) it exits 0 on drift too, because CML
starts the next job only when this one succeeds.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from retraining.cli import run_job
    from retraining.config import env_setting, parse_bool, positive_float, positive_int
except Exception as import_error:  # exit 1 would read as "drift found"
    print(f"error: cannot import the retraining package: {import_error}", file=sys.stderr)
    sys.exit(4)

DRIFT_BANNER = "!!! DATA DRIFT DETECTED! !!!"


def build_parser() -> argparse.ArgumentParser:
    from retraining import drift

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = parser.add_argument_group("batch")
    source.add_argument(
        "--current",
        default=os.environ.get("LOOP_CURRENT_BATCH"),
        help="CSV batch to check instead of simulating one (env LOOP_CURRENT_BATCH)",
    )
    source.add_argument(
        "--id-column",
        default=os.environ.get("LOOP_ID_COLUMN", "record_id"),
        help="id column of the batch; added from row positions where absent "
        "(env LOOP_ID_COLUMN)",
    )
    source.add_argument(
        "--batch-size",
        type=positive_int,
        default=env_setting("LOOP_BATCH_SIZE", 3000, positive_int),
        help="rows of a simulated batch (env LOOP_BATCH_SIZE)",
    )
    source.add_argument(
        "--seed",
        type=int,
        default=env_setting("LOOP_SEED", 42, int),
        help="random seed of the simulation (env LOOP_SEED)",
    )
    rule = parser.add_argument_group("verdict rule")
    rule.add_argument(
        "--numeric-method",
        default=os.environ.get("LOOP_NUMERIC_METHOD", drift.DEFAULT_NUMERIC_METHOD),
        choices=drift.NUMERIC_METHODS,
        help="Evidently distance for numeric columns (env LOOP_NUMERIC_METHOD)",
    )
    rule.add_argument(
        "--categorical-method",
        default=os.environ.get(
            "LOOP_CATEGORICAL_METHOD", drift.DEFAULT_CATEGORICAL_METHOD
        ),
        choices=drift.CATEGORICAL_METHODS,
        help="Evidently distance for categorical columns (env LOOP_CATEGORICAL_METHOD)",
    )
    rule.add_argument(
        "--numeric-threshold",
        type=positive_float,
        default=env_setting(
            "LOOP_NUMERIC_THRESHOLD", drift.DEFAULT_THRESHOLD, positive_float
        ),
        help="a numeric column drifts at this distance or more "
        "(env LOOP_NUMERIC_THRESHOLD)",
    )
    rule.add_argument(
        "--categorical-threshold",
        type=positive_float,
        default=env_setting(
            "LOOP_CATEGORICAL_THRESHOLD", drift.DEFAULT_THRESHOLD, positive_float
        ),
        help="a categorical column drifts at this distance or more "
        "(env LOOP_CATEGORICAL_THRESHOLD)",
    )
    rule.add_argument(
        "--min-drifted-columns",
        type=positive_int,
        default=env_setting(
            "LOOP_MIN_DRIFTED_COLUMNS", drift.DEFAULT_MIN_DRIFTED_COLUMNS, positive_int
        ),
        help="the batch has drifted when at least this many columns drift "
        "(env LOOP_MIN_DRIFTED_COLUMNS)",
    )
    rule.add_argument(
        "--min-batch-rows",
        type=positive_int,
        default=env_setting(
            "LOOP_MIN_BATCH_ROWS", drift.DEFAULT_MIN_BATCH_ROWS, positive_int
        ),
        help="a smaller batch is rejected as invalid input (env LOOP_MIN_BATCH_ROWS)",
    )
    parser.add_argument(
        "--chain-mode",
        action="store_true",
        default=env_setting("LOOP_CHAIN_MODE", False, parse_bool),
        help="exit 0 on drift as well, for CML job chains (env LOOP_CHAIN_MODE)",
    )
    return parser


def main(args: argparse.Namespace, workspace) -> int:
    from retraining import drift_status
    from retraining.data import load_table
    from retraining.drift import DriftSettings, check_drift, simulate_batch
    from retraining.errors import InvalidInputError

    settings = DriftSettings(
        numeric_method=args.numeric_method,
        categorical_method=args.categorical_method,
        numeric_threshold=args.numeric_threshold,
        categorical_threshold=args.categorical_threshold,
        min_drifted_columns=args.min_drifted_columns,
        min_batch_rows=args.min_batch_rows,
    )
    settings.validate()
    reference_paths = drift_status.reference_files(workspace)
    reference, described = drift_status.load_reference(reference_paths)

    if args.current:
        batch = drift_status.load_current_batch(Path(args.current).expanduser(), args.id_column)
    else:
        if args.batch_size <= 0:
            raise InvalidInputError(
                f"invalid --batch-size {args.batch_size}: use a positive number of rows"
            )
        training = load_table(workspace.train_csv, "training data", require_target=True)
        frame, outcomes = simulate_batch(training.frame, args.batch_size, args.seed)
        batch = drift_status.store_simulated_batch(workspace, frame, outcomes)

    result = check_drift(reference, batch.frame, settings)
    status = drift_status.build_status(
        workspace, batch, described, len(reference), result, args.chain_mode
    )
    history_copy = drift_status.write_outputs(workspace, status, result.snapshot)
    print(f"batch: {batch.path} ({len(batch.frame)} rows)")
    print(f"report: {workspace.drift_report}")
    print(f"status: {workspace.drift_status} (copy: {history_copy})")

    if not result.drift_detected:
        print(
            f"No data drift: {len(result.drifted_columns)} of {len(result.columns)} "
            f"columns drifted (rule: at least {settings.min_drifted_columns})."
        )
        return 0
    print(DRIFT_BANNER)
    for column in result.drifted_columns:
        score = "no values" if column.score is None else f"{column.score:.3f}"
        print(f"  {column.column}: {column.method} = {score} (threshold {column.threshold})")
    for column, categories in result.unseen_categories.items():
        print(f"  unseen categories in {column}: {categories}")
    if args.chain_mode:
        print("chain mode: exiting 0 so that the next job runs and labels this batch")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(run_job("1_check_drift", build_parser, main))
