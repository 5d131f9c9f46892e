//! `modelwatch collect`: receives `POST /v1/windows` as `docs/delivery.md` specifies and
//! stores every valid summary (in SQLite, or in PostgreSQL shared with other collectors)
//! before acknowledging it.
//!
//! Built to survive hostile traffic (`docs/cli.md`, "Limits"): hyper on a small tokio
//! runtime, so an idle or stalled connection costs a socket and a few KiB, not a thread;
//! a cap on connections (the excess is answered 503 and closed at once); header and body
//! read timeouts; the body limit checked before reading (declared length) and while
//! reading (chunked or lying clients); a budget of body bytes held at once; a cap on
//! summaries decoded at once; accept errors (EMFILE) survived with back-off; and a graceful
//! stop that finishes the requests in flight.

use crate::alerts::{AlertConfig, Alerter};
use crate::commit::{Arriving, GroupCommit};
use crate::db::Location;
use crate::keys::{Key, Keys};
use crate::metrics::{CollectorCounts, Metrics};
use crate::retention::Retention;
use crate::store::{Store, Stored};
use crate::watch::{Watch, WatchConfig};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use modelwatch::WindowSummary;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Summaries decoded and waiting for their commit, per decode permit: enough for a commit
/// to carry many (each commit takes every one waiting), few enough to bound their memory.
const DECODED_PER_PERMIT: usize = 16;

/// Bodies up to this size are decoded on the runtime's thread (~0.1 ms for the reference
/// workload's 6.5 KB window); larger ones on a blocking thread.
const DECODE_INLINE_BYTES: usize = 32 << 10;

/// Largest accepted body: the largest summary `WindowSummary::decode` accepts.
pub const MAX_BODY_BYTES: usize = modelwatch::MAX_SUMMARY_BYTES;

/// What a collector allows at once and how long it waits; `docs/cli.md` explains each.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at most (default 1024); more are answered 503 and closed.
    pub max_connections: usize,
    /// Time to receive a request's headers, also the idle time of a kept-alive
    /// connection (default 10 s).
    pub header_timeout: Duration,
    /// Time to receive a request's body once its headers are in (default 30 s).
    pub body_timeout: Duration,
    /// Summaries decoded at once (default: the number of cores); 16 times as many may be
    /// decoded and waiting for their commit.
    pub max_inflight_decodes: usize,
    /// Bytes of request bodies held in memory at once, over all connections (default
    /// 256 MiB, 16 bodies of the largest size); requests wait for room, up to the body
    /// timeout.
    pub max_body_memory: usize,
    /// Threads of the async runtime that run the connections (default 2).
    pub threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_inflight_decodes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_body_memory: 256 << 20,
            threads: 2,
        }
    }
}

/// Counters of what the collector did, printed at exit.
#[derive(Default, Debug)]
pub struct Counters {
    /// Summaries stored.
    pub stored: AtomicU64,
    /// Summaries already stored under the same key (retries), acknowledged again.
    pub duplicates: AtomicU64,
    /// Requests without a valid key (401).
    pub unauthorized: AtomicU64,
    /// Valid key, but a deployment the key may not write (403).
    pub forbidden: AtomicU64,
    /// Bodies over [`MAX_BODY_BYTES`] (413).
    pub too_large: AtomicU64,
    /// Bodies that are not a valid summary (400).
    pub invalid: AtomicU64,
    /// Bodies not received within the body timeout (503, connection closed).
    pub body_timeouts: AtomicU64,
    /// Store errors (503: the agent retries).
    pub store_errors: AtomicU64,
    /// Connections answered 503 and closed because `max_connections` were open.
    pub over_capacity: AtomicU64,
    /// Failed accepts (for example EMFILE, out of file descriptors), each followed by a
    /// back-off.
    pub accept_errors: AtomicU64,
}

