//! The collector's watch: every deployment's windows through the library's incident engine
//! ([`modelwatch::Monitor`]) as they arrive, with the engine's state kept in the store so
//! that a restarted collector carries on where it stopped and opens nothing twice.
//!
//! The windows come from the store: each stored summary is noted in the table
//! `unevaluated`, which the watch drains on every [`Watch::tick`]. So with several
//! collectors on one PostgreSQL store, the one that holds the lease ([`LEADER_LEASE`], an
//! advisory lock on the watch's own session) evaluates what all of them stored; the others
//! wait. A leader that dies loses its session and the lock with it, and another
//! collector's next tick takes over from the saved state. The leader (a lone SQLite
//! collector always) also takes the summaries it receives at once ([`Watch::accept`]), so
//! that its drain reads and decodes only what other collectors stored.
//!
//! Summaries of one window come from several instances and at different times, so a
//! window is evaluated once `evaluate_after` has passed since its end (by the collector's
//! clock), all its summaries merged. A summary arriving after its window was evaluated is
//! stored (reports see it) but not evaluated again: counted in [`Watch::late`].
//!
//! State per deployment: the monitor (baseline, evidence, incidents) and the start of the
//! newest evaluated window, in the table `monitors`. Windows not evaluated yet are not
//! saved apart: after a restart they are read back from the stored summaries.

use crate::args;
use crate::constraints::Constraints;
use crate::db::{Db, Location};
use crate::store::stored_window;
use modelwatch::{Baseline, IncidentEvent, Monitor, WindowSummary};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// The advisory lock that makes one collector of a shared store the one that evaluates
/// (and delivers alerts).
pub const LEADER_LEASE: i64 = 0x6d77_0002;

/// Summaries taken from `unevaluated` per transaction, and transactions per tick at most:
/// a backlog (a store without a leader for a while) is worked off over several ticks.
const DRAIN_PAGE: usize = 1_024;
const DRAIN_PAGES_PER_TICK: usize = 64;

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
    pending: BTreeMap<i64, Pending>,
}

/// A window's summaries merged, and which ones (key id, instance, sequence): a summary
/// both read back from the store and drained from `unevaluated` is merged once.
struct Pending {
    merged: WindowSummary,
    ids: HashSet<(String, u64, u64)>,
}

