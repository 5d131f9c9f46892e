"""Type stubs of the native module (python/src/*.rs). Use it through ``modelwatch``."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__version__: str

Scalar = Union[None, bool, int, float, str]
#: A feature value: a scalar (numpy scalars too), or a dict/list/array of them, flattened
#: as ``name.key`` and ``name.0``.
FeatureValue = Any
#: A prediction: a scalar, a sequence of class probabilities, or a dict of named outputs.
PredictionValue = Union[Scalar, Sequence[float], Mapping[str, Any], Any]

class Error(Exception):
    """An error of the modelwatch agent: configuration, start, or undelivered summaries."""

def configure(
    api_key: str,
    data_dir: Optional[str] = None,
    endpoint: Optional[str] = None,
    window_seconds: float = 60.0,
    debug_mode: bool = False,
    *,
    hash_key: Optional[Union[str, bytes]] = None,
    min_values_per_window: Optional[int] = None,
    shutdown_timeout: Optional[float] = None,
    allow_text: Optional[List[str]] = None,
    max_sessions: Optional[int] = None,
    no_data_dir: bool = False,
    upload_interval: Optional[float] = None,
    request_timeout: Optional[float] = None,
    max_backlog_bytes: Optional[int] = None,
) -> None: ...
def is_configured() -> bool: ...
def flush(timeout: float = 5.0) -> None:
    """Seals every window logged so far and delivers the summaries within ``timeout``
    seconds, with the GIL released. Raises :class:`Error` if some were not delivered."""

def shutdown(timeout: Optional[float] = None) -> bool: ...
def stats() -> Optional[Dict[str, Any]]:
    """The agent's counters (delivered, failed, backlog, ...); ``None`` when not configured."""

def read_summary(data: bytes) -> Dict[str, Any]:
    """One window summary (a ``.msgpack`` file's bytes) as a dict with the fields of
    ``modelwatch inspect --json``. Raises ``ValueError`` for bytes that are not one."""

def _after_fork_child() -> None: ...

class NativeSession:
    def __init__(self, deployment_name: str) -> None: ...
    @property
    def deployment_name(self) -> str: ...
    @property
    def decision_threshold(self) -> float: ...
    def log_prediction(
        self,
        features: Optional[Mapping[str, FeatureValue]] = None,
        prediction: PredictionValue = None,
    ) -> None:
        """Logs one prediction. Raises ``TypeError`` (logging nothing) for a value of an
        unsupported type; NaN, infinities and ``None`` are counted, never refused."""

    def log_ground_truth(
        self,
        label: Scalar,
        prediction: PredictionValue,
        segments: Optional[Union[str, Iterable[str]]] = None,
    ) -> None:
        """Logs a label with what was predicted; ``bool`` gives binary metrics, ``int``
        or ``str`` classes, ``float`` regression, a probability vector its argmax."""

    def log_metadata(self, key: str, value: Any) -> None:
        """Sets a metadata entry (``str(value)``) shipped with every summary."""

    def log_prediction_with_token(
        self,
        features: Optional[Mapping[str, FeatureValue]] = None,
        prediction: PredictionValue = None,
        segments: Optional[Union[str, Iterable[str]]] = None,
    ) -> str:
        """Logs a prediction and returns a feedback token for ``log_token_feedback``."""

    def log_token_feedback(self, token: str, label: Scalar) -> None: ...
    def log_prediction_keyed(
        self,
        key: str,
        features: Optional[Mapping[str, FeatureValue]] = None,
        prediction: PredictionValue = None,
        segments: Optional[Union[str, Iterable[str]]] = None,
    ) -> None: ...
    def log_feedback(
        self, key: str, label: Scalar, segments: Optional[Union[str, Iterable[str]]] = None
    ) -> None: ...
    def count(self, name: str, n: int = 1) -> None: ...
    def record_value(self, name: str, value: float) -> None: ...
    def record_latency(self, seconds: float) -> None: ...
    def set_decision_threshold(self, threshold: float) -> None: ...
    def _log_batch(
        self,
        *,
        feature_names: Optional[List[str]] = None,
        feature_columns: Optional[List[Any]] = None,
        feature_rows: Optional[Any] = None,
        prediction_names: Optional[List[str]] = None,
        prediction_columns: Optional[List[Any]] = None,
        prediction_rows: Optional[Any] = None,
    ) -> int: ...
    def _log_exception(self, message: str, tags: Optional[Mapping[str, Any]] = None) -> None: ...
