//! `modelwatch report`: a timeline per window, the merged summary of the range, and issues
//! found against a baseline, each said in plain words with its size and its baseline.
//!
//! Every check compares one window with the baseline (the merge of the baseline windows) and
//! only fires past a threshold that grows as the window gets smaller, so that small windows
//! do not raise false alarms: see `docs/cli.md` for each rule.

use crate::store::{Resolution, Store};
use crate::text::sanitize;
use crate::{inspect, Source};
use modelwatch::{format_utc, FeatureSummary, GroundTruthSummary, OutputKind, WindowSummary};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Which windows form the baseline.
#[derive(Clone, Debug)]
pub enum Baseline {
    /// The first N windows of the range.
    FirstWindows(usize),
    /// Windows starting in [from, to).
    Range(i64, i64),
}

/// One issue found.
#[derive(Clone, Debug)]
pub struct Finding {
    /// `missing_rate`, `type_mismatch`, `new_categories`, `out_of_range`, `drift`,
    /// `accuracy_drop`, `error_increase`, `exception_spike`, `latency_regression`.
    pub kind: &'static str,
    /// The window it was found in.
    pub window_start: i64,
    /// The feature, output (`output 0`) or segment.
    pub subject: String,
    /// How big, in the unit of the check (a rate, a PSI, ...).
    pub value: f64,
    /// The baseline's value for the same measure.
    pub baseline: f64,
    /// The finding in words.
    pub text: String,
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
    pub findings: Vec<Finding>,
    pub merged: WindowSummary,
    /// The merge of the analysed windows; `None` when none was.
    pub analysed_merged: Option<WindowSummary>,
    /// What `windows` are: the windows as sent, or hourly or daily rollups.
    pub resolution: Resolution,
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
) -> rusqlite::Result<Resolution> {
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
    let mut reports = Reports::new(baseline);
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

fn open(path: &std::path::Path) -> Result<Store, String> {
    if !path.exists() {
        return Err(format!("no store at {}", path.display()));
    }
    Store::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))
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
    current: Option<Builder>,
    done: Vec<Report>,
}

impl Reports {
    pub fn new(baseline: &Baseline) -> Reports {
        Reports {
            baseline: baseline.clone(),
            current: None,
            done: Vec::new(),
        }
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
            .get_or_insert_with(|| Builder::new(s.deployment(), &self.baseline))
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
    findings: Vec<Finding>,
    merged: Option<WindowSummary>,
    analysed_merged: Option<WindowSummary>,
    /// A merge of the range failed: no report, as no merged summary can be shown.
    broken: bool,
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
        Builder {
            deployment: deployment.to_owned(),
            baseline: baseline.clone(),
            key: None,
            with_key: 0,
            other_keys: 0,
            key_since: 0,
            pending: None,
            held: Vec::new(),
            base: None,
            base_windows: 0,
            windows: Vec::new(),
            analysed_from: None,
            findings: Vec::new(),
            merged: None,
            analysed_merged: None,
            broken: false,
        }
    }

