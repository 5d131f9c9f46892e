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

    /// A key derived from arbitrary secret material (for example an API key).
    pub fn derive(material: &[u8]) -> Self {
        const DOMAIN: [u8; 16] = *b"modelwatch/key/1";
        let k = HashKey(DOMAIN);
        let a = k.hasher_with_tweak(0);
        let b = k.hasher_with_tweak(1);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&finish_with(a, material).to_le_bytes());
        out[8..].copy_from_slice(&finish_with(b, material).to_le_bytes());
        HashKey(out)
    }

    fn hasher_with_tweak(&self, tweak: u64) -> SipHasher13 {
        let k0 = u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(self.0[8..].try_into().expect("8 bytes"));
        SipHasher13::new_with_keys(k0 ^ tweak, k1)
    }

    /// Hash of a string: its UTF-8 bytes, tagged so that `"1"` and `1.0` differ.
    #[inline]
    pub(crate) fn hash_str(&self, s: &str) -> u64 {
        let mut h = self.hasher_with_tweak(0);
        h.write_u8(b's');
        h.write(s.as_bytes());
        h.finish()
    }

    /// Hash of a number: the bits of its f64 value, with -0.0 folded into 0.0, so that
    /// `3_i64` and `3.0_f64` count as the same value.
    #[inline]
    pub(crate) fn hash_f64(&self, x: f64) -> u64 {
        let x = if x == 0.0 { 0.0 } else { x };
        let mut h = self.hasher_with_tweak(0);
        h.write_u8(b'n');
        h.write_u64(x.to_bits());
        h.finish()
    }
}

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
        assert_eq!(HashKey::derive(b"k"), HashKey::derive(b"k"));
        assert_ne!(HashKey::derive(b"k"), HashKey::derive(b"l"));
        assert_eq!(format!("{a:?}"), "HashKey(<redacted>)");
    }
}
