//! The agent: configuration, the session registry, the background worker, sinks, exit.

#[cfg(unix)]
mod at_exit;
mod backoff;
pub(crate) mod config;
mod debug;
pub(crate) mod global;
pub(crate) mod hash_key;
mod http;
mod oneshot;
pub(crate) mod session;
pub(crate) mod sink;
mod spool;
mod worker;

use crate::error::{Error, ErrorKind, Undelivered};
use config::Config;
use parking_lot::Mutex;
use session::{Session, SessionInner, Shared};
use sink::{FolderSink, LocalSinks, Sink};
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{Control, Request, Worker};

/// Counters of the agent's own work, shared by its threads.
#[derive(Debug, Default)]
pub(crate) struct AgentStats {
    delivered: AtomicU64,
    failed: AtomicU64,
    local_dropped: AtomicU64,
    local_backlog_len: AtomicUsize,
    local_backlog_bytes: AtomicUsize,
    debug_dropped: AtomicU64,
    sessions_over_cap: AtomicU64,
    sessions_released: AtomicU64,
    /// Refusals and drops as of the last flush's answer: each flush reports what happened
    /// since (a shutdown reports the whole run).
    reported: Mutex<(BTreeMap<u16, u64>, u64)>,
}

impl AgentStats {
    /// Completes the answer to a flush or shutdown with the refusals and drops since the
    /// last flush (or, with `whole_run`, since start).
    pub(crate) fn undelivered(
        &self,
        mut answer: Undelivered,
        http: &http::HttpCounters,
        whole_run: bool,
    ) -> Undelivered {
        let dropped = http.dropped_backlog + self.local_dropped.load(Ordering::Relaxed);
        let mut reported = self.reported.lock();
        let (rejected_before, dropped_before) = if whole_run {
            (BTreeMap::new(), 0)
        } else {
            reported.clone()
        };
        answer.rejected = http
            .rejected
            .iter()
            .map(|(s, n)| (*s, n - rejected_before.get(s).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        answer.dropped = dropped - dropped_before;
        *reported = (http.rejected.clone(), dropped);
        answer
    }
}

/// A snapshot of what the agent has delivered and what it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Summaries a local or custom sink accepted (one per sink).
    pub delivered: u64,
    /// Attempts of a local or custom sink that failed (a full disk, a deleted or read-only
    /// folder, a panicking sink). The summary waits in that sink's backlog and is offered
    /// again with back-off; the first failure of a run is logged as a warning.
    pub failed: u64,
    /// Summaries dropped, oldest first, from a local sink's backlog past `max_backlog_bytes`.
    pub local_dropped: u64,
    /// Summaries waiting for a local sink to take them.
    pub local_backlog_len: usize,
    /// Bytes of the summaries waiting for a local sink.
    pub local_backlog_bytes: usize,
    /// Summaries the collector accepted (2xx).
    pub http_delivered: u64,
    /// Failed HTTP attempts that will be retried (I/O errors, timeouts, 5xx, 429).
    pub http_retries: u64,
    /// Summaries dropped, oldest first, because the backlog passed `max_backlog_bytes`.
    pub http_dropped_backlog: u64,
    /// Summaries the collector refused with another 4xx, by status.
    pub http_rejected: BTreeMap<u16, u64>,
    /// Summaries waiting for the collector (in memory, and in the spool when a data folder
    /// is set).
    pub backlog_len: usize,
    /// Bytes of the summaries waiting for the collector.
    pub backlog_bytes: usize,
    /// Debug tables dropped because the logger or stderr did not keep up (debug mode
    /// never holds up sealing or delivery).
    pub debug_dropped: u64,
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

/// The in-process agent: owns the sessions and the background threads that seal windows
/// and ship their summaries (one seals and writes local sinks, one sends to the collector,
/// so that neither waits on the other: `docs/architecture.md`). Dropping it seals the
/// current windows (marked partial) and delivers them within the shutdown timeout.
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
    /// Random per start; also the agent's key in the exit registry.
    instance: u64,
    sealer: Mutex<Option<JoinHandle<()>>>,
    outbox: Option<Arc<http::Outbox>>,
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
    /// folder, and starts the background threads. With an endpoint and a data folder, the
    /// summaries a previous agent left unsent in the folder's spool are queued for sending.
    pub fn start(config: Config) -> Result<Agent, Error> {
        let config = config.with_env_endpoints();
        config.validate()?;
        let key = hash_key::resolve(&config)?;
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let folder = config.folder();
        if let Some(dir) = &folder {
            let sink = FolderSink::new(dir)
                .map_err(|e| Error::io(format!("cannot create data_dir {}", dir.display()), e))?;
            sinks.push(Box::new(sink));
        }
        sinks.extend(config.sinks);
        let window_ms = config.window.as_millis() as i64;
        let stats = Arc::new(AgentStats::default());
        let instance = random_instance();
        // What can fail for a reason of the host's (a signal handler already there) comes
        // before any thread that would then have to be stopped.
        let (tx, rx) = mpsc::sync_channel(16);
        if config.exit_on_signal {
            signals::install(tx.clone(), config.shutdown_timeout)?;
        }
        let debug = match config.debug_to {
            None => None,
            Some(to) => Some(
                debug::DebugOut::start(to, Arc::clone(&stats))
                    .map_err(|e| Error::io("cannot start the modelwatch-debug thread", e))?,
            ),
        };
        let http = match config.endpoints.as_slice() {
            [] => None,
            endpoints => {
                let spool = folder.as_deref().map(|d| spool::Spool::new(d, instance));
                let replayed = spool.as_ref().map(spool::Spool::adopt).unwrap_or_default();
                let outbox = Arc::new(http::Outbox::new(config.max_backlog_bytes, replayed));
                let sender = http::Sender::new(
                    Arc::clone(&outbox),
                    Arc::clone(&stats),
                    endpoints,
                    &config.api_key,
                    config.request_timeout,
                    config.upload_interval.unwrap_or(config.window),
                );
                // Not joined: it ends on its own once it has answered the shutdown.
                std::thread::Builder::new()
                    .name("modelwatch-http".into())
                    .spawn(move || sender.run())
                    .map_err(|e| Error::io("cannot start the modelwatch-http thread", e))?;
                Some(worker::ToHttp { outbox, spool })
            }
        };
        let shared = Arc::new(Shared {
            key,
            limits: config.limits,
            min_values: config.min_values,
            allowed_texts: config.allowed_texts,
            plain: config.plain_categories,
            plain_min: config.plain_min,
            window_ms,
            join_capacity: config.join_capacity,
            join_ttl_ms: config.join_ttl.as_millis().min(i64::MAX as u128) as i64,
            contended: AtomicU64::new(0),
        });
        let sessions = Arc::new(Mutex::new(BTreeMap::new()));
        let outbox = http.as_ref().map(|h| Arc::clone(&h.outbox));
        let worker = Worker {
            sessions: Arc::clone(&sessions),
            local: LocalSinks::new(sinks, config.max_backlog_bytes, Arc::clone(&stats)),
            debug,
            instance,
            window_ms,
            stats: Arc::clone(&stats),
            http,
            shutdown_timeout: config.shutdown_timeout,
            last_clock: (session::now_ms(), Instant::now()),
        };
        let sealer = std::thread::Builder::new()
            .name("modelwatch".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| {
                if let Some(o) = &outbox {
                    o.close();
                }
                Error::io("cannot start the modelwatch thread", e)
            })?;
        #[cfg(unix)]
        at_exit::register(instance, tx.clone(), config.shutdown_timeout);
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
            instance,
            sealer: Mutex::new(Some(sealer)),
            outbox,
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
                    target: "modelwatch::agent",
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
    /// summaries: every summary waiting for a sink or the collector is tried at once,
    /// whatever its back-off, and again until `timeout`. Returns within `timeout`; the
    /// caller's logging is never blocked meanwhile. The error says what was not delivered
    /// since the previous flush ([`Error::undelivered`]); a summary still waiting stays in
    /// its backlog.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.request(Control::Flush, timeout)
            .wait(timeout, || self.waiting())
    }

    /// What waits for the collector and the local sinks now.
    fn waiting(&self) -> Undelivered {
        let s = self.stats();
        Undelivered {
            waiting_http: s.backlog_len as u64,
            waiting_local: s.local_backlog_len as u64,
            ..Undelivered::default()
        }
    }

    /// [`flush`](Self::flush) as a future, for async code: it completes when the agent's
    /// threads answer, which they do by `timeout` (a local sink that blocks can delay it:
    /// wrap it in your runtime's timeout if yours may). Needs no particular runtime.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-flush-async");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// async fn on_shutdown(agent: &modelwatch::Agent) {
    ///     if let Err(e) = agent.flush_async(std::time::Duration::from_secs(5)).await {
    ///         eprintln!("modelwatch: {e}");
    ///     }
    /// }
    /// # let _ = on_shutdown(&agent);
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn flush_async(&self, timeout: Duration) -> Completion {
        self.request(Control::Flush, timeout)
    }

    fn worker_deadline(timeout: Duration) -> Instant {
        // The worker stops a little before the caller's own wait ends, so that its answer
        // (delivered or not) arrives within the timeout.
        Instant::now() + timeout.saturating_sub((timeout / 10).min(Duration::from_millis(100)))
    }

    /// Flushes, then stops the background threads. Returns within `timeout` whatever the
    /// sinks do; the error says what was not delivered over the whole run (summaries the
    /// collector refused, drops, and what still waits: with a data folder, what waits for
    /// the collector stays in the spool for the next agent). Later logging is kept in
    /// memory but never delivered.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let result = self
            .shutdown_async(timeout)
            .wait(timeout, || self.waiting());
        if !matches!(&result, Err(e) if e.kind() == ErrorKind::Timeout) {
            // The sealer answered and returns right after: joining cannot hang.
            if let Some(h) = self.sealer.lock().take() {
                let _ = h.join();
            }
        }
        result
    }

