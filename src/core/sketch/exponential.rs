//! The numeric sketch: a histogram of f64 values over exponential buckets, as
//! OpenTelemetry's exponential histogram and Prometheus' native histogram place them.
//!
//! **Buckets.** At scale 6 the base is γ = 2^(2^-6) = 2^(1/64): bucket `i` holds the
//! magnitudes in (γ^i, γ^(i+1)], 64 buckets per power of two. These are exactly the
//! boundaries of an OpenTelemetry exponential histogram (and of a Prometheus native
//! histogram, schema 6) at that scale, so a window's distribution can be exported to them
//! bucket for bucket, and stays mergeable there. The index comes from the float's exponent
//! and its top 7 mantissa bits through a 128-entry table plus one comparison (no `log2`).
//! Zeros are counted exactly; NaN and ±inf never reach the sketch (the column counts them).
//!
//! **Error bound.** A bucket reports the value 2·L·U/(L+U) of its bounds L and U, whose
//! relative error to any value in the bucket is at most (γ−1)/(γ+1) < 0.5416 %, the same in
//! both directions. Every quantile, minimum and maximum is therefore within 0.55 % of the
//! exact one for every finite magnitude from 2^-1074 to f64::MAX, both signs, unless it
//! was collapsed (below). Because every value is reported inside its own bucket, a
//! quantile never lies outside the bucket range of the data: values in [0, 1] never
//! report above 1.
//!
//! **Memory follows the data.** A shard (the accumulator of one logging thread) keeps its
//! `u32` counts densely, only over the buckets its values reached; the range grows on
//! demand. A summary keeps (index, count) pairs of its nonzero buckets only. Both are
//! capped at [`MAX_BUCKETS`] buckets per sign (80 powers of two: more than the 24 decades
//! from 1e-9 to 1e15). Past the cap the lowest magnitudes are collapsed, as DDSketch's
//! collapsing store does: they leave their buckets and are counted apart (`collapsed`,
//! which travels in the summary), reported at the lowest bucket kept; only quantiles that
//! fall on them lose the bound. Downscaling (OpenTelemetry's answer to the cap) would
//! instead widen every bucket, breaking the 0.55 % bound for all values; the collapse keeps
//! it for every value within 24 decades of the window's largest.

use super::spans::{put_span_sets, take_span_sets};
#[cfg(test)]
use super::varint::{put_varint, put_zigzag};
use super::{add_sorted_counts, saturating_sum, WireError, WireResult};

/// The exponential scale: 2^6 buckets per power of two.
pub(crate) const SCALE: i32 = 6;
const PER_OCTAVE: i32 = 1 << SCALE;
/// Most buckets kept per sign (80 powers of two, about 24.1 decades).
pub const MAX_BUCKETS: usize = 80 * PER_OCTAVE as usize;
/// Largest relative error of a reported value: (γ−1)/(γ+1) with γ = 2^(1/64).
pub const RELATIVE_ERROR: f64 = 0.005_416;

/// Mantissa (52 bits) of 2^(k/64) − 1 for k = 1..=63, rounded down: bucket `j` of an
/// octave holds the mantissas above `BOUNDARIES[j]` and up to `BOUNDARIES[j + 1]`.
/// Computed with 60-digit decimal arithmetic (tested against f64 below).
const BOUNDARIES: [u64; 65] = [
    0,
    0x2c9a3e778060,
    0x59b0d3158574,
    0x874518759bc8,
    0xb5586cf9890f,
    0xe3ec32d3d1a2,
    0x11301d0125b50,
    0x1429aaea92ddf,
    0x172b83c7d517a,
    0x1a35beb6fcb75,
    0x1d4873168b9aa,
    0x2063b88628cd6,
    0x2387a6e756238,
    0x26b4565e27cdd,
    0x29e9df51fdee1,
    0x2d285a6e4030b,
    0x306fe0a31b715,
    0x33c08b26416ff,
    0x371a7373aa9ca,
    0x3a7db34e59ff6,
    0x3dea64c123422,
    0x4160a21f72e29,
    0x44e086061892d,
    0x486a2b5c13cd0,
    0x4bfdad5362a27,
    0x4f9b2769d2ca6,
    0x5342b569d4f81,
    0x56f4736b527da,
    0x5ab07dd485429,
    0x5e76f15ad2148,
    0x6247eb03a5584,
    0x6623882552224,
    0x6a09e667f3bcc,
    0x6dfb23c651a2e,
    0x71f75e8ec5f73,
    0x75feb564267c8,
    0x7a11473eb0186,
    0x7e2f336cf4e62,
    0x82589994cce12,
    0x868d99b4492ec,
    0x8ace5422aa0db,
    0x8f1ae99157736,
    0x93737b0cdc5e4,
    0x97d829fde4e4f,
    0x9c49182a3f090,
    0xa0c667b5de564,
    0xa5503b23e255c,
    0xa9e6b5579fdbf,
    0xae89f995ad3ad,
    0xb33a2b84f15fa,
    0xb7f76f2fb5e46,
    0xbcc1e904bc1d2,
    0xc199bdd85529c,
    0xc67f12e57d14b,
    0xcb720dcef9069,
    0xd072d4a07897b,
    0xd5818dcfba487,
    0xda9e603db3285,
    0xdfc97337b9b5e,
    0xe502ee78b3ff6,
    0xea4afa2a490d9,
    0xefa1bee615a27,
    0xf50765b6e4540,
    0xfa7c1819e90d8,
    u64::MAX,
];

