//! Signed-value histogram of f64 values over a fixed range, on hdrhistogram.
//!
//! hdrhistogram records unsigned integers, so |x| is recorded in a fixed-point unit of
//! 2^-28 (about 3.7e-9) into one histogram per sign, with 2 significant digits. Zero, values
//! out of range and non-finite values are counted beside them, exactly.
//!
//! **Error bound.** For every |x| in [`RANGE_MIN`, `RANGE_MAX`] (about 1e-6 to 1.7e10,
//! over 16 decades) a reported quantile, minimum or maximum is within 0.6 % of the exact
//! one (half of hdrhistogram's 1/128 bucket width plus fixed-point rounding of at most
//! 0.5/268 units); the documented bound is 1 %. Nonzero values below the range are counted
//! as `underflow` and recorded at its bottom; values above as `overflow`, recorded at its top
//! (so ranks stay right and the outliers are visible, instead of growing the histogram).
//!
//! Bounds are fixed rather than auto-resizing: one outlier would otherwise grow a histogram
//! to its maximum size.

use super::wire::{WireError, WireResult};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::{Counter, Histogram};

/// Fixed-point units per 1.0.
const SCALE: f64 = (1u64 << 28) as f64;
/// Smallest recorded magnitude in units: below 256 units rounding would exceed 0.2 %.
const LOW_UNITS: u64 = 256;
/// Largest recorded magnitude in units.
const HIGH_UNITS: u64 = 1 << 62;
const SIGFIG: u8 = 2;
/// Smallest |x| tracked within the error bound.
pub const RANGE_MIN: f64 = LOW_UNITS as f64 / SCALE;
/// Largest |x| tracked within the error bound.
pub const RANGE_MAX: f64 = HIGH_UNITS as f64 / SCALE;

/// The V2 header: cookie, payload length, normalizing offset, significant digits,
/// lowest, highest, integer-to-double ratio.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_HEADER_LEN: usize = 40;

fn new_histogram<C: Counter>() -> Histogram<C> {
    Histogram::new_with_bounds(1, HIGH_UNITS, SIGFIG).expect("valid fixed bounds")
}

#[cfg(test)]
/// Bytes of one fixed-bounds histogram's counts for counter type `C`.
pub(crate) fn histogram_heap_bytes<C: Counter>() -> usize {
    // (bucket count + 1) * sub-bucket half count counters; computed once from a real one.
    new_histogram::<C>().distinct_values() * std::mem::size_of::<C>()
}

/// A histogram of signed numbers: positive and negative magnitudes, zero and out-of-range counts.
#[derive(Clone, Debug)]
pub(crate) struct SignedHistogram<C: Counter> {
    positive: Option<Histogram<C>>,
    negative: Option<Histogram<C>>,
    pub(crate) zeros: u64,
    pub(crate) underflow: u64,
    pub(crate) overflow: u64,
}

impl<C: Counter> Default for SignedHistogram<C> {
    fn default() -> Self {
        SignedHistogram {
            positive: None,
            negative: None,
            zeros: 0,
            underflow: 0,
            overflow: 0,
        }
    }
}

impl<C: Counter> SignedHistogram<C> {
    /// Records a finite value (callers count NaN and infinities themselves).
    #[inline]
    pub(crate) fn record(&mut self, x: f64) {
        if x == 0.0 {
            self.zeros += 1;
            return;
        }
        let magnitude = x.abs() * SCALE;
        let units = if magnitude < LOW_UNITS as f64 {
            self.underflow += 1;
            LOW_UNITS
        } else if magnitude >= HIGH_UNITS as f64 {
            self.overflow += 1;
            HIGH_UNITS
        } else {
            // Not `round()`: without SSE4.1 it is a libm call, and magnitude is positive.
            (magnitude + 0.5) as u64
        };
        let side = if x > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        side.get_or_insert_with(new_histogram)
            .saturating_record(units);
    }

