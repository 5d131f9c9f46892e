//! `modelwatch constraints`: constraints suggested from a baseline summary (a training
//! profile), written as an editable JSON file, and checked against every window of a
//! report, in the spirit of SageMaker Model Monitor's `constraints.json`.
//!
//! The file's schema (version 1) is documented in `docs/baseline.md`. Per feature, every
//! check is optional (delete it from the file to turn it off):
//! - `completeness`: the least share of values present (not missing);
//! - `data_type` {`type`, `min_share`}: `int`, `float` (integers count as floats), `bool`
//!   or `string`, and the least share of the present values of that type;
//! - `range` {`min`, `max`}: every finite number within;
//! - `categories` {`buckets`, `max_new_share`}: the hashed buckets (of 1,024, keyed with
//!   the deployment's hash key) the baseline's strings fell in, and the largest share of a
//!   window's strings allowed outside them;
//! - `distinct` {`min`, `max`}: the band of a window's distinct values.

use modelwatch::{
    format_utc, Baseline, ConstraintFailure, FeatureSummary, Incident, Monitor, WindowSummary,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the file's schema this command writes and reads.
pub const VERSION: u32 = 1;

/// String features whose baseline fills more buckets than this get no category check: a
/// new category would land in a known bucket too often (at 256 of 1,024, one time in four)
/// for the check to mean anything, and such features are identifiers more than categories.
pub const MAX_CATEGORY_BUCKETS: usize = 256;

/// Features with more distinct values than this in the baseline get no distinct band: a
/// continuous feature's distinct count is its window's size, not a property of the data.
pub const MAX_DISTINCT_FOR_BAND: u64 = 1_000;

/// A shortfall in completeness or type share is a violation only past this many standard
/// errors of the window's own sampling (binomial): a small window missing one value more
/// than the training set did is noise, not a broken pipeline. A required share of 1 has no
/// allowance: one value wrong is a violation.
pub const Z: f64 = 3.0;

/// The whole file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    pub version: u32,
    /// The deployment of the baseline they were suggested from.
    pub deployment: String,
    /// The baseline's hash key fingerprint: category buckets mean something only for
    /// windows made with the same key.
    pub key_fingerprint: u32,
    /// Values the baseline had (its predictions).
    pub baseline_predictions: u64,
    pub features: BTreeMap<String, FeatureConstraints>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Categories>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<Band>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataType {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub min_share: f64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Int,
    Float,
    Bool,
    String,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::String => "string",
        }
    }
    /// Values of this kind in `f` (floats count integers: an integer is a valid float).
    fn count(self, f: &FeatureSummary) -> u64 {
        match self {
            Kind::Int => f.ints(),
            Kind::Float => f.floats() + f.ints(),
            Kind::Bool => f.bools(),
            Kind::String => f.strings(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Categories {
    pub buckets: Vec<u16>,
    pub max_new_share: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub min: u64,
    pub max: u64,
}

/// `x` rounded down to `decimals`, as the nearest float to the short decimal, so that the
/// file shows (and reads back as) that decimal.
fn floor_to(x: f64, decimals: i32) -> f64 {
    let m = 10f64.powi(decimals);
    let y = (x * m).floor() / m;
    format!("{y:.0$}", decimals.max(0) as usize)
        .parse()
        .unwrap_or(y)
}

/// `x` rounded outward (down for a minimum, up for a maximum) to 6 significant digits: a
/// bound a person can read and edit, and that reads back exactly.
fn round_out(x: f64, up: bool) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let decimals = (5 - x.abs().log10().floor() as i32).clamp(0, 300);
    let m = 10f64.powi(decimals);
    let y = if up { (x * m).ceil() } else { (x * m).floor() } / m;
    format!("{y:.0$}", decimals as usize).parse().unwrap_or(y)
}

/// Values present: counted, not missing.
fn present(f: &FeatureSummary) -> u64 {
    f.count().saturating_sub(f.missing())
}

/// Constraints suggested from a baseline, per feature:
/// - completeness: the baseline's, rounded down to 3 decimals;
/// - data type: the most common type of the present values (`float` if integers and floats
///   mix) and its share, rounded down to 3 decimals;
/// - range (numbers): the baseline's minimum and maximum, each widened by its 1 % tail (or
///   a quarter of the span if more), not below zero for a feature that had no negative
///   number, whole numbers for an `int` feature, rounded outward to 6 significant digits;
/// - categories (strings filling at most [`MAX_CATEGORY_BUCKETS`] buckets): the buckets
///   seen, no new share allowed;
/// - distinct (at most [`MAX_DISTINCT_FOR_BAND`] distinct values): from 2 (a feature that
///   went constant) or 1 to the baseline's count plus a quarter and 4 standard errors.
pub fn suggest(baseline: &WindowSummary) -> Constraints {
    let features = baseline
        .features()
        .filter(|(_, f)| f.count() > 0)
        .map(|(name, f)| (name.to_owned(), suggest_feature(f)))
        .collect();
    Constraints {
        version: VERSION,
        deployment: baseline.deployment().to_owned(),
        key_fingerprint: baseline.key_fingerprint(),
        baseline_predictions: baseline.predictions(),
        features,
    }
}

fn suggest_feature(f: &FeatureSummary) -> FeatureConstraints {
    let n = present(f);
    let mut c = FeatureConstraints {
        completeness: Some(floor_to(n as f64 / f.count() as f64, 3)),
        ..Default::default()
    };
    if n == 0 {
        return c;
    }
    let kind = if f.ints() + f.floats() >= f.strings().max(f.bools()) {
        if f.floats() > 0 {
            Kind::Float
        } else {
            Kind::Int
        }
    } else if f.strings() >= f.bools() {
        Kind::String
    } else {
        Kind::Bool
    };
    c.data_type = Some(DataType {
        kind,
        min_share: floor_to(kind.count(f) as f64 / n as f64, 3),
    });
    if let (Some(lo), Some(hi)) = (f.min(), f.max()) {
        // A second sample's extremes pass the first's half the time, by about the length of
        // the tail: each end is widened by its 1 % tail (extreme to 1st or 99th percentile),
        // at least a quarter of the span. Heavy tails get room, bounded data little.
        let quarter = (hi - lo) / 4.0;
        let low_tail = f.quantile(0.01).map_or(0.0, |q| q - lo);
        let high_tail = f.quantile(0.99).map_or(0.0, |q| hi - q);
        let (mut min, mut max) = (lo - low_tail.max(quarter), hi + high_tail.max(quarter));
        if f.negatives() == 0 {
            min = min.max(0.0);
        }
        if kind == Kind::Int {
            (min, max) = (min.floor(), max.ceil());
        }
        // The histogram reports each extreme within its relative error: widen by it too.
        let err = modelwatch::RELATIVE_ERROR;
        c.range = Some(Range {
            min: round_out(min - min.abs() * err, false),
            max: round_out(max + max.abs() * err, true),
        });
    }
    if let Some(profile) = f.category_profile() {
        let buckets: Vec<u16> = profile
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, _)| i as u16)
            .collect();
        if buckets.len() <= MAX_CATEGORY_BUCKETS && !buckets.is_empty() {
            c.categories = Some(Categories {
                buckets,
                max_new_share: 0.0,
            });
        }
    }
    let distinct = f.distinct();
    if distinct > 0 && distinct <= MAX_DISTINCT_FOR_BAND {
        let se = modelwatch::NUMBER_DISTINCT_STANDARD_ERROR
            .max(modelwatch::STRING_DISTINCT_STANDARD_ERROR);
        c.distinct = Some(Band {
            min: distinct.min(2),
            max: (distinct as f64 * (1.25 + 4.0 * se)).ceil() as u64,
        });
    }
    c
}