const TABLE_BITS: u32 = 7;
const MANTISSA_BITS: u32 = 52;
const MANTISSA_MASK: u64 = (1 << MANTISSA_BITS) - 1;

/// For each of the 128 cells of the mantissa (its top 7 bits), the number of boundaries
/// below the cell's start. A cell (1/128 wide) is narrower than any bucket (at least
/// 2^(1/64) − 1 ≈ 1/92), so it holds at most one boundary: one comparison finishes the index.
const CELL_FIRST_BUCKET: [u8; 1 << TABLE_BITS] = {
    let mut t = [0u8; 1 << TABLE_BITS];
    let mut cell = 0;
    while cell < t.len() {
        let start = (cell as u64) << (MANTISSA_BITS - TABLE_BITS);
        let mut j = 0;
        while BOUNDARIES[j + 1] < start {
            j += 1;
        }
        t[cell] = j as u8;
        cell += 1;
    }
    t
};

/// The bucket of a positive finite magnitude: `ceil(log2(m) * 64) - 1`, exactly
/// OpenTelemetry's index at scale 6 (upper bounds inclusive).
#[inline]
pub(crate) fn bucket_index(magnitude: f64) -> i32 {
    let bits = magnitude.to_bits();
    let mut exponent = ((bits >> MANTISSA_BITS) & 0x7ff) as i32;
    let mut mantissa = bits & MANTISSA_MASK;
    if exponent == 0 {
        // Subnormal: shift the leading one up to the implicit bit.
        let shift = mantissa.leading_zeros() - 11;
        mantissa = (mantissa << shift) & MANTISSA_MASK;
        exponent = 1 - shift as i32;
    }
    let first = CELL_FIRST_BUCKET[(mantissa >> (MANTISSA_BITS - TABLE_BITS)) as usize] as usize;
    let j = first + usize::from(mantissa > BOUNDARIES[first + 1]);
    // An exact power of two is the upper bound of the bucket below.
    (exponent - 1023) * PER_OCTAVE + j as i32 - i32::from(mantissa == 0)
}

/// Lower bound of bucket `i` (exclusive).
pub(crate) fn bucket_lower(i: i32) -> f64 {
    (f64::from(i) / f64::from(PER_OCTAVE)).exp2()
}

/// The value a bucket reports: 2·L·U/(L+U), whose relative error is the same at both ends.
pub(crate) fn bucket_value(i: i32) -> f64 {
    const GAMMA: f64 = 1.010_889_286_051_700_5; // 2^(1/64)
    bucket_lower(i) * (2.0 * GAMMA / (1.0 + GAMMA))
}

/// Counts of one sign in a shard: dense `u32` counts over the buckets reached so far, and
/// apart from them the values collapsed below the capped range.
#[derive(Clone, Debug, Default)]
pub(crate) struct DenseBuckets {
    offset: i32,
    counts: Vec<u32>,
    /// Values recorded in the lowest bucket because they were below the capped range.
    collapsed: u64,
}

impl DenseBuckets {
    #[inline]
    fn add(&mut self, index: i32) {
        let at = self.position(index);
        match self.counts.get_mut(at) {
            Some(c) => *c = c.saturating_add(1),
            None => self.add_outside(index),
        }
    }

