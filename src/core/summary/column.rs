//! Statistics of one feature or output in a summary, and their wire form.

use crate::core::sketch::exponential::{Histogram, SCALE};
use crate::core::sketch::hll::{HllSummary, NUMBER_PRECISION, STRING_PRECISION};
use crate::core::sketch::moments::Moments;
use crate::core::sketch::profile::Profile;
use crate::core::sketch::vector::{VectorSums, VectorWire};
use crate::core::sketch::{charge, saturating_sum, WireError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

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
    /// Vectors (embeddings), non-finite ones included.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) vectors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    pub(crate) fn add(&mut self, o: &Counts) {
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
        self.vectors = self.vectors.saturating_add(o.vectors);
    }
}

/// Numbers: their histogram and moments.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Numbers {
    pub(crate) histogram: Histogram,
    pub(crate) moments: Moments,
}

/// Strings: hashed category profile and length histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Strings {
    pub(crate) profile: Profile,
    pub(crate) lengths: Histogram,
}

/// One column of a summary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Column {
    pub(crate) counts: Counts,
    pub(crate) numbers: Option<Box<Numbers>>,
    /// Distinct numbers and distinct strings: disjoint, since the hash tags the type.
    pub(crate) distinct_numbers: Option<HllSummary<NUMBER_PRECISION>>,
    /// Numbers counted as distinct without registers: see [`ALL_DISTINCT_MIN`].
    pub(crate) unique_numbers: u64,
    pub(crate) distinct_strings: Option<HllSummary<STRING_PRECISION>>,
    pub(crate) strings: Option<Box<Strings>>,
    /// Vector features: per-dimension sums of the finite vectors (their norms are the
    /// column's numbers).
    pub(crate) vectors: Option<Box<VectorSums>>,
    /// Opted-in features (`Config::plain_categories`): the categories seen at least
    /// `plain_category_min_count` times in a window, by name, with their counts.
    pub(crate) plain: BTreeMap<String, u64>,
    /// k-anonymity (`summary/anonymity.rs`): values of this window held back, carried to
    /// a later summary; nothing else of them is here.
    pub(crate) withheld: u64,
    /// Values of earlier windows, held back there, included in these statistics.
    pub(crate) carried: u64,
    /// At the last seal, values counted here whose sketches and moments were dropped.
    pub(crate) unsketched: u64,
}

/// Fewest numbers whose registers may be left off the wire. When a column's numeric
/// HyperLogLog estimates at least (1 − 3 standard errors) of the numbers it counted, the
/// numbers are all distinct as far as the sketch can tell (continuous values are): the
/// registers carry no information beyond the count, and cost ~450 bytes. They are then
/// replaced by `unique_numbers`, that count, which merges by addition (values of such
/// windows are taken as distinct from every other window's: true of continuous data, and
/// repeated values keep their registers). Below this many numbers the registers travel in
/// their sparse form, a few bytes each.
pub(crate) const ALL_DISTINCT_MIN: u64 = 64;

impl Column {
    /// Distinct numbers, at most the numbers counted.
    pub(crate) fn distinct_numbers(&self) -> f64 {
        let n = self.numbers.as_ref().map_or(0, |n| n.moments.n);
        let estimate = self
            .distinct_numbers
            .as_ref()
            .map_or(0.0, HllSummary::estimate);
        (estimate + self.unique_numbers as f64).min(n as f64)
    }

    /// Distinct strings, at most the strings counted.
    pub(crate) fn distinct_strings(&self) -> f64 {
        let estimate = self
            .distinct_strings
            .as_ref()
            .map_or(0.0, HllSummary::estimate);
        estimate.min(self.counts.strings as f64)
    }

    /// The numeric registers and the unique count as they travel (see [`ALL_DISTINCT_MIN`]).
    fn distinct_numbers_wire(&self) -> (Option<Vec<u8>>, u64) {
        let Some(h) = &self.distinct_numbers else {
            return (None, self.unique_numbers);
        };
        let n = self.numbers.as_ref().map_or(0, |n| n.moments.n);
        let in_registers = n.saturating_sub(self.unique_numbers);
        let all_distinct =
            (1.0 - 3.0 * crate::NUMBER_DISTINCT_STANDARD_ERROR) * in_registers as f64;
        if in_registers >= ALL_DISTINCT_MIN && h.estimate() >= all_distinct {
            (None, self.unique_numbers.saturating_add(in_registers))
        } else {
            (Some(h.to_bytes()), self.unique_numbers)
        }
    }
}

