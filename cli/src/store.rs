//! The SQLite store of `modelwatch collect`: one row per accepted summary, keyed by
//! deployment, window start, instance and sequence, so a retried summary is stored once.

use modelwatch::WindowSummary;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

pub struct Store {
    conn: Connection,
}

/// Whether a summary was new or a retry of one already stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    New,
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
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS windows (
                deployment   TEXT    NOT NULL,
                window_start INTEGER NOT NULL,
                instance     INTEGER NOT NULL,
                sequence     INTEGER NOT NULL,
                window_ms    INTEGER NOT NULL,
                predictions  INTEGER NOT NULL,
                received_ms  INTEGER NOT NULL,
                body         BLOB    NOT NULL,
                PRIMARY KEY (deployment, window_start, instance, sequence)
            ) WITHOUT ROWID;",
        )?;
        Ok(Store { conn })
    }

    /// Stores a validated summary with its encoded bytes; durable when this returns.
    pub fn insert(
        &self,
        s: &WindowSummary,
        body: &[u8],
        received_ms: i64,
    ) -> rusqlite::Result<Stored> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO windows VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
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
             ORDER BY deployment, window_start, instance, sequence",
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