/// Reads a constraints file from disk, errors naming it.
pub fn read(path: &std::path::Path) -> Result<Constraints, String> {
    std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| parse(&t))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a constraints file, with what is wrong in it said by field.
pub fn parse(text: &str) -> Result<Constraints, String> {
    let c: Constraints = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if c.version != VERSION {
        return Err(format!(
            "version {} is not one this command reads ({VERSION})",
            c.version
        ));
    }
    Ok(c)
}

/// A check of one feature in one window that failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub feature: String,
    /// `completeness_check`, `data_type_check`, `range_check`, `categories_check` or
    /// `distinct_check`.
    pub check: &'static str,
    /// What was expected and what was seen, in plain words.
    pub text: String,
    /// The window's measure: the share present or of the type, the extreme outside the
    /// range, the share of new categories, the distinct count.
    pub seen: f64,
    /// What the constraint allows of that measure (the bound it passed).
    pub expected: f64,
}

impl Finding {
    /// As the incident engine takes it: subject `FEATURE CHECK`, text `CHECK: what`.
    pub fn failure(&self) -> ConstraintFailure {
        ConstraintFailure::new(
            &format!("{} {}", self.feature, self.check),
            &format!("{}: {}", self.check, self.text),
            self.seen,
            self.expected,
        )
    }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// Whether `seen` of `n` is short of the share `required` past sampling noise ([`Z`]).
fn short_of(seen: u64, n: u64, required: f64) -> bool {
    if n == 0 {
        return false;
    }
    let share = seen as f64 / n as f64;
    let allowance = Z * (required * (1.0 - required) / n as f64).sqrt();
    share < required - allowance
}

/// The constraints `window` violates.
pub fn check(c: &Constraints, window: &WindowSummary) -> Vec<Finding> {
    let mut out = Vec::new();
    if window.predictions() == 0 {
        return out;
    }
    for (name, fc) in &c.features {
        let mut found = |check, text: String, seen: f64, expected: f64| {
            out.push(Finding {
                feature: name.clone(),
                check,
                text,
                seen,
                expected,
            })
        };
        let Some(f) = window.feature(name) else {
            if fc.completeness.is_some_and(|r| r > 0.0) {
                found(
                    "completeness_check",
                    format!(
                        "expected at least {} present, the feature is absent",
                        percent(fc.completeness.unwrap_or(0.0))
                    ),
                    0.0,
                    fc.completeness.unwrap_or(0.0),
                );
            }
            continue;
        };
        if f.count() == 0 {
            continue; // withheld (k-anonymity): nothing to judge
        }
        let n = present(f);
        if let Some(r) = fc.completeness {
            if short_of(n, f.count(), r) {
                found(
                    "completeness_check",
                    format!(
                        "expected at least {} present, only {} is",
                        percent(r),
                        percent(n as f64 / f.count() as f64)
                    ),
                    n as f64 / f.count() as f64,
                    r,
                );
            }
        }
        if let Some(t) = &fc.data_type {
            let seen = t.kind.count(f);
            if short_of(seen, n, t.min_share) {
                found(
                    "data_type_check",
                    format!(
                        "expected {}, only {} is {}",
                        t.kind.name(),
                        percent(seen as f64 / n as f64),
                        t.kind.name()
                    ),
                    seen as f64 / n as f64,
                    t.min_share,
                );
            }
        }
        if let (Some(r), Some(lo), Some(hi)) = (&fc.range, f.min(), f.max()) {
            if lo < r.min || hi > r.max {
                found(
                    "range_check",
                    format!(
                        "expected values within [{}, {}], saw [{}, {}]",
                        r.min, r.max, lo, hi
                    ),
                    if lo < r.min { lo } else { hi },
                    if lo < r.min { r.min } else { r.max },
                );
            }
        }
        // Buckets of another hash key are other buckets: no verdict rather than a false one.
        let same_key = window.key_fingerprint() == c.key_fingerprint;
        if let (Some(k), Some(profile), true) = (&fc.categories, f.category_profile(), same_key) {
            let strings: u64 = profile.iter().sum();
            let mut known = vec![false; profile.len()];
            for &b in &k.buckets {
                if let Some(slot) = known.get_mut(usize::from(b)) {
                    *slot = true;
                }
            }
            let new: u64 = profile
                .iter()
                .zip(&known)
                .filter(|(_, &k)| !k)
                .map(|(n, _)| n)
                .sum();
            if strings > 0 && new as f64 / strings as f64 > k.max_new_share {
                found(
                    "categories_check",
                    format!(
                        "expected at most {} of values outside the known categories, {} is ({new} value(s))",
                        percent(k.max_new_share),
                        percent(new as f64 / strings as f64)
                    ),
                    new as f64 / strings as f64,
                    k.max_new_share,
                );
            }
        }
        if let Some(b) = &fc.distinct {
            let d = f.distinct();
            // A window with fewer values than the band's minimum cannot reach it.
            if d > b.max || (d < b.min && n >= b.min * 10) {
                found(
                    "distinct_check",
                    format!(
                        "expected {} to {} distinct values, saw about {d}",
                        b.min, b.max
                    ),
                    d as f64,
                    if d > b.max { b.max } else { b.min } as f64,
                );
            }
        }
    }
    out
}

/// Consecutive windows failing the same check of the same feature, as one entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub feature: String,
    pub check: &'static str,
    pub first_window_ms: i64,
    pub last_window_ms: i64,
    pub windows: u64,
    /// The text of the last window of the run.
    pub text: String,
}

