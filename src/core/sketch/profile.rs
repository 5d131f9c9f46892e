//! The hashed category profile: counts of strings per keyed-hash bucket, so that category
//! shares, drift and new categories can be compared without the strings themselves.

use super::spans::{put_span_sets, take_span_sets};
use super::{WireError, WireResult};

/// Buckets of the hashed category profile.
pub(crate) const PROFILE_BUCKETS: usize = 1024;

/// The bucket of a string's keyed hash.
#[inline]
pub(crate) fn profile_bucket(hash: u64) -> usize {
    (hash % PROFILE_BUCKETS as u64) as usize
}

/// A summary's profile: its nonzero buckets as (bucket, count), ascending. A shard counts
/// densely (one `u32` per bucket); a summary holds what was reached, so that a column that
/// saw one string holds one pair, and decoding allocates in proportion to its input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    buckets: Vec<(u16, u64)>,
}

impl Profile {
    /// Adds dense counts (a shard's, one per bucket).
    pub(crate) fn add_dense(&mut self, counts: &[u32]) {
        self.add_sorted(
            counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| (i as u16, u64::from(c))),
        );
    }

    /// Adds another summary's profile.
    pub(crate) fn merge(&mut self, o: &Profile) {
        self.add_sorted(o.buckets.iter().copied());
    }

    fn add_sorted(&mut self, other: impl Iterator<Item = (u16, u64)>) {
        super::add_sorted_counts(&mut self.buckets, other);
    }

    /// Counts per bucket, all [`PROFILE_BUCKETS`] of them.
    pub(crate) fn to_dense(&self) -> Vec<u64> {
        let mut dense = vec![0; PROFILE_BUCKETS];
        for &(i, c) in &self.buckets {
            dense[usize::from(i)] = c;
        }
        dense
    }

    /// Strings counted.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        super::saturating_sum(self.buckets.iter().map(|&(_, c)| c))
    }

    /// Bytes held on the heap.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(u16, u64)>()
    }

    /// The nonzero buckets (see [`put_span_sets`]).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let pairs: Vec<(i32, u64)> = self
            .buckets
            .iter()
            .map(|&(i, c)| (i32::from(i), c))
            .collect();
        put_span_sets(&[&pairs])
    }

    /// Validated decoding of [`to_bytes`](Self::to_bytes).
    pub(crate) fn from_bytes(packed: &[u8]) -> WireResult<Self> {
        let [pairs] = take_span_sets::<1>(packed, PROFILE_BUCKETS, "profile")?;
        let buckets = pairs
            .into_iter()
            .map(|(i, c)| {
                u16::try_from(i)
                    .ok()
                    .filter(|&i| usize::from(i) < PROFILE_BUCKETS)
                    .map(|i| (i, c))
                    .ok_or_else(|| WireError::sketch("profile", "bucket out of range"))
            })
            .collect::<WireResult<Vec<_>>>()?;
        Ok(Profile { buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn profile_round_trips_and_merges(
            a in prop::collection::vec(0u32..5, PROFILE_BUCKETS),
            b in prop::collection::vec(0u32..5, PROFILE_BUCKETS),
        ) {
            let (mut pa, mut pb) = (Profile::default(), Profile::default());
            pa.add_dense(&a);
            pb.add_dense(&b);
            prop_assert_eq!(&Profile::from_bytes(&pa.to_bytes()).unwrap(), &pa);
            pa.merge(&pb);
            let sum: Vec<u64> = a.iter().zip(&b).map(|(x, y)| u64::from(x + y)).collect();
            prop_assert_eq!(pa.to_dense(), sum.clone());
            prop_assert_eq!(pa.total(), sum.iter().sum::<u64>());
        }

        #[test]
        fn profile_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = Profile::from_bytes(&bytes);
        }
    }
}
