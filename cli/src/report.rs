//! `modelwatch report`: a timeline per window, the merged summary of the range, and issues
//! found against a baseline, each said in plain words with its size and its baseline.
//!
//! Every check compares one window with the baseline (the merge of the baseline windows) and
//! only fires past a threshold that grows as the window gets smaller, so that small windows
//! do not raise false alarms: see `docs/cli.md` for each rule.

use crate::constraints::{Checker, Constraints};
use crate::store::{Resolution, Store};
use crate::text::sanitize;
use crate::{inspect, Source};
use modelwatch::{
    format_utc, Baseline as MonitorBaseline, GroundTruthSummary, Incident, Monitor, OutputKind,
    WindowSummary,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Which windows form the baseline.
#[derive(Clone, Debug)]
pub enum Baseline {
    /// The first N windows of the range.
    FirstWindows(usize),
    /// Windows starting in [from, to).
    Range(i64, i64),
    /// A summary from a file, such as a training profile (`modelwatch profile`): every
    /// window is compared with it.
    Summary(Box<WindowSummary>),
}

/// The report of one deployment.
pub struct Report {
    pub deployment: String,
    pub baseline_description: String,
    pub baseline: WindowSummary,
    /// The figures of each window (summaries of the same start merged), oldest first.
    pub windows: Vec<Window>,
    /// Indexes into `windows` compared with the baseline.
    pub analysed: std::ops::Range<usize>,
    /// What the incident engine found, in the order incidents opened.
    pub incidents: Vec<Incident>,
    /// The merge of the windows in which an incident was open; `None` without incidents.
    pub incident_merged: Option<WindowSummary>,
    pub merged: WindowSummary,
    /// The merge of the analysed windows; `None` when none was.
    pub analysed_merged: Option<WindowSummary>,
    /// What `windows` are: the windows as sent, or hourly or daily rollups.
    pub resolution: Resolution,
    /// Constraints violated (`--constraints`), consecutive windows of one check grouped;
    /// `None` when no constraints were given.
    pub violations: Option<Vec<crate::constraints::Violation>>,
}

/// The most windows a report reads when it picks the resolution: a day of one-minute
/// windows (1,440) is read as such, a month (43,200) as 720 hourly rollups, ten years as
/// daily ones. It bounds the report's memory whatever the range.
pub const MAX_WINDOWS: u64 = 1_500;

/// The finest resolution of the store that covers [from, to) (nothing in it pruned) in at
/// most [`MAX_WINDOWS`] windows per deployment; else the coarsest that covers it; else the
/// daily rollups.
pub fn pick_resolution(
    store: &Store,
    deployment: Option<&str>,
    from: i64,
    to: i64,
) -> crate::db::Result<Resolution> {
    for r in Resolution::ALL {
        let covers = store.pruned_before(r)?.is_none_or(|before| from >= before);
        if covers
            && (r == Resolution::Day || store.rows_in(r, deployment, from, to)? <= MAX_WINDOWS)
        {
            return Ok(r);
        }
    }
    Ok(Resolution::Day)
}

/// Loads the windows as sent from a store or files, within [from, to); returns them and
/// what was skipped. (`modelwatch report` streams them instead: [`run`].)
pub fn load(
    source: &Source,
    deployment: Option<&str>,
    from: i64,
    to: i64,
) -> Result<(Vec<WindowSummary>, Vec<String>), String> {
    let (mut summaries, mut skipped) = (Vec::new(), Vec::new());
    stream(
        source,
        Resolution::Window,
        deployment,
        from,
        to,
        |row| match row {
            Ok(s) => summaries.push(s),
            Err(e) => skipped.push(e),
        },
    )?;
    Ok((summaries, skipped))
}

/// The reports of summaries within [from, to) at a resolution (`None`: the one
/// [`pick_resolution`] picks; folders hold windows only), built as the summaries stream by
/// ([`Reports`]); also returns what was skipped and the resolution read.
pub fn run(
    source: &Source,
    resolution: Option<Resolution>,
    deployment: Option<&str>,
    from: i64,
    to: i64,
    baseline: &Baseline,
) -> Result<(Vec<Report>, Vec<String>, Resolution), String> {
    run_checked(source, resolution, deployment, from, to, baseline, None)
}

/// [`run`], every window also checked against `constraints` (all windows, the baseline's
/// too: constraints do not depend on the report's baseline).
pub fn run_checked(
    source: &Source,
    resolution: Option<Resolution>,
    deployment: Option<&str>,
    from: i64,
    to: i64,
    baseline: &Baseline,
    constraints: Option<&Constraints>,
) -> Result<(Vec<Report>, Vec<String>, Resolution), String> {
    let mut skipped = Vec::new();
    if let Source::Store(path) = source {
        // Windows stored since the collector last rolled up go into the rollups first; a
        // store this report may not write is still read, with a note.
        if let Err(e) = open(path)?.roll_up_pending() {
            skipped.push(format!(
                "{}: windows stored since the last roll-up are not in the hourly and daily rollups ({e})",
                path.display()
            ));
        }
    }
    let resolution = match (resolution, source) {
        (Some(r), _) => r,
        (None, Source::Files(_)) => Resolution::Window,
        (None, Source::Store(path)) => pick_resolution(&open(path)?, deployment, from, to)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    };
    let mut reports = Reports::new(baseline).constraints(constraints.cloned());
    stream(source, resolution, deployment, from, to, |row| match row {
        Ok(s) => reports.push(s),
        Err(e) => skipped.push(e),
    })?;
    let mut reports = reports.finish();
    for r in &mut reports {
        r.resolution = resolution;
    }
    Ok((reports, skipped, resolution))
}

fn open(location: &crate::db::Location) -> Result<Store, String> {
    if let crate::db::Location::Sqlite(path) = location {
        if !path.exists() {
            return Err(format!("no store at {}", path.display()));
        }
    }
    Store::open(location).map_err(|e| format!("cannot open {}: {e}", location.display()))
}

/// Hands each summary within [from, to) to `each`, one at a time, grouped by deployment and
/// in order of window start within one; what cannot be read is handed over as an error.
fn stream(
    source: &Source,
    resolution: Resolution,
    deployment: Option<&str>,
    from: i64,
    to: i64,
    mut each: impl FnMut(Result<WindowSummary, String>),
) -> Result<(), String> {
    match source {
        Source::Store(path) => open(path)?
            .scan(resolution, deployment, from, to, each)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        Source::Files(_) if resolution != Resolution::Window => {
            Err("hourly and daily rollups are in a store (--store) only".into())
        }
        Source::Files(paths) => {
            // Files come in name order, not time order: a first pass notes where each one
            // goes and drops it, a second reads them again in order. Twice the decoding,
            // one summary in memory at a time.
            let (files, skipped) = inspect::list(paths);
            let unreadable = |f: &std::path::Path, e: String| format!("{}: {e}", f.display());
            for (f, e) in skipped {
                each(Err(unreadable(&f, e)));
            }
            let mut order = Vec::new();
            for f in files {
                match inspect::read(&f) {
                    Ok(s)
                        if deployment.is_none_or(|d| s.deployment() == d)
                            && (from..to).contains(&s.window_start()) =>
                    {
                        order.push((s.deployment().to_owned(), s.window_start(), s.sequence(), f));
                    }
                    Ok(_) => {}
                    Err(e) => each(Err(unreadable(&f, e))),
                }
            }
            order.sort();
            for (.., f) in order {
                each(inspect::read(&f).map_err(|e| unreadable(&f, e)));
            }
            Ok(())
        }
    }
}

/// What a source holds per deployment: windows, first and last window start.
pub fn deployments(source: &Source) -> Result<Vec<(String, u64, i64, i64)>, String> {
    match source {
        Source::Store(path) => Store::open(path)
            .and_then(|s| s.deployments())
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        Source::Files(_) => {
            let mut by: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
            stream(source, Resolution::Window, None, i64::MIN, i64::MAX, |s| {
                if let Ok(s) = s {
                    let e = by
                        .entry(s.deployment().to_owned())
                        .or_insert((0, i64::MAX, i64::MIN));
                    *e = (
                        e.0 + 1,
                        e.1.min(s.window_start()),
                        e.2.max(s.window_start()),
                    );
                }
            })?;
            Ok(by.into_iter().map(|(d, (n, a, b))| (d, n, a, b)).collect())
        }
    }
}

/// Why a report found nothing, with what the source does hold, so that a mistyped
/// deployment or range is seen at once.
pub fn nothing_found(source: &Source, deployment: Option<&str>, from: i64, to: i64) -> String {
    let what = deployment.map_or("no summaries".to_owned(), |d| {
        format!("no summaries of the deployment {d:?}")
    });
    let range = match (from, to) {
        (i64::MIN, i64::MAX) => String::new(),
        (f, i64::MAX) => format!(" from {}", format_utc(f)),
        (i64::MIN, t) => format!(" before {}", format_utc(t)),
        (f, t) => format!(" from {} to {}", format_utc(f), format_utc(t)),
    };
    match deployments(source) {
        Ok(all) if all.is_empty() => format!("{what}{range}: the source holds no summaries"),
        Ok(all) => {
            let list: Vec<String> = all
                .iter()
                .map(|(d, n, a, b)| {
                    format!(
                        "  {d}: {n} window(s), {} to {}",
                        format_utc(*a),
                        format_utc(*b)
                    )
                })
                .collect();
            format!(
                "{what}{range}; deployments that exist:\n{}",
                list.join("\n")
            )
        }
        Err(e) => format!("{what}{range} ({e})"),
    }
}

/// The merge of summaries of one deployment; `None` for none.
pub fn merge_all<'a>(it: impl IntoIterator<Item = &'a WindowSummary>) -> Option<WindowSummary> {
    let mut it = it.into_iter();
    let mut first = it.next()?.clone();
    for s in it {
        first.merge(s).ok()?;
    }
    Some(first)
}

