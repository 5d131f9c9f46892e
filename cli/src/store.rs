//! The SQLite store of `modelwatch collect`: one row per accepted summary, keyed by the
//! sending key's id, deployment, window start, instance and sequence, so a retried summary
//! is stored once and no key can pre-empt another key's (instance, sequence).

use modelwatch::WindowSummary;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// An open store.
pub struct Store {
    conn: Connection,
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
        Ok(Store { conn })
    }

    /// Stores a validated summary with its encoded bytes; durable when this returns.
    /// `key_id` is the id of the key that sent it ([`crate::keys::Key::id`]).
    pub fn insert(
        &self,
        key_id: &str,
        s: &WindowSummary,
        body: &[u8],
        received_ms: i64,
    ) -> rusqlite::Result<Stored> {
        let n = self.conn.execute(
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
        Ok(if n == 1 {
            Stored::New
        } else {
            Stored::Duplicate
        })
    }

    /// Summaries of a deployment (or all) within [from, to), oldest first. Rows that no
    /// longer decode are returned as errors, not skipped silently.
    pub fn load(
        &self,
        deployment: Option<&str>,
        from: i64,
        to: i64,
    ) -> rusqlite::Result<Vec<Result<WindowSummary, String>>> {
        let mut stmt = self.conn.prepare(
            "SELECT deployment, window_start, instance, sequence, body FROM windows
             WHERE (?1 IS NULL OR deployment = ?1) AND window_start >= ?2 AND window_start < ?3
             ORDER BY deployment, window_start, instance, sequence, key_id",
        )?;
        let rows = stmt.query_map(params![deployment, from, to], |r| {
            let id = format!(
                "{}@{}#{}/{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            );
            let body: Vec<u8> = r.get(4)?;
            Ok(WindowSummary::decode(&body).map_err(|e| format!("{id}: {e}")))
        })?;
        rows.collect()
    }

    /// Each deployment stored: its rows, first and last window start.
    pub fn deployments(&self) -> rusqlite::Result<Vec<(String, u64, i64, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT deployment, COUNT(*), MIN(window_start), MAX(window_start) FROM windows
             GROUP BY deployment ORDER BY deployment",
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
