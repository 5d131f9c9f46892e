//! The keyed hash through which every string and number enters a distinct-count or
//! category sketch. Values never leave the process as text; only these hashes' effects
//! (register maxima, bucket counts) do, and without the key they cannot be dictionary-attacked.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// The 128-bit secret key of the keyed hash (SipHash-1-3).
///
/// Every process of one deployment must use the same key, or their distinct counts and
/// category profiles cannot be merged. The key is never shipped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashKey([u8; 16]);

impl HashKey {
    /// A key from 16 secret bytes.
    pub const fn new(bytes: [u8; 16]) -> Self {
        HashKey(bytes)
    }

    fn hasher_with_tweak(&self, tweak: u64) -> SipHasher13 {
        let (k0, k1) = self.words();
        SipHasher13::new_with_keys(k0 ^ tweak, k1)
    }

    /// Hash of a string: its UTF-8 bytes. Strings and numbers use different derived keys,
    /// so that `"1"` and `1.0` differ without hashing a type tag.
    #[inline]
    pub(crate) fn hash_str(&self, s: &str) -> u64 {
        finish_with(self.hasher_with_tweak(STRINGS), s.as_bytes())
    }

    /// Hash of a number: the little-endian bits of its f64 value, with -0.0 folded into
    /// 0.0, so that `3_i64` and `3.0_f64` count as the same value.
    #[inline]
    pub(crate) fn hash_f64(&self, x: f64) -> u64 {
        let x = if x == 0.0 { 0.0 } else { x };
        let (k0, k1) = self.words();
        sip13_u64(k0 ^ NUMBERS, k1, x.to_bits())
    }

    /// A 128-bit hash of a string (two 64-bit hashes under different derived keys), for
    /// identifying record keys without keeping them.
    pub(crate) fn hash_str_128(&self, s: &str) -> u128 {
        let a = finish_with(self.hasher_with_tweak(RECORD_KEYS_LOW), s.as_bytes());
        let b = finish_with(self.hasher_with_tweak(RECORD_KEYS_HIGH), s.as_bytes());
        (u128::from(a) << 64) | u128::from(b)
    }

    /// A fingerprint of the key: 32 bits of the keyed hash of a constant. Summaries made
    /// with different keys have different fingerprints (but for a 2^-32 chance), and the
    /// fingerprint reveals nothing of the key: finding a key with a given fingerprint is
    /// as hard as breaking SipHash as a pseudo-random function.
    pub(crate) fn fingerprint(&self) -> u32 {
        finish_with(
            self.hasher_with_tweak(FINGERPRINT),
            b"modelwatch/fingerprint",
        ) as u32
    }

    fn words(&self) -> (u64, u64) {
        let k0 = u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(self.0[8..].try_into().expect("8 bytes"));
        (k0, k1)
    }
}

/// Tweaks of the first key word: one derived key per purpose. (2 and 3 derived keys from
/// an API key, which the receiver holds; that is gone, and the values stay retired.)
const STRINGS: u64 = 0;
const NUMBERS: u64 = 1;
const RECORD_KEYS_LOW: u64 = 4;
const RECORD_KEYS_HIGH: u64 = 5;
const FINGERPRINT: u64 = 6;

/// SipHash-1-3 of the 8 little-endian bytes of `m`, unrolled: the hot path hashes one
/// number per value, and the general hasher's buffering costs as much as the rounds.
/// Equal to `SipHasher13::new_with_keys(k0, k1)` fed `m.to_le_bytes()` (tested).
#[inline]
fn sip13_u64(k0: u64, k1: u64, m: u64) -> u64 {
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13);
            v1 ^= v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16);
            v3 ^= v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21);
            v3 ^= v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17);
            v1 ^= v2;
            v2 = v2.rotate_left(32);
        };
    }
    v3 ^= m;
    round!();
    v0 ^= m;
    let b: u64 = 8 << 56;
    v3 ^= b;
    round!();
    v0 ^= b;
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    v0 ^ v1 ^ v2 ^ v3
}

#[inline]
fn finish_with(mut h: SipHasher13, bytes: &[u8]) -> u64 {
    h.write(bytes);
    h.finish()
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: never print it, not even in debug output.
        f.write_str("HashKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_hashes_and_zero_signs_fold() {
        let a = HashKey::new([1; 16]);
        let b = HashKey::new([2; 16]);
        assert_ne!(a.hash_str("x"), b.hash_str("x"));
        assert_eq!(a.hash_f64(0.0), a.hash_f64(-0.0));
        assert_ne!(a.hash_str("1"), a.hash_f64(1.0));
        assert_eq!(format!("{a:?}"), "HashKey(<redacted>)");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), HashKey::new([1; 16]).fingerprint());
    }

    #[test]
    fn unrolled_number_hash_is_siphash13() {
        let k = HashKey::new(*b"0123456789ABCDEF");
        let (k0, k1) = k.words();
        for x in [1.5f64, -3.0, 1e300, f64::MIN_POSITIVE, 42.0] {
            let mut h = SipHasher13::new_with_keys(k0 ^ NUMBERS, k1);
            h.write(&x.to_bits().to_le_bytes());
            assert_eq!(k.hash_f64(x), h.finish());
        }
    }
}
