//! The process-global agent, as in the Graphsignal logger: `configure` once, then
//! `session(name)` anywhere.

use super::config::Config;
use super::session::Session;
use super::{Agent, Completion};
use crate::error::{Error, ErrorKind};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Held only to clone or take the handle: `flush` and `shutdown` wait on the worker (a
/// dead collector, up to their timeout), and `session` must never wait behind them.
static GLOBAL: Mutex<Option<Arc<Agent>>> = Mutex::new(None);

/// The global agent's handle, the lock released.
fn global_agent() -> Option<Arc<Agent>> {
    GLOBAL.lock().clone()
}
static WARNED_INERT: AtomicBool = AtomicBool::new(false);

/// Starts the process-global agent. Keep the returned guard alive (in `main`): dropping
/// it seals the current windows and delivers them within the shutdown timeout.
///
/// ```
/// # let dir = std::env::temp_dir().join("modelwatch-doc-global");
/// let _guard = modelwatch::configure(modelwatch::Config::new("api-key").data_dir(&dir))?;
/// modelwatch::session("fraud_detection_prod").log_prediction([("x", 1.0)], 0.7);
/// # Ok::<(), modelwatch::Error>(())
/// ```
pub fn configure(config: Config) -> Result<Guard, Error> {
    let mut global = GLOBAL.lock();
    if global.is_some() {
        return Err(Error::new(
            ErrorKind::AlreadyConfigured,
            "modelwatch is already configured in this process",
        ));
    }
    *global = Some(Arc::new(Agent::start(config)?));
    Ok(Guard { _private: () })
}

/// The session of a deployment on the global agent. Before [`configure`] (or after the
/// guard dropped) it is inert: it logs nothing, and the `log` crate is told once.
pub fn session(deployment: &str) -> Session {
    match global_agent() {
        Some(agent) => agent.session(deployment),
        None => {
            if !WARNED_INERT.swap(true, Ordering::Relaxed) {
                log::warn!(target: "modelwatch::agent", "modelwatch::session({deployment:?}) called before modelwatch::configure: nothing is logged");
            }
            Session { inner: None }
        }
    }
}

/// Flushes the global agent. See [`Agent::flush`]. Sessions can be taken and logged into
/// meanwhile: the wait happens outside the global lock.
pub fn flush(timeout: Duration) -> Result<(), Error> {
    match global_agent() {
        Some(agent) => agent.flush(timeout),
        None => Err(Error::new(
            ErrorKind::NotRunning,
            "modelwatch is not configured",
        )),
    }
}

/// [`flush`] as a future (see [`Agent::flush_async`]): for async code, which must not
/// block a runtime's thread on a flush.
pub fn flush_async(timeout: Duration) -> Completion {
    match global_agent() {
        Some(agent) => agent.flush_async(timeout),
        None => Completion::failed(Error::new(
            ErrorKind::NotRunning,
            "modelwatch is not configured",
        )),
    }
}

/// Keeps the global agent running; dropping it shuts the agent down (seal, deliver, stop).
#[must_use = "dropping the guard shuts modelwatch down at once"]
#[derive(Debug)]
pub struct Guard {
    _private: (),
}

impl Guard {
    /// The global agent's counters (see [`Agent::stats`]): delivered, failed, rejected by
    /// the collector, and so on, so that a wrong key or a full disk can be seen.
    pub fn stats(&self) -> Option<super::Stats> {
        global_agent().map(|a| a.stats())
    }

    /// Shuts the global agent down within `timeout`; the error says what was not delivered
    /// over the run (see [`Agent::shutdown`]).
    pub fn shutdown(self, timeout: Duration) -> Result<(), Error> {
        let agent = GLOBAL.lock().take();
        std::mem::forget(self);
        match agent {
            Some(a) => a.shutdown(timeout),
            None => Ok(()),
        }
    }
}

impl Guard {
    /// [`shutdown`](Self::shutdown) as a future, for the end of an async `main`: it does
    /// not block the runtime's thread (see [`Agent::shutdown_async`]).
    pub fn shutdown_async(self, timeout: Duration) -> Completion {
        let agent = GLOBAL.lock().take();
        std::mem::forget(self);
        match agent {
            Some(a) => a.shutdown_async(timeout),
            None => Completion::failed(Error::new(
                ErrorKind::NotRunning,
                "modelwatch is not configured",
            )),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Taken out of the lock first, so sessions created meanwhile never wait on shutdown;
        // shut down here even if a `flush` elsewhere still holds the handle.
        let agent = GLOBAL.lock().take();
        if let Some(a) = agent {
            if let Err(e) = a.shutdown(a.shutdown_timeout) {
                log::warn!(target: "modelwatch::agent", "modelwatch: shutdown on drop: {e}");
            }
        }
    }
}
