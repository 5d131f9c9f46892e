//! The wire type: one window's statistics, encoded as named MessagePack.

pub(crate) mod anonymity;
pub(crate) mod column;
pub(crate) mod error;
pub(crate) mod ground_truth;
pub(crate) mod guard;
pub(crate) mod render;

use crate::core::sketch::{
    saturating_sum, with_decode_budget, BUDGET_ERROR_PREFIX, SKETCH_ERROR_PREFIX,
};
use column::Column;
use error::{SummaryError, SummaryErrorKind};
use ground_truth::GroundTruthSummary;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The schema version written. Version 2 brought the exponential histograms and the key
/// fingerprint; version 3 codes their counts, the category profiles and dense
/// HyperLogLog registers with Rice codes instead of deflate (smaller, and decoded about
/// twice as fast); version 2 is still read. Version 1 is refused with
/// [`SummaryErrorKind::UnsupportedVersion`] (`docs/wire-format.md` says why). Fields
/// added later are `#[serde(default)]`, which older readers skip.
pub const SCHEMA_VERSION: u32 = 3;

fn this_schema_version<S: serde::Serializer>(_: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(SCHEMA_VERSION)
}

/// The memory [`WindowSummary::decode`] lets the sketches of a summary of `n` bytes
/// allocate: `DECODE_BUDGET_FACTOR × n + DECODE_BUDGET_BASE` bytes (64 × n + 256 KiB).
/// Real summaries need a tenth of it or less (`tests/decode_budget.rs`); a forged one that
/// would inflate past it (deflated spans, dense registers) is refused with
/// [`SummaryErrorKind::OverBudget`] before the allocation. Names, classes and texts are
/// held as sent, within a small multiple of their bytes on the wire.
pub const DECODE_BUDGET_FACTOR: usize = 64;
/// See [`DECODE_BUDGET_FACTOR`].
pub const DECODE_BUDGET_BASE: usize = 256 << 10;

/// The oldest schema version [`WindowSummary::decode`] reads.
const OLDEST_READABLE_VERSION: u32 = 2;

/// The scale of every histogram: 2^6 buckets per power of two (OpenTelemetry's
/// exponential histogram scale, Prometheus' native histogram schema).
pub const HISTOGRAM_SCALE: i32 = crate::core::sketch::exponential::SCALE;

/// Largest encoded summary [`WindowSummary::decode`] accepts (16 MiB).
pub const MAX_SUMMARY_BYTES: usize = 16 << 20;

/// Classes kept per ground-truth matrix when merging summaries.
const MERGE_MAX_CLASSES: usize = 1024;

/// Counts of everything not folded, by reason. They travel in the summary, so nothing
/// is lost silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DropCounts {
    /// Feature values whose name was new past `max_features`.
    pub features_over_cap: u64,
    /// Output values whose name was new past `max_outputs`.
    pub outputs_over_cap: u64,
    /// Values or ground truth whose feature, output or segment name exceeded `max_name_bytes`.
    pub names_too_long: u64,
    /// Ground truth for a new segment past `max_segments` (still counted overall).
    pub segments_over_cap: u64,
    /// Exceptions with a new message past `max_exceptions`.
    pub exceptions_over_cap: u64,
    /// Metadata entries past `max_metadata`.
    pub metadata_over_cap: u64,
    /// Rows or predictions of a batch without a partner (the lengths differed).
    pub batch_unpaired: u64,
    /// Earlier summaries dropped, oldest first, when the HTTP backlog passed
    /// `max_backlog_bytes` (counted in the next summary sealed).
    pub summaries_dropped_backlog: u64,
    /// Earlier summaries the collector refused with a 4xx other than 429.
    pub summaries_rejected: u64,
    /// Counters and named values with a new name past `max_metrics`.
    pub metrics_over_cap: u64,
}

impl DropCounts {
    pub(crate) fn add(&mut self, o: &DropCounts) {
        self.features_over_cap = self.features_over_cap.saturating_add(o.features_over_cap);
        self.metrics_over_cap = self.metrics_over_cap.saturating_add(o.metrics_over_cap);
        self.outputs_over_cap = self.outputs_over_cap.saturating_add(o.outputs_over_cap);
        self.names_too_long = self.names_too_long.saturating_add(o.names_too_long);
        self.segments_over_cap = self.segments_over_cap.saturating_add(o.segments_over_cap);
        self.exceptions_over_cap = self
            .exceptions_over_cap
            .saturating_add(o.exceptions_over_cap);
        self.metadata_over_cap = self.metadata_over_cap.saturating_add(o.metadata_over_cap);
        self.batch_unpaired = self.batch_unpaired.saturating_add(o.batch_unpaired);
        self.summaries_dropped_backlog = self
            .summaries_dropped_backlog
            .saturating_add(o.summaries_dropped_backlog);
        self.summaries_rejected = self.summaries_rejected.saturating_add(o.summaries_rejected);
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        saturating_sum([
            self.features_over_cap,
            self.outputs_over_cap,
            self.names_too_long,
            self.segments_over_cap,
            self.exceptions_over_cap,
            self.metadata_over_cap,
            self.batch_unpaired,
            self.summaries_dropped_backlog,
            self.summaries_rejected,
        ])
    }
}