/// Builds one report per deployment from summaries in any order.
pub fn build(mut summaries: Vec<WindowSummary>, baseline: &Baseline) -> Vec<Report> {
    summaries.sort_by(|a, b| {
        (a.deployment(), a.window_start(), a.sequence()).cmp(&(
            b.deployment(),
            b.window_start(),
            b.sequence(),
        ))
    });
    let mut reports = Reports::new(baseline);
    summaries.into_iter().for_each(|s| reports.push(s));
    reports.finish()
}

/// Reports built as summaries stream by, so that memory holds a few hundred bytes per
/// window (its [`Window`] figures) and a handful of summaries (the window being merged, the
/// baseline, the merges of the range), never every window: a day of one-minute windows or
/// a month of hourly rollups is read in bounded memory.
pub struct Reports {
    baseline: Baseline,
    constraints: Option<Constraints>,
    current: Option<Builder>,
    done: Vec<Report>,
}

impl Reports {
    pub fn new(baseline: &Baseline) -> Reports {
        Reports {
            baseline: baseline.clone(),
            constraints: None,
            current: None,
            done: Vec::new(),
        }
    }

    /// Checks every window against these constraints too.
    pub fn constraints(mut self, constraints: Option<Constraints>) -> Reports {
        self.constraints = constraints;
        self
    }

