//! The keyed hash through which every string and number enters a distinct-count or
//! category sketch. Values never leave the process as text; only these hashes' effects
//! (register maxima, bucket counts) do, and without the key they cannot be dictionary-attacked.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// The 128-bit secret key of the keyed hashes: SipHash-1-3 for strings, record keys and the
/// fingerprint; a keyed multiply-mix for numbers (see `docs/privacy.md`).
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
        keyed_mix_u64(k0 ^ NUMBERS, k1, x.to_bits())
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

    /// A 128-bit message authentication tag: SipHash-2-4 (the full-strength variant, a
    /// pseudo-random function) of `message` under two keys derived from this one. For
    /// feedback tokens, which leave the process and come back.
    pub(crate) fn mac_128(&self, message: &[u8]) -> [u8; 16] {
        let (k0, k1) = self.words();
        let mac = |tweak: u64| {
            let mut h = siphasher::sip::SipHasher24::new_with_keys(k0 ^ tweak, k1);
            h.write(message);
            h.finish().to_le_bytes()
        };
        let mut tag = [0; 16];
        tag[..8].copy_from_slice(&mac(TOKEN_MAC_LOW));
        tag[8..].copy_from_slice(&mac(TOKEN_MAC_HIGH));
        tag
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
const TOKEN_MAC_LOW: u64 = 7;
const TOKEN_MAC_HIGH: u64 = 8;

/// Constants of rapidhash (public, from wyhash's lineage): odd, with balanced bits.
const MIX0: u64 = 0x2d35_8dcc_aa6c_78a5;
const MIX1: u64 = 0x8bb8_4b93_962e_acc9;

/// The 128-bit product of `a` and `b`, its halves xored: the mixing step of wyhash and
/// rapidhash, one multiply instruction.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A keyed hash of the 64 bits `m`: rapidhash's path for an 8-byte input, its seed and one
/// secret word taken from the 128-bit key. Two multiplies (~15 instructions) where
/// SipHash-1-3 takes ~84: every logged number goes through it. Not a pseudo-random
/// function as SipHash is; why that is enough for numbers is in `docs/privacy.md`.
#[inline]
fn keyed_mix_u64(k0: u64, k1: u64, m: u64) -> u64 {
    let r = u128::from(m ^ MIX1 ^ k1) * u128::from(m.rotate_left(32) ^ k0);
    folded_multiply((r as u64) ^ MIX0 ^ 8, ((r >> 64) as u64) ^ MIX1)
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

    /// The number hash under the key is the only input of the numeric HyperLogLog: its
    /// bits must look independent. Every output bit flips for about half of the one-bit
    /// changes of the input (avalanche), and the top 10 bits (the register index) of
    /// consecutive integers fill the registers evenly.
    #[test]
    fn number_hash_avalanches_and_spreads() {
        let k = HashKey::new(*b"0123456789ABCDEF");
        let mut flips = [0u32; 64];
        let inputs = 2000;
        for i in 0..inputs {
            let x = f64::from(i) * 0.731 + 1.0;
            let h = k.hash_f64(x);
            for bit in 0..64 {
                let y = f64::from_bits(x.to_bits() ^ (1 << bit));
                let d = h ^ k.hash_f64(y);
                for (o, f) in flips.iter_mut().enumerate() {
                    *f += ((d >> o) & 1) as u32;
                }
            }
        }
        let trials = f64::from(inputs * 64);
        for (o, &f) in flips.iter().enumerate() {
            let share = f64::from(f) / trials;
            assert!((share - 0.5).abs() < 0.01, "output bit {o} flips {share}");
        }
        let mut registers = [0u32; 1024];
        for i in 0..102_400 {
            registers[(k.hash_f64(f64::from(i)) >> 54) as usize] += 1;
        }
        // Poisson(100): a register outside 100 ± 6 sd would be a 1e-9 event.
        assert!(registers.iter().all(|&n| (40..=160).contains(&n)));
        assert_ne!(k.hash_f64(1.0), HashKey::new([0; 16]).hash_f64(1.0));
    }
}
