//! Notifications of incidents: a JSON webhook (Slack-compatible) and Alertmanager's v2 API,
//! each event delivered once per destination, across restarts.
//!
//! [`Alerter::notify`] writes the event into an outbox table of the collector's store
//! (its own connection; on SQLite, WAL lets it share the file with the store) and returns: the caller
//! never waits for the network. One thread delivers each destination's events in order
//! (an incident's open before its close), retries with exponential back-off, and marks an
//! event delivered for that destination after a 2xx. On start, what was not delivered is
//! sent. An event is keyed by (incident id, opened|closed), so feeding it twice (a collector
//! that restarted before saving its monitor) stores it once.
//!
//! HTTP goes through `ureq` on that thread, not hyper's client on the collector's runtime:
//! the library already depends on `ureq`, so this adds no crate, and delivery lives apart
//! from the runtime (it starts before the server and finishes the request in flight after
//! it stopped).
//!
//! Exactly once holds for everything but a crash between a destination's 2xx and the
//! commit that records it (a few milliseconds): then the event is sent again on start,
//! with the same `id` and `Idempotency-Key` header, and Alertmanager deduplicates by labels.
//!
//! Several collectors on one PostgreSQL store share the outbox; only the one holding the
//! watch's lease delivers ([`Alerter::lead`]), so an event is sent once, and the outbox
//! carries what a leader that died left undelivered over to the next.

use crate::args;
use crate::db::{Db, Location};
use modelwatch::{format_utc, Incident, IncidentEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where and how events are delivered; `Default` has no destination.
#[derive(Clone, Debug)]
pub struct AlertConfig {
    /// URLs that get a JSON POST per incident opened and closed (`--alert-webhook`).
    pub webhooks: Vec<String>,
    /// Alertmanager base URLs (`--alertmanager`); alerts go to `{url}/api/v2/alerts`.
    pub alertmanagers: Vec<String>,
    /// Deliveries waiting at most; an event that would go past it is dropped and counted
    /// (a destination down for long must not fill the disk).
    pub max_pending: usize,
    /// The first retry's delay; it doubles per failure up to `retry_max`.
    pub retry_min: Duration,
    /// The longest delay between retries.
    pub retry_max: Duration,
    /// Time for one request, connection included.
    pub timeout: Duration,
    /// How often open incidents are sent to Alertmanager again: its clients must re-send
    /// firing alerts, which it otherwise resolves after its `resolve_timeout`.
    pub resend: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            webhooks: Vec::new(),
            alertmanagers: Vec::new(),
            max_pending: 10_000,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            resend: Duration::from_secs(60),
        }
    }
}

/// What [`Alerter::notify`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Stored in the outbox; it will be delivered to every destination.
    Stored,
    /// Already in the outbox (the same incident and event type): nothing added.
    Duplicate,
    /// The outbox is full ([`AlertConfig::max_pending`]): dropped and counted.
    Dropped,
    /// No destination is configured: nothing to do.
    Ignored,
    /// The outbox could not be written (logged and counted).
    Failed,
}

/// Counts since start.
#[derive(Default, Debug)]
pub struct AlertStats {
    /// Events stored in the outbox.
    pub queued: AtomicU64,
    /// Events fed again and stored once.
    pub duplicates: AtomicU64,
    /// Events dropped because the outbox was full.
    pub dropped: AtomicU64,
    /// Deliveries answered 2xx.
    pub delivered: AtomicU64,
    /// Deliveries refused for good (4xx other than 408 and 429): not retried.
    pub refused: AtomicU64,
    /// Failed attempts that will be retried.
    pub retries: AtomicU64,
    /// Outbox errors (the store's).
    pub errors: AtomicU64,
}

/// What the caller and the delivery thread share.
struct Shared {
    stats: AlertStats,
    state: Mutex<Signals>,
    wake: Condvar,
}

/// Why the delivery thread should not sleep: under one lock with the condvar, so that no
/// wake-up is lost between a pass and the wait.
#[derive(Default)]
struct Signals {
    stop: bool,
    new_events: bool,
    /// Whether this collector delivers: the store's only one, or the lease holder.
    leading: bool,
}

