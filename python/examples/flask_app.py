"""A Flask model server monitored by modelwatch: the Graphsignal logger README's Flask +
Keras example, ported by changing the import (a scikit-learn model stands in for Keras, so
that the example runs with what the tests install).

    pip install ./python flask scikit-learn
    python python/examples/flask_app.py            # serves on :8000
    curl -X POST localhost:8000/predict -H 'content-type: application/json' \
         -d '[{"mean radius": 17.9, "mean texture": 10.4, ...}]'
    python python/examples/flask_app.py ground-truth labels.csv   # the later job

Run several workers with gunicorn (`gunicorn -w 4 flask_app:app`): each forked worker gets
its own agent, and each delivers its last window when it exits.
"""

import sys

import pandas as pd
from flask import Flask, jsonify, request
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelwatch  # was: import graphsignal

modelwatch.configure(api_key="my_api_key", data_dir="./modelwatch-data", window_seconds=60)
sess = modelwatch.session(deployment_name="breast_cancer_prod")

data = load_breast_cancer(as_frame=True)
model = make_pipeline(StandardScaler(), LogisticRegression()).fit(data.data, data.target)
sess.log_metadata("model_version", "1.0")

app = Flask(__name__)


@app.route("/predict", methods=["POST"])
def predict():
    try:
        features = pd.DataFrame(request.get_json(), columns=data.feature_names)
        with sess.time_inference():
            proba = model.predict_proba(features)
        # Numeric columns are read in place: no Python object per cell.
        sess.log_prediction_batch(features=features, predictions=proba)
        return jsonify(proba[:, 1].tolist())
    except Exception:
        sess.log_exception(message="prediction failed", extra_info={"route": "/predict"}, exc_info=True)
        raise


def ground_truth_job(path):
    """The Graphsignal README's second example: labels known later, logged with what was
    predicted and the segments they belong to."""
    for row in pd.read_csv(path).itertuples():
        sess.log_ground_truth(label=bool(row.label), prediction=bool(row.prediction), segments=[row.segment])


if __name__ == "__main__":
    if sys.argv[1:2] == ["ground-truth"]:
        ground_truth_job(sys.argv[2])  # the last window is delivered at exit
    else:
        app.run(port=8000)