    pub(crate) fn clear(&mut self) {
        for h in [&mut self.positive, &mut self.negative]
            .into_iter()
            .flatten()
        {
            h.reset();
        }
        self.zeros = 0;
        self.underflow = 0;
        self.overflow = 0;
    }

    pub(crate) fn negatives(&self) -> u64 {
        self.negative.as_ref().map_or(0, Histogram::len)
    }

    pub(crate) fn positives(&self) -> u64 {
        self.positive.as_ref().map_or(0, Histogram::len)
    }

    /// Number of values recorded (zeros included).
    pub(crate) fn len(&self) -> u64 {
        self.negatives()
            .saturating_add(self.zeros)
            .saturating_add(self.positives())
    }

    /// The value of rank `ceil(q * len)` (1-based) at histogram precision; `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.len();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let negatives = self.negatives();
        if rank <= negatives {
            // Negatives ascending are magnitudes descending.
            let h = self.negative.as_ref()?;
            return Some(-value_at_rank(h, negatives - rank + 1));
        }
        if rank <= negatives.saturating_add(self.zeros) {
            return Some(0.0);
        }
        let h = self.positive.as_ref()?;
        Some(value_at_rank(h, rank - negatives - self.zeros))
    }

    /// How many recorded values are at most `x`, each value taken at its bucket's midpoint.
    pub(crate) fn count_le(&self, x: f64) -> u64 {
        let side = |h: &Option<Histogram<C>>, keep: &dyn Fn(f64) -> bool| -> u64 {
            h.as_ref().map_or(0, |h| {
                super::saturating_sum(
                    h.iter_recorded()
                        .filter(|v| keep(h.median_equivalent(v.value_iterated_to()) as f64 / SCALE))
                        .map(|v| v.count_at_value().as_u64()),
                )
            })
        };
        if x < 0.0 {
            side(&self.negative, &|m| -m <= x)
        } else {
            self.negatives()
                .saturating_add(self.zeros)
                .saturating_add(side(&self.positive, &|m| m <= x))
        }
    }

    pub(crate) fn min(&self) -> Option<f64> {
        self.quantile(0.0)
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.quantile(1.0)
    }
}

/// The median-equivalent value (in f64) of the `rank`-th smallest recorded magnitude.
fn value_at_rank<C: Counter>(h: &Histogram<C>, rank: u64) -> f64 {
    let mut seen = 0u64;
    let mut units = h.max();
    for v in h.iter_recorded() {
        seen = seen.saturating_add(v.count_at_value().as_u64());
        if seen >= rank {
            units = v.value_iterated_to();
            break;
        }
    }
    h.median_equivalent(units) as f64 / SCALE
}

impl SignedHistogram<u64> {
    /// Adds another histogram's counts into this one (any counter type).
    pub(crate) fn add<D: Counter>(&mut self, other: &SignedHistogram<D>) {
        for (mine, theirs) in [
            (&mut self.positive, &other.positive),
            (&mut self.negative, &other.negative),
        ] {
            if let Some(theirs) = theirs.as_ref().filter(|h| !h.is_empty()) {
                let mine = mine.get_or_insert_with(new_histogram);
                for v in theirs.iter_recorded() {
                    mine.saturating_record_n(v.value_iterated_to(), v.count_at_value().as_u64());
                }
            }
        }
        self.zeros = self.zeros.saturating_add(other.zeros);
        self.underflow = self.underflow.saturating_add(other.underflow);
        self.overflow = self.overflow.saturating_add(other.overflow);
    }

    /// hdrhistogram V2 bytes of each side (empty when absent).
    pub(crate) fn side_bytes(&self) -> [Vec<u8>; 2] {
        [&self.positive, &self.negative].map(|side| match side {
            Some(h) if !h.is_empty() => {
                let mut out = Vec::new();
                V2Serializer::new()
                    .serialize(h, &mut out)
                    .expect("serializing to a Vec cannot fail");
                out
            }
            _ => Vec::new(),
        })
    }

