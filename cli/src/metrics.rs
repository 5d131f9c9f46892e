//! `GET /metrics` of `modelwatch collect`: the latest window of each deployment, its open
//! incidents and the collector's own counters, in the OpenMetrics text format, encoded by
//! `prometheus-client` (names, escaping, `# EOF`).
//!
//! Values are computed when a summary arrives ([`Metrics::observe`]), so a scrape only
//! copies numbers out. Label cardinality is bounded: [`MAX_DEPLOYMENTS`] deployments (later
//! ones are counted in `modelwatch_metrics_deployments_over_cap_total`, not exported),
//! [`MAX_FEATURES`] features and [`MAX_SEGMENTS`] segments each (the agent's own caps; the
//! wire does not enforce them, so they are applied again here), the incident kinds, and
//! three latency quantiles. `docs/cli.md` gives the series per deployment.

use modelwatch::{Incident, WindowSummary};
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
/// Features exported per deployment at most (the first by name): the agent's default cap.
pub const MAX_FEATURES: usize = 512;
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
                    .filter_map(|(n, f)| {
                        let base = b.feature(n)?;
                        let drift = f.numeric_drift(base).or_else(|| f.category_drift(base))?;
                        Some((n.to_owned(), drift.psi))
                    })
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

#[derive(Debug, Default)]
struct Deployment {
    /// The newest window, summaries of several instances merged.
    latest: Option<WindowSummary>,
    series: Series,
    predictions_total: u64,
    /// Open incidents by kind; a kind once seen stays, at 0, so that its series ends at 0
    /// rather than vanishing.
    open: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct State {
    deployments: BTreeMap<String, Deployment>,
    over_cap: u64,
}

impl State {
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
}

impl Metrics {
    /// No deployment yet.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a stored summary (call it once per summary stored, not for duplicates) and,
    /// if it is of the deployment's newest window, makes it (merged with the others of that
    /// window) the one exported. Drift is the PSI of each feature against `baseline`'s
    /// (none without a baseline).
    pub fn observe(&self, summary: &WindowSummary, baseline: Option<&WindowSummary>) {
        let mut state = self.state();
        let Some(d) = state.deployment(summary.deployment()) else {
            return;
        };
        d.predictions_total = d.predictions_total.saturating_add(summary.predictions());
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
        if let Some(latest) = &d.latest {
            d.series = Series::of(latest, baseline);
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

    /// The exposition: every deployment's series, then `counts`.
    pub fn render(&self, counts: CollectorCounts) -> String {
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
}

/// One scrape's view: the shared state and the counters copied at the scrape.
#[derive(Debug)]
struct Exposition {
    state: Arc<Mutex<State>>,
    counts: CollectorCounts,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

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

fn gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        name,
        help,
        MetricType::Gauge,
        samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
    )
}

fn counters<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        name,
        help,
        MetricType::Counter,
        samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
    )
}

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
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
        counters(
            &mut e,
            "modelwatch_predictions",
            "Predictions in the summaries stored since the collector started",
            ds.iter()
                .map(|(d, s)| (vec![("deployment", d.as_str())], s.predictions_total)),
        )?;
        gauges(
            &mut e,
            "modelwatch_window_predictions",
            "Predictions in the deployment's latest window",
            per(|s| s.predictions),
        )?;
        gauges(
            &mut e,
            "modelwatch_window_start_seconds",
            "Start of the deployment's latest window (Unix seconds)",
            per(|s| s.window_start_seconds),
        )?;
        gauges(
            &mut e,
            "modelwatch_feature_missing_ratio",
            "Share of a feature's values missing in the latest window",
            per_label("feature", |s| &s.missing),
        )?;
        gauges(
            &mut e,
            "modelwatch_feature_drift_psi",
            "PSI of a feature in the latest window against the monitor's baseline",
            per_label("feature", |s| &s.drift),
        )?;
        gauges(
            &mut e,
            "modelwatch_accuracy_ratio",
            "Accuracy of the latest window's labelled predictions, per segment ((all): every segment)",
            per_label("segment", |s| &s.accuracy),
        )?;
        gauges(
            &mut e,
            "modelwatch_f1_ratio",
            "Macro F1 of the latest window's labelled predictions, per segment",
            per_label("segment", |s| &s.f1),
        )?;
        gauges(
            &mut e,
            "modelwatch_mse",
            "Mean squared error of the latest window's labelled predictions, per segment",
            per_label("segment", |s| &s.mse),
        )?;
        gauges(
            &mut e,
            "modelwatch_latency_seconds",
            "Inference latency quantiles of the latest window",
            ds.iter().flat_map(|(d, s)| {
                s.series
                    .latency
                    .iter()
                    .map(move |(q, v)| (vec![("deployment", d.as_str()), ("quantile", *q)], *v))
            }),
        )?;
        gauges(
            &mut e,
            "modelwatch_open_incidents",
            "Incidents open, per deployment and kind",
            ds.iter().flat_map(|(d, s)| {
                s.open
                    .iter()
                    .map(move |(k, n)| (vec![("deployment", d.as_str()), ("kind", *k)], *n as f64))
            }),
        )?;
        counters(
            &mut e,
            "modelwatch_metrics_deployments_over_cap",
            "Summaries and incident updates of deployments past the exported cap, not exported",
            [(vec![], state.over_cap)],
        )?;
        let c = &self.counts;
        counters(
            &mut e,
            "modelwatch_ingest_accepted",
            "Summaries stored",
            [(vec![], c.accepted)],
        )?;
        counters(
            &mut e,
            "modelwatch_ingest_duplicates",
            "Summaries received again (agent retries), stored once",
            [(vec![], c.duplicates)],
        )?;
        counters(
            &mut e,
            "modelwatch_ingest_rejected",
            "Requests and connections rejected, by reason",
            c.rejected.iter().map(|(r, n)| (vec![("reason", *r)], *n)),
        )?;
        counters(
            &mut e,
            "modelwatch_alerts",
            "Alert events and deliveries, by outcome",
            c.alerts.iter().map(|(r, n)| (vec![("outcome", *r)], *n)),
        )
    }
}
