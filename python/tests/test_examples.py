"""The Flask and FastAPI examples serve predictions and deliver their windows (each in
its own interpreter, since they configure the agent at import or startup)."""

import subprocess
import sys

import pytest

import modelwatch
from conftest import REPO

EXAMPLES = REPO / "python" / "examples"

FLASK = """
import sys
sys.path.insert(0, sys.argv[1])
import flask_app
client = flask_app.app.test_client()
rows = flask_app.data.data.iloc[:40].to_dict("records")
r = client.post("/predict", json=rows)
assert r.status_code == 200 and len(r.get_json()) == 40, r.data
"""

FASTAPI = """
import sys
sys.path.insert(0, sys.argv[1])
from fastapi.testclient import TestClient
import fastapi_app
with TestClient(fastapi_app.app) as client:
    rows = fastapi_app.data.data.iloc[:20].to_dict("records")
    tokens = []
    for row in rows:
        r = client.post("/predict", json={"features": row})
        assert r.status_code == 200, r.text
        tokens.append(r.json()["token"])
    for t in tokens:
        assert client.post("/feedback", json={"token": t, "malignant": True}).status_code == 200
    r = client.post("/predict_batch", json=[{"features": row} for row in rows])
    assert r.status_code == 200 and len(r.json()) == 20
"""


@pytest.mark.parametrize("name, code, needs", [("flask", FLASK, "flask"), ("fastapi", FASTAPI, "fastapi")])
def test_example_serves_and_delivers(tmp_path, name, code, needs):
    pytest.importorskip(needs)
    if needs == "fastapi":
        pytest.importorskip("httpx")  # fastapi.testclient's transport
    proc = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    summaries = modelwatch.read_summaries(tmp_path / "modelwatch-data")
    s = [x for x in summaries if x["deployment"] == "breast_cancer_prod"]
    assert sum(x["predictions"] for x in s) == 40  # flask: one batch of 40; fastapi: 20 one by one + a batch of 20
    assert s[0]["metadata"] == {"model_version": "1.0"}
    assert sum(x["latency_seconds"]["count"] for x in s if x["latency_seconds"]) >= 1
    if name == "fastapi":
        assert sum(x["feedback"]["token_matched"] for x in s) == 20