    /// [`shutdown`](Self::shutdown) as a future (see [`flush_async`](Self::flush_async)).
    /// The threads end on their own once they have answered.
    pub fn shutdown_async(&self, timeout: Duration) -> Completion {
        let completion = self.request(Control::Shutdown, timeout);
        *self.control.lock() = None;
        #[cfg(unix)]
        at_exit::unregister(self.instance);
        completion
    }

    fn request(&self, make: fn(Request) -> Control, timeout: Duration) -> Completion {
        let (reply, rx) = oneshot::channel();
        let request = Request {
            reply,
            deadline: Self::worker_deadline(timeout),
        };
        // try_send: a sealer held up by a slow local sink, with earlier requests queued,
        // must not make the caller wait past its timeout.
        let sent = self
            .control
            .lock()
            .as_ref()
            .map(|tx| tx.try_send(make(request)));
        let early = match sent {
            Some(Ok(())) => None,
            Some(Err(mpsc::TrySendError::Full(_))) => Some(Error::new(
                ErrorKind::Timeout,
                "the modelwatch agent is busy with earlier requests",
            )),
            Some(Err(mpsc::TrySendError::Disconnected(_))) | None => Some(Error::new(
                ErrorKind::NotRunning,
                "the modelwatch agent has shut down",
            )),
        };
        Completion {
            state: match early {
                Some(e) => Some(Err(e)),
                None => Some(Ok(rx)),
            },
        }
    }

