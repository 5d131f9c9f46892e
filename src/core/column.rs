//! Statistics of one feature or output in one window.

use super::hll::{Hll, NUMBER_PRECISION, STRING_PRECISION};
use super::keyed_hash::HashKey;
#[cfg(test)]
use super::numeric::histogram_heap_bytes;
use super::numeric::{Moments, SignedHistogram};
use super::value::Value;
use super::wire::WireError;
use hdrhistogram::Counter;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Numbers whose moments are computed together in [`Column::apply_run`].
const RUN_MAX: usize = 64;

/// Buckets of the hashed category profile.
pub(crate) const PROFILE_BUCKETS: usize = 1024;

/// Exact counts of one column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Counts {
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) missing: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) pos_inf: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) neg_inf: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) bools: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) trues: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) ints: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) floats: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) strings: u64,
    /// Strings longer than the cap: hashed on their first `max_string_bytes` bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) truncated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.count = self.count.saturating_add(o.count);
        self.missing = self.missing.saturating_add(o.missing);
        self.pos_inf = self.pos_inf.saturating_add(o.pos_inf);
        self.neg_inf = self.neg_inf.saturating_add(o.neg_inf);
        self.bools = self.bools.saturating_add(o.bools);
        self.trues = self.trues.saturating_add(o.trues);
        self.ints = self.ints.saturating_add(o.ints);
        self.floats = self.floats.saturating_add(o.floats);
        self.strings = self.strings.saturating_add(o.strings);
        self.truncated = self.truncated.saturating_add(o.truncated);
    }
}

/// Numbers: their signed histogram and moments.
#[derive(Clone, Debug, Default)]
pub(crate) struct Numbers<C: Counter> {
    pub(crate) histogram: SignedHistogram<C>,
    pub(crate) moments: Moments,
}

/// Strings: hashed category profile and length histogram.
#[derive(Clone, Debug)]
pub(crate) struct Strings<C: Counter> {
    pub(crate) profile: Box<[C]>,
    pub(crate) lengths: SignedHistogram<C>,
}

impl<C: Counter> Default for Strings<C> {
    fn default() -> Self {
        Strings {
            profile: vec![C::zero(); PROFILE_BUCKETS].into_boxed_slice(),
            lengths: SignedHistogram::default(),
        }
    }
}

/// One column: `u32` counters while accumulating in a shard, `u64` once merged into a summary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Column<C: Counter> {
    pub(crate) counts: Counts,
    pub(crate) numbers: Option<Box<Numbers<C>>>,
    /// Distinct numbers and distinct strings: disjoint, since the hash tags the type.
    pub(crate) distinct_numbers: Option<Hll<NUMBER_PRECISION>>,
    pub(crate) distinct_strings: Option<Hll<STRING_PRECISION>>,
    pub(crate) strings: Option<Box<Strings<C>>>,
}

#[cfg(test)]
/// Heap bytes of a column at most, by what it has seen (the documented per-feature bound).
pub(crate) fn column_bound_bytes<C: Counter>(
    numbers: bool,
    negatives: bool,
    strings: bool,
) -> usize {
    let hist = histogram_heap_bytes::<C>();
    let mut b = 0;
    if numbers {
        b += Hll::<NUMBER_PRECISION>::HEAP_BYTES
            + std::mem::size_of::<Numbers<C>>()
            + hist * (1 + usize::from(negatives));
    }
    if strings {
        b += Hll::<STRING_PRECISION>::HEAP_BYTES
            + std::mem::size_of::<Strings<C>>()
            + PROFILE_BUCKETS * std::mem::size_of::<C>()
            + hist;
    }
    b
}

/// A logged value reduced to what the sketches need. Strings are hashed (on at most
/// `max_string_bytes` bytes) and dropped here, so that a batch can be folded column by
/// column from a scratch buffer that holds no text.
#[derive(Clone, Copy, Debug)]
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
            Value::Null => Folded::Missing,
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
                let hashed = super::window::cut(s, max_string_bytes);
                Folded::Str {
                    hash: key.hash_str(hashed),
                    len: s.len(),
                    truncated,
                }
            }
        }
    }
}

