"""The Graphsignal logger's API, checked against what the summaries say."""

import datetime
import json
import math
import os
import shutil
import subprocess
import warnings

import pytest

import modelwatch
from conftest import REPO, WEEK, by_deployment, one


def test_log_prediction_counts_types_missing_and_quantiles(agent):
    sess = modelwatch.session(deployment_name="m")
    assert modelwatch.session("m") is sess
    for i in range(1, 101):
        sess.log_prediction(
            features={"x": float(i), "n": i, "s": "abc"[i % 3], "b": i % 2 == 0, "none": None, "nan": math.nan},
            prediction=i % 4 == 0,
        )
    modelwatch.flush()
    s = one(agent, "m")
    assert s["predictions"] == 100
    f = s["features"]
    assert f["x"]["count"] == 100 and f["x"]["types"]["float"] == 100
    assert f["n"]["types"]["int"] == 100
    assert f["s"]["types"]["string"] == 100 and f["s"]["distinct"] == 3
    assert f["b"]["types"]["bool"] == 100 and f["b"]["trues"] == 50
    assert f["none"]["missing"] == 100 and f["nan"]["missing"] == 100
    assert f["x"]["mean"] == pytest.approx(50.5, rel=1e-12)
    assert f["x"]["p50"] == pytest.approx(50.5, rel=0.011)  # within one bucket of 0.55 %
    assert f["x"]["min"] == pytest.approx(1, rel=0.0055) and f["x"]["max"] == pytest.approx(100, rel=0.0055)
    out = s["outputs"]["prediction"]
    assert out["types"]["bool"] == 100 and out["trues"] == 25


def test_numpy_scalars_nested_values_and_infinities(agent):
    np = pytest.importorskip("numpy")
    sess = modelwatch.session("m")
    for i in range(10):
        sess.log_prediction(
            features={
                "f32": np.float32(1.5),
                "i64": np.int64(-3),
                "u8": np.uint8(7),
                "flag": np.bool_(True),
                "inf": math.inf if i % 2 else -math.inf,
                "nested": {"a": 1.0, "b": {"c": "x"}},
                "vec": [0.5, 1.5],
                "arr": np.array([1, 2, 3]),
                "big": 2**70,
            },
            prediction=[0.2, 0.8],
        )
    modelwatch.flush()
    f = one(agent, "m")["features"]
    assert f["f32"]["types"]["float"] == 10 and f["f32"]["mean"] == 1.5
    assert f["i64"]["types"]["int"] == 10 and f["i64"]["negatives"] == 10
    assert f["u8"]["types"]["int"] == 10
    assert f["flag"]["types"]["bool"] == 10 and f["flag"]["trues"] == 10
    assert (f["inf"]["positive_infinities"], f["inf"]["negative_infinities"]) == (5, 5)
    # Containers flatten as modelwatch::Record flattens structs; numbers in a list or an
    # array are one vector feature (its numbers are the vectors' L2 norms).
    assert {"nested.a", "nested.b.c", "vec", "arr"} <= set(f)
    assert not {"vec.0", "arr.0"} & set(f)
    assert f["vec"]["types"]["vector"] == 10 and f["vec"]["vector_dimensions"] == [2, 2]
    assert f["arr"]["mean"] == pytest.approx(14**0.5)
    assert f["vec"]["vector_mean"] == [0.5, 1.5]
    assert f["big"]["types"]["float"] == 10
    outputs = one(agent, "m")["outputs"]
    assert set(outputs) == {"0", "1"} and outputs["1"]["mean"] == pytest.approx(0.8)


def test_unsupported_values_raise_and_log_nothing(agent):
    sess = modelwatch.session("m")
    with pytest.raises(TypeError, match="datetime"):
        sess.log_prediction(features={"ok": 1.0, "when": datetime.datetime.now()}, prediction=1)
    with pytest.raises(TypeError):
        sess.log_prediction(features={"x": object()}, prediction=1)
    with pytest.raises(TypeError):
        sess.log_prediction(features=[1, 2, 3], prediction=1)
    with pytest.raises(TypeError):
        sess.log_ground_truth(label=[1, 2], prediction=1)
    with pytest.raises(TypeError):
        sess.log_ground_truth(label=1, prediction=1, segments=[1, 2])
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested"):
        sess.log_prediction(features={"loop": loop}, prediction=1)
    with pytest.raises(ValueError):
        sess.record_latency(-1.0)
    with pytest.raises(ValueError):
        sess.set_decision_threshold(1.5)
    with pytest.raises(OverflowError):
        sess.count("c", -1)
    sess.log_prediction(features={"ok": 2.0}, prediction=1)
    modelwatch.flush()
    s = one(agent, "m")
    assert s["predictions"] == 1 and s["features"]["ok"]["count"] == 1


