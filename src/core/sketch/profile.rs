//! The hashed category profile: counts of strings per keyed-hash bucket, so that category
//! shares, drift and new categories can be compared without the strings themselves.

use super::varint::{pack, put_spans, take_spans, unpack};
use super::{WireError, WireResult};

/// Buckets of the hashed category profile.
pub(crate) const PROFILE_BUCKETS: usize = 1024;

/// The bucket of a string's keyed hash.
#[inline]
pub(crate) fn profile_bucket(hash: u64) -> usize {
    (hash % PROFILE_BUCKETS as u64) as usize
}

/// The nonzero buckets as spans and count deltas (see [`put_spans`]).
pub(crate) fn encode_profile(profile: &[u64]) -> Vec<u8> {
    let pairs: Vec<(i32, u64)> = profile
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != 0)
        .map(|(i, &c)| (i as i32, c))
        .collect();
    let mut out = Vec::new();
    put_spans(&mut out, &pairs);
    pack(out)
}

/// Validated decoding into a zeroed profile.
pub(crate) fn decode_profile(packed: &[u8], profile: &mut [u64]) -> WireResult<()> {
    let bad = |why| WireError::sketch("profile", why);
    let plain = unpack(packed, 10 + PROFILE_BUCKETS * 30).map_err(bad)?;
    let mut bytes = &plain[..];
    for (i, c) in take_spans(&mut bytes, PROFILE_BUCKETS).map_err(bad)? {
        *usize::try_from(i)
            .ok()
            .and_then(|i| profile.get_mut(i))
            .ok_or(bad("bucket out of range"))? = c;
    }
    if !bytes.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn profile_round_trips(entries in prop::collection::btree_map(0usize..PROFILE_BUCKETS, 1u64..1 << 60, 0..50)) {
            let mut p = vec![0u64; PROFILE_BUCKETS];
            for (&i, &c) in &entries { p[i] = c; }
            let mut back = vec![0u64; PROFILE_BUCKETS];
            decode_profile(&encode_profile(&p), &mut back).unwrap();
            prop_assert_eq!(back, p);
        }

        #[test]
        fn profile_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut p = vec![0u64; PROFILE_BUCKETS];
            let _ = decode_profile(&bytes, &mut p);
        }
    }
}
