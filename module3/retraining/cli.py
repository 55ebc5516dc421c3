"""Arguments, logging, locking and exit codes shared by every job script.

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
from pathlib import Path
from typing import Callable

from retraining.config import WORKDIR_ENV, Workspace, resolve_workspace
from retraining.errors import (
    EXIT_OTHER_ERROR,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    InvalidInputError,
    LoopError,
    Terminated,
)
from retraining.files import job_lock, remove_pending_temporaries

log = logging.getLogger("retraining")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

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
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        level = "INFO"
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
        raise InvalidInputError(
            f"invalid JOB_ARGUMENTS {raw!r} ({error}); fix the quoting in the "
            f"job's arguments"
        ) from None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        help=f"workspace root holding data/ and outputs/ (env {WORKDIR_ENV}; "
        f"default: the repository root)",
    )
    level = os.environ.get("LOOP_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise InvalidInputError(
            f"invalid value {level!r} in environment variable LOOP_LOG_LEVEL: use "
            f"one of {', '.join(LOG_LEVELS)}"
        )
    parser.add_argument(
        "--log-level",
        default=level,
        choices=LOG_LEVELS,
        help="logging level (env LOOP_LOG_LEVEL; default INFO)",
    )


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


class RedactingStream:
    """A text stream wrapper that masks secret values in everything written."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def failed_import_name(error: ImportError) -> str:
    """Return the package that failed to import, from the error or its traceback.

    An ImportError raised inside a package's ``__init__`` has no ``name``; the
    innermost frame of the traceback then belongs to that package.
    """
    if error.name:
        return error.name.split(".")[0]
    traceback_entry = error.__traceback__
    module_name = None
    while traceback_entry is not None:
        module_name = traceback_entry.tb_frame.f_globals.get("__name__", module_name)
        traceback_entry = traceback_entry.tb_next
    if module_name and module_name != "__main__":
        return module_name.split(".")[0]
    return "a required package"


def report_error(error: BaseException) -> int:
    """Log ``error`` without secrets and return the job's exit code for it."""
    if isinstance(error, LoopError):
        log.error("%s", error)
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        log.error("interrupted (SIGINT); no partial output was kept")
        return EXIT_SIGINT
    if isinstance(error, Terminated):
        log.error("terminated (SIGTERM); no partial output was kept")
        return EXIT_SIGTERM
    if isinstance(error, ImportError):
        log.error(
            "failed to import %s (%s); check PYTHONPATH and install the "
            "requirements with 'pip install -r requirements.txt'",
            failed_import_name(error),
            error,
        )
        return EXIT_OTHER_ERROR
    if isinstance(error, OSError):
        log.error("file system error: %s", error)
        return EXIT_OTHER_ERROR
    details = "".join(
        traceback.format_exception(type(error), error, error.__traceback__)
    )
    log.error("unexpected error (a bug; report it with this traceback):\n%s", details)
    return EXIT_OTHER_ERROR


def _exit_on_uncaught(error_type, error, error_traceback) -> None:
    """Exit with the job's code for an exception raised outside ``run_job``.

    Python's own exit code for an uncaught exception is 1, which the chain
    reads as "drift found"; this hook replaces it with 4 (130/143 on signals).
    """
    code = EXIT_OTHER_ERROR
    try:
        if not logging.getLogger().handlers:
            configure_logging("INFO")
        code = report_error(error)
    except BaseException:
        # Logging itself is broken; write the error directly and still exit 4.
        print(redact(f"error: {error_type.__name__}: {error}"), file=sys.__stderr__)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def build_job_parser(
    parser: argparse.ArgumentParser | Callable[[], argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Return ``parser``, or call it first if it is a function that builds one."""
    built = parser if isinstance(parser, argparse.ArgumentParser) else parser()
    add_common_arguments(built)
    return built


def run_job(
    job_name: str,
    parser: argparse.ArgumentParser | Callable[[], argparse.ArgumentParser],
    main: JobMain,
    argv: list[str] | None = None,
) -> int:
    """Parse arguments, take the job's lock, run ``main`` and map errors to codes.

    ``parser`` is an ArgumentParser or a function that builds one. A function is
    called inside the error handling, so a bad environment variable read while
    building the parser exits 2, not 1.

    Returns the exit code: ``main``'s own result, 2 for invalid input, 3 for a
    failed external service, 4 for any other error (also for a library's
    ``sys.exit(1)``), 130 after SIGINT and 143 after SIGTERM.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    # A POSIX shell starts background commands with SIGINT ignored; restore
    # Python's handler so that SIGINT still stops the job cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    configure_logging(os.environ.get("LOOP_LOG_LEVEL", "INFO").upper())
    try:
        built = build_job_parser(parser)
        args = built.parse_args(job_arguments(sys.argv[1:] if argv is None else argv))
        configure_logging(args.log_level)
        workspace = resolve_workspace(args.workdir)
        with job_lock(workspace.locks_dir, job_name):
            return main(args, workspace)
    except SystemExit as exit_request:
        return _exit_code_of(exit_request)
    except BaseException as error:
        return report_error(error)
    finally:
        remove_pending_temporaries()
        sys.stdout.flush()
        sys.stdout, sys.stderr = streams


def _exit_code_of(exit_request: SystemExit) -> int:
    """Return the code of a ``sys.exit`` call; 1 would read as drift, so it becomes 4."""
    code = exit_request.code
    if code is None:
        return 0
    if not isinstance(code, int):
        print(redact(str(code)), file=sys.stderr)
        return EXIT_OTHER_ERROR
    if code == 1:
        log.error("a library requested exit code 1; exiting with 4 instead")
        return EXIT_OTHER_ERROR
    return code


def exit_with(code: int) -> None:
    """Flush the output streams and exit with ``code``."""
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def _main_is_job_script() -> bool:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return False
    return Path(main_file).resolve().parent == Path(__file__).resolve().parents[1]


# Installed on import, because a job script imports this module before code
# that can fail outside run_job; other programs (pytest) keep their own hook.
if _main_is_job_script():
    sys.excepthook = _exit_on_uncaught
