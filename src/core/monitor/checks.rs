//! The checks of one window against a baseline. Each gives a score in standard errors
//! (positive: worse than the baseline), the share of that score's variance that comes from
//! the baseline (the part every window tested against it shares), the size in the check's
//! unit, and the finding in words. The engine in [`super::engine`] accumulates the scores
//! over windows; no check decides an alarm on its own.
//!
//! A score only counts past a practical minimum (a missing rate up one point, accuracy down
//! two, PSI 0.1, ...): subtracted before standardising, so that a very large window does
//! not turn an irrelevant shift into an alarm.

use super::IncidentKind;
use crate::core::sketch::vector::cosine_distance;
use crate::core::summary::render::duration;
use crate::core::summary::{FeatureSummary, FeatureType, WindowSummary};
use crate::{GroundTruthSummary, OutputKind};

/// What one check saw in one window.
#[derive(Clone, Debug)]
pub(crate) struct Evidence {
    pub(crate) kind: IncidentKind,
    pub(crate) subject: String,
    /// Standard errors beyond the practical minimum; about N(0, 1) or below when nothing
    /// changed.
    pub(crate) score: f64,
    /// Share of the score's variance due to the baseline's own sampling error, in [0, 1].
    pub(crate) baseline_share: f64,
    /// The window's measure (a rate, a PSI, an accuracy, seconds, ...).
    pub(crate) value: f64,
    /// The baseline's value of the same measure.
    pub(crate) baseline: f64,
    pub(crate) text: String,
}

