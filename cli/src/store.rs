//! The SQLite store of `modelwatch collect`: one row per accepted summary, keyed by the
//! sending key's id, deployment, window start, instance and sequence, so a retried summary
//! is stored once and no key can pre-empt another key's (instance, sequence).
//!
//! Beside the windows as sent, hourly and daily rollups: per deployment (and hash key), the
//! merge of every window starting in the hour or day, updated in the same transaction as
//! the window is stored. Summaries merge exactly (counts add, sketches merge bucket by
//! bucket), so a report over rollups says what one over the windows would. Each resolution
//! is pruned after its own retention (`collect --retain`).

use modelwatch::WindowSummary;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// An open store.
pub struct Store {
    conn: Connection,
    rollup_limit: usize,
}

/// What the store holds a summary of: the windows as agents sent them (one minute by
/// default), or their hourly or daily rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    /// The windows as sent.
    Window,
    /// Merged per hour (UTC).
    Hour,
    /// Merged per day (UTC).
    Day,
}

impl Resolution {
    /// Finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Window, Resolution::Hour, Resolution::Day];

    /// Its name on the command line: `1m` (the windows, one minute by default), `1h`, `1d`.
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Window => "1m",
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    /// From its name on the command line.
    pub fn from_name(name: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The span a rollup covers; `None` for the windows as sent.
    pub fn bucket_ms(self) -> Option<i64> {
        match self {
            Resolution::Window => None,
            Resolution::Hour => Some(3_600_000),
            Resolution::Day => Some(86_400_000),
        }
    }
}

/// Whether a summary was new or a retry of one already stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored now.
    New,
    /// Already stored (by the same key): a retry.
    Duplicate,
}

