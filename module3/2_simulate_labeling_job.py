"""Job 2: label the batch that job 1 checked and write data/new_labeled_batch_NN.csv.

Simulated labels (the default) start from the batch rows' original outcomes and
apply business rules that shift the concept; --labels PATH takes real outcomes
from a CSV with the batch's id column and y instead. With no drift recorded it
does nothing and exits 0, unless --force. Labeling the same batch again writes
nothing.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from retraining.cli import run_job
    from retraining.config import env_setting, parse_bool
except Exception as import_error:  # exit 1 would read as "drift found"
    print(f"error: cannot import the retraining package: {import_error}", file=sys.stderr)
    sys.exit(4)

log = logging.getLogger("retraining.labels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--labels",
        default=os.environ.get("LOOP_LABELS_FILE"),
        help="CSV with real outcomes: the batch's id column and y (yes/no, y/n, "
        "true/false or 1/0) (env LOOP_LABELS_FILE)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="label the batch even though job 1 found no drift",
    )
    parser.add_argument(
        "--chain-mode",
        action="store_true",
        default=env_setting("LOOP_CHAIN_MODE", False, parse_bool),
        help="CML job chain mode; labels only when job 1 found drift, which is "
        "also the default (env LOOP_CHAIN_MODE)",
    )
    return parser


def main(args: argparse.Namespace, workspace) -> int:
    from retraining import labels as labeling
    from retraining.data import load_table
    from retraining.drift_status import load_current_batch, resolve_workspace_path
    from retraining.errors import InvalidInputError
    from retraining.files import read_state_json, sha256_file, utc_timestamp

    status = read_state_json(
        workspace.drift_status,
        "module3/1_check_drift.py",
        ("drift_detected", "batch.path", "batch.sha256"),
    )
    batch_info = status["batch"]
    if not isinstance(status["drift_detected"], bool) or not all(
        isinstance(batch_info.get(key), str) for key in ("path", "sha256")
    ):
        raise InvalidInputError(
            f"{workspace.drift_status} is invalid: drift_detected must be true or "
            f"false and batch.path and batch.sha256 must be text; rerun "
            f"module3/1_check_drift.py, which writes it"
        )
    if not status["drift_detected"] and not args.force:
        print("No drift recorded in drift_status.json: nothing to label.")
        return 0
    batch_path = resolve_workspace_path(batch_info["path"], workspace)
    if not batch_path.is_file():
        raise InvalidInputError(
            f"batch {batch_path} named in {workspace.drift_status} not found; rerun "
            f"module3/1_check_drift.py"
        )
    actual = sha256_file(batch_path)
    if actual != batch_info["sha256"]:
        raise InvalidInputError(
            f"batch {batch_path} changed after job 1 checked it (sha256 {actual}, "
            f"checked {batch_info['sha256']}); nothing labeled. Rerun "
            f"module3/1_check_drift.py to check the batch as it is now"
        )
    done = labeling.find_labeled_batch(workspace, actual)
    if done:
        print(f"Batch {batch_path.name} is already labeled as {done}: nothing written.")
        if args.labels:
            log.warning(
                "--labels %s was not applied because the batch is already labeled; "
                "to replace the labels, move %s and its .json manifest away and rerun",
                args.labels,
                done,
            )
        return 0

    id_column = batch_info.get("id_column") or "record_id"
    batch = load_current_batch(batch_path, id_column).frame
    if args.labels:
        label_path = Path(args.labels).expanduser().resolve()
        label_frame = labeling.read_label_file(label_path, id_column)
        labels = labeling.join_labels(batch, label_frame, id_column, label_path)
        before = None
        source = {"kind": "file", "path": str(label_path), "sha256": sha256_file(label_path)}
    else:
        outcomes_raw = batch_info.get("outcomes_path")
        if not outcomes_raw:
            raise InvalidInputError(
                f"batch {batch_path} was not simulated, so it has no original "
                f"outcomes to start the simulated labels from; pass --labels PATH "
                f"with its real outcomes"
            )
        outcomes_path = resolve_workspace_path(outcomes_raw, workspace)
        if not outcomes_path.is_file() or sha256_file(outcomes_path) != batch_info.get(
            "outcomes_sha256"
        ):
            raise InvalidInputError(
                f"outcomes file {outcomes_path} is missing or changed since job 1 "
                f"wrote it; rerun module3/1_check_drift.py"
            )
        outcomes = labeling.read_label_file(outcomes_path, "record_id")
        base = labeling.join_labels(batch, outcomes, id_column, outcomes_path)
        training = load_table(workspace.train_csv, "training data", require_target=True)
        known_jobs = set(training.frame["job"].dropna().unique())
        labels = labeling.apply_business_rules(batch, base, known_jobs)
        before = labeling.yes_rate(base)
        source = {"kind": "simulated business rules", "outcomes_path": outcomes_raw}
        changed = int((labels != base).sum())
        print(
            f"simulated labels: yes-rate {before:.1%} before the business rules, "
            f"{labeling.yes_rate(labels):.1%} after ({changed} labels changed)"
        )

    labeled = labeling.build_labeled_frame(batch, id_column, labels)
    manifest = {
        "source_batch": {"path": batch_info["path"], "sha256": actual},
        "label_source": source,
        "rows": len(labeled),
        "yes_rate_before_rules": before,
        "yes_rate": labeling.yes_rate(labels),
        "labeled_at": utc_timestamp(),
    }
    path, manifest_path = labeling.write_labeled_batch(workspace, labeled, manifest)
    print(f"wrote {path} ({len(labeled)} rows, yes-rate {labeling.yes_rate(labels):.1%})")
    print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_job("2_simulate_labeling_job", build_parser, main))