/// The watch over every deployment of one store.
pub struct Watch {
    db: Db,
    leading: bool,
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
    /// Opens the watch over the store at `location` (its own connection; the store must
    /// exist or be created by [`crate::store::Store::open`] first).
    pub fn open(location: impl Into<Location>, config: WatchConfig) -> crate::db::Result<Watch> {
        let db = Db::open(&location.into())?;
        db.sqlite_schema(
            "CREATE TABLE IF NOT EXISTS monitors (
                deployment   TEXT PRIMARY KEY,
                evaluated_to INTEGER NOT NULL,
                state        BLOB NOT NULL
            );",
        )?;
        Ok(Watch {
            // SQLite's lease is always held; PostgreSQL's is taken at the first tick.
            leading: !db.is_postgres(),
            db,
            config,
            deployments: HashMap::new(),
            late: 0,
            unwatched: 0,
        })
    }

    /// Takes a newly stored summary (not a duplicate), sent with the key `key_id`.
    /// Evaluates the windows due by `now_ms`, of this deployment and others.
    pub fn accept(
        &mut self,
        key_id: &str,
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
                merge_pending(&mut w.pending, key_id, s);
            }
        }
        self.evaluate(Some(d.to_owned()), now_ms, on_event)
    }

    /// If this watch holds the lease (taking it if it is free): takes the summaries stored
    /// since the last tick, by any collector, and evaluates every deployment's windows due
    /// by `now_ms` (call it on a timer, so that the last windows before a quiet spell are
    /// evaluated too). Without the lease it forgets its state: a later takeover reads it
    /// back from the store, as the leader left it.
    pub fn tick(&mut self, now_ms: i64, on_event: OnEvent<'_>) -> Result<(), String> {
        let leading = self.db.try_lease(LEADER_LEASE);
        self.leading = leading.as_ref().is_ok_and(|l| *l);
        if !self.leading {
            self.deployments.clear();
            return leading.map(drop).map_err(|e| e.to_string());
        }
        for _ in 0..DRAIN_PAGES_PER_TICK {
            let page = self.take_unevaluated().map_err(|e| e.to_string())?;
            let full = page.len() == DRAIN_PAGE;
            for (key_id, s) in page {
                self.accept(&key_id, &s, now_ms, on_event)?;
            }
            if !full {
                break;
            }
        }
        self.evaluate(None, now_ms, on_event)
    }

    /// Whether this watch held the lease at its last tick (always, on SQLite).
    pub fn leading(&self) -> bool {
        self.leading
    }

    /// Takes up to [`DRAIN_PAGE`] summaries off `unevaluated`, in the order of its key, in
    /// one transaction that keeps other writers of it out: what is deleted is what was
    /// read. One taken and then lost (a crash before its evaluation) is read back from
    /// the windows when its deployment is next loaded. Only the summaries not merged yet
    /// are read and decoded: those this collector took itself ([`Watch::accept`] from the
    /// request) are, so a lone collector decodes each summary once.
    fn take_unevaluated(&self) -> crate::db::Result<Vec<(String, WindowSummary)>> {
        self.db.exclusive("unevaluated", || {
            let ids = self.db.query_map(
                &format!(
                    "SELECT key_id, deployment, window_start, instance, sequence FROM unevaluated
                     ORDER BY key_id, deployment, window_start, instance, sequence
                     LIMIT {DRAIN_PAGE}"
                ),
                &[],
                |r| Ok((r.text(0)?, r.text(1)?, r.int(2)?, r.int(3)?, r.int(4)?)),
            )?;
            let mut page = Vec::new();
            for (key_id, d, start, instance, sequence) in &ids {
                if self.merged(key_id, d, *start, *instance as u64, *sequence as u64) {
                    continue;
                }
                let s = stored_window(&self.db, key_id, d, *start, *instance, *sequence)?;
                if let Some(s) = s {
                    page.push((key_id.clone(), s));
                }
            }
            if let Some((key_id, d, start, instance, sequence)) = ids.last() {
                self.db.execute(
                    "DELETE FROM unevaluated
                     WHERE (key_id, deployment, window_start, instance, sequence)
                         <= (?1, ?2, ?3, ?4, ?5)",
                    args![key_id, d, *start, *instance, *sequence],
                )?;
            }
            Ok(page)
        })
    }

    /// Whether a summary is in the watch already: merged into a pending window, or of a
    /// window evaluated (then it would be late).
    fn merged(&self, key_id: &str, d: &str, start: i64, instance: u64, sequence: u64) -> bool {
        self.deployments.get(d).is_some_and(|w| {
            start <= w.evaluated_to
                || w.pending
                    .get(&start)
                    .is_some_and(|p| p.ids.contains(&(key_id.to_owned(), instance, sequence)))
        })
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
            while let Some((&start, p)) = w.pending.first_key_value() {
                let due = start
                    .saturating_add(p.merged.window_length() as i64)
                    .saturating_add(after)
                    <= now_ms;
                if !due && w.pending.len() <= MAX_PENDING_WINDOWS && total <= MAX_PENDING_TOTAL {
                    break;
                }
                let (start, p) = w.pending.pop_first().expect("not empty");
                total -= 1;
                let constraints = self.config.constraints_of(&d);
                for e in observe(&mut w.monitor, constraints, &p.merged) {
                    on_event(&e)?;
                }
                w.evaluated_to = start;
                changed = true;
            }
            if changed {
                // Saved only while this session holds the lease: a leader whose session was
                // lost (and reconnected without it) must not overwrite the new leader's state.
                if !self.db.try_lease(LEADER_LEASE).map_err(|e| e.to_string())? {
                    self.leading = false;
                    return Err("the lease was lost: another collector evaluates".into());
                }
                self.db
                    .execute(
                        "INSERT INTO monitors (deployment, evaluated_to, state) VALUES (?1, ?2, ?3)
                         ON CONFLICT (deployment) DO UPDATE
                         SET evaluated_to = excluded.evaluated_to, state = excluded.state",
                        args![&d, w.evaluated_to, &w.monitor.to_bytes()],
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
        let err = |e: crate::db::Error| e.to_string();
        let saved: Option<(i64, Vec<u8>)> = self
            .db
            .query_row(
                "SELECT evaluated_to, state FROM monitors WHERE deployment = ?1",
                args![d],
                |r| Ok((r.int(0)?, r.blob(1)?.to_vec())),
            )
            .map_err(err)?;
        let saved = saved.and_then(|(t, b)| Some((Monitor::from_bytes(&b).ok()?, t)));
        let history = MAX_PENDING_WINDOWS as i64 * s.window_length().max(1) as i64;
        let (mut monitor, mut evaluated_to) = saved.unwrap_or_else(|| {
            (
                Monitor::new(self.config.baseline.clone()),
                s.window_start().saturating_sub(history),
            )
        });
        let mut pending: BTreeMap<i64, Pending> = BTreeMap::new();
        // Read in pages (by start, after the last read): on PostgreSQL no other statement
        // runs on a connection while rows stream, and events are stored between pages.
        let mut after = (evaluated_to, i64::MIN, i64::MIN, String::new());
        loop {
            let rows = self
                .db
                .query_map(
                    &format!(
                        "SELECT window_start, instance, sequence, key_id, body FROM windows
                         WHERE deployment = ?1 AND window_start > ?2 AND
                             (window_start, instance, sequence, key_id) > (?3, ?4, ?5, ?6)
                         ORDER BY window_start, instance, sequence, key_id LIMIT {DRAIN_PAGE}"
                    ),
                    args![d, evaluated_to, after.0, after.1, after.2, &after.3],
                    |r| {
                        let key = (r.int(0)?, r.int(1)?, r.int(2)?, r.text(3)?);
                        Ok((key, WindowSummary::decode(r.blob(4)?).ok()))
                    },
                )
                .map_err(err)?;
            let last_page = rows.len() < DRAIN_PAGE;
            for (key, s) in rows {
                let key_id = key.3.clone();
                after = key;
                // The store validated every body it holds; one that no longer decodes is
                // skipped here and reported by `report`.
                let Some(s) = s else {
                    continue;
                };
                merge_pending(&mut pending, &key_id, &s);
                if pending.len() > MAX_PENDING_WINDOWS {
                    let (start, p) = pending.pop_first().expect("not empty");
                    for e in observe(&mut monitor, self.config.constraints_of(d), &p.merged) {
                        on_event(&e)?;
                    }
                    evaluated_to = start;
                }
            }
            if last_page {
                break;
            }
        }
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

/// Adds a summary to the windows waiting, merged with the others of its window, unless it
/// is there already. One made with another hash key replaces them: the newest key's windows
/// go to the monitor, which restarts its baseline on it.
fn merge_pending(pending: &mut BTreeMap<i64, Pending>, key_id: &str, s: &WindowSummary) {
    let id = (key_id.to_owned(), s.instance(), s.sequence());
    match pending.get_mut(&s.window_start()) {
        Some(p) => {
            if p.ids.contains(&id) {
                return;
            }
            if p.merged.merge(s).is_err() {
                p.merged = s.clone();
                p.ids.clear();
            }
            p.ids.insert(id);
        }
        None => {
            pending.insert(
                s.window_start(),
                Pending {
                    merged: s.clone(),
                    ids: HashSet::from([id]),
                },
            );
        }
    }
}