def test_huge_strings_and_names_are_counted_not_crashing(agent):
    sess = modelwatch.session("m")
    sess.log_prediction(features={"surrogate": "a\udc80b", "\ud800": 1.0}, prediction="\udfff")
    huge = "x" * 2_000_000
    for _ in range(3):
        sess.log_prediction(features={"text": huge, "y" * 100_000: 1.0}, prediction=huge)
    sess.log_metadata("k", huge)
    sess.log_exception(message=huge, extra_info={"t": huge})
    modelwatch.flush()
    s = one(agent, "m")
    assert s["predictions"] == 4
    assert s["features"]["surrogate"]["types"]["string"] == 1
    assert s["features"]["text"]["truncated_strings"] == 3
    assert len(s["metadata"]["k"]) < 10_000
    assert len(s["exceptions"][0]["message"]) < 10_000


def test_metadata_exceptions_and_exc_info(agent):
    sess = modelwatch.session("m")
    sess.log_metadata("model_version", "1.0")
    sess.log_metadata("threshold", 0.5)  # str(value), as the Graphsignal logger did
    sess.log_exception(message="wrong format", extra_info={"feature": "F1"})
    try:
        1 / 0
    except ZeroDivisionError:
        sess.log_exception(exc_info=True)
    with pytest.raises(ValueError):
        sess.log_exception()
    modelwatch.flush()
    s = one(agent, "m")
    assert s["metadata"] == {"model_version": "1.0", "threshold": "0.5"}
    ex = {e["message"]: e for e in s["exceptions"]}
    assert ex["wrong format"]["count"] == 1 and dict(ex["wrong format"]["tags"]) == {"feature": "F1"}
    z = ex["ZeroDivisionError: division by zero"]
    tags = dict(z["tags"])  # pairs, as inspect --json shows them
    assert tags["exception_type"] == "ZeroDivisionError"
    assert tags["location"].startswith("test_api.py:")


def test_ground_truth_segments_and_threshold(agent):
    sess = modelwatch.session("m")
    for label, pred in [(True, True)] * 6 + [(True, False)] * 2 + [(False, False)] * 2:
        sess.log_ground_truth(label=label, prediction=pred, segments=["web", "eu"])
    sess.set_decision_threshold(0.2)
    assert sess.decision_threshold == 0.2
    for _ in range(10):
        sess.log_ground_truth(label=True, prediction=0.3, segments="proba")
    modelwatch.flush()
    s = one(agent, "m")
    assert s["ground_truth"]["web"]["count"] == 10
    assert s["ground_truth"]["web"]["accuracy"] == pytest.approx(0.8)
    assert s["ground_truth"]["eu"]["accuracy"] == pytest.approx(0.8)
    assert s["ground_truth"]["proba"]["accuracy"] == 1.0  # 0.3 >= 0.2
    assert s["ground_truth_overall"]["count"] == 20


def test_feedback_tokens_and_keys(agent):
    sess = modelwatch.session("m")
    tokens = [sess.log_prediction_with_token(features={"x": 1.0}, prediction=True, segments=["web"]) for _ in range(10)]
    assert all(isinstance(t, str) and t for t in tokens)
    for t in tokens:
        sess.log_token_feedback(t, True)
    sess.log_token_feedback("forged-token", True)
    for i in range(10):
        sess.log_prediction_keyed(f"k{i}", features={"x": 2.0}, prediction="cat")
    for i in range(10):
        sess.log_feedback(f"k{i}", "cat" if i < 7 else "dog", segments=["keyed"])
    sess.log_feedback("unknown", "cat")
    modelwatch.flush()
    s = one(agent, "m")
    assert s["predictions"] == 20
    assert s["ground_truth"]["web"]["count"] == 10 and s["ground_truth"]["web"]["accuracy"] == 1.0
    assert s["ground_truth"]["keyed"]["accuracy"] == pytest.approx(0.7)
    fb = s["feedback"]
    assert (fb["token_matched"], fb["token_forged"]) == (10, 1)
    assert (fb["matched"], fb["unknown_key"]) == (10, 1)


def test_counters_values_and_timers(agent):
    sess = modelwatch.session("m")
    sess.count("cache_hits")
    sess.count("cache_hits", 4)
    for i in range(10):
        sess.record_value("queue_length", float(i))
        sess.record_latency(0.001)
        with sess.time("lookup_seconds"):
            pass
        with sess.time_inference():
            pass
    modelwatch.flush()
    s = one(agent, "m")
    assert s["counters"] == {"cache_hits": 5}
    assert s["values"]["queue_length"]["count"] == 10
    assert s["values"]["lookup_seconds"]["count"] == 10
    assert s["latency_seconds"]["count"] == 20
    assert s["latency_seconds"]["max"] < 1.0


