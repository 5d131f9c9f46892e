"""Batches (lists, numpy, pandas) fold exactly like the same rows logged one by one."""

import threading
import time

import numpy as np
import pandas as pd
import pytest

import modelwatch
from conftest import one

# Moments are merged per run of 64 rows in a batch, per value one by one: equal to
# floating point (as tests/statistics.rs checks in Rust); everything else exactly.
INEXACT = {"mean", "variance"}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for k, x in a[name].items():
            y = b[name][k]
            if k in INEXACT and x is not None and y is not None:
                assert y == pytest.approx(x, rel=1e-12, abs=1e-300), (name, k)
            else:
                assert x == y, (name, k, x, y)


def logged(data_dir, deployment):
    s = one(data_dir, deployment)
    return s["predictions"], s["features"], s["outputs"]


def compare(agent, rows, predictions, batch_features, batch_predictions=None, **kw):
    """Logs rows one by one into "rows" and the batch into "batch"; both must agree."""
    single = modelwatch.session("rows")
    for r, p in zip(rows, predictions):
        single.log_prediction(features=r, prediction=p)
    n = modelwatch.session("batch").log_prediction_batch(batch_features, batch_predictions, **kw)
    assert n == len(rows)
    modelwatch.flush()
    a, b = logged(agent, "rows"), logged(agent, "batch")
    assert a[0] == b[0] == len(rows)
    assert_same(a[1], b[1])
    assert_same(a[2], b[2])
    return b


def frame(n=5000, seed=1):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"f{i}": rng.lognormal(0, 1 + i / 5, n) * (-1) ** i for i in range(10)})
    df.loc[::17, "f3"] = np.nan
    df.loc[::101, "f4"] = np.inf
    df["count"] = rng.integers(-50, 50, n)
    df["small"] = rng.integers(0, 200, n).astype(np.uint8)
    df["f32"] = rng.random(n).astype(np.float32)
    df["flag"] = rng.random(n) < 0.3
    df["country"] = rng.choice(["NL", "DE", "FR", None], n)
    df["cat"] = pd.Categorical(rng.choice(["a", "b", "c"], n))
    df["nullable"] = pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64")
    return df


def test_dataframe_equals_rows(agent):
    df = frame()
    preds = np.random.default_rng(2).random(len(df))
    rows = df.to_dict("records")  # numpy scalars, None, pd.NA, NaN: each as logged by hand
    b = compare(agent, rows, preds.tolist(), df, preds)
    f = b[1]
    assert f["nullable"]["missing"] == len(range(0, len(df), 7)) and f["nullable"]["types"]["int"] > 0
    assert f["country"]["distinct"] == 3 and f["cat"]["types"]["string"] == len(df)
    assert f["small"]["types"]["int"] == len(df) and f["flag"]["types"]["bool"] == len(df)
    assert f["f3"]["missing"] == len(range(0, len(df), 17))


def test_float_dataframe_13_columns_equals_rows(agent):
    rng = np.random.default_rng(3)
    data = rng.normal(5, 3, size=(3000, 13))
    df = pd.DataFrame(data, columns=[f"c{i}" for i in range(13)])
    preds = pd.Series(rng.random(3000))
    compare(agent, df.to_dict("records"), preds.tolist(), df, preds)


def test_numpy_layouts_equal_rows(agent):
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, size=(4000, 6))
    names = list("abcdef")
    arrays = [
        base[::2],  # strided rows
        np.asfortranarray(base[:2000]),  # column-major
        base[:2000].astype(np.float32),
        base[:2000].astype(">f8"),  # big-endian: converted, not read in place
        base[::-1][:2000],  # negative strides
        (base[:2000] * 100).astype(np.int32),
    ]
    for k, a in enumerate(arrays):
        modelwatch.shutdown()
        d = agent / f"layout{k}"
        modelwatch.configure(data_dir=d, window_seconds=7 * 86400, min_values_per_window=1)
        rows = [dict(zip(names, r)) for r in a]
        preds = np.arange(len(a)) % 3
        compare(d, rows, preds.tolist(), a, preds, feature_names=names)