impl Column<u32> {
    /// Folds one value. `max_string_bytes` caps what is hashed of a string.
    #[inline]
    pub(crate) fn fold(&mut self, v: &Value<'_>, key: &HashKey, max_string_bytes: usize) {
        self.apply(Folded::of(v, key, max_string_bytes), key);
    }

    /// Folds one reduced value.
    #[inline]
    pub(crate) fn apply(&mut self, v: Folded, key: &HashKey) {
        if let Some(x) = self.count(v) {
            // One value: Welford's update is cheaper than a two-pass run and a merge.
            let numbers = self.numbers.get_or_insert_with(Default::default);
            numbers.histogram.record(x);
            numbers.moments.push(x);
            self.distinct_numbers
                .get_or_insert_with(Default::default)
                .insert_hash(key.hash_f64(x));
        }
    }

    /// Folds a run of values of this column. Numbers are folded together afterwards, sketch
    /// by sketch: their keyed hashes are independent and overlap in the pipeline, and their
    /// moments are computed in two passes and merged once (Welford's per-value update is a
    /// chain of dependent divisions, the critical path when a column's values come in a row).
    pub(crate) fn apply_run(&mut self, run: &[Folded], key: &HashKey) {
        let mut numbers = [0.0; RUN_MAX];
        let mut n = 0;
        for &v in run {
            if let Some(x) = self.count(v) {
                numbers[n] = x;
                n += 1;
                if n == RUN_MAX {
                    self.fold_numbers(&numbers, key);
                    n = 0;
                }
            }
        }
        self.fold_numbers(&numbers[..n], key);
    }

    /// Counts a value and folds it if it is not a number; returns the number otherwise.
    #[inline]
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
                let bucket = &mut st.profile[(hash % PROFILE_BUCKETS as u64) as usize];
                *bucket = bucket.saturating_add(1);
                // The length recorded is the logged one, truncated or not.
                st.lengths.record(len as f64);
            }
        }
        None
    }

    /// Folds finite numbers into the histogram, the distinct count and the moments.
    #[inline]
    fn fold_numbers(&mut self, xs: &[f64], key: &HashKey) {
        if xs.is_empty() {
            return;
        }
        let numbers = self.numbers.get_or_insert_with(Default::default);
        for &x in xs {
            numbers.histogram.record(x);
        }
        numbers.moments.merge(&Moments::of(xs));
        let distinct = self.distinct_numbers.get_or_insert_with(Default::default);
        for &x in xs {
            distinct.insert_hash(key.hash_f64(x));
        }
    }

    /// Zeroes every count, keeping allocations for the next window.
    pub(crate) fn clear(&mut self) {
        self.counts = Counts::default();
        if let Some(n) = &mut self.numbers {
            n.histogram.clear();
            n.moments = Moments::default();
        }
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
    }
}

impl Column<u64> {
    /// Adds a column (shard or summary) into this one.
    pub(crate) fn add<D: Counter>(&mut self, o: &Column<D>) {
        self.counts.add(&o.counts);
        if let Some(on) = &o.numbers {
            let n = self.numbers.get_or_insert_with(Default::default);
            n.histogram.add(&on.histogram);
            n.moments.merge(&on.moments);
        }
        if let Some(od) = &o.distinct_numbers {
            self.distinct_numbers
                .get_or_insert_with(Default::default)
                .merge(od);
        }
        if let Some(od) = &o.distinct_strings {
            self.distinct_strings
                .get_or_insert_with(Default::default)
                .merge(od);
        }
        if let Some(os) = &o.strings {
            let s = self.strings.get_or_insert_with(Default::default);
            for (a, b) in s.profile.iter_mut().zip(os.profile.iter()) {
                *a = a.saturating_add(b.as_u64());
            }
            s.lengths.add(&os.lengths);
        }
    }
}

// ---- wire form: plain fields and byte strings, validated on the way in ----

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct HistogramWire {
    #[serde(with = "serde_bytes")]
    positive: Vec<u8>,
    #[serde(with = "serde_bytes")]
    negative: Vec<u8>,
    #[serde(skip_serializing_if = "is_zero")]
    zeros: u64,
    #[serde(skip_serializing_if = "is_zero")]
    underflow: u64,
    #[serde(skip_serializing_if = "is_zero")]
    overflow: u64,
}