    /// The count bucket `index` adds to, if it is in the allocated range.
    #[inline]
    fn slot(&self, index: i32) -> Option<&u32> {
        self.counts.get(self.position(index))
    }

    /// Where bucket `index` sits in `counts`. Below the offset the subtraction wraps to a
    /// huge position: one bounds check finds both ends out of range.
    #[inline(always)]
    fn position(&self, index: i32) -> usize {
        index.wrapping_sub(self.offset) as u32 as usize
    }

    /// Grows the range to take `index`, with slack in the direction of growth, or
    /// collapses the low end once the range spans [`MAX_BUCKETS`].
    #[cold]
    fn add_outside(&mut self, index: i32) {
        let len = self.counts.len() as i32;
        let cap = MAX_BUCKETS as i32;
        // Full, with its top bucket in use: the value collapses, without a scan.
        if len == cap && index < self.offset && self.counts[len as usize - 1] > 0 {
            self.collapsed += 1;
            return;
        }
        let first = self.counts.iter().position(|&c| c > 0);
        let last = self.counts.iter().rposition(|&c| c > 0);
        let (need_lo, need_hi) = match (first, last) {
            (Some(f), Some(l)) => (
                index.min(self.offset + f as i32),
                (index + 1).max(self.offset + l as i32 + 1),
            ),
            _ => (index, index + 1),
        };
        let slack = (len / 2).max(32);
        let (mut lo, mut hi) = if len == 0 {
            (index - slack / 2, index + 1 + slack / 2)
        } else if index < self.offset {
            (need_lo - slack, need_hi.max(self.offset + len))
        } else {
            (need_lo.min(self.offset), need_hi + slack)
        };
        if hi - lo > cap {
            // Slack goes first; then the high end wins and the low end collapses.
            hi = need_hi.max(hi.min(lo + cap));
            lo = lo.max(hi - cap);
        }
        if (lo, hi) == (self.offset, self.offset + len) {
            self.collapsed += 1;
            return;
        }
        let mut counts = vec![0u32; (hi - lo) as usize];
        // Nonzero buckets lie within [need_lo, need_hi): inside the new range, or below it
        // and then collapsed.
        for (i, &c) in self.counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            match usize::try_from(self.offset + i as i32 - lo) {
                Ok(at) => counts[at] = counts[at].saturating_add(c),
                Err(_) => self.collapsed += u64::from(c),
            }
        }
        self.offset = lo;
        self.counts = counts;
        match usize::try_from(index - lo) {
            Ok(at) => self.counts[at] = self.counts[at].saturating_add(1),
            Err(_) => self.collapsed += 1,
        }
    }

    fn clear(&mut self) {
        self.counts.fill(0);
        self.collapsed = 0;
    }

    fn is_empty(&self) -> bool {
        self.collapsed == 0 && self.counts.iter().all(|&c| c == 0)
    }

    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u32>()
    }
}

/// Counts of one sign in a summary: the nonzero buckets, ascending, spanning at most
/// [`MAX_BUCKETS`], and apart from them the values collapsed below that range (reported
/// at the lowest bucket's value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SparseBuckets {
    buckets: Vec<(i32, u64)>,
    collapsed: u64,
}

impl SparseBuckets {
    fn len(&self) -> u64 {
        saturating_sum(self.buckets.iter().map(|&(_, c)| c)).saturating_add(self.collapsed)
    }

    /// Adds sorted (index, count) pairs, then enforces the cap.
    fn add_sorted(&mut self, other: impl Iterator<Item = (i32, u64)>, collapsed: u64) {
        add_sorted_counts(&mut self.buckets, other);
        self.collapsed = self.collapsed.saturating_add(collapsed);
        self.enforce_cap();
    }

    fn enforce_cap(&mut self) {
        let Some(&(top, _)) = self.buckets.last() else {
            return;
        };
        let lowest = top - (MAX_BUCKETS as i32 - 1);
        let cut = self.buckets.partition_point(|&(i, _)| i < lowest);
        if cut == 0 {
            return;
        }
        let folded = saturating_sum(self.buckets[..cut].iter().map(|&(_, c)| c));
        self.buckets.drain(..cut);
        self.collapsed = self.collapsed.saturating_add(folded);
    }