def test_lists_of_dicts_and_lists_equal_rows(agent):
    rows = [{"x": i * 0.5, "s": f"v{i % 5}", "maybe": None if i % 3 else i} for i in range(500)]
    preds = [{"score": i / 500, "label": "a" if i % 2 else "b"} for i in range(500)]
    compare(agent, rows, preds, rows, preds)


def test_list_of_lists_with_feature_names(agent):
    names = ["x", "s"]
    rows = [[i * 0.5, f"v{i % 5}"] for i in range(300)]
    preds = [[0.1, 0.9] if i % 2 else [0.7, 0.3] for i in range(300)]  # probabilities
    compare(agent, [dict(zip(names, r)) for r in rows], preds, rows, np.array(preds), feature_names=names)


def test_dataframe_predictions_are_named_outputs(agent):
    df = frame(1000)[["f0", "f1"]]
    out = pd.DataFrame({"score": np.linspace(0, 1, 1000), "label": ["x", "y"] * 500})
    compare(agent, df.to_dict("records"), out.to_dict("records"), df, out)


def test_batch_errors(agent):
    sess = modelwatch.session("m")
    with pytest.raises(ValueError, match="rows of features"):
        sess.log_prediction_batch(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="2 values for 3 feature names"):
        sess.log_prediction_batch([[1, 2]], [1], feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="names for"):
        sess.log_prediction_batch(np.zeros((3, 2)), None, feature_names=["a"])
    with pytest.raises(TypeError):
        sess.log_prediction_batch(pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3)}), [1, 2, 3])
    with pytest.raises(TypeError, match="datetime64"):
        sess.log_prediction_batch(np.zeros((2, 2), dtype="datetime64[ns]"), [1, 2])
    with pytest.raises(ValueError):
        sess.log_prediction_batch(np.zeros((2, 2, 2)), [1, 2])
    assert sess.log_prediction_batch([], []) == 0
    assert sess.log_prediction_batch(np.zeros((5, 2)), None) == 5  # missing predictions, counted
    modelwatch.flush()
    s = one(agent, "m")
    assert s["predictions"] == 5 and s["outputs"]["prediction"]["missing"] == 5


def test_the_gil_is_released_while_folding(agent):
    """With a switch interval longer than the fold, another thread runs during the call
    only if the call releases the GIL."""
    import sys

    sess = modelwatch.session("m")
    data = np.random.default_rng(5).random((300_000, 13))
    preds = np.zeros(len(data))
    progress = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            progress[0] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    t = threading.Thread(target=spin)
    try:
        t.start()
        time.sleep(0.05)  # the spinner holds the GIL until this thread asks for it back
        before = progress[0]
        sess.log_prediction_batch(data, preds)
        during = progress[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        t.join()
    assert during > 0


def test_pandas_missing_values_are_missing(agent):
    sess = modelwatch.session("m")
    for _ in range(3):
        sess.log_prediction(features={"na": pd.NA, "nat": pd.NaT, "nan": np.nan}, prediction=pd.NA)
    modelwatch.flush()
    s = one(agent, "m")
    assert [s["features"][k]["missing"] for k in ("na", "nat", "nan")] == [3, 3, 3]
    assert s["outputs"]["prediction"]["missing"] == 3


class _LyingArray:
    """Claims memory that is not its own; only its values may be used."""

    __array_interface__ = {"version": 3, "typestr": "<f8", "shape": (3,), "data": (8, True), "strides": None}
    dtype = np.dtype("f8")
    ndim = 1

    def tolist(self):
        return [1.0, 2.0, 3.0]


def test_only_numpy_arrays_are_read_in_place(agent):
    sess = modelwatch.session("m")
    sess._log_batch(feature_names=["x"], feature_columns=[_LyingArray()], prediction_rows=[0, 0, 0])
    modelwatch.flush()
    x = one(agent, "m")["features"]["x"]
    assert x["count"] == 3 and x["mean"] == 2.0