/// A collector bound to its address; [`serve`](Collector::serve) runs it.
pub struct Collector {
    listener: Mutex<Option<std::net::TcpListener>>,
    addr: std::net::SocketAddr,
    store: Arc<Mutex<Store>>,
    keys: Keys,
    limits: Limits,
    /// What the collector did so far.
    pub counters: Counters,
    stopping: watch::Sender<bool>,
    alerter: Arc<Alerter>,
    metrics: Arc<Metrics>,
    /// Every deployment's windows through the incident engine (`watch.rs`).
    watch: Arc<Mutex<Watch>>,
    /// Summaries arriving together share a transaction (`commit.rs`).
    commit: GroupCommit,
    /// Summaries decoded (or decoding) and not yet stored, at most
    /// [`DECODED_PER_PERMIT`] × `max_inflight_decodes`: what bounds decoded memory.
    decoded: Arc<Semaphore>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What answers a connection over the connection cap: written without waiting (it fits any
/// socket buffer), then the connection is closed. 503 makes an agent retry.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\nRetry-After: 1\r\nConnection: close\r\n\r\nover capacity\n";

/// The first back-off after a failed accept, and the longest.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

impl Collector {
    /// Binds `listen` and opens the store; the collector accepts `keys` within `limits`,
    /// watches every deployment as `watch` says and sends incident events to `alerts`'
    /// destinations.
    pub fn bind(
        listen: &str,
        store: impl Into<Location>,
        keys: Keys,
        limits: Limits,
        watch: WatchConfig,
        alerts: AlertConfig,
    ) -> Result<Arc<Collector>, String> {
        if limits.max_connections == 0
            || limits.max_inflight_decodes == 0
            || limits.threads == 0
            || limits.max_body_memory < MAX_BODY_BYTES
        {
            return Err(format!(
                "limits must be at least 1 (and the body memory at least {MAX_BODY_BYTES} bytes, one body): {limits:?}"
            ));
        }
        let location = &store.into();
        let store = Store::open(location)
            .map_err(|e| format!("cannot open the store {}: {e}", location.display()))?;
        let alerter = Alerter::start(location, alerts)?;
        let watch = Watch::open(location, watch)
            .map_err(|e| format!("cannot open the store {}: {e}", location.display()))?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let store = Arc::new(Mutex::new(store));
        let alerter = Arc::new(alerter);
        let metrics = Arc::new(Metrics::new());
        let watch = Arc::new(Mutex::new(watch));
        let after_commit = {
            let (alerter, metrics, watch) = (
                Arc::clone(&alerter),
                Arc::clone(&metrics),
                Arc::clone(&watch),
            );
            Box::new(move |a: &Arriving| observe(&watch, &alerter, &metrics, a))
        };
        let decoded = Arc::new(Semaphore::new(
            limits
                .max_inflight_decodes
                .saturating_mul(DECODED_PER_PERMIT)
                .min(Semaphore::MAX_PERMITS),
        ));
        let commit = GroupCommit::start(Arc::clone(&store), after_commit)
            .map_err(|e| format!("cannot start the commit thread: {e}"))?;
        Ok(Arc::new(Collector {
            listener: Mutex::new(Some(listener)),
            addr,
            store,
            keys,
            limits,
            counters: Counters::default(),
            stopping: tokio::sync::watch::channel(false).0,
            alerter,
            metrics,
            watch,
            commit,
            decoded,
        }))
    }

    /// Where incident events go: feed it each [`modelwatch::IncidentEvent`].
    pub fn alerter(&self) -> &Alerter {
        &self.alerter
    }

    /// What `GET /metrics` exports.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The counters as `/metrics` exports them.
    fn counts(&self) -> CollectorCounts {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let a = self.alerter.stats();
        CollectorCounts {
            accepted: n(&c.stored),
            duplicates: n(&c.duplicates),
            rejected: vec![
                ("unauthorized", n(&c.unauthorized)),
                ("forbidden", n(&c.forbidden)),
                ("too_large", n(&c.too_large)),
                ("invalid", n(&c.invalid)),
                ("body_timeout", n(&c.body_timeouts)),
                ("store_error", n(&c.store_errors)),
                ("over_capacity", n(&c.over_capacity)),
            ],
            alerts: vec![
                ("queued", n(&a.queued)),
                ("duplicate", n(&a.duplicates)),
                ("dropped", n(&a.dropped)),
                ("delivered", n(&a.delivered)),
                ("refused", n(&a.refused)),
                ("retried", n(&a.retries)),
                ("error", n(&a.errors)),
            ],
            commits: self.commit.commits().0,
        }
    }

    /// Evaluates the windows that came due without a new summary (the last ones before a
    /// quiet spell) every few seconds, until the collector stops.
    async fn tick_loop(self: Arc<Self>) {
        let mut stopping = self.stopping.subscribe();
        loop {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let c = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || c.tick(now_ms())).await;
        }
    }

    /// Evaluates every deployment's windows stored since the last tick and due by `now_ms`
    /// if this collector holds the lease, and delivers alerts only then (what the
    /// collector does on its own every 5 seconds; callable by tests with any clock).
    pub fn tick(&self, now_ms: i64) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = watch.tick(now_ms, &mut alert_to(&self.alerter)) {
            eprintln!("modelwatch collect: cannot evaluate: {e}");
        }
        self.alerter.lead(watch.leading());
        let deployments: Vec<String> = watch.deployments().map(str::to_owned).collect();
        for d in deployments {
            if let Some(m) = watch.monitor(&d) {
                self.metrics.incidents(&d, m.incidents());
                self.metrics.baseline(&d, m.baseline());
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Serves until [`stop`](Self::stop); requests being handled when it is called are
    /// finished (their summaries stored and acknowledged) first, for up to the header and
    /// body timeouts. Returns at once if it served already.
    pub fn serve(self: &Arc<Self>) -> Result<(), String> {
        let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Ok(());
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.limits.threads)
            // Large bodies are decoded on blocking threads, one per decode permit (the
            // store is written by the commit thread); the bound makes the thread count
            // independent of the traffic.
            .max_blocking_threads(self.limits.max_inflight_decodes)
            .thread_name("modelwatch-collect")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        runtime.block_on(Arc::clone(self).accept_loop(listener))
    }

    /// Stops accepting; `serve` returns once in-flight requests are answered. Safe to call
    /// from any thread (a signal handler's), before or during `serve`.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    async fn accept_loop(self: Arc<Self>, listener: std::net::TcpListener) -> Result<(), String> {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot listen: {e}"))?;
        tokio::spawn(Arc::clone(&self).tick_loop());
        let mut stopping = self.stopping.subscribe();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let connections = Arc::new(Semaphore::new(self.limits.max_connections));
        let decodes = Arc::new(Semaphore::new(
            self.limits.max_inflight_decodes.min(Semaphore::MAX_PERMITS),
        ));
        let body_memory = Arc::new(Semaphore::new(
            self.limits.max_body_memory.min(Semaphore::MAX_PERMITS),
        ));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(64 << 10);
        let mut backoff = ACCEPT_BACKOFF.0;
        loop {
            let accepted = tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                r = listener.accept() => r,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    stream
                }
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: the pending connection stays queued and the next
                    // accept fails the same way at once; wait for descriptors to free up.
                    self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("modelwatch collect: accept failed: {e}; retrying in {backoff:?}");
                    tokio::select! {
                        _ = stopping.wait_for(|s| *s) => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                self.counters.over_capacity.fetch_add(1, Ordering::Relaxed);
                let _ = stream.try_write(OVER_CAPACITY);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let me = Arc::clone(&self);
            let (decodes, body_memory) = (Arc::clone(&decodes), Arc::clone(&body_memory));
            let service = hyper::service::service_fn(move |request| {
                let (me, decodes, body_memory) = (
                    Arc::clone(&me),
                    Arc::clone(&decodes),
                    Arc::clone(&body_memory),
                );
                async move {
                    Ok::<_, std::convert::Infallible>(
                        me.handle(request, &decodes, &body_memory).await,
                    )
                }
            });
            let connection = graceful
                .watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
            tokio::spawn(async move {
                let _ = connection.await;
                drop(permit);
            });
        }
        drop(listener);
        // In-flight requests finish; idle connections close. A request whose body is still
        // coming gets at most the body timeout, so this wait is bounded.
        let grace = self.limits.header_timeout + self.limits.body_timeout + Duration::from_secs(5);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!("modelwatch collect: connections still open after {grace:?}; closing them");
        }
        Ok(())
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        decodes: &Arc<Semaphore>,
        body_memory: &Arc<Semaphore>,
    ) -> Response<Full<Bytes>> {
        let (status, body) = match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => (StatusCode::OK, "ok".to_owned()),
            (&Method::GET, "/metrics") => {
                let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
                let format = crate::metrics::Format::negotiate(accept);
                let (content_type, body) = self.metrics.exposition(format, self.counts());
                let mut response = Response::new(Full::new(Bytes::from(body)));
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                headers.insert(VARY, HeaderValue::from_static("accept"));
                return response;
            }
            (&Method::POST, "/v1/windows") => self.receive(request, decodes, body_memory).await,
            (_, "/v1/windows" | "/healthz" | "/metrics") => {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
            }
            _ => (StatusCode::NOT_FOUND, "not found".into()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A timed-out body may still be arriving: do not read it as the next request.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// The key a request carries, if it is one of ours.
    fn authenticate(&self, request: &Request<Incoming>) -> Option<&Key> {
        let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
        self.keys.authenticate(value.strip_prefix("Bearer ")?)
    }

    async fn receive(
        &self,
        request: Request<Incoming>,
        decodes: &Arc<Semaphore>,
        body_memory: &Arc<Semaphore>,
    ) -> (StatusCode, String) {
        let c = &self.counters;
        let count = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
        // Nothing is read before the key is checked; an unread body is never drained into
        // memory (hyper reads at most what is buffered, then closes the connection).
        let Some(key) = self.authenticate(&request).cloned() else {
            count(&c.unauthorized);
            return (StatusCode::UNAUTHORIZED, "missing or wrong API key".into());
        };
        let too_large = || {
            count(&c.too_large);
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {MAX_BODY_BYTES} bytes"),
            )
        };
        let declared = match request.headers().get(CONTENT_LENGTH) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n > MAX_BODY_BYTES as u64 => return too_large(),
                Some(n) => Some(n as usize),
                None => {
                    count(&c.invalid);
                    return (StatusCode::BAD_REQUEST, "bad Content-Length".into());
                }
            },
        };
        let timed_out = || {
            count(&c.body_timeouts);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("body not received within {:?}", self.limits.body_timeout),
            )
        };
        let reading = async {
            // Room for the body before reading it: the declared size, or the largest for a
            // chunked body.
            let room = declared.unwrap_or(MAX_BODY_BYTES).max(1) as u32;
            let permit = Arc::clone(body_memory)
                .acquire_many_owned(room)
                .await
                .expect("the semaphore is never closed");
            let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
                .collect()
                .await;
            (permit, body)
        };
        let (memory_permit, body) =
            match tokio::time::timeout(self.limits.body_timeout, reading).await {
                Err(_) => return timed_out(),
                Ok((_, Err(e))) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    return too_large()
                }
                Ok((_, Err(e))) => {
                    count(&c.invalid);
                    return (
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the body: {e}"),
                    );
                }
                Ok((permit, Ok(body))) => (permit, body.to_bytes()),
            };
        let body_len = body.len();
        let decoded_permit = Arc::clone(&self.decoded)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let decode_permit = Arc::clone(decodes)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        // Decoding is CPU work, at most `max_inflight_decodes` at once: a body small enough
        // to decode in a fraction of a millisecond is decoded here, on the runtime's
        // thread (two hand-offs to a blocking thread cost more than it); a larger one off
        // the runtime's threads. The body's memory is held until the summary is stored.
        let decode = move || {
            let summary = WindowSummary::decode(&body).map_err(Rejected::Invalid)?;
            drop(decode_permit);
            if !key.may_write(summary.deployment()) {
                return Err(Rejected::Forbidden(summary.deployment().to_owned()));
            }
            Ok(Arriving {
                key_id: key.id().to_owned(),
                summary: Arc::new(summary),
                body,
                received_ms: now_ms(),
                // Held until the commit thread is done with it, even if this request's
                // connection closes meanwhile: the bounds hold for what is queued.
                places: vec![memory_permit, decoded_permit],
            })
        };
        let decoded = if body_len <= DECODE_INLINE_BYTES {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
                .map_err(|_| "decoding panicked".to_owned())
        } else {
            tokio::task::spawn_blocking(decode)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = match decoded {
            Ok(Ok(arriving)) => Ok(self.commit.store(arriving).await.map_err(Rejected::Store)),
            Ok(Err(rejected)) => Ok(Err(rejected)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Ok(Stored::New)) => {
                count(&c.stored);
                (StatusCode::OK, "stored".into())
            }
            Ok(Ok(Stored::Duplicate)) => {
                count(&c.duplicates);
                (StatusCode::OK, "duplicate".into())
            }
            Ok(Err(Rejected::Invalid(e))) => {
                count(&c.invalid);
                (StatusCode::BAD_REQUEST, e.to_string())
            }
            Ok(Err(Rejected::Forbidden(deployment))) => {
                count(&c.forbidden);
                (
                    StatusCode::FORBIDDEN,
                    format!("this key may not write the deployment {deployment:?}"),
                )
            }
            Ok(Err(Rejected::Store(e))) => {
                // Not acknowledged: the agent retries.
                count(&c.store_errors);
                (StatusCode::SERVICE_UNAVAILABLE, format!("store error: {e}"))
            }
            Err(e) => {
                // A panic while decoding: answered as a store-side failure, retried.
                count(&c.store_errors);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("internal error: {e}"),
                )
            }
        }
    }
}