def test_configure_flush_shutdown_lifecycle(data_dir):
    assert not modelwatch.is_configured()
    with pytest.raises(modelwatch.Error, match="not configured"):
        modelwatch.flush()
    early = modelwatch.session("early")  # taken before configure, as at import time
    early.log_metadata("model_version", "3.1")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        early.log_prediction(features={"x": 1.0}, prediction=1)
    assert modelwatch.stats() is None
    modelwatch.configure(data_dir=data_dir, window_seconds=WEEK, min_values_per_window=1)
    try:
        assert modelwatch.is_configured()
        with pytest.raises(modelwatch.Error, match="already configured"):
            modelwatch.configure(data_dir=data_dir)
        early.log_prediction(features={"x": 2.0}, prediction=1)
        modelwatch.flush(timeout=5)
        assert modelwatch.stats()["delivered"] == 1
    finally:
        assert modelwatch.shutdown() is True
        modelwatch._sessions.clear()
    assert modelwatch.shutdown() is False
    early.log_prediction(features={"x": 3.0}, prediction=1)  # inert again
    s = one(data_dir, "early")
    assert s["predictions"] == 1 and s["features"]["x"]["mean"] == 2.0
    assert s["metadata"] == {"model_version": "3.1"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_seconds": 0.5},
        {"window_seconds": math.nan},
        {"window_seconds": -1},
        {"endpoint": "ftp://x"},
        {"hash_key": "nothex"},
        {"shutdown_timeout": -2},
    ],
)
def test_bad_configuration_raises(data_dir, kwargs):
    with pytest.raises((modelwatch.Error, ValueError)):
        modelwatch.configure(data_dir=data_dir, **kwargs)
    assert not modelwatch.is_configured()


def test_endpoint_needs_a_hash_key_and_takes_one(data_dir, monkeypatch):
    monkeypatch.delenv("MODELWATCH_HASH_KEY", raising=False)
    with pytest.raises(modelwatch.Error, match="API key"):
        modelwatch.configure(api_key="", endpoint="http://127.0.0.1:9", no_data_dir=True)
    with pytest.raises(modelwatch.Error, match="(?i)hash"):
        modelwatch.configure(api_key="k", endpoint="http://127.0.0.1:9", no_data_dir=True)
    modelwatch.configure(api_key="k", endpoint="http://127.0.0.1:9", no_data_dir=True, hash_key=bytes(range(16)))
    try:
        modelwatch.session("m").log_prediction(features={"x": 1.0}, prediction=1)
    finally:
        with pytest.raises(modelwatch.Error):  # the collector is not there
            modelwatch.shutdown(timeout=1)


def test_read_summary_rejects_garbage():
    with pytest.raises(ValueError, match="not a modelwatch summary"):
        modelwatch.read_summary(b"not msgpack")
    with pytest.raises(TypeError):
        modelwatch.read_summary("a str")


def test_summary_fields_match_inspect_json(agent):
    sess = modelwatch.session("m")
    for i in range(20):
        sess.log_prediction(features={"x": float(i)}, prediction=0.5)
    modelwatch.flush()
    s = one(agent, "m")
    for key in [
        "deployment", "instance", "sequence", "window_start", "window_start_utc", "window_length_ms",
        "partial", "key_fingerprint", "merged_windows", "predictions", "metadata", "features",
        "outputs", "ground_truth", "ground_truth_overall", "exceptions", "latency_seconds",
        "counters", "values", "dropped", "feedback", "privacy",
    ]:
        assert key in s, key
    assert s["partial"] is True and s["window_length_ms"] == WEEK * 1000


def _cli():
    """The `modelwatch` command, if built (scripts/test builds it before the Python tests)."""
    for path in (os.environ.get("MODELWATCH_CLI"), REPO / "target" / "release" / "modelwatch",
                 REPO / "target" / "debug" / "modelwatch", shutil.which("modelwatch")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return str(path)
    return None


def test_read_summary_equals_the_command_s_inspect_json(agent):
    cli = _cli()
    if cli is None:
        pytest.skip("the modelwatch command is not built (cargo build --release -p modelwatch-cli)")
    sess = modelwatch.session("m")
    for i in range(50):
        sess.log_prediction(features={"x": i * 0.37, "s": f"v{i % 4}", "e": "a\u202eb"}, prediction=[0.3, 0.7])
        sess.log_ground_truth(label=i % 2, prediction=i % 3 % 2, segments=["web"])
    sess.log_exception(message="bad", extra_info={"k": "v"})
    sess.count("n", 3)
    modelwatch.flush()
    (path,) = [p for p in agent.iterdir() if p.suffix == ".msgpack"]
    out = subprocess.run([cli, "inspect", "--json", str(path)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [modelwatch.read_summary(path.read_bytes())]
