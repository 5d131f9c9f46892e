//! `GET /metrics` of `modelwatch collect`: the latest window of each deployment, its open
//! incidents, the collector's own counters, and the distributions of features and outputs
//! since the collector started. In the OpenMetrics text format, encoded by
//! `prometheus-client` (names, escaping, `# EOF`), or, for a scraper that asks for it, in
//! Prometheus's protobuf format ([`crate::protobuf`]): the same series plus the
//! distributions as native histograms, which the text format cannot carry.
//!
//! Values are computed when a summary arrives ([`Metrics::observe`]), so a scrape only
//! copies numbers out. Label cardinality is bounded: [`MAX_DEPLOYMENTS`] deployments (later
//! ones are counted in `modelwatch_metrics_deployments_over_cap_total`, not exported),
//! [`MAX_FEATURES`] features, [`MAX_OUTPUTS`] outputs and [`MAX_SEGMENTS`] segments each
//! (the agent's own caps; the wire does not enforce them, so they are applied again here),
//! the incident kinds, and three latency quantiles. `docs/cli.md` gives the series per
//! deployment.

use crate::protobuf::{self, Kind, NativeHistogram};
use modelwatch::{FeatureSummary, Incident, WindowSummary, HISTOGRAM_SCALE, MAX_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Deployments exported at most; summaries of more are counted, not exported.
pub const MAX_DEPLOYMENTS: usize = 100;
/// Features exported per deployment at most (per window the first by name; for the
/// distributions the first seen): the agent's default cap.
pub const MAX_FEATURES: usize = 512;
/// Outputs whose distributions are exported per deployment at most (the first seen): the
/// agent's default cap.
pub const MAX_OUTPUTS: usize = 64;
/// Segments exported per deployment at most (the first by name), besides `(all)`: the
/// agent's default cap.
pub const MAX_SEGMENTS: usize = 64;
/// The segment label of the metrics over all labelled predictions.
pub const ALL_SEGMENTS: &str = "(all)";
/// The Content-Type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The collector's own counters at a scrape.
#[derive(Clone, Debug, Default)]
pub struct CollectorCounts {
    /// Summaries stored.
    pub accepted: u64,
    /// Summaries received again (retries), stored once.
    pub duplicates: u64,
    /// Requests rejected, by reason.
    pub rejected: Vec<(&'static str, u64)>,
    /// Alert counts ([`crate::alerts::AlertStats`]), by name.
    pub alerts: Vec<(&'static str, u64)>,
    /// Store transactions committed (group commit: each holds one or more summaries).
    pub commits: u64,
}

/// What the latest window of a deployment says, computed when it arrived.
#[derive(Debug, Default)]
struct Series {
    window_start_seconds: f64,
    predictions: f64,
    missing: Vec<(String, f64)>,
    drift: Vec<(String, f64)>,
    accuracy: Vec<(String, f64)>,
    f1: Vec<(String, f64)>,
    mse: Vec<(String, f64)>,
    latency: Vec<(&'static str, f64)>,
}

impl Series {
    fn of(w: &WindowSummary, baseline: Option<&WindowSummary>) -> Series {
        let features = || w.features().take(MAX_FEATURES);
        let mut segments: Vec<(String, &modelwatch::GroundTruthSummary)> = w
            .ground_truth_overall()
            .map(|g| (ALL_SEGMENTS.to_owned(), g))
            .into_iter()
            .collect();
        segments.extend(
            w.ground_truth_segments()
                .take(MAX_SEGMENTS)
                .map(|(s, g)| (s.to_owned(), g)),
        );
        let per_segment = |f: &dyn Fn(&modelwatch::GroundTruthSummary) -> Option<f64>| {
            segments
                .iter()
                .filter_map(|(s, g)| Some((s.clone(), f(g)?)))
                .collect()
        };
        Series {
            window_start_seconds: w.window_start() as f64 / 1000.0,
            predictions: w.predictions() as f64,
            missing: features()
                .filter_map(|(n, f)| Some((n.to_owned(), f.missing_rate()?)))
                .collect(),
            drift: baseline.map_or_else(Vec::new, |b| {
                features()
                    .filter_map(|(n, f)| Some((n.to_owned(), f.drift_score(b.feature(n)?)?)))
                    .collect()
            }),
            accuracy: per_segment(&|g| g.accuracy()),
            f1: per_segment(&|g| g.macro_f1()),
            mse: per_segment(&|g| g.mse()),
            latency: w.latency().map_or_else(Vec::new, |l| {
                [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99)]
                    .into_iter()
                    .filter_map(|(name, q)| Some((name, l.quantile(q)?)))
                    .collect()
            }),
        }
    }
}

/// One sign's buckets of a [`Distribution`], indexed as the library's sketch indexes them.
#[derive(Debug, Default)]
struct Side {
    buckets: BTreeMap<i32, u64>,
    /// Values below the [`MAX_BUCKETS`] kept, counted at the lowest kept bucket as the
    /// library's sketch counts them.
    collapsed: u64,
}

impl Side {
    fn add(&mut self, buckets: &[(i32, u64)], collapsed: u64) {
        for &(i, c) in buckets {
            let n = self.buckets.entry(i).or_default();
            *n = n.saturating_add(c);
        }
        self.collapsed = self.collapsed.saturating_add(collapsed);
        // The library's cap, so that a range drifting over time cannot grow the buckets
        // without bound, and the report's reading of collapsed values.
        if let Some((&top, _)) = self.buckets.last_key_value() {
            let lowest = top.saturating_sub(MAX_BUCKETS as i32 - 1);
            let kept = self.buckets.split_off(&lowest);
            let folded = self
                .buckets
                .values()
                .fold(0u64, |a, &c| a.saturating_add(c));
            self.collapsed = self.collapsed.saturating_add(folded);
            self.buckets = kept;
        }
    }

    fn count(&self) -> u64 {
        self.buckets
            .values()
            .fold(self.collapsed, |a, &c| a.saturating_add(c))
    }

    /// Prometheus's buckets: its bucket `i` is (base^(i-1), base^i] (base 2^(2^-schema)),
    /// the library's is (2^(i/64), 2^((i+1)/64)], so the index is one higher.
    fn native(&self) -> Vec<(i32, u64)> {
        let mut out: Vec<(i32, u64)> = self.buckets.iter().map(|(&i, &c)| (i + 1, c)).collect();
        if let Some(lowest) = out.first_mut() {
            lowest.1 = lowest.1.saturating_add(self.collapsed);
        }
        out
    }
}

/// The finite numbers of a feature or output in every summary stored since the collector
/// started, merged bucket for bucket: a counter, as Prometheus expects of a histogram.
#[derive(Debug, Default)]
struct Distribution {
    zeros: u64,
    sum: f64,
    negative: Side,
    positive: Side,
}

impl Distribution {
    fn add(&mut self, f: &FeatureSummary) {
        let negative = f.exponential_buckets(true);
        let in_buckets = negative.iter().fold(0u64, |a, &(_, c)| a.saturating_add(c));
        // `collapsed()` is both signs together; `negatives()` counts that sign's too.
        let negative_collapsed = f.negatives().saturating_sub(in_buckets);
        self.negative.add(negative, negative_collapsed);
        self.positive.add(
            f.exponential_buckets(false),
            f.collapsed().saturating_sub(negative_collapsed),
        );
        self.zeros = self.zeros.saturating_add(f.zeros());
        self.sum += f.sum().unwrap_or(0.0);
    }

    fn native(&self) -> NativeHistogram {
        NativeHistogram {
            schema: HISTOGRAM_SCALE,
            zero_count: self.zeros,
            count: self
                .zeros
                .saturating_add(self.negative.count())
                .saturating_add(self.positive.count()),
            sum: self.sum,
            negative: self.negative.native(),
            positive: self.positive.native(),
        }
    }
}

/// Adds each sketched feature (or output) of `columns` to its distribution; names past
/// `cap` distributions are left out.
fn add_distributions<'a>(
    into: &mut BTreeMap<String, Distribution>,
    columns: impl Iterator<Item = (&'a str, &'a FeatureSummary)>,
    cap: usize,
) {
    for (name, f) in columns {
        let sketched = f.zeros() > 0
            || !f.exponential_buckets(false).is_empty()
            || !f.exponential_buckets(true).is_empty();
        if !sketched {
            continue;
        }
        if let Some(d) = into.get_mut(name) {
            d.add(f);
        } else if into.len() < cap {
            into.entry(name.to_owned()).or_default().add(f);
        }
    }
}

#[derive(Debug, Default)]
struct Deployment {
    /// The newest window, summaries of several instances merged.
    latest: Option<WindowSummary>,
    /// The monitor's baseline the series are computed against (a copy, taken again only
    /// when the baseline changes).
    baseline: Option<WindowSummary>,
    /// The series lag `latest`: computed at the next exposition, not per summary stored
    /// (a fleet's thousands of summaries a second would each recompute every PSI).
    stale: bool,
    series: Series,
    predictions_total: u64,
    /// Open incidents by kind; a kind once seen stays, at 0, so that its series ends at 0
    /// rather than vanishing.
    open: BTreeMap<&'static str, u64>,
    features: BTreeMap<String, Distribution>,
    outputs: BTreeMap<String, Distribution>,
}

#[derive(Debug, Default)]
struct State {
    deployments: BTreeMap<String, Deployment>,
    over_cap: u64,
}

impl State {
    /// Computes the series of every deployment whose latest window changed since.
    fn refresh(&mut self) {
        for d in self.deployments.values_mut().filter(|d| d.stale) {
            if let Some(latest) = &d.latest {
                d.series = Series::of(latest, d.baseline.as_ref());
            }
            d.stale = false;
        }
    }

    /// The deployment's entry, unless it would be one over [`MAX_DEPLOYMENTS`].
    fn deployment(&mut self, name: &str) -> Option<&mut Deployment> {
        if !self.deployments.contains_key(name) {
            if self.deployments.len() >= MAX_DEPLOYMENTS {
                self.over_cap += 1;
                return None;
            }
            self.deployments
                .insert(name.to_owned(), Deployment::default());
        }
        self.deployments.get_mut(name)
    }
}

/// The metrics of a collector; shared by the ingest path and the `/metrics` handler.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Arc<Mutex<State>>,
    /// Whether the features' and outputs' distributions are kept and exported (off by
    /// default: `/metrics` needs no key, and a histogram locates a lone value to 0.54 %).
    histograms: std::sync::atomic::AtomicBool,
}

impl Metrics {
    /// No deployment yet.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Keeps and exports the distributions of features and outputs as native histograms
    /// (`collect --metrics-histograms`); off by default.
    pub fn set_histograms(&self, on: bool) {
        self.histograms
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a stored summary (call it once per summary stored, not for duplicates), adds
    /// its features and outputs to their distributions and, if it is of the deployment's
    /// newest window, makes it (merged with the others of that window) the one exported.
    /// Drift is the PSI of each feature against `baseline`'s (none without a baseline).
    pub fn observe(&self, summary: &WindowSummary, baseline: Option<&WindowSummary>) {
        let mut state = self.state();
        let Some(d) = state.deployment(summary.deployment()) else {
            return;
        };
        d.predictions_total = d.predictions_total.saturating_add(summary.predictions());
        if self.histograms.load(std::sync::atomic::Ordering::Relaxed) {
            add_distributions(&mut d.features, summary.features(), MAX_FEATURES);
            add_distributions(&mut d.outputs, summary.outputs(), MAX_OUTPUTS);
        }
        match &mut d.latest {
            Some(latest) if latest.window_start() > summary.window_start() => return,
            Some(latest) if latest.window_start() == summary.window_start() => {
                if latest.merge(summary).is_err() {
                    // Another hash key: the newer summary speaks for the window.
                    *latest = summary.clone();
                }
            }
            _ => d.latest = Some(summary.clone()),
        }
        d.stale = true;
        drop(state);
        self.baseline(summary.deployment(), baseline);
    }

    /// Sets the baseline the deployment's drift is computed against (none: no drift);
    /// called with each summary, and by the collector's evaluation when the baseline forms
    /// after the summaries came.
    pub fn baseline(&self, deployment: &str, baseline: Option<&WindowSummary>) {
        let mut state = self.state();
        let Some(d) = state.deployment(deployment) else {
            return;
        };
        let changed = |b: &WindowSummary, mine: &WindowSummary| {
            (
                b.window_start(),
                b.window_length(),
                b.merged_windows(),
                b.predictions(),
            ) != (
                mine.window_start(),
                mine.window_length(),
                mine.merged_windows(),
                mine.predictions(),
            ) || b.key_fingerprint() != mine.key_fingerprint()
        };
        match (baseline, &d.baseline) {
            (Some(b), Some(mine)) if !changed(b, mine) => {}
            (None, None) => {}
            (b, _) => {
                d.baseline = b.cloned();
                d.stale = true;
            }
        }
    }

    /// Sets the deployment's open incidents per kind from its monitor's incidents.
    pub fn incidents(&self, deployment: &str, incidents: &[Incident]) {
        let mut state = self.state();
        let Some(d) = state.deployment(deployment) else {
            return;
        };
        for n in d.open.values_mut() {
            *n = 0;
        }
        for i in incidents {
            let n = d.open.entry(i.kind.name()).or_default();
            *n += u64::from(i.is_open());
        }
    }

    /// The text exposition (OpenMetrics): every deployment's series, then `counts`.
    pub fn render(&self, counts: CollectorCounts) -> String {
        self.state().refresh();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition {
            state: Arc::clone(&self.state),
            counts,
        }));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String does not fail");
        out
    }

    /// The protobuf exposition: the series of [`render`](Self::render) and the features'
    /// and outputs' distributions as native histograms.
    fn render_protobuf(&self, counts: CollectorCounts) -> Vec<u8> {
        let mut sink = Protobuf(Vec::new());
        let mut state = self.state();
        state.refresh();
        families(&state, &counts, &mut sink).expect("writing to a Vec does not fail");
        sink.0
    }

    /// The exposition in `format`, with its Content-Type.
    pub fn exposition(&self, format: Format, counts: CollectorCounts) -> (&'static str, Vec<u8>) {
        match format {
            Format::Text => (CONTENT_TYPE, self.render(counts).into_bytes()),
            Format::Protobuf => (protobuf::CONTENT_TYPE, self.render_protobuf(counts)),
        }
    }
}