    /// Adds a summary; they must come grouped by deployment, by window start within one.
    pub fn push(&mut self, s: WindowSummary) {
        if self
            .current
            .as_ref()
            .is_some_and(|b| b.deployment != s.deployment())
        {
            self.done
                .extend(self.current.take().and_then(Builder::finish));
        }
        self.current
            .get_or_insert_with(|| {
                let mut b = Builder::new(s.deployment(), &self.baseline);
                b.checker = self.constraints.clone().map(Checker::new);
                b
            })
            .push(s);
    }

    /// One report per deployment that has windows and a baseline.
    pub fn finish(mut self) -> Vec<Report> {
        self.done
            .extend(self.current.take().and_then(Builder::finish));
        self.done
    }
}

/// One deployment's report, window by window.
struct Builder {
    deployment: String,
    baseline: Baseline,
    /// The hash key of the summaries being reported, how many of them came so far, how many
    /// came before with another key, and when the current key's first one starts. A key
    /// change (a rotated key, a replica with another key) puts strings in another hash
    /// space, so windows before it cannot be compared with windows after it: everything
    /// restarts there, the baseline too.
    key: Option<u32>,
    with_key: usize,
    other_keys: usize,
    key_since: i64,
    /// Summaries of the window being merged (one start); `None` once a merge failed.
    pending: Option<(i64, Option<WindowSummary>)>,
    /// `FirstWindows(n)`: the first windows, held until the (n + 1)-th shows the range has
    /// more than the baseline (else the baseline shrinks to leave one window analysed).
    held: Vec<WindowSummary>,
    base: Option<WindowSummary>,
    base_windows: usize,
    windows: Vec<Window>,
    analysed_from: Option<usize>,
    /// The incident engine, from the first analysed window on (the baseline settled).
    monitor: Option<Monitor>,
    incident_merged: Option<WindowSummary>,
    merged: Option<WindowSummary>,
    analysed_merged: Option<WindowSummary>,
    /// A merge of the range failed: no report, as no merged summary can be shown.
    broken: bool,
    /// Constraints checked on every window, if given.
    checker: Option<Checker>,
}

