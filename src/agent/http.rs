//! Delivery to a collector over HTTP, on its own thread ("modelwatch-http"), so that a
//! slow, silent or failing collector never holds up sealing. The sealer puts encoded
//! summaries in the [`Outbox`] (bounded in bytes, oldest dropped and counted, mirrored in
//! the spool when a data folder is set); the sender takes them out in order, with
//! exponential back-off, `Retry-After`, and the upload interval pacing normal running.
//! A flush or shutdown hands the sender a [`Drain`]: then every summary it covers is tried
//! at once, whatever the back-off, again and again until all are settled or the deadline.

use super::backoff::{Backoff, MAX_BACKOFF};
use super::oneshot;
use super::spool::{Spool, Spooled};
use super::AgentStats;
use crate::core::summary::DropCounts;
use crate::error::Undelivered;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pause between two passes over the summaries of a drain that all failed: short, as
/// the deadline, not the back-off, bounds a drain.
const DRAIN_PAUSE: Duration = Duration::from_millis(200);

/// One encoded summary waiting for the collector.
struct Pending {
    /// Increasing in the order summaries were sealed: a drain covers ids up to its own.
    id: u64,
    body: Arc<[u8]>,
    /// The drop counts this summary carries, returned to the next summary if it is dropped.
    carried: DropCounts,
    /// Its copy in the spool, removed once the summary is settled.
    spooled: Option<PathBuf>,
}

/// How one attempt ended.
enum Attempt {
    Delivered,
    /// I/O error, timeout, 5xx or 429: try again later (not before `retry_after`, if given).
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Another 4xx: the collector will never take it.
    Rejected(u16),
}

/// Delivery counters, read by `Agent::stats`.
#[derive(Debug, Default, Clone)]
pub(crate) struct HttpCounters {
    pub(crate) delivered: u64,
    pub(crate) retries: u64,
    pub(crate) dropped_backlog: u64,
    pub(crate) rejected: BTreeMap<u16, u64>,
    pub(crate) backlog_len: usize,
    pub(crate) backlog_bytes: usize,
}

/// A flush or shutdown waiting on the sender.
pub(crate) struct Drain {
    /// Summaries with an id below this one must be settled (delivered, refused or dropped).
    pub(crate) upto: u64,
    pub(crate) deadline: Instant,
    /// Summaries local sinks had not taken when the sealer handed the drain over.
    pub(crate) waiting_local: u64,
    pub(crate) whole_run: bool,
    pub(crate) reply: oneshot::Sender<Undelivered>,
}

struct State {
    queue: VecDeque<Pending>,
    bytes: usize,
    next_id: u64,
    /// The summary being sent, which the bound must not drop from under the sender.
    in_flight: Option<u64>,
    counters: HttpCounters,
    /// Drops not yet reported in a summary.
    unreported: DropCounts,
    drains: Vec<Drain>,
    /// Shutdown: the sender ends once its drains are answered.
    closing: bool,
}

/// The queue between the sealer and the sender.
pub(crate) struct Outbox {
    state: Mutex<State>,
    wake: Condvar,
    max_bytes: usize,
}

impl Outbox {
    /// An outbox holding what earlier agents left in the spool (ids 0, 1, ... in that
    /// order, as the spool named them), up to the bound.
    pub(crate) fn new(max_bytes: usize, replayed: Vec<Spooled>) -> Outbox {
        let outbox = Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                next_id: 0,
                in_flight: None,
                counters: HttpCounters::default(),
                unreported: DropCounts::default(),
                drains: Vec::new(),
                closing: false,
            }),
            wake: Condvar::new(),
            max_bytes,
        };
        for s in replayed {
            outbox.push(s.body.into(), DropCounts::default(), Some(s.path));
        }
        outbox
    }

    /// The id the next summary will get.
    pub(crate) fn next_id(&self) -> u64 {
        self.state.lock().next_id
    }

    /// Queues an encoded summary; past the byte bound the oldest are dropped and counted.
    pub(crate) fn push(&self, body: Arc<[u8]>, carried: DropCounts, spooled: Option<PathBuf>) {
        let mut st = self.state.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.bytes += body.len();
        st.queue.push_back(Pending {
            id,
            body,
            carried,
            spooled,
        });
        while st.bytes > self.max_bytes {
            let in_flight = st.in_flight;
            let Some(i) = st.queue.iter().position(|p| Some(p.id) != in_flight) else {
                break;
            };
            let old = st.queue.remove(i).expect("found");
            st.bytes -= old.body.len();
            st.counters.dropped_backlog += 1;
            st.unreported.summaries_dropped_backlog += 1;
            st.unreported.add(&old.carried);
            remove_spooled(&old);
        }
        update_gauges(&mut st);
        drop(st);
        self.wake.notify_one();
    }

    /// Drop counts not yet reported, for the next summary sealed.
    pub(crate) fn take_unreported(&self) -> DropCounts {
        std::mem::take(&mut self.state.lock().unreported)
    }

    pub(crate) fn counters(&self) -> HttpCounters {
        self.state.lock().counters.clone()
    }

    /// Stops the sender without a drain (the agent could not start).
    pub(crate) fn close(&self) {
        self.state.lock().closing = true;
        self.wake.notify_one();
    }

    /// Hands a flush or shutdown to the sender; with `close`, the sender stops after it.
    pub(crate) fn drain(&self, drain: Drain, close: bool) {
        let mut st = self.state.lock();
        st.drains.push(drain);
        st.closing |= close;
        drop(st);
        self.wake.notify_one();
    }
}

