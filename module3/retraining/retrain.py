"""Job 3: train the v2 model on old and newly labeled rows and log it to MLflow.

The v1 baseline is the same pipeline trained on ``banking_train.csv`` only. It
is logged once as its own run and reused by later retrains. v2 is trained on
the training rows plus every labeled batch. Both are scored on two holdouts
that neither saw: part of the old rows and part of the newest labeled batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retraining.config import (
    BASELINE_RUN_NAME,
    MODEL_ARTIFACT_PATH,
    MODEL_NAME,
    RETRAIN_RUN_NAME,
    Workspace,
)
from retraining.data import (
    CATEGORICAL_COLUMNS,
    DEFAULT_ID_COLUMN,
    FEATURE_COLUMNS,
    NUMERIC_COLUMNS,
    POSITIVE_LABEL,
    TARGET_COLUMN,
    load_table,
)
from retraining.errors import InvalidInputError
from retraining.files import (
    read_state_json,
    sha256_file,
    utc_timestamp,
    write_state_with_history,
)
from retraining.labels import labeled_batches
from retraining.tracking import Tracking, mlflow_errors

log = logging.getLogger(__name__)

DEFAULT_SEED = 42
DEFAULT_OLD_HOLDOUT_FRACTION = 0.2
DEFAULT_NEW_HOLDOUT_FRACTION = 0.3
# "duration" is the length of the call, known only after the call ended. UCI's
# description of the data set notes that it leaks the outcome, so it is left
# out unless requested.
LEAKING_COLUMN = "duration"
# Changing the pipeline below must change this tag, so that runs trained with
# another pipeline are neither reused nor taken as the baseline.
MODEL_SPEC = "hgb-balanced-1"
HOLDOUTS = ("old_holdout", "new_holdout")
METRIC_NAMES = ("f1_yes", "precision_yes", "recall_yes", "roc_auc", "rows")
INPUT_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class RetrainSettings:
    """Training options of job 3: features, holdout fractions, seed and reuse."""

    include_duration: bool = False
    old_holdout_fraction: float = DEFAULT_OLD_HOLDOUT_FRACTION
    new_holdout_fraction: float = DEFAULT_NEW_HOLDOUT_FRACTION
    seed: int = DEFAULT_SEED
    force: bool = False
    chain_mode: bool = False

    def split_tags(self) -> dict[str, str]:
        return {
            "include_duration": str(self.include_duration).lower(),
            "old_holdout_fraction": f"{self.old_holdout_fraction:g}",
            "split_seed": str(self.seed),
            "model_spec": MODEL_SPEC,
        }

    def retrain_tags(self) -> dict[str, str]:
        return {
            **self.split_tags(),
            "new_holdout_fraction": f"{self.new_holdout_fraction:g}",
        }


@dataclass
class InputFile:
    """One training file: its workspace-relative path, hash and rows."""

    path: str
    sha256: str
    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows}


@dataclass
class Split:
    """Training rows and the two holdouts; ``new_holdout`` is None without batches."""

    old_train: pd.DataFrame
    old_holdout: pd.DataFrame
    new_train: pd.DataFrame
    new_holdout: pd.DataFrame | None
    new_holdout_note: str | None = None


@dataclass
class RetrainResult:
    """Outcome of job 3: the run info written and whether a run was reused."""

    run_info: dict[str, Any]
    reused_run: bool = False
    training_rows: dict[str, int] = field(default_factory=dict)


def model_feature_columns(include_duration: bool) -> list[str]:
    """Return the feature columns the model reads, in UCI order."""
    return [
        column
        for column in FEATURE_COLUMNS
        if include_duration or column != LEAKING_COLUMN
    ]


def build_pipeline(include_duration: bool, seed: int = DEFAULT_SEED) -> Pipeline:
    """Build the unfitted preprocessing + classifier pipeline.

    Classifier choice, measured on UCI's bank-full.csv without "duration"
    (stratified 80/20 split, seed 42, 2 cores, scikit-learn 1.9.1):

        classifier                                 F1 yes  ROC AUC  fit time
        LogisticRegression                          0.281    0.772     0.5 s
        LogisticRegression, class_weight=balanced   0.373    0.772     0.6 s
        HistGradientBoosting                        0.347    0.803     0.6 s
        HistGradientBoosting, class_weight=balanced 0.459    0.805     0.9 s
        RandomForest(200 trees), balanced_subsample 0.481    0.803     2.9 s

    Balanced HistGradientBoosting is kept: F1 close to the random forest at a
    third of the fit time and a far smaller model file to log and serve.
    """
    numeric = [column for column in model_feature_columns(include_duration)]
    numeric = [column for column in numeric if column in NUMERIC_COLUMNS]
    numeric_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]
    )
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            # Dense output, because HistGradientBoosting rejects sparse input.
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric_steps, numeric),
            ("categorical", categorical_steps, CATEGORICAL_COLUMNS),
        ],
        remainder="drop",
    )
    classifier = HistGradientBoostingClassifier(
        class_weight="balanced", random_state=seed
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def model_input(frame: pd.DataFrame, include_duration: bool) -> pd.DataFrame:
    """Return the model's input columns, numbers as float64.

    Numbers are float64 so that the logged signature declares "double", and
    the scoring server then accepts integer and missing values in those columns.
    """
    columns = model_feature_columns(include_duration)
    features = frame[columns].copy()
    for column in columns:
        if column in NUMERIC_COLUMNS:
            features[column] = features[column].astype("float64")
    return features


def labeled_batch_paths(workspace: Workspace) -> list[Path]:
    """Return complete ``data/new_labeled_batch_NN.csv`` files in number order.

    A batch whose manifest is missing or does not match its content is left
    out (with a warning from ``labeled_batches``), so an interrupted or edited
    batch is never trained on.
    """
    return [path for path, _ in labeled_batches(workspace)]


def relative_path(workspace: Workspace, path: Path) -> str:
    return path.resolve().relative_to(workspace.root).as_posix()


def load_input(workspace: Workspace, path: Path, description: str) -> InputFile:
    table = load_table(
        path, description, require_target=True, id_column=DEFAULT_ID_COLUMN
    )
    return InputFile(
        path=relative_path(workspace, path), sha256=sha256_file(path), frame=table.frame
    )


def load_inputs(workspace: Workspace) -> list[InputFile]:
    """Load ``banking_train.csv`` and every labeled batch, oldest first.

    Raises InvalidInputError when the training file is missing or invalid.
    """
    if not workspace.train_csv.exists():
        raise InvalidInputError(
            f"training data {workspace.train_csv} not found: run "
            f"module3/0_prepare_data.py first, which writes it"
        )
    inputs = [load_input(workspace, workspace.train_csv, "training data")]
    for path in labeled_batch_paths(workspace):
        inputs.append(load_input(workspace, path, "labeled batch"))
    return inputs


def inputs_sha256(inputs: list[InputFile]) -> str:
    """Return one sha256 over the ``{"path","sha256","rows"}`` list of ``inputs``."""
    listing = [item.describe() for item in inputs]
    text = json.dumps(listing, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_holdout(
    frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into (train, holdout), stratified on ``y`` when possible.

    Stratification needs two rows of each label; with fewer the split is plain
    random. Raises ValueError when ``frame`` has fewer than two rows.
    """
    if len(frame) < 2:
        raise ValueError(f"cannot hold out rows from {len(frame)} row(s)")
    labels = frame[TARGET_COLUMN]
    holdout_rows = max(1, int(round(len(frame) * fraction)))
    holdout_rows = min(holdout_rows, len(frame) - 1)
    counts = labels.value_counts()
    stratify = None
    train_rows = len(frame) - holdout_rows
    enough_rows = holdout_rows >= len(counts) and train_rows >= len(counts)
    if len(counts) > 1 and counts.min() >= 2 and enough_rows:
        stratify = labels
    train, holdout = train_test_split(
        frame, test_size=holdout_rows, random_state=seed, stratify=stratify
    )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def split_inputs(inputs: list[InputFile], settings: RetrainSettings) -> Split:
    """Hold out part of the old rows and part of the newest labeled batch."""
    # NOTE: job 1 samples simulated batches from all old rows, so some labeled
    # rows are altered copies of old held-out rows and v2's old-holdout score
    # is slightly optimistic. The new holdout has no such overlap.
    old_train, old_holdout = split_holdout(
        inputs[0].frame, settings.old_holdout_fraction, settings.seed
    )
    batches = inputs[1:]
    if not batches:
        return Split(
            old_train,
            old_holdout,
            new_train=old_train.iloc[0:0],
            new_holdout=None,
            new_holdout_note="no labeled batch yet",
        )
    older = [batch.frame for batch in batches[:-1]]
    newest = batches[-1]
    if newest.rows < 2:
        note = f"newest labeled batch {newest.path} has {newest.rows} row(s)"
        new_train = pd.concat(older + [newest.frame], ignore_index=True)
        return Split(old_train, old_holdout, new_train, None, note)
    newest_train, new_holdout = split_holdout(
        newest.frame, settings.new_holdout_fraction, settings.seed
    )
    new_train = pd.concat(older + [newest_train], ignore_index=True)
    return Split(old_train, old_holdout, new_train, new_holdout)


