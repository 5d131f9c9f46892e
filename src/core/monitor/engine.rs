//! The incident engine: a one-sided CUSUM per check and subject over the windows' scores.
//!
//! Each window gives every check a score z in standard errors (about N(0, 1) or below
//! when nothing changed; [`super::checks`]). Per (kind, subject) the engine keeps
//! S ← max(0, S + z − k), with the allowance k = 0.5 plus 3 √ρ, where ρ is the share of the
//! score's variance that comes from the baseline: every window is compared with the same
//! baseline, so its sampling error is a bias common to all of them, and k grows to absorb
//! up to 3 standard errors of it. An incident opens when S passes h = 10: one very
//! different window opens it at once, a small persistent shift after a few windows, and a
//! stationary deployment about once in years per check (`docs/monitoring.md`). More
//! baseline data shrinks ρ, so it can only make alarms rarer for the same z.
//!
//! An open incident closes after `close_after` windows in a row that score below 1 (no
//! evidence of the change), and S restarts from 0.

use super::checks::{declared_checks, evaluate, Evidence};
use crate::core::summary::render::format_utc;
use crate::core::summary::WindowSummary;
use crate::SummaryError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of change an incident is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IncidentKind {
    /// Model quality: accuracy down (classifiers), on all labels or a segment.
    AccuracyDrop,
    /// Model quality: ROC AUC down (binary models with probabilities and under 10 %
    /// positives, where accuracy says little).
    AucDrop,
    /// Model quality: mean squared error up (regressions).
    ErrorIncrease,
    /// More missing values in a feature or output.
    MissingRate,
    /// A feature's values of another type than the baseline's (SageMaker's data type check).
    TypeMismatch,
    /// A feature's or output's distribution changed: PSI drift, values outside the
    /// baseline's range, or strings in categories the baseline never saw.
    Drift,
    /// A window failed a constraint checked outside the engine (for example one of the
    /// command's `constraints.json`), given to [`Monitor::observe_constraints`]. Opened by
    /// the first failing window, closed after `close_after` windows that pass.
    ConstraintViolation,
    /// More exceptions per prediction.
    ExceptionSpike,
    /// Inference latency up at the median or the 99th percentile.
    LatencyRegression,
}

impl IncidentKind {
    /// The kind's stable name, as in JSON, alerts and metrics: `accuracy_drop`,
    /// `auc_drop`, `error_increase`, `missing_rate`, `type_mismatch`, `drift`,
    /// `constraint_violation`, `exception_spike`, `latency_regression`.
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::AccuracyDrop => "accuracy_drop",
            IncidentKind::AucDrop => "auc_drop",
            IncidentKind::ErrorIncrease => "error_increase",
            IncidentKind::MissingRate => "missing_rate",
            IncidentKind::TypeMismatch => "type_mismatch",
            IncidentKind::Drift => "drift",
            IncidentKind::ConstraintViolation => "constraint_violation",
            IncidentKind::ExceptionSpike => "exception_spike",
            IncidentKind::LatencyRegression => "latency_regression",
        }
    }
}

impl std::fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A change that persisted: opened once, closed once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Incident {
    /// The deployment.
    pub deployment: String,
    /// What changed.
    pub kind: IncidentKind,
    /// Where: a feature's name, `output NAME`, `segment NAME`, `all segments`,
    /// `exceptions`, `latency p50` or `latency p99`.
    pub subject: String,
    /// Start of the first window with evidence of it (Unix milliseconds).
    pub opened_ms: i64,
    /// Start of the last window with evidence of it.
    pub last_seen_ms: i64,
    /// Start of the window that closed it; `None` while open.
    pub closed_ms: Option<i64>,
    /// The largest window score, in standard errors past the check's practical minimum:
    /// what ranks incidents by severity.
    pub peak_score: f64,
    /// The check's measure in the window of the peak (a rate, a PSI, an accuracy, seconds).
    pub peak_value: f64,
    /// The baseline's value of the same measure.
    pub baseline_value: f64,
    /// Which windows the baseline is, in words.
    pub baseline: String,
    /// The incident in plain words, from the window of the peak.
    pub text: String,
    /// Windows with evidence while it was open.
    pub windows: u64,
}

impl Incident {
    /// Open (not closed yet).
    pub fn is_open(&self) -> bool {
        self.closed_ms.is_none()
    }

