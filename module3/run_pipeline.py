"""Run the whole loop: prepare data, check drift, label, retrain, register and deploy.

Each job runs as its own process, as a scheduler would chain them. Job 1's exit
code 1 (drift) triggers jobs 2 to 4; exit code 0 (no drift) ends the loop with
0. The first job that fails stops the loop, and its exit code is returned.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from retraining.cli import run_job
except Exception as import_error:  # exit 1 would read as "drift found"
    print(f"error: cannot import the retraining package: {import_error}", file=sys.stderr)
    sys.exit(4)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default=os.environ.get("BANK_MARKETING_CSV"),
        help="job 0: local bank-full.csv instead of the download "
        "(env BANK_MARKETING_CSV)",
    )
    parser.add_argument("--current", help="job 1: CSV batch to check instead of a simulated one")
    parser.add_argument("--labels", help="job 2: CSV with real outcomes for the batch")
    parser.add_argument(
        "--target",
        choices=["auto", "local", "cml"],
        help="job 4: deployment target (env LOOP_DEPLOY_TARGET; default auto)",
    )
    return parser


def main(args: argparse.Namespace, workspace) -> int:
    from retraining.errors import InvalidInputError
    from retraining.pipeline import run_loop

    # Job 4 checks the target too, but only after jobs 1 to 3 have written a
    # batch and a run, so a wrong value is rejected before the loop starts.
    target = (args.target or os.environ.get("LOOP_DEPLOY_TARGET", "")).strip().lower()
    if target not in ("", "auto", "local", "cml"):
        raise InvalidInputError(
            f"invalid deployment target {target!r} in LOOP_DEPLOY_TARGET: use auto, "
            f"local or cml"
        )

    job_arguments = {
        0: ["--source", str(Path(args.source).expanduser().resolve())] if args.source else [],
        1: ["--current", str(Path(args.current).expanduser().resolve())]
        if args.current
        else [],
        2: ["--labels", str(Path(args.labels).expanduser().resolve())] if args.labels else [],
        4: ["--target", args.target] if args.target else [],
    }
    return run_loop(workspace, job_arguments)


if __name__ == "__main__":
    sys.exit(run_job("run_pipeline", build_parser, main))