    /// Validated decoding of the parts written by [`side_bytes`](Self::side_bytes).
    pub(crate) fn from_parts(
        positive: &[u8],
        negative: &[u8],
        zeros: u64,
        underflow: u64,
        overflow: u64,
    ) -> WireResult<Self> {
        Ok(SignedHistogram {
            positive: decode_side(positive)?,
            negative: decode_side(negative)?,
            zeros,
            underflow,
            overflow,
        })
    }
}

/// Checks the V2 header against our fixed bounds and the buffer before hdrhistogram sees it:
/// a 48-byte header can otherwise make the deserializer allocate gigabytes.
fn decode_side(bytes: &[u8]) -> WireResult<Option<Histogram<u64>>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let bad = |why: &'static str| WireError::sketch("histogram", why);
    if bytes.len() < V2_HEADER_LEN {
        return Err(bad("short header"));
    }
    let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(0) != V2_COOKIE {
        return Err(bad("not an uncompressed V2 histogram"));
    }
    if u32_at(4) as usize != bytes.len() - V2_HEADER_LEN {
        return Err(bad("payload length does not match the buffer"));
    }
    if u32_at(8) != 0
        || u32_at(12) != u32::from(SIGFIG)
        || u64_at(16) != 1
        || u64_at(24) != HIGH_UNITS
    {
        return Err(bad("parameters differ from modelwatch's fixed bounds"));
    }
    if f64::from_be_bytes(bytes[32..40].try_into().expect("8 bytes")) != 1.0 {
        return Err(bad("unsupported conversion ratio"));
    }
    if !payload_is_safe(&bytes[V2_HEADER_LEN..]) {
        return Err(bad("count out of range"));
    }
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|_| bad("corrupt payload"))?;
    Ok(Some(h))
}