impl Shared {
    fn signals(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn signal(&self, set: impl FnOnce(&mut Signals)) {
        set(&mut self.signals());
        self.wake.notify_all();
    }
}

/// Delivers incident events; see the module docs. Dropping it stops delivery after the
/// request in flight; what is left is sent by the next one started on the same file.
pub struct Alerter {
    conn: Option<Mutex<Db>>,
    destinations: Vec<String>,
    max_pending: usize,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    incident    TEXT    NOT NULL,
    event       TEXT    NOT NULL CHECK (event IN ('opened', 'closed')),
    deployment  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    opened_ms   INTEGER NOT NULL,
    closed_ms   INTEGER,
    webhook     TEXT    NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    UNIQUE (incident, event)
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    destination TEXT    NOT NULL,
    seq         INTEGER NOT NULL REFERENCES alert_outbox (seq),
    state       TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'refused')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    done_ms     INTEGER,
    PRIMARY KEY (destination, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_deliveries_pending ON alert_deliveries (state, destination, seq);
";

/// How long events delivered everywhere stay in the outbox: their keys stop a replay of
/// the same event (a monitor restored from an older state) from alerting again.
const KEEP_DONE_MS: i64 = 30 * 86_400_000;

/// Deletes the events enqueued before `before` that no destination still waits for.
fn prune(db: &Db, before: i64) -> crate::db::Result<()> {
    db.transaction(|| {
        db.execute(
            "DELETE FROM alert_deliveries WHERE seq IN (
                 SELECT o.seq FROM alert_outbox o WHERE o.enqueued_ms < ?1 AND NOT EXISTS (
                     SELECT 1 FROM alert_deliveries d WHERE d.seq = o.seq AND d.state = 'pending'))",
            args![before],
        )?;
        db.execute(
            "DELETE FROM alert_outbox WHERE enqueued_ms < ?1
                 AND seq NOT IN (SELECT seq FROM alert_deliveries)",
            args![before],
        )?;
        Ok(())
    })
}

/// Deliveries waiting for `destinations`. Those of a destination no longer configured stay
/// (sent if it comes back) but do not count against the bound.
fn pending(db: &Db, destinations: &[String]) -> crate::db::Result<u64> {
    let mut n = 0;
    for d in destinations {
        n += db
            .query_row(
                "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'pending' AND destination = ?1",
                args![d],
                |r| r.int(0),
            )?
            .unwrap_or(0) as u64;
    }
    Ok(n)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A destination as the outbox names it: its kind, a space, its URL.
fn destinations(config: &AlertConfig) -> Vec<String> {
    let webhooks = config.webhooks.iter().map(|u| format!("webhook {u}"));
    let managers = config.alertmanagers.iter().map(|u| {
        format!(
            "alertmanager {}/api/v2/alerts",
            u.trim_end_matches('/').trim_end_matches("/api/v2/alerts")
        )
    });
    let mut all: Vec<String> = Vec::new();
    // A URL given twice is one destination (and one row per event in the outbox).
    for d in webhooks.chain(managers) {
        if !all.contains(&d) {
            all.push(d);
        }
    }
    all
}

/// Checks a destination URL at start, so that none fails on every attempt later:
/// `http://` (or `https://` when built with TLS), with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?}: not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if cfg!(feature = "rustls") => {}
        Some("https") => {
            return Err(format!(
                "{url}: https needs the command built with `--features rustls`"
            ))
        }
        _ => return Err(format!("{url}: not an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url}: no host"));
    }
    Ok(())
}