    fn push(&mut self, s: WindowSummary) {
        if self.key != Some(s.key_fingerprint()) {
            if self.key.is_some() {
                let other_keys = self.other_keys + self.with_key;
                *self = Builder::new(&self.deployment, &self.baseline);
                self.other_keys = other_keys;
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
        match self.baseline {
            Baseline::FirstWindows(n) => {
                if self.base.is_some() {
                    self.analyse(&w);
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
                        self.analyse(&w);
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
        self.analysed_from = Some(self.windows.len() - held.len() + n);
        for w in &held[n..] {
            self.analyse(w);
        }
    }

    fn analyse(&mut self, w: &WindowSummary) {
        if let Some(base) = &self.base {
            self.findings.extend(findings(w, base));
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
        let description = match self.baseline {
            Baseline::FirstWindows(_) => format!(
                "the first {} window(s)",
                self.analysed_from.unwrap_or(self.windows.len())
            ),
            Baseline::Range(from, to) => format!(
                "{} window(s) from {} to {}",
                self.base_windows,
                format_utc(from),
                format_utc(to)
            ),
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
            findings: self.findings,
            merged: self.merged?,
            analysed_merged: self.analysed_merged,
            resolution: Resolution::Window,
        })
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// z statistic of a rise from proportion p0 (n0 trials) to p1 (n1 trials), pooled.
fn z_rise(p0: f64, n0: f64, p1: f64, n1: f64) -> f64 {
    let p = (p0 * n0 + p1 * n1) / (n0 + n1);
    let se = (p * (1.0 - p) * (1.0 / n0 + 1.0 / n1)).sqrt();
    if se == 0.0 {
        if p1 > p0 {
            f64::INFINITY
        } else {
            0.0
        }
    } else {
        (p1 - p0) / se
    }
}

/// The issues of one window against the baseline.
pub fn findings(w: &WindowSummary, base: &WindowSummary) -> Vec<Finding> {
    let mut out = Vec::new();
    let at = w.window_start();
    let mut add = |kind, subject: String, value: f64, baseline: f64, text: String| {
        out.push(Finding {
            kind,
            window_start: at,
            subject,
            value,
            baseline,
            text,
        })
    };
    let columns = w
        .features()
        .map(|(n, f)| (n.to_owned(), f, base.feature(n)))
        .chain(
            w.outputs()
                .map(|(n, f)| (format!("output {n}"), f, base.output(n))),
        );
    for (name, f, b) in columns {
        let Some(b) = b else { continue };
        column_findings(&name, f, b, &mut add);
    }
    let overall = w
        .ground_truth_overall()
        .map(|g| ("all segments".to_owned(), g, base.ground_truth_overall()));
    let segments = w
        .ground_truth_segments()
        .map(|(n, g)| (format!("segment {n}"), g, base.ground_truth(n)));
    for (name, g, b) in overall.into_iter().chain(segments) {
        if let Some(b) = b {
            ground_truth_findings(&name, g, b, &mut add);
        }
    }
    // Exceptions: a Poisson spike over the baseline's rate per prediction.
    let exceptions =
        |s: &WindowSummary| s.exceptions().iter().map(|e| e.count() as f64).sum::<f64>();
    if base.predictions() > 0 && w.predictions() > 0 {
        let rate0 = exceptions(base) / base.predictions() as f64;
        let expected = rate0 * w.predictions() as f64;
        let seen = exceptions(w);
        if seen > expected + 4.0 * expected.sqrt() + 3.0 {
            let rate1 = seen / w.predictions() as f64;
            add(
                "exception_spike",
                "exceptions".into(),
                rate1,
                rate0,
                format!("{seen:.0} exceptions ({} of predictions) where the baseline rate predicts {expected:.1} ({})", pct(rate1), pct(rate0)),
            );
        }
    }
    if let (Some(l), Some(b)) = (w.latency(), base.latency()) {
        for (q, name, factor) in [(0.5, "p50", 1.3), (0.99, "p99", 1.5)] {
            if let (Some(x), Some(y)) = (l.quantile(q), b.quantile(q)) {
                if l.count() >= 50 && x > y * factor && x - y > 1e-4 {
                    add(
                        "latency_regression",
                        format!("latency {name}"),
                        x,
                        y,
                        format!(
                            "latency {name} is {:.2} ms, {:.1}× the baseline's {:.2} ms",
                            x * 1e3,
                            x / y,
                            y * 1e3
                        ),
                    );
                }
            }
        }
    }
    out
}

fn dominant_type(f: &FeatureSummary) -> Option<(&'static str, u64)> {
    [
        ("float", f.floats()),
        ("int", f.ints()),
        ("string", f.strings()),
        ("bool", f.bools()),
    ]
    .into_iter()
    .max_by_key(|t| t.1)
    .filter(|t| t.1 > 0)
}

fn type_count(f: &FeatureSummary, name: &str) -> u64 {
    match name {
        "float" => f.floats(),
        "int" => f.ints(),
        "string" => f.strings(),
        _ => f.bools(),
    }
}

fn column_findings(
    name: &str,
    f: &FeatureSummary,
    b: &FeatureSummary,
    add: &mut impl FnMut(&'static str, String, f64, f64, String),
) {
    let (n0, n1) = (b.count() as f64, f.count() as f64);
    if n0 == 0.0 || n1 == 0.0 {
        return;
    }
    // Missing values: a rise of at least one point, 4 standard errors out.
    let (m0, m1) = (b.missing() as f64 / n0, f.missing() as f64 / n1);
    if m1 - m0 > 0.01 && z_rise(m0, n0, m1, n1) > 4.0 {
        add(
            "missing_rate",
            name.into(),
            m1,
            m0,
            format!(
                "{name}: {} missing, up from {} in the baseline",
                pct(m1),
                pct(m0)
            ),
        );
    }
    // Types: the baseline's dominant type losing ground (SageMaker's data_type_check).
    if let Some((t, c0)) = dominant_type(b) {
        let present0 = b.count().saturating_sub(b.missing()) as f64;
        let present1 = f.count().saturating_sub(f.missing()) as f64;
        let s0 = c0 as f64 / present0;
        if s0 >= 0.99 && present1 > 0.0 {
            let other = present1 - type_count(f, t) as f64;
            let expected = (1.0 - s0) * present1;
            if other >= 1.0 && other > 3.0 * expected + 3.0 * expected.sqrt() {
                let s1 = 1.0 - other / present1;
                add(
                    "type_mismatch",
                    name.into(),
                    s1,
                    s0,
                    format!("{name}: expected {t}, only {:.1}% is {t} ({other:.0} values of another type; baseline {:.1}%)", s1 * 100.0, s0 * 100.0),
                );
            }
        }
    }
    if let Some(new) = f.new_categories(b) {
        if new.values >= 5 && new.share > 0.005 {
            add(
                "new_categories",
                name.into(),
                new.share,
                0.0,
                format!("{name}: {} of the values ({}) fall in {} category bucket(s) never seen in the baseline", pct(new.share), new.values, new.buckets),
            );
        }
    }
    if let (Some(out), Some(lo), Some(hi)) = (f.count_outside(b), b.min(), b.max()) {
        let numbers0 = b.numbers() as f64;
        let numbers1 = f.numbers() as f64;
        // With n baseline values, a new value falls outside their range with chance 2/(n+1).
        let expected = 2.0 * numbers1 / (numbers0 + 1.0);
        if out as f64 > (5.0 * expected).max(10.0) {
            let share = out as f64 / numbers1;
            add(
                "out_of_range",
                name.into(),
                share,
                expected / numbers1.max(1.0),
                format!(
                    "{name}: {out} values ({}) outside the baseline's range [{}, {}]",
                    pct(share),
                    short(lo),
                    short(hi)
                ),
            );
        }
    }
    for drift in [f.numeric_drift(b), f.category_drift(b)]
        .into_iter()
        .flatten()
    {
        if drift.is_significant() {
            add(
                "drift",
                name.into(),
                drift.psi,
                drift.threshold,
                format!(
                    "{name}: distribution drift, PSI {:.3} (alarm above {:.3} for {} vs {} values), Jensen-Shannon distance {:.3}",
                    drift.psi, drift.threshold, drift.current_values, drift.baseline_values, drift.js_distance
                ),
            );
        }
    }
}

fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

fn ground_truth_findings(
    name: &str,
    g: &GroundTruthSummary,
    b: &GroundTruthSummary,
    add: &mut impl FnMut(&'static str, String, f64, f64, String),
) {
    match g.kind() {
        Some(OutputKind::Regression) => {
            if let (Some(e1), Some(e0)) = (g.mse(), b.mse()) {
                if g.count() >= 30 && e1 > 1.5 * e0 && e1 - e0 > 1e-12 {
                    add(
                        "error_increase",
                        name.into(),
                        e1,
                        e0,
                        format!(
                            "{name}: MSE {} is {:.1}× the baseline's {}",
                            short(e1),
                            e1 / e0,
                            short(e0)
                        ),
                    );
                }
            }
        }
        Some(_) => {
            if let (Some(a1), Some(a0)) = (g.accuracy(), b.accuracy()) {
                let z = z_rise(1.0 - a0, b.count() as f64, 1.0 - a1, g.count() as f64);
                if g.count() >= 20 && a0 - a1 > 0.02 && z > 3.0 {
                    let f1 = match (g.macro_f1(), b.macro_f1()) {
                        (Some(x), Some(y)) => format!(", macro F1 {x:.3} (baseline {y:.3})"),
                        _ => String::new(),
                    };
                    add(
                        "accuracy_drop",
                        name.into(),
                        a1,
                        a0,
                        format!(
                            "{name}: accuracy {} on {} labels, down from {} in the baseline{f1}",
                            pct(a1),
                            g.count(),
                            pct(a0)
                        ),
                    );
                }
            }
        }
        None => {}
    }
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
    })
}

pub fn to_json(r: &Report) -> Value {
    let findings: Vec<Value> = r
        .findings
        .iter()
        .map(|f| json!({
            "kind": f.kind, "window_start": f.window_start, "window_start_utc": format_utc(f.window_start),
            "subject": f.subject, "value": f.value, "baseline": f.baseline, "text": f.text,
        }))
        .collect();
    json!({
        "deployment": r.deployment,
        "resolution": r.resolution.name(),
        "baseline": r.baseline_description,
        "findings": findings,
        "timeline": r.windows.iter().map(timeline_json).collect::<Vec<_>>(),
        "merged": crate::json::summary(&r.merged),
    })
}

/// The report as text: findings first, then the timeline, then the merged summary.
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
    if r.findings.is_empty() {
        let _ = writeln!(t, "\nNo issues found against the baseline.");
    } else {
        let _ = writeln!(t, "\n{} issue(s) found:", r.findings.len());
        for f in &r.findings {
            let _ = writeln!(
                t,
                "  [{}] {} {}",
                format_utc(f.window_start),
                f.kind,
                sanitize(&f.text)
            );
        }
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
            tl[k].as_f64().map_or("-".into(), |v| {
                if v < 1.0 {
                    format!("{:.0}µs", v * 1e3)
                } else {
                    format!("{v:.1}ms")
                }
            })
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
        let mark = if r.analysed.contains(&i) { ' ' } else { 'b' };
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
        "  (b: baseline window)\n\nMerged summary of the range:\n{}",
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
        assert!(r.findings.is_empty(), "no drift from the key change");
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