/// What became of keyed predictions and feedback, counted per window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct FeedbackCounts {
    /// Feedback joined with its prediction and folded into ground truth.
    pub matched: u64,
    /// Feedback for a key never logged, or already gone (expired or evicted earlier).
    pub unknown_key: u64,
    /// Predictions whose time-to-live passed with no feedback.
    pub expired: u64,
    /// Feedback for a key that had feedback already (not folded again).
    pub duplicate: u64,
    /// Predictions pushed out, unanswered, by the capacity bound.
    pub evicted: u64,
    /// Keyed predictions logged again under a key still waiting (the newer one is kept).
    pub replaced: u64,
    /// Feedback tokens authenticated and folded into ground truth
    /// ([`Session::log_token_feedback`](crate::Session::log_token_feedback)).
    pub token_matched: u64,
    /// Feedback tokens refused: not a token, altered, or made under another hash key.
    pub token_forged: u64,
    /// Feedback tokens older than the time-to-live (`Config::join_ttl`).
    pub token_expired: u64,
}

impl FeedbackCounts {
    pub(crate) fn add(&mut self, o: &FeedbackCounts) {
        self.matched = self.matched.saturating_add(o.matched);
        self.unknown_key = self.unknown_key.saturating_add(o.unknown_key);
        self.expired = self.expired.saturating_add(o.expired);
        self.duplicate = self.duplicate.saturating_add(o.duplicate);
        self.evicted = self.evicted.saturating_add(o.evicted);
        self.replaced = self.replaced.saturating_add(o.replaced);
        self.token_matched = self.token_matched.saturating_add(o.token_matched);
        self.token_forged = self.token_forged.saturating_add(o.token_forged);
        self.token_expired = self.token_expired.saturating_add(o.token_expired);
    }
}

/// What the privacy rules changed in a summary (`docs/privacy.md`). Columns and
/// ground-truth segments say themselves what they held back or carried
/// ([`FeatureSummary::withheld`], [`GroundTruthSummary::withheld`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PrivacyCounts {
    /// Exceptions logged fewer than `min_values_per_window` times in the window, shipped
    /// with their message and count and without their tags.
    pub exception_tags_dropped: u64,
    /// Texts replaced by a keyed token (`pii:` and 8 hex digits) because they looked like
    /// personal data: names, labels, segments, metadata, exception messages and tags
    /// (`docs/privacy.md`). Each replaced occurrence counts once.
    pub texts_replaced: u64,
}

impl PrivacyCounts {
    fn add(&mut self, o: &PrivacyCounts) {
        self.exception_tags_dropped = self
            .exception_tags_dropped
            .saturating_add(o.exception_tags_dropped);
        self.texts_replaced = self.texts_replaced.saturating_add(o.texts_replaced);
    }
}

/// Exceptions with one message in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExceptionSummary {
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) count: u64,
}

