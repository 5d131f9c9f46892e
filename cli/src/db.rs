//! The database under the command's store: a SQLite file (the default) or a PostgreSQL
//! database (`postgres://` URL) that any number of collectors share.
//!
//! One small API over both, so that the store, the watch and the alert outbox write their
//! SQL once: statements use SQLite's numbered parameters (`?1`), rewritten to `$1` for
//! PostgreSQL, and the SQL both understand (`INSERT ... ON CONFLICT`, `RETURNING`,
//! `CAST(.. AS BIGINT)`). Only the schema differs: SQLite's is created in place by its
//! modules, PostgreSQL's by the numbered migrations in `cli/migrations/postgres/`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store is: `--store` and `MODELWATCH_STORE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, `postgres://user:password@host:port/database`.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL, or else a SQLite path.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// For messages: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

impl std::str::FromStr for Location {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Location, Self::Err> {
        Ok(Location::parse(s))
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::Sqlite(p.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Location {
        Location::Sqlite(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Location {
        l.clone()
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A database error, as text (both drivers' errors say what failed).
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error(e.to_string())
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        // The server's message and detail, not just "db error".
        match e.as_db_error() {
            Some(db) => Error(format!("{}: {}", db.severity(), db.message())),
            None => Error(e.to_string()),
        }
    }
}

impl From<String> for Error {
    fn from(e: String) -> Error {
        Error(e)
    }
}

/// Results of the database.
pub type Result<T> = std::result::Result<T, Error>;

/// A statement's parameter.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// An integer (BIGINT in PostgreSQL).
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// Bytes (BYTEA in PostgreSQL).
    Blob(&'a [u8]),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Value::OptText(v)
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

/// The parameters of a statement: `args![a, b]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::db::Value::from($v)),*] as &[$crate::db::Value<'_>] };
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Int(i) | Value::OptInt(Some(i)) => ValueRef::Integer(i),
            Value::Text(s) | Value::OptText(Some(s)) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::OptInt(None) | Value::OptText(None) => ValueRef::Null,
        }))
    }
}

impl postgres::types::ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        match self {
            Value::Int(v) => v.to_sql(ty, out),
            Value::OptInt(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::OptText(v) => v.to_sql(ty, out),
            Value::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    // Each variant's own type check, so that a mismatch is an error, not bad bytes.
    fn to_sql_checked(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        match self {
            Value::Int(v) => v.to_sql_checked(ty, out),
            Value::OptInt(v) => v.to_sql_checked(ty, out),
            Value::Text(v) => v.to_sql_checked(ty, out),
            Value::OptText(v) => v.to_sql_checked(ty, out),
            Value::Blob(v) => v.to_sql_checked(ty, out),
        }
    }
}

/// A result row of either database.
pub enum Row<'a> {
    /// SQLite's.
    Sqlite(&'a rusqlite::Row<'a>),
    /// PostgreSQL's.
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// An integer column.
    pub fn int(&self, i: usize) -> Result<i64> {
        Ok(match self {
            Row::Sqlite(r) => r.get(i)?,
            Row::Postgres(r) => r.try_get(i)?,
        })
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(match self {
            Row::Sqlite(r) => r.get(i)?,
            Row::Postgres(r) => r.try_get(i)?,
        })
    }

    /// A boolean (an integer in SQLite).
    pub fn flag(&self, i: usize) -> Result<bool> {
        Ok(match self {
            Row::Sqlite(r) => r.get(i)?,
            Row::Postgres(r) => r.try_get(i)?,
        })
    }

    /// A text column.
    pub fn text(&self, i: usize) -> Result<String> {
        Ok(match self {
            Row::Sqlite(r) => r.get(i)?,
            Row::Postgres(r) => r.try_get(i)?,
        })
    }

    /// A bytes column, borrowed from the row.
    pub fn blob(&self, i: usize) -> Result<&[u8]> {
        Ok(match self {
            Row::Sqlite(r) => r.get_ref(i)?.as_blob().map_err(|e| Error(e.to_string()))?,
            Row::Postgres(r) => r.try_get(i)?,
        })
    }
}

/// PostgreSQL's schema, one migration per file, applied in order once per database.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_initial.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_queue_trigger.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_windows_by_time_whole_key.sql"),
    ),
];

/// Advisory lock keys of this command (PostgreSQL), an arbitrary prefix so that they do not
/// collide with other applications' on a shared server.
const MIGRATION_LOCK: i64 = 0x6d77_0001;

/// How long the server waits on a silent client before it probes, and how it probes: a
/// collector whose host died loses its session (and its lease) within 10 + 3 × 5 = 25 s.
const KEEPALIVE: (u32, u32, u32) = (10, 5, 3);

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

