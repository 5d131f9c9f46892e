//! The pure core: values, sketches, the window accumulator and the wire types.
//! No threads, no clock reads (time is an argument), no I/O.

pub(crate) mod builder;
pub(crate) mod column;
pub(crate) mod drift;
pub(crate) mod flatten;
pub(crate) mod ground_truth;
pub(crate) mod hll;
pub(crate) mod join;
pub(crate) mod keyed_hash;
pub(crate) mod numeric;
pub(crate) mod render;
pub(crate) mod summary;
pub(crate) mod value;
pub(crate) mod window;
pub(crate) mod wire;

/// Sum of counts that saturates instead of overflowing: decoded summaries are untrusted,
/// and merges saturate, so no count arithmetic may panic.
pub(crate) fn saturating_sum(counts: impl IntoIterator<Item = u64>) -> u64 {
    counts.into_iter().fold(0, u64::saturating_add)
}