impl ExceptionSummary {
    /// The message, as the developer wrote it (cut to `max_text_bytes`).
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Tags of its first occurrence.
    pub fn tags(&self) -> &[(String, String)] {
        &self.tags
    }
    /// How many times it was logged.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Statistics of one feature or output over a window.
///
/// Quantiles, minimum and maximum are at histogram precision: within 0.55 %
/// ([`RELATIVE_ERROR`](crate::RELATIVE_ERROR)) of the exact value for every finite
/// magnitude, unless collapsed (see the crate docs); distinct counts are HyperLogLog
/// estimates with a standard error of 1.6 % for strings and 3.25 % for numbers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeatureSummary(pub(crate) Column);

impl FeatureSummary {
    /// Values logged, missing ones included.
    pub fn count(&self) -> u64 {
        self.0.counts.count
    }
    /// Missing values: `None`, `Value::Null`, NaN.
    pub fn missing(&self) -> u64 {
        self.0.counts.missing
    }
    /// Fraction of values missing; `None` when nothing was logged.
    pub fn missing_rate(&self) -> Option<f64> {
        (self.count() > 0).then(|| self.missing() as f64 / self.count() as f64)
    }
    /// +inf values (counted, not in the histogram).
    pub fn positive_infinities(&self) -> u64 {
        self.0.counts.pos_inf
    }
    /// -inf values.
    pub fn negative_infinities(&self) -> u64 {
        self.0.counts.neg_inf
    }
    /// Booleans logged.
    pub fn bools(&self) -> u64 {
        self.0.counts.bools
    }
    /// `true` values logged.
    pub fn trues(&self) -> u64 {
        self.0.counts.trues
    }
    /// Integers logged.
    pub fn ints(&self) -> u64 {
        self.0.counts.ints
    }
    /// Floats logged (NaN excluded, infinities included).
    pub fn floats(&self) -> u64 {
        self.0.counts.floats
    }
    /// Strings logged.
    pub fn strings(&self) -> u64 {
        self.0.counts.strings
    }
    /// Strings longer than `max_string_bytes`, hashed on their prefix.
    pub fn truncated_strings(&self) -> u64 {
        self.0.counts.truncated
    }
    /// Values of this window held back because the column had fewer than
    /// `min_values_per_window` of them (or of its numbers, strings or booleans): they are
    /// in a later summary's [`carried`](Self::carried), and nothing else of them is here,
    /// not even their count (`docs/privacy.md`).
    pub fn withheld(&self) -> u64 {
        self.0.withheld
    }
    /// Values of earlier windows, held back there, included in these statistics (counts
    /// and sketches alike).
    pub fn carried(&self) -> u64 {
        self.0.carried
    }
    /// Values counted here whose sketches and moments were dropped: fewer than
    /// `min_values_per_window` remained at the last seal (shutdown, or
    /// [`SummaryBuilder::build`](crate::SummaryBuilder::build)).
    pub fn unsketched(&self) -> u64 {
        self.0.unsketched
    }
    /// Finite numbers logged (integers and floats).
    pub fn numbers(&self) -> u64 {
        self.0.numbers.as_ref().map_or(0, |n| n.moments.n)
    }
    /// Zeros among the numbers.
    pub fn zeros(&self) -> u64 {
        self.0.numbers.as_ref().map_or(0, |n| n.histogram.zeros)
    }
    /// Negative numbers.
    pub fn negatives(&self) -> u64 {
        self.0
            .numbers
            .as_ref()
            .map_or(0, |n| n.histogram.negatives())
    }
    /// Numbers collapsed: in a window whose magnitudes spanned more than
    /// [`MAX_BUCKETS`](crate::MAX_BUCKETS) buckets (24 decades), the smallest ones are
    /// counted apart and reported at the lowest bucket kept, outside the error bound. Zero
    /// unless the data spans more than 24 decades.
    pub fn collapsed(&self) -> u64 {
        self.0
            .numbers
            .as_ref()
            .map_or(0, |n| n.histogram.collapsed())
    }
    /// The `q`-quantile (0..=1) of the finite numbers: the value of rank `ceil(q*n)`, at
    /// histogram precision. `None` without numbers or for `q` outside 0..=1.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.numbers.as_ref()?.histogram.quantile(q)
    }
    /// The histogram's nonzero buckets of one sign, as (index, count) in ascending index:
    /// bucket `i` holds the magnitudes in (2^(i/64), 2^((i+1)/64)], exactly the buckets of
    /// an OpenTelemetry exponential histogram and a Prometheus native histogram at scale
    /// (schema) [`HISTOGRAM_SCALE`], so a window can be exported to either without loss.
    /// Zeros are [`zeros`](Self::zeros).
    ///
    /// ```
    /// use modelwatch::{SummaryBuilder, Value};
    /// # let key = [7; 16];
    /// // Four values: fewer than the default k = 10 would ship their counts only.
    /// let mut b = SummaryBuilder::new("m", 0, 60_000, key).min_values_per_window(1);
    /// for x in [1.0, 1.5, -2.0, 0.0] {
    ///     b.log_prediction([("x", Value::from(x))], 0.0);
    /// }
    /// let s = b.build();
    /// let x = s.feature("x").unwrap();
    /// assert_eq!(x.exponential_buckets(false), &[(-1, 1), (37, 1)]); // 1.0 closes bucket -1
    /// assert_eq!(x.exponential_buckets(true), &[(63, 1)]);
    /// assert_eq!(x.zeros(), 1);
    /// ```
    pub fn exponential_buckets(&self, negative: bool) -> &[(i32, u64)] {
        self.0
            .numbers
            .as_ref()
            .map_or(&[], |n| n.histogram.buckets(negative))
    }
    /// Smallest number, at histogram precision.
    pub fn min(&self) -> Option<f64> {
        self.0.numbers.as_ref()?.histogram.min()
    }
    /// Largest number, at histogram precision.
    pub fn max(&self) -> Option<f64> {
        self.0.numbers.as_ref()?.histogram.max()
    }
    /// Mean of the finite numbers.
    pub fn mean(&self) -> Option<f64> {
        self.0.numbers.as_ref()?.moments.mean()
    }
    /// Population variance of the finite numbers.
    pub fn variance(&self) -> Option<f64> {
        self.0.numbers.as_ref()?.moments.variance()
    }
    /// Sum of the finite numbers.
    pub fn sum(&self) -> Option<f64> {
        Some(self.0.numbers.as_ref()?.moments.sum())
    }
    /// Estimated distinct values, rounded: distinct numbers plus distinct strings
    /// (booleans are not hashed), each at most the values it counted. HyperLogLog with
    /// relative standard error
    /// [`STRING_DISTINCT_STANDARD_ERROR`](crate::STRING_DISTINCT_STANDARD_ERROR) (1.6 %) for
    /// strings and [`NUMBER_DISTINCT_STANDARD_ERROR`](crate::NUMBER_DISTINCT_STANDARD_ERROR)
    /// (3.25 %) for numbers. Numbers that are all distinct (continuous values) travel as
    /// that count instead of registers (`docs/wire-format.md`).
    pub fn distinct(&self) -> u64 {
        (self.0.distinct_numbers() + self.0.distinct_strings()).round() as u64
    }
    /// `q`-quantile of string lengths in bytes.
    pub fn length_quantile(&self, q: f64) -> Option<f64> {
        self.0.strings.as_ref()?.lengths.quantile(q)
    }
    /// The hashed category profile: counts of strings per hash bucket (1024 buckets), for
    /// drift and new-category checks without the values.
    pub fn category_profile(&self) -> Option<Vec<u64>> {
        self.0.strings.as_deref().map(|s| s.profile.to_dense())
    }
    /// A feature absent from all `n` predictions of a window.
    pub(crate) fn all_missing(n: u64) -> FeatureSummary {
        let mut f = FeatureSummary::default();
        count_absent(&mut f, n);
        f
    }
    /// Categories by name, with their counts, of a feature opted in with
    /// [`Config::plain_categories`](crate::Config::plain_categories): those seen at least
    /// `plain_category_min_count` times in a window (rarer ones are only in the hashed
    /// profile, so after a merge these counts are lower bounds). Empty for other features.
    ///
    /// ```
    /// use modelwatch::{SummaryBuilder, Value};
    /// let mut b = SummaryBuilder::new("m", 0, 60_000, [7; 16]).plain_categories(["country"], 10);
    /// for i in 0..100 {
    ///     let country = if i < 60 { "NL" } else if i < 95 { "DE" } else { "LU" };
    ///     b.log_prediction([("country", Value::from(country))], 0.5);
    /// }
    /// let s = b.build();
    /// let named: Vec<_> = s.feature("country").unwrap().categories().collect();
    /// assert_eq!(named, [("DE", 35), ("NL", 60)]); // LU: 5 < 10, hashed only
    /// ```
    pub fn categories(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.plain.iter().map(|(k, v)| (k.as_str(), *v))
    }
    /// Vectors (embeddings) counted, those with a non-finite component included. A vector
    /// feature's numbers ([`quantile`](Self::quantile), [`mean`](Self::mean), ...) are the
    /// L2 norms of its finite vectors.
    pub fn vectors(&self) -> u64 {
        self.0.counts.vectors
    }
    /// Smallest and largest dimension of the finite vectors, `None` without any.
    pub fn vector_dimensions(&self) -> Option<(usize, usize)> {
        let v = self.0.vectors.as_deref().filter(|v| v.n > 0)?;
        Some((v.dim_min as usize, v.dim_max as usize))
    }
    /// The mean vector of the finite vectors, component by component for the first
    /// [`MAX_VECTOR_DIMS`](crate::MAX_VECTOR_DIMS) components; longer vectors are folded
    /// into that many slots by the hashing trick, which keeps inner products and cosine
    /// distances between means in expectation (`docs/features.md`).
    pub fn vector_mean(&self) -> Option<Vec<f64>> {
        let v = self.0.vectors.as_deref().filter(|v| v.n > 0)?;
        Some(v.mean())
    }
    /// Cosine distance (0 = same direction, 1 = orthogonal, 2 = opposite) between this
    /// feature's mean vector and `other`'s: how far an embedding's centroid moved.
    ///
    /// ```
    /// use modelwatch::{SummaryBuilder, Value};
    /// let window = |v: [f32; 2]| {
    ///     let mut b = SummaryBuilder::new("m", 0, 60_000, [7; 16]);
    ///     for _ in 0..20 {
    ///         b.log_prediction([("emb", Value::from(&v[..]))], 0.5);
    ///     }
    ///     b.build()
    /// };
    /// let (a, b) = (window([1.0, 0.0]), window([0.0, 3.0]));
    /// let d = a.feature("emb").unwrap().centroid_distance(b.feature("emb").unwrap());
    /// assert!((d.unwrap() - 1.0).abs() < 1e-12); // orthogonal
    /// ```
    pub fn centroid_distance(&self, other: &FeatureSummary) -> Option<f64> {
        crate::core::sketch::vector::cosine_distance(&self.vector_mean()?, &other.vector_mean()?)
    }
}

