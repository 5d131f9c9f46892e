"""Batches as the native module takes them: numeric numpy/pandas columns as arrays (read
in place), anything else as lists of Python values or rows. numpy and pandas are never
imported here: objects are recognised by their attributes and module."""

from __future__ import annotations

import sys

from typing import Any, Dict, Mapping, Optional, Sequence

# numpy dtype kinds read in place: float, signed and unsigned int, bool.
_NUMERIC = "fiub"


def _is_pandas(x: Any, attr: str) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, attr)


def _is_frame(x: Any) -> bool:
    return _is_pandas(x, "columns") and hasattr(x, "iloc")


def _is_series(x: Any) -> bool:
    return _is_pandas(x, "to_numpy") and not hasattr(x, "columns")


def _is_ndarray(x: Any) -> bool:
    np = sys.modules.get("numpy")  # an ndarray cannot exist before numpy is imported
    return np is not None and isinstance(x, np.ndarray)


def _array_column(a: Any) -> Any:
    """A 1-D numpy array: itself when numeric (read in place), else its values."""
    if a.dtype.kind in "mM":
        raise TypeError(
            f"modelwatch cannot log {a.dtype} values: convert them to numbers (e.g. seconds)"
        )
    if a.dtype.kind in _NUMERIC and a.dtype.byteorder in "=|<":
        return a
    return a.tolist()


def _series_column(s: Any) -> Any:
    """A pandas column: its numpy array when of a plain numeric dtype (a view, no copy);
    else (strings, categories, nullable Int64/Float64/boolean) its values, missing as None."""
    dt = s.dtype
    if type(dt).__module__.startswith("numpy") and dt.kind in _NUMERIC:
        return s.to_numpy()
    return s.to_numpy(dtype=object, na_value=None).tolist()


def _frame_columns(df: Any) -> Dict[str, Any]:
    names = [str(c) for c in df.columns]
    columns = [_series_column(df.iloc[:, j]) for j in range(len(names))]
    return {"names": names, "columns": columns}


def _matrix_columns(a: Any, names: Optional[Sequence[str]]) -> Dict[str, Any]:
    if a.ndim != 2:
        raise ValueError(f"a batch array must be 2-D (rows x columns), got shape {a.shape}")
    k = a.shape[1]
    names = [str(j) for j in range(k)] if names is None else [str(n) for n in names]
    if len(names) != k:
        raise ValueError(f"{len(names)} names for {k} columns")
    return {"names": names, "columns": [_array_column(a[:, j]) for j in range(k)]}


def features(features: Any, feature_names: Optional[Sequence[str]]) -> Dict[str, Any]:
    """Keyword arguments of ``_log_batch`` for the features."""
    if _is_frame(features):
        c = _frame_columns(features)
        return {"feature_names": c["names"], "feature_columns": c["columns"]}
    if _is_ndarray(features) and features.ndim == 2:
        c = _matrix_columns(features, feature_names)
        return {"feature_names": c["names"], "feature_columns": c["columns"]}
    if _is_ndarray(features):
        if features.ndim != 1 or features.dtype.kind != "O":
            raise ValueError(
                f"a batch array must be 2-D (rows x columns), got shape {features.shape}"
            )
        features = features.tolist()  # a 1-D object array of dicts
    rows = features if isinstance(features, (list, tuple)) else list(features)
    if rows and not isinstance(rows[0], Mapping):
        names = feature_names
        if names is None:
            names = [str(j) for j in range(len(rows[0]))]
        return {"feature_names": [str(n) for n in names], "feature_rows": rows}
    return {"feature_rows": rows}


def predictions(predictions: Any) -> Dict[str, Any]:
    """Keyword arguments of ``_log_batch`` for the predictions."""
    if predictions is None:
        return {}
    if _is_frame(predictions):
        c = _frame_columns(predictions)
        return {"prediction_names": c["names"], "prediction_columns": c["columns"]}
    if _is_series(predictions):
        return {"prediction_names": ["prediction"], "prediction_columns": [_series_column(predictions)]}
    if _is_ndarray(predictions):
        if predictions.ndim == 1 and predictions.dtype.kind in _NUMERIC:
            return {
                "prediction_names": ["prediction"],
                "prediction_columns": [_array_column(predictions)],
            }
        if predictions.ndim == 2 and predictions.dtype.kind in _NUMERIC:
            c = _matrix_columns(predictions, None)
            return {"prediction_names": c["names"], "prediction_columns": c["columns"]}
        return {"prediction_rows": predictions.tolist()}
    rows: Sequence[Any] = predictions if isinstance(predictions, (list, tuple)) else list(predictions)
    return {"prediction_rows": rows}
