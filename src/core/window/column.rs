//! The accumulating column of one shard: folds values into `u32` sketches.

use crate::core::record::cut;
use crate::core::record::value::Value;
use crate::core::sketch::exponential::ShardHistogram;
use crate::core::sketch::hll::{Hll, NUMBER_PRECISION, STRING_PRECISION};
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::sketch::moments::Moments;
use crate::core::sketch::profile::{profile_bucket, PROFILE_BUCKETS};
use crate::core::sketch::vector::VectorSums;
use crate::core::summary::column::{Column, Counts, Numbers, Strings};
use std::collections::HashMap;

/// Numbers of a shard: histogram and moments.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShardNumbers {
    pub(crate) histogram: ShardHistogram,
    pub(crate) moments: Moments,
}

/// Strings of a shard: hashed category profile and length histogram.
#[derive(Clone, Debug)]
pub(crate) struct ShardStrings {
    profile: Box<[u32]>,
    lengths: ShardHistogram,
}

impl Default for ShardStrings {
    fn default() -> Self {
        ShardStrings {
            profile: vec![0; PROFILE_BUCKETS].into_boxed_slice(),
            lengths: ShardHistogram::default(),
        }
    }
}

/// One column of one shard's window.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShardColumn {
    pub(crate) counts: Counts,
    /// Inline, not boxed: a boxed header is one more dependent cache miss per value when
    /// the server's own work has evicted the sketches (an empty one holds no heap).
    pub(crate) numbers: ShardNumbers,
    /// Distinct numbers and distinct strings: disjoint, since the hash tags the type.
    distinct_numbers: Option<Hll<NUMBER_PRECISION>>,
    distinct_strings: Option<Hll<STRING_PRECISION>>,
    strings: Option<Box<ShardStrings>>,
    /// Vector features: their norms go to `numbers`, their components here.
    vectors: Option<Box<VectorSums>>,
    /// Features opted in to plain categories (`Config::plain_categories`): strings by name.
    pub(crate) plain: Option<Box<PlainCounts>>,
}

/// Distinct strings counted by name per column and shard, at most; further names are
/// counted in the hashed profile only.
pub(crate) const MAX_PLAIN_NAMES: usize = 256;

/// Strings of an opted-in feature, counted by name (cut to `max_string_bytes`).
#[derive(Clone, Debug, Default)]
pub(crate) struct PlainCounts(HashMap<Box<str>, u64>);

impl PlainCounts {
    #[inline]
    pub(crate) fn count(&mut self, s: &str, max_string_bytes: usize) {
        let s = cut(s, max_string_bytes);
        if let Some(n) = self.0.get_mut(s) {
            *n += 1;
        } else if self.0.len() < MAX_PLAIN_NAMES {
            self.0.insert(s.into(), 1);
        }
    }
}

/// A logged value reduced to what the sketches need. Strings are hashed (on at most
/// `max_string_bytes` bytes) and dropped here, so that a window can hold the value, with no
/// text, until it folds a burst of them (as a [`Held`]). Vectors are not reduced: callers
/// fold them at once with [`ShardColumn::fold_vector`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Folded {
    Missing,
    Bool(bool),
    Int(f64),
    Float(f64),
    PosInf,
    NegInf,
    Str {
        hash: u64,
        len: usize,
        truncated: bool,
    },
}

impl Folded {
    #[inline]
    pub(crate) fn of(v: &Value<'_>, key: &HashKey, max_string_bytes: usize) -> Folded {
        match *v {
            Value::Null | Value::Vector(_) => Folded::Missing,
            Value::Bool(b) => Folded::Bool(b),
            Value::Int(i) => Folded::Int(i as f64),
            Value::Float(x) if x.is_nan() => Folded::Missing,
            Value::Float(x) if x.is_infinite() => {
                if x > 0.0 {
                    Folded::PosInf
                } else {
                    Folded::NegInf
                }
            }
            Value::Float(x) => Folded::Float(x),
            Value::Str(ref s) => {
                let truncated = s.len() > max_string_bytes;
                let hashed = cut(s, max_string_bytes);
                Folded::Str {
                    hash: key.hash_str(hashed),
                    len: s.len(),
                    truncated,
                }
            }
        }
    }
}