/// Why a received body was not stored.
enum Rejected {
    Invalid(modelwatch::SummaryError),
    Forbidden(String),
    Store(String),
}

/// What `collect` does with what it stores: the watch, the alerts, and whether `/metrics`
/// carries the distributions.
#[derive(Clone, Debug, Default)]
pub struct Monitoring {
    /// The baseline and timing of every deployment's watch.
    pub watch: WatchConfig,
    /// Where incidents are sent.
    pub alerts: AlertConfig,
    /// Export features' and outputs' distributions as native histograms (default false).
    pub metrics_histograms: bool,
}

/// How often the collector evaluates windows that came due without a new summary.
const TICK: Duration = Duration::from_secs(5);

/// What the collector does with a summary once it is stored new, before acknowledging it
/// (run by the committing thread, `commit.rs`): the leader's watch evaluates it, and
/// `/metrics` takes its series. A collector that does not lead leaves the evaluation to
/// the leader's next tick (`watch.rs`). The summary is stored and acknowledged whatever
/// the watch says.
fn observe(watch: &Mutex<Watch>, alerter: &Alerter, metrics: &Metrics, a: &Arriving) {
    let mut watch = watch.lock().unwrap_or_else(|p| p.into_inner());
    if watch.leading() {
        let taken = watch.accept(&a.key_id, &a.summary, now_ms(), &mut alert_to(alerter));
        if let Err(e) = taken {
            eprintln!("modelwatch collect: cannot evaluate: {e}");
        }
    }
    let monitor = watch.monitor(a.summary.deployment());
    metrics.observe(&a.summary, monitor.and_then(|m| m.baseline()));
    if let Some(m) = monitor {
        metrics.incidents(a.summary.deployment(), m.incidents());
    }
}