    /// What the agent has delivered so far. Current even while a request to the collector
    /// hangs.
    pub fn stats(&self) -> Stats {
        let http = self
            .outbox
            .as_ref()
            .map(|o| o.counters())
            .unwrap_or_default();
        let s = &self.stats;
        Stats {
            delivered: s.delivered.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            local_dropped: s.local_dropped.load(Ordering::Relaxed),
            local_backlog_len: s.local_backlog_len.load(Ordering::Relaxed),
            local_backlog_bytes: s.local_backlog_bytes.load(Ordering::Relaxed),
            http_delivered: http.delivered,
            http_retries: http.retries,
            http_dropped_backlog: http.dropped_backlog,
            http_rejected: http.rejected,
            backlog_len: http.backlog_len,
            backlog_bytes: http.backlog_bytes,
            debug_dropped: s.debug_dropped.load(Ordering::Relaxed),
            contended_log_calls: self.shared.contended.load(Ordering::Relaxed),
            sessions: self.sessions.lock().len(),
            sessions_over_cap: s.sessions_over_cap.load(Ordering::Relaxed),
            sessions_released: s.sessions_released.load(Ordering::Relaxed),
        }
    }
}

/// A flush or shutdown under way ([`Agent::flush_async`], [`Agent::shutdown_async`],
/// [`flush_async`](crate::flush_async), [`Guard::shutdown_async`](crate::Guard::shutdown_async)):
/// a future of its result, completed by the agent's threads, on any runtime or none.
#[must_use = "the result says what was not delivered"]
pub struct Completion {
    /// The answer to wait for, or the error known at once; `None` once completed.
    state: Option<Result<oneshot::Receiver<Undelivered>, Error>>,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion").finish_non_exhaustive()
    }
}

