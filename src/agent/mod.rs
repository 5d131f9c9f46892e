//! The agent: configuration, the session registry, the background worker, sinks, exit.

pub(crate) mod config;
pub(crate) mod global;
pub(crate) mod hash_key;
mod http;
pub(crate) mod session;
pub(crate) mod sink;
mod worker;

use crate::error::{Error, ErrorKind};
use config::Config;
use parking_lot::Mutex;
use session::{Session, SessionInner, Shared};
use sink::{FolderSink, Sink};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use worker::{Control, Worker};

/// Counters of the agent's own work, shared with the worker.
#[derive(Debug, Default)]
pub(crate) struct AgentStats {
    delivered: AtomicU64,
    failed: AtomicU64,
    http: Mutex<http::HttpCounters>,
    sessions_over_cap: AtomicU64,
    sessions_released: AtomicU64,
}

/// A snapshot of what the agent has delivered and what it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Summaries a local or custom sink accepted (one per sink).
    pub delivered: u64,
    /// Summaries a local or custom sink failed to accept (lost; the first failure of a run
    /// is logged as a warning).
    pub failed: u64,
    /// Summaries the collector accepted (2xx).
    pub http_delivered: u64,
    /// Failed HTTP attempts that will be retried (I/O errors, timeouts, 5xx, 429).
    pub http_retries: u64,
    /// Summaries dropped, oldest first, because the backlog passed `max_backlog_bytes`.
    pub http_dropped_backlog: u64,
    /// Summaries the collector refused with another 4xx, by status.
    pub http_rejected: BTreeMap<u16, u64>,
    /// Summaries waiting for the collector.
    pub backlog_len: usize,
    /// Bytes of the summaries waiting for the collector.
    pub backlog_bytes: usize,
    /// Logging calls that had to wait for a shard lock held by another thread (two threads
    /// mapped to one shard, or the worker swapping a window out). Never the network.
    pub contended_log_calls: u64,
    /// Deployments with a session (at most [`Config::max_sessions`]).
    pub sessions: usize,
    /// Calls to [`Agent::session`] for a new deployment past [`Config::max_sessions`]: each
    /// returned an inert session, which logs nothing.
    pub sessions_over_cap: u64,
    /// Times the window memory of a session idle for 10 windows was released.
    pub sessions_released: u64,
}

/// Heap bytes a session takes, at most, before anything is logged into it and again once
/// its idle windows are released: its shards (up to 16) and bookkeeping, plus twice the
/// deployment name and its metadata. What is logged adds its windows' columns (see the
/// crate's memory bounds).
pub const BYTES_PER_SESSION: usize = session::BYTES_PER_SESSION;

/// The in-process agent: owns the sessions and the background thread that seals windows
/// and ships their summaries. Dropping it seals the current windows (marked partial) and
/// delivers them within the shutdown timeout.
///
/// ```
/// use modelwatch::{Agent, Config, Value};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join("modelwatch-doc-agent");
/// let agent = Agent::start(Config::new("api-key").data_dir(&dir).window(Duration::from_secs(60)))?;
/// let sess = agent.session("fraud_detection_prod");
/// sess.log_prediction([("feat1", Value::from(1.2)), ("feat2", Value::from("XX"))], true);
/// agent.shutdown(Duration::from_secs(5))?;
/// # Ok::<(), modelwatch::Error>(())
/// ```
pub struct Agent {
    shared: Arc<Shared>,
    shards: usize,
    sessions: Arc<Mutex<BTreeMap<String, Arc<SessionInner>>>>,
    max_sessions: usize,
    /// Whether the cap on sessions was reported (once per agent).
    warned_over_cap: AtomicBool,
    control: Mutex<Option<SyncSender<Control>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<AgentStats>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("sessions", &self.sessions.lock().len())
            .finish()
    }
}