impl Column {
    /// The fewest values any of the column's statistics is computed over: all its values
    /// (missing and type counts), its finite numbers (histogram, moments, registers), its
    /// strings (profile, lengths, registers), its booleans (`trues`). Zero for none.
    /// k-anonymity holds a column back when this is below k: one number among fifty
    /// missing values is the mean.
    pub(crate) fn smallest_population(&self) -> u64 {
        let numbers = self.numbers.as_ref().map_or(0, |n| n.moments.n);
        [
            self.counts.count,
            numbers,
            self.counts.strings,
            self.counts.bools,
        ]
        .into_iter()
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
    }

    /// Keeps the exact counts and drops every sketch and the moments, which describe the
    /// values: the last seal of fewer than k values.
    pub(crate) fn keep_counts_only(&mut self) {
        self.numbers = None;
        self.distinct_numbers = None;
        self.unique_numbers = 0;
        self.distinct_strings = None;
        self.strings = None;
        self.vectors = None;
        self.plain.clear();
        self.unsketched = self.counts.count;
    }

    /// Adds another summary's column into this one.
    pub(crate) fn merge(&mut self, o: &Column) {
        self.counts.add(&o.counts);
        if let Some(on) = &o.numbers {
            let n = self.numbers.get_or_insert_with(Default::default);
            n.histogram.merge(&on.histogram);
            n.moments.merge(&on.moments);
        }
        if let Some(od) = &o.distinct_numbers {
            self.distinct_numbers
                .get_or_insert_with(Default::default)
                .merge(od);
        }
        self.unique_numbers = self.unique_numbers.saturating_add(o.unique_numbers);
        if let Some(od) = &o.distinct_strings {
            self.distinct_strings
                .get_or_insert_with(Default::default)
                .merge(od);
        }
        if let Some(os) = &o.strings {
            let s = self.strings.get_or_insert_with(Default::default);
            s.profile.merge(&os.profile);
            s.lengths.merge(&os.lengths);
        }
        if let Some(ov) = &o.vectors {
            self.vectors.get_or_insert_with(Default::default).merge(ov);
        }
        for (name, n) in &o.plain {
            let mine = self.plain.entry(name.clone()).or_default();
            *mine = mine.saturating_add(*n);
        }
        self.withheld = self.withheld.saturating_add(o.withheld);
        self.carried = self.carried.saturating_add(o.carried);
        self.unsketched = self.unsketched.saturating_add(o.unsketched);
    }
}

#[cfg(test)]
impl Column {
    /// Bytes this column holds on the heap, itself included.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Column>()
            + self.numbers.as_ref().map_or(0, |n| {
                std::mem::size_of::<Numbers>() + n.histogram.heap_bytes()
            })
            + self.strings.as_ref().map_or(0, |s| {
                std::mem::size_of::<Strings>() + s.profile.heap_bytes() + s.lengths.heap_bytes()
            })
            + self
                .distinct_numbers
                .as_ref()
                .map_or(0, HllSummary::heap_bytes)
            + self
                .distinct_strings
                .as_ref()
                .map_or(0, HllSummary::heap_bytes)
            + self
                .vectors
                .as_ref()
                .map_or(0, |v| std::mem::size_of::<VectorSums>() + v.heap_bytes())
    }
}

// ---- wire form: plain fields and byte strings, validated on the way in ----

/// A histogram on the wire: its scale (always 6 today), the spans and count deltas of both
/// signs (`Histogram::to_bytes`), zeros, and the values collapsed per sign.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct HistogramWire {
    scale: i32,
    #[serde(with = "serde_bytes")]
    buckets: Vec<u8>,
    #[serde(skip_serializing_if = "is_zero")]
    zeros: u64,
    #[serde(skip_serializing_if = "is_zero")]
    collapsed: u64,
    #[serde(skip_serializing_if = "is_zero")]
    negative_collapsed: u64,
}

