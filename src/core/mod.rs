//! The pure core: no threads, no clock reads (time is an argument), no I/O.
//!
//! The layers, each depending only on those before it:
//! - `prefetch`: cache-line hints (the crate's one `unsafe` block);
//! - `sketch`: numeric histogram, HyperLogLog, category profile, keyed hash, moments;
//! - `record`: logged values and the flattening of structs;
//! - `summary`: the wire type, its columns and ground truth, validated decoding, merges,
//!   rendering (on sketches and records);
//! - `window`: the accumulator of one window in one shard, the join store, the builder;
//! - `monitor`: drift between summaries.

pub(crate) mod monitor;
pub(crate) mod prefetch;
pub(crate) mod record;
pub(crate) mod sketch;
pub(crate) mod summary;
pub(crate) mod window;