/// The statistics of one window of one deployment: what leaves the process.
///
/// ```
/// use modelwatch::WindowSummary;
/// // Bad bytes are an error, never a panic.
/// assert!(WindowSummary::decode(b"\x93\x01\x02").is_err());
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowSummary {
    /// As read; written as [`SCHEMA_VERSION`] whatever it was read as, since the sketches
    /// are written in this version's coding.
    #[serde(serialize_with = "this_schema_version")]
    pub(crate) schema_version: u32,
    pub(crate) deployment: String,
    pub(crate) instance: u64,
    pub(crate) sequence: u64,
    pub(crate) window_start_ms: i64,
    pub(crate) window_ms: u64,
    pub(crate) partial: bool,
    pub(crate) key_fingerprint: u32,
    pub(crate) merged_windows: u64,
    pub(crate) predictions: u64,
    pub(crate) features: BTreeMap<String, FeatureSummary>,
    pub(crate) outputs: BTreeMap<String, FeatureSummary>,
    pub(crate) ground_truth: BTreeMap<String, GroundTruthSummary>,
    pub(crate) ground_truth_overall: Option<GroundTruthSummary>,
    pub(crate) exceptions: Vec<ExceptionSummary>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) latency: Option<FeatureSummary>,
    /// Added in schema 2 (absent when empty): `Session::count` totals by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) counters: BTreeMap<String, u64>,
    /// Added in schema 2 (absent when empty): `Session::record_value` and named timers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) values: BTreeMap<String, FeatureSummary>,
    pub(crate) dropped: DropCounts,
    pub(crate) feedback: FeedbackCounts,
    pub(crate) privacy: PrivacyCounts,
    /// Added in schema 2 (absent when empty): the features the session declared, with
    /// their types (`Session::declare_features`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) schema: BTreeMap<String, FeatureType>,
    /// Added in schema 2 (absent when empty): the first names refused because the window
    /// held `max_features` (or `max_outputs`) already, at most [`MAX_NAMED_DROPS`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) names_over_cap: Vec<String>,
}