    /// A stable identity: deployment, kind, subject and opening time.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.deployment, self.kind, self.subject, self.opened_ms
        )
    }
}

/// A constraint that one window failed, checked outside the engine (the engine has no
/// constraints of its own): given to [`Monitor::observe_constraints`], it opens or extends
/// an incident of kind [`IncidentKind::ConstraintViolation`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConstraintFailure {
    /// Which constraint of what, for example `age data_type_check`: the incident's subject,
    /// one incident per subject at a time.
    pub subject: String,
    /// What was expected and what was seen, in plain words.
    pub text: String,
    /// The window's measure (a share, a bound passed, a count).
    pub seen: f64,
    /// What the constraint allows of that measure.
    pub expected: f64,
}

impl ConstraintFailure {
    /// A failure of constraint `subject`: `seen` where `expected` was allowed, `text` saying
    /// so.
    pub fn new(subject: &str, text: &str, seen: f64, expected: f64) -> ConstraintFailure {
        ConstraintFailure {
            subject: subject.to_owned(),
            text: text.to_owned(),
            seen,
            expected,
        }
    }
}

/// What [`Monitor::observe`] reports of a window.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum IncidentEvent {
    /// An incident opened in this window.
    Opened(Incident),
    /// An incident closed in this window (or because the baseline restarted).
    Closed(Incident),
}

/// Which windows the monitor compares the others with.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Baseline {
    /// The first N windows observed (merged); the later ones are checked.
    FirstWindows(usize),
    /// Windows starting in [from, to) (Unix milliseconds); windows before `from` are
    /// skipped, windows from `to` on are checked.
    Range(i64, i64),
    /// A given summary (for example a profile of the training data, or a saved
    /// baseline); every window is checked.
    Summary(Box<WindowSummary>),
}

/// An error from [`Monitor::from_bytes`].
#[derive(Debug)]
pub struct MonitorError(String);

impl std::fmt::Display for MonitorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "monitor state: {}", self.0)
    }
}

impl std::error::Error for MonitorError {}

impl From<SummaryError> for MonitorError {
    fn from(e: SummaryError) -> Self {
        MonitorError(e.to_string())
    }
}

/// Evidence kept per (kind, subject).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Track {
    cusum: f64,
    healthy_run: u32,
    /// Index into `Monitor::incidents` while an incident is open.
    open: Option<usize>,
}

/// The default CUSUM threshold h.
pub const DEFAULT_THRESHOLD: f64 = 10.0;
/// The default number of healthy windows in a row that closes an incident.
pub const DEFAULT_CLOSE_AFTER: u32 = 10;
/// The allowance for noise per window, before the baseline's share.
const ALLOWANCE: f64 = 0.5;
/// Standard errors of the baseline's own error that the allowance absorbs.
const BASELINE_ERRORS: f64 = 3.0;
/// A window scoring below this is healthy (no evidence of the change).
const HEALTHY_BELOW: f64 = 1.0;

/// The state of monitoring one deployment: its baseline, the evidence per check, and its
/// incidents. Feed it the deployment's windows in time order (summaries of one window
/// from several instances merged first).
///
/// ```
/// use modelwatch::{Baseline, IncidentEvent, Monitor, SummaryBuilder};
///
/// // A window of 300 predictions, `missing` of them without `age`.
/// let window = |minute: i64, missing: usize| {
///     let mut b = SummaryBuilder::new("fraud", minute * 60_000, 60_000, [7; 16]);
///     for i in 0..300 {
///         let age = if i < missing { None } else { Some(20 + (i % 50) as i64) };
///         b.log_prediction([("age", age)], 0.1);
///     }
///     b.build()
/// };
/// let mut monitor = Monitor::new(Baseline::FirstWindows(3));
/// for minute in 0..20 {
///     assert!(monitor.observe(&window(minute, 3)).is_empty());
/// }
/// // A third of `age` goes missing: one incident, opened in the first window of it.
/// let events = monitor.observe(&window(20, 100));
/// assert!(matches!(&events[..], [IncidentEvent::Opened(i)] if i.subject == "age"));
/// assert!(monitor.observe(&window(21, 100)).is_empty());
/// assert_eq!(monitor.incidents().len(), 1);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Monitor {
    #[serde(skip)]
    spec: Option<Baseline>,
    /// The baseline as it stands (encoded, so that the state serializes as the wire does).
    #[serde(with = "serde_bytes")]
    baseline_bytes: Vec<u8>,
    #[serde(skip)]
    baseline: Option<WindowSummary>,
    /// Windows merged into the baseline so far.
    baseline_windows: usize,
    /// Windows the baseline takes (`FirstWindows`), or 0 once complete.
    baseline_wanted: usize,
    range: Option<(i64, i64)>,
    description: String,
    threshold: f64,
    close_after: u32,
    tracks: BTreeMap<(IncidentKind, String), Track>,
    incidents: Vec<Incident>,
    /// Start of the newest window observed; older ones are ignored.
    last_window: Option<i64>,
    /// Windows observed out of order, or that could not be merged, and ignored.
    ignored: u64,
}