/// The constraints `window` violates, as the incident engine takes them
/// ([`modelwatch::Monitor::observe_constraints`]): what the collector's watch and the
/// report both feed it.
pub fn failures(c: &Constraints, window: &WindowSummary) -> Vec<ConstraintFailure> {
    check(c, window).iter().map(Finding::failure).collect()
}

/// Checks windows in order, grouping consecutive failures of a check into one violation,
/// and feeding them to an incident engine of their own (the report's incidents of kind
/// `constraint_violation`).
#[derive(Debug)]
pub struct Checker {
    constraints: Constraints,
    /// Constraint incidents only: its baseline never comes, so it runs no other check.
    engine: Monitor,
    /// Runs still open: ended by the first window that passes the check.
    open: BTreeMap<(String, &'static str), Violation>,
    done: Vec<Violation>,
    /// Windows checked.
    pub windows: u64,
}

impl Checker {
    pub fn new(constraints: Constraints) -> Checker {
        Checker {
            constraints,
            engine: Monitor::new(Baseline::Range(i64::MAX, i64::MAX)),
            open: BTreeMap::new(),
            done: Vec::new(),
            windows: 0,
        }
    }

    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    pub fn observe(&mut self, window: &WindowSummary) {
        self.windows += 1;
        let start = window.window_start();
        let findings = check(&self.constraints, window);
        let failures: Vec<_> = findings.iter().map(Finding::failure).collect();
        self.engine.observe_constraints(window, &failures);
        let failing: std::collections::BTreeSet<_> = findings
            .iter()
            .map(|f| (f.feature.clone(), f.check))
            .collect();
        let closed: Vec<_> = self
            .open
            .keys()
            .filter(|k| !failing.contains(*k))
            .cloned()
            .collect();
        for k in closed {
            self.done.extend(self.open.remove(&k));
        }
        for f in findings {
            let v = self
                .open
                .entry((f.feature.clone(), f.check))
                .or_insert(Violation {
                    feature: f.feature,
                    check: f.check,
                    first_window_ms: start,
                    last_window_ms: start,
                    windows: 0,
                    text: String::new(),
                });
            v.last_window_ms = start;
            v.windows += 1;
            v.text = f.text;
        }
    }