def score(model: Pipeline, holdout: pd.DataFrame, include_duration: bool) -> dict:
    """Return F1, precision and recall for "yes", ROC AUC and the row count.

    ROC AUC is None when the holdout has only one label.
    """
    features = model_input(holdout, include_duration)
    truth = holdout[TARGET_COLUMN].to_numpy()
    predicted = model.predict(features)
    positive_column = list(model.classes_).index(POSITIVE_LABEL)
    probability = model.predict_proba(features)[:, positive_column]
    common = {"pos_label": POSITIVE_LABEL, "zero_division": 0}
    roc_auc = None
    if len(np.unique(truth)) == 2:
        roc_auc = float(roc_auc_score(truth == POSITIVE_LABEL, probability))
    return {
        "f1_yes": float(f1_score(truth, predicted, **common)),
        "precision_yes": float(precision_score(truth, predicted, **common)),
        "recall_yes": float(recall_score(truth, predicted, **common)),
        "roc_auc": roc_auc,
        "rows": int(len(holdout)),
    }


def fit_model(frame: pd.DataFrame, settings: RetrainSettings) -> Pipeline:
    model = build_pipeline(settings.include_duration, settings.seed)
    model.fit(model_input(frame, settings.include_duration), frame[TARGET_COLUMN])
    return model