impl From<&Histogram> for HistogramWire {
    fn from(h: &Histogram) -> Self {
        let [collapsed, negative_collapsed] = h.collapsed_by_sign();
        HistogramWire {
            scale: SCALE,
            buckets: h.to_bytes(),
            zeros: h.zeros,
            collapsed,
            negative_collapsed,
        }
    }
}

impl TryFrom<HistogramWire> for Histogram {
    type Error = WireError;
    fn try_from(w: HistogramWire) -> Result<Self, WireError> {
        if w.scale != SCALE {
            return Err(WireError::sketch("numbers", "unsupported scale"));
        }
        Histogram::from_parts(&w.buckets, w.zeros, [w.collapsed, w.negative_collapsed])
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
    #[serde(skip_serializing_if = "is_zero")]
    unique_numbers: u64,
    #[serde(with = "serde_bytes")]
    distinct_strings: Option<Vec<u8>>,
    /// Nonzero buckets as spans and count deltas.
    #[serde(with = "serde_bytes")]
    profile: Option<Vec<u8>>,
    lengths: Option<HistogramWire>,
    /// Not `vectors`: that is the count, flattened in from `counts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    vector_sums: Option<VectorWire>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    categories: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    withheld: u64,
    #[serde(skip_serializing_if = "is_zero")]
    carried: u64,
    #[serde(skip_serializing_if = "is_zero")]
    unsketched: u64,
}

impl Serialize for Column {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (distinct_numbers, unique_numbers) = self.distinct_numbers_wire();
        ColumnWire {
            counts: self.counts,
            histogram: self.numbers.as_ref().map(|n| (&n.histogram).into()),
            moments: self
                .numbers
                .as_ref()
                .map(|n| (n.moments.n, n.moments.mean, n.moments.m2)),
            distinct_numbers,
            unique_numbers,
            distinct_strings: self.distinct_strings.as_ref().map(HllSummary::to_bytes),
            profile: self.strings.as_ref().map(|st| st.profile.to_bytes()),
            lengths: self.strings.as_ref().map(|st| (&st.lengths).into()),
            vector_sums: self.vectors.as_deref().map(Into::into),
            categories: self.plain.clone(),
            withheld: self.withheld,
            carried: self.carried,
            unsketched: self.unsketched,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = ColumnWire::deserialize(d)?;
        let err = |e: WireError| D::Error::custom(e);
        // The column and its numbers' box; sketches charge their own allocations.
        charge(std::mem::size_of::<Column>() + std::mem::size_of::<Numbers>()).map_err(err)?;
        let numbers = match (w.histogram, w.moments) {
            (Some(h), Some((n, mean, m2))) => {
                let histogram: Histogram = h.try_into().map_err(err)?;
                if histogram.len() != n {
                    return Err(err(WireError::sketch(
                        "numbers",
                        "histogram and moments count differently",
                    )));
                }
                Some(Box::new(Numbers {
                    histogram,
                    moments: Moments { n, mean, m2 },
                }))
            }
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
                charge(std::mem::size_of::<Strings>()).map_err(err)?;
                Some(Box::new(Strings {
                    profile: Profile::from_bytes(&p).map_err(err)?,
                    lengths: l.try_into().map_err(err)?,
                }))
            }
            (None, None) => None,
            _ => return Err(err(WireError::sketch("strings", "profile without lengths"))),
        };
        let vectors = match w.vector_sums {
            Some(v) => {
                charge(std::mem::size_of::<VectorSums>()).map_err(err)?;
                let v = VectorSums::try_from(v).map_err(err)?;
                if v.n > w.counts.vectors {
                    return Err(err(WireError::sketch(
                        "vectors",
                        "more vectors summed than counted",
                    )));
                }
                Some(Box::new(v))
            }
            None => None,
        };
        let named: u64 = saturating_sum(w.categories.values().copied());
        if named > w.counts.strings {
            return Err(err(WireError::sketch(
                "categories",
                "more named categories than strings",
            )));
        }
        if w.unique_numbers > numbers.as_ref().map_or(0, |n| n.moments.n) {
            return Err(err(WireError::sketch(
                "numbers",
                "more unique numbers than numbers",
            )));
        }
        Ok(Column {
            counts: w.counts,
            unique_numbers: w.unique_numbers,
            numbers,
            distinct_numbers: w
                .distinct_numbers
                .map(|b| HllSummary::from_bytes(&b))
                .transpose()
                .map_err(err)?,
            distinct_strings: w
                .distinct_strings
                .map(|b| HllSummary::from_bytes(&b))
                .transpose()
                .map_err(err)?,
            strings,
            vectors,
            plain: w.categories,
            withheld: w.withheld,
            carried: w.carried,
            unsketched: w.unsketched,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::core::summary::WindowSummary;
    use crate::core::window::builder::SummaryBuilder;
    use crate::Value;

    fn decoded_heap(s: &WindowSummary) -> (usize, usize) {
        let bytes = s.encode();
        let back = WindowSummary::decode(&bytes).unwrap();
        let heap = back.features().map(|(_, f)| f.0.heap_bytes()).sum();
        (bytes.len(), heap)
    }

    #[test]
    fn schema_1_is_named_not_called_malformed() {
        use crate::SummaryErrorKind;
        // A schema-1 summary: hdrhistogram payloads where schema 2 has spans.
        let v1 = serde_json::json!({
            "schema_version": 1,
            "deployment": "d",
            "features": {"x": {"count": 1, "floats": 1,
                "histogram": {"positive": [28, 132, 147, 19], "negative": []},
                "moments": [1, 2.5, 0.0]}},
        });
        let err = WindowSummary::decode(&rmp_serde::to_vec_named(&v1).unwrap()).unwrap_err();
        assert_eq!(err.kind(), &SummaryErrorKind::UnsupportedVersion(1));
        assert!(err.to_string().contains("schema 1"), "{err}");
        // Also when the body would decode (encode writes this version, so the version is
        // changed in a copy).
        let s = SummaryBuilder::new("m", 0, 60_000, [3; 16]).build();
        let mut v1 = serde_json::to_value(&s).unwrap();
        v1["schema_version"] = 1.into();
        let err = WindowSummary::decode(&rmp_serde::to_vec_named(&v1).unwrap()).unwrap_err();
        assert_eq!(err.kind(), &SummaryErrorKind::UnsupportedVersion(1));
    }

    #[test]
    fn non_finite_latencies_are_counted_not_sketched() {
        let mut b = SummaryBuilder::new("m", 0, 60_000, [3; 16]);
        for x in [0.5, f64::NAN, f64::INFINITY, 0.25] {
            b.record_latency(x);
        }
        let s = b.build();
        let l = s.latency().unwrap();
        let counts = (l.count(), l.missing(), l.positive_infinities(), l.numbers());
        assert_eq!(counts, (4, 1, 1, 2));
        assert!((l.mean().unwrap() - 0.375).abs() < 1e-12);
        assert!((l.max().unwrap() / 0.5 - 1.0).abs() < crate::RELATIVE_ERROR);
    }

    #[test]
    fn small_columns_decode_small() {
        // One string and one number: sparse registers, one profile bucket, one bucket.
        let mut b = SummaryBuilder::new("m", 0, 60_000, [3; 16]);
        b.log_prediction(
            [
                ("country", Value::from("NL")),
                ("amount", Value::from(12.5)),
            ],
            0.5,
        );
        let (encoded, heap) = decoded_heap(&b.build());
        assert!(heap <= 1024, "{heap} bytes of heap from {encoded} bytes");
    }

    #[test]
    fn real_columns_decode_well_within_the_budget() {
        let mut b = SummaryBuilder::new("m", 0, 60_000, [3; 16]);
        for i in 0..20_000u32 {
            let x = f64::from(i % 977) * 1.37 - 200.0;
            let user = format!("user-{}", i % 3000);
            b.log_prediction(
                [("x", Value::from(x)), ("user", Value::from(user.as_str()))],
                f64::from(i % 100) / 100.0,
            );
        }
        let (encoded, heap) = decoded_heap(&b.build());
        assert!(
            heap <= crate::DECODE_BUDGET_FACTOR * encoded / 4,
            "{heap} bytes of heap from {encoded} bytes"
        );
    }
}