impl Alerter {
    /// Opens the outbox in the store (a SQLite file, created if needed, or PostgreSQL) and
    /// starts delivering, first what an earlier run left undelivered; on PostgreSQL, only
    /// once told it leads ([`Alerter::lead`]).
    pub fn start(store: impl Into<Location>, config: AlertConfig) -> Result<Alerter, String> {
        let store = store.into();
        for url in config.webhooks.iter().chain(&config.alertmanagers) {
            check_url(url)?;
        }
        let destinations = destinations(&config);
        let shared = Arc::new(Shared {
            stats: AlertStats::default(),
            state: Mutex::new(Signals::default()),
            wake: Condvar::new(),
        });
        if destinations.is_empty() {
            return Ok(Alerter {
                conn: None,
                destinations,
                max_pending: 0,
                shared,
                worker: None,
            });
        }
        let fail = |e: crate::db::Error| format!("alert outbox in {}: {e}", store.display());
        let conn = Db::open(&store).map_err(fail)?;
        conn.sqlite_schema(SCHEMA).map_err(fail)?;
        prune(&conn, now_ms() - KEEP_DONE_MS).map_err(fail)?;
        shared.signals().leading = !conn.is_postgres();
        let worker_conn = Db::open(&store).map_err(fail)?;
        let worker = Worker::new(worker_conn, &destinations, &config, Arc::clone(&shared));
        let worker = std::thread::Builder::new()
            .name("modelwatch-alerts".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the alert thread: {e}"))?;
        Ok(Alerter {
            conn: Some(Mutex::new(conn)),
            destinations,
            max_pending: config.max_pending,
            shared,
            worker: Some(worker),
        })
    }

    /// Stores the event in the outbox (durable when this returns) for every destination
    /// and wakes the delivery thread. Never waits for the network.
    pub fn notify(&self, event: &IncidentEvent) -> Queued {
        let Some(conn) = &self.conn else {
            return Queued::Ignored;
        };
        let stats = &self.shared.stats;
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let queued = match self.store(&conn, event) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("modelwatch collect: cannot store an alert: {e}");
                Queued::Failed
            }
        };
        let counter = match queued {
            Queued::Stored => &stats.queued,
            Queued::Duplicate => &stats.duplicates,
            Queued::Dropped => &stats.dropped,
            Queued::Failed => &stats.errors,
            Queued::Ignored => return queued,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if queued == Queued::Stored {
            self.shared.signal(|s| s.new_events = true);
        }
        queued
    }

    /// Whether this collector delivers (on a shared store: whether it holds the lease);
    /// the others keep their hands off the outbox.
    pub fn lead(&self, leading: bool) {
        if self.shared.signals().leading != leading {
            self.shared.signal(|s| s.leading = leading);
        }
    }

    fn store(&self, conn: &Db, event: &IncidentEvent) -> crate::db::Result<Queued> {
        let (name, incident) = match event {
            IncidentEvent::Opened(i) => ("opened", i),
            IncidentEvent::Closed(i) => ("closed", i),
            // A kind of event this version does not announce.
            _ => return Ok(Queued::Ignored),
        };
        let id = incident.id();
        conn.transaction(|| {
            let exists = conn.query_row(
                "SELECT seq FROM alert_outbox WHERE incident = ?1 AND event = ?2",
                args![&id, name],
                |r| r.int(0),
            )?;
            if exists.is_some() {
                return Ok(Queued::Duplicate);
            }
            let pending = pending(conn, &self.destinations)?;
            if pending as usize + self.destinations.len() > self.max_pending {
                return Ok(Queued::Dropped);
            }
            // ON CONFLICT: another collector's evaluation of the same window, racing a
            // takeover, stores it once (and this one then finds no row: a duplicate).
            let seq = conn.query_row(
                "INSERT INTO alert_outbox (incident, event, deployment, kind, subject, text,
                     opened_ms, closed_ms, webhook, enqueued_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (incident, event) DO NOTHING RETURNING seq",
                args![
                    &id,
                    name,
                    &incident.deployment,
                    incident.kind.name(),
                    &incident.subject,
                    &incident.text,
                    incident.opened_ms,
                    incident.closed_ms,
                    &webhook_body(name, incident).to_string(),
                    now_ms(),
                ],
                |r| r.int(0),
            )?;
            let Some(seq) = seq else {
                return Ok(Queued::Duplicate);
            };
            for d in &self.destinations {
                conn.execute(
                    "INSERT INTO alert_deliveries (destination, seq) VALUES (?1, ?2)",
                    args![d, seq],
                )?;
            }
            Ok(Queued::Stored)
        })
    }

    /// Counts since start.
    pub fn stats(&self) -> &AlertStats {
        &self.shared.stats
    }

