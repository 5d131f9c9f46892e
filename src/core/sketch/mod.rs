//! The sketches: numeric histogram, distinct count, category profile, keyed hash, moments.
//! They depend on nothing else in the crate.

pub(crate) mod exponential;
pub(crate) mod hll;
pub(crate) mod inflate;
pub(crate) mod keyed_hash;
pub(crate) mod moments;
pub(crate) mod profile;
pub(crate) mod rice;
pub(crate) mod spans;
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
    // Counts of indexes `mine` has are added in place; the new ones (few, when a running
    // total such as a rollup or a watched window absorbs one more summary) are set aside,
    // then merged in from the back, each element moved once.
    let mut new = Vec::new();
    let mut at = 0;
    for (j, y) in other {
        while mine.get(at).is_some_and(|&(i, _)| i < j) {
            at += 1;
        }
        match mine.get_mut(at) {
            Some((i, x)) if *i == j => *x = x.saturating_add(y),
            _ => new.push((j, y)),
        }
    }
    if new.is_empty() {
        return;
    }
    let old = mine.len();
    mine.resize(old + new.len(), new[0]);
    let (mut a, mut w) = (old, mine.len());
    while let Some(&(j, y)) = new.last() {
        w -= 1;
        if a > 0 && mine[a - 1].0 > j {
            a -= 1;
            mine[w] = mine[a];
        } else {
            mine[w] = (j, y);
            new.pop();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        // A map sum is the oracle; `subset` makes `other` mostly indexes `mine` has, the
        // in-place path, with a few new ones that take the merging path at any point.
        #[test]
        fn adding_sorted_counts_equals_summing_maps(
            mine in prop::collection::btree_map(-200i32..200, 1u64..1_000, 0..120),
            extra in prop::collection::btree_map(-220i32..220, 1u64..1_000, 0..6),
            subset in prop::collection::vec(any::<bool>(), 120),
            saturate in any::<bool>(),
        ) {
            let mut other: BTreeMap<i32, u64> = mine
                .iter()
                .zip(&subset)
                .filter(|(_, &keep)| keep)
                .map(|((&i, &c), _)| (i, if saturate { u64::MAX } else { c }))
                .collect();
            other.extend(extra);
            let mut expected = mine.clone();
            for (&i, &c) in &other {
                let e = expected.entry(i).or_insert(0);
                *e = e.saturating_add(c);
            }
            let mut sum: Vec<(i32, u64)> = mine.into_iter().collect();
            add_sorted_counts(&mut sum, other.into_iter());
            prop_assert_eq!(sum, expected.into_iter().collect::<Vec<_>>());
        }
    }
}