/// Hands incident events to the alerter's durable outbox; an event it could not store
/// stops the evaluation before its state is saved, so it comes again after a restart.
fn alert_to(
    alerter: &Alerter,
) -> impl FnMut(&modelwatch::IncidentEvent) -> Result<(), String> + '_ {
    move |e| match alerter.notify(e) {
        crate::alerts::Queued::Failed => Err("the alert outbox cannot store an event".into()),
        _ => Ok(()),
    }
}

/// How long a stopping collector waits for alerts still to deliver.
const ALERT_DRAIN: Duration = Duration::from_secs(5);

/// How often the collector merges the windows it stored into their rollups, and how often
/// it prunes the store.
const ROLL_UP_EVERY: Duration = Duration::from_secs(60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Collector {
    /// Merges the windows stored since the last call into their rollups (off the path
    /// that acknowledges summaries: each rollup is encoded once a minute, not per window).
    pub fn roll_up(&self) -> Result<(), String> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .roll_up_pending()
            .map(drop)
            .map_err(|e| format!("cannot roll up the store: {e}"))
    }

    /// Deletes what `retention` no longer keeps; logs what was deleted.
    pub fn prune(&self, retention: &Retention) -> Result<(), String> {
        let cutoffs = retention.cutoffs(now_ms())?;
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let deleted = store
            .prune(&cutoffs)
            .map_err(|e| format!("cannot prune the store: {e}"))?;
        if deleted > 0 {
            eprintln!("modelwatch collect: pruned {deleted} row(s) past the retention {retention}");
        }
        Ok(())
    }
}