    /// Waits up to `within` for every delivery to be made (a collector that stops sends
    /// what it can first); whether none is left. What is left goes on the next start.
    pub fn drain(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            // A collector that does not lead leaves the outbox to the one that does.
            if !self.shared.signals().leading || self.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deliveries not made yet to the configured destinations (earlier runs' included).
    pub fn pending(&self) -> u64 {
        let Some(conn) = &self.conn else {
            return 0;
        };
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        pending(&conn, &self.destinations).unwrap_or(0)
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        self.shared.signal(|s| s.stop = true);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Slack escapes these three in message text; anything else is shown as written.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The webhook's JSON: the incident's fields, and `text` for Slack-compatible receivers.
fn webhook_body(event: &str, i: &Incident) -> Value {
    let headline = match event {
        "opened" => format!("Incident opened in {}", i.deployment),
        _ => format!("Incident closed in {}", i.deployment),
    };
    let text = format!(
        "[modelwatch] {}: {} of {} (since {}). {}",
        headline,
        i.kind.name(),
        i.subject,
        format_utc(i.opened_ms),
        i.text
    );
    json!({
        "event": event,
        "id": i.id(),
        "deployment": i.deployment,
        "kind": i.kind.name(),
        "subject": i.subject,
        "opened_ms": i.opened_ms,
        "opened": format_utc(i.opened_ms),
        "last_seen_ms": i.last_seen_ms,
        "closed_ms": i.closed_ms,
        "closed": i.closed_ms.map(format_utc),
        "peak_score": i.peak_score,
        "peak_value": i.peak_value,
        "baseline_value": i.baseline_value,
        "baseline": i.baseline,
        "windows": i.windows,
        "summary": i.text,
        "text": slack_escape(&text),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One row of the outbox, as a destination sends it.
struct Row {
    seq: i64,
    incident: String,
    event: String,
    deployment: String,
    kind: String,
    subject: String,
    text: String,
    opened_ms: i64,
    closed_ms: Option<i64>,
    webhook: String,
}

/// Alertmanager's alert for a row: firing alerts carry an `endsAt` four re-sends ahead,
/// as Prometheus does, so that Alertmanager's `resolve_timeout` does not matter.
fn alertmanager_alert(row: &Row, resend: Duration) -> Value {
    let ends = row.closed_ms.unwrap_or_else(|| {
        now_ms().saturating_add(4 * resend.as_millis().min(i64::MAX as u128 / 4) as i64)
    });
    json!({
        "labels": {
            "alertname": "modelwatch_incident",
            "deployment": row.deployment,
            "kind": row.kind,
            "subject": row.subject,
        },
        "annotations": { "summary": row.text },
        "startsAt": format_utc(row.opened_ms),
        "endsAt": format_utc(ends),
    })
}

/// How a delivery attempt ended.
enum Outcome {
    Delivered,
    /// A 3xx or 4xx that retrying cannot fix.
    Refused(String),
    Retry(String),
}

struct Destination {
    name: String,
    failures: u32,
    retry_at: Instant,
    /// Alertmanager only: when open incidents are sent again.
    resend_at: Option<Instant>,
}

struct Worker {
    conn: Db,
    agent: ureq::Agent,
    destinations: Vec<Destination>,
    config: AlertConfig,
    shared: Arc<Shared>,
}

const ROW_COLUMNS: &str = "o.seq, o.incident, o.event, o.deployment, o.kind, o.subject, o.text,
    o.opened_ms, o.closed_ms, o.webhook";

fn row(r: &crate::db::Row<'_>) -> crate::db::Result<Row> {
    Ok(Row {
        seq: r.int(0)?,
        incident: r.text(1)?,
        event: r.text(2)?,
        deployment: r.text(3)?,
        kind: r.text(4)?,
        subject: r.text(5)?,
        text: r.text(6)?,
        opened_ms: r.int(7)?,
        closed_ms: r.opt_int(8)?,
        webhook: r.text(9)?,
    })
}

impl Worker {
    fn new(conn: Db, names: &[String], config: &AlertConfig, shared: Arc<Shared>) -> Worker {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            // A redirect could turn the POST into a GET elsewhere: a destination is exact.
            .max_redirects(0)
            .user_agent(concat!("modelwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let now = Instant::now();
        Worker {
            conn,
            agent,
            destinations: names
                .iter()
                .map(|name| Destination {
                    name: name.clone(),
                    failures: 0,
                    retry_at: now,
                    // Not at once: the outbox's own deliveries come first, and a
                    // restart within `resend` finds Alertmanager still holding the alert.
                    resend_at: name
                        .starts_with("alertmanager ")
                        .then_some(now + config.resend),
                })
                .collect(),
            config: config.clone(),
            shared,
        }
    }

    fn stopping(&self) -> bool {
        self.shared.signals().stop
    }

    fn run(mut self) {
        loop {
            let leading = {
                let mut signals = self.shared.signals();
                signals.new_events = false;
                signals.leading
            };
            let mut wake = Instant::now() + self.config.resend;
            for i in (0..self.destinations.len()).filter(|_| leading) {
                if let Some(at) = self.serve(i) {
                    wake = wake.min(at);
                }
            }
            let signals = self.shared.signals();
            if signals.stop {
                break;
            }
            if signals.new_events || signals.leading != leading {
                continue;
            }
            let wait = wake.saturating_duration_since(Instant::now());
            drop(self.shared.wake.wait_timeout(signals, wait));
        }
    }

    /// Sends destination `i`'s pending events in order until one fails; then, for
    /// Alertmanager, re-sends the open incidents when due. Returns when it wants to run
    /// again, if it has something to wait for.
    fn serve(&mut self, i: usize) -> Option<Instant> {
        let now = Instant::now();
        if self.destinations[i].retry_at > now {
            return Some(self.destinations[i].retry_at);
        }
        loop {
            if self.stopping() {
                return None;
            }
            let next = self.conn.query_row(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM alert_deliveries d JOIN alert_outbox o
                         ON o.seq = d.seq
                     WHERE d.destination = ?1 AND d.state = 'pending'
                     ORDER BY d.seq LIMIT 1"
                ),
                args![&self.destinations[i].name],
                row,
            );
            let row = match next {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Some(self.outbox_error(i, &e)),
            };
            let outcome = self.send(&self.destinations[i].name, &row);
            let (state, counter) = match &outcome {
                Outcome::Delivered => ("delivered", &self.shared.stats.delivered),
                Outcome::Refused(why) => {
                    eprintln!(
                        "modelwatch collect: {} refused the {} event of {}: {why}; not retried",
                        self.destinations[i].name, row.event, row.incident
                    );
                    ("refused", &self.shared.stats.refused)
                }
                Outcome::Retry(why) => {
                    self.shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let d = &mut self.destinations[i];
                    d.failures = d.failures.saturating_add(1);
                    let delay = self
                        .config
                        .retry_min
                        .saturating_mul(1 << (d.failures - 1).min(20))
                        .min(self.config.retry_max);
                    if d.failures == 1 {
                        eprintln!(
                            "modelwatch collect: {} failed: {why}; retrying with back-off",
                            d.name
                        );
                    }
                    d.retry_at = Instant::now() + delay;
                    let _ = self.conn.execute(
                        "UPDATE alert_deliveries SET attempts = attempts + 1
                         WHERE destination = ?1 AND seq = ?2",
                        args![&d.name, row.seq],
                    );
                    return Some(d.retry_at);
                }
            };
            self.destinations[i].failures = 0;
            if let Err(e) = self.conn.execute(
                "UPDATE alert_deliveries SET state = ?1, attempts = attempts + 1, done_ms = ?2
                 WHERE destination = ?3 AND seq = ?4",
                args![state, now_ms(), &self.destinations[i].name, row.seq],
            ) {
                return Some(self.outbox_error(i, &e));
            }
            // Counted once recorded: a reader of the counts then finds the outbox agree.
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.resend_open(i)
    }

    /// Alertmanager forgets a firing alert that is not sent again: every `resend`, the
    /// incidents opened (and delivered to it) but not closed are posted again, best
    /// effort (the next round repeats it).
    fn resend_open(&mut self, i: usize) -> Option<Instant> {
        let d = &mut self.destinations[i];
        let at = d.resend_at?;
        let now = Instant::now();
        if at > now {
            return Some(at);
        }
        d.resend_at = Some(now + self.config.resend);
        let firing = self.conn.query_map(
            &format!(
                "SELECT {ROW_COLUMNS} FROM alert_deliveries d JOIN alert_outbox o ON o.seq = d.seq
                 WHERE d.destination = ?1 AND d.state = 'delivered' AND o.event = 'opened'
                   AND NOT EXISTS (SELECT 1 FROM alert_outbox c
                                   WHERE c.incident = o.incident AND c.event = 'closed')
                 ORDER BY o.seq",
            ),
            args![&d.name],
            row,
        );
        match firing {
            Ok(rows) if !rows.is_empty() => {
                let url = d.name["alertmanager ".len()..].to_owned();
                let body: Vec<Value> = rows
                    .iter()
                    .map(|r| alertmanager_alert(r, self.config.resend))
                    .collect();
                if let Outcome::Retry(why) | Outcome::Refused(why) =
                    self.post(&url, &Value::Array(body).to_string(), None)
                {
                    eprintln!("modelwatch collect: re-sending open alerts to {url}: {why}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                self.outbox_error(i, &e);
            }
        }
        self.destinations[i].resend_at
    }

    fn outbox_error(&mut self, i: usize, e: &crate::db::Error) -> Instant {
        self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("modelwatch collect: alert outbox: {e}");
        let d = &mut self.destinations[i];
        d.retry_at = Instant::now() + self.config.retry_min.max(Duration::from_secs(1));
        d.retry_at
    }

    fn send(&self, destination: &str, row: &Row) -> Outcome {
        // Header values must be visible ASCII; the incident id has the subject's name.
        let key = hex(&Sha256::digest(format!("{}/{}", row.incident, row.event)));
        match destination.split_once(' ') {
            Some(("webhook", url)) => self.post(url, &row.webhook, Some(&key)),
            Some((_, url)) => {
                let alert = alertmanager_alert(row, self.config.resend);
                self.post(url, &Value::Array(vec![alert]).to_string(), Some(&key))
            }
            None => Outcome::Refused(format!("unknown destination {destination:?}")),
        }
    }

    fn post(&self, url: &str, body: &str, key: Option<&str>) -> Outcome {
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        match request.send(body) {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => Outcome::Delivered,
                    408 | 429 => Outcome::Retry(format!("HTTP {status}")),
                    // Redirects are not followed (see the agent) and retrying cannot help.
                    300..=499 => Outcome::Refused(format!("HTTP {status}")),
                    _ => Outcome::Retry(format!("HTTP {status}")),
                }
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_what_is_recent_or_still_waited_for() {
        let conn = Db::open(&Location::Sqlite(":memory:".into())).unwrap();
        conn.sqlite_schema(SCHEMA).unwrap();
        // (incident, enqueued at, states of its two deliveries)
        let rows = [
            ("old-done", 1, ["delivered", "refused"]),
            ("old-waiting", 1, ["delivered", "pending"]),
            ("new-done", 100, ["delivered", "delivered"]),
        ];
        for (incident, at, states) in rows {
            let seq = conn
                .query_row(
                    "INSERT INTO alert_outbox (incident, event, deployment, kind, subject, text,
                         opened_ms, webhook, enqueued_ms)
                     VALUES (?1, 'opened', 'd', 'drift', 's', 't', 0, '{}', ?2) RETURNING seq",
                    args![incident, at],
                    |r| r.int(0),
                )
                .unwrap()
                .unwrap();
            for (d, state) in ["a", "b"].iter().zip(states) {
                conn.execute(
                    "INSERT INTO alert_deliveries (destination, seq, state) VALUES (?1, ?2, ?3)",
                    args![*d, seq, state],
                )
                .unwrap();
            }
        }
        prune(&conn, 50).unwrap();
        let left = conn
            .query_map("SELECT incident FROM alert_outbox ORDER BY seq", &[], |r| {
                r.text(0)
            })
            .unwrap();
        assert_eq!(left, ["old-waiting", "new-done"]);
        let deliveries = conn
            .query_row("SELECT COUNT(*) FROM alert_deliveries", &[], |r| r.int(0))
            .unwrap();
        assert_eq!(deliveries, Some(4));
        assert_eq!(pending(&conn, &["b".into()]).unwrap(), 1);
        assert_eq!(pending(&conn, &["a".into()]).unwrap(), 0);
    }
}