fn answer(got: Option<Undelivered>) -> Result<(), Error> {
    match got {
        Some(u) if u.is_empty() => Ok(()),
        Some(u) => Err(Error::undelivered_summaries(u)),
        None => Err(Error::new(
            ErrorKind::NotRunning,
            "the modelwatch agent stopped without answering",
        )),
    }
}

impl Completion {
    pub(crate) fn failed(e: Error) -> Completion {
        Completion {
            state: Some(Err(e)),
        }
    }

    /// Blocks until the answer or `timeout`; a timeout says what `waiting` finds then.
    fn wait(
        mut self,
        timeout: Duration,
        waiting: impl FnOnce() -> Undelivered,
    ) -> Result<(), Error> {
        match self.state.take() {
            None => answer(None),
            Some(Err(e)) => Err(e),
            Some(Ok(rx)) => match rx.recv_until(Instant::now() + timeout) {
                Ok(u) => answer(Some(u)),
                Err(oneshot::RecvError::Closed) => answer(None),
                Err(oneshot::RecvError::Timeout) => Err(Error::timed_out(timeout, waiting())),
            },
        }
    }
}

impl Future for Completion {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.state.take() {
            Some(Ok(mut rx)) => match Pin::new(&mut rx).poll(cx) {
                Poll::Pending => {
                    this.state = Some(Ok(rx));
                    Poll::Pending
                }
                Poll::Ready(got) => Poll::Ready(answer(got)),
            },
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => Poll::Ready(Err(Error::new(
                ErrorKind::NotRunning,
                "this flush or shutdown has already completed",
            ))),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.control.lock().is_some() {
            if let Err(e) = self.shutdown(self.shutdown_timeout) {
                log::warn!(target: "modelwatch::agent", "modelwatch: shutdown on drop: {e}");
            }
        }
    }
}

/// Shutdown on SIGINT, SIGTERM and SIGHUP (feature `signals`, Unix), cooperating with the
/// host's own handling.
///
/// The handler only writes the signal's number to a pipe (async-signal-safe); a thread
/// ("modelwatch-signal") reads it and decides:
/// - if modelwatch's handler is still the one installed, nothing else handles the signal:
///   shut the agent down (seal, deliver within the shutdown timeout), then restore the
///   default action and raise the signal again, so the process ends as it would have
///   without modelwatch (killed by that signal: a shell sees 128 + its number);
/// - if the host installed a handler since (tokio's `signal`, `signal-hook` and `ctrlc`
///   keep the previous one and call it too), the host is shutting down on its own terms:
///   flush only, and never end the process. The host's own shutdown (dropping the guard
///   or the agent) delivers the rest.
///
/// A signal whose action is "ignore" at start (`nohup`, `&` in a script) stays ignored; one
/// that already has a handler is left to it, and `start` fails if that is SIGINT or
/// SIGTERM: call `flush` or `shutdown` from that handler instead.
mod signals {
    #[cfg(all(unix, feature = "signals"))]
    pub(super) use unix::install;

    #[cfg(all(unix, feature = "signals"))]
    mod unix {
        use super::super::{oneshot, Agent, Control, Request};
        use crate::error::{Error, ErrorKind};
        use std::io::Read;
        use std::os::fd::IntoRawFd;
        use std::os::unix::net::UnixStream;
        use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
        use std::sync::mpsc::SyncSender;
        use std::time::{Duration, Instant};

        const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
        static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
        static INSTALLED: AtomicBool = AtomicBool::new(false);

