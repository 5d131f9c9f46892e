//! Rice codes: a run of small integers at about their entropy, decoded without tables.
//!
//! A value `v` under the parameter `k` is `v >> k` zero bits, a one, then the `k` low bits
//! of `v`; a quotient of [`ESCAPE`] or more is [`ESCAPE`] zeros, a one, then all 64 bits.
//! Bits are read least significant first. For the zig-zag deltas of a histogram's counts
//! (two-sided, roughly geometric) this is 8-20 % smaller than deflate, and decoding it is a
//! trailing-zero count and a shift a value, where inflating a small stream first builds
//! its Huffman tables (~11,000 instructions each; docs/wire-format.md, schema 3).

/// Quotients from this on are escaped: the value follows in full.
const ESCAPE: u32 = 24;

/// The largest parameter: `ESCAPE - 1` shifted by it still fits in 64 bits.
pub(crate) const MAX_K: u32 = 58;

/// Bits `v` costs under `k`.
fn cost(v: u64, k: u32) -> u64 {
    match v >> k {
        q if q < u64::from(ESCAPE) => q + 1 + u64::from(k),
        _ => u64::from(ESCAPE) + 1 + 64,
    }
}

/// The parameter that codes `values` in the fewest bits. Past the bit length of the
/// largest value every code only grows, so the search stops there: a dozen passes for a
/// histogram's deltas.
pub(crate) fn best_k(values: &[u64]) -> u32 {
    let widest = values.iter().max().map_or(0, |&v| 64 - v.leading_zeros());
    let total = |k: u32| values.iter().map(|&v| cost(v, k)).sum::<u64>();
    (0..=widest.min(MAX_K))
        .min_by_key(|&k| (total(k), k))
        .unwrap_or(0)
}

/// Appends bits to a byte vector, least significant first.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    pending: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            pending: 0,
            bits: 0,
        }
    }

    /// Appends the `width` (≤ 32) low bits of `v`.
    fn put(&mut self, v: u64, width: u32) {
        debug_assert!(width <= 32);
        self.pending |= (v & ((1u64 << width) - 1)) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.out.push(self.pending as u8);
            self.pending >>= 8;
            self.bits -= 8;
        }
    }

    /// Appends the `width` (≤ 64) low bits of `v`.
    fn put_wide(&mut self, v: u64, width: u32) {
        self.put(v, width.min(32));
        if width > 32 {
            self.put(v >> 32, width - 32);
        }
    }

    /// Appends `v` Rice-coded under `k` (≤ [`MAX_K`]).
    pub(crate) fn put_rice(&mut self, v: u64, k: u32) {
        let q = v >> k;
        if q < u64::from(ESCAPE) {
            self.put_wide(1 << q, q as u32 + 1);
            self.put_wide(v, k);
        } else {
            self.put_wide(1 << ESCAPE, ESCAPE + 1);
            self.put_wide(v, 64);
        }
    }

    /// Pads the last byte with zeros.
    pub(crate) fn finish(mut self) {
        if self.bits > 0 {
            self.put(0, 8 - self.bits);
        }
    }
}

