//! The process's agent: configure, flush, shutdown, stats, and its re-creation in a child
//! after `os.fork()`.
//!
//! Fork safety rests on one rule: the slot below (and every session's cache) is locked only
//! with the GIL held and never across a release of it. `os.fork()` runs with the GIL held,
//! so no other thread of the parent can be inside these locks at the fork, and the child
//! can take them. The parent's agent is never touched in the child (its threads did not
//! survive the fork and its locks may be held by them): it is forgotten, not dropped.

use modelwatch::{Agent, Completion, Config};
use parking_lot::Mutex;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

create_exception!(
    _modelwatch,
    Error,
    PyException,
    "An error of the modelwatch agent: configuration, start, or undelivered summaries."
);

/// What `configure` was given, kept to start the same agent again after a fork.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spec {
    api_key: String,
    data_dir: Option<PathBuf>,
    no_data_dir: bool,
    endpoint: Option<String>,
    window: Duration,
    debug_mode: bool,
    hash_key: Option<[u8; 16]>,
    min_values_per_window: Option<u64>,
    shutdown_timeout: Option<Duration>,
    allow_text: Vec<String>,
    max_sessions: Option<usize>,
    upload_interval: Option<Duration>,
    request_timeout: Option<Duration>,
    max_backlog_bytes: Option<usize>,
}

impl Spec {
    fn config(&self) -> Config {
        let mut c = Config::new(self.api_key.clone())
            .window(self.window)
            // Python has no `log` logger: debug tables go to standard error.
            .debug_to_stderr(self.debug_mode)
            .allow_text(self.allow_text.iter().cloned());
        if let Some(d) = &self.data_dir {
            c = c.data_dir(d);
        }
        if self.no_data_dir {
            c = c.no_data_dir();
        }
        if let Some(e) = &self.endpoint {
            c = c.endpoint(e.clone());
        }
        if let Some(k) = self.hash_key {
            c = c.hash_key(k);
        }
        if let Some(k) = self.min_values_per_window {
            c = c.min_values_per_window(k);
        }
        if let Some(t) = self.shutdown_timeout {
            c = c.shutdown_timeout(t);
        }
        if let Some(n) = self.max_sessions {
            c = c.max_sessions(n);
        }
        if let Some(t) = self.upload_interval {
            c = c.upload_interval(t);
        }
        if let Some(t) = self.request_timeout {
            c = c.request_timeout(t);
        }
        if let Some(b) = self.max_backlog_bytes {
            c = c.max_backlog_bytes(b);
        }
        c
    }
}

struct Running {
    spec: Spec,
    agent: Arc<Agent>,
    /// The process that started `agent`.
    pid: u32,
}

static SLOT: Mutex<Option<Running>> = Mutex::new(None);

/// Bumped whenever the slot's agent changes (configure, shutdown, fork): sessions compare
/// it with the one they resolved at.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The session of `deployment` on the current agent, `None` when not configured.
pub(crate) fn session(deployment: &str) -> Option<modelwatch::Session> {
    let slot = SLOT.lock();
    let running = slot.as_ref()?;
    (running.pid == std::process::id()).then(|| running.agent.session(deployment))
}

fn current() -> Option<Arc<Agent>> {
    SLOT.lock()
        .as_ref()
        .filter(|r| r.pid == std::process::id())
        .map(|r| Arc::clone(&r.agent))
}

pub(crate) fn error(e: &modelwatch::Error) -> PyErr {
    Error::new_err(format!("modelwatch: {e}"))
}

fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0, got {s}"
        ))
    })
}

