//! Delivery to a collector over HTTP: a backlog bounded in bytes, retries with exponential
//! backoff and jitter, `Retry-After`, and counted drops. Runs on the worker thread only.

use crate::core::summary::DropCounts;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// First retry delay; doubles per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts, also the cap on a collector's `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One encoded summary waiting for the collector.
struct Pending {
    body: Vec<u8>,
    /// The drop counts this summary carries, returned to the next summary if it is dropped.
    carried: DropCounts,
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

pub(crate) struct HttpDelivery {
    agent: ureq::Agent,
    url: String,
    authorization: String,
    request_timeout: Duration,
    upload_interval: Duration,
    max_backlog_bytes: usize,
    backlog: VecDeque<Pending>,
    backlog_bytes: usize,
    failures: u32,
    next_attempt: Instant,
    last_upload: Option<Instant>,
    failing: bool,
    warned_rejected: bool,
    jitter: std::collections::hash_map::DefaultHasher,
    pub(crate) counters: HttpCounters,
    /// Drops not yet reported in a summary.
    pub(crate) unreported: DropCounts,
}

impl HttpDelivery {
    pub(crate) fn new(
        endpoint: &str,
        api_key: &str,
        request_timeout: Duration,
        upload_interval: Duration,
        max_backlog_bytes: usize,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(request_timeout))
            .user_agent(concat!("modelwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpDelivery {
            agent,
            url: format!("{}/v1/windows", endpoint.trim_end_matches('/')),
            authorization: format!("Bearer {api_key}"),
            request_timeout,
            upload_interval,
            max_backlog_bytes,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            failures: 0,
            next_attempt: Instant::now(),
            last_upload: None,
            failing: false,
            warned_rejected: false,
            jitter: std::collections::hash_map::RandomState::new().build_hasher(),
            counters: HttpCounters::default(),
            unreported: DropCounts::default(),
        }
    }

    /// Queues an encoded summary; past the byte bound the oldest are dropped and counted.
    pub(crate) fn enqueue(&mut self, body: Vec<u8>, carried: DropCounts) {
        self.backlog_bytes += body.len();
        self.backlog.push_back(Pending { body, carried });
        while self.backlog_bytes > self.max_backlog_bytes {
            let Some(old) = self.backlog.pop_front() else {
                break;
            };
            self.backlog_bytes -= old.body.len();
            self.counters.dropped_backlog += 1;
            self.unreported.summaries_dropped_backlog += 1;
            self.unreported.add(&old.carried);
        }
        self.update_gauges();
    }

    /// When the worker should next wake up for delivery, if anything is waiting.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        let interval_end = self
            .last_upload
            .map_or(self.next_attempt, |t| t + self.upload_interval);
        (!self.backlog.is_empty()).then(|| self.next_attempt.max(interval_end))
    }

    /// On a tick: sends what is waiting if the upload interval and any backoff have passed.
    pub(crate) fn pump(&mut self) {
        let now = Instant::now();
        if self.wake_at().is_some_and(|at| at <= now) {
            self.send_until(now + self.request_timeout, false);
        }
    }

    /// Sends until the backlog is empty or `deadline` passes, waiting out backoffs when
    /// `wait` (flush and shutdown). Returns whether every summary was delivered: the
    /// backlog is empty and the collector refused none meanwhile.
    pub(crate) fn send_until(&mut self, deadline: Instant, wait: bool) -> bool {
        self.last_upload = Some(Instant::now());
        let mut refused = false;
        while !self.backlog.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now < self.next_attempt {
                if !wait {
                    break;
                }
                std::thread::sleep(self.next_attempt.min(deadline) - now);
                continue;
            }
            let timeout = self.request_timeout.min(deadline - now);
            match self.attempt(timeout) {
                Attempt::Delivered => {
                    let sent = self.backlog.pop_front().expect("not empty");
                    self.backlog_bytes -= sent.body.len();
                    self.counters.delivered += 1;
                    self.failures = 0;
                    if self.failing {
                        self.failing = false;
                        log::info!("modelwatch: delivery to {} recovered", self.url);
                    }
                }
                Attempt::Rejected(status) => {
                    refused = true;
                    let dropped = self.backlog.pop_front().expect("not empty");
                    self.backlog_bytes -= dropped.body.len();
                    *self.counters.rejected.entry(status).or_default() += 1;
                    self.unreported.summaries_rejected += 1;
                    self.unreported.add(&dropped.carried);
                    if !self.warned_rejected {
                        self.warned_rejected = true;
                        let hint = if status == 401 || status == 403 {
                            " (the API key is probably wrong: check Config::new's key)"
                        } else {
                            ""
                        };
                        log::warn!(
                            "modelwatch: the collector at {} refused a summary with status {status}{hint}; \
                             refused summaries are dropped and counted",
                            self.url
                        );
                    }
                }
                Attempt::Retry { why, retry_after } => {
                    self.failures = self.failures.saturating_add(1);
                    self.counters.retries += 1;
                    let wait = retry_after
                        .unwrap_or_else(|| self.backoff())
                        .min(MAX_BACKOFF);
                    self.next_attempt = Instant::now() + wait;
                    if !self.failing {
                        self.failing = true;
                        log::warn!(
                            "modelwatch: delivery to {} failing ({why}); retrying with backoff, \
                             {} summaries waiting",
                            self.url,
                            self.backlog.len()
                        );
                    }
                }
            }
        }
        self.update_gauges();
        self.backlog.is_empty() && !refused
    }

    /// Exponential backoff with full jitter: uniform in [d/2, d], d = 500 ms × 2^(failures-1).
    fn backoff(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let d = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
        self.jitter.write_u32(self.failures);
        let unit = (self.jitter.finish() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + unit / 2.0)
    }

    fn attempt(&mut self, timeout: Duration) -> Attempt {
        let body = &self.backlog.front().expect("not empty").body;
        let result = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-msgpack")
            .header("Authorization", &self.authorization)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(&body[..]);
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

    fn update_gauges(&mut self) {
        self.counters.backlog_len = self.backlog.len();
        self.counters.backlog_bytes = self.backlog_bytes;
    }
}