/// The formats of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text, without the native histograms.
    Text,
    /// Prometheus's delimited protobuf, with them.
    Protobuf,
}

impl Format {
    /// The format an Accept header ranks first: protobuf when it ranks
    /// `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
    /// encoding=delimited` at least as high as any other type (Prometheus does, with
    /// `--enable-feature=native-histograms`), text otherwise and without an Accept.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut protobuf, mut other) = (0.0f64, 0.0f64);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let (mut q, mut message, mut delimited) = (1.0, false, false);
            for (k, v) in parts.filter_map(|p| p.split_once('=')) {
                match (k.trim(), v.trim()) {
                    ("q", v) => q = v.parse().unwrap_or(0.0),
                    ("proto", v) => message = v == "io.prometheus.client.MetricFamily",
                    ("encoding", v) => delimited = v == "delimited",
                    _ => {}
                }
            }
            if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
                if message && delimited {
                    protobuf = protobuf.max(q);
                }
            } else if !media.is_empty() {
                other = other.max(q);
            }
        }
        if protobuf > 0.0 && protobuf >= other {
            Format::Protobuf
        } else {
            Format::Text
        }
    }
}

/// One scrape's view: the shared state and the counters copied at the scrape.
#[derive(Debug)]
struct Exposition {
    state: Arc<Mutex<State>>,
    counts: CollectorCounts,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Where the metric families go: the text encoder or the protobuf one, so that both
/// formats carry the same series from one list ([`families`]). Counters are named without
/// their `_total`.
trait Sink {
    fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) -> Result<(), std::fmt::Error>;

    fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) -> Result<(), std::fmt::Error>;

    fn histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, &'a Distribution)>,
    ) -> Result<(), std::fmt::Error>;
}

/// Writes one metric family: its descriptor, then a sample per label set.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, m) in samples {
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Sink for DescriptorEncoder<'_> {
    fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) -> Result<(), std::fmt::Error> {
        family(
            self,
            name,
            help,
            MetricType::Gauge,
            samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
        )
    }

    fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) -> Result<(), std::fmt::Error> {
        family(
            self,
            name,
            help,
            MetricType::Counter,
            samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
        )
    }

    /// The text format has no native histograms (and 64 classic buckets per power of two
    /// would be a series each): they are in the protobuf exposition only.
    fn histograms<'a>(
        &mut self,
        _: &str,
        _: &str,
        _: impl IntoIterator<Item = (Labels<'a>, &'a Distribution)>,
    ) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

/// The protobuf exposition being written.
struct Protobuf(Vec<u8>);

impl Protobuf {
    /// A family unless it has no samples, as the text encoder does.
    fn family<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl IntoIterator<Item = (Labels<'a>, protobuf::Value<'a>)>,
    ) {
        let samples: Vec<_> = samples.into_iter().collect();
        if !samples.is_empty() {
            let metrics = samples.iter().map(|(l, v)| (&l[..], *v));
            protobuf::family(&mut self.0, name, help, kind, metrics);
        }
    }
}

