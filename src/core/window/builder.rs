//! Building a summary offline, with the window given explicitly: for backfills, batch
//! jobs, tests and simulations. The agent uses the same accumulator with the clock.

use super::{declared_schema, finish_summary, Limits, Rules, Sealing, WindowAcc};
use crate::core::record::segments::Segments;
use crate::core::record::value::{Features, Prediction, Value};
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::anonymity::{Carry, Seal, DEFAULT_MIN_VALUES_PER_WINDOW};
use crate::core::summary::{FeatureType, Header, WindowSummary, DEFAULT_PLAIN_CATEGORY_MIN_COUNT};
use std::collections::{BTreeMap, HashSet};

/// Folds records into one window's summary without an agent, a thread or a clock.
///
/// ```
/// use modelwatch::{SummaryBuilder, Value};
/// let key: [u8; 16] = *b"from-a-secret-st"; // the deployment's hash key
/// let mut b = SummaryBuilder::new("churn", 1_700_000_040_000, 60_000, key);
/// for age in 30..40 {
///     b.log_prediction([("age", Value::from(age)), ("plan", Value::from("pro"))], 0.2);
///     b.log_ground_truth(false, 0.2, ["web"]);
/// }
/// b.log_ground_truth(true, 0.9, ["mobile"]);
/// let s = b.build();
/// assert_eq!((s.predictions(), s.window_start()), (10, 1_700_000_040_000));
/// assert_eq!(s.feature("age").unwrap().mean(), Some(34.5));
/// assert_eq!(s.ground_truth("web").unwrap().accuracy(), Some(1.0));
/// // One pair is fewer than k = 10: its count ships, not what it was.
/// let mobile = s.ground_truth("mobile").unwrap();
/// assert_eq!((mobile.count(), mobile.unsketched(), mobile.accuracy()), (1, 1, None));
/// ```
pub struct SummaryBuilder {
    header: Header,
    key: HashKey,
    limits: Limits,
    window: WindowAcc,
    metadata: BTreeMap<String, String>,
    min_values: u64,
    allowed_texts: HashSet<String>,
    threshold: f64,
    schema: BTreeMap<String, FeatureType>,
    plain: HashSet<String>,
    plain_min: u64,
}

impl SummaryBuilder {
    /// A builder for the window of `deployment` that starts at `window_start_ms` (Unix
    /// milliseconds) and lasts `window_ms`, hashing strings and numbers with `hash_key`
    /// (see [`Config::hash_key`](crate::Config::hash_key): summaries merge only with
    /// summaries made with the same key, and the key must stay secret from their readers).
    /// Instance 0, sequence 1 and the default limits.
    pub fn new(deployment: &str, window_start_ms: i64, window_ms: u64, hash_key: [u8; 16]) -> Self {
        SummaryBuilder {
            header: Header {
                deployment: deployment.to_owned(),
                instance: 0,
                sequence: 1,
                window_start_ms,
                window_ms,
                partial: false,
                key_fingerprint: 0,
            },
            key: HashKey::new(hash_key),
            limits: Limits::default(),
            window: WindowAcc::default(),
            metadata: BTreeMap::new(),
            min_values: DEFAULT_MIN_VALUES_PER_WINDOW,
            allowed_texts: HashSet::new(),
            threshold: 0.5,
            schema: BTreeMap::new(),
            plain: HashSet::new(),
            plain_min: DEFAULT_PLAIN_CATEGORY_MIN_COUNT,
        }
    }

    /// As [`Config::plain_categories`](crate::Config::plain_categories) and
    /// [`Config::plain_category_min_count`](crate::Config::plain_category_min_count)
    /// (default: none; 10).
    pub fn plain_categories<S: Into<String>>(
        mut self,
        features: impl IntoIterator<Item = S>,
        min_count: u64,
    ) -> Self {
        self.plain.extend(features.into_iter().map(Into::into));
        self.plain_min = min_count.max(1);
        self
    }

    /// As [`Session::declare_features`](crate::Session::declare_features) (default: none
    /// declared). Call it after [`limits`](Self::limits), which bound it.
    pub fn declare_features<S: AsRef<str>>(
        mut self,
        schema: impl IntoIterator<Item = (S, FeatureType)>,
    ) -> Self {
        self.schema = declared_schema(schema, &self.limits);
        self
    }