    /// The index of the bucket holding the `rank`-th (1-based) smallest magnitude; the
    /// lowest bucket for a collapsed value.
    fn index_at_rank(&self, rank: u64) -> Option<i32> {
        if rank <= self.collapsed {
            return self.buckets.first().map(|&(i, _)| i);
        }
        let mut seen = self.collapsed;
        self.buckets
            .iter()
            .find(|&&(_, c)| {
                seen = seen.saturating_add(c);
                seen >= rank
            })
            .map(|&(i, _)| i)
    }

    /// Values whose reported value is at most `x` (magnitudes, `x` ≥ 0); collapsed values
    /// are reported at the lowest bucket's.
    fn count_le(&self, x: f64) -> u64 {
        let in_buckets = self
            .buckets
            .iter()
            .take_while(|&&(i, _)| bucket_value(i) <= x)
            .map(|&(_, c)| c);
        let collapsed = match self.buckets.first() {
            Some(&(i, _)) if bucket_value(i) <= x => self.collapsed,
            _ => 0,
        };
        saturating_sum(in_buckets).saturating_add(collapsed)
    }

    fn new(buckets: Vec<(i32, u64)>, collapsed: u64) -> WireResult<Self> {
        if collapsed > 0 && buckets.is_empty() {
            return Err(WireError::sketch(
                "numbers",
                "collapsed values without buckets",
            ));
        }
        Ok(SparseBuckets { buckets, collapsed })
    }
}

/// Where a value is counted: `None` for zero, else its sign (`true` for positive) and
/// the bucket index of its magnitude.
#[inline(always)]
fn signed_bucket(x: f64) -> Option<(bool, i32)> {
    if x == 0.0 {
        None
    } else if x > 0.0 {
        Some((true, bucket_index(x)))
    } else {
        Some((false, bucket_index(-x)))
    }
}

/// The numeric sketch of a shard: both signs and zeros, recorded with `u32` counts.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShardHistogram {
    positive: DenseBuckets,
    negative: DenseBuckets,
    zeros: u64,
}

impl ShardHistogram {
    /// Records a finite value (callers count NaN and infinities themselves).
    #[inline]
    pub(crate) fn record(&mut self, x: f64) {
        match signed_bucket(x) {
            None => self.zeros += 1,
            Some((true, index)) => self.positive.add(index),
            Some((false, index)) => self.negative.add(index),
        }
    }

    /// Prefetches the count that recording `x` (finite) will add to
    /// ([`crate::core::prefetch::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_slot(&self, x: f64) {
        let slot = match signed_bucket(x) {
            None => None,
            Some((true, index)) => self.positive.slot(index),
            Some((false, index)) => self.negative.slot(index),
        };
        if let Some(c) = slot {
            crate::core::prefetch::prefetch(c);
        }
    }

    /// Zeroes the counts, keeping the allocated ranges for the next window.
    pub(crate) fn clear(&mut self) {
        self.positive.clear();
        self.negative.clear();
        self.zeros = 0;
    }

    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.positive.heap_bytes() + self.negative.heap_bytes()
    }
}

/// The numeric sketch of a summary: mergeable, encodable, queryable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    positive: SparseBuckets,
    negative: SparseBuckets,
    pub(crate) zeros: u64,
}

impl Histogram {
    /// Adds a shard's counts.
    pub(crate) fn add_shard(&mut self, s: &ShardHistogram) {
        for (mine, theirs) in [
            (&mut self.positive, &s.positive),
            (&mut self.negative, &s.negative),
        ] {
            if !theirs.is_empty() {
                let pairs = theirs
                    .counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(|(i, &c)| (theirs.offset + i as i32, u64::from(c)));
                mine.add_sorted(pairs, theirs.collapsed);
            }
        }
        self.zeros = self.zeros.saturating_add(s.zeros);
    }

    /// Adds another summary's counts: the result is the histogram of both streams.
    pub(crate) fn merge(&mut self, o: &Histogram) {
        self.positive
            .add_sorted(o.positive.buckets.iter().copied(), o.positive.collapsed);
        self.negative
            .add_sorted(o.negative.buckets.iter().copied(), o.negative.collapsed);
        self.zeros = self.zeros.saturating_add(o.zeros);
    }

    pub(crate) fn negatives(&self) -> u64 {
        self.negative.len()
    }

    pub(crate) fn positives(&self) -> u64 {
        self.positive.len()
    }

