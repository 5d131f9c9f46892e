//! The background thread: seals finished windows, merges shards, encodes, delivers.

use super::http::HttpDelivery;
use super::session::{now_ms, SessionInner};
use super::sink::Sink;
use super::AgentStats;
use crate::core::summary::anonymity::Seal;
use crate::core::summary::{DropCounts, Header, WindowSummary};
use crate::core::window::{finish_summary, WindowAcc};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests to the worker; each carries where to answer and until when to try.
pub(crate) enum Control {
    /// Seal everything (current windows too, marked partial) and deliver until the
    /// deadline. Answers whether every summary was delivered.
    Flush(SyncSender<bool>, Instant),
    /// As `Flush`, then stop.
    Shutdown(SyncSender<bool>, Instant),
}

/// Windows without logging after which a session's window memory is released.
pub(crate) const IDLE_WINDOWS: i64 = 10;

pub(crate) struct Worker {
    pub(crate) sessions: Arc<Mutex<BTreeMap<String, Arc<SessionInner>>>>,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    pub(crate) debug_mode: bool,
    pub(crate) instance: u64,
    pub(crate) window_ms: i64,
    pub(crate) stats: Arc<AgentStats>,
    pub(crate) warned: bool,
    pub(crate) http: Option<HttpDelivery>,
    /// How long delivery may take when the control channel closes without a shutdown.
    pub(crate) shutdown_timeout: Duration,
}

impl Worker {
    pub(crate) fn run(mut self, control: Receiver<Control>) {
        // Ticks often enough to seal a window soon after its end, rarely enough to cost nothing.
        let tick = Duration::from_millis((self.window_ms as u64 / 10).clamp(50, 1000));
        loop {
            let now = Instant::now();
            let wake = self
                .http
                .as_ref()
                .and_then(HttpDelivery::wake_at)
                .map_or(now + tick, |at| at.min(now + tick));
            match control.recv_timeout(wake.saturating_duration_since(now)) {
                Err(RecvTimeoutError::Timeout) => {
                    self.collect(false, Seal::Carry);
                    if let Some(http) = &mut self.http {
                        http.pump();
                    }
                }
                Ok(Control::Flush(reply, deadline)) => {
                    let ok = self.collect(true, Seal::Carry) & self.deliver_until(deadline);
                    let _ = reply.try_send(ok);
                }
                Ok(Control::Shutdown(reply, deadline)) => {
                    let ok = self.collect(true, Seal::Last) & self.deliver_until(deadline);
                    let _ = reply.try_send(ok);
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.collect(true, Seal::Last);
                    self.deliver_until(Instant::now() + self.shutdown_timeout);
                    return;
                }
            }
            self.publish_http_counters();
        }
    }

    /// Sends the HTTP backlog until it is empty or the deadline passes.
    fn deliver_until(&mut self, deadline: Instant) -> bool {
        let ok = self
            .http
            .as_mut()
            .is_none_or(|h| h.send_until(deadline, true));
        self.publish_http_counters();
        ok
    }

    fn publish_http_counters(&self) {
        if let Some(http) = &self.http {
            http.counters.clone_into(&mut self.stats.http.lock());
        }
    }