impl Store {
    /// Opens (or creates) a store: WAL journal, full sync, so a commit is durable when it
    /// returns.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate(&conn)?;
        add_rollups(&conn)?;
        Ok(Store {
            conn,
            rollup_limit: modelwatch::MAX_SUMMARY_BYTES,
        })
    }

    /// Rollups are kept under `bytes` encoded (default and most: `MAX_SUMMARY_BYTES`, what
    /// decodes); a window that would take one past it is left out of it.
    pub fn with_rollup_limit(mut self, bytes: usize) -> Store {
        self.rollup_limit = bytes.min(modelwatch::MAX_SUMMARY_BYTES);
        self
    }

    /// Stores a validated summary with its encoded bytes, and merges it into its hour's and
    /// day's rollups, in one transaction; durable when this returns. `key_id` is the id of
    /// the key that sent it ([`crate::keys::Key::id`]). A retry changes nothing.
    pub fn insert(
        &self,
        key_id: &str,
        s: &WindowSummary,
        body: &[u8],
        received_ms: i64,
    ) -> rusqlite::Result<Stored> {
        let tx = self.conn.unchecked_transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO windows (key_id, deployment, window_start, instance, sequence,
                window_ms, predictions, received_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                key_id,
                s.deployment(),
                s.window_start(),
                s.instance() as i64,
                s.sequence() as i64,
                s.window_length() as i64,
                s.predictions() as i64,
                received_ms,
                body
            ],
        )?;
        if n == 0 {
            return Ok(Stored::Duplicate);
        }
        roll_up(&tx, s, self.rollup_limit)?;
        tx.commit()?;
        Ok(Stored::New)
    }

    /// Summaries of a deployment (or all) within [from, to), oldest first. Rows that no
    /// longer decode are returned as errors, not skipped silently.
    pub fn load(
        &self,
        deployment: Option<&str>,
        from: i64,
        to: i64,
    ) -> rusqlite::Result<Vec<Result<WindowSummary, String>>> {
        let mut out = Vec::new();
        self.scan(Resolution::Window, deployment, from, to, |s| out.push(s))?;
        Ok(out)
    }

    /// Hands each summary at `resolution` of a deployment (or all) starting within
    /// [from, to) to `each`, one at a time, in order of deployment and start (a rollup
    /// starts at its hour or day). Rows that no longer decode are handed over as errors.
    pub fn scan(
        &self,
        resolution: Resolution,
        deployment: Option<&str>,
        from: i64,
        to: i64,
        mut each: impl FnMut(Result<WindowSummary, String>),
    ) -> rusqlite::Result<()> {
        let sql = match resolution {
            Resolution::Window => {
                "SELECT deployment, window_start, instance, sequence, body FROM windows
                 WHERE (?1 IS NULL OR deployment = ?1) AND window_start >= ?2 AND window_start < ?3
                 ORDER BY deployment, window_start, instance, sequence, key_id"
            }
            _ => {
                "SELECT deployment, window_start, key_fingerprint, left_out, body FROM rollups
                 WHERE resolution_ms = ?4
                   AND (?1 IS NULL OR deployment = ?1) AND window_start >= ?2 AND window_start < ?3
                 ORDER BY deployment, window_start, key_fingerprint"
            }
        };
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = match resolution.bucket_ms() {
            None => stmt.query(params![deployment, from, to])?,
            Some(bucket) => stmt.query(params![deployment, from, to, bucket])?,
        };
        while let Some(r) = rows.next()? {
            let (deployment, start) = (r.get::<_, String>(0)?, r.get::<_, i64>(1)?);
            let (c2, c3) = (r.get::<_, i64>(2)?, r.get::<_, i64>(3)?);
            let id = match resolution {
                // Instance and sequence.
                Resolution::Window => format!("{deployment}@{start}#{c2}/{c3}"),
                // Key fingerprint, and the windows left out of the rollup.
                _ => {
                    let id = format!("{deployment}@{start} ({} rollup)", resolution.name());
                    if c3 > 0 {
                        each(Err(format!(
                            "{id}: {c3} window(s) left out, as the rollup would have passed the largest summary (the windows have them)"
                        )));
                    }
                    id
                }
            };
            let body = r.get_ref(4)?.as_blob()?;
            each(WindowSummary::decode(body).map_err(|e| format!("{id}: {e}")));
        }
        Ok(())
    }

    /// The rows at `resolution` of the deployment with the most of them in [from, to)
    /// (rows, not bodies: from the index).
    pub fn rows_in(
        &self,
        resolution: Resolution,
        deployment: Option<&str>,
        from: i64,
        to: i64,
    ) -> rusqlite::Result<u64> {
        let sql = match resolution {
            Resolution::Window => {
                "SELECT MAX(n) FROM (SELECT COUNT(DISTINCT window_start) AS n FROM windows
                 WHERE (?1 IS NULL OR deployment = ?1) AND window_start >= ?2 AND window_start < ?3
                 GROUP BY deployment)"
            }
            _ => {
                "SELECT MAX(n) FROM (SELECT COUNT(DISTINCT window_start) AS n FROM rollups
                 WHERE resolution_ms = ?4
                   AND (?1 IS NULL OR deployment = ?1) AND window_start >= ?2 AND window_start < ?3
                 GROUP BY deployment)"
            }
        };
        let n = |r: &rusqlite::Row<'_>| r.get::<_, Option<i64>>(0);
        let n = match resolution.bucket_ms() {
            None => self.conn.query_row(sql, params![deployment, from, to], n)?,
            Some(bucket) => self
                .conn
                .query_row(sql, params![deployment, from, to, bucket], n)?,
        };
        Ok(n.unwrap_or(0) as u64)
    }

    /// Before when `resolution` was pruned: it holds everything from there on; `None` if it
    /// was never pruned.
    pub fn pruned_before(&self, resolution: Resolution) -> rusqlite::Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT before_ms FROM pruned WHERE resolution = ?1",
                [resolution.name()],
                |r| r.get(0),
            )
            .optional()
    }

    /// Deletes, per resolution, what starts before its cutoff (Unix ms; a rollup goes only
    /// once its whole hour or day is before it); returns the rows deleted. Remembers each
    /// cutoff, so that a report knows which resolutions still cover a range.
    pub fn prune(&self, cutoffs: &[(Resolution, i64)]) -> rusqlite::Result<u64> {
        let tx = self.conn.unchecked_transaction()?;
        let mut deleted = 0;
        for &(resolution, cutoff) in cutoffs {
            let complete_before = match resolution.bucket_ms() {
                None => {
                    deleted +=
                        tx.execute("DELETE FROM windows WHERE window_start < ?1", [cutoff])?;
                    cutoff
                }
                Some(bucket) => {
                    let first_kept = cutoff.div_euclid(bucket) * bucket;
                    deleted += tx.execute(
                        "DELETE FROM rollups WHERE resolution_ms = ?1 AND window_start < ?2",
                        [bucket, first_kept],
                    )?;
                    first_kept
                }
            };
            tx.execute(
                "INSERT INTO pruned (resolution, before_ms) VALUES (?1, ?2)
                 ON CONFLICT (resolution) DO UPDATE SET before_ms = MAX(before_ms, ?2)",
                params![resolution.name(), complete_before],
            )?;
        }
        tx.commit()?;
        Ok(deleted as u64)
    }

    /// Each deployment stored: its summaries, first and last window start, as the daily
    /// rollups count them (they outlive the windows).
    pub fn deployments(&self) -> rusqlite::Result<Vec<(String, u64, i64, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT deployment, SUM(windows), MIN(first_start), MAX(last_start) FROM rollups
             WHERE resolution_ms = 86400000 GROUP BY deployment ORDER BY deployment",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?, r.get(3)?))
        })?;
        rows.collect()
    }

    /// How many summaries are stored.
    pub fn count(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM windows", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    }

    /// Sum of the stored summaries' predictions.
    pub fn predictions(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT SUM(predictions) FROM windows", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map(|n| n.flatten().unwrap_or(0) as u64)
    }
}