    /// Values collapsed below the capped range (outside the error bound).
    pub(crate) fn collapsed(&self) -> u64 {
        self.positive
            .collapsed
            .saturating_add(self.negative.collapsed)
    }

    /// Number of values recorded (zeros included).
    pub(crate) fn len(&self) -> u64 {
        saturating_sum([self.negatives(), self.zeros, self.positives()])
    }

    /// The value of rank `ceil(q * len)` (1-based) at bucket precision; `None` when empty
    /// or for `q` outside 0..=1.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.len();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let negatives = self.negatives();
        if rank <= negatives {
            // Negatives ascending are magnitudes descending.
            let i = self.negative.index_at_rank(negatives - rank + 1)?;
            return Some(-bucket_value(i));
        }
        if rank <= negatives.saturating_add(self.zeros) {
            return Some(0.0);
        }
        let i = self.positive.index_at_rank(rank - negatives - self.zeros)?;
        Some(bucket_value(i))
    }

    /// How many values are at most `x`, each value taken at its bucket's reported value.
    pub(crate) fn count_le(&self, x: f64) -> u64 {
        if x < 0.0 {
            // A negative value v ≤ x when its magnitude ≥ |x|.
            self.negatives() - self.negative.count_le(x.abs().next_down())
        } else {
            saturating_sum([self.negatives(), self.zeros, self.positive.count_le(x)])
        }
    }

    pub(crate) fn min(&self) -> Option<f64> {
        self.quantile(0.0)
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.quantile(1.0)
    }

    /// Nonzero buckets of one sign as (index, count), ascending: for export.
    pub(crate) fn buckets(&self, negative: bool) -> &[(i32, u64)] {
        if negative {
            &self.negative.buckets
        } else {
            &self.positive.buckets
        }
    }

    /// The wire form: positive buckets, then negative ones (see [`put_span_sets`]).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        put_span_sets(&[&self.positive.buckets, &self.negative.buckets])
    }

    /// Validated decoding of [`to_bytes`](Self::to_bytes) with the counts carried beside it.
    pub(crate) fn from_parts(packed: &[u8], zeros: u64, collapsed: [u64; 2]) -> WireResult<Self> {
        let [positive, negative] = take_span_sets::<2>(packed, MAX_BUCKETS, "numbers")?;
        let positive = SparseBuckets::new(positive, collapsed[0])?;
        let negative = SparseBuckets::new(negative, collapsed[1])?;
        Ok(Histogram {
            positive,
            negative,
            zeros,
        })
    }

    /// Values collapsed per sign, for the wire.
    pub(crate) fn collapsed_by_sign(&self) -> [u64; 2] {
        [self.positive.collapsed, self.negative.collapsed]
    }

    /// Bytes this summary holds on the heap.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.positive.buckets.capacity() + self.negative.buckets.capacity())
            * std::mem::size_of::<(i32, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn summary_of(xs: &[f64]) -> Histogram {
        let mut s = ShardHistogram::default();
        xs.iter().for_each(|&x| s.record(x));
        let mut h = Histogram::default();
        h.add_shard(&s);
        h
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let n = sorted.len();
        sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
    }

    fn relative_error(got: f64, want: f64) -> f64 {
        if want == 0.0 {
            got.abs()
        } else {
            ((got - want) / want).abs()
        }
    }

    #[test]
    fn boundaries_are_the_powers_of_two_to_the_k_over_64() {
        for k in 1..64 {
            let exact = ((f64::from(k) / 64.0).exp2() - 1.0) * (1u64 << 52) as f64;
            assert!(
                (BOUNDARIES[k as usize] as f64 - exact).abs() <= 2.0,
                "k = {k}"
            );
            assert!(BOUNDARIES[k as usize] < BOUNDARIES[k as usize + 1]);
        }
        // One cell never holds two boundaries.
        for j in 1..64 {
            let cell = |b: u64| b >> (MANTISSA_BITS - TABLE_BITS);
            assert_ne!(cell(BOUNDARIES[j]), cell(BOUNDARIES[j + 1]));
        }
    }

    #[test]
    fn index_is_opentelemetrys_at_scale_six() {
        // OTel: index = ceil(log2(v) * 2^scale) - 1; exact powers of two close a bucket.
        for e in [-1074, -1022, -30, -1, 0, 1, 52, 1023] {
            let v = (f64::from(e)).exp2();
            if v > 0.0 && v.is_finite() {
                assert_eq!(bucket_index(v), e * 64 - 1, "2^{e}");
            }
        }
        let mut x = 1e-300f64;
        while x < 1e300 {
            let want = ((x.log2() * 64.0).ceil() - 1.0) as i32;
            let got = bucket_index(x);
            // log2 itself may be off by an ulp right at a boundary.
            assert!((got - want).abs() <= 1, "{x}: {got} vs {want}");
            assert!(
                bucket_lower(got) < x * (1.0 + 1e-12) && x <= bucket_lower(got + 1) * (1.0 + 1e-12)
            );
            x *= 1.003_7;
        }
        assert_eq!(
            bucket_index(f64::MIN_POSITIVE / 8.0),
            bucket_index(f64::MIN_POSITIVE) - 3 * 64
        );
        assert_eq!(bucket_index(f64::MAX), 1024 * 64 - 1);
        assert_eq!(bucket_index(5e-324), -1074 * 64 - 1);
    }

    #[test]
    fn the_reported_value_has_a_symmetric_error_below_the_bound() {
        for i in [-5000, -64, -1, 0, 1, 777, 4000] {
            let (lo, hi, v) = (bucket_lower(i), bucket_lower(i + 1), bucket_value(i));
            let (e_lo, e_hi) = ((v - lo) / lo, (hi - v) / hi);
            assert!((e_lo - e_hi).abs() < 1e-12);
            assert!(e_lo < RELATIVE_ERROR);
        }
    }

    #[test]
    fn probabilities_never_report_above_one() {
        let xs: Vec<f64> = (0..=1000).map(|i| f64::from(i) / 1000.0).collect();
        let h = summary_of(&xs);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let v = h.quantile(q).unwrap();
            assert!(v <= 1.0, "q{q} = {v}");
        }
        assert_eq!(h.min(), Some(0.0));
    }

    proptest! {
        #[test]
        fn quantiles_within_the_bound_over_the_documented_range(
            exps in prop::collection::vec((-9.0f64..15.0, any::<bool>(), 0u8..20), 1..400),
            q in 0.0f64..=1.0,
        ) {
            let values: Vec<f64> = exps.iter().map(|&(e, neg, z)| {
                if z == 0 { 0.0 } else { 10f64.powf(e) * if neg { -1.0 } else { 1.0 } }
            }).collect();
            let h = summary_of(&values);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            prop_assert!(relative_error(h.quantile(q).unwrap(), exact_quantile(&sorted, q)) <= RELATIVE_ERROR);
            prop_assert!(relative_error(h.min().unwrap(), sorted[0]) <= RELATIVE_ERROR);
            prop_assert!(relative_error(h.max().unwrap(), *sorted.last().unwrap()) <= RELATIVE_ERROR);
            prop_assert_eq!(h.len(), values.len() as u64);
            prop_assert_eq!(h.zeros, values.iter().filter(|&&x| x == 0.0).count() as u64);
            prop_assert_eq!(h.collapsed(), 0);
            let back = Histogram::from_parts(&h.to_bytes(), h.zeros, h.collapsed_by_sign()).unwrap();
            prop_assert_eq!(back, h);
        }

        #[test]
        fn merged_parts_equal_the_whole(xs in prop::collection::vec(-1e6f64..1e6, 0..300), cut in 0usize..300) {
            let cut = cut.min(xs.len());
            let whole = summary_of(&xs);
            let mut merged = summary_of(&xs[..cut]);
            merged.merge(&summary_of(&xs[cut..]));
            prop_assert_eq!(merged, whole);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), z in any::<u64>(), c in any::<[u64; 2]>()) {
            if let Ok(h) = Histogram::from_parts(&bytes, z, c) {
                // What decodes holds no more than a few words per input byte.
                prop_assert!(h.heap_bytes() <= 16 * bytes.len() + 64);
                let again = Histogram::from_parts(&h.to_bytes(), z, c).unwrap();
                prop_assert_eq!(again, h);
            }
        }
    }

    #[test]
    fn past_the_cap_the_lowest_magnitudes_collapse_and_are_counted() {
        let mut shard = ShardHistogram::default();
        // 1e-12 first, then a value 100 powers of two above: 20 octaves over the cap.
        shard.record(1e-12);
        shard.record(3.0);
        shard.record(1e-12 * (100f64).exp2());
        let mut h = Histogram::default();
        h.add_shard(&shard);
        assert!(shard.heap_bytes() <= MAX_BUCKETS * 4);
        assert_eq!((h.len(), h.collapsed()), (3, 1));
        let top = h.max().unwrap();
        assert!(relative_error(top, 1e-12 * (100f64).exp2()) < RELATIVE_ERROR);
        // Later values below the range go to the lowest bucket without reallocating.
        let bytes = shard.heap_bytes();
        shard.record(1e-15);
        assert_eq!(shard.heap_bytes(), bytes);
        // Summaries respect the cap when merging too.
        let mut a = summary_of(&[1e-20]);
        a.merge(&summary_of(&[1e20]));
        assert_eq!((a.len(), a.collapsed()), (2, 1));
        let back = Histogram::from_parts(&a.to_bytes(), a.zeros, a.collapsed_by_sign()).unwrap();
        assert_eq!(back, a);
    }

    proptest! {
        #[test]
        fn collapsing_keeps_every_count_exact(
            parts in prop::collection::vec(prop::collection::vec((-1000.0f64..1000.0, any::<bool>()), 1..40), 1..5),
        ) {
            // Magnitudes over 600 powers of two: most windows pass the cap, some several times.
            let mut merged = Histogram::default();
            let mut n = 0;
            for part in &parts {
                let xs: Vec<f64> = part.iter().map(|&(e, neg)| e.exp2() * if neg { -1.0 } else { 1.0 }).collect();
                n += xs.len() as u64;
                let h = summary_of(&xs);
                prop_assert_eq!(h.len(), xs.len() as u64);
                prop_assert!(h.collapsed() <= h.len());
                merged.merge(&h);
            }
            prop_assert_eq!(merged.len(), n);
            prop_assert!(merged.collapsed() <= n);
            let back = Histogram::from_parts(&merged.to_bytes(), merged.zeros, merged.collapsed_by_sign()).unwrap();
            prop_assert_eq!(&back, &merged);
            // The largest value keeps its bound: collapsing only ever takes the smallest.
            let max = parts.iter().flatten().filter(|p| !p.1).map(|p| p.0.exp2()).fold(0.0, f64::max);
            if max > 0.0 {
                prop_assert!(relative_error(merged.max().unwrap(), max) <= RELATIVE_ERROR);
            }
        }
    }

    #[test]
    fn collapsed_values_are_counted_once() {
        // Ten tiny values, then a range that moves up twice past the cap.
        let mut shard = ShardHistogram::default();
        (0..10).for_each(|_| shard.record(1e-30));
        shard.record(1.0);
        shard.record(1e30);
        let mut h = Histogram::default();
        h.add_shard(&shard);
        assert_eq!((h.len(), h.collapsed()), (12, 11));
        assert_eq!(h.quantile(0.5), h.min());
        assert!(relative_error(h.max().unwrap(), 1e30) <= RELATIVE_ERROR);
    }

    #[test]
    fn memory_follows_the_range_of_the_data() {
        // 100,000 lognormal values (mu 3.5, sigma 1.1) reach 849 buckets: under 5,000 bytes with slack.
        let mut s = ShardHistogram::default();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..100_000 {
            let (u1, u2) = (uniform().max(1e-300), uniform());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            s.record((3.5 + 1.1 * z).exp());
        }
        assert!(s.heap_bytes() <= 5000, "{} bytes", s.heap_bytes());
    }

    #[test]
    fn forged_ranges_are_refused_before_allocating() {
        // One span claiming 2^40 buckets with 3 bytes behind it.
        let mut evil = Vec::new();
        put_varint(&mut evil, 1);
        put_zigzag(&mut evil, 0);
        put_varint(&mut evil, 1 << 40);
        evil.extend_from_slice(&[2, 2, 2]);
        put_varint(&mut evil, 0);
        assert!(Histogram::from_parts(&evil, 0, [0, 0]).is_err());
        // Two buckets farther apart than the cap.
        let mut evil = Vec::new();
        put_varint(&mut evil, 2);
        put_zigzag(&mut evil, 0);
        put_varint(&mut evil, 1);
        put_zigzag(&mut evil, MAX_BUCKETS as i64);
        put_varint(&mut evil, 1);
        put_zigzag(&mut evil, 1);
        put_zigzag(&mut evil, 0);
        put_varint(&mut evil, 0);
        assert!(Histogram::from_parts(&evil, 0, [0, 0]).is_err());
    }
}