    /// Seals and delivers finished windows (and, with `all`, current ones). Returns whether
    /// every summary was delivered to every sink. With [`Seal::Last`] (shutdown) each
    /// session's last summary also ships what k-anonymity held back, as counts.
    fn collect(&mut self, all: bool, seal: Seal) -> bool {
        let now = now_ms();
        let sessions: Vec<Arc<SessionInner>> = self.sessions.lock().values().cloned().collect();
        let mut ok = true;
        for session in sessions {
            // Swap finished windows out, O(1) under each shard's lock.
            let mut taken: Vec<(usize, i64, WindowAcc)> = Vec::new();
            let mut active = false;
            for (i, shard) in session.shards.iter().enumerate() {
                let mut g = shard.0.lock();
                active |= !g.current.is_empty() || !g.finished.is_empty();
                if all || g.start_ms.saturating_add(self.window_ms) <= now {
                    g.seal_current();
                }
                // Drained, not taken: the shard keeps the vector's capacity, so that
                // rolling to the next window allocates nothing on the logging thread.
                taken.extend(g.finished.drain(..).map(|(s, w)| (i, s, w)));
            }
            taken.sort_by_key(|t| t.1);
            let mut starts: Vec<i64> = taken.iter().map(|t| t.1).collect();
            starts.dedup();
            if seal == Seal::Last && starts.is_empty() && !session.book.lock().carry.is_empty() {
                // Nothing logged since the last summary, but values wait: a last summary
                // of the current window ships their counts.
                starts.push(now - now.rem_euclid(self.window_ms));
            }
            let last = starts.len().saturating_sub(1);
            for (i, start) in starts.into_iter().enumerate() {
                let partial = all && start.saturating_add(self.window_ms) > now;
                let seal = if i == last { seal } else { Seal::Carry };
                let summary = self.summarize(&session, start, partial, &taken, seal);
                ok &= self.deliver(&summary);
            }
            // Hand the cleared accumulators back for reuse.
            for (i, _, mut w) in taken {
                w.clear();
                let mut g = session.shards[i].0.lock();
                if g.spare.len() < 2 {
                    g.spare.push(w);
                }
            }
            self.release_if_idle(&session, active, now);
        }
        ok
    }

    /// Frees the window memory of a session nothing was logged into for [`IDLE_WINDOWS`]
    /// windows: a host that saw many deployments once keeps only their small stubs.
    fn release_if_idle(&self, session: &SessionInner, active: bool, now: i64) {
        let mut book = session.book.lock();
        if active {
            book.active_ms = now;
            book.released = false;
        } else if !book.released
            && now.saturating_sub(book.active_ms) >= IDLE_WINDOWS.saturating_mul(self.window_ms)
        {
            book.released = session.release_idle();
            if book.released {
                self.stats.sessions_released.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn summarize(
        &mut self,
        session: &SessionInner,
        start: i64,
        partial: bool,
        taken: &[(usize, i64, WindowAcc)],
        seal: Seal,
    ) -> WindowSummary {
        let mut book = session.book.lock();
        book.sequence += 1;
        let sequence = book.sequence;
        let header = Header {
            deployment: session.name.clone(),
            instance: self.instance,
            sequence,
            window_start_ms: start,
            window_ms: self.window_ms as u64,
            partial,
            key_fingerprint: session.shared.key.fingerprint(),
        };
        let mut summary = WindowSummary::new(header, session.metadata.lock().clone());
        summary.dropped.metadata_over_cap = session.metadata_dropped.swap(0, Ordering::Relaxed);
        summary.feedback = session.take_feedback_counts();
        if let Some(http) = &mut self.http {
            // Drops of earlier summaries travel in this one.
            summary.dropped.add(&std::mem::take(&mut http.unreported));
        }
        let limits = &session.shared.limits;
        for (_, _, w) in taken.iter().filter(|t| t.1 == start) {
            w.add_to(&mut summary, limits);
        }
        finish_summary(
            &mut summary,
            &session.shared.key,
            &session.shared.allowed_texts,
            session.shared.min_values,
            limits,
            &mut book.carry,
            seal,
        );
        summary
    }

    fn deliver(&mut self, summary: &WindowSummary) -> bool {
        let encoded = summary.encode();
        if self.debug_mode {
            // Not eprint!: it panics when stderr is closed (a daemonized host).
            let _ = write!(std::io::stderr().lock(), "{summary}");
        }
        let mut ok = true;
        for sink in &mut self.sinks {
            // A panicking sink is a failed delivery, not a dead worker.
            let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink.deliver(summary, &encoded)
            }))
            .unwrap_or_else(|_| Err(std::io::Error::other("the sink panicked")));
            match delivered {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    ok = false;
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if !self.warned {
                        log::warn!("modelwatch: a sink failed to store a window summary: {e} (further failures are counted in Agent::stats)");
                        self.warned = true;
                    }
                }
            }
        }
        if ok && self.warned {
            self.warned = false;
            log::info!("modelwatch: sinks store summaries again");
        }
        if let Some(http) = &mut self.http {
            let carried = DropCounts {
                summaries_dropped_backlog: summary.dropped.summaries_dropped_backlog,
                summaries_rejected: summary.dropped.summaries_rejected,
                ..DropCounts::default()
            };
            http.enqueue(encoded, carried);
        }
        ok
    }
}