impl From<&SignedHistogram<u64>> for HistogramWire {
    fn from(h: &SignedHistogram<u64>) -> Self {
        let [positive, negative] = h.side_bytes();
        HistogramWire {
            positive,
            negative,
            zeros: h.zeros,
            underflow: h.underflow,
            overflow: h.overflow,
        }
    }
}

impl TryFrom<HistogramWire> for SignedHistogram<u64> {
    type Error = WireError;
    fn try_from(w: HistogramWire) -> Result<Self, WireError> {
        SignedHistogram::from_parts(&w.positive, &w.negative, w.zeros, w.underflow, w.overflow)
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct ColumnWire {
    #[serde(flatten)]
    counts: Counts,
    histogram: Option<HistogramWire>,
    moments: Option<(u64, f64, f64)>,
    #[serde(with = "serde_bytes")]
    distinct_numbers: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    distinct_strings: Option<Vec<u8>>,
    /// Sparse profile: (gap to the previous nonzero bucket, count) as LEB128 varints.
    #[serde(with = "serde_bytes")]
    profile: Option<Vec<u8>>,
    lengths: Option<HistogramWire>,
}

impl Serialize for Column<u64> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ColumnWire {
            counts: self.counts,
            histogram: self.numbers.as_ref().map(|n| (&n.histogram).into()),
            moments: self
                .numbers
                .as_ref()
                .map(|n| (n.moments.n, n.moments.mean, n.moments.m2)),
            distinct_numbers: self.distinct_numbers.as_ref().map(Hll::to_bytes),
            distinct_strings: self.distinct_strings.as_ref().map(Hll::to_bytes),
            profile: self.strings.as_ref().map(|st| encode_profile(&st.profile)),
            lengths: self.strings.as_ref().map(|st| (&st.lengths).into()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Column<u64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = ColumnWire::deserialize(d)?;
        let err = |e: WireError| D::Error::custom(e);
        let numbers = match (w.histogram, w.moments) {
            (Some(h), Some((n, mean, m2))) => Some(Box::new(Numbers {
                histogram: h.try_into().map_err(err)?,
                moments: Moments { n, mean, m2 },
            })),
            (None, None) => None,
            _ => {
                return Err(err(WireError::sketch(
                    "numbers",
                    "histogram without moments",
                )))
            }
        };
        let strings = match (w.profile, w.lengths) {
            (Some(p), Some(l)) => {
                let mut st = Strings::<u64>::default();
                decode_profile(&p, &mut st.profile).map_err(err)?;
                st.lengths = l.try_into().map_err(err)?;
                Some(Box::new(st))
            }
            (None, None) => None,
            _ => return Err(err(WireError::sketch("strings", "profile without lengths"))),
        };
        Ok(Column {
            counts: w.counts,
            numbers,
            distinct_numbers: w
                .distinct_numbers
                .map(|b| Hll::from_bytes(&b))
                .transpose()
                .map_err(err)?,
            distinct_strings: w
                .distinct_strings
                .map(|b| Hll::from_bytes(&b))
                .transpose()
                .map_err(err)?,
            strings,
        })
    }
}

fn encode_profile(profile: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = 0;
    for (i, &c) in profile.iter().enumerate().filter(|(_, &c)| c != 0) {
        put_varint(&mut out, (i - next) as u64);
        put_varint(&mut out, c);
        next = i + 1;
    }
    out
}

fn decode_profile(mut bytes: &[u8], profile: &mut [u64]) -> Result<(), WireError> {
    let bad = |why| WireError::sketch("profile", why);
    let mut next = 0usize;
    while !bytes.is_empty() {
        let gap = take_varint(&mut bytes).ok_or(bad("truncated varint"))?;
        let count = take_varint(&mut bytes).ok_or(bad("truncated varint"))?;
        let i = usize::try_from(gap)
            .ok()
            .and_then(|g| next.checked_add(g))
            .filter(|&i| i < profile.len())
            .ok_or(bad("bucket out of range"))?;
        profile[i] = count;
        next = i + 1;
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn profile_round_trips(entries in prop::collection::btree_map(0usize..PROFILE_BUCKETS, 1u64.., 0..50)) {
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
