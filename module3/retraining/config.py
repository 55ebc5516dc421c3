"""Workspace paths and settings read from flags and environment variables.

Every job resolves its files under one workspace root: ``--workdir``, else the
environment variable ``LOOP_WORKDIR``, else the repository root. Flags win over
environment variables, which win over defaults.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from retraining.errors import InvalidInputError

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
WORKDIR_ENV = "LOOP_WORKDIR"

EXPERIMENT_NAME = "banking_retraining_pipeline"
RETRAIN_RUN_NAME = "retrain_on_drift_v2"
BASELINE_RUN_NAME = "baseline_v1"
MODEL_NAME = "banking_campaign_predictor_v2"
MODEL_ARTIFACT_PATH = "model"
CHAMPION_ALIAS = "champion"

T = TypeVar("T")


@dataclass(frozen=True)
class Workspace:
    """The folder tree one loop reads and writes."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def history_dir(self) -> Path:
        return self.outputs_dir / "history"

    @property
    def locks_dir(self) -> Path:
        return self.outputs_dir / ".locks"

    @property
    def train_csv(self) -> Path:
        return self.data_dir / "banking_train.csv"

    @property
    def drift_report(self) -> Path:
        return self.outputs_dir / "1_drift_report.html"

    @property
    def drift_status(self) -> Path:
        return self.outputs_dir / "drift_status.json"

    @property
    def retrain_run_info(self) -> Path:
        return self.outputs_dir / "retrain_run_info.json"

    @property
    def deployment_info(self) -> Path:
        return self.outputs_dir / "deployment_info.json"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.root / "mlartifacts"


def resolve_workspace(workdir: str | None) -> Workspace:
    """Return the workspace named by ``--workdir``, ``LOOP_WORKDIR`` or the repo root.

    Raises InvalidInputError when the path exists but is not a directory.
    """
    raw = workdir or os.environ.get(WORKDIR_ENV) or str(REPOSITORY_ROOT)
    root = Path(raw).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InvalidInputError(
            f"workspace {root} is not a directory: pass --workdir (or set "
            f"{WORKDIR_ENV}) to a directory"
        )
    return Workspace(root)


def env_setting(name: str, default: T, parse: Callable[[str], T]) -> T:
    """Return environment variable ``name`` parsed by ``parse``, or ``default``.

    Raises InvalidInputError naming the variable and its value when parsing fails.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (TypeError, ValueError) as error:
        raise InvalidInputError(
            f"invalid value {raw!r} in environment variable {name}: {error}; "
            f"unset it or fix the value"
        ) from None


def parse_bool(raw: str) -> bool:
    """Parse 1/0, true/false, yes/no and on/off in any letter case."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


class InvalidSettingError(argparse.ArgumentTypeError, ValueError):
    """A flag or environment value that cannot be used.

    argparse prints its message for a flag (exit 2), and ``env_setting``
    catches it as a ValueError for an environment variable.
    """


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSettingError(f"expected a positive integer, got {raw!r}") from None
    if value <= 0:
        raise InvalidSettingError(f"expected a positive integer, got {value}")
    return value


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSettingError(f"expected a positive number, got {raw!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise InvalidSettingError(f"expected a positive finite number, got {raw!r}")
    return value


def unit_fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSettingError(f"expected a number, got {raw!r}") from None
    if not 0 < value < 1:
        raise InvalidSettingError(
            f"expected a number between 0 and 1 (exclusive), got {raw!r}"
        )
    return value
