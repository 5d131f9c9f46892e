//! # modelwatch
//!
//! In-process, privacy-preserving monitoring of an ML model in production. A model server
//! embeds a [`Session`] per deployment and logs each prediction; modelwatch folds it into
//! streaming sketches of the current time window and a background thread ships **only the
//! window summaries**: by default as MessagePack files in a local folder, and to a
//! collector over HTTP when [`Config::endpoint`] is set (retries, a backlog bounded in
//! bytes, delivery at exit: `docs/delivery.md`). Raw feature values never leave the process.
//!
//! Crate features, none by default: `signals` ([`Config::exit_on_signal`]), `rustls` or
//! `native-tls` (https endpoints), `json` (summaries as JSON values: `json`).
//!
//! ```
//! use modelwatch::{Agent, Config, Value, WindowSummary};
//! use std::time::Duration;
//!
//! # let dir = std::env::temp_dir().join(format!("modelwatch-doc-crate-{}", std::process::id()));
//! let agent = Agent::start(Config::new("api-key").data_dir(&dir).window(Duration::from_secs(60)))?;
//! let sess = agent.session("fraud_detection_prod");
//! sess.log_metadata("model_version", "1.0");
//! for i in 0..1000 {
//!     let amount = f64::from(i) * 1.5;
//!     sess.log_prediction([("amount", Value::from(amount)), ("country", Value::from("NL"))], i % 7 == 0);
//! }
//! for i in 0..10 {
//!     sess.log_ground_truth(true, i < 3, ["web"]); // fewer than 10 pairs would wait
//! }
//! agent.flush(Duration::from_secs(5))?;
//!
//! // Every sealed window is one file; read it back.
//! let file = std::fs::read_dir(&dir).unwrap().flatten()
//!     .find(|e| e.path().extension().is_some_and(|x| x == "msgpack")).unwrap();
//! let s = WindowSummary::decode(&std::fs::read(file.path()).unwrap()).unwrap();
//! assert_eq!(s.predictions(), 1000);
//! let amount = s.feature("amount").unwrap();
//! assert!((amount.quantile(0.5).unwrap() - 748.5).abs() < 7.5); // within 1 %
//! assert_eq!(s.feature("country").unwrap().distinct(), 1);
//! assert_eq!(s.ground_truth("web").unwrap().accuracy(), Some(0.3));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), modelwatch::Error>(())
//! ```
//!
//! ## Accuracy
//! - Counts (values, missing, infinities, types, zeros, negatives, confusion matrices) are exact.
//! - Quantiles, minimum and maximum of numbers are within **0.55 %** ([`RELATIVE_ERROR`])
//!   of the exact value for every finite magnitude (2^-1074 to f64::MAX), both signs:
//!   exponential buckets at [`HISTOGRAM_SCALE`] 6, OpenTelemetry's and Prometheus'
//!   boundaries, each reporting a value with the same relative error to both of its ends.
//!   A window whose magnitudes span more than [`MAX_BUCKETS`] buckets (24 decades)
//!   collapses its smallest ones, counted apart and reported at the lowest bucket kept
//!   ([`FeatureSummary::collapsed`]). See `docs/accuracy.md`.
//! - Distinct counts: an in-crate HyperLogLog with Ertl's estimator, 4096 registers for
//!   strings (standard error [`STRING_DISTINCT_STANDARD_ERROR`], 1.6 %) and 1024 for
//!   numbers ([`NUMBER_DISTINCT_STANDARD_ERROR`], 3.25 %), also after merges, never more
//!   than the values counted. Not the `probabilistic-collections` crate: its estimator is
//!   inverted and its sketches panic when merged (see `docs/hyperloglog.md`).
//! - Mean and variance are exact up to floating point (Welford, merged with Chan's formula).
//!
//! ## Memory bounds
//! Memory per session is bounded whatever is logged: at most [`Limits::max_features`]
//! features and [`Limits::max_outputs`] outputs per window (names up to
//! [`Limits::max_name_bytes`]), strings hashed on at most [`Limits::max_string_bytes`]
//! bytes, segments, classes and exceptions capped. What passes a cap is counted in
//! [`DropCounts`]. A histogram keeps `u32` counts only over the buckets its values reached
//! (100,000 lognormal values: 849 buckets, about 4.5 KiB with growth slack), so realistic
//! features cost a few KiB per shard. At most, per feature and shard:
//!
//! | feature holds | heap bytes at most |
//! |---|---|
//! | booleans only | 0 |
//! | non-negative numbers | [`BYTES_PER_NUMERIC_FEATURE`] (20 KiB of counts over 24 decades + a 1 KiB HyperLogLog) |
//! | numbers of both signs | [`BYTES_PER_SIGNED_FEATURE`] |
//! | strings | [`BYTES_PER_STRING_FEATURE`] (HyperLogLog, 1024-bucket profile, length histogram) |
//! | every type | [`BYTES_PER_FEATURE_MAX`] |
//!
//! plus the name (twice) and about 500 bytes of bookkeeping (the column itself, its slot).
//! Each window also holds up to 256 values of its features and 256 of its outputs before
//! folding them (16 bytes each, 8 KiB at most), so that a call touches few cache lines
//! when the server's own work has evicted the sketches. A session has up to
//! 2 × cores shards (at most 16), each with its current window, up to 4 finished windows
//! the worker has not collected yet, and 2 spare ones. An agent keeps at most
//! [`Config::max_sessions`] sessions (default 256; more are inert and counted); a session
//! holds [`BYTES_PER_SESSION`] before it is logged into, and gives its windows back after
//! 10 windows without logging. `tests/bounds.rs` checks this
//! with 100,000 distinct feature names and 1 MB strings, and a 500-feature model logged
//! from 4 threads.