/// A column's [`Folded`] value in 16 bytes, as a window holds it until it folds them
/// (`Columns::defer`): a record's values then fill half as many cache lines.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Held {
    pub(crate) column: u32,
    /// The kind in the low 3 bits; for a string, whether it was truncated (bit 3) and its
    /// length (the 28 bits above).
    tag: u32,
    /// The number's bits, the boolean, or the string's hash.
    bits: u64,
}

/// The longest string length a [`Held`] value keeps (256 MiB - 1).
const MAX_HELD_LEN: usize = (1 << 28) - 1;

impl Held {
    /// `None` for a string of 256 MiB or more, whose length does not fit: to fold at once.
    #[inline(always)]
    pub(crate) fn new(column: u32, v: Folded) -> Option<Held> {
        let (tag, bits) = match v {
            Folded::Missing => (0, 0),
            Folded::Bool(b) => (1, u64::from(b)),
            Folded::Int(x) => (2, x.to_bits()),
            Folded::Float(x) => (3, x.to_bits()),
            Folded::PosInf => (4, 0),
            Folded::NegInf => (5, 0),
            Folded::Str {
                hash,
                len,
                truncated,
            } => {
                if len > MAX_HELD_LEN {
                    return None;
                }
                (6 | u32::from(truncated) << 3 | (len as u32) << 4, hash)
            }
        };
        Some(Held { column, tag, bits })
    }

    #[inline(always)]
    pub(crate) fn folded(self) -> Folded {
        match self.tag & 7 {
            0 => Folded::Missing,
            1 => Folded::Bool(self.bits != 0),
            2 => Folded::Int(f64::from_bits(self.bits)),
            3 => Folded::Float(f64::from_bits(self.bits)),
            4 => Folded::PosInf,
            5 => Folded::NegInf,
            _ => Folded::Str {
                hash: self.bits,
                len: (self.tag >> 4) as usize,
                truncated: self.tag & 8 != 0,
            },
        }
    }
}

impl ShardColumn {
    /// Folds one value at once (the window holds them first: `Columns::defer`).
    /// `max_string_bytes` caps what is hashed of a string.
    #[cfg(test)]
    pub(crate) fn fold(&mut self, v: &Value<'_>, key: &HashKey, max_string_bytes: usize) {
        self.fold_unreduced(v, max_string_bytes);
        if let Value::Vector(_) = v {
            return;
        }
        self.apply(Folded::of(v, key, max_string_bytes), key);
    }

    /// What [`Folded`] leaves out: vectors, and the names of an opted-in feature's strings.
    #[inline]
    pub(crate) fn fold_unreduced(&mut self, v: &Value<'_>, max_string_bytes: usize) {
        match v {
            Value::Vector(v) => self.fold_vector(v),
            Value::Str(s) => {
                if let Some(p) = &mut self.plain {
                    p.count(s, max_string_bytes);
                }
            }
            _ => {}
        }
    }

    /// Folds one vector: its L2 norm as this column's number (histogram and moments, no
    /// distinct count), its components into the per-dimension sums. A vector with a
    /// non-finite component is counted as a vector and sketched nowhere.
    #[cold]
    pub(crate) fn fold_vector(&mut self, v: &[f32]) {
        self.counts.count += 1;
        self.counts.vectors += 1;
        if !v.iter().all(|x| x.is_finite()) {
            return;
        }
        let norm = self.vectors.get_or_insert_with(Default::default).push(v);
        self.numbers.histogram.record(norm);
        self.numbers.moments.push(norm);
    }

    /// Folds one reduced value.
    #[inline(always)]
    pub(crate) fn apply(&mut self, v: Folded, key: &HashKey) {
        self.apply_hashed(v, |x| key.hash_f64(x));
    }