struct Pg {
    config: postgres::Config,
    /// `None` after the connection was lost: the next statement reconnects.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// Advisory locks this session holds (dropped with the session).
    leases: Vec<i64>,
}

/// A connection. Its methods take `&self` (as rusqlite's do): a statement runs to its end
/// before the next starts, so the inner borrow is never held across calls.
pub struct Db {
    conn: RefCell<Conn>,
}

impl Db {
    /// Opens the database: a SQLite file (WAL, full sync: a commit is durable when it
    /// returns), or a PostgreSQL connection, its schema migrated first.
    pub fn open(location: &Location) -> Result<Db> {
        let conn = match location {
            Location::Sqlite(path) => {
                let c = rusqlite::Connection::open(path)?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "FULL")?;
                c.busy_timeout(Duration::from_secs(10))?;
                // Room for the batch INSERTs of every size (store.rs) beside the rest.
                c.set_prepared_statement_cache_capacity(128);
                Conn::Sqlite(c)
            }
            Location::Postgres(url) => {
                let mut config: postgres::Config = url
                    .parse()
                    .map_err(|e| Error(format!("{}: not a PostgreSQL URL ({e})", redact(url))))?;
                config
                    .keepalives(true)
                    .keepalives_idle(Duration::from_secs(u64::from(KEEPALIVE.0)))
                    .connect_timeout(Duration::from_secs(10))
                    .application_name("modelwatch");
                let mut client = connect(&config)?;
                migrate(&mut client)?;
                Conn::Postgres(Box::new(Pg {
                    config,
                    client: Some(client),
                    statements: HashMap::new(),
                    leases: Vec::new(),
                }))
            }
        };
        Ok(Db {
            conn: RefCell::new(conn),
        })
    }

    /// Whether this is PostgreSQL (shared by several collectors).
    pub fn is_postgres(&self) -> bool {
        matches!(*self.conn.borrow(), Conn::Postgres(_))
    }

    /// Runs SQL without parameters on SQLite only: its schema, which PostgreSQL's
    /// migrations create.
    pub fn sqlite_schema(&self, sql: &str) -> Result<()> {
        if let Conn::Sqlite(c) = &*self.conn.borrow() {
            c.execute_batch(sql)?;
        }
        Ok(())
    }

    /// Runs SQL without parameters (transaction control).
    pub fn batch(&self, sql: &str) -> Result<()> {
        self.with(|conn| match conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => Ok(live(&mut pg.client)?.batch_execute(sql)?),
        })
    }

    /// Runs a statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        self.with(|conn| match conn {
            Conn::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))? as u64)
            }
            Conn::Postgres(pg) => {
                let client = live(&mut pg.client)?;
                let stmt = prepared(client, &mut pg.statements, sql)?;
                Ok(client.execute(&stmt, &pg_params(params))?)
            }
        })
    }

    /// Hands each row to `each`, as they come (PostgreSQL streams them); `each` must not
    /// use this connection.
    pub fn query_each(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        self.with(|conn| match conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    each(&Row::Sqlite(r))?;
                }
                Ok(())
            }
            Conn::Postgres(pg) => {
                use postgres::fallible_iterator::FallibleIterator;
                let client = live(&mut pg.client)?;
                let stmt = prepared(client, &mut pg.statements, sql)?;
                let mut rows = client.query_raw(&stmt, pg_params(params))?;
                while let Some(r) = rows.next()? {
                    each(&Row::Postgres(&r))?;
                }
                Ok(())
            }
        })
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, params, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, mapped; `None` if there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.query_each(sql, params, |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs `f` in a transaction: committed if it returns `Ok`, rolled back if not.
    pub fn transaction<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.run_in("BEGIN", f)
    }

    /// Runs `f` as the only drainer of the queue table `queue`, in a transaction in which
    /// the rows `f` reads are the rows its `DELETE FROM queue` deletes: two processes that
    /// drain the same queue wait for each other, and a row added meanwhile stays for the
    /// next round. SQLite: the store's write lock (`BEGIN IMMEDIATE`), which also holds
    /// writers off. PostgreSQL: a session advisory lock per queue, taken before the
    /// transaction starts so that its REPEATABLE READ snapshot sees the previous drainer's
    /// work, and that snapshot for what is read and deleted; writers are not held up.
    pub fn exclusive<T>(&self, queue: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.is_postgres() {
            return self.run_in("BEGIN IMMEDIATE", f);
        }
        // A stable key per queue name under this command's prefix (FNV-1a).
        let hash = queue.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let key = (0x6d77_i64 << 32) | i64::from(hash);
        self.execute("SELECT pg_advisory_lock(?1)", &[Value::Int(key)])?;
        let out = self.run_in("BEGIN ISOLATION LEVEL REPEATABLE READ", f);
        // Lost with the session if the connection is (then nothing is left to release).
        let _ = self.execute("SELECT pg_advisory_unlock(?1)", &[Value::Int(key)]);
        out
    }

    fn run_in<T>(&self, begin: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.batch(begin)?;
        // Rolled back on an error (of `f` or of the commit) and on a panic alike: a
        // transaction left open would hold SQLite's write lock and fail every later BEGIN
        // on this connection.
        struct RollBack<'a>(Option<&'a Db>);
        impl Drop for RollBack<'_> {
            fn drop(&mut self) {
                if let Some(db) = self.0 {
                    let _ = db.batch("ROLLBACK");
                }
            }
        }
        let mut guard = RollBack(Some(self));
        let t = f()?;
        self.batch("COMMIT")?;
        guard.0 = None;
        Ok(t)
    }

    /// Whether this connection holds the lease `key` (taking it if it is free): SQLite is
    /// one collector's own file, so always; PostgreSQL, a session advisory lock, held until
    /// this session ends (a collector that dies loses it with its connection).
    pub fn try_lease(&self, key: i64) -> Result<bool> {
        self.with(|conn| match conn {
            Conn::Sqlite(_) => Ok(true),
            Conn::Postgres(pg) => {
                if pg.leases.contains(&key) {
                    // Still ours only if the session still is.
                    live(&mut pg.client)?.batch_execute("SELECT 1")?;
                    return Ok(true);
                }
                let row =
                    live(&mut pg.client)?.query_one("SELECT pg_try_advisory_lock($1)", &[&key])?;
                let got: bool = row.try_get(0)?;
                if got {
                    pg.leases.push(key);
                }
                Ok(got)
            }
        })
    }

    /// Runs `f` on the connection; a PostgreSQL connection found lost is dropped (with its
    /// leases and prepared statements) so that the next call reconnects.
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.borrow_mut();
        if let Conn::Postgres(pg) = &mut *conn {
            if pg.client.as_ref().is_none_or(|c| c.is_closed()) {
                pg.client = None;
                pg.statements.clear();
                pg.leases.clear();
                pg.client = Some(connect(&pg.config)?);
            }
        }
        let out = f(&mut conn);
        if let Conn::Postgres(pg) = &mut *conn {
            if pg.client.as_ref().is_some_and(|c| c.is_closed()) {
                pg.client = None;
            }
        }
        out
    }
}