/// What a baseline file is, and what makes it a poor one for this deployment: another
/// deployment's name, or another hash key (then string features cannot be compared: their
/// hashes differ, and every category would look new).
fn summary_description(s: &WindowSummary, deployment: &str, key: Option<u32>) -> String {
    let mut d = format!(
        "a summary file of {:?} ({} prediction(s))",
        s.deployment(),
        s.predictions()
    );
    if s.deployment() != deployment {
        d += &format!("; made for another deployment than {deployment:?}");
    }
    if key.is_some_and(|k| k != s.key_fingerprint()) {
        d += "; made with another hash key than these windows: string features do not line up (profile with the deployment's key)";
    }
    d
}

/// Merges `s` into `into`, or starts it; false if the merge failed.
fn merge_into(into: &mut Option<WindowSummary>, s: &WindowSummary) -> bool {
    match into {
        Some(m) => m.merge(s).is_ok(),
        None => {
            *into = Some(s.clone());
            true
        }
    }
}

impl Builder {
    fn new(deployment: &str, baseline: &Baseline) -> Builder {
        let base = match baseline {
            Baseline::Summary(s) => Some((**s).clone()),
            _ => None,
        };
        Builder {
            deployment: deployment.to_owned(),
            baseline: baseline.clone(),
            key: None,
            with_key: 0,
            other_keys: 0,
            key_since: 0,
            pending: None,
            held: Vec::new(),
            base,
            base_windows: 0,
            windows: Vec::new(),
            analysed_from: None,
            monitor: None,
            incident_merged: None,
            merged: None,
            analysed_merged: None,
            broken: false,
            checker: None,
        }
    }

    fn push(&mut self, s: WindowSummary) {
        if self.key != Some(s.key_fingerprint()) {
            if self.key.is_some() {
                let other_keys = self.other_keys + self.with_key;
                // Violations are per window: they outlive the restart.
                let checker = self.checker.take();
                *self = Builder::new(&self.deployment, &self.baseline);
                self.other_keys = other_keys;
                self.checker = checker;
            }
            self.key = Some(s.key_fingerprint());
            self.key_since = s.window_start();
        }
        self.with_key += 1;
        match &mut self.pending {
            Some((start, merged)) if *start == s.window_start() => {
                if let Some(m) = merged {
                    if m.merge(&s).is_err() {
                        *merged = None;
                    }
                }
            }
            _ => {
                self.flush();
                self.pending = Some((s.window_start(), Some(s)));
            }
        }
    }

    /// Takes in the window whose summaries are all merged.
    fn flush(&mut self) {
        let Some((_, Some(w))) = self.pending.take() else {
            return;
        };
        self.broken |= !merge_into(&mut self.merged, &w);
        self.windows.push(Window::of(&w));
        if let Some(c) = &mut self.checker {
            c.observe(&w);
        }
        match self.baseline {
            Baseline::Summary(_) => {
                let i = self.windows.len() - 1;
                self.analysed_from.get_or_insert(i);
                self.analyse(&w, i);
            }
            Baseline::FirstWindows(n) => {
                if self.base.is_some() {
                    let i = self.windows.len() - 1;
                    self.analyse(&w, i);
                } else {
                    self.held.push(w);
                    if self.held.len() > n.max(1) {
                        self.settle_first_windows(n.max(1));
                    }
                }
            }
            Baseline::Range(from, to) => {
                if (from..to).contains(&w.window_start()) {
                    self.broken |= !merge_into(&mut self.base, &w);
                    self.base_windows += 1;
                }
                if w.window_start() >= to {
                    self.analysed_from.get_or_insert(self.windows.len() - 1);
                    if self.base.is_some() {
                        let i = self.windows.len() - 1;
                        self.analyse(&w, i);
                    }
                }
            }
        }
    }

