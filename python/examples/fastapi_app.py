"""A FastAPI model server monitored by modelwatch: the Flask example's FastAPI twin, with
feedback tokens for labels that arrive later from the client.

    pip install ./python fastapi uvicorn scikit-learn
    uvicorn fastapi_app:app --app-dir python/examples --port 8000

Logging is synchronous and takes microseconds (no I/O, no lock held on the network), so it
is called from async endpoints directly; flush and shutdown wait on I/O and are left to the
agent's own exit handling (or run in a thread, as in `shutdown` below).
"""

from contextlib import asynccontextmanager
from typing import Dict, List

import anyio
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelwatch

data = load_breast_cancer(as_frame=True)
model = make_pipeline(StandardScaler(), LogisticRegression()).fit(data.data, data.target)


@asynccontextmanager
async def lifespan(app: FastAPI):
    modelwatch.configure(api_key="my_api_key", data_dir="./modelwatch-data", window_seconds=60)
    modelwatch.session("breast_cancer_prod").log_metadata("model_version", "1.0")
    yield
    # Deliver the last window before the server process ends (atexit would do it too).
    await anyio.to_thread.run_sync(modelwatch.shutdown)


app = FastAPI(lifespan=lifespan)
sess = modelwatch.session(deployment_name="breast_cancer_prod")


class Case(BaseModel):
    features: Dict[str, float]


class Feedback(BaseModel):
    token: str
    malignant: bool


@app.post("/predict")
async def predict(case: Case) -> Dict[str, object]:
    x = pd.DataFrame([case.features], columns=data.feature_names)
    with sess.time_inference():
        p = float(model.predict_proba(x)[0, 1])
    # The token carries what was predicted; the label comes back with it later, to any
    # replica sharing the hash key.
    token = sess.log_prediction_with_token(features=case.features, prediction=p >= 0.5, segments=["api"])
    return {"probability": p, "token": token}


@app.post("/feedback")
async def feedback(f: Feedback) -> Dict[str, str]:
    sess.log_token_feedback(f.token, f.malignant)
    return {"status": "ok"}


@app.post("/predict_batch")
async def predict_batch(cases: List[Case]) -> List[float]:
    x = pd.DataFrame([c.features for c in cases], columns=data.feature_names)
    proba = model.predict_proba(x)
    # Folded with the GIL released; for very large batches, run it in a thread.
    sess.log_prediction_batch(features=x, predictions=proba)
    return proba[:, 1].tolist()
