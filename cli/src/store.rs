//! The SQLite store of `modelwatch collect`: one row per accepted summary, keyed by the
//! sending key's id, deployment, window start, instance and sequence, so a retried summary
//! is stored once and no key can pre-empt another key's (instance, sequence).
//!
//! Beside the windows as sent, hourly and daily rollups: per deployment (and hash key), the
//! merge of every window starting in the hour or day. Storing a window notes it in
//! `unrolled` (no merge on the acknowledging path); [`Store::roll_up_pending`] merges the
//! noted windows into their rollups, each touched rollup decoded and encoded once. Summaries merge
//! exactly (counts add, sketches merge bucket by bucket), so a report over rollups says what
//! one over the windows would. Each resolution is pruned after its own retention
//! (`collect --retain`).
//!
//! The same SQL runs on SQLite and on PostgreSQL ([`crate::db`]); on PostgreSQL any number
//! of collectors share the store, the primary key deduplicating across them.

use crate::args;
use crate::db::{Db, Location, Result};
use modelwatch::WindowSummary;
use std::collections::BTreeMap;

/// An open store.
pub struct Store {
    db: Db,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored now.
    New,
    /// Already stored (by the same key): a retry.
    Duplicate,
}

impl Store {
    /// Opens (or creates) a store, a SQLite path or a PostgreSQL URL; a commit is durable
    /// when it returns.
    pub fn open(location: impl Into<Location>) -> Result<Store> {
        let db = Db::open(&location.into())?;
        if !db.is_postgres() {
            migrate(&db)?;
            add_rollups(&db)?;
            db.sqlite_schema(UNEVALUATED_SCHEMA)?;
            db.sqlite_schema(QUEUE_TRIGGER)?;
        }
        Ok(Store {
            db,
            rollup_limit: modelwatch::MAX_SUMMARY_BYTES,
        })
    }

    /// Rollups are kept under `bytes` encoded (default and most: `MAX_SUMMARY_BYTES`, what
    /// decodes); a window that would take one past it is left out of it.
    pub fn with_rollup_limit(mut self, bytes: usize) -> Store {
        self.rollup_limit = bytes.min(modelwatch::MAX_SUMMARY_BYTES);
        self
    }

    /// Stores one summary: [`insert_batch`](Self::insert_batch) of one.
    pub fn insert(
        &self,
        key_id: &str,
        s: &WindowSummary,
        body: &[u8],
        received_ms: i64,
    ) -> Result<Stored> {
        let mut stored = self.insert_batch(&[(key_id, s, body, received_ms)])?;
        Ok(stored.remove(0))
    }