/// Whether hdrhistogram's decoder can read this V2 payload without panicking: it negates
/// each zig-zag decoded value that is negative (a run of zeros), which overflows for the
/// varint of `u64::MAX` (found by fuzzing `WindowSummary::decode`).
fn payload_is_safe(payload: &[u8]) -> bool {
    let mut rest = payload;
    while !rest.is_empty() {
        // hdrhistogram's varint: 7 bits per byte for 8 bytes, then a full ninth byte.
        let mut value = 0u64;
        let mut used = 0;
        for (i, &b) in rest.iter().take(9).enumerate() {
            used = i + 1;
            if i == 8 {
                value |= u64::from(b) << 56;
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        if value == u64::MAX {
            return false;
        }
        rest = &rest[used..];
    }
    true
}

/// Streaming mean and variance (Welford), mergeable (Chan et al.).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Moments {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    pub(crate) m2: f64,
}

impl Moments {
    #[inline]
    pub(crate) fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Moments of a slice, in two passes (mean, then squared deviations).
    pub(crate) fn of(xs: &[f64]) -> Moments {
        if xs.is_empty() {
            return Moments::default();
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let m2 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        Moments {
            n: xs.len() as u64,
            mean,
            m2,
        }
    }

    pub(crate) fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let n = self.n.saturating_add(other.n);
        let delta = other.mean - self.mean;
        let mean = self.mean + delta * other.n as f64 / n as f64;
        self.m2 += other.m2 + delta * delta * self.n as f64 * other.n as f64 / n as f64;
        self.mean = mean;
        self.n = n;
    }

    pub(crate) fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// Population variance.
    pub(crate) fn variance(&self) -> Option<f64> {
        (self.n > 0).then(|| self.m2 / self.n as f64)
    }

    pub(crate) fn sum(&self) -> f64 {
        self.mean * self.n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let n = sorted.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        sorted[rank - 1]
    }

    fn assert_close(got: f64, want: f64) {
        let err = if want == 0.0 {
            got.abs()
        } else {
            ((got - want) / want).abs()
        };
        assert!(err <= 0.01, "got {got}, want {want}, relative error {err}");
    }

    const _: () = assert!(RANGE_MIN <= 1e-6 && RANGE_MAX >= 1e10, "16 decades");

    proptest! {
        #[test]
        fn quantiles_within_one_percent_over_sixteen_decades(
            exps in prop::collection::vec((-6.0f64..10.0, any::<bool>(), 0u8..20), 1..400),
            q in 0.0f64..=1.0,
        ) {
            let values: Vec<f64> = exps.iter().map(|&(e, neg, z)| {
                if z == 0 { 0.0 } else { 10f64.powf(e) * if neg { -1.0 } else { 1.0 } }
            }).collect();
            let mut h = SignedHistogram::<u32>::default();
            values.iter().for_each(|&x| h.record(x));
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            assert_close(h.quantile(q).unwrap(), exact_quantile(&sorted, q));
            assert_close(h.min().unwrap(), sorted[0]);
            assert_close(h.max().unwrap(), *sorted.last().unwrap());
            prop_assert_eq!(h.len(), values.len() as u64);
            prop_assert_eq!(h.zeros, values.iter().filter(|&&x| x == 0.0).count() as u64);
            prop_assert_eq!(h.underflow + h.overflow, 0);
        }

        #[test]
        fn merged_halves_equal_the_whole(xs in prop::collection::vec(-1e6f64..1e6, 0..300), cut in 0usize..300) {
            let cut = cut.min(xs.len());
            let mut whole = SignedHistogram::<u64>::default();
            let mut a = SignedHistogram::<u32>::default();
            let mut b = SignedHistogram::<u32>::default();
            xs.iter().for_each(|&x| whole.record(x));
            xs[..cut].iter().for_each(|&x| a.record(x));
            xs[cut..].iter().for_each(|&x| b.record(x));
            let mut merged = SignedHistogram::<u64>::default();
            merged.add(&a);
            merged.add(&b);
            for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
                prop_assert_eq!(merged.quantile(q), whole.quantile(q));
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_side(&bytes);
        }
    }

    #[test]
    fn out_of_range_values_are_counted_and_clamped() {
        let mut h = SignedHistogram::<u32>::default();
        for x in [1e-12, -1e-9, 1e15, 5.0] {
            h.record(x);
        }
        assert_eq!((h.underflow, h.overflow, h.len()), (2, 1, 4));
        assert_close(h.max().unwrap(), RANGE_MAX);
        assert_close(h.min().unwrap(), -RANGE_MIN);
    }

    #[test]
    fn bytes_round_trip_and_reject_foreign_parameters() {
        let mut h = SignedHistogram::<u64>::default();
        (1..1000).for_each(|i| h.record(f64::from(i) * -0.37));
        let [p, n] = h.side_bytes();
        assert!(p.is_empty());
        let back = SignedHistogram::from_parts(&p, &n, 0, 0, 0).unwrap();
        assert_eq!(back.quantile(0.5), h.quantile(0.5));
        // A header claiming 5 significant digits and a huge range is refused before allocation.
        let mut evil = n.clone();
        evil[12..16].copy_from_slice(&5u32.to_be_bytes());
        assert!(decode_side(&evil).is_err());
        let mut evil = n.clone();
        evil[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_side(&evil).is_err());
        // A count whose zig-zag value is i64::MIN made hdrhistogram negate with overflow.
        let mut evil = n[..V2_HEADER_LEN].to_vec();
        evil.extend_from_slice(&[0xff; 9]);
        evil[4..8].copy_from_slice(&9u32.to_be_bytes());
        assert!(decode_side(&evil).is_err());
    }

    #[test]
    fn moments_merge_like_one_stream() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| (f64::from(i) * 0.7).sin() * 100.0)
            .collect();
        let mut whole = Moments::default();
        xs.iter().for_each(|&x| whole.push(x));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..313].iter().for_each(|&x| a.push(x));
        xs[313..].iter().for_each(|&x| b.push(x));
        a.merge(&b);
        let mean = xs.iter().sum::<f64>() / 1000.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 1000.0;
        assert!((a.mean().unwrap() - mean).abs() < 1e-9);
        assert!((a.variance().unwrap() - var).abs() < 1e-9 * var);
        assert!((whole.variance().unwrap() - var).abs() < 1e-9 * var);
    }
}