def score_all(model: Pipeline, split: Split, settings: RetrainSettings) -> dict:
    """Return ``{"old_holdout": {...}, "new_holdout": {...} or None}``."""
    scores = {"old_holdout": score(model, split.old_holdout, settings.include_duration)}
    scores["new_holdout"] = None
    if split.new_holdout is not None:
        scores["new_holdout"] = score(
            model, split.new_holdout, settings.include_duration
        )
    return scores


def flatten_metrics(metrics: dict) -> dict[str, float]:
    """Return MLflow metric names like ``v2_new_holdout_f1_yes`` for ``metrics``."""
    flat = {}
    for version, holdouts in metrics.items():
        for holdout, values in holdouts.items():
            for name, value in (values or {}).items():
                if value is not None:
                    flat[f"{version}_{holdout}_{name}"] = float(value)
    return flat


def unflatten_metrics(flat: dict[str, float]) -> dict:
    """Rebuild the run info's ``metrics`` from a run's flat MLflow metrics."""
    metrics: dict = {}
    for version in ("v1", "v2"):
        metrics[version] = {}
        for holdout in HOLDOUTS:
            values = {
                name: flat.get(f"{version}_{holdout}_{name}") for name in METRIC_NAMES
            }
            if values["rows"] is None:
                metrics[version][holdout] = None
                continue
            values["rows"] = int(values["rows"])
            metrics[version][holdout] = values
    return metrics