    /// Stores validated summaries with their encoded bytes, and notes them for the rollups
    /// ([`Store::roll_up_pending`]) and the incident evaluation ([`crate::watch`]), in one
    /// transaction: one fsync for the batch (group
    /// commit, `collect.rs`); durable when this returns. Each arrives as (`key_id`, the
    /// summary, its bytes, when it was received); `key_id` is the id of the key that sent
    /// it ([`crate::keys::Key::id`]). A retry changes nothing: it is reported as
    /// [`Stored::Duplicate`], as is a summary that appears twice in the batch.
    pub fn insert_batch(
        &self,
        batch: &[(&str, &WindowSummary, &[u8], i64)],
    ) -> Result<Vec<Stored>> {
        // In key order: two collectors storing the same summaries at once (an agent's
        // retry elsewhere) wait for each other instead of deadlocking (PostgreSQL).
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| {
            let (key_id, s, ..) = batch[i];
            (
                key_id,
                s.deployment(),
                s.window_start(),
                s.instance(),
                s.sequence(),
            )
        });
        self.db.transaction(|| {
            let mut stored = vec![Stored::Duplicate; batch.len()];
            // Up to INSERT_ROWS rows a statement (one round trip to PostgreSQL); the
            // rows it returns are the new ones (a retry of a stored summary, or a second
            // copy in the same batch, conflicts and is not returned).
            let mut rest = &order[..];
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(insert_chunk(rest, |i| batch[i].2.len()));
                rest = after;
                let mut params = Vec::with_capacity(chunk.len() * 9);
                for &i in chunk {
                    let (key_id, s, body, received_ms) = batch[i];
                    params.extend_from_slice(args![
                        key_id,
                        s.deployment(),
                        s.window_start(),
                        s.instance() as i64,
                        s.sequence() as i64,
                        s.window_length() as i64,
                        s.predictions() as i64,
                        received_ms,
                        body
                    ]);
                }
                let new = self.db.query_map(&insert_rows(chunk.len()), &params, |r| {
                    Ok((r.text(0)?, r.text(1)?, r.int(2)?, r.int(3)?, r.int(4)?))
                })?;
                // A new row is queued for the rollups and the evaluation by the trigger
                // `windows_queued`, in this statement.
                for (key_id, deployment, start, instance, sequence) in new {
                    let first = chunk.iter().find(|&&i| {
                        let (k, s, ..) = batch[i];
                        stored[i] == Stored::Duplicate
                            && (k, s.deployment(), s.window_start())
                                == (key_id.as_str(), deployment.as_str(), start)
                            && (s.instance() as i64, s.sequence() as i64) == (instance, sequence)
                    });
                    if let Some(&i) = first {
                        stored[i] = Stored::New;
                    }
                }
            }
            Ok(stored)
        })
    }

    /// Summaries of a deployment (or all) within [from, to), oldest first. Rows that no
    /// longer decode are returned as errors, not skipped silently.
    pub fn load(
        &self,
        deployment: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<std::result::Result<WindowSummary, String>>> {
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
        mut each: impl FnMut(std::result::Result<WindowSummary, String>),
    ) -> Result<()> {
        let sql = match resolution {
            Resolution::Window => {
                "SELECT deployment, window_start, instance, sequence, body FROM windows
                 WHERE (CAST(?1 AS TEXT) IS NULL OR deployment = ?1)
                   AND window_start >= ?2 AND window_start < ?3
                 ORDER BY deployment, window_start, instance, sequence, key_id"
            }
            _ => {
                "SELECT deployment, window_start, key_fingerprint, left_out, body FROM rollups
                 WHERE resolution_ms = ?4 AND (CAST(?1 AS TEXT) IS NULL OR deployment = ?1)
                   AND window_start >= ?2 AND window_start < ?3
                 ORDER BY deployment, window_start, key_fingerprint"
            }
        };
        let each_row = |r: &crate::db::Row<'_>| {
            let (deployment, start) = (r.text(0)?, r.int(1)?);
            let (c2, c3) = (r.int(2)?, r.int(3)?);
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
            each(WindowSummary::decode(r.blob(4)?).map_err(|e| format!("{id}: {e}")));
            Ok(())
        };
        match resolution.bucket_ms() {
            None => self
                .db
                .query_each(sql, args![deployment, from, to], each_row),
            Some(bucket) => self
                .db
                .query_each(sql, args![deployment, from, to, bucket], each_row),
        }
    }

    /// The rows at `resolution` of the deployment with the most of them in [from, to)
    /// (rows, not bodies: from the index).
    pub fn rows_in(
        &self,
        resolution: Resolution,
        deployment: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<u64> {
        let sql = match resolution {
            Resolution::Window => {
                "SELECT MAX(n) FROM (SELECT COUNT(DISTINCT window_start) AS n FROM windows
                 WHERE (CAST(?1 AS TEXT) IS NULL OR deployment = ?1)
                   AND window_start >= ?2 AND window_start < ?3
                 GROUP BY deployment) AS per_deployment"
            }
            _ => {
                "SELECT MAX(n) FROM (SELECT COUNT(DISTINCT window_start) AS n FROM rollups
                 WHERE resolution_ms = ?4 AND (CAST(?1 AS TEXT) IS NULL OR deployment = ?1)
                   AND window_start >= ?2 AND window_start < ?3
                 GROUP BY deployment) AS per_deployment"
            }
        };
        let n = |r: &crate::db::Row<'_>| r.opt_int(0);
        let n = match resolution.bucket_ms() {
            None => self.db.query_row(sql, args![deployment, from, to], n)?,
            Some(bucket) => self
                .db
                .query_row(sql, args![deployment, from, to, bucket], n)?,
        };
        Ok(n.flatten().unwrap_or(0) as u64)
    }
    /// Merges the windows stored since the last call into their hour's and day's rollups
    /// (per deployment and hash key: summaries of different keys do not merge), in one
    /// transaction; returns how many windows it merged. Each rollup touched is decoded and
    /// encoded once per call, however many of its windows came. A rollup that would encode
    /// past the largest summary (exception messages add up over a day) is left as it was
    /// and counts the windows as left out, so that it always decodes. Collectors sharing a
    /// store roll up one at a time, and a window stored meanwhile waits for the next round
    /// ([`Db::exclusive`]).
    pub fn roll_up_pending(&self) -> Result<u64> {
        // Nothing noted: no write lock taken (a report on a store it may only read).
        let noted = self
            .db
            .query_row("SELECT EXISTS (SELECT 1 FROM unrolled)", &[], |r| r.flag(0))?;
        if noted != Some(true) {
            return Ok(0);
        }
        self.db.exclusive("unrolled", || {
            // The new windows of each bucket, merged; a bucket is written once no later
            // window can fall in it (rows come by deployment, then start). Read in pages
            // (by key, after the last row read), as rollups are written between them.
            let mut deltas: BTreeMap<(i64, String, i64, u32), Delta> = BTreeMap::new();
            let mut merged = 0;
            let mut after: Option<(String, i64, i64, i64, String)> = None;
            loop {
                let page = |r: &crate::db::Row<'_>| {
                    let key = (r.text(0)?, r.int(1)?, r.int(2)?, r.int(3)?, r.text(4)?);
                    // No body: a window pruned since (NULL), or one that no longer decodes
                    // (named by every report reading windows).
                    let s = r.blob(5).ok().and_then(|b| WindowSummary::decode(b).ok());
                    Ok((key, s))
                };
                let rows = match &after {
                    None => self.db.query_map(&unrolled_page(""), &[], page)?,
                    Some((d, start, instance, sequence, key_id)) => self.db.query_map(
                        &unrolled_page(&format!("WHERE ({UNROLLED_ORDER}) > (?1, ?2, ?3, ?4, ?5)")),
                        args![d, *start, *instance, *sequence, key_id],
                        page,
                    )?,
                };
                let last_page = rows.len() < ROLL_UP_PAGE;
                for (key, s) in rows {
                    after = Some(key);
                    let Some(s) = s else {
                        continue;
                    };
                    let done: Vec<_> = deltas
                        .keys()
                        .filter(|(bucket, d, start, _)| {
                            d != s.deployment() || start + bucket <= s.window_start()
                        })
                        .cloned()
                        .collect();
                    for key in done {
                        let delta = deltas.remove(&key).expect("a key just listed");
                        self.write_rollup(key, delta)?;
                    }
                    for bucket in [HOUR, DAY] {
                        let key = (
                            bucket,
                            s.deployment().to_owned(),
                            s.window_start().div_euclid(bucket) * bucket,
                            s.key_fingerprint(),
                        );
                        match deltas.get_mut(&key) {
                            Some(d) => d.add(&s),
                            None => {
                                deltas.insert(key, Delta::of(&s));
                            }
                        }
                    }
                    merged += 1;
                }
                if last_page {
                    break;
                }
            }
            for (key, delta) in std::mem::take(&mut deltas) {
                self.write_rollup(key, delta)?;
            }
            self.db.execute("DELETE FROM unrolled", &[])?;
            Ok(merged)
        })
    }

    /// Merges new windows into a rollup row, or starts it.
    fn write_rollup(&self, key: (i64, String, i64, u32), delta: Delta) -> Result<()> {
        let (bucket, deployment, start, fingerprint) = key;
        let fp = i64::from(fingerprint);
        let old = self.db.query_row(
            "SELECT body, first_start, last_start, left_out FROM rollups
             WHERE resolution_ms = ?1 AND deployment = ?2 AND window_start = ?3
             AND key_fingerprint = ?4",
            args![bucket, &deployment, start, fp],
            |r| Ok((r.blob(0)?.to_vec(), r.int(1)?, r.int(2)?, r.int(3)?)),
        )?;
        let Delta {
            mut merged,
            mut first,
            mut last,
            windows,
            first_window,
        } = delta;
        let mut left_out = 0;
        let had_old = old.is_some();
        if let Some((old_body, old_first, old_last, old_left_out)) = old {
            let combined = WindowSummary::decode(&old_body)
                .ok()
                .and_then(|mut old| old.merge(&merged).is_ok().then_some(old));
            let Some(combined) = combined else {
                return self.leave_out(bucket, &deployment, start, fp, windows);
            };
            merged = combined;
            left_out = old_left_out;
            (first, last) = (first.min(old_first), last.max(old_last));
        }
        let mut body = merged.encode();
        if body.len() > self.rollup_limit {
            if had_old {
                // The old rollup stays; the new windows are counted out of it.
                return self.leave_out(bucket, &deployment, start, fp, windows);
            }
            // A new rollup: its first window, the others counted out.
            merged = first_window;
            (first, last) = (merged.window_start(), merged.window_start());
            left_out = windows - 1;
            body = merged.encode();
        }
        self.db.execute(
            "INSERT INTO rollups (resolution_ms, deployment, window_start,
                 key_fingerprint, windows, predictions, first_start, last_start, left_out, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (resolution_ms, deployment, window_start, key_fingerprint) DO UPDATE
             SET windows = excluded.windows, predictions = excluded.predictions,
                 first_start = excluded.first_start, last_start = excluded.last_start,
                 left_out = excluded.left_out, body = excluded.body",
            args![
                bucket,
                &deployment,
                start,
                fp,
                merged.merged_windows() as i64,
                merged.predictions() as i64,
                first,
                last,
                left_out,
                &body
            ],
        )?;
        Ok(())
    }

    /// Counts windows as left out of a rollup that stays as it was. (A first rollup over
    /// the limit has no row to count them on; the windows still have them.)
    fn leave_out(
        &self,
        bucket: i64,
        deployment: &str,
        start: i64,
        fingerprint: i64,
        windows: i64,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE rollups SET left_out = left_out + ?5 WHERE resolution_ms = ?1
             AND deployment = ?2 AND window_start = ?3 AND key_fingerprint = ?4",
            args![bucket, deployment, start, fingerprint, windows],
        )?;
        Ok(())
    }

    /// Before when `resolution` was pruned: it holds everything from there on; `None` if it
    /// was never pruned.
    pub fn pruned_before(&self, resolution: Resolution) -> Result<Option<i64>> {
        self.db.query_row(
            "SELECT before_ms FROM pruned WHERE resolution = ?1",
            args![resolution.name()],
            |r| r.int(0),
        )
    }

    /// Deletes, per resolution, what starts before its cutoff (Unix ms; a rollup goes only
    /// once its whole hour or day is before it); returns the rows deleted. Remembers each
    /// cutoff, so that a report knows which resolutions still cover a range.
    pub fn prune(&self, cutoffs: &[(Resolution, i64)]) -> Result<u64> {
        self.db.transaction(|| {
            let mut deleted = 0;
            for &(resolution, cutoff) in cutoffs {
                let complete_before = match resolution.bucket_ms() {
                    None => {
                        deleted += self.db.execute(
                            "DELETE FROM windows WHERE window_start < ?1",
                            args![cutoff],
                        )?;
                        cutoff
                    }
                    Some(bucket) => {
                        let first_kept = cutoff.div_euclid(bucket) * bucket;
                        deleted += self.db.execute(
                            "DELETE FROM rollups WHERE resolution_ms = ?1 AND window_start < ?2",
                            args![bucket, first_kept],
                        )?;
                        first_kept
                    }
                };
                self.db.execute(
                    "INSERT INTO pruned (resolution, before_ms) VALUES (?1, ?2)
                     ON CONFLICT (resolution) DO UPDATE SET before_ms = excluded.before_ms
                     WHERE excluded.before_ms > pruned.before_ms",
                    args![resolution.name(), complete_before],
                )?;
            }
            Ok(deleted)
        })
    }

    /// Each deployment stored: its summaries, first and last window start, as the daily
    /// rollups count them (they outlive the windows).
    pub fn deployments(&self) -> Result<Vec<(String, u64, i64, i64)>> {
        self.db.query_map(
            "SELECT deployment, CAST(SUM(windows) AS BIGINT), MIN(first_start), MAX(last_start)
             FROM rollups WHERE resolution_ms = 86400000 GROUP BY deployment ORDER BY deployment",
            &[],
            |r| Ok((r.text(0)?, r.int(1)? as u64, r.int(2)?, r.int(3)?)),
        )
    }

    /// How many summaries are stored.
    pub fn count(&self) -> Result<u64> {
        let n = self
            .db
            .query_row("SELECT COUNT(*) FROM windows", &[], |r| r.int(0))?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Sum of the stored summaries' predictions.
    pub fn predictions(&self) -> Result<u64> {
        let n = self.db.query_row(
            "SELECT CAST(SUM(predictions) AS BIGINT) FROM windows",
            &[],
            |r| r.opt_int(0),
        )?;
        Ok(n.flatten().unwrap_or(0) as u64)
    }
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The order in which [`Store::roll_up_pending`] reads the windows noted for the rollups.
const UNROLLED_ORDER: &str = "deployment, window_start, instance, sequence, key_id";

/// A page of [`ROLL_UP_PAGE`] noted windows after `filter`, each with its body (NULL for a
/// window pruned since). The page's keys are chosen first, then joined with their bodies:
/// sorted together with every noted body, SQLite read them all for every page.
fn unrolled_page(filter: &str) -> String {
    format!(
        "SELECT u.deployment, u.window_start, u.instance, u.sequence, u.key_id, w.body
         FROM (SELECT {UNROLLED_ORDER} FROM unrolled {filter}
               ORDER BY {UNROLLED_ORDER} LIMIT {ROLL_UP_PAGE}) u
         LEFT JOIN windows w USING (key_id, deployment, window_start, instance, sequence)
         ORDER BY u.deployment, u.window_start, u.instance, u.sequence, u.key_id"
    )
}
const ROLL_UP_PAGE: usize = 512;

/// New windows of one rollup, merged, with their first and last start and their count;
/// and the first of them alone, for a new rollup that the merge would take past the limit.
struct Delta {
    merged: WindowSummary,
    first: i64,
    last: i64,
    windows: i64,
    first_window: WindowSummary,
}

impl Delta {
    fn of(s: &WindowSummary) -> Delta {
        Delta {
            merged: s.clone(),
            first: s.window_start(),
            last: s.window_start(),
            windows: 1,
            first_window: s.clone(),
        }
    }

    /// Adds a window of the same deployment and key; one that does not merge is dropped.
    fn add(&mut self, s: &WindowSummary) {
        if self.merged.merge(s).is_ok() {
            self.first = self.first.min(s.window_start());
            self.last = self.last.max(s.window_start());
            self.windows += 1;
        }
    }
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
CREATE TABLE unrolled (
    key_id       TEXT    NOT NULL,
    deployment   TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    instance     INTEGER NOT NULL,
    sequence     INTEGER NOT NULL,
    PRIMARY KEY (key_id, deployment, window_start, instance, sequence)
) WITHOUT ROWID;
CREATE INDEX windows_by_time ON windows (deployment, window_start);";

/// The stored window of a key, decoded; `None` for a window pruned since, or one that no
/// longer decodes (every report reading windows names it).
pub fn stored_window(
    db: &Db,
    key_id: &str,
    deployment: &str,
    start: i64,
    instance: i64,
    sequence: i64,
) -> Result<Option<WindowSummary>> {
    let s = db.query_row(
        "SELECT body FROM windows WHERE key_id = ?1 AND deployment = ?2
             AND window_start = ?3 AND instance = ?4 AND sequence = ?5",
        args![key_id, deployment, start, instance, sequence],
        |r| Ok(WindowSummary::decode(r.blob(0)?).ok()),
    )?;
    Ok(s.flatten())
}

/// Rows in one INSERT statement at most (9 parameters each).
const INSERT_ROWS: usize = 64;

/// Body bytes in one INSERT statement at most, past its first row: far below PostgreSQL's
/// 1 GiB message limit, whatever the size of the summaries.
const INSERT_BYTES: usize = 64 << 20;

/// How many of `order`'s rows (at least one) the next INSERT takes.
fn insert_chunk(order: &[usize], body_len: impl Fn(usize) -> usize) -> usize {
    let mut bytes = 0;
    let fits = order.iter().take(INSERT_ROWS).take_while(|&&i| {
        bytes += body_len(i);
        bytes <= INSERT_BYTES
    });
    fits.count().max(1)
}

/// The INSERT of `n` windows, returning the key of each row it stored.
fn insert_rows(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|r| {
            let p: Vec<String> = (1..=9).map(|c| format!("?{}", r * 9 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO windows (key_id, deployment, window_start, instance, sequence,
             window_ms, predictions, received_ms, body)
         VALUES {} ON CONFLICT DO NOTHING
         RETURNING key_id, deployment, window_start, instance, sequence",
        rows.join(", ")
    )
}

/// Windows not yet handed to the incident evaluation ([`crate::watch`]), which drains them.
const UNEVALUATED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS unevaluated (
    key_id       TEXT    NOT NULL,
    deployment   TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    instance     INTEGER NOT NULL,
    sequence     INTEGER NOT NULL,
    PRIMARY KEY (key_id, deployment, window_start, instance, sequence)
) WITHOUT ROWID;";

/// Notes each stored window in the rollup and evaluation queues, in the statement that
/// stores it (PostgreSQL's is the same trigger, migration 2).
const QUEUE_TRIGGER: &str = "CREATE TRIGGER IF NOT EXISTS windows_queued AFTER INSERT ON windows
BEGIN
    INSERT INTO unrolled (key_id, deployment, window_start, instance, sequence)
        VALUES (NEW.key_id, NEW.deployment, NEW.window_start, NEW.instance, NEW.sequence);
    INSERT INTO unevaluated (key_id, deployment, window_start, instance, sequence)
        VALUES (NEW.key_id, NEW.deployment, NEW.window_start, NEW.instance, NEW.sequence);
END;";

/// Adds the rollup tables to a SQLite store written before them, every window noted for
/// the rollups (the next [`Store::roll_up_pending`] merges them), in one transaction.
fn add_rollups(db: &Db) -> Result<()> {
    let exists = || -> Result<bool> {
        let n = db.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'rollups'",
            &[],
            |r| r.int(0),
        )?;
        Ok(n.unwrap_or(0) > 0)
    };
    if exists()? {
        return Ok(());
    }
    db.exclusive("windows", || {
        if exists()? {
            return Ok(());
        }
        db.batch(ROLLUP_SCHEMA)?;
        db.batch(
            "INSERT INTO unrolled (key_id, deployment, window_start, instance, sequence)
             SELECT key_id, deployment, window_start, instance, sequence FROM windows",
        )
    })
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

/// Creates the table, or brings a SQLite store written before keys were scoped up to date.
/// SQLite cannot change a primary key in place, so the old table is copied into the new one
/// (its rows get the key id `''`) in one transaction: a crash leaves the old or the new store.
fn migrate(db: &Db) -> Result<()> {
    let has_key_id = || -> Result<Option<bool>> {
        let columns = db.query_map("SELECT name FROM pragma_table_info('windows')", &[], |r| {
            r.text(0)
        })?;
        Ok((!columns.is_empty()).then(|| columns.iter().any(|c| c == "key_id")))
    };
    if has_key_id()? == Some(true) {
        return Ok(());
    }
    // IMMEDIATE: a collector and a report opening the same old store migrate it once.
    db.exclusive("windows", || {
        if has_key_id()? == Some(false) {
            db.batch("ALTER TABLE windows RENAME TO windows_unscoped;")?;
            db.batch(SCHEMA)?;
            db.batch(
                "INSERT INTO windows (deployment, window_start, instance, sequence, window_ms,
                     predictions, received_ms, body)
                 SELECT deployment, window_start, instance, sequence, window_ms, predictions,
                     received_ms, body FROM windows_unscoped;
                 DROP TABLE windows_unscoped;",
            )
        } else {
            db.batch(SCHEMA)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_takes_at_most_its_rows_and_bytes_and_always_one_row() {
        let order: Vec<usize> = (0..200).collect();
        assert_eq!(insert_chunk(&order, |_| 6_500), INSERT_ROWS);
        assert_eq!(insert_chunk(&order[..5], |_| 6_500), 5);
        // 16 MiB bodies: four fit in 64 MiB.
        assert_eq!(insert_chunk(&order, |_| 16 << 20), 4);
        // A body over the limit alone still goes, alone.
        assert_eq!(insert_chunk(&order, |_| 100 << 20), 1);
        assert_eq!(
            insert_chunk(&order, |i| if i == 2 { 64 << 20 } else { 10 }),
            2
        );
    }
}
