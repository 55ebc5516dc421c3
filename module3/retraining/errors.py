"""Exceptions that map to the jobs' exit codes.

Exit codes are the interface between chained jobs, so every error class
carries its code. 1 is reserved for "drift found" and no error maps to it.
"""

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_INVALID_INPUT = 2
EXIT_EXTERNAL_SERVICE = 3
EXIT_OTHER_ERROR = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class LoopError(Exception):
    """Base class of the errors a job reports without a traceback."""

    exit_code = EXIT_OTHER_ERROR


class InvalidInputError(LoopError):
    """Invalid input data, arguments or configuration (exit code 2)."""

    exit_code = EXIT_INVALID_INPUT


class ExternalServiceError(LoopError):
    """An external service (MLflow, scoring server, CML) failed (exit code 3)."""

    exit_code = EXIT_EXTERNAL_SERVICE


class JobLockedError(LoopError):
    """Another process runs the same job in the same workspace (exit code 4)."""

    exit_code = EXIT_OTHER_ERROR


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM."""
