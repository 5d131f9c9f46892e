"""The breast-cancer fixture through the Python API: metrics equal to scikit-learn's."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

import modelwatch
from conftest import FIXTURES, one


@pytest.fixture(scope="module")
def cancer():
    df = pd.read_csv(FIXTURES / "breast_cancer_lr.csv")
    oracle = json.loads((FIXTURES / "breast_cancer_lr.metrics.json").read_text())
    return df, oracle


def sklearn_metrics(df):
    y, p = df["label"].to_numpy(), df["prediction"].to_numpy()
    return {
        "count": len(df),
        "accuracy": accuracy_score(y, p),
        "precision": precision_score(y, p, pos_label=1),
        "recall": recall_score(y, p, pos_label=1),
        "f1": f1_score(y, p, pos_label=1),
    }


def check(gt, expected):
    assert gt["count"] == expected["count"]
    assert abs(gt["accuracy"] - expected["accuracy"]) <= 1e-9
    c = gt["classes"]["1"]
    for k in ("precision", "recall", "f1"):
        assert abs(c[k] - expected[k]) <= 1e-9, k


def test_breast_cancer_metrics_equal_scikit_learn(agent, cancer):
    df, oracle = cancer
    features = df.drop(columns=["segment", "proba", "prediction", "label"])
    sess = modelwatch.session("breast_cancer")
    sess.log_prediction_batch(features, df["prediction"])
    for label, pred, seg in zip(df["label"], df["prediction"], df["segment"]):
        sess.log_ground_truth(label=int(label), prediction=int(pred), segments=[seg])
    # Probabilities: the argmax of [1 - p, p] is the predicted class, with the same metrics.
    for label, p in zip(df["label"], df["proba"]):
        sess.log_ground_truth(label=int(label), prediction=[1 - p, p], segments=["vector"])
    modelwatch.flush()
    s = one(agent, "breast_cancer")
    assert s["predictions"] == len(df) == 569

    overall = sklearn_metrics(df)
    # scikit-learn agrees with the fixture's recorded oracle...
    for k in ("accuracy", "precision", "recall", "f1"):
        assert abs(overall[k] - oracle["all"][k]) <= 1e-12
    # ...and modelwatch with both, overall and per segment.
    check(s["ground_truth"]["vector"], overall)
    for seg in ("large", "small"):
        expected = sklearn_metrics(df[df["segment"] == seg])
        check(s["ground_truth"][seg], expected)
        assert expected["count"] == oracle["segments"][seg]["count"]
    # The overall pairs hold every logged pair: the segment ones and the vector ones.
    assert s["ground_truth_overall"]["count"] == 2 * 569

    # Feature quantiles within the histogram's relative error (0.55 %) of the fixture's.
    for name, qs in oracle["feature_quantiles"].items():
        for q, want in qs.items():
            got = s["features"][name][{"0.5": "p50", "0.9": "p90", "0.99": "p99"}[q]]
            assert abs(got - want) <= 0.0055 * abs(want) + 1e-12, (name, q, got, want)
    np.testing.assert_allclose(
        [s["features"][c]["mean"] for c in features.columns], features.mean().to_numpy(), rtol=1e-12
    )