/// A random 64-bit agent instance id, from the standard library's per-process random keys.
fn random_instance() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Agent {
    /// Validates the configuration, finds the hash key (see [`Config::hash_key`]: with an
    /// endpoint and no key this fails with [`ErrorKind::NoHashKey`]), creates the data
    /// folder, and starts the background thread.
    pub fn start(config: Config) -> Result<Agent, Error> {
        config.validate()?;
        let key = hash_key::resolve(&config)?;
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(dir) = &config.folder() {
            let sink = FolderSink::new(dir)
                .map_err(|e| Error::io(format!("cannot create data_dir {}", dir.display()), e))?;
            sinks.push(Box::new(sink));
        }
        sinks.extend(config.sinks);
        let window_ms = config.window.as_millis() as i64;
        let http = config.endpoint.as_deref().map(|endpoint| {
            http::HttpDelivery::new(
                endpoint,
                &config.api_key,
                config.request_timeout,
                config.upload_interval.unwrap_or(config.window),
                config.max_backlog_bytes,
            )
        });
        let shared = Arc::new(Shared {
            key,
            limits: config.limits,
            min_values: config.min_values,
            allowed_texts: config.allowed_texts,
            window_ms,
            join_capacity: config.join_capacity,
            join_ttl_ms: config.join_ttl.as_millis().min(i64::MAX as u128) as i64,
            contended: AtomicU64::new(0),
        });
        let sessions = Arc::new(Mutex::new(BTreeMap::new()));
        let stats = Arc::new(AgentStats::default());
        let worker = Worker {
            sessions: Arc::clone(&sessions),
            sinks,
            debug_mode: config.debug_mode,
            instance: random_instance(),
            window_ms,
            stats: Arc::clone(&stats),
            warned: false,
            http,
            shutdown_timeout: config.shutdown_timeout,
        };
        let (tx, rx) = mpsc::sync_channel(16);
        if config.exit_on_signal {
            signals::install(tx.clone(), config.shutdown_timeout)?;
        }
        let handle = std::thread::Builder::new()
            .name("modelwatch".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| Error::io("cannot start the modelwatch thread", e))?;
        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .clamp(2, session::MAX_SHARDS);
        Ok(Agent {
            shared,
            shards,
            sessions,
            max_sessions: config.max_sessions,
            warned_over_cap: AtomicBool::new(false),
            control: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(handle)),
            stats,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// The session of a deployment, created on first use. Cheap to call and to clone.
    ///
    /// Past [`Config::max_sessions`] deployments, a new one gets an inert session that logs
    /// nothing: counted in [`Stats::sessions_over_cap`], and the first is logged as a warning.
    pub fn session(&self, deployment: &str) -> Session {
        let mut sessions = self.sessions.lock();
        if let Some(inner) = sessions.get(deployment) {
            return Session {
                inner: Some(Arc::clone(inner)),
            };
        }
        if sessions.len() >= self.max_sessions {
            drop(sessions);
            self.stats.sessions_over_cap.fetch_add(1, Ordering::Relaxed);
            if !self.warned_over_cap.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "modelwatch: {} deployments, the max_sessions cap: session({deployment:?}) \
                     and any other new deployment log nothing (counted in Stats::sessions_over_cap)",
                    self.max_sessions
                );
            }
            return Session { inner: None };
        }
        let inner = Arc::new(SessionInner::new(
            deployment.to_owned(),
            Arc::clone(&self.shared),
            self.shards,
        ));
        sessions.insert(deployment.to_owned(), Arc::clone(&inner));
        Session { inner: Some(inner) }
    }

    /// Seals every window logged so far (the current one marked partial) and delivers the
    /// summaries. Waits at most `timeout`; the caller's logging is never blocked meanwhile.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.request(Control::Flush, timeout)
    }

    fn worker_deadline(timeout: Duration) -> std::time::Instant {
        // The worker stops a little before the caller's own wait ends, so that its answer
        // (delivered or not) arrives within the timeout.
        std::time::Instant::now()
            + timeout.saturating_sub((timeout / 10).min(Duration::from_millis(100)))
    }

    /// Flushes, then stops the background thread. Returns within `timeout` whatever the
    /// sinks do. Later logging is kept in memory but never delivered.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let result = self.request(Control::Shutdown, timeout);
        *self.control.lock() = None;
        if result.is_ok() {
            // The worker answered and returns right after: joining cannot hang.
            if let Some(h) = self.worker.lock().take() {
                let _ = h.join();
            }
        }
        result
    }

    fn request(
        &self,
        make: fn(SyncSender<bool>, std::time::Instant) -> Control,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        // try_send: a worker held up by a slow collector, with earlier requests queued, must
        // not make the caller wait past its timeout.
        let sent = self
            .control
            .lock()
            .as_ref()
            .map(|tx| tx.try_send(make(reply_tx, Self::worker_deadline(timeout))));
        match sent {
            Some(Ok(())) => {}
            Some(Err(mpsc::TrySendError::Full(_))) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "the modelwatch agent is busy with earlier requests",
                ));
            }
            Some(Err(mpsc::TrySendError::Disconnected(_))) | None => {
                return Err(Error::new(
                    ErrorKind::NotRunning,
                    "the modelwatch agent has shut down",
                ));
            }
        }
        match reply_rx.recv_timeout(timeout) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::new(
                ErrorKind::Delivery,
                "some summaries could not be delivered (see Agent::stats)",
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("not finished within {timeout:?}"),
            )),
        }
    }

    /// What the agent has delivered so far.
    pub fn stats(&self) -> Stats {
        let http = self.stats.http.lock().clone();
        Stats {
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            http_delivered: http.delivered,
            http_retries: http.retries,
            http_dropped_backlog: http.dropped_backlog,
            http_rejected: http.rejected,
            backlog_len: http.backlog_len,
            backlog_bytes: http.backlog_bytes,
            contended_log_calls: self.shared.contended.load(Ordering::Relaxed),
            sessions: self.sessions.lock().len(),
            sessions_over_cap: self.stats.sessions_over_cap.load(Ordering::Relaxed),
            sessions_released: self.stats.sessions_released.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.control.lock().is_some() {
            if let Err(e) = self.shutdown(self.shutdown_timeout) {
                log::warn!("modelwatch: shutdown on drop: {e}");
            }
        }
    }
}