impl Monitor {
    /// A monitor comparing windows with `baseline`, with the default threshold
    /// ([`DEFAULT_THRESHOLD`]) and closing rule ([`DEFAULT_CLOSE_AFTER`] healthy windows).
    pub fn new(baseline: Baseline) -> Monitor {
        let mut m = Monitor {
            spec: None,
            baseline_bytes: Vec::new(),
            baseline: None,
            baseline_windows: 0,
            baseline_wanted: 0,
            range: None,
            description: String::new(),
            threshold: DEFAULT_THRESHOLD,
            close_after: DEFAULT_CLOSE_AFTER,
            tracks: BTreeMap::new(),
            incidents: Vec::new(),
            last_window: None,
            ignored: 0,
        };
        m.start_baseline(baseline);
        m
    }

    /// The CUSUM threshold h in standard errors (default [`DEFAULT_THRESHOLD`]): higher
    /// means fewer false alarms and later detection of small changes.
    pub fn threshold(mut self, h: f64) -> Monitor {
        self.threshold = h.max(1.0);
        self
    }

    /// Healthy windows in a row that close an incident (default [`DEFAULT_CLOSE_AFTER`]).
    pub fn close_after(mut self, windows: u32) -> Monitor {
        self.close_after = windows.max(1);
        self
    }

    fn start_baseline(&mut self, spec: Baseline) {
        self.baseline = None;
        self.baseline_windows = 0;
        self.baseline_wanted = 0;
        self.range = None;
        match &spec {
            Baseline::FirstWindows(n) => {
                self.baseline_wanted = (*n).max(1);
                self.description = format!("the first {} window(s)", self.baseline_wanted);
            }
            Baseline::Range(from, to) => {
                self.range = Some((*from, *to));
                self.description =
                    format!("windows from {} to {}", format_utc(*from), format_utc(*to));
            }
            Baseline::Summary(s) => {
                self.description = format!(
                    "a baseline summary of {} prediction(s) from {}",
                    s.predictions(),
                    format_utc(s.window_start())
                );
                self.baseline = Some((**s).clone());
            }
        }
        self.spec = Some(spec);
    }

    /// Folds one window: into the baseline while it is being formed, else through every
    /// check. Returns the incidents it opened and closed. Windows must come in time order;
    /// one older than the last is ignored (counted in [`ignored`](Self::ignored)).
    pub fn observe(&mut self, w: &WindowSummary) -> Vec<IncidentEvent> {
        let mut events = Vec::new();
        if self.last_window.is_some_and(|t| w.window_start() < t) {
            self.ignored += 1;
            return events;
        }
        self.last_window = Some(w.window_start());
        if let Some(b) = &self.baseline {
            if b.key_fingerprint() != w.key_fingerprint() {
                self.restart_on_key_change(w, &mut events);
            }
        }
        if self.folds_into_baseline(w) {
            match &mut self.baseline {
                None => self.baseline = Some(w.clone()),
                Some(b) => {
                    if b.merge(w).is_err() {
                        self.ignored += 1;
                        return events;
                    }
                }
            }
            self.baseline_windows += 1;
            if self.baseline_wanted > 0 && self.baseline_windows >= self.baseline_wanted {
                self.baseline_wanted = 0;
            }
            // Declared types need no baseline: they are checked from the first window.
            self.accumulate(declared_checks(w), w, &mut events);
            return events;
        }
        let Some(base) = &self.baseline else {
            self.accumulate(declared_checks(w), w, &mut events);
            return events;
        };
        if self.range.is_some_and(|(_, to)| w.window_start() < to) {
            self.accumulate(declared_checks(w), w, &mut events);
            return events;
        }
        let evidence = evaluate(w, base);
        self.accumulate(evidence, w, &mut events);
        events
    }

