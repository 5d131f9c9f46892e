//! The sealing thread ("modelwatch"): seals finished windows, merges shards, encodes, hands
//! each summary to the local sinks, to debug output and to the HTTP outbox. It never sends
//! over the network and never waits for the sender, so windows are sealed on time and
//! local sinks written whatever the collector does.

use super::debug::DebugOut;
use super::http::{self, Drain, Outbox};
use super::oneshot;
use super::session::{now_ms, SessionInner};
use super::sink::LocalSinks;
use super::spool::Spool;
use super::AgentStats;
use crate::core::summary::anonymity::Seal;
use crate::core::summary::{DropCounts, Header, WindowSummary};
use crate::core::window::{finish_summary, WindowAcc};
use crate::error::Undelivered;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flush or shutdown: where to answer, and until when to try.
pub(crate) struct Request {
    pub(crate) reply: oneshot::Sender<Undelivered>,
    pub(crate) deadline: Instant,
}

/// Requests to the sealer.
pub(crate) enum Control {
    /// Seal everything (current windows too, marked partial), offer every waiting summary
    /// at once, and answer what was not delivered by the deadline.
    Flush(Request),
    /// As `Flush`, then stop (the sender too, once it has answered).
    Shutdown(Request),
}

/// Windows without logging after which a session's window memory is released.
pub(crate) const IDLE_WINDOWS: i64 = 10;

/// A wall clock that moved this much more or less than the monotonic clock between two
/// ticks was stepped (set by hand or by NTP), not slewed.
const CLOCK_STEP_MS: i64 = 1000;

/// The HTTP side, as the sealer sees it.
pub(crate) struct ToHttp {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) spool: Option<Spool>,
}

pub(crate) struct Worker {
    pub(crate) sessions: Arc<Mutex<BTreeMap<String, Arc<SessionInner>>>>,
    pub(crate) local: LocalSinks,
    pub(crate) debug: Option<DebugOut>,
    pub(crate) instance: u64,
    pub(crate) window_ms: i64,
    pub(crate) stats: Arc<AgentStats>,
    pub(crate) http: Option<ToHttp>,
    /// How long delivery may take when the control channel closes without a shutdown.
    pub(crate) shutdown_timeout: Duration,
    /// The wall and monotonic clocks at the last collection, to see the wall clock step.
    pub(crate) last_clock: (i64, Instant),
}

impl Worker {
    pub(crate) fn run(mut self, control: Receiver<Control>) {
        // Ticks often enough to seal a window soon after its end, rarely enough to cost nothing.
        let tick = Duration::from_millis((self.window_ms as u64 / 10).clamp(50, 1000));
        loop {
            match control.recv_timeout(tick) {
                Err(RecvTimeoutError::Timeout) => {
                    self.collect(false, Seal::Carry);
                    self.local.retry(false);
                }
                Ok(Control::Flush(request)) => self.finish(request, Seal::Carry, false),
                Ok(Control::Shutdown(request)) => {
                    self.finish(request, Seal::Last, true);
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let (reply, _) = oneshot::channel();
                    let deadline = Instant::now() + self.shutdown_timeout;
                    self.finish(Request { reply, deadline }, Seal::Last, true);
                    return;
                }
            }
        }
    }

    /// Flush and shutdown: offer what local sinks hold, seal everything, then hand the
    /// answer to the sender (which tries every waiting summary by the deadline) or give it.
    fn finish(&mut self, request: Request, seal: Seal, close: bool) {
        self.local.retry(true);
        self.collect(true, seal);
        let waiting_local = self.local.waiting();
        match &self.http {
            Some(h) => h.outbox.drain(
                Drain {
                    upto: h.outbox.next_id(),
                    deadline: request.deadline,
                    waiting_local,
                    whole_run: close,
                    reply: request.reply,
                },
                close,
            ),
            None => {
                let counters = Default::default();
                request.reply.send(self.stats.undelivered(
                    Undelivered {
                        waiting_local,
                        ..Undelivered::default()
                    },
                    &counters,
                    close,
                ));
            }
        }
    }

    /// Whether the wall clock stepped since the last collection.
    fn clock_stepped(&mut self, now: i64) -> bool {
        let (wall, mono) = std::mem::replace(&mut self.last_clock, (now, Instant::now()));
        let expected = wall.saturating_add(mono.elapsed().as_millis() as i64);
        (now - expected).abs() > CLOCK_STEP_MS
    }