/// Runs `collect` until SIGINT or SIGTERM; returns the exit status. The store is rolled up
/// and then pruned to `retention` at start, rolled up every minute and pruned every hour
/// while it runs, and rolled up once more at the end. Every deployment is watched as
/// `watch` says, and incidents go to `alerts`' destinations.
pub fn run(
    listen: &str,
    store: &Location,
    keys: Keys,
    limits: Limits,
    retention: &Retention,
    monitoring: Monitoring,
) -> i32 {
    let Monitoring {
        watch,
        alerts,
        metrics_histograms,
    } = monitoring;
    let collector = match Collector::bind(listen, store, keys, limits, watch, alerts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("modelwatch collect: {e}");
            return 2;
        }
    };
    collector.metrics().set_histograms(metrics_histograms);
    // Rolled up first: a window pruned before its rollup has it would be lost to it.
    if let Err(e) = collector
        .roll_up()
        .and_then(|()| collector.prune(retention))
    {
        eprintln!("modelwatch collect: {e}");
        return 2;
    }
    let (stop_upkeep, stopped) = std::sync::mpsc::channel::<()>();
    let upkeep = std::thread::spawn({
        let (collector, retention) = (Arc::clone(&collector), retention.clone());
        move || {
            let mut pruned = std::time::Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(ROLL_UP_EVERY)
            {
                // Not fatal: the windows wait for the next round.
                let mut done = collector.roll_up();
                if done.is_ok() && pruned.elapsed() >= PRUNE_EVERY {
                    pruned = std::time::Instant::now();
                    done = collector.prune(&retention);
                }
                if let Err(e) = done {
                    eprintln!("modelwatch collect: {e}");
                }
            }
        }
    });
    let stopper = Arc::clone(&collector);
    if let Err(e) = ctrlc::set_handler(move || stopper.stop()) {
        eprintln!("modelwatch collect: cannot handle signals: {e}");
        return 2;
    }
    eprintln!(
        "modelwatch collect: listening on http://{} (store {}, retention {retention})",
        collector.addr(),
        store.display()
    );
    let served = collector.serve();
    drop(stop_upkeep);
    let _ = upkeep.join();
    if let Err(e) = served {
        eprintln!("modelwatch collect: {e}");
        return 2;
    }
    if let Err(e) = collector.roll_up() {
        // The windows are stored and noted: the next start or report rolls them up.
        eprintln!("modelwatch collect: {e}");
    }
    let c = &collector.counters;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "modelwatch collect: stopped; stored {}, duplicates {}, unauthorized {}, forbidden {}, too large {}, invalid {}, body timeouts {}, store errors {}, over capacity {}, accept errors {}",
        n(&c.stored),
        n(&c.duplicates),
        n(&c.unauthorized),
        n(&c.forbidden),
        n(&c.too_large),
        n(&c.invalid),
        n(&c.body_timeouts),
        n(&c.store_errors),
        n(&c.over_capacity),
        n(&c.accept_errors),
    );
    // Incidents closed just before the stop are worth a few seconds; the rest waits in the
    // outbox for the next start.
    collector.alerter.drain(ALERT_DRAIN);
    let a = collector.alerter.stats();
    if collector.alerter.pending() + n(&a.queued) > 0 {
        eprintln!(
            "modelwatch collect: alerts: queued {}, delivered {}, refused {}, dropped {}, still to deliver {} (sent on the next start)",
            n(&a.queued),
            n(&a.delivered),
            n(&a.refused),
            n(&a.dropped),
            collector.alerter.pending(),
        );
    }
    0
}