fn update_gauges(st: &mut State) {
    st.counters.backlog_len = st.queue.len();
    st.counters.backlog_bytes = st.bytes;
}

fn remove_spooled(p: &Pending) {
    if let Some(path) = &p.spooled {
        let _ = std::fs::remove_file(path);
    }
}

pub(crate) struct Sender {
    outbox: Arc<Outbox>,
    stats: Arc<AgentStats>,
    agent: ureq::Agent,
    /// The collectors, in order of preference.
    targets: Vec<Target>,
    authorization: String,
    request_timeout: Duration,
    upload_interval: Duration,
    /// When any collector may be tried again: the earliest end of their back-offs.
    next_attempt: Instant,
    next_upload: Instant,
    warned_rejected: bool,
}

/// One collector and its health.
struct Target {
    url: String,
    backoff: Backoff,
    /// Set aside after a failure until then.
    ready_at: Instant,
    failing: bool,
}

impl Sender {
    pub(crate) fn new(
        outbox: Arc<Outbox>,
        stats: Arc<AgentStats>,
        endpoints: &[String],
        api_key: &str,
        request_timeout: Duration,
        upload_interval: Duration,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(request_timeout))
            .user_agent(concat!("modelwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let now = Instant::now();
        Sender {
            outbox,
            stats,
            agent,
            targets: endpoints
                .iter()
                .map(|e| Target {
                    url: format!("{}/v1/windows", e.trim_end_matches('/')),
                    backoff: Backoff::new(),
                    ready_at: now,
                    failing: false,
                })
                .collect(),
            authorization: format!("Bearer {api_key}"),
            request_timeout,
            upload_interval,
            next_attempt: now,
            next_upload: now,
            warned_rejected: false,
        }
    }

    pub(crate) fn run(mut self) {
        let outbox = Arc::clone(&self.outbox);
        let mut st = outbox.state.lock();
        // Ids tried in the current pass of a drain: each once before any is tried again.
        let mut tried_upto: Option<u64> = None;
        loop {
            self.answer_drains(&mut st);
            let now = Instant::now();
            if let Some(upto) = st.drains.iter().map(|d| d.upto).max() {
                let deadline = st.drains.iter().map(|d| d.deadline).min().expect("a drain");
                let next = st
                    .queue
                    .iter()
                    .find(|p| p.id < upto && tried_upto.is_none_or(|t| p.id > t))
                    .map(|p| (p.id, Arc::clone(&p.body)));
                match next {
                    Some((id, body)) => {
                        tried_upto = Some(id);
                        self.send(&mut st, id, body, Some(deadline));
                    }
                    None => {
                        // A pass ended with summaries left: pause briefly, then go again.
                        tried_upto = None;
                        let _ = outbox
                            .wake
                            .wait_until(&mut st, (now + DRAIN_PAUSE).min(deadline));
                    }
                }
                continue;
            }
            tried_upto = None;
            if st.closing {
                return;
            }
            let due = self.next_attempt.max(self.next_upload);
            match st.queue.front() {
                Some(p) if now >= due => {
                    let (id, body) = (p.id, Arc::clone(&p.body));
                    self.send(&mut st, id, body, None);
                    if st.queue.front().is_none_or(|p| p.id == id) {
                        // The batch is done (sent, or stopped by failures and their back-off).
                        self.next_upload = Instant::now() + self.upload_interval;
                    }
                }
                Some(_) => {
                    let _ = outbox.wake.wait_until(&mut st, due);
                }
                None => outbox.wake.wait(&mut st),
            }
        }
    }

    /// Answers the drains that are settled or past their deadline.
    fn answer_drains(&self, st: &mut MutexGuard<'_, State>) {
        let now = Instant::now();
        let mut i = 0;
        while i < st.drains.len() {
            let d = &st.drains[i];
            let waiting = st.queue.iter().filter(|p| p.id < d.upto).count() as u64;
            if waiting == 0 || now >= d.deadline {
                let d = st.drains.swap_remove(i);
                let undelivered = self.stats.undelivered(
                    Undelivered {
                        waiting_http: waiting,
                        waiting_local: d.waiting_local,
                        ..Undelivered::default()
                    },
                    &st.counters,
                    d.whole_run,
                );
                d.reply.send(undelivered);
            } else {
                i += 1;
            }
        }
    }

    /// Tries the summary `id` on the first collector that is not set aside, then, while
    /// collectors fail, on the next ones (each once); the lock is released meanwhile. In
    /// a drain (`ignore_backoff`) every collector is tried whatever its back-off.
    fn send(
        &mut self,
        st: &mut MutexGuard<'_, State>,
        id: u64,
        body: Arc<[u8]>,
        deadline: Option<Instant>,
    ) {
        for t in 0..self.targets.len() {
            let now = Instant::now();
            if deadline.is_none() && self.targets[t].ready_at > now {
                continue;
            }
            if deadline.is_some_and(|d| now >= d) && t > 0 {
                break;
            }
            if self.send_to(st, t, id, &body, deadline) {
                break;
            }
        }
        self.next_attempt = self
            .targets
            .iter()
            .map(|t| t.ready_at)
            .min()
            .unwrap_or_else(Instant::now);
        update_gauges(st);
    }

    /// One attempt at the summary `id` on collector `t`; whether it is settled (delivered
    /// or refused for good).
    fn send_to(
        &mut self,
        st: &mut MutexGuard<'_, State>,
        t: usize,
        id: u64,
        body: &[u8],
        deadline: Option<Instant>,
    ) -> bool {
        let left = deadline.map_or(self.request_timeout, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let timeout = self.request_timeout.min(left).max(Duration::from_millis(1));
        st.in_flight = Some(id);
        let attempt = MutexGuard::unlocked(st, || self.attempt(t, body, timeout));
        st.in_flight = None;
        let settled = |st: &mut State| -> Option<Pending> {
            let i = st.queue.iter().position(|p| p.id == id)?;
            let p = st.queue.remove(i).expect("found");
            st.bytes -= p.body.len();
            remove_spooled(&p);
            Some(p)
        };
        let others = self.targets.len() > 1;
        let target = &mut self.targets[t];
        match attempt {
            Attempt::Delivered => {
                settled(st);
                st.counters.delivered += 1;
                target.backoff.reset();
                target.ready_at = Instant::now();
                if target.failing {
                    target.failing = false;
                    log::info!(target: "modelwatch::http", "modelwatch: delivery to {} recovered", target.url);
                }
                true
            }
            Attempt::Rejected(status) => {
                if let Some(p) = settled(st) {
                    st.unreported.add(&p.carried);
                }
                *st.counters.rejected.entry(status).or_default() += 1;
                st.unreported.summaries_rejected += 1;
                if !self.warned_rejected {
                    self.warned_rejected = true;
                    let hint = if status == 401 || status == 403 {
                        " (the API key is probably wrong: check Config::new's key)"
                    } else {
                        ""
                    };
                    log::warn!(
                        target: "modelwatch::http",
                        "modelwatch: the collector at {} refused a summary with status {status}{hint}; \
                         refused summaries are dropped and counted",
                        target.url
                    );
                }
                true
            }
            Attempt::Retry { why, retry_after } => {
                st.counters.retries += 1;
                let wait = retry_after
                    .unwrap_or_else(|| target.backoff.fail())
                    .min(MAX_BACKOFF);
                target.ready_at = Instant::now() + wait;
                if !target.failing {
                    target.failing = true;
                    log::warn!(
                        target: "modelwatch::http",
                        "modelwatch: delivery to {} failing ({why}); retrying with back-off{}, \
                         {} summaries waiting",
                        target.url,
                        if others { ", the other collectors meanwhile" } else { "" },
                        st.queue.len()
                    );
                }
                false
            }
        }
    }

    fn attempt(&self, t: usize, body: &[u8], timeout: Duration) -> Attempt {
        let result = self
            .agent
            .post(&self.targets[t].url)
            .header("Content-Type", "application/x-msgpack")
            .header("Authorization", &self.authorization)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        match result {
            Err(e) => Attempt::Retry {
                why: e.to_string(),
                retry_after: None,
            },
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                // Read (a bounded amount of) the answer so the connection can be reused.
                let _ = response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_vec();
                match status {
                    200..=299 => Attempt::Delivered,
                    429 | 500..=599 => Attempt::Retry {
                        why: format!("status {status}"),
                        retry_after,
                    },
                    _ => Attempt::Rejected(status),
                }
            }
        }
    }
}

/// Spools a summary when a spool is set, then queues it.
pub(crate) fn enqueue(
    outbox: &Outbox,
    spool: Option<&mut Spool>,
    body: Arc<[u8]>,
    carried: DropCounts,
) {
    let spooled = spool.and_then(|s| s.write(outbox.next_id(), &body));
    outbox.push(body, carried, spooled);
}