    /// [`apply`](Self::apply) with the number's hash from `hash_f64` (computed already
    /// when the value was prefetched).
    #[inline(always)]
    pub(crate) fn apply_hashed(&mut self, v: Folded, hash_f64: impl FnOnce(f64) -> u64) {
        if let Some(x) = self.count(v) {
            // One value: Welford's update is cheaper than a two-pass run and a merge.
            self.numbers.histogram.record(x);
            self.numbers.moments.push(x);
            self.distinct_numbers
                .get_or_insert_with(Default::default)
                .insert_hash(hash_f64(x));
        }
    }

    /// Prefetches the lines that [`apply`](Self::apply) of `v` will write beyond the
    /// column's own: the histogram bucket and HyperLogLog register of a number, the
    /// register and profile bucket of a string. Returns a number's hash, for
    /// [`apply_hashed`](Self::apply_hashed) (0 for other values, which need none).
    #[inline(always)]
    pub(crate) fn prefetch(&self, v: Folded, key: &HashKey) -> u64 {
        match v {
            Folded::Int(x) | Folded::Float(x) => {
                let hash = key.hash_f64(x);
                self.numbers.histogram.prefetch_slot(x);
                if let Some(d) = &self.distinct_numbers {
                    d.prefetch_register(hash);
                }
                return hash;
            }
            Folded::Str { hash, .. } => {
                if let Some(d) = &self.distinct_strings {
                    d.prefetch_register(hash);
                }
                if let Some(st) = &self.strings {
                    crate::core::prefetch::prefetch(&st.profile[profile_bucket(hash)]);
                }
            }
            _ => {}
        }
        0
    }

    /// Counts a number and folds it into the histogram and moments, without a distinct
    /// count (for latencies, whose distinct count means nothing). NaN counts as missing,
    /// infinities as such: neither reaches the histogram.
    pub(crate) fn record_number(&mut self, x: f64) {
        let folded = if x.is_nan() {
            Folded::Missing
        } else if x == f64::INFINITY {
            Folded::PosInf
        } else if x == f64::NEG_INFINITY {
            Folded::NegInf
        } else {
            Folded::Float(x)
        };
        if let Some(x) = self.count(folded) {
            self.numbers.histogram.record(x);
            self.numbers.moments.push(x);
        }
    }

    /// Counts a value and folds it if it is not a number; returns the number otherwise.
    #[inline(always)]
    fn count(&mut self, v: Folded) -> Option<f64> {
        let c = &mut self.counts;
        c.count += 1;
        match v {
            Folded::Missing => c.missing += 1,
            Folded::Bool(b) => {
                c.bools += 1;
                c.trues += u64::from(b);
            }
            Folded::Int(x) => {
                c.ints += 1;
                return Some(x);
            }
            Folded::Float(x) => {
                c.floats += 1;
                return Some(x);
            }
            Folded::PosInf => {
                c.floats += 1;
                c.pos_inf += 1;
            }
            Folded::NegInf => {
                c.floats += 1;
                c.neg_inf += 1;
            }
            Folded::Str {
                hash,
                len,
                truncated,
            } => {
                c.strings += 1;
                c.truncated += u64::from(truncated);
                self.distinct_strings
                    .get_or_insert_with(Default::default)
                    .insert_hash(hash);
                let st = self.strings.get_or_insert_with(Default::default);
                let bucket = &mut st.profile[profile_bucket(hash)];
                *bucket = bucket.saturating_add(1);
                // The length recorded is the logged one, truncated or not.
                st.lengths.record(len as f64);
            }
        }
        None
    }