fn live(client: &mut Option<postgres::Client>) -> Result<&mut postgres::Client> {
    client
        .as_mut()
        .ok_or_else(|| Error("the connection to PostgreSQL was lost".into()))
}

fn connect(config: &postgres::Config) -> Result<postgres::Client> {
    let mut client = config.connect(postgres::NoTls)?;
    // The server side of the keepalive: a dead client's session, and its leases, go
    // within a bounded time (ignored on Unix sockets, where death is seen at once).
    let (idle, interval, count) = KEEPALIVE;
    client.batch_execute(&format!(
        "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval};
         SET tcp_keepalives_count = {count}"
    ))?;
    Ok(client)
}

/// The statement for `sql`, prepared once per session, its `?N` parameters as `$N`.
fn prepared(
    client: &mut postgres::Client,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement> {
    if let Some(s) = statements.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(&sql.replace('?', "$"))?;
    statements.insert(sql.to_owned(), s.clone());
    Ok(s)
}

fn pg_params<'a>(params: &'a [Value<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// Applies the migrations not yet recorded in `schema_migrations`, each in its own
/// transaction, under an advisory lock: collectors started together migrate once.
fn migrate(client: &mut postgres::Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let done: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(newer) = done
        .iter()
        .find(|v| !MIGRATIONS.iter().any(|(m, _)| m == *v))
    {
        return Err(Error(format!(
            "the database has schema version {newer}, newer than this modelwatch knows; upgrade it"
        )));
    }
    for (version, sql) in MIGRATIONS {
        if !done.contains(version) {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_passwords_stay_out_of_messages() {
        let l = Location::parse("postgres://mw:secret@db:5432/modelwatch");
        assert_eq!(l.display(), "postgres://mw:***@db:5432/modelwatch");
        assert!(matches!(
            Location::parse("postgresql://db/x"),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::parse("store.db"),
            Location::Sqlite("store.db".into())
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