/// Exit on SIGINT/SIGTERM (feature `signals`): flush within the shutdown timeout, then exit.
mod signals {
    use super::worker::Control;
    use crate::error::{Error, ErrorKind};
    use std::sync::mpsc::SyncSender;
    use std::time::Duration;

    /// The status the process exits with after a termination signal: 128 + SIGINT. `ctrlc`
    /// runs one handler for SIGINT, SIGTERM and SIGHUP and does not say which arrived, so
    /// all three exit with 130.
    pub const EXIT_STATUS: i32 = 130;

    #[cfg(feature = "signals")]
    pub(super) fn install(control: SyncSender<Control>, timeout: Duration) -> Result<(), Error> {
        ctrlc::try_set_handler(move || {
            let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
            let deadline = super::Agent::worker_deadline(timeout);
            if control
                .try_send(Control::Shutdown(reply_tx, deadline))
                .is_ok()
            {
                let _ = reply_rx.recv_timeout(timeout);
            }
            std::process::exit(EXIT_STATUS);
        })
        .map_err(|e| match e {
            ctrlc::Error::MultipleHandlers => Error::new(
                ErrorKind::InvalidConfig,
                "exit_on_signal: this process already has a SIGINT/SIGTERM handler; \
                 leave exit_on_signal off and call Agent::flush from your own handler",
            ),
            other => Error::new(
                ErrorKind::InvalidConfig,
                format!("exit_on_signal: cannot install the handler: {other}"),
            ),
        })
    }

    #[cfg(not(feature = "signals"))]
    pub(super) fn install(_: SyncSender<Control>, _: Duration) -> Result<(), Error> {
        Err(Error::new(
            ErrorKind::InvalidConfig,
            "exit_on_signal needs modelwatch's `signals` feature",
        ))
    }
}

pub use signals::EXIT_STATUS as SIGNAL_EXIT_STATUS;