//! ## Process exit
//! Dropping the [`Guard`] of [`configure`] or the [`Agent`] seals and delivers the
//! current windows (marked partial) within the shutdown timeout, whatever the collector
//! does; async code awaits [`Guard::shutdown_async`] instead. With the `signals` feature,
//! [`Config::exit_on_signal`] does the same on SIGINT or SIGTERM and ends the process as
//! the signal would, unless the host handles the signal itself (then it only flushes). On
//! Unix an `atexit` handler also shuts down agents never dropped (kept in a `static`, or
//! cut short by `std::process::exit`). No library can run code on `panic = "abort"` or
//! SIGKILL: with a data folder and an endpoint, sealed summaries wait in the spool for the
//! next agent (`docs/delivery.md`).

#![warn(missing_docs)]

mod agent;
mod core;
mod error;
#[cfg(feature = "json")]
pub mod json;

pub use agent::config::{Config, DEFAULT_DATA_DIR, ENDPOINTS_ENV};
pub use agent::global::{configure, flush, flush_async, session, Guard};
pub use agent::hash_key::{HASH_KEY_ENV, HASH_KEY_FILE};
pub use agent::session::{FeedbackToken, InferenceTimer, NamedTimer, Session};
pub use agent::sink::{FolderSink, Sink};
pub use agent::{Agent, Completion, Stats, BYTES_PER_SESSION};
pub use core::monitor::drift::{Drift, NewCategories};
pub use core::monitor::{
    Baseline, ConstraintFailure, Incident, IncidentEvent, IncidentKind, Monitor, MonitorError,
    DEFAULT_CLOSE_AFTER, DEFAULT_THRESHOLD,
};
pub use core::record::flatten::Record;
pub use core::record::segments::Segments;
pub use core::record::value::{
    AsValue, Features, Outputs, Prediction, ScoredOutputs, Value, PREDICTION,
};
pub use core::sketch::exponential::{MAX_BUCKETS, RELATIVE_ERROR};
pub use core::sketch::hll::{NUMBER_DISTINCT_STANDARD_ERROR, STRING_DISTINCT_STANDARD_ERROR};
pub use core::sketch::vector::MAX_VECTOR_DIMS;
pub use core::summary::anonymity::DEFAULT_MIN_VALUES_PER_WINDOW;
pub use core::summary::error::{SummaryError, SummaryErrorKind};
pub use core::summary::ground_truth::{
    Calibration, ClassMetrics, GroundTruthSummary, OutputKind, CALIBRATION_BUCKETS,
    MAX_SCORE_BUCKETS, OTHER_CLASS,
};
pub use core::summary::guard::TEXT_TOKEN_PREFIX;
pub use core::summary::render::{escape_text, format_duration, format_utc};
pub use core::summary::{
    DropCounts, ExceptionSummary, FeatureSummary, FeatureType, FeedbackCounts, PrivacyCounts,
    WindowSummary, DECODE_BUDGET_BASE, DECODE_BUDGET_FACTOR, DEFAULT_PLAIN_CATEGORY_MIN_COUNT,
    HISTOGRAM_SCALE, MAX_NAMED_DROPS, MAX_SUMMARY_BYTES, SCHEMA_VERSION,
};
pub use core::window::builder::SummaryBuilder;
pub use core::window::join::{BYTES_PER_JOIN_ENTRY, BYTES_PER_JOIN_SEGMENT};
pub use core::window::Limits;
pub use error::{Error, ErrorKind, Undelivered};

/// Heap bytes at most of a feature that saw non-negative numbers, per shard and window
/// (a histogram spanning all [`MAX_BUCKETS`] buckets, and a HyperLogLog). Realistic data
/// takes far less: 100,000 lognormal values take about 4.5 KiB (`docs/accuracy.md`).
pub const BYTES_PER_NUMERIC_FEATURE: usize = 21_504;
/// Heap bytes at most of a feature that saw numbers of both signs.
pub const BYTES_PER_SIGNED_FEATURE: usize = 41_984;
/// Heap bytes at most of a feature that saw strings.
pub const BYTES_PER_STRING_FEATURE: usize = 28_776;
/// Heap bytes at most of a feature that saw every type.
pub const BYTES_PER_FEATURE_MAX: usize = 70_760;