    /// Zeroes every count, keeping allocations for the next window.
    pub(crate) fn clear(&mut self) {
        self.counts = Counts::default();
        self.numbers.histogram.clear();
        self.numbers.moments = Moments::default();
        if let Some(d) = &mut self.distinct_numbers {
            d.clear();
        }
        if let Some(d) = &mut self.distinct_strings {
            d.clear();
        }
        if let Some(s) = &mut self.strings {
            s.profile.fill(0);
            s.lengths.clear();
        }
        if let Some(v) = &mut self.vectors {
            v.clear();
        }
        if let Some(p) = &mut self.plain {
            p.0.clear();
        }
    }

    /// Adds this column into a summary's column.
    pub(crate) fn add_to(&self, c: &mut Column) {
        c.counts.add(&self.counts);
        if self.numbers.moments.n > 0 {
            let sn = &self.numbers;
            let n = c.numbers.get_or_insert_with(Box::<Numbers>::default);
            n.histogram.add_shard(&sn.histogram);
            n.moments.merge(&sn.moments);
        }
        if let Some(d) = &self.distinct_numbers {
            c.distinct_numbers
                .get_or_insert_with(Default::default)
                .add_shard(d);
        }
        if let Some(d) = &self.distinct_strings {
            c.distinct_strings
                .get_or_insert_with(Default::default)
                .add_shard(d);
        }
        if let Some(ss) = &self.strings {
            let s = c.strings.get_or_insert_with(Box::<Strings>::default);
            s.profile.add_dense(&ss.profile);
            s.lengths.add_shard(&ss.lengths);
        }
        if let Some(v) = self.vectors.as_deref().filter(|v| v.n > 0) {
            c.vectors.get_or_insert_with(Default::default).merge(v);
        }
        if let Some(p) = &self.plain {
            for (name, n) in &p.0 {
                *c.plain.entry(name.to_string()).or_default() += n;
            }
        }
    }

    /// Heap bytes this column holds (for the memory bounds).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        let numbers = self.numbers.histogram.heap_bytes();
        let strings = self.strings.as_ref().map_or(0, |s| {
            std::mem::size_of::<ShardStrings>() + s.profile.len() * 4 + s.lengths.heap_bytes()
        });
        numbers
            + strings
            + self.distinct_numbers.as_ref().map_or(0, Hll::heap_bytes)
            + self.distinct_strings.as_ref().map_or(0, Hll::heap_bytes)
            + self
                .vectors
                .as_ref()
                .map_or(0, |v| std::mem::size_of::<VectorSums>() + v.heap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sketch::exponential::MAX_BUCKETS;

    const KEY: HashKey = HashKey::new([7; 16]);

    #[test]
    fn held_values_are_the_folded_ones() {
        let values = [
            Folded::Missing,
            Folded::Bool(false),
            Folded::Bool(true),
            Folded::Int(-3.0),
            Folded::Float(f64::MIN_POSITIVE),
            Folded::Float(-0.0),
            Folded::PosInf,
            Folded::NegInf,
            Folded::Str {
                hash: u64::MAX,
                len: 0,
                truncated: false,
            },
            Folded::Str {
                hash: 7,
                len: MAX_HELD_LEN,
                truncated: true,
            },
        ];
        for (i, v) in values.into_iter().enumerate() {
            let held = Held::new(i as u32 + u32::MAX / 2, v).expect("held");
            assert_eq!(held.column, i as u32 + u32::MAX / 2);
            match (held.folded(), v) {
                // -0.0 == 0.0: the bits must come back too.
                (Folded::Float(a), Folded::Float(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => assert_eq!(a, b),
            }
        }
        let long = Folded::Str {
            hash: 1,
            len: MAX_HELD_LEN + 1,
            truncated: true,
        };
        assert!(Held::new(0, long).is_none());
        assert_eq!(std::mem::size_of::<Held>(), 16);
    }

    /// Drives a column to its largest size: magnitudes over more than the bucket cap, of
    /// the signs and types asked for.
    fn worst_case(numbers: bool, negatives: bool, strings: bool) -> usize {
        let mut c = ShardColumn::default();
        for e in -600..600 {
            let x = f64::from(e).exp2();
            if numbers {
                c.fold(&Value::Float(x), &KEY, 256);
            }
            if negatives {
                c.fold(&Value::Float(-x), &KEY, 256);
            }
        }
        if strings {
            let long = "x".repeat(1 << 20);
            for i in 0..10_000 {
                c.fold(&Value::from(format!("{i}").as_str()), &KEY, 256);
            }
            c.fold(&Value::from(long.as_str()), &KEY, 256);
            c.fold(&Value::from(""), &KEY, 256);
        }
        c.heap_bytes()
    }

    #[test]
    fn documented_bytes_per_feature_are_the_worst_case() {
        let hll_n = 1 << NUMBER_PRECISION;
        let hll_s = 1 << STRING_PRECISION;
        let numbers = MAX_BUCKETS * 4 + hll_n;
        let strings = std::mem::size_of::<ShardStrings>() + PROFILE_BUCKETS * 4 + hll_s;
        assert_eq!(worst_case(true, false, false), numbers);
        assert_eq!(crate::BYTES_PER_NUMERIC_FEATURE, numbers);
        assert_eq!(worst_case(true, true, false), numbers + MAX_BUCKETS * 4);
        assert_eq!(crate::BYTES_PER_SIGNED_FEATURE, numbers + MAX_BUCKETS * 4);
        // String lengths from 0 to 2^20 bytes take 21 powers of two of buckets (and slack).
        let lengths = worst_case(false, false, true) - strings;
        assert!(lengths <= 32 * 64 * 4, "{lengths}");
        assert_eq!(crate::BYTES_PER_STRING_FEATURE, strings + MAX_BUCKETS * 4);
        assert!(worst_case(true, true, true) <= crate::BYTES_PER_FEATURE_MAX);
        assert_eq!(
            crate::BYTES_PER_FEATURE_MAX,
            crate::BYTES_PER_SIGNED_FEATURE + crate::BYTES_PER_STRING_FEATURE
        );
    }

    /// What a column holds, every register and count included, to compare two columns.
    fn state(c: &ShardColumn) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?}",
            c.counts,
            c.numbers,
            c.distinct_numbers.as_ref().map(Hll::to_bytes),
            c.distinct_strings.as_ref().map(Hll::to_bytes),
            c.strings,
        )
    }