    /// Adds one window's evidence to the CUSUM of each (kind, subject), opening and
    /// closing incidents.
    fn accumulate(
        &mut self,
        evidence: Vec<Evidence>,
        w: &WindowSummary,
        events: &mut Vec<IncidentEvent>,
    ) {
        let mut best: BTreeMap<(IncidentKind, String), Evidence> = BTreeMap::new();
        for e in evidence {
            // Several checks of one kind and subject (drift, range, new categories): the
            // strongest speaks for the window.
            let key = (e.kind, e.subject.clone());
            match best.get(&key) {
                Some(b) if b.score >= e.score => {}
                _ => {
                    best.insert(key, e);
                }
            }
        }
        let at = w.window_start();
        for (key, e) in best {
            let track = self.tracks.entry(key).or_default();
            let allowance = ALLOWANCE + BASELINE_ERRORS * e.baseline_share.clamp(0.0, 1.0).sqrt();
            let step = if e.score.is_finite() { e.score } else { 1e6 };
            track.cusum = (track.cusum + step - allowance).max(0.0);
            match track.open {
                None if track.cusum > self.threshold => {
                    let incident = Incident {
                        deployment: w.deployment().to_owned(),
                        kind: e.kind,
                        subject: e.subject,
                        opened_ms: at,
                        last_seen_ms: at,
                        closed_ms: None,
                        peak_score: e.score,
                        peak_value: e.value,
                        baseline_value: e.baseline,
                        baseline: self.description.clone(),
                        text: e.text,
                        windows: 1,
                    };
                    track.open = Some(self.incidents.len());
                    track.healthy_run = 0;
                    events.push(IncidentEvent::Opened(incident.clone()));
                    self.incidents.push(incident);
                }
                None => {}
                Some(i) => {
                    let incident = &mut self.incidents[i];
                    if e.score >= HEALTHY_BELOW {
                        track.healthy_run = 0;
                        incident.last_seen_ms = at;
                        incident.windows += 1;
                        if e.score > incident.peak_score {
                            incident.peak_score = e.score;
                            incident.peak_value = e.value;
                            incident.text = e.text;
                        }
                    } else {
                        track.healthy_run += 1;
                        if track.healthy_run >= self.close_after {
                            incident.closed_ms = Some(at);
                            events.push(IncidentEvent::Closed(incident.clone()));
                            track.open = None;
                            track.cusum = 0.0;
                            track.healthy_run = 0;
                        }
                    }
                }
            }
        }
    }

    /// Folds the verdict of constraints checked outside the engine on window `w`:
    /// `failures` are those it failed, every other constraint passed. A failed constraint
    /// opens an incident of kind [`IncidentKind::ConstraintViolation`] at once (the checks
    /// allow for sampling noise themselves; there is no score to accumulate); it stays open
    /// while windows fail it, keeping the window that missed by most (its `peak_value`, the
    /// measure seen, and `baseline_value`, the one allowed; `peak_score` is 0), and closes
    /// after [`close_after`](Self::close_after) windows in a row that pass. Independent of
    /// the baseline: call it for every window, the baseline's too, after
    /// [`observe`](Self::observe) if both are wanted. A window older than the last one
    /// observed is ignored (counted in [`ignored`](Self::ignored)).
    pub fn observe_constraints(
        &mut self,
        w: &WindowSummary,
        failures: &[ConstraintFailure],
    ) -> Vec<IncidentEvent> {
        let mut events = Vec::new();
        if self.last_window.is_some_and(|t| w.window_start() < t) {
            self.ignored += 1;
            return events;
        }
        self.last_window = Some(w.window_start());
        let at = w.window_start();
        let kind = IncidentKind::ConstraintViolation;
        for f in failures {
            let track = self.tracks.entry((kind, f.subject.clone())).or_default();
            track.healthy_run = 0;
            let miss = (f.seen - f.expected).abs();
            match track.open {
                None => {
                    let incident = Incident {
                        deployment: w.deployment().to_owned(),
                        kind,
                        subject: f.subject.clone(),
                        opened_ms: at,
                        last_seen_ms: at,
                        closed_ms: None,
                        peak_score: 0.0,
                        peak_value: f.seen,
                        baseline_value: f.expected,
                        baseline: "the constraints".to_owned(),
                        text: f.text.clone(),
                        windows: 1,
                    };
                    track.open = Some(self.incidents.len());
                    events.push(IncidentEvent::Opened(incident.clone()));
                    self.incidents.push(incident);
                }
                Some(i) => {
                    let incident = &mut self.incidents[i];
                    if incident.last_seen_ms != at {
                        incident.windows += 1;
                    }
                    incident.last_seen_ms = at;
                    if miss > (incident.peak_value - incident.baseline_value).abs() {
                        incident.peak_value = f.seen;
                        incident.baseline_value = f.expected;
                        incident.text = f.text.clone();
                    }
                }
            }
        }
        let failed: std::collections::BTreeSet<&str> =
            failures.iter().map(|f| f.subject.as_str()).collect();
        let mut closed = Vec::new();
        for ((k, subject), track) in &mut self.tracks {
            if *k != kind || failed.contains(subject.as_str()) {
                continue;
            }
            let Some(i) = track.open else {
                closed.push(subject.clone());
                continue;
            };
            track.healthy_run += 1;
            if track.healthy_run >= self.close_after {
                let incident = &mut self.incidents[i];
                incident.closed_ms = Some(at);
                events.push(IncidentEvent::Closed(incident.clone()));
                closed.push(subject.clone());
            }
        }
        // A closed constraint's track holds nothing: dropped, so the state stays small.
        for subject in closed {
            self.tracks.remove(&(kind, subject));
        }
        events
    }