    /// As [`Session::set_decision_threshold`](crate::Session::set_decision_threshold)
    /// (default 0.5; a value outside (0, 1) is ignored).
    pub fn decision_threshold(mut self, threshold: f64) -> Self {
        if threshold > 0.0 && threshold < 1.0 {
            self.threshold = threshold;
        }
        self
    }

    /// k of k-anonymity, as [`Config::min_values_per_window`](crate::Config::min_values_per_window):
    /// a column or ground-truth segment with fewer than k values ships its counts only
    /// (the summary is sealed as a session's last: nothing follows to carry them to).
    /// Default: [`DEFAULT_MIN_VALUES_PER_WINDOW`] (10); 1 ships everything.
    pub fn min_values_per_window(mut self, k: u64) -> Self {
        self.min_values = k;
        self
    }

    /// The caps (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Texts that ship as given although they look like personal data, as
    /// [`Config::allow_text`](crate::Config::allow_text).
    pub fn allow_text<S: Into<String>>(mut self, texts: impl IntoIterator<Item = S>) -> Self {
        self.allowed_texts.extend(texts.into_iter().map(Into::into));
        self
    }

    /// The identity the summary carries (default: instance 0, sequence 1).
    pub fn identity(mut self, instance: u64, sequence: u64) -> Self {
        self.header.instance = instance;
        self.header.sequence = sequence;
        self
    }

    /// As [`Session::log_prediction`](crate::Session::log_prediction).
    pub fn log_prediction(&mut self, features: impl Features, prediction: impl Prediction) {
        self.window.log_prediction(
            &features,
            &prediction,
            &self.key,
            &Rules {
                limits: &self.limits,
                plain: &self.plain,
            },
        );
    }

    /// As [`Session::log_prediction_batch`](crate::Session::log_prediction_batch): the
    /// same summary as one `log_prediction` per row.
    pub fn log_prediction_batch<F: Features, P: Prediction>(
        &mut self,
        rows: &[F],
        predictions: &[P],
    ) {
        let rules = Rules {
            limits: &self.limits,
            plain: &self.plain,
        };
        self.window.log_batch(rows, predictions, &self.key, &rules);
    }

    /// As [`Session::log_ground_truth`](crate::Session::log_ground_truth).
    pub fn log_ground_truth<'a>(
        &mut self,
        label: impl Into<Value<'a>>,
        prediction: impl Prediction,
        segments: impl Segments,
    ) {
        let label = label.into();
        self.window.log_ground_truth(
            &label,
            &prediction.predicted(),
            prediction.confidence(),
            self.threshold,
            segments.names(),
            &self.limits,
        );
    }

    /// As [`Session::count`](crate::Session::count).
    pub fn count(&mut self, name: &str, n: u64) {
        self.window.count(name, n, &self.limits);
    }

    /// As [`Session::record_value`](crate::Session::record_value).
    pub fn record_value(&mut self, name: &str, x: f64) {
        self.window.record_value(name, x, &self.limits);
    }

    /// As [`Session::log_exception`](crate::Session::log_exception).
    pub fn log_exception(&mut self, message: &str, tags: impl Features) {
        self.window.log_exception(message, &tags, &self.limits);
    }

    /// Records one inference latency, in seconds.
    pub fn record_latency(&mut self, seconds: f64) {
        self.window.record_latency(seconds);
    }

    /// Sets a metadata entry.
    pub fn log_metadata(&mut self, key: &str, value: &str) {
        self.metadata.insert(key.to_owned(), value.to_owned());
    }

    /// The summary.
    pub fn build(mut self) -> WindowSummary {
        self.header.key_fingerprint = self.key.fingerprint();
        let mut s = WindowSummary::new(self.header, self.metadata);
        s.schema = self.schema;
        self.window.add_to(&mut s, &self.limits, &self.key);
        // A builder has no next window: what is small ships its counts only.
        let sealing = Sealing {
            key: &self.key,
            allowed_texts: &self.allowed_texts,
            min_values: self.min_values,
            plain_min: self.plain_min,
            limits: &self.limits,
        };
        finish_summary(&mut s, &sealing, &mut Carry::default(), Seal::Last);
        s
    }
}
