//! The collector's watch: every deployment's windows through the library's incident engine
//! ([`modelwatch::Monitor`]) as they arrive, with the engine's state kept in the store so
//! that a restarted collector carries on where it stopped and opens nothing twice.
//!
//! Summaries of one window come from several instances and at different times, so a
//! window is evaluated once `evaluate_after` has passed since its end (by the collector's
//! clock), all its summaries merged. A summary arriving after its window was evaluated is
//! stored (reports see it) but not evaluated again: counted in [`Watch::late`].
//!
//! State per deployment: the monitor (baseline, evidence, incidents) and the start of the
//! newest evaluated window, in the table `monitors`. Windows not evaluated yet are not
//! saved apart: after a restart they are read back from the stored summaries.

use crate::constraints::Constraints;
use modelwatch::{Baseline, IncidentEvent, Monitor, WindowSummary};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// Windows waiting for evaluation per deployment, at most: past it the oldest is
/// evaluated early, so a sender of far-future windows cannot grow the collector's memory.
pub const MAX_PENDING_WINDOWS: usize = 64;
/// Windows waiting for evaluation over all deployments, at most: past it, the deployment
/// whose summary arrives has its oldest evaluated early. With [`MAX_PENDING_WINDOWS`] this
/// bounds the watch's memory by windows, whatever the senders do.
pub const MAX_PENDING_TOTAL: usize = 4_096;
/// Deployments watched at once, at most; summaries of more are stored, not watched
/// (counted in [`Watch::unwatched`]).
pub const MAX_DEPLOYMENTS: usize = 1_000;

/// What to compare each deployment's windows with.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// The baseline of every deployment (default: its first 60 windows).
    pub baseline: Baseline,
    /// Time after a window's end before it is evaluated (default 60 s).
    pub evaluate_after: Duration,
    /// Constraints checked on every evaluated window of their file's deployment (at most
    /// one file per deployment; default none): each violated one is an incident
    /// ([`Monitor::observe_constraints`]).
    pub constraints: Vec<Constraints>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            baseline: Baseline::FirstWindows(60),
            evaluate_after: Duration::from_secs(60),
            constraints: Vec::new(),
        }
    }
}

impl WatchConfig {
    /// The configuration, or an error if two constraint files name one deployment.
    pub fn checked(self) -> Result<WatchConfig, String> {
        for (i, c) in self.constraints.iter().enumerate() {
            if self.constraints[..i]
                .iter()
                .any(|d| d.deployment == c.deployment)
            {
                return Err(format!(
                    "two constraint files for the deployment {:?}: merge them into one",
                    c.deployment
                ));
            }
        }
        Ok(self)
    }

    /// The constraints of `deployment`, if any.
    fn constraints_of(&self, deployment: &str) -> Option<&Constraints> {
        self.constraints.iter().find(|c| c.deployment == deployment)
    }
}

/// One window (its instances merged) through its deployment's monitor: the engine's
/// checks against the baseline, then the deployment's constraints, if it has any.
fn observe(
    monitor: &mut Monitor,
    constraints: Option<&Constraints>,
    w: &WindowSummary,
) -> Vec<IncidentEvent> {
    let mut events = monitor.observe(w);
    if let Some(c) = constraints {
        events.extend(monitor.observe_constraints(w, &crate::constraints::failures(c, w)));
    }
    events
}

struct Watched {
    monitor: Monitor,
    /// Start of the newest evaluated window; windows up to it are done.
    evaluated_to: i64,
    /// Windows not evaluated yet, the summaries of each merged.
    pending: BTreeMap<i64, WindowSummary>,
}

/// The watch over every deployment of one store.
pub struct Watch {
    conn: Connection,
    config: WatchConfig,
    deployments: HashMap<String, Watched>,
    late: u64,
    unwatched: u64,
}

/// Called with each event before the state that produced it is saved: an event handed
/// over durably (the alert outbox) survives a crash, and one handed over twice after a
/// crash is the same event (same incident id), which the outbox stores once.
pub type OnEvent<'a> = &'a mut dyn FnMut(&IncidentEvent) -> Result<(), String>;