/// How many times a category of a [plain-category feature](crate::Config::plain_categories)
/// must occur in a window to ship by name, by default.
pub const DEFAULT_PLAIN_CATEGORY_MIN_COUNT: u64 = 10;

/// Names over the feature cap a summary lists (the rest are only counted).
pub const MAX_NAMED_DROPS: usize = 16;

/// The type a declared feature is expected to have
/// ([`Session::declare_features`](crate::Session::declare_features)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FeatureType {
    /// `true` or `false`.
    Bool,
    /// Whole numbers.
    Int,
    /// Numbers with a fraction (integers count as floats too).
    Float,
    /// Text, hashed.
    String,
    /// A vector of numbers (an embedding).
    Vector,
}

impl FeatureType {
    /// The name used in summaries and reports: `bool`, `int`, `float`, `string`, `vector`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureType::Bool => "bool",
            FeatureType::Int => "int",
            FeatureType::Float => "float",
            FeatureType::String => "string",
            FeatureType::Vector => "vector",
        }
    }

    /// How many of a feature's values have this type.
    pub fn count_in(self, f: &FeatureSummary) -> u64 {
        let c = &f.0.counts;
        match self {
            FeatureType::Bool => c.bools,
            FeatureType::Int => c.ints,
            FeatureType::Float => c.floats.saturating_add(c.ints),
            FeatureType::String => c.strings,
            FeatureType::Vector => c.vectors,
        }
    }
}

impl std::fmt::Display for FeatureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Adds `name` to a list of names over the cap, unless there or the list is full.
pub(crate) fn note_over_cap(names: &mut Vec<String>, name: &str) {
    if names.len() < MAX_NAMED_DROPS && !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

/// Counts `n` records that lacked a feature as missing values of it.
fn count_absent(f: &mut FeatureSummary, n: u64) {
    let c = &mut f.0.counts;
    c.count = c.count.saturating_add(n);
    c.missing = c.missing.saturating_add(n);
}

/// Identity and time range of a summary, set by whoever seals the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) deployment: String,
    pub(crate) instance: u64,
    pub(crate) sequence: u64,
    pub(crate) window_start_ms: i64,
    pub(crate) window_ms: u64,
    pub(crate) partial: bool,
    pub(crate) key_fingerprint: u32,
}