    fn folds_into_baseline(&self, w: &WindowSummary) -> bool {
        match self.range {
            Some((from, to)) => (from..to).contains(&w.window_start()),
            None => self.baseline_wanted > 0,
        }
    }

    /// A new hash key puts strings in another hash space: the windows before cannot be
    /// compared with the ones after. Open incidents close, and the baseline restarts from
    /// this window (as many windows as it had, or 3 for a given summary).
    fn restart_on_key_change(&mut self, w: &WindowSummary, events: &mut Vec<IncidentEvent>) {
        for t in self.tracks.values_mut() {
            if let Some(i) = t.open.take() {
                let incident = &mut self.incidents[i];
                incident.closed_ms = Some(w.window_start());
                events.push(IncidentEvent::Closed(incident.clone()));
            }
        }
        self.tracks.clear();
        let windows = match &self.spec {
            Some(Baseline::FirstWindows(n)) => *n,
            _ => self.baseline_windows.max(3),
        };
        self.start_baseline(Baseline::FirstWindows(windows));
        self.description = format!(
            "the {} window(s) from {}, after the hash key changed",
            self.baseline_wanted,
            format_utc(w.window_start())
        );
    }

    /// Every incident, in the order they opened.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The baseline as it stands (`None` until its first window).
    pub fn baseline(&self) -> Option<&WindowSummary> {
        self.baseline.as_ref()
    }

    /// The baseline in words.
    pub fn baseline_description(&self) -> &str {
        &self.description
    }

    /// Whether the baseline is complete and windows are being checked.
    pub fn is_checking(&self) -> bool {
        self.baseline.is_some() && self.baseline_wanted == 0
    }

    /// Windows ignored: older than one already observed, or not mergeable into the
    /// baseline.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// The whole state, to store and restore with [`from_bytes`](Self::from_bytes) (a
    /// collector that restarts must not open its incidents again).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut state = self.clone();
        state.baseline_bytes = self.baseline.as_ref().map_or_else(Vec::new, |b| b.encode());
        rmp_serde::to_vec_named(&state).expect("a monitor state always serializes")
    }

    /// A monitor from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Monitor, MonitorError> {
        let mut m: Monitor =
            rmp_serde::from_slice(bytes).map_err(|e| MonitorError(e.to_string()))?;
        if !m.baseline_bytes.is_empty() {
            m.baseline = Some(WindowSummary::decode(&m.baseline_bytes)?);
        }
        m.baseline_bytes = Vec::new();
        if m.tracks
            .values()
            .any(|t| t.open.is_some_and(|i| i >= m.incidents.len()))
        {
            return Err(MonitorError(
                "an open track points past the incidents".into(),
            ));
        }
        Ok(m)
    }
}