impl Sink for Protobuf {
    fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
    ) -> Result<(), std::fmt::Error> {
        let samples = samples
            .into_iter()
            .map(|(l, v)| (l, protobuf::Value::Gauge(v)));
        self.family(name, help, Kind::Gauge, samples);
        Ok(())
    }

    /// Named with `_total`, as Prometheus names the series of the text format's counters.
    fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) -> Result<(), std::fmt::Error> {
        let samples = samples
            .into_iter()
            .map(|(l, v)| (l, protobuf::Value::Counter(v as f64)));
        self.family(&format!("{name}_total"), help, Kind::Counter, samples);
        Ok(())
    }

    fn histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, &'a Distribution)>,
    ) -> Result<(), std::fmt::Error> {
        let natives: Vec<(Labels<'a>, NativeHistogram)> =
            samples.into_iter().map(|(l, d)| (l, d.native())).collect();
        let samples = natives
            .iter()
            .map(|(l, h)| (l.clone(), protobuf::Value::Histogram(h)));
        self.family(name, help, Kind::Histogram, samples);
        Ok(())
    }
}

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        families(&state, &self.counts, &mut e)
    }
}

/// Every family, in the order of the exposition.
fn families(
    state: &State,
    counts: &CollectorCounts,
    sink: &mut impl Sink,
) -> Result<(), std::fmt::Error> {
    let ds = &state.deployments;
    let per = |pick: fn(&Series) -> f64| {
        ds.iter()
            .map(move |(d, s)| (vec![("deployment", d.as_str())], pick(&s.series)))
    };
    let per_label = |label: &'static str, pick: fn(&Series) -> &[(String, f64)]| {
        ds.iter().flat_map(move |(d, s)| {
            pick(&s.series)
                .iter()
                .map(move |(l, v)| (vec![("deployment", d.as_str()), (label, l.as_str())], *v))
        })
    };
    sink.counters(
        "modelwatch_predictions",
        "Predictions in the summaries stored since the collector started",
        ds.iter()
            .map(|(d, s)| (vec![("deployment", d.as_str())], s.predictions_total)),
    )?;
    sink.gauges(
        "modelwatch_window_predictions",
        "Predictions in the deployment's latest window",
        per(|s| s.predictions),
    )?;
    sink.gauges(
        "modelwatch_window_start_seconds",
        "Start of the deployment's latest window (Unix seconds)",
        per(|s| s.window_start_seconds),
    )?;
    sink.gauges(
        "modelwatch_feature_missing_ratio",
        "Share of a feature's values missing in the latest window",
        per_label("feature", |s| &s.missing),
    )?;
    sink.gauges(
        "modelwatch_feature_drift_psi",
        "PSI of a feature in the latest window against the monitor's baseline",
        per_label("feature", |s| &s.drift),
    )?;
    sink.gauges(
        "modelwatch_accuracy_ratio",
        "Accuracy of the latest window's labelled predictions, per segment ((all): every segment)",
        per_label("segment", |s| &s.accuracy),
    )?;
    sink.gauges(
        "modelwatch_f1_ratio",
        "Macro F1 of the latest window's labelled predictions, per segment",
        per_label("segment", |s| &s.f1),
    )?;
    sink.gauges(
        "modelwatch_mse",
        "Mean squared error of the latest window's labelled predictions, per segment",
        per_label("segment", |s| &s.mse),
    )?;
    sink.gauges(
        "modelwatch_latency_seconds",
        "Inference latency quantiles of the latest window",
        ds.iter().flat_map(|(d, s)| {
            s.series
                .latency
                .iter()
                .map(move |(q, v)| (vec![("deployment", d.as_str()), ("quantile", *q)], *v))
        }),
    )?;
    sink.gauges(
        "modelwatch_open_incidents",
        "Incidents open, per deployment and kind",
        ds.iter().flat_map(|(d, s)| {
            s.open
                .iter()
                .map(move |(k, n)| (vec![("deployment", d.as_str()), ("kind", *k)], *n as f64))
        }),
    )?;
    sink.histograms(
        "modelwatch_feature_value",
        "Numbers of a feature in the summaries stored since the collector started",
        ds.iter().flat_map(|(d, s)| {
            s.features
                .iter()
                .map(move |(n, h)| (vec![("deployment", d.as_str()), ("feature", n.as_str())], h))
        }),
    )?;
    sink.histograms(
        "modelwatch_output_value",
        "Numbers of an output in the summaries stored since the collector started",
        ds.iter().flat_map(|(d, s)| {
            s.outputs
                .iter()
                .map(move |(n, h)| (vec![("deployment", d.as_str()), ("output", n.as_str())], h))
        }),
    )?;
    sink.counters(
        "modelwatch_metrics_deployments_over_cap",
        "Summaries and incident updates of deployments past the exported cap, not exported",
        [(vec![], state.over_cap)],
    )?;
    sink.counters(
        "modelwatch_ingest_accepted",
        "Summaries stored",
        [(vec![], counts.accepted)],
    )?;
    sink.counters(
        "modelwatch_store_commits",
        "Store transactions committed, each for one or more summaries (group commit)",
        [(vec![], counts.commits)],
    )?;
    sink.counters(
        "modelwatch_ingest_duplicates",
        "Summaries received again (agent retries), stored once",
        [(vec![], counts.duplicates)],
    )?;
    sink.counters(
        "modelwatch_ingest_rejected",
        "Requests and connections rejected, by reason",
        counts
            .rejected
            .iter()
            .map(|(r, n)| (vec![("reason", *r)], *n)),
    )?;
    sink.counters(
        "modelwatch_alerts",
        "Alert events and deliveries, by outcome",
        counts
            .alerts
            .iter()
            .map(|(r, n)| (vec![("outcome", *r)], *n)),
    )
}
