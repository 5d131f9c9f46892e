//! The sketches: numeric histogram, distinct count, category profile, keyed hash, moments.
//! They depend on nothing else in the crate.

pub(crate) mod exponential;
pub(crate) mod hll;
pub(crate) mod inflate;
pub(crate) mod keyed_hash;
pub(crate) mod moments;
pub(crate) mod profile;
pub(crate) mod varint;
pub(crate) mod vector;

use std::fmt;

thread_local! {
    /// Bytes the decoding under way may still allocate for sketches; `None` outside
    /// [`with_decode_budget`].
    static DECODE_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Prefix of the error a decoding over its budget fails with.
pub(crate) const BUDGET_ERROR_PREFIX: &str = "budget: ";

/// Runs `decode` with `bytes` of budget for what the sketch decoders allocate: each
/// charges its allocation before making it, so that no input, however forged, makes the
/// decoder allocate more than the budget (deflated payloads and dense registers
/// otherwise inflate a few bytes into kilobytes).
pub(crate) fn with_decode_budget<T>(bytes: usize, decode: impl FnOnce() -> T) -> T {
    let previous = DECODE_BUDGET.replace(Some(bytes));
    let result = decode();
    DECODE_BUDGET.set(previous);
    result
}

/// Charges `bytes` to the decode budget, or fails when it is spent.
pub(crate) fn charge(bytes: usize) -> WireResult<()> {
    DECODE_BUDGET.with(|budget| match budget.get() {
        None => Ok(()),
        Some(left) if bytes <= left => {
            budget.set(Some(left - bytes));
            Ok(())
        }
        Some(_) => Err(WireError(format!(
            "{BUDGET_ERROR_PREFIX}the summary decodes to more memory than its size allows"
        ))),
    })
}

/// Adds sorted (index, count) pairs into sorted pairs `mine`: counts of the same index
/// add (saturating), the result stays sorted. The merge of sparse histograms and profiles.
pub(crate) fn add_sorted_counts<K: Ord + Copy>(
    mine: &mut Vec<(K, u64)>,
    other: impl Iterator<Item = (K, u64)>,
) {
    let mut a = std::mem::take(mine).into_iter().peekable();
    let mut b = other.peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(&(i, x)), Some(&(j, y))) if i == j => {
                a.next();
                b.next();
                (i, x.saturating_add(y))
            }
            (Some(&(i, _)), Some(&(j, _))) if j < i => b.next().expect("peeked"),
            (Some(_), _) => a.next().expect("peeked"),
            (None, Some(_)) => b.next().expect("peeked"),
            (None, None) => break,
        };
        mine.push(next);
    }
}

/// Sum of counts that saturates instead of overflowing: decoded summaries are untrusted,
/// and merges saturate, so no count arithmetic may panic.
pub(crate) fn saturating_sum(counts: impl IntoIterator<Item = u64>) -> u64 {
    counts.into_iter().fold(0, u64::saturating_add)
}

/// A sketch validation failure, carried through serde as a custom error message.
#[derive(Debug)]
pub(crate) struct WireError(pub(crate) String);

pub(crate) type WireResult<T> = Result<T, WireError>;

/// Prefix that marks a serde error as a sketch validation failure.
pub(crate) const SKETCH_ERROR_PREFIX: &str = "sketch: ";

impl WireError {
    pub(crate) fn sketch(sketch: &str, why: &str) -> Self {
        WireError(format!("{SKETCH_ERROR_PREFIX}{sketch}: {why}"))
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