/// Merges a newly stored window into its hour's and day's rollups (per deployment and hash
/// key: summaries of different keys do not merge). A rollup that would encode past `limit`
/// bytes (exception messages add up over a day) is left as it was and counts the window as
/// left out, so that storing windows never stops on a rollup; reports name such rollups.
fn roll_up(conn: &Connection, s: &WindowSummary, limit: usize) -> rusqlite::Result<()> {
    for bucket in Resolution::ALL.iter().filter_map(|r| r.bucket_ms()) {
        let start = s.window_start().div_euclid(bucket) * bucket;
        let key = params![bucket, s.deployment(), start, s.key_fingerprint()];
        let old: Option<(Vec<u8>, i64, i64)> = conn
            .query_row(
                "SELECT body, first_start, last_start FROM rollups WHERE resolution_ms = ?1
                 AND deployment = ?2 AND window_start = ?3 AND key_fingerprint = ?4",
                key,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (merged, first, last) = match old {
            Some((body, first, last)) => {
                let merged = WindowSummary::decode(&body)
                    .and_then(|mut m| m.merge(s).map(|()| m))
                    .ok();
                (
                    merged,
                    first.min(s.window_start()),
                    last.max(s.window_start()),
                )
            }
            None => (Some(s.clone()), s.window_start(), s.window_start()),
        };
        let encoded = merged
            .map(|m| (m.encode(), m))
            .filter(|(body, _)| body.len() <= limit);
        let Some((body, merged)) = encoded else {
            conn.execute(
                "UPDATE rollups SET left_out = left_out + 1 WHERE resolution_ms = ?1
                 AND deployment = ?2 AND window_start = ?3 AND key_fingerprint = ?4",
                key,
            )?;
            continue;
        };
        conn.execute(
            "INSERT INTO rollups (resolution_ms, deployment, window_start, key_fingerprint,
                 windows, predictions, first_start, last_start, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT DO UPDATE SET windows = ?5, predictions = ?6, first_start = ?7,
                 last_start = ?8, body = ?9",
            params![
                bucket,
                s.deployment(),
                start,
                s.key_fingerprint(),
                merged.merged_windows() as i64,
                merged.predictions() as i64,
                first,
                last,
                body
            ],
        )?;
    }
    Ok(())
}

/// The rollups, what was pruned, and the index a report's range and resolution choice read.
const ROLLUP_SCHEMA: &str = "
CREATE TABLE rollups (
    resolution_ms   INTEGER NOT NULL,
    deployment      TEXT    NOT NULL,
    window_start    INTEGER NOT NULL,
    key_fingerprint INTEGER NOT NULL,
    windows         INTEGER NOT NULL,
    predictions     INTEGER NOT NULL,
    first_start     INTEGER NOT NULL,
    last_start      INTEGER NOT NULL,
    left_out        INTEGER NOT NULL DEFAULT 0,
    body            BLOB    NOT NULL,
    PRIMARY KEY (resolution_ms, deployment, window_start, key_fingerprint)
) WITHOUT ROWID;
CREATE TABLE pruned (resolution TEXT PRIMARY KEY, before_ms INTEGER NOT NULL);
CREATE INDEX windows_by_time ON windows (deployment, window_start);";

/// Adds the rollups to a store written before them, computed from its windows, in one
/// transaction.
fn add_rollups(conn: &Connection) -> rusqlite::Result<()> {
    let exists = |conn: &Connection| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'rollups'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if exists(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = (|| {
        if exists(conn)? {
            return Ok(());
        }
        conn.execute_batch(ROLLUP_SCHEMA)?;
        let mut stmt = conn.prepare(
            "SELECT body FROM windows ORDER BY deployment, window_start, instance, sequence, key_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            // A row that no longer decodes is named by every report that reads the
            // windows; the rollups leave it out.
            if let Ok(s) = WindowSummary::decode(r.get_ref(0)?.as_blob()?) {
                roll_up(conn, &s, modelwatch::MAX_SUMMARY_BYTES)?;
            }
        }
        Ok(())
    })();
    match done {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The table as this version writes it: deduplication per key id.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS windows (
    key_id       TEXT    NOT NULL DEFAULT '',
    deployment   TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    instance     INTEGER NOT NULL,
    sequence     INTEGER NOT NULL,
    window_ms    INTEGER NOT NULL,
    predictions  INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    body         BLOB    NOT NULL,
    PRIMARY KEY (key_id, deployment, window_start, instance, sequence)
) WITHOUT ROWID;";

/// Creates the table, or brings a store written before keys were scoped up to date. SQLite
/// cannot change a primary key in place, so the old table is copied into the new one (its
/// rows get the key id `''`) in one transaction: a crash leaves the old or the new store.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_key_id = |conn: &Connection| -> rusqlite::Result<Option<bool>> {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('windows')")?;
        let columns: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((!columns.is_empty()).then(|| columns.iter().any(|c| c == "key_id")))
    };
    if has_key_id(conn)? == Some(true) {
        return Ok(());
    }
    // IMMEDIATE: a collector and a report opening the same old store migrate it once.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = (|| {
        if has_key_id(conn)? == Some(false) {
            conn.execute_batch("ALTER TABLE windows RENAME TO windows_unscoped;")?;
            conn.execute_batch(SCHEMA)?;
            conn.execute_batch(
                "INSERT INTO windows (deployment, window_start, instance, sequence, window_ms,
                     predictions, received_ms, body)
                 SELECT deployment, window_start, instance, sequence, window_ms, predictions,
                     received_ms, body FROM windows_unscoped;
                 DROP TABLE windows_unscoped;",
            )?;
        } else {
            conn.execute_batch(SCHEMA)?;
        }
        Ok(())
    })();
    match done {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