    #[test]
    fn a_window_folds_its_held_values_as_if_each_were_folded_at_once() {
        // Bursts of held values, folded with their lines prefetched and their numbers'
        // hashes computed ahead, against each value folded into its own column at once.
        let limits = crate::core::window::Limits::default();
        let names = ["lognormal", "int", "category", "signed_or_missing", "flag"];
        let mut window = crate::core::window::WindowAcc::default();
        let mut oracle = vec![ShardColumn::default(); names.len()];
        let mut state_rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state_rng = state_rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state_rng >> 11) as f64 / (1u64 << 53) as f64
        };
        // 1,003 rows of 5 values: about 20 bursts, the last one cut short.
        for r in 0..1_003_i64 {
            let category = format!("c{}", r % 101);
            let values = [
                Value::Float((next() * 8.0 - 4.0).exp()),
                Value::Int(r % 37 - 18),
                Value::from(category.as_str()),
                match r % 5 {
                    0 => Value::Float(f64::NAN),
                    1 => Value::Null,
                    _ => Value::Float(next() * 200.0 - 100.0),
                },
                Value::Bool(r % 3 == 0),
            ];
            let row: Vec<(&str, Value<'_>)> = names.iter().copied().zip(values.clone()).collect();
            window.log_prediction(&row, &0.5, &KEY, &limits.rules());
            for (c, v) in oracle.iter_mut().zip(&values) {
                c.fold(v, &KEY, limits.max_string_bytes);
            }
        }
        window.features.settle(&KEY);
        assert_eq!(window.features.columns.len(), names.len());
        for (folded, expected) in window.features.columns.iter().zip(&oracle) {
            assert_eq!(state(folded), state(expected));
        }
    }
}
