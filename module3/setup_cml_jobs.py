"""Create or update the CML job chain: drift -> labels -> retrain -> deploy.

Run it once in a CML session of the project (or outside CML with --cml-api-url
and LOOP_CML_API_KEY). Rerunning it updates the four jobs in place.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from retraining.cli import run_job
except Exception as import_error:  # exit 1 would read as "drift found"
    print(f"error: cannot import the retraining package: {import_error}", file=sys.stderr)
    sys.exit(4)


def build_parser() -> argparse.ArgumentParser:
    from retraining.cml_client import add_connection_arguments
    from retraining.cml_jobs import add_job_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    add_job_arguments(parser)
    return parser


def main(args: argparse.Namespace, workspace) -> int:
    from retraining.cml_jobs import setup_jobs

    return setup_jobs(args)


if __name__ == "__main__":
    sys.exit(run_job("setup_cml_jobs", build_parser, main))