fn hash_key(key: &Bound<'_, PyAny>) -> PyResult<[u8; 16]> {
    let bad = || PyValueError::new_err("hash_key must be 16 bytes or 32 hex characters");
    if let Ok(b) = key.extract::<Vec<u8>>() {
        if key.is_instance_of::<pyo3::types::PyBytes>() {
            return b.try_into().map_err(|_| bad());
        }
    }
    let hex: String = key.extract().map_err(|_| bad())?;
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Starts the process's agent. See `modelwatch.configure` (python/modelwatch/__init__.py).
#[pyfunction]
#[pyo3(signature = (
    api_key, data_dir=None, endpoint=None, window_seconds=60.0, debug_mode=false, *,
    hash_key=None, min_values_per_window=None, shutdown_timeout=None, allow_text=None,
    max_sessions=None, no_data_dir=false, upload_interval=None, request_timeout=None,
    max_backlog_bytes=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn configure(
    api_key: String,
    data_dir: Option<PathBuf>,
    endpoint: Option<String>,
    window_seconds: f64,
    debug_mode: bool,
    hash_key: Option<&Bound<'_, PyAny>>,
    min_values_per_window: Option<u64>,
    shutdown_timeout: Option<f64>,
    allow_text: Option<Vec<String>>,
    max_sessions: Option<usize>,
    no_data_dir: bool,
    upload_interval: Option<f64>,
    request_timeout: Option<f64>,
    max_backlog_bytes: Option<usize>,
) -> PyResult<()> {
    let spec = Spec {
        api_key,
        data_dir,
        no_data_dir,
        endpoint,
        window: seconds("window_seconds", window_seconds)?,
        debug_mode,
        hash_key: hash_key.map(self::hash_key).transpose()?,
        min_values_per_window,
        shutdown_timeout: shutdown_timeout
            .map(|s| seconds("shutdown_timeout", s))
            .transpose()?,
        allow_text: allow_text.unwrap_or_default(),
        max_sessions,
        upload_interval: upload_interval
            .map(|s| seconds("upload_interval", s))
            .transpose()?,
        request_timeout: request_timeout
            .map(|s| seconds("request_timeout", s))
            .transpose()?,
        max_backlog_bytes,
    };
    let mut slot = SLOT.lock();
    if slot.as_ref().is_some_and(|r| r.pid == std::process::id()) {
        return Err(Error::new_err(
            "modelwatch is already configured in this process (call modelwatch.shutdown() first)",
        ));
    }
    // Starting creates the data folder and threads; it never waits on the network.
    let agent = Agent::start(spec.config()).map_err(|e| error(&e))?;
    if let Some(stale) = slot.take() {
        std::mem::forget(stale.agent); // a parent's agent, inherited by fork
    }
    *slot = Some(Running {
        spec,
        agent: Arc::new(agent),
        pid: std::process::id(),
    });
    GENERATION.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// Whether an agent runs in this process.
#[pyfunction]
pub(crate) fn is_configured() -> bool {
    current().is_some()
}

/// Seals every window logged so far and delivers the summaries, within `timeout` seconds.
#[pyfunction]
#[pyo3(signature = (timeout=5.0))]
pub(crate) fn flush(py: Python<'_>, timeout: f64) -> PyResult<()> {
    let timeout = seconds("timeout", timeout)?;
    let Some(agent) = current() else {
        return Err(Error::new_err("modelwatch is not configured"));
    };
    py.detach(|| agent.flush(timeout)).map_err(|e| error(&e))
}

/// Seals and delivers the last windows and stops the agent; later logging is ignored
/// until `configure` is called again. Returns whether an agent was running.
#[pyfunction]
#[pyo3(signature = (timeout=None))]
pub(crate) fn shutdown(py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
    let running = {
        let mut slot = SLOT.lock();
        let taken = slot.take();
        GENERATION.fetch_add(1, Ordering::AcqRel);
        taken
    };
    let Some(running) = running else {
        return Ok(false);
    };
    if running.pid != std::process::id() {
        std::mem::forget(running.agent);
        return Ok(false);
    }
    let timeout = match timeout {
        Some(t) => seconds("timeout", t)?,
        None => running
            .spec
            .shutdown_timeout
            .unwrap_or(Duration::from_secs(5)),
    };
    // Asked with the GIL held, so that the library's exit registry is never locked by this
    // thread at a fork; waited for with it released.
    let completion = running.agent.shutdown_async(timeout);
    let agent = running.agent;
    let outcome = py.detach(move || {
        let outcome = wait(completion, timeout);
        drop(agent);
        outcome
    });
    match outcome {
        Some(Ok(())) => Ok(true),
        Some(Err(e)) => Err(error(&e)),
        None => Err(Error::new_err(format!(
            "modelwatch: shutdown timed out after {timeout:?}: the last summaries may not be delivered"
        ))),
    }
}

/// Blocks on a completion until `timeout`; `None` when it did not complete in time.
fn wait(completion: Completion, timeout: Duration) -> Option<Result<(), modelwatch::Error>> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let deadline = Instant::now() + timeout;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut completion = std::pin::pin!(completion);
    loop {
        if let Poll::Ready(r) = Pin::as_mut(&mut completion).poll(&mut cx) {
            return Some(r);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Called in the child after `os.fork()` (registered by the package with
/// `os.register_at_fork`): starts a new agent with the parent's configuration, so that
/// each worker of a pre-fork server delivers its own windows. The parent's agent, whose
/// threads did not survive the fork, is forgotten.
#[pyfunction]
pub(crate) fn _after_fork_child() -> PyResult<()> {
    let mut slot = SLOT.lock();
    let pid = std::process::id();
    let Some(running) = slot.as_mut() else {
        return Ok(());
    };
    if running.pid == pid {
        return Ok(());
    }
    let started = Agent::start(running.spec.config());
    let result = match started {
        Ok(agent) => {
            let old = std::mem::replace(&mut running.agent, Arc::new(agent));
            std::mem::forget(old);
            running.pid = pid;
            Ok(())
        }
        Err(e) => {
            if let Some(stale) = slot.take() {
                std::mem::forget(stale.agent);
            }
            Err(error(&e))
        }
    };
    GENERATION.fetch_add(1, Ordering::AcqRel);
    result
}

/// The agent's counters (`modelwatch::Stats`) as a dict; `None` when not configured.
#[pyfunction]
pub(crate) fn stats(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Some(agent) = current() else {
        return Ok(None);
    };
    let s = agent.stats();
    let d = PyDict::new(py);
    d.set_item("delivered", s.delivered)?;
    d.set_item("failed", s.failed)?;
    d.set_item("local_dropped", s.local_dropped)?;
    d.set_item("local_backlog_len", s.local_backlog_len)?;
    d.set_item("local_backlog_bytes", s.local_backlog_bytes)?;
    d.set_item("http_delivered", s.http_delivered)?;
    d.set_item("http_retries", s.http_retries)?;
    d.set_item("http_dropped_backlog", s.http_dropped_backlog)?;
    d.set_item(
        "http_rejected",
        s.http_rejected.into_iter().collect::<Vec<_>>(),
    )?;
    d.set_item("backlog_len", s.backlog_len)?;
    d.set_item("backlog_bytes", s.backlog_bytes)?;
    d.set_item("debug_dropped", s.debug_dropped)?;
    d.set_item("contended_log_calls", s.contended_log_calls)?;
    d.set_item("sessions", s.sessions)?;
    d.set_item("sessions_over_cap", s.sessions_over_cap)?;
    d.set_item("sessions_released", s.sessions_released)?;
    Ok(Some(d))
}
