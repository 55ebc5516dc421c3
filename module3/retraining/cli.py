"""What every job script shares: arguments, logging, locking and exit codes.

Only the standard library is imported here, so that a job whose third-party
packages fail to import still exits with code 4 and a message, not with
Python's default 1, which the chain would read as "drift found".
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import traceback
from typing import Callable

from retraining.config import WORKDIR_ENV, Workspace, resolve_workspace
from retraining.errors import (
    EXIT_OTHER_ERROR,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    LoopError,
    Terminated,
)
from retraining.files import job_lock

log = logging.getLogger("retraining")

# Environment variables whose values must never reach a log line.
SECRET_ENV_VARS = (
    "CDSW_APIV2_KEY",
    "LOOP_CML_API_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "CML_MODEL_API_KEY",
)

JobMain = Callable[[argparse.Namespace, Workspace], int]


class RedactSecrets(logging.Filter):
    """Replace the values of secret environment variables in every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
        secrets = [value for value in secrets if len(value) >= 4]
        if not secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg = message
        record.args = None
        return True


def redact(text: str) -> str:
    """Return ``text`` with the values of secret environment variables masked."""
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party libraries log a lot at INFO; keep their warnings only.
    for noisy in ("mlflow", "alembic", "urllib3", "evidently", "git"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def job_arguments(argv: list[str]) -> list[str]:
    """Return ``JOB_ARGUMENTS`` (set by CML for job runs) followed by ``argv``.

    Later flags win in argparse, so flags on the command line override the ones
    configured on the CML job.
    """
    raw = os.environ.get("JOB_ARGUMENTS", "").strip()
    if not raw:
        return argv
    try:
        return shlex.split(raw) + argv
    except ValueError as error:
        print(
            f"error: invalid JOB_ARGUMENTS {raw!r} ({error}); fix the quoting in "
            f"the job's arguments",
            file=sys.stderr,
        )
        sys.exit(2)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        help=f"workspace root holding data/ and outputs/ (env {WORKDIR_ENV}; "
        f"default: the repository root)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOOP_LOG_LEVEL", "INFO").upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (env LOOP_LOG_LEVEL; default INFO)",
    )


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run_job(
    job_name: str,
    parser: argparse.ArgumentParser,
    main: JobMain,
    argv: list[str] | None = None,
) -> int:
    """Parse arguments, take the job's lock, run ``main`` and map errors to codes.

    Returns the exit code: ``main``'s own result, 2 for invalid input, 3 for a
    failed external service, 4 for any other error, 130 after SIGINT and 143
    after SIGTERM.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    add_common_arguments(parser)
    args = parser.parse_args(job_arguments(sys.argv[1:] if argv is None else argv))
    configure_logging(args.log_level)
    try:
        workspace = resolve_workspace(args.workdir)
        with job_lock(workspace.locks_dir, job_name):
            return main(args, workspace)
    except LoopError as error:
        log.error("%s", error)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("interrupted (SIGINT); no partial output was kept")
        return EXIT_SIGINT
    except Terminated:
        log.error("terminated (SIGTERM); no partial output was kept")
        return EXIT_SIGTERM
    except ImportError as error:
        log.error(
            "cannot import %s (%s); install the requirements with "
            "'pip install -r requirements.txt'",
            error.name or "a required package",
            error,
        )
        return EXIT_OTHER_ERROR
    except OSError as error:
        log.error("file system error: %s", error)
        return EXIT_OTHER_ERROR
    except Exception:
        log.error("unexpected error:\n%s", redact(traceback.format_exc()))
        return EXIT_OTHER_ERROR


def exit_with(code: int) -> None:
    """Flush the output streams and exit with ``code``."""
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