/// Every check of `w` against `base`.
pub(crate) fn evaluate(w: &WindowSummary, base: &WindowSummary) -> Vec<Evidence> {
    let mut out = declared_checks(w);
    // A baseline feature the window lacks was missing from every prediction of it.
    let absent = FeatureSummary::all_missing(w.predictions());
    let lacking = base
        .features()
        .filter(|(n, _)| w.feature(n).is_none() && w.predictions() > 0)
        .map(|(n, b)| (n.to_owned(), &absent, Some(b)));
    let columns = w
        .features()
        .map(|(n, f)| (n.to_owned(), f, base.feature(n)))
        .chain(lacking)
        .chain(
            w.outputs()
                .map(|(n, f)| (format!("output {n}"), f, base.output(n))),
        );
    for (name, f, b) in columns {
        if let Some(b) = b {
            // A declared type is checked against the declaration, not the baseline.
            if w.declared_type(&name).is_none() {
                type_check(&name, f, b, &mut out);
            }
            column_checks(&name, f, b, &mut out);
        }
    }
    let overall = w
        .ground_truth_overall()
        .map(|g| ("all segments".to_owned(), g, base.ground_truth_overall()));
    let segments = w
        .ground_truth_segments()
        .map(|(n, g)| (format!("segment {n}"), g, base.ground_truth(n)));
    for (name, g, b) in overall.into_iter().chain(segments) {
        if let Some(b) = b {
            ground_truth_checks(&name, g, b, &mut out);
        }
    }
    exception_check(w, base, &mut out);
    latency_checks(w, base, &mut out);
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A number short enough for a sentence.
pub(crate) fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// Score of a rise of a proportion from `x0` of `n0` (baseline) to `x1` of `n1`, past the
/// practical minimum `floor`, and the baseline's share of its variance. The baseline's
/// rate is smoothed by half a count, so that a rate of zero still has a variance.
fn rise(x0: f64, n0: f64, x1: f64, n1: f64, floor: f64) -> (f64, f64) {
    let p0 = (x0 + 0.5) / (n0 + 1.0);
    let p1 = x1 / n1;
    let var = p0 * (1.0 - p0);
    let (v0, v1) = (var / n0, var / n1);
    ((p1 - p0 - floor) / (v0 + v1).sqrt(), v0 / (v0 + v1))
}

/// A χ² statistic with `df` degrees of freedom as a standard normal score (Wilson and
/// Hilferty's cube-root transform: within 0.05 of the exact quantile from df = 3 on).
pub(crate) fn chi2_score(x: f64, df: f64) -> f64 {
    let a = 2.0 / (9.0 * df);
    ((x / df).cbrt() - (1.0 - a)) / a.sqrt()
}

fn dominant_type(f: &FeatureSummary) -> Option<(&'static str, u64)> {
    type_counts(f)
        .into_iter()
        .max_by_key(|t| t.1)
        .filter(|t| t.1 > 0)
}

fn type_counts(f: &FeatureSummary) -> [(&'static str, u64); 5] {
    [
        ("float", f.floats()),
        ("int", f.ints()),
        ("string", f.strings()),
        ("bool", f.bools()),
        ("vector", f.vectors()),
    ]
}

fn column_checks(name: &str, f: &FeatureSummary, b: &FeatureSummary, out: &mut Vec<Evidence>) {
    let (n0, n1) = (b.count() as f64, f.count() as f64);
    if n0 == 0.0 || n1 == 0.0 {
        return;
    }
    let (m0, m1) = (b.missing() as f64, f.missing() as f64);
    let (score, baseline_share) = rise(m0, n0, m1, n1, 0.01);
    out.push(Evidence {
        kind: IncidentKind::MissingRate,
        subject: name.into(),
        score,
        baseline_share,
        value: m1 / n1,
        baseline: m0 / n0,
        text: format!(
            "{name}: {} missing, up from {} in the baseline",
            pct(m1 / n1),
            pct(m0 / n0)
        ),
    });
    distribution_checks(name, f, b, out);
    centroid_check(name, f, b, out);
}

/// The checks that need no baseline: declared types (`Session::declare_features`).
pub(crate) fn declared_checks(w: &WindowSummary) -> Vec<Evidence> {
    let mut out = Vec::new();
    for (name, t) in w.declared_features() {
        if let Some(f) = w.feature(name) {
            declared_type_check(name, f, t, &mut out);
        }
    }
    out
}

/// A declared type losing ground: any share of values of another type past half a
/// percent, with no baseline needed (`Session::declare_features`).
fn declared_type_check(name: &str, f: &FeatureSummary, t: FeatureType, out: &mut Vec<Evidence>) {
    let present = (f.count() - f.missing()) as f64;
    if present == 0.0 {
        return;
    }
    let other = present - t.count_in(f) as f64;
    let (share, floor) = (other / present, 0.005);
    let p = share.max(floor);
    out.push(Evidence {
        kind: IncidentKind::TypeMismatch,
        subject: name.into(),
        score: (share - floor) / (p * (1.0 - p) / present).sqrt(),
        baseline_share: 0.0,
        value: 1.0 - share,
        baseline: 1.0,
        text: format!(
            "{name}: declared {t}, only {:.1}% is {t} ({other:.0} values of another type)",
            (1.0 - share) * 100.0
        ),
    });
}

/// Types: the baseline's dominant type losing ground (SageMaker's data_type_check).
fn type_check(name: &str, f: &FeatureSummary, b: &FeatureSummary, out: &mut Vec<Evidence>) {
    if let Some((t, c0)) = dominant_type(b) {
        let present0 = (b.count() - b.missing()) as f64;
        let present1 = (f.count() - f.missing()) as f64;
        let share_of =
            |f: &FeatureSummary| type_counts(f).iter().find(|x| x.0 == t).map_or(0, |x| x.1);
        if present1 > 0.0 && c0 as f64 >= 0.99 * present0 {
            let other0 = present0 - c0 as f64;
            let other1 = present1 - share_of(f) as f64;
            let (score, baseline_share) = rise(other0, present0, other1, present1, 0.005);
            let s1 = 1.0 - other1 / present1;
            out.push(Evidence {
                kind: IncidentKind::TypeMismatch,
                subject: name.into(),
                score,
                baseline_share,
                value: s1,
                baseline: c0 as f64 / present0,
                text: format!(
                    "{name}: expected {t}, only {:.1}% is {t} ({other1:.0} values of another type; baseline {:.1}%)",
                    s1 * 100.0,
                    c0 as f64 / present0 * 100.0
                ),
            });
        }
    }
}

/// An embedding's centroid moving: per slot of the mean vector, the shift from the
/// baseline's mean past a practical minimum of a tenth of the component's standard
/// deviation, standardised and summed (at most χ² with a degree per slot when nothing
/// changed); the size reported is the cosine distance between the means. A change of
/// dimension is a type change.
fn centroid_check(name: &str, f: &FeatureSummary, b: &FeatureSummary, out: &mut Vec<Evidence>) {
    let (Some(vf), Some(vb)) = (f.0.vectors.as_deref(), b.0.vectors.as_deref()) else {
        return;
    };
    if vf.n < 2 || vb.n < 2 {
        return;
    }
    let (dims, base_dims) = ((vf.dim_min, vf.dim_max), (vb.dim_min, vb.dim_max));
    out.push(Evidence {
        kind: IncidentKind::TypeMismatch,
        subject: name.into(),
        // Dimensions are exact: a change is certain, none is a healthy window.
        score: if dims == base_dims { -1.0 } else { 20.0 },
        baseline_share: 0.0,
        value: f64::from(vf.dim_max),
        baseline: f64::from(vb.dim_max),
        text: format!(
            "{name}: vectors of dimension {}, the baseline's are {}",
            dims.1, base_dims.1
        ),
    });
    let (n0, n1) = (vb.n as f64, vf.n as f64);
    let (m0, m1, v0, v1) = (vb.mean(), vf.mean(), vb.variance(), vf.variance());
    let (mut x, mut df) = (0.0, 0usize);
    for d in 0..m0.len().min(m1.len()) {
        let var = (v0[d] * n0 + v1[d] * n1) / (n0 + n1);
        if var <= 0.0 {
            continue;
        }
        let shift = ((m1[d] - m0[d]).abs() - 0.1 * var.sqrt()).max(0.0);
        x += shift * shift / (var * (1.0 / n0 + 1.0 / n1));
        df += 1;
    }
    if df == 0 {
        return;
    }
    let distance = cosine_distance(&m1, &m0).unwrap_or(0.0);
    out.push(Evidence {
        kind: IncidentKind::Drift,
        subject: name.into(),
        score: chi2_score(x, df as f64),
        baseline_share: n1 / (n0 + n1),
        value: distance,
        baseline: 0.0,
        text: format!(
            "{name}: embedding centroid moved, cosine distance {distance:.3} from the baseline's mean ({} vs {} vectors)",
            vf.n, vb.n
        ),
    });
}

/// Drift, values outside the baseline's range and new categories: one kind of incident
/// (the feature's distribution changed), each check a way of seeing it.
fn distribution_checks(
    name: &str,
    f: &FeatureSummary,
    b: &FeatureSummary,
    out: &mut Vec<Evidence>,
) {
    let categorical = f.category_drift(b).map(|d| (d, plain_mover(f, b)));
    let numeric = f.numeric_drift(b).map(|d| (d, None));
    for (drift, mover) in [numeric, categorical].into_iter().flatten() {
        let (n, m) = (drift.baseline_values as f64, drift.current_values as f64);
        // PSI × nm/(n+m) is about χ²(bins − 1) for one distribution; below PSI 0.1 (the
        // conventional "no significant change") it counts as no evidence at all.
        let df = (drift.bins - 1) as f64;
        let scale = n * m / (n + m);
        let score = chi2_score(drift.psi.max(0.0) * scale, df);
        out.push(Evidence {
            kind: IncidentKind::Drift,
            subject: name.into(),
            score: if drift.psi < 0.1 { score.min(0.0) } else { score },
            baseline_share: m / (n + m),
            value: drift.psi,
            baseline: drift.threshold,
            text: format!(
                "{name}: distribution drift, PSI {:.3} ({} vs {} values), Jensen-Shannon distance {:.3}{}",
                drift.psi, drift.current_values, drift.baseline_values, drift.js_distance,
                mover.unwrap_or_default()
            ),
        });
    }
    if let Some(new) = f.new_categories(b) {
        // Good-Turing: the chance that a value falls in a bucket the baseline never saw is
        // about (buckets seen once) / (values seen).
        if let Some(unseen) = b.unseen_mass() {
            let total = f.strings() as f64;
            if total > 0.0 {
                let p0 = unseen.max(0.5 / (b.strings() as f64 + 1.0));
                let floor = 0.005;
                let var = p0 * (1.0 - p0) / total;
                let score = (new.share - p0 - floor) / var.sqrt();
                out.push(Evidence {
                    kind: IncidentKind::Drift,
                    subject: name.into(),
                    score: if new.values >= 5 { score } else { score.min(0.0) },
                    baseline_share: total / (total + b.strings() as f64),
                    value: new.share,
                    baseline: p0,
                    text: format!(
                        "{name}: {} of the values ({}) fall in {} category bucket(s) never seen in the baseline",
                        pct(new.share),
                        new.values,
                        new.buckets
                    ),
                });
            }
        }
    }
    if let (Some(outside), Some(lo), Some(hi)) = (f.count_outside(b), b.min(), b.max()) {
        let (n0, n1) = (b.numbers() as f64, f.numbers() as f64);
        if n1 > 0.0 {
            // With n baseline values, a new one falls outside their range with chance
            // 2/(n+1) (any continuous distribution); the floor asks for half a percent.
            let p0 = 2.0 / (n0 + 1.0);
            let share = outside as f64 / n1;
            let score = (share - p0 - 0.005) / (p0 * (1.0 - p0) / n1).sqrt();
            out.push(Evidence {
                kind: IncidentKind::Drift,
                subject: name.into(),
                score,
                baseline_share: n1 / (n0 + n1),
                value: share,
                baseline: p0,
                text: format!(
                    "{name}: {outside} values ({}) outside the baseline's range [{}, {}]",
                    pct(share),
                    short(lo),
                    short(hi)
                ),
            });
        }
    }
}

/// For a feature whose categories ship by name (`Config::plain_categories`): the category
/// whose share moved most, in words ("; NL went from 5.0% to 40.0%"). A name only one side
/// has counts as 0 % on the other (it was rarer there than the shipping threshold).
fn plain_mover(f: &FeatureSummary, b: &FeatureSummary) -> Option<String> {
    let (n1, n0) = (f.strings() as f64, b.strings() as f64);
    if n1 == 0.0 || n0 == 0.0 {
        return None;
    }
    let share = |s: &FeatureSummary, n: f64, name: &str| {
        s.categories()
            .find(|c| c.0 == name)
            .map_or(0.0, |c| c.1 as f64 / n)
    };
    f.categories()
        .chain(b.categories())
        .map(|(name, _)| (name, share(b, n0, name), share(f, n1, name)))
        .max_by(|x, y| (x.2 - x.1).abs().total_cmp(&(y.2 - y.1).abs()))
        .map(|(name, p0, p1)| format!("; {name} went from {} to {}", pct(p0), pct(p1)))
}

fn ground_truth_checks(
    name: &str,
    g: &GroundTruthSummary,
    b: &GroundTruthSummary,
    out: &mut Vec<Evidence>,
) {
    match g.kind() {
        Some(OutputKind::Regression) => {
            if let (Some(e1), Some(e0)) = (g.mse(), b.mse()) {
                let (n0, n1) = (b.count() as f64, g.count() as f64);
                if e0 > 0.0 && n1 > 0.0 {
                    // Squared errors of normal errors have variance 2σ⁴: the ratio of two
                    // MSEs has standard error √(2/n₀ + 2/n₁). The floor: 1.5× the baseline.
                    let (v0, v1) = (2.0 / n0, 2.0 / n1);
                    out.push(Evidence {
                        kind: IncidentKind::ErrorIncrease,
                        subject: name.into(),
                        score: (e1 / e0 - 1.5) / (v0 + v1).sqrt(),
                        baseline_share: v0 / (v0 + v1),
                        value: e1,
                        baseline: e0,
                        text: format!(
                            "{name}: MSE {} is {:.1}× the baseline's {}",
                            short(e1),
                            e1 / e0,
                            short(e0)
                        ),
                    });
                }
            }
        }
        Some(_) if is_imbalanced(b) => auc_check(name, g, b, out),
        Some(_) => {
            if let (Some(a1), Some(a0)) = (g.accuracy(), b.accuracy()) {
                let (n0, n1) = (b.count() as f64, g.count() as f64);
                let (score, baseline_share) = rise((1.0 - a0) * n0, n0, (1.0 - a1) * n1, n1, 0.02);
                let f1 = match (g.macro_f1(), b.macro_f1()) {
                    (Some(x), Some(y)) => format!(", macro F1 {x:.3} (baseline {y:.3})"),
                    _ => String::new(),
                };
                out.push(Evidence {
                    kind: IncidentKind::AccuracyDrop,
                    subject: name.into(),
                    score,
                    baseline_share,
                    value: a1,
                    baseline: a0,
                    text: format!(
                        "{name}: accuracy {} on {} labels, down from {} in the baseline{f1}",
                        pct(a1),
                        g.count(),
                        pct(a0)
                    ),
                });
            }
        }
        None => {}
    }
}

/// A binary model with probabilities whose baseline has under 10 % positives: accuracy
/// stays high whatever the model does, so its quality is judged by ROC AUC.
fn is_imbalanced(b: &GroundTruthSummary) -> bool {
    b.score_totals()
        .is_some_and(|(neg, pos)| pos / (neg + pos) < 0.1)
}

/// Hanley and McNeil's (1982) variance of an AUC estimate from `pos` positives and `neg`
/// negatives.
fn auc_variance(a: f64, neg: f64, pos: f64) -> f64 {
    let (q1, q2) = (a / (2.0 - a), 2.0 * a * a / (1.0 + a));
    let v = a * (1.0 - a) + (pos - 1.0) * (q1 - a * a) + (neg - 1.0) * (q2 - a * a);
    (v / (pos * neg)).max(1e-12)
}

fn auc_check(name: &str, g: &GroundTruthSummary, b: &GroundTruthSummary, out: &mut Vec<Evidence>) {
    let (Some(a1), Some(a0), Some((n1, p1)), Some((n0, p0))) =
        (g.roc_auc(), b.roc_auc(), g.score_totals(), b.score_totals())
    else {
        return;
    };
    let (v0, v1) = (auc_variance(a0, n0, p0), auc_variance(a1, n1, p1));
    out.push(Evidence {
        kind: IncidentKind::AucDrop,
        subject: name.into(),
        // The floor: two points of AUC.
        score: (a0 - a1 - 0.02) / (v0 + v1).sqrt(),
        baseline_share: v0 / (v0 + v1),
        value: a1,
        baseline: a0,
        text: format!(
            "{name}: ROC AUC {a1:.3} on {} labels ({p1:.0} positive), down from {a0:.3} in the baseline",
            n1 + p1
        ),
    });
}

fn exception_check(w: &WindowSummary, base: &WindowSummary, out: &mut Vec<Evidence>) {
    let exceptions =
        |s: &WindowSummary| s.exceptions().iter().map(|e| e.count() as f64).sum::<f64>();
    let (n0, n1) = (base.predictions() as f64, w.predictions() as f64);
    if n0 == 0.0 || n1 == 0.0 {
        return;
    }
    let (x0, x1) = (exceptions(base), exceptions(w));
    // Poisson counts: the window's expected count from the baseline's rate, smoothed; the
    // floor asks for 3 exceptions more than expected.
    let rate0 = (x0 + 0.5) / n0;
    let expected = rate0 * n1;
    let (v0, v1) = (expected * n1 / n0, expected);
    out.push(Evidence {
        kind: IncidentKind::ExceptionSpike,
        subject: "exceptions".into(),
        score: (x1 - expected - 3.0) / (v0 + v1).sqrt(),
        baseline_share: v0 / (v0 + v1),
        value: x1 / n1,
        baseline: x0 / n0,
        text: format!(
            "{x1:.0} exceptions ({} of predictions) where the baseline rate predicts {expected:.1} ({})",
            pct(x1 / n1),
            pct(x0 / n0)
        ),
    });
}

fn latency_checks(w: &WindowSummary, base: &WindowSummary, out: &mut Vec<Evidence>) {
    let (Some(l), Some(b)) = (w.latency(), base.latency()) else {
        return;
    };
    let (Some(h), n0) = (l.0.numbers.as_ref(), b.numbers() as f64) else {
        return;
    };
    let n1 = h.histogram.len() as f64;
    if n1 == 0.0 || n0 == 0.0 {
        return;
    }
    // A quantile test: the share of the window's latencies above the baseline's p50 (p99)
    // is 50 % (1 %) when nothing changed, whatever the distribution. The floor: the
    // window's quantile 1.3× (1.5×) the baseline's.
    for (q, label, factor) in [(0.5, "p50", 1.3), (0.99, "p99", 1.5)] {
        let (Some(x), Some(y)) = (l.quantile(q), b.quantile(q)) else {
            continue;
        };
        let above = n1 - h.histogram.count_le(y) as f64;
        let p0 = 1.0 - q;
        let (v0, v1) = (p0 * q / n0, p0 * q / n1);
        let score = (above / n1 - p0) / (v0 + v1).sqrt();
        out.push(Evidence {
            kind: IncidentKind::LatencyRegression,
            subject: format!("latency {label}"),
            score: if x > y * factor {
                score
            } else {
                score.min(0.0)
            },
            baseline_share: v0 / (v0 + v1),
            value: x,
            baseline: y,
            text: format!(
                "latency {label} is {}, {:.1}× the baseline's {}",
                duration(Some(x)),
                x / y,
                duration(Some(y))
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_scores_match_known_quantiles() {
        // 99.9th percentiles of χ²: df 9 → 27.88, df 19 → 43.82; z(0.999) = 3.090.
        assert!((chi2_score(27.88, 9.0) - 3.090).abs() < 0.06);
        assert!((chi2_score(43.82, 19.0) - 3.090).abs() < 0.04);
        // Medians: df 9 → 8.343, z = 0.
        assert!(chi2_score(8.343, 9.0).abs() < 0.02);
    }

    #[test]
    fn a_rise_is_scored_in_standard_errors_past_the_floor() {
        // 10 % → 20 % missing on 1,000 vs 1,000 values: (0.2 − 0.1 − 0.01) / se.
        let (z, share) = rise(100.0, 1000.0, 200.0, 1000.0, 0.01);
        let p0: f64 = 100.5 / 1001.0;
        let se = (p0 * (1.0 - p0) * (1.0 / 1000.0 + 1.0 / 1000.0)).sqrt();
        assert!((z - (0.2 - p0 - 0.01) / se).abs() < 1e-9);
        assert!((share - 0.5).abs() < 1e-9);
    }
}