impl Watch {
    /// Opens the watch over the store at `path` (its own connection; the store must exist
    /// or be created by [`crate::store::Store::open`] first).
    pub fn open(path: &Path, config: WatchConfig) -> rusqlite::Result<Watch> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS monitors (
                deployment   TEXT PRIMARY KEY,
                evaluated_to INTEGER NOT NULL,
                state        BLOB NOT NULL
            );",
        )?;
        Ok(Watch {
            conn,
            config,
            deployments: HashMap::new(),
            late: 0,
            unwatched: 0,
        })
    }

    /// Takes a newly stored summary (not a duplicate). Evaluates the windows due by
    /// `now_ms`, of this deployment and others.
    pub fn accept(
        &mut self,
        s: &WindowSummary,
        now_ms: i64,
        on_event: OnEvent<'_>,
    ) -> Result<(), String> {
        let d = s.deployment();
        let fresh = !self.deployments.contains_key(d);
        if fresh {
            if self.deployments.len() >= MAX_DEPLOYMENTS {
                self.unwatched += 1;
                return Ok(());
            }
            // Loading reads back the stored summaries not evaluated yet: this one among them.
            self.load(s, on_event)?;
        } else {
            let w = self.deployments.get_mut(d).expect("loaded");
            if s.window_start() <= w.evaluated_to {
                self.late += 1;
            } else {
                merge_pending(&mut w.pending, s.clone());
            }
        }
        self.evaluate(Some(d.to_owned()), now_ms, on_event)
    }

    /// Evaluates every deployment's windows due by `now_ms` (call it on a timer, so that the
    /// last windows before a quiet spell are evaluated too).
    pub fn tick(&mut self, now_ms: i64, on_event: OnEvent<'_>) -> Result<(), String> {
        self.evaluate(None, now_ms, on_event)
    }

    fn evaluate(
        &mut self,
        only: Option<String>,
        now_ms: i64,
        on_event: OnEvent<'_>,
    ) -> Result<(), String> {
        let after = self.config.evaluate_after.as_millis() as i64;
        let names: Vec<String> = match only {
            Some(d) => vec![d],
            None => self.deployments.keys().cloned().collect(),
        };
        let mut total: usize = self.deployments.values().map(|w| w.pending.len()).sum();
        for d in names {
            let Some(w) = self.deployments.get_mut(&d) else {
                continue;
            };
            let mut changed = false;
            while let Some((&start, s)) = w.pending.first_key_value() {
                let due = start
                    .saturating_add(s.window_length() as i64)
                    .saturating_add(after)
                    <= now_ms;
                if !due && w.pending.len() <= MAX_PENDING_WINDOWS && total <= MAX_PENDING_TOTAL {
                    break;
                }
                let (start, s) = w.pending.pop_first().expect("not empty");
                total -= 1;
                let constraints = self.config.constraints_of(&d);
                for e in observe(&mut w.monitor, constraints, &s) {
                    on_event(&e)?;
                }
                w.evaluated_to = start;
                changed = true;
            }
            if changed {
                self.conn
                    .execute(
                        "INSERT INTO monitors (deployment, evaluated_to, state) VALUES (?1, ?2, ?3)
                         ON CONFLICT (deployment) DO UPDATE SET evaluated_to = ?2, state = ?3",
                        params![d, w.evaluated_to, w.monitor.to_bytes()],
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Brings a deployment's state into memory: its saved monitor, and the stored summaries
    /// after its last evaluated window (those past [`MAX_PENDING_WINDOWS`] evaluated on the
    /// way). A deployment without a saved monitor starts [`MAX_PENDING_WINDOWS`] windows
    /// before `s`: a collector started on an old store does not alert on its history.
    fn load(&mut self, s: &WindowSummary, on_event: OnEvent<'_>) -> Result<(), String> {
        let d = s.deployment();
        let err = |e: rusqlite::Error| e.to_string();
        let saved: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT evaluated_to, state FROM monitors WHERE deployment = ?1",
                params![d],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        let saved = saved.and_then(|(t, b)| Some((Monitor::from_bytes(&b).ok()?, t)));
        let history = MAX_PENDING_WINDOWS as i64 * s.window_length().max(1) as i64;
        let (mut monitor, mut evaluated_to) = saved.unwrap_or_else(|| {
            (
                Monitor::new(self.config.baseline.clone()),
                s.window_start().saturating_sub(history),
            )
        });
        let mut pending: BTreeMap<i64, WindowSummary> = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT body FROM windows WHERE deployment = ?1 AND window_start > ?2
                 ORDER BY window_start, instance, sequence",
            )
            .map_err(err)?;
        let bodies = stmt
            .query_map(params![d, evaluated_to], |r| r.get::<_, Vec<u8>>(0))
            .map_err(err)?;
        for body in bodies {
            // The store validated every body it holds; one that no longer decodes is
            // skipped here and reported by `report`.
            let Ok(s) = WindowSummary::decode(&body.map_err(err)?) else {
                continue;
            };
            merge_pending(&mut pending, s);
            if pending.len() > MAX_PENDING_WINDOWS {
                let (start, w) = pending.pop_first().expect("not empty");
                for e in observe(&mut monitor, self.config.constraints_of(d), &w) {
                    on_event(&e)?;
                }
                evaluated_to = start;
            }
        }
        drop(stmt);
        self.deployments.insert(
            d.to_owned(),
            Watched {
                monitor,
                evaluated_to,
                pending,
            },
        );
        Ok(())
    }

    /// The monitor of a deployment watched since this collector started (for metrics).
    pub fn monitor(&self, deployment: &str) -> Option<&Monitor> {
        self.deployments.get(deployment).map(|w| &w.monitor)
    }

    /// Deployments watched since this collector started.
    pub fn deployments(&self) -> impl Iterator<Item = &str> {
        self.deployments.keys().map(String::as_str)
    }

    /// Windows waiting for evaluation, over all deployments.
    pub fn pending(&self) -> usize {
        self.deployments.values().map(|w| w.pending.len()).sum()
    }

    /// Summaries that arrived after their window was evaluated.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Summaries of deployments past [`MAX_DEPLOYMENTS`], stored but not watched.
    pub fn unwatched(&self) -> u64 {
        self.unwatched
    }
}

/// Adds a summary to the windows waiting, merged with the others of its window. One made
/// with another hash key replaces them: the newest key's windows go to the monitor, which
/// restarts its baseline on it.
fn merge_pending(pending: &mut BTreeMap<i64, WindowSummary>, s: WindowSummary) {
    match pending.get_mut(&s.window_start()) {
        Some(p) => {
            if p.merge(&s).is_err() {
                *p = s;
            }
        }
        None => {
            pending.insert(s.window_start(), s);
        }
    }
}