impl WindowSummary {
    pub(crate) fn new(h: Header, metadata: BTreeMap<String, String>) -> Self {
        WindowSummary {
            schema_version: SCHEMA_VERSION,
            deployment: h.deployment,
            instance: h.instance,
            sequence: h.sequence,
            window_start_ms: h.window_start_ms,
            window_ms: h.window_ms,
            partial: h.partial,
            key_fingerprint: h.key_fingerprint,
            merged_windows: 1,
            metadata,
            ..Default::default()
        }
    }

    /// Encodes as named MessagePack (maps, so that readers skip fields they do not know).
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("summaries always encode")
    }

    /// Decodes and validates untrusted bytes: sizes are checked before anything is
    /// allocated, sketches are validated; any failure is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<WindowSummary, SummaryError> {
        if bytes.len() > MAX_SUMMARY_BYTES {
            return Err(SummaryError::new(
                SummaryErrorKind::TooLarge,
                format!("{} bytes", bytes.len()),
            ));
        }
        let budget = DECODE_BUDGET_FACTOR * bytes.len() + DECODE_BUDGET_BASE;
        let decoded = with_decode_budget(budget, || rmp_serde::from_slice::<WindowSummary>(bytes));
        // An old summary is named as such, not as malformed: its version is read apart only
        // when the summary does not decode (or decodes to an old version).
        let version = match &decoded {
            Ok(s) => s.schema_version,
            Err(_) => {
                #[derive(Deserialize)]
                struct Version {
                    #[serde(default)]
                    schema_version: u32,
                }
                rmp_serde::from_slice::<Version>(bytes).map_or(0, |v| v.schema_version)
            }
        };
        if version != 0 && version < OLDEST_READABLE_VERSION {
            return Err(SummaryError::new(
                SummaryErrorKind::UnsupportedVersion(version),
                format!(
                    "schema {version} was written by modelwatch 0.1 (hdrhistogram sketches); \
                     this version reads schema {OLDEST_READABLE_VERSION} and later"
                ),
            ));
        }
        let s = decoded.map_err(|e| {
            let text = e.to_string();
            let kind = if text.contains(BUDGET_ERROR_PREFIX) {
                SummaryErrorKind::OverBudget
            } else if text.contains(SKETCH_ERROR_PREFIX) {
                SummaryErrorKind::BadSketch
            } else {
                SummaryErrorKind::Malformed
            };
            SummaryError::new(kind, text)
        })?;
        if s.schema_version == 0 || s.deployment.is_empty() {
            return Err(SummaryError::new(
                SummaryErrorKind::Malformed,
                "no schema version or deployment: not a modelwatch summary",
            ));
        }
        for g in s.ground_truth.values().chain(&s.ground_truth_overall) {
            g.check()
                .map_err(|e| SummaryError::new(SummaryErrorKind::Malformed, e))?;
        }
        Ok(s)
    }

    /// Merges another summary of the same deployment into this one: counts and confusion
    /// matrices add exactly, sketches merge within their error bounds. The result spans
    /// both time ranges and keeps this summary's instance and sequence.
    ///
    /// Summaries made with different hash keys are refused
    /// ([`SummaryErrorKind::KeyMismatch`]): their string sketches live in different hash
    /// spaces, so a merge would count every string twice and fake a drift.
    pub fn merge(&mut self, other: &WindowSummary) -> Result<(), SummaryError> {
        if self.key_fingerprint != other.key_fingerprint {
            return Err(SummaryError::new(
                SummaryErrorKind::KeyMismatch,
                format!(
                    "key fingerprints {:08x} and {:08x}",
                    self.key_fingerprint, other.key_fingerprint
                ),
            ));
        }
        if self.deployment != other.deployment {
            return Err(SummaryError::new(
                SummaryErrorKind::Incompatible,
                format!(
                    "deployments {:?} and {:?}",
                    self.deployment, other.deployment
                ),
            ));
        }
        let end = self.window_end_ms().max(other.window_end_ms());
        self.window_start_ms = self.window_start_ms.min(other.window_start_ms);
        self.window_ms = end.saturating_sub(self.window_start_ms).max(0) as u64;
        self.partial |= other.partial;
        self.merged_windows = self
            .merged_windows
            .saturating_add(other.merged_windows.max(1));
        let (mine_n, theirs_n) = (self.predictions, other.predictions);
        self.predictions = self.predictions.saturating_add(other.predictions);
        for (mine, theirs) in [
            (&mut self.features, &other.features),
            (&mut self.outputs, &other.outputs),
        ] {
            // A feature one side lacks was missing from all of that side's predictions.
            for (name, f) in mine.iter_mut() {
                if !theirs.contains_key(name) {
                    count_absent(f, theirs_n);
                }
            }
            for (name, f) in theirs {
                let entry = mine.entry(name.clone()).or_insert_with(|| {
                    let mut absent = FeatureSummary::default();
                    count_absent(&mut absent, mine_n);
                    absent
                });
                entry.0.merge(&f.0);
            }
        }
        for (name, t) in &other.schema {
            self.schema.entry(name.clone()).or_insert(*t);
        }
        for name in &other.names_over_cap {
            note_over_cap(&mut self.names_over_cap, name);
        }
        for (name, gt) in &other.ground_truth {
            self.ground_truth
                .entry(name.clone())
                .or_default()
                .merge(gt, MERGE_MAX_CLASSES);
        }
        if let Some(gt) = &other.ground_truth_overall {
            self.ground_truth_overall
                .get_or_insert_with(Default::default)
                .merge(gt, MERGE_MAX_CLASSES);
        }
        self.add_exceptions(&other.exceptions);
        for (k, v) in &other.metadata {
            self.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(l) = &other.latency {
            self.latency
                .get_or_insert_with(Default::default)
                .0
                .merge(&l.0);
        }
        for (name, n) in &other.counters {
            let c = self.counters.entry(name.clone()).or_default();
            *c = c.saturating_add(*n);
        }
        for (name, v) in &other.values {
            self.values.entry(name.clone()).or_default().0.merge(&v.0);
        }
        self.dropped.add(&other.dropped);
        self.feedback.add(&other.feedback);
        self.privacy.add(&other.privacy);
        Ok(())
    }

    /// Adds exceptions by message, in order: a message already here gains the count (the
    /// tags of its first occurrence stay), a new one is appended. The messages are indexed
    /// once per call, so adding n exceptions to m costs O(n + m): a decoded summary may
    /// carry any number of them.
    pub(crate) fn add_exceptions(&mut self, added: &[ExceptionSummary]) {
        // Keyed by the added messages (borrowed from `added`, not from `self`, which grows);
        // the value is where that message sits in `self.exceptions`, once it does.
        let mut at: HashMap<&str, Option<usize>> = HashMap::with_capacity(added.len());
        for e in added {
            at.insert(&e.message, None);
        }
        for (i, x) in self.exceptions.iter().enumerate() {
            if let Some(slot @ None) = at.get_mut(x.message.as_str()) {
                *slot = Some(i);
            }
        }
        for e in added {
            let slot = at
                .get_mut(e.message.as_str())
                .expect("every added message is a key");
            match *slot {
                Some(i) => {
                    let x = &mut self.exceptions[i];
                    x.count = x.count.saturating_add(e.count);
                }
                None => {
                    *slot = Some(self.exceptions.len());
                    self.exceptions.push(e.clone());
                }
            }
        }
    }

    fn window_end_ms(&self) -> i64 {
        self.window_start_ms.saturating_add(self.window_ms as i64)
    }

    /// The schema version it was written with.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }
    /// The deployment (session name) it describes.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }
    /// The agent instance that sealed it: random per agent start.
    pub fn instance(&self) -> u64 {
        self.instance
    }
    /// Its sequence number within the instance; (instance, sequence) is unique, so a
    /// receiver can drop retried duplicates.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
    /// Window start, in milliseconds since the Unix epoch (UTC).
    pub fn window_start(&self) -> i64 {
        self.window_start_ms
    }
    /// Window start as `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn window_start_utc(&self) -> String {
        render::format_utc(self.window_start_ms)
    }
    /// Window length in milliseconds (for a merged summary, the span it covers).
    pub fn window_length(&self) -> u64 {
        self.window_ms
    }
    /// A fingerprint of the hash key it was made with (32 bits of a keyed hash of a
    /// constant; it reveals nothing of the key). Summaries merge only with equal ones.
    pub fn key_fingerprint(&self) -> u32 {
        self.key_fingerprint
    }
    /// Sealed before its end: at shutdown, or a `flush` mid-window.
    pub fn is_partial(&self) -> bool {
        self.partial
    }
    /// How many sealed windows were merged into this summary (1 for one window).
    pub fn merged_windows(&self) -> u64 {
        self.merged_windows
    }
    /// Predictions logged.
    pub fn predictions(&self) -> u64 {
        self.predictions
    }
    /// The type declared for a feature, if the session declared its features.
    pub fn declared_type(&self, feature: &str) -> Option<FeatureType> {
        self.schema.get(feature).copied()
    }
    /// The declared features and their types, by name.
    pub fn declared_features(&self) -> impl Iterator<Item = (&str, FeatureType)> {
        self.schema.iter().map(|(k, v)| (k.as_str(), *v))
    }
    /// The first names (at most [`MAX_NAMED_DROPS`]) whose values were dropped because
    /// the window held `max_features` or `max_outputs` names already
    /// ([`DropCounts::features_over_cap`] counts them all).
    pub fn names_over_cap(&self) -> &[String] {
        &self.names_over_cap
    }

    /// Makes every feature and output account for every prediction of the window: a
    /// record without it (a field skipped when `None`, one under a `None` parent, a key
    /// absent from a map) counts as a missing value. Declared features absent from the
    /// whole window get a column of missing values; an all-missing feature that other
    /// features nest under (`device` of `device.os`: a `None` parent) is dropped.
    pub(crate) fn account_absent(&mut self) {
        for name in self.schema.keys() {
            if !self.features.contains_key(name) {
                self.features
                    .insert(name.clone(), FeatureSummary::default());
            }
        }
        let parents: Vec<String> = self
            .features
            .iter()
            .filter(|(name, f)| {
                let nests = || {
                    let prefix = format!("{name}.");
                    let next = self.features.range(prefix.clone()..).next();
                    next.is_some_and(|(child, _)| child.starts_with(&prefix))
                };
                f.0.counts.count == f.0.counts.missing
                    && !self.schema.contains_key(*name)
                    && nests()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in parents {
            self.features.remove(&name);
        }
        let n = self.predictions;
        for f in self.features.values_mut().chain(self.outputs.values_mut()) {
            let absent = n.saturating_sub(f.0.counts.count);
            count_absent(f, absent);
        }
    }

    /// Statistics of a feature.
    pub fn feature(&self, name: &str) -> Option<&FeatureSummary> {
        self.features.get(name)
    }
    /// All features, by name.
    pub fn features(&self) -> impl Iterator<Item = (&str, &FeatureSummary)> {
        self.features.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Statistics of an output ([`PREDICTION`](crate::PREDICTION) for a scalar prediction,
    /// class indexes `"0"`, `"1"`, ... for probabilities).
    pub fn output(&self, name: &str) -> Option<&FeatureSummary> {
        self.outputs.get(name)
    }
    /// All outputs, by name.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, &FeatureSummary)> {
        self.outputs.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Ground truth of a segment.
    pub fn ground_truth(&self, segment: &str) -> Option<&GroundTruthSummary> {
        self.ground_truth.get(segment)
    }
    /// Ground truth of every segment, by name.
    pub fn ground_truth_segments(&self) -> impl Iterator<Item = (&str, &GroundTruthSummary)> {
        self.ground_truth.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Ground truth of all pairs together, whatever their segments.
    pub fn ground_truth_overall(&self) -> Option<&GroundTruthSummary> {
        self.ground_truth_overall.as_ref()
    }
    /// Exceptions by message.
    pub fn exceptions(&self) -> &[ExceptionSummary] {
        &self.exceptions
    }
    /// Metadata the session logged.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// The total of a counter ([`Session::count`](crate::Session::count)) in this window.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters.get(name).copied()
    }

    /// Every counter, by name.
    pub fn counters(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The statistics of a named value ([`Session::record_value`](crate::Session::record_value),
    /// [`Session::time`](crate::Session::time): seconds).
    pub fn value(&self, name: &str) -> Option<&FeatureSummary> {
        self.values.get(name)
    }

    /// Every named value, by name.
    pub fn values(&self) -> impl Iterator<Item = (&str, &FeatureSummary)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Inference latency, in seconds (from `Session::time_inference`).
    pub fn latency(&self) -> Option<&FeatureSummary> {
        self.latency.as_ref()
    }
    /// What was not folded, by reason.
    pub fn dropped(&self) -> &DropCounts {
        &self.dropped
    }
    /// Outcomes of keyed predictions and feedback in this window
    /// ([`Session::log_feedback`](crate::Session::log_feedback)).
    pub fn feedback(&self) -> &FeedbackCounts {
        &self.feedback
    }
    /// What the privacy rules changed: exception tags dropped (k-anonymity), texts replaced.
    pub fn privacy(&self) -> &PrivacyCounts {
        &self.privacy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exception(message: &str, tag: &str, count: u64) -> ExceptionSummary {
        ExceptionSummary {
            message: message.into(),
            tags: vec![("t".into(), tag.into())],
            count,
        }
    }

    #[test]
    fn adding_exceptions_keeps_order_first_tags_and_saturates() {
        // Duplicate messages can arrive from the wire, on either side.
        let mut s = WindowSummary {
            exceptions: vec![exception("a", "1", 1), exception("b", "1", u64::MAX - 1)],
            ..Default::default()
        };
        s.add_exceptions(&[
            exception("b", "2", 5),
            exception("c", "2", 1),
            exception("a", "2", 2),
            exception("c", "3", 4),
        ]);
        assert_eq!(
            s.exceptions,
            [
                exception("a", "1", 3),
                exception("b", "1", u64::MAX),
                exception("c", "2", 5),
            ]
        );
    }
}