    /// Seals finished windows (and, with `all`, current ones) and hands their summaries
    /// on. With [`Seal::Last`] (shutdown) each session's last summary also ships what
    /// k-anonymity held back, as counts. After a step of the wall clock every open window
    /// is sealed and marked partial: it was cut short, or its end is no longer in sight.
    fn collect(&mut self, all: bool, seal: Seal) {
        let now = now_ms();
        let stepped = self.clock_stepped(now);
        let all = all || stepped;
        let sessions: Vec<Arc<SessionInner>> = self.sessions.lock().values().cloned().collect();
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
                let partial = stepped || (all && start.saturating_add(self.window_ms) > now);
                let seal = if i == last { seal } else { Seal::Carry };
                let summary = self.summarize(&session, start, partial, &mut taken, seal);
                self.deliver(&summary);
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
        taken: &mut [(usize, i64, WindowAcc)],
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
        summary.schema = session.schema.lock().clone();
        summary.dropped.metadata_over_cap = session.metadata_dropped.swap(0, Ordering::Relaxed);
        summary.feedback = session.take_feedback_counts();
        if let Some(h) = &self.http {
            // Drops of earlier summaries travel in this one.
            summary.dropped.add(&h.outbox.take_unreported());
        }
        let limits = &session.shared.limits;
        let key = &session.shared.key;
        for (_, _, w) in taken.iter_mut().filter(|t| t.1 == start) {
            w.add_to(&mut summary, limits, key);
        }
        finish_summary(
            &mut summary,
            &session.shared.sealing(),
            &mut book.carry,
            seal,
        );
        summary
    }

    fn deliver(&mut self, summary: &WindowSummary) {
        let encoded: Arc<[u8]> = summary.encode().into();
        if let Some(debug) = &self.debug {
            debug.send(summary.to_string());
        }
        self.local.deliver(summary, &encoded);
        if let Some(h) = &mut self.http {
            let carried = DropCounts {
                summaries_dropped_backlog: summary.dropped.summaries_dropped_backlog,
                summaries_rejected: summary.dropped.summaries_rejected,
                ..DropCounts::default()
            };
            http::enqueue(&h.outbox, h.spool.as_mut(), encoded, carried);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::test_clock::STEP_MS;
    use crate::{Agent, Config, Sink, WindowSummary};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Clone, Default)]
    struct Keep(Arc<Mutex<Vec<WindowSummary>>>);
    impl Sink for Keep {
        fn deliver(&mut self, s: &WindowSummary, _: &[u8]) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.clone());
            Ok(())
        }
    }

    impl Keep {
        /// Waits (without a deadline that could pass on a slow machine: a minute) until
        /// `n` summaries arrived without any flush.
        fn wait_for(&self, n: usize) -> Vec<WindowSummary> {
            let start = Instant::now();
            loop {
                let got = self.0.lock().unwrap().clone();
                if got.len() >= n {
                    return got;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "{} summaries",
                    got.len()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn step(ms: i64) {
        STEP_MS.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn a_clock_step_either_way_seals_the_open_window_as_partial() {
        const HOUR: i64 = 3_600_000;
        let keep = Keep::default();
        let agent = Agent::start(
            Config::new("k")
                .no_data_dir()
                .sink(keep.clone())
                .hash_key([1; 16])
                .min_values_per_window(1)
                .window(Duration::from_secs(60)),
        )
        .unwrap();
        let sess = agent.session("clock");
        for i in 0..100 {
            sess.log_prediction([("x", i)], 1);
        }
        // Back an hour: the open window's end is an hour away; it is sealed now, and says
        // it was cut short.
        step(-HOUR);
        let got = keep.wait_for(1);
        assert_eq!((got[0].predictions(), got[0].is_partial()), (100, true));
        let before = got[0].window_start();
        for i in 0..50 {
            sess.log_prediction([("x", i)], 1);
        }
        // Forward an hour: that window's end passed, but it was cut by the step too.
        step(HOUR);
        let got = keep.wait_for(2);
        assert_eq!((got[1].predictions(), got[1].is_partial()), (50, true));
        let back = got[1].window_start();
        assert!(
            (before - HOUR - 60_000..=before - HOUR + 60_000).contains(&back),
            "the data logged after the backward step is in its own, earlier window"
        );
        agent.shutdown(Duration::from_secs(10)).unwrap();
        assert_eq!(keep.0.lock().unwrap().len(), 2, "nothing else was sealed");
    }
}