/// Reads what [`BitWriter`] wrote; `None` past the end of the bytes or at a code no
/// writer makes.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Bytes of `bytes` loaded into `pending`.
    loaded: usize,
    pending: u64,
    bits: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            loaded: 0,
            pending: 0,
            bits: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.bytes.get(self.loaded..self.loaded + 8) {
            // Eight bytes at once where they exist; only the ones that fit are kept.
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let take = (63 - self.bits) / 8;
            self.pending |= (word & ((1u64 << (take * 8)) - 1)) << self.bits;
            self.loaded += take as usize;
            self.bits += take * 8;
        } else {
            while self.bits <= 56 {
                let Some(&b) = self.bytes.get(self.loaded) else {
                    return;
                };
                self.pending |= u64::from(b) << self.bits;
                self.loaded += 1;
                self.bits += 8;
            }
        }
    }

    /// The next `width` (≤ 32) bits.
    fn take(&mut self, width: u32) -> Option<u64> {
        if self.bits < width {
            self.refill();
            if self.bits < width {
                return None;
            }
        }
        let v = self.pending & ((1u64 << width) - 1);
        self.pending >>= width;
        self.bits -= width;
        Some(v)
    }

    /// The next `width` (≤ 64) bits.
    fn take_wide(&mut self, width: u32) -> Option<u64> {
        let low = self.take(width.min(32))?;
        if width > 32 {
            Some(low | self.take(width - 32)? << 32)
        } else {
            Some(low)
        }
    }

    /// The next Rice-coded value under `k` (≤ [`MAX_K`]).
    #[inline]
    pub(crate) fn take_rice(&mut self, k: u32) -> Option<u64> {
        // The common code (a short quotient, the remainder in the loaded bits) in one
        // count of trailing zeros, one shift and one mask.
        if self.bits < 32 {
            self.refill();
        }
        let q = self.pending.trailing_zeros();
        let used = q + 1 + k;
        if q < ESCAPE && used <= self.bits {
            let v = u64::from(q) << k | (self.pending >> (q + 1)) & ((1u64 << k) - 1);
            self.pending = self.pending.checked_shr(used).unwrap_or(0);
            self.bits -= used;
            return Some(v);
        }
        self.take_rice_slow(k)
    }

    /// [`take_rice`](Self::take_rice) for an escaped value, a remainder past the loaded
    /// bits, or the end of the bytes.
    #[cold]
    fn take_rice_slow(&mut self, k: u32) -> Option<u64> {
        let q = self.pending.trailing_zeros();
        if q >= self.bits || q > ESCAPE {
            return None;
        }
        self.pending >>= q + 1;
        self.bits -= q + 1;
        if q == ESCAPE {
            self.take_wide(64)
        } else {
            Some(u64::from(q) << k | self.take_wide(k)?)
        }
    }

    /// Under `k` = 0, where a zero is a lone one bit: reads the zeros that come next, at
    /// most `max`, and returns how many.
    #[inline]
    pub(crate) fn take_zero_run(&mut self, max: usize) -> usize {
        let mut run = 0;
        loop {
            if self.bits < 32 {
                self.refill();
            }
            let ones = self.pending.trailing_ones().min(self.bits);
            let take = ones.min((max - run).min(64) as u32);
            self.pending = self.pending.checked_shr(take).unwrap_or(0);
            self.bits -= take;
            run += take as usize;
            // The run goes on past the loaded bits only if they were all ones.
            if take < ones || ones < self.bits + take || take == 0 || run == max {
                return run;
            }
        }
    }

    /// Bytes read so far, the last one partly read counted whole.
    pub(crate) fn bytes_read(&self) -> usize {
        self.loaded - (self.bits / 8) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn coded(values: &[u64], k: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        for &v in values {
            w.put_rice(v, k);
        }
        w.finish();
        out
    }

    proptest! {
        #[test]
        fn round_trips(values in prop::collection::vec(prop_oneof![0u64..40, any::<u64>()], 0..200), k in 0..=MAX_K) {
            let bytes = coded(&values, k);
            // The size is the sum of the codes' lengths, padded to a byte.
            let bits: u64 = values.iter().map(|&v| cost(v, k)).sum();
            prop_assert_eq!(bytes.len() as u64, bits.div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &v in &values {
                prop_assert_eq!(r.take_rice(k), Some(v));
            }
            prop_assert_eq!(r.bytes_read(), bytes.len());
        }

        #[test]
        fn zero_runs_read_as_the_zeros_they_are(values in prop::collection::vec(prop_oneof![Just(0u64), Just(0), 0u64..5], 0..400), cap in 1usize..100) {
            let bytes = coded(&values, 0);
            let mut r = BitReader::new(&bytes);
            let mut read = Vec::new();
            while read.len() < values.len() {
                let run = r.take_zero_run(cap.min(values.len() - read.len()));
                prop_assert!(run <= cap);
                read.extend(std::iter::repeat_n(0, run));
                if read.len() < values.len() {
                    read.push(r.take_rice(0).unwrap());
                }
            }
            prop_assert_eq!(read, values);
            prop_assert_eq!(r.bytes_read(), bytes.len());
        }

        #[test]
        fn best_k_is_the_cheapest_of_all(
            values in prop::collection::vec(prop_oneof![0u64..100_000, (0.0f64..30.0).prop_map(|x| x.exp2() as u64)], 1..100),
        ) {
            let total = |k| values.iter().map(|&v| cost(v, k)).sum::<u64>();
            let best = (0..=MAX_K).map(total).min().unwrap();
            prop_assert_eq!(total(best_k(&values)), best);
        }

        #[test]
        fn reading_any_bytes_ends(bytes in prop::collection::vec(any::<u8>(), 0..64), k in 0..=MAX_K) {
            let mut r = BitReader::new(&bytes);
            let mut n = 0;
            while r.take_rice(k).is_some() {
                n += 1;
                prop_assert!(r.bytes_read() <= bytes.len());
            }
            // Every value costs at least a bit.
            prop_assert!(n <= bytes.len() * 8);
        }
    }

    #[test]
    fn a_quotient_past_the_escape_is_refused() {
        // 25 zeros then a one: no writer makes more than ESCAPE zeros.
        let bytes = [
            0, 0, 0, 0b10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(BitReader::new(&bytes).take_rice(0), None);
        // 24 zeros then a one: the escape, then 64 bits from bit 25 (byte 4 starts at
        // the value's bit 7).
        let mut r = BitReader::new(&[0, 0, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.take_rice(0), Some(5 << 7));
        assert_eq!(r.bytes_read(), 12);
    }
}