def log_model_artifact(
    model: Pipeline, sample: pd.DataFrame, settings: RetrainSettings
) -> None:
    """Save ``model`` with signature and input example at the run's ``model`` path.

    MLflow 3's ``log_model(name=...)`` stores the files under a logged-model
    entity, not under the run's artifacts, so the model is saved to a temporary
    folder and uploaded as run artifacts. ``runs:/<run_id>/model`` then contains
    the MLmodel file, which registration and ``mlflow models serve`` need.
    """
    import mlflow
    from mlflow.models import infer_signature

    example = model_input(sample.head(INPUT_EXAMPLE_ROWS), settings.include_duration)
    signature = infer_signature(example, model.predict(example))
    with tempfile.TemporaryDirectory(prefix="retrain-model-") as folder:
        target = Path(folder) / MODEL_ARTIFACT_PATH
        mlflow.sklearn.save_model(
            model,
            str(target),
            signature=signature,
            input_example=example,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
        mlflow.log_artifacts(str(target), artifact_path=MODEL_ARTIFACT_PATH)


def search_run(tracking: Tracking, tags: dict[str, str]) -> Any:
    """Return the newest finished run of the experiment with all ``tags``, or None."""
    from mlflow.tracking import MlflowClient

    conditions = [f"tags.{name} = '{value}'" for name, value in tags.items()]
    conditions.append("attributes.status = 'FINISHED'")
    client = MlflowClient(tracking_uri=tracking.uri)
    runs = client.search_runs(
        [tracking.experiment_id],
        filter_string=" and ".join(conditions),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def baseline_tags(train_file: InputFile, settings: RetrainSettings) -> dict[str, str]:
    return {
        "role": "baseline",
        "train_data_sha256": train_file.sha256,
        **settings.split_tags(),
    }


def get_baseline(
    tracking: Tracking, train_file: InputFile, split: Split, settings: RetrainSettings
) -> tuple[str, Pipeline]:
    """Return (run id, model) of the v1 baseline, training and logging it once.

    The baseline is found by its tags (training file hash and split settings);
    when none matches, it is trained on the non-held-out old rows and logged.
    """
    import mlflow

    tags = baseline_tags(train_file, settings)
    with mlflow_errors(tracking.uri, "search for the v1 baseline run"):
        run = search_run(tracking, tags)
    if run is not None:
        model_uri = f"runs:/{run.info.run_id}/{MODEL_ARTIFACT_PATH}"
        log.info("reusing v1 baseline run %s (%s)", run.info.run_id, model_uri)
        with mlflow_errors(tracking.uri, f"load the v1 baseline model {model_uri}"):
            return run.info.run_id, mlflow.sklearn.load_model(model_uri)

    log.info("training the v1 baseline on %d old rows", len(split.old_train))
    model = fit_model(split.old_train, settings)
    old_scores = score(model, split.old_holdout, settings.include_duration)
    with mlflow_errors(tracking.uri, "log the v1 baseline run"):
        with mlflow.start_run(
            experiment_id=tracking.experiment_id, run_name=BASELINE_RUN_NAME, tags=tags
        ) as active:
            mlflow.log_params(training_params(split, settings, baseline=True))
            mlflow.log_dict([train_file.describe()], "training_inputs.json")
            mlflow.log_metrics(flatten_metrics({"v1": {"old_holdout": old_scores}}))
            log_model_artifact(model, split.old_train, settings)
            run_id = active.info.run_id
    log.info("logged v1 baseline run %s", run_id)
    return run_id, model


def training_params(
    split: Split, settings: RetrainSettings, baseline: bool = False
) -> dict[str, Any]:
    params = {
        "classifier": "HistGradientBoostingClassifier(class_weight=balanced)",
        "model_spec": MODEL_SPEC,
        "include_duration": settings.include_duration,
        "old_holdout_fraction": settings.old_holdout_fraction,
        "split_seed": settings.seed,
        "feature_columns": ",".join(model_feature_columns(settings.include_duration)),
        "old_train_rows": len(split.old_train),
    }
    if not baseline:
        params["new_holdout_fraction"] = settings.new_holdout_fraction
        params["new_train_rows"] = len(split.new_train)
        params["training_rows"] = len(split.old_train) + len(split.new_train)
    return params


def log_drift_artifacts(workspace: Workspace) -> None:
    import mlflow

    for path in (workspace.drift_report, workspace.drift_status):
        if path.is_file():
            mlflow.log_artifact(str(path), artifact_path="drift")
        else:
            log.info("no %s to attach to the run", path)


def retrain_tags(inputs: list[InputFile], settings: RetrainSettings) -> dict[str, str]:
    return {
        "role": "retrain",
        "training_inputs_sha256": inputs_sha256(inputs),
        **settings.retrain_tags(),
    }


def log_retrain_run(
    workspace: Workspace,
    tracking: Tracking,
    inputs: list[InputFile],
    split: Split,
    settings: RetrainSettings,
    model: Pipeline,
    metrics: dict,
    baseline_run_id: str,
) -> str:
    """Log the v2 run with params, metrics, inputs and the model; return its id."""
    import mlflow

    tags = {**retrain_tags(inputs, settings), "baseline_run_id": baseline_run_id}
    if split.new_holdout_note:
        tags["new_holdout_note"] = split.new_holdout_note
    with mlflow_errors(tracking.uri, "log the v2 retrain run"):
        with mlflow.start_run(
            experiment_id=tracking.experiment_id, run_name=RETRAIN_RUN_NAME, tags=tags
        ) as active:
            mlflow.log_params(training_params(split, settings))
            mlflow.log_dict(
                [item.describe() for item in inputs], "training_inputs.json"
            )
            mlflow.log_metrics(flatten_metrics(metrics))
            log_drift_artifacts(workspace)
            training_frame = pd.concat([split.old_train, split.new_train])
            log_model_artifact(model, training_frame, settings)
            return active.info.run_id


def build_run_info(
    tracking: Tracking,
    run_id: str,
    baseline_run_id: str,
    inputs: list[InputFile],
    metrics: dict,
    settings: RetrainSettings,
) -> dict[str, Any]:
    """Return the content of ``outputs/retrain_run_info.json``."""
    batches = inputs[1:]
    return {
        "run_id": run_id,
        "experiment_id": tracking.experiment_id,
        "experiment_name": tracking.experiment_name,
        "tracking_uri": tracking.display_uri,
        "model_artifact_path": MODEL_ARTIFACT_PATH,
        "model_uri": f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}",
        "model_name": MODEL_NAME,
        "baseline_run_id": baseline_run_id,
        "include_duration": settings.include_duration,
        "training_files": [item.describe() for item in inputs],
        "training_inputs_sha256": inputs_sha256(inputs),
        "newest_batch": batches[-1].path if batches else None,
        "metrics": metrics,
        "created_at": utc_timestamp(),
    }


def previous_run_info(workspace: Workspace) -> dict[str, Any] | None:
    """Return the current ``retrain_run_info.json``, or None if missing or corrupt."""
    try:
        return read_state_json(
            workspace.retrain_run_info,
            "module3/3_retrain_model.py",
            ("run_id", "training_inputs_sha256"),
        )
    except InvalidInputError as error:
        if workspace.retrain_run_info.exists():
            log.warning("ignoring the previous run info: %s", error)
        return None


def already_trained(
    workspace: Workspace, inputs: list[InputFile], settings: RetrainSettings
) -> bool:
    """Return True when the run info names a run on the same inputs and settings."""
    previous = previous_run_info(workspace)
    if previous is None:
        return False
    same_inputs = previous.get("training_inputs_sha256") == inputs_sha256(inputs)
    same_duration = previous.get("include_duration") == settings.include_duration
    return same_inputs and same_duration


def retrain(
    workspace: Workspace,
    tracking: Tracking,
    settings: RetrainSettings,
    inputs: list[InputFile],
) -> RetrainResult:
    """Train and log v2 (and v1 once) on ``inputs``, write the run info, return it.

    A finished run with the same inputs and settings is reused, and only the
    run info is written again, unless ``settings.force``.
    """
    split = split_inputs(inputs, settings)
    rows = {
        "old_train": len(split.old_train),
        "old_holdout": len(split.old_holdout),
        "new_train": len(split.new_train),
        "new_holdout": 0 if split.new_holdout is None else len(split.new_holdout),
    }
    log.info("rows per part: %s", rows)
    if split.new_holdout_note:
        log.info("no new holdout: %s", split.new_holdout_note)

    if not settings.force:
        with mlflow_errors(tracking.uri, "search for a retrain run on the same inputs"):
            existing = search_run(tracking, retrain_tags(inputs, settings))
        if existing is not None:
            log.info(
                "run %s was trained on the same inputs and settings; reusing it "
                "(pass --force to train again)",
                existing.info.run_id,
            )
            info = build_run_info(
                tracking,
                existing.info.run_id,
                existing.data.tags.get("baseline_run_id", ""),
                inputs,
                unflatten_metrics(existing.data.metrics),
                settings,
            )
            write_state_with_history(
                workspace.retrain_run_info, workspace.history_dir, info
            )
            return RetrainResult(info, reused_run=True, training_rows=rows)

    baseline_run_id, baseline = get_baseline(tracking, inputs[0], split, settings)
    training_frame = pd.concat([split.old_train, split.new_train], ignore_index=True)
    log.info("training v2 on %d rows", len(training_frame))
    model = fit_model(training_frame, settings)
    metrics = {
        "v1": score_all(baseline, split, settings),
        "v2": score_all(model, split, settings),
    }
    run_id = log_retrain_run(
        workspace, tracking, inputs, split, settings, model, metrics, baseline_run_id
    )
    log.info("logged v2 retrain run %s", run_id)
    info = build_run_info(tracking, run_id, baseline_run_id, inputs, metrics, settings)
    write_state_with_history(workspace.retrain_run_info, workspace.history_dir, info)
    return RetrainResult(info, reused_run=False, training_rows=rows)


def format_scores(scores: dict | None) -> str:
    if scores is None:
        return "n/a"
    roc_auc = "n/a" if scores["roc_auc"] is None else f"{scores['roc_auc']:.3f}"
    return f"F1(yes) {scores['f1_yes']:.3f}, ROC AUC {roc_auc}, {scores['rows']} rows"


def summary_lines(result: RetrainResult) -> list[str]:
    """Return the lines job 3 prints at the end of a run."""
    info = result.run_info
    rows = result.training_rows
    action = "reused run" if result.reused_run else "logged run"
    lines = [
        f"{action} {info['run_id']} (baseline v1 run {info['baseline_run_id']})",
        f"training rows: {rows['old_train']} old + {rows['new_train']} newly labeled "
        f"(duration {'included' if info['include_duration'] else 'left out'})",
    ]
    for holdout in HOLDOUTS:
        v1 = info["metrics"]["v1"][holdout]
        v2 = info["metrics"]["v2"][holdout]
        if v1 is None and v2 is None:
            lines.append(f"{holdout}: none (no labeled batch with rows to hold out)")
            continue
        lines.append(f"{holdout}: v1 {format_scores(v1)} | v2 {format_scores(v2)}")
    lines.append(f"model: {info['model_uri']}")
    return lines