        #[cfg(any(target_os = "linux", target_os = "android"))]
        unsafe fn errno() -> *mut libc::c_int {
            libc::__errno_location()
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        unsafe fn errno() -> *mut libc::c_int {
            libc::__error()
        }

        extern "C" fn on_signal(sig: libc::c_int) {
            // Only async-signal-safe calls: write(2) to a non-blocking socket (a full one
            // loses a repeated signal, never blocks), errno kept for the interrupted code.
            let byte = sig as u8;
            // SAFETY: the fd stays open for the process's life; errno is this thread's.
            unsafe {
                let saved = *errno();
                libc::write(
                    WRITE_FD.load(Ordering::Relaxed),
                    std::ptr::addr_of!(byte).cast(),
                    1,
                );
                *errno() = saved;
            }
        }

        fn current_action(sig: libc::c_int) -> libc::sighandler_t {
            // SAFETY: a query only (no new action); `old` is a valid out-pointer.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old.sa_sigaction
            }
        }

        pub(in super::super) fn install(
            control: SyncSender<Control>,
            timeout: Duration,
        ) -> Result<(), Error> {
            let taken = SIGNALS.iter().find(|&&sig| {
                let action = current_action(sig);
                sig != libc::SIGHUP && action != libc::SIG_DFL && action != libc::SIG_IGN
            });
            if taken.is_some() || INSTALLED.swap(true, Ordering::SeqCst) {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "exit_on_signal: this process already has a SIGINT/SIGTERM handler; \
                     leave exit_on_signal off and call Agent::flush or shutdown from your own handler",
                ));
            }
            let (mut read, write) = UnixStream::pair()
                .and_then(|(r, w)| w.set_nonblocking(true).map(|()| (r, w)))
                .map_err(|e| Error::io("exit_on_signal: cannot create the signal pipe", e))?;
            WRITE_FD.store(write.into_raw_fd(), Ordering::Relaxed);
            for sig in SIGNALS {
                // Ignored (nohup, `&` in a script) or handled by the host: left as it is.
                if current_action(sig) != libc::SIG_DFL {
                    continue;
                }
                // SAFETY: a plain handler that only calls write(2), with an empty mask.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                    action.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut action.sa_mask);
                    libc::sigaction(sig, &action, std::ptr::null_mut());
                }
            }
            std::thread::Builder::new()
                .name("modelwatch-signal".into())
                .spawn(move || {
                    let mut byte = [0u8];
                    while read.read_exact(&mut byte).is_ok() {
                        on_delivery(libc::c_int::from(byte[0]), &control, timeout);
                    }
                })
                .map_err(|e| Error::io("exit_on_signal: cannot start the signal thread", e))?;
            Ok(())
        }

        fn on_delivery(sig: libc::c_int, control: &SyncSender<Control>, timeout: Duration) {
            let ours = current_action(sig) == on_signal as *const () as libc::sighandler_t;
            let (reply, rx) = oneshot::channel();
            let request = Request {
                reply,
                deadline: Agent::worker_deadline(timeout),
            };
            let sent = control.try_send(if ours {
                Control::Shutdown(request)
            } else {
                Control::Flush(request)
            });
            if sent.is_ok() {
                let _ = rx.recv_until(Instant::now() + timeout);
            }
            if ours {
                log::info!(target: "modelwatch::signal", "modelwatch: signal {sig}: shut down; ending the process as the signal does");
                // SAFETY: restores the default action and raises the signal again: the
                // process ends as it would have without modelwatch.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = libc::SIG_DFL;
                    libc::sigemptyset(&mut action.sa_mask);
                    libc::sigaction(sig, &action, std::ptr::null_mut());
                    libc::raise(sig);
                }
            } else {
                log::info!(target: "modelwatch::signal", "modelwatch: signal {sig}: flushed; the host's own handler decides what comes next");
            }
        }
    }

    #[cfg(not(all(unix, feature = "signals")))]
    pub(super) fn install(
        _: std::sync::mpsc::SyncSender<super::worker::Control>,
        _: std::time::Duration,
    ) -> Result<(), crate::error::Error> {
        use crate::error::{Error, ErrorKind};
        Err(Error::new(
            ErrorKind::InvalidConfig,
            if cfg!(unix) {
                "exit_on_signal needs modelwatch's `signals` feature"
            } else {
                "exit_on_signal works on Unix only: call Agent::flush from your own handler"
            },
        ))
    }
}
