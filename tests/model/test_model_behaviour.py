"""Behaviour of the trained pipeline on the real data: invariance and direction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retraining import retrain
from retraining.data import load_table


@pytest.fixture(scope="module")
def training_frame(prepared_data) -> pd.DataFrame:
    return load_table(prepared_data, "training data", require_target=True).frame


@pytest.fixture(scope="module")
def model(training_frame):
    settings = retrain.RetrainSettings()
    return retrain.fit_model(training_frame, settings)


@pytest.fixture(scope="module")
def sample(training_frame) -> pd.DataFrame:
    rows = training_frame.sample(500, random_state=7)
    return retrain.model_input(rows, include_duration=False)


def probability_yes(model, features: pd.DataFrame) -> np.ndarray:
    column = list(model.classes_).index("yes")
    return model.predict_proba(features)[:, column]


def test_predictions_are_labels(model, sample):
    assert set(model.predict(sample)) <= {"yes", "no"}


def test_probabilities_in_unit_interval(model, sample):
    probabilities = probability_yes(model, sample)
    assert probabilities.min() >= 0
    assert probabilities.max() <= 1


def test_unseen_job_category_predicts(model, sample):
    changed = sample.assign(job="astronaut")
    assert len(model.predict(changed)) == len(sample)


def test_missing_values_predict(model, sample):
    changed = sample.copy()
    changed.loc[changed.index[:10], "age"] = np.nan
    changed.loc[changed.index[:10], "education"] = np.nan
    assert len(model.predict(changed)) == len(sample)


def test_extra_duration_column_ignored(model, sample):
    with_duration = sample.assign(duration=999.0)
    same = probability_yes(model, with_duration) == probability_yes(model, sample)
    assert same.all()


def test_previous_success_raises_yes(model, sample):
    # Checked on bank-full.csv: customers whose previous campaign succeeded
    # subscribe far more often (about 65% against 12% overall).
    failure = sample.assign(poutcome="failure", pdays=100.0, previous=1.0)
    success = sample.assign(poutcome="success", pdays=100.0, previous=1.0)
    lift = probability_yes(model, success) - probability_yes(model, failure)
    assert lift.mean() > 0.1


def test_more_contacts_lowers_yes(model, sample):
    # On bank-full.csv the subscription rate falls as "campaign" (contacts in
    # this campaign) grows: about 15% at 1 contact against under 5% above 10.
    few = sample.assign(campaign=1.0)
    many = sample.assign(campaign=20.0)
    assert probability_yes(model, many).mean() < probability_yes(model, few).mean()