    /// The incidents of the constraints violated so far (kind `constraint_violation`).
    pub fn incidents(&self) -> &[Incident] {
        self.engine.incidents()
    }

    /// Every violation, in order of first window, then feature and check.
    pub fn finish(mut self) -> Vec<Violation> {
        self.done
            .extend(std::mem::take(&mut self.open).into_values());
        self.done.sort_by(|a, b| {
            (a.first_window_ms, &a.feature, a.check).cmp(&(b.first_window_ms, &b.feature, b.check))
        });
        self.done
    }
}

/// Violations as text lines.
pub fn text(violations: &[Violation]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    if violations.is_empty() {
        let _ = writeln!(t, "No constraint violations.");
        return t;
    }
    let _ = writeln!(t, "{} constraint violation(s):", violations.len());
    for v in violations {
        let _ = writeln!(
            t,
            "  {} {}: {}; {} window(s), {} to {}",
            crate::text::sanitize(&v.feature),
            v.check,
            v.text,
            v.windows,
            format_utc(v.first_window_ms),
            format_utc(v.last_window_ms)
        );
    }
    t
}

/// Violations as JSON.
pub fn json(violations: &[Violation]) -> serde_json::Value {
    violations
        .iter()
        .map(|v| {
            serde_json::json!({
                "feature": v.feature,
                "check": v.check,
                "text": v.text,
                "windows": v.windows,
                "first_window_ms": v.first_window_ms,
                "first_window_utc": format_utc(v.first_window_ms),
                "last_window_ms": v.last_window_ms,
                "last_window_utc": format_utc(v.last_window_ms),
            })
        })
        .collect()
}

/// Violations as an HTML section, `esc` escaping text.
pub fn html(violations: &[Violation], esc: impl Fn(&str) -> String) -> String {
    if violations.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "<h3>{} constraint violation(s)</h3><table class=\"incidents\"><tr><th>feature</th><th>check</th><th>what</th><th>windows</th><th>from</th><th>to</th></tr>",
        violations.len()
    );
    for v in violations {
        s += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&v.feature),
            v.check,
            esc(&v.text),
            v.windows,
            format_utc(v.first_window_ms),
            format_utc(v.last_window_ms)
        );
    }
    s + "</table>"
}
