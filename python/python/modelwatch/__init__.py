"""Monitor an ML model in production from inside the model server.

modelwatch folds every logged prediction into streaming sketches of the current time
window (value histograms, distinct counts, missing and type counts, exceptions, latency,
confusion matrices) and a background thread ships **only the window summaries**: as
MessagePack files in a local folder, or to a collector over HTTP. Raw feature values never
leave the process. The API is the Graphsignal logger's, so existing code ports by changing
the import::

    import modelwatch

    modelwatch.configure(api_key="my-key", data_dir="./modelwatch-data")
    sess = modelwatch.session(deployment_name="fraud_detection_prod")
    sess.log_metadata("model_version", "1.0")
    sess.log_prediction(features={"amount": 12.5, "country": "NL"}, prediction=0.93)
    sess.log_ground_truth(label=True, prediction=True, segments=["web"])

The last window is delivered when the interpreter exits (normally or by an unhandled
exception), on SIGTERM/SIGHUP with ``configure(..., exit_on_signal=True)``, and each worker
forked by a pre-fork server (gunicorn) runs an agent of its own. The statistics are
computed by the Rust core (the ``modelwatch`` crate); see ``docs/`` in the repository.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time as _time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _batch
from ._modelwatch import (
    Error,
    NativeSession,
    __version__,
    flush,
    is_configured,
    read_summary,
    stats,
)
from ._modelwatch import _after_fork_child
from ._modelwatch import configure as _configure
from ._modelwatch import shutdown as _shutdown

__all__ = [
    "Error",
    "Session",
    "configure",
    "flush",
    "is_configured",
    "read_summaries",
    "read_summary",
    "session",
    "shutdown",
    "stats",
    "__version__",
]

_sessions: Dict[str, "Session"] = {}
_signal_handlers: Dict[int, Any] = {}
_EXIT_SIGNALS = ("SIGTERM", "SIGHUP")


def configure(
    api_key: Optional[str] = None,
    data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
    endpoint: Optional[str] = None,
    window_seconds: float = 60,
    debug_mode: bool = False,
    *,
    exit_on_signal: bool = False,
    hash_key: Optional[Union[str, bytes]] = None,
    min_values_per_window: Optional[int] = None,
    shutdown_timeout: Optional[float] = None,
    allow_text: Optional[Iterable[str]] = None,
    max_sessions: Optional[int] = None,
    no_data_dir: bool = False,
    upload_interval: Optional[float] = None,
    request_timeout: Optional[float] = None,
    max_backlog_bytes: Optional[int] = None,
) -> None:
    """Starts the process's agent; call it once, at startup.

    Args:
        api_key: sent to the collector as ``Authorization: Bearer``; default: the
            ``MODELWATCH_API_KEY`` environment variable, else empty.
        data_dir: folder that receives one ``.msgpack`` file per window summary. Default:
            ``./modelwatch-data`` when no endpoint is set, none when one is.
        endpoint: a collector's URL (``http://collector:8080``): summaries are POSTed to
            ``{endpoint}/v1/windows``, retried, and spooled in ``data_dir`` if given. Needs
            a hash key (``hash_key`` or ``MODELWATCH_HASH_KEY``) shared by your processes.
        window_seconds: window length (tumbling, aligned to UTC); at least 1 s.
        debug_mode: print every summary as a table on standard error.
        exit_on_signal: on SIGTERM or SIGHUP (when nothing else handles them), deliver
            the last window and then end the process as the signal would. Raises
            :class:`Error` if a handler is already installed for one of them (then call
            :func:`shutdown` from it), and must be called from the main thread.
        hash_key: the 128-bit key through which strings enter sketches (16 bytes or 32
            hex characters). Default: ``MODELWATCH_HASH_KEY``, else a key kept in
            ``data_dir``.
        min_values_per_window: k of k-anonymity (default 10): columns with fewer values
            in a window wait for the next one.
        shutdown_timeout: seconds the last delivery may take at exit (default 5).
        allow_text: texts shipped as given although they look like personal data.
        max_sessions: deployments with a session, at most (default 256).
        no_data_dir: no folder at all (an endpoint only).
        upload_interval: seconds between uploads to the collector (default: the window).
        request_timeout: seconds one HTTP attempt may take (default 10).
        max_backlog_bytes: bytes of summaries kept while a destination is down (16 MiB).

    Raises:
        Error: already configured, invalid settings, or the folder cannot be created.
        ValueError: a setting out of range.
    """
    if api_key is None:
        api_key = os.environ.get("MODELWATCH_API_KEY", "")
    if exit_on_signal:
        pending = _exit_signals_to_install()
    _configure(
        api_key,
        None if data_dir is None else os.fspath(data_dir),
        endpoint,
        float(window_seconds),
        bool(debug_mode),
        hash_key=hash_key,
        min_values_per_window=min_values_per_window,
        shutdown_timeout=shutdown_timeout,
        allow_text=None if allow_text is None else list(allow_text),
        max_sessions=max_sessions,
        no_data_dir=no_data_dir,
        upload_interval=upload_interval,
        request_timeout=request_timeout,
        max_backlog_bytes=max_backlog_bytes,
    )
    if exit_on_signal:
        for sig in pending:
            _signal_handlers[sig] = signal.signal(sig, _on_exit_signal)
    _watch_multiprocessing()


def shutdown(timeout: Optional[float] = None) -> bool:
    """Seals the current windows, delivers them within ``timeout`` seconds (default: the
    configured shutdown timeout) and stops the agent. Sessions then log nothing until
    :func:`configure` is called again. Called at interpreter exit by itself.

    Returns whether an agent was running. Raises :class:`Error` when summaries could not
    be delivered (the data folder's spool keeps them for the next start).
    """
    return _shutdown(timeout)


def session(deployment_name: str) -> "Session":
    """The session of a deployment: cheap, the same object for the same name. It may be
    taken before :func:`configure` (at import time): it logs into whichever agent runs
    when it is called, and nothing (with one ``RuntimeWarning``) while none does."""
    s = _sessions.get(deployment_name)
    if s is None:
        # setdefault is atomic under the GIL; no lock that a fork could inherit held.
        s = _sessions.setdefault(deployment_name, Session(deployment_name))
    return s


class Session(NativeSession):
    """Logs predictions, ground truth, exceptions and metrics of one deployment.

    Logging never raises for data problems (NaN, infinities, missing values, new
    categories, too many features): they are counted in the window's summary. A value of
    a type modelwatch cannot log (a datetime, an object) raises ``TypeError`` and logs
    nothing of that call. Methods (native, see ``_modelwatch.pyi``): ``log_prediction``,
    ``log_ground_truth``, ``log_metadata``, ``log_prediction_with_token``,
    ``log_token_feedback``, ``log_prediction_keyed``, ``log_feedback``, ``count``,
    ``record_value``, ``record_latency``, ``set_decision_threshold``; and here
    ``log_prediction_batch``, ``log_exception``, ``time`` and ``time_inference``.
    """

    __slots__ = ()

    def log_prediction_batch(
        self,
        features: Any,
        predictions: Any = None,
        feature_names: Optional[Sequence[str]] = None,
    ) -> int:
        """Logs many predictions at once; equal to logging them one by one.

        Args:
            features: a pandas DataFrame, a 2-D numpy array, a list of dicts, or a list
                of lists (with ``feature_names``). Numeric numpy and pandas columns are
                read in place, without a Python object per cell, and folded with the
                GIL released (do not write to the arrays meanwhile).
            predictions: one per row: a 1-D numpy array or pandas Series (output
                ``prediction``), a 2-D array (class probabilities, outputs ``0``, ``1``,
                ...), a DataFrame (named outputs), or a list of anything
                ``log_prediction`` takes. ``None``: a missing prediction per row.
            feature_names: names of the columns of a 2-D array or of list rows
                (default ``"0"``, ``"1"``, ...).

        Returns the number of rows logged. Raises ``ValueError`` if the lengths differ.
        """
        return self._log_batch(
            **_batch.features(features, feature_names), **_batch.predictions(predictions)
        )

    def log_exception(
        self,
        message: Optional[str] = None,
        extra_info: Optional[Mapping[str, Any]] = None,
        exc_info: Any = None,
    ) -> None:
        """Counts an exception by message, with ``extra_info`` as tags of its first
        occurrence in the window.

        ``exc_info=True`` takes the exception being handled (``sys.exc_info()``); an
        exception instance or an ``exc_info`` tuple is taken as given. Its message then
        defaults to ``"TypeName: str(exception)"``, and the tags get ``exception_type``
        and ``location`` (``file:line in function`` of the innermost frame). Message and
        tags are shipped as text (personal-looking text is replaced by keyed tokens): do
        not put raw feature values in them.
        """
        tags: Dict[str, Any] = dict(extra_info) if extra_info else {}
        exc = _exception(exc_info)
        if exc is not None:
            if message is None:
                text = str(exc)
                message = type(exc).__name__ + (": " + text if text else "")
            tags.setdefault("exception_type", type(exc).__qualname__)
            tb = exc.__traceback__
            if tb is not None:
                while tb.tb_next is not None:
                    tb = tb.tb_next
                code = tb.tb_frame.f_code
                tags.setdefault(
                    "location",
                    f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}",
                )
        if message is None:
            raise ValueError("log_exception needs a message or exc_info")
        self._log_exception(message, tags)

    def time(self, name: str) -> "_Timer":
        """A context manager that records the seconds it lasts in the named value
        ``name``: ``with sess.time("feature_lookup_seconds"): ...``."""
        return _Timer(lambda s: self.record_value(name, s))

    def time_inference(self) -> "_Timer":
        """A context manager that records the inference latency of its block:
        ``with sess.time_inference(): y = model.predict(x)``."""
        return _Timer(self.record_latency)


class _Timer:
    """Records the seconds between ``__enter__`` and ``__exit__`` (also on an exception)."""

    __slots__ = ("_record", "_start")

    def __init__(self, record: Any) -> None:
        self._record = record
        self._start = 0.0

    def __enter__(self) -> "_Timer":
        self._start = _time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._record(_time.perf_counter() - self._start)


def _exception(exc_info: Any) -> Optional[BaseException]:
    if exc_info is None or exc_info is False:
        return None
    if exc_info is True:
        return sys.exc_info()[1]
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc = exc_info[1]
        return exc if isinstance(exc, BaseException) else None
    raise TypeError("exc_info must be True, an exception or a sys.exc_info() tuple")


def read_summaries(data_dir: Union[str, "os.PathLike[str]"]) -> List[Dict[str, Any]]:
    """Every window summary in a data folder (the ``.msgpack`` files the agent writes),
    as dicts like :func:`read_summary`'s, ordered by deployment, window start, instance and
    sequence. For a DataFrame: ``pandas.json_normalize(modelwatch.read_summaries(path))``.
    """
    out = []
    with os.scandir(data_dir) as entries:
        for e in entries:
            if e.is_file() and e.name.endswith(".msgpack") and not e.name.startswith("."):
                with open(e.path, "rb") as f:
                    out.append(read_summary(f.read()))
    out.sort(key=lambda s: (s["deployment"], s["window_start"], s["instance"], s["sequence"]))
    return out


# Exit, signals and fork.


def _at_exit() -> None:
    if not is_configured():
        return
    try:
        _shutdown(None)
    except Exception as e:  # the interpreter is exiting: say it, never raise
        sys.stderr.write(f"{e}\n")


def _exit_signals_to_install() -> List[int]:
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("configure(exit_on_signal=True) must be called from the main thread")
    pending = []
    for name in _EXIT_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:
            continue  # nohup: stays ignored
        if current not in (signal.SIG_DFL, None) and current is not _on_exit_signal:
            raise Error(
                f"modelwatch: exit_on_signal: {name} already has a handler ({current!r}); "
                "leave exit_on_signal off and call modelwatch.shutdown() from it"
            )
        pending.append(sig)
    return pending


def _on_exit_signal(signum: int, frame: Any) -> None:
    try:
        _shutdown(None)
    except Exception as e:
        sys.stderr.write(f"{e}\n")
    # End the process as the signal's default action would (a shell sees 128 + signum).
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _in_child_after_fork() -> None:
    try:
        _after_fork_child()
    except Exception as e:
        sys.stderr.write(f"modelwatch: no agent in the forked process {os.getpid()}: {e}\n")


class _ForkToken:
    """A weak-referenceable key for multiprocessing's after-fork registry."""


_FORK_TOKEN = _ForkToken()


def _multiprocessing_child(_: Any) -> None:
    # A multiprocessing child (fork start method) ends with os._exit, which runs no atexit
    # hook, but it runs multiprocessing's own finalizers first: deliver from one of them.
    import multiprocessing.util as mp_util

    mp_util.Finalize(None, _at_exit, exitpriority=-100)


def _watch_multiprocessing() -> None:
    """Registers with multiprocessing's after-fork hooks when it is in use. Its children
    clear inherited finalizers and then run these hooks, so the registration must be
    made in the parent, before the fork."""
    try:
        import multiprocessing.util as mp_util
    except ImportError:  # a Python without multiprocessing
        return
    mp_util.register_after_fork(_FORK_TOKEN, _multiprocessing_child)


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child_after_fork)
