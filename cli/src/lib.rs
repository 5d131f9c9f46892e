//! The `modelwatch` command, as a library so that its parts are testable and the demo can
//! print a report: `inspect` reads summary files, `collect` receives summaries over HTTP
//! into SQLite or PostgreSQL, `report` finds issues against a baseline and renders text, JSON or HTML,
//! `profile` folds a training dataset into a baseline summary and `constraints` suggests
//! and checks constraints from one (`docs/baseline.md`).
//!
//! It lives in its own crate so that its dependencies (an HTTP server, SQLite, JSON) never
//! reach the library's users.

pub mod alerts;
pub mod collect;
pub mod commit;
pub mod constraints;
pub mod db;
pub mod html;
pub mod incidents;
pub mod inspect;
pub mod json;
pub mod keys;
pub mod metrics;
pub mod profile;
pub mod protobuf;
pub mod report;
pub mod retention;
pub mod store;
pub mod text;
pub mod time;
pub mod watch;

/// Where summaries are read from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A store written by `modelwatch collect`: a SQLite file or a PostgreSQL database.
    Store(db::Location),
    /// Folders or files of `.msgpack` summaries (what the folder sink writes).
    Files(Vec<std::path::PathBuf>),
}