    /// The first `n` held windows become the baseline; the others are analysed.
    fn settle_first_windows(&mut self, n: usize) {
        let held = std::mem::take(&mut self.held);
        for w in &held[..n] {
            self.broken |= !merge_into(&mut self.base, w);
        }
        let first = self.windows.len() - held.len() + n;
        self.analysed_from = Some(first);
        for (i, w) in held[n..].iter().enumerate() {
            self.analyse(w, first + i);
        }
    }

    /// Checks window `w` (the `index`-th) against the baseline: through the incident engine,
    /// and each feature's drift score for the timeline.
    fn analyse(&mut self, w: &WindowSummary, index: usize) {
        if let Some(base) = &self.base {
            let monitor = self.monitor.get_or_insert_with(|| {
                Monitor::new(MonitorBaseline::Summary(Box::new(base.clone())))
            });
            let opened = !monitor.observe(w).is_empty();
            if opened || monitor.incidents().iter().any(Incident::is_open) {
                self.broken |= !merge_into(&mut self.incident_merged, w);
            }
            if let Some(figures) = self.windows.get_mut(index) {
                figures.drift = drift_scores(w, base);
            }
        }
        self.broken |= !merge_into(&mut self.analysed_merged, w);
    }

    fn finish(mut self) -> Option<Report> {
        self.flush();
        if let Baseline::FirstWindows(n) = self.baseline {
            if self.base.is_none() && !self.held.is_empty() {
                // No more windows than the baseline asked for: all but the last.
                let n = n.clamp(1, self.held.len().saturating_sub(1).max(1));
                self.settle_first_windows(n);
            }
        }
        let description = match &self.baseline {
            Baseline::FirstWindows(_) => format!(
                "the first {} window(s)",
                self.analysed_from.unwrap_or(self.windows.len())
            ),
            Baseline::Range(from, to) => format!(
                "{} window(s) from {} to {}",
                self.base_windows,
                format_utc(*from),
                format_utc(*to)
            ),
            Baseline::Summary(s) => summary_description(s, &self.deployment, self.key),
        };
        let key_note = if self.other_keys > 0 {
            format!(
                "hash key changed at {}: the baseline restarts there, {} earlier summary(ies) made with another key are not compared; ",
                format_utc(self.key_since),
                self.other_keys
            )
        } else {
            String::new()
        };
        if self.broken {
            return None;
        }
        let analysed = self.analysed_from.unwrap_or(self.windows.len())..self.windows.len();
        Some(Report {
            deployment: self.deployment,
            baseline_description: key_note + &description,
            baseline: self.base?,
            windows: self.windows,
            analysed,
            // The constraints' incidents with the baseline's: one list, ranked by kind.
            incidents: self
                .monitor
                .iter()
                .flat_map(|m| m.incidents())
                .chain(self.checker.iter().flat_map(|c| c.incidents()))
                .cloned()
                .collect(),
            incident_merged: self.incident_merged,
            merged: self.merged?,
            analysed_merged: self.analysed_merged,
            resolution: Resolution::Window,
            violations: self.checker.map(Checker::finish),
        })
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A number short enough for a table.
fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// Each feature's and output's drift score against the baseline: the PSI of its numbers
/// or of its categories (the larger when it has both).
fn drift_scores(w: &WindowSummary, base: &WindowSummary) -> BTreeMap<String, f64> {
    let columns = w
        .features()
        .map(|(n, f)| (n.to_owned(), f, base.feature(n)))
        .chain(
            w.outputs()
                .map(|(n, f)| (format!("output {n}"), f, base.output(n))),
        );
    columns
        .filter_map(|(name, f, b)| Some((name, f.drift_score(b?)?)))
        .collect()
}

/// The overall missing rate of a window: missing values over values, all features.
pub fn missing_rate(s: &WindowSummary) -> Option<f64> {
    let (m, n) = s
        .features()
        .fold((0, 0), |(m, n), (_, f)| (m + f.missing(), n + f.count()));
    (n > 0).then(|| m as f64 / n as f64)
}

/// Accuracy (classes) or MSE (regression) of a ground truth, labelled.
pub fn quality(g: &GroundTruthSummary) -> Option<(&'static str, f64)> {
    match g.kind()? {
        OutputKind::Regression => g.mse().map(|m| ("mse", m)),
        _ => g.accuracy().map(|a| ("accuracy", a)),
    }
}

/// What the timeline shows of one window: its figures, not its summary.
#[derive(Clone, Debug)]
pub struct Window {
    pub start: i64,
    pub predictions: u64,
    pub missing_rate: Option<f64>,
    pub exceptions: u64,
    /// Latency p50 and p99, in seconds.
    pub latency: (Option<f64>, Option<f64>),
    /// Accuracy (or MSE) of all labels together: the measure, its value, the labels.
    pub overall: Option<(&'static str, f64, u64)>,
    /// The same per segment, by name.
    pub segments: BTreeMap<String, (&'static str, f64, u64)>,
    /// Per feature (and `output NAME`), the drift score (PSI) against the baseline; empty
    /// for baseline windows.
    pub drift: BTreeMap<String, f64>,
}

impl Window {
    pub fn of(w: &WindowSummary) -> Window {
        let quality = |g: &GroundTruthSummary| quality(g).map(|(k, v)| (k, v, g.count()));
        Window {
            start: w.window_start(),
            predictions: w.predictions(),
            missing_rate: missing_rate(w),
            exceptions: w
                .exceptions()
                .iter()
                .fold(0u64, |n, e| n.saturating_add(e.count())),
            latency: (
                w.latency().and_then(|l| l.quantile(0.5)),
                w.latency().and_then(|l| l.quantile(0.99)),
            ),
            overall: w.ground_truth_overall().and_then(quality),
            segments: w
                .ground_truth_segments()
                .filter_map(|(n, g)| quality(g).map(|q| (n.to_owned(), q)))
                .collect(),
            drift: BTreeMap::new(),
        }
    }
}

fn timeline_json(w: &Window) -> Value {
    let segments: BTreeMap<String, Value> = w
        .overall
        .map(|q| ("(all)".to_owned(), q))
        .into_iter()
        .chain(w.segments.iter().map(|(n, q)| (n.clone(), *q)))
        .map(|(n, (k, v, count))| (n, json!({ k: v, "count": count })))
        .collect();
    json!({
        "window_start": w.start,
        "window_start_utc": format_utc(w.start),
        "predictions": w.predictions,
        "missing_rate": w.missing_rate,
        "exceptions": w.exceptions,
        "latency_p50_ms": w.latency.0.map(|s| s * 1e3),
        "latency_p99_ms": w.latency.1.map(|s| s * 1e3),
        "ground_truth": segments,
        "drift_psi": w.drift,
    })
}

pub fn to_json(r: &Report) -> Value {
    json!({
        "deployment": r.deployment,
        "resolution": r.resolution.name(),
        "baseline": r.baseline_description,
        "incidents": crate::incidents::json(&r.incidents),
        "violations": r.violations.as_deref().map(crate::constraints::json),
        "timeline": r.windows.iter().map(timeline_json).collect::<Vec<_>>(),
        "merged": crate::json::summary(&r.merged),
    })
}

/// Whether window `w` lies within an incident (from its opening to its closing, or to
/// its last evidence while open).
pub fn in_incident(r: &Report, start: i64) -> bool {
    r.incidents
        .iter()
        .any(|i| (i.opened_ms..=i.closed_ms.unwrap_or(i.last_seen_ms)).contains(&start))
}

/// The report as text: incidents first, then the timeline, then the merged summary.
pub fn to_text(r: &Report) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let unit = match r.resolution {
        Resolution::Window => "windows",
        Resolution::Hour => "hourly rollups",
        Resolution::Day => "daily rollups",
    };
    let _ = writeln!(
        t,
        "# {}: {} {unit}, baseline: {}",
        sanitize(&r.deployment),
        r.windows.len(),
        r.baseline_description
    );
    let _ = write!(t, "\n{}", crate::incidents::text(&r.incidents));
    if let Some(v) = &r.violations {
        let _ = write!(t, "\n{}", crate::constraints::text(v));
    }
    let _ = writeln!(t, "\nTimeline:");
    let _ = writeln!(
        t,
        "  {:<22} {:>9} {:>8} {:>6} {:>9} {:>9}  ground truth",
        "window", "predicts", "missing", "excs", "lat p50", "lat p99"
    );
    for (i, w) in r.windows.iter().enumerate() {
        let tl = timeline_json(w);
        let ms = |k: &str| {
            tl[k]
                .as_f64()
                .map_or("-".into(), |v| modelwatch::format_duration(v / 1e3))
        };
        let gt: Vec<String> = tl["ground_truth"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(seg, v)| match (v.get("accuracy"), v.get("mse")) {
                        (Some(a), _) => format!("{seg} acc {}", pct(a.as_f64().unwrap_or(0.0))),
                        (_, Some(m)) => format!("{seg} mse {}", short(m.as_f64().unwrap_or(0.0))),
                        _ => String::new(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mark = if !r.analysed.contains(&i) {
            'b'
        } else if in_incident(r, w.start) {
            '!'
        } else {
            ' '
        };
        let _ = writeln!(
            t,
            "{mark} {:<22} {:>9} {:>8} {:>6} {:>9} {:>9}  {}",
            format_utc(w.start),
            w.predictions,
            w.missing_rate.map_or("-".into(), pct),
            tl["exceptions"].as_u64().unwrap_or(0),
            ms("latency_p50_ms"),
            ms("latency_p99_ms"),
            sanitize(&gt.join(", "))
        );
    }
    let _ = writeln!(
        t,
        "  (b: baseline window; !: within an incident)\n\nMerged summary of the range:\n{}",
        r.merged
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::{SummaryBuilder, Value};

    fn window(minute: i64, key: [u8; 16]) -> WindowSummary {
        let mut b =
            SummaryBuilder::new("m", minute * 60_000, 60_000, key).identity(1, minute as u64 + 1);
        for i in 0..200 {
            let country = ["NL", "DE", "FR"][i % 3];
            b.log_prediction([("country", Value::from(country))], 0.5);
        }
        b.build()
    }

    #[test]
    fn a_key_change_restarts_the_baseline_instead_of_raising_drift() {
        let old = (0..6).map(|m| window(m, [1; 16]));
        let new = (6..12).map(|m| window(m, [2; 16]));
        let reports = build(old.chain(new).collect(), &Baseline::FirstWindows(3));
        let r = &reports[0];
        assert!(
            r.baseline_description
                .starts_with("hash key changed at 1970-01-01T00:06:00Z"),
            "{}",
            r.baseline_description
        );
        assert_eq!(r.windows.len(), 6, "only the windows of the current key");
        assert!(r.incidents.is_empty(), "no drift from the key change");
    }

    #[test]
    fn baselines_as_the_windows_stream_by() {
        let windows = |n: i64| (0..n).map(|m| window(m, [1; 16])).collect::<Vec<_>>();
        let first = |n: i64, k: usize| {
            let r = build(windows(n), &Baseline::FirstWindows(k)).remove(0);
            (r.analysed, r.baseline.predictions(), r.baseline_description)
        };
        assert_eq!(first(10, 3), (3..10, 600, "the first 3 window(s)".into()));
        // No more windows than the baseline asks for: all but the last, at least one.
        assert_eq!(first(3, 3), (2..3, 400, "the first 2 window(s)".into()));
        assert_eq!(first(2, 3), (1..2, 200, "the first 1 window(s)".into()));
        assert_eq!(first(1, 3), (1..1, 200, "the first 1 window(s)".into()));
        assert_eq!(first(4, 0), (1..4, 200, "the first 1 window(s)".into()));
        // A range: its windows, analysed from the first window after it.
        let r = build(windows(10), &Baseline::Range(120_000, 300_000)).remove(0);
        assert_eq!((r.analysed, r.baseline.predictions()), (5..10, 600));
        assert!(
            build(windows(10), &Baseline::Range(-2, -1)).is_empty(),
            "no baseline"
        );
        // Summaries of one window merge, whatever order they come in.
        let mut split = windows(4);
        split.push(window(2, [1; 16]));
        split.reverse();
        let r = build(split, &Baseline::FirstWindows(1)).remove(0);
        assert_eq!(r.windows.len(), 4);
        assert_eq!(r.windows[2].predictions, 400);
        assert_eq!(r.merged.predictions(), 1_000);
        assert_eq!(r.analysed_merged.unwrap().predictions(), 800);
    }
}
