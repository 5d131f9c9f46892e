//! ROC AUC, average precision, log loss and Brier score of binary models logged with a
//! probability, against exact computations from the raw scores (the definitions of
//! scikit-learn's `roc_auc_score`, `average_precision_score`, `log_loss` and
//! `brier_score_loss`): on the breast-cancer fixture, per segment, and on a synthetic
//! 3 %-positive set of 200,000 pairs, merged from two halves.

mod common;

use common::breast_cancer;
use modelwatch::{GroundTruthSummary, SummaryBuilder, WindowSummary};

/// Exact ROC AUC: the Mann-Whitney statistic, ties counting one half.
fn exact_auc(pairs: &[(f64, bool)]) -> f64 {
    let mut v = pairs.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (neg, pos) = counts(pairs);
    let (mut below, mut area, mut i) = (0.0, 0.0, 0);
    while i < v.len() {
        let j = (i..v.len()).find(|&j| v[j].0 != v[i].0).unwrap_or(v.len());
        let n = v[i..j].iter().filter(|p| !p.1).count() as f64;
        let p = (j - i) as f64 - n;
        area += p * (below + 0.5 * n);
        below += n;
        i = j;
    }
    area / (neg * pos)
}

/// Exact average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct scores from the highest down.
fn exact_ap(pairs: &[(f64, bool)]) -> f64 {
    let mut v = pairs.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (_, pos) = counts(pairs);
    let (mut tp, mut fp, mut ap, mut i) = (0.0, 0.0, 0.0, 0);
    while i < v.len() {
        let j = (i..v.len()).find(|&j| v[j].0 != v[i].0).unwrap_or(v.len());
        let p = v[i..j].iter().filter(|p| p.1).count() as f64;
        tp += p;
        fp += (j - i) as f64 - p;
        ap += p / pos * tp / (tp + fp);
        i = j;
    }
    ap
}

fn counts(pairs: &[(f64, bool)]) -> (f64, f64) {
    let pos = pairs.iter().filter(|p| p.1).count() as f64;
    (pairs.len() as f64 - pos, pos)
}

fn log_loss(pairs: &[(f64, bool)]) -> f64 {
    let sum: f64 = pairs
        .iter()
        .map(|&(p, y)| {
            let q = p.clamp(1e-15, 1.0 - 1e-15);
            if y {
                -q.ln()
            } else {
                -(1.0 - q).ln()
            }
        })
        .sum();
    sum / pairs.len() as f64
}

fn brier(pairs: &[(f64, bool)]) -> f64 {
    let sum: f64 = pairs
        .iter()
        .map(|&(p, y)| (p - f64::from(u8::from(y))).powi(2))
        .sum();
    sum / pairs.len() as f64
}

fn summary(pairs: &[(f64, bool)], segment: &str) -> WindowSummary {
    let mut b = SummaryBuilder::new("m", 0, 60_000, [9; 16]).min_values_per_window(1);
    for &(p, y) in pairs {
        b.log_ground_truth(y, p, [segment]);
    }
    b.build()
}

fn check(gt: &GroundTruthSummary, pairs: &[(f64, bool)], ap_tolerance: f64) {
    let (auc, exact) = (gt.roc_auc().unwrap(), exact_auc(pairs));
    println!(
        "AUC {auc:.6} exact {exact:.6} bound {:.2e}; AP {:.6} exact {:.6}",
        gt.roc_auc_error_bound().unwrap(),
        gt.pr_auc().unwrap(),
        exact_ap(pairs)
    );
    let bound = gt.roc_auc_error_bound().unwrap();
    assert!(
        (auc - exact).abs() <= bound + 1e-12,
        "AUC {auc} vs {exact}, bound {bound}"
    );
    assert!(bound < 2e-3, "bound {bound}");
    let (ap, exact) = (gt.pr_auc().unwrap(), exact_ap(pairs));
    assert!((ap - exact).abs() < ap_tolerance, "AP {ap} vs {exact}");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(gt.log_loss().unwrap(), log_loss(pairs)));
    assert!(close(gt.brier_score().unwrap(), brier(pairs)));
}

#[test]
fn breast_cancer_auc_and_average_precision_match_the_exact_values() {
    let rows = breast_cancer();
    let all: Vec<(f64, bool)> = rows.iter().map(|r| (r.proba, r.label == 1)).collect();
    let mut b = SummaryBuilder::new("m", 0, 60_000, [9; 16]).min_values_per_window(1);
    for r in &rows {
        b.log_ground_truth(r.label == 1, r.proba, [r.segment.as_str()]);
    }
    let s = b.build();
    check(s.ground_truth_overall().unwrap(), &all, 0.005);
    for seg in ["large", "small"] {
        let pairs: Vec<_> = rows
            .iter()
            .filter(|r| r.segment == seg)
            .map(|r| (r.proba, r.label == 1))
            .collect();
        check(s.ground_truth(seg).unwrap(), &pairs, 0.005);
    }
    // Through the wire and back: the same figures.
    let back = WindowSummary::decode(&s.encode()).unwrap();
    assert_eq!(
        back.ground_truth_overall().unwrap().roc_auc(),
        s.ground_truth_overall().unwrap().roc_auc()
    );
}

/// 200,000 pairs, 3 % positive, scores from a noisy logistic model: the imbalanced case
/// accuracy says little about. Two halves merged equal the whole.
#[test]
fn imbalanced_synthetic_scores_merged_from_two_halves() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let pairs: Vec<(f64, bool)> = (0..200_000)
        .map(|_| {
            let y = next() < 0.03;
            let (u, v) = (next().max(1e-12), next());
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            let logit = -4.0 + if y { 2.5 } else { 0.0 } + 1.2 * z;
            (1.0 / (1.0 + (-logit).exp()), y)
        })
        .collect();
    let (a, b) = pairs.split_at(pairs.len() / 2);
    let mut merged = summary(a, "s");
    merged.merge(&summary(b, "s")).unwrap();
    let whole = summary(&pairs, "s");
    let (m, w) = (
        merged.ground_truth_overall().unwrap(),
        whole.ground_truth_overall().unwrap(),
    );
    assert_eq!(m.roc_auc(), w.roc_auc());
    assert_eq!(m.pr_auc(), w.pr_auc());
    check(m, &pairs, 0.002);
    // Accuracy at 0.5 is ~97 % whatever the model does; AUC tells the model apart.
    assert!(m.accuracy().unwrap() > 0.96);
    assert!((0.85..0.97).contains(&m.roc_auc().unwrap()));
}

/// Scores spread over more buckets than the cap: the resolution halves, the bound widens
/// and still holds, and decoding refuses buckets out of order.
#[test]
fn past_the_bucket_cap_the_resolution_halves_and_the_bound_holds() {
    let pairs: Vec<(f64, bool)> = (0..20_000)
        .map(|i| {
            let p = (-(f64::from(i) * 0.005)).exp() * 0.5;
            (p, i % 3 == 0)
        })
        .collect();
    let s = summary(&pairs, "s");
    let gt = s.ground_truth_overall().unwrap();
    let (auc, exact, bound) = (
        gt.roc_auc().unwrap(),
        exact_auc(&pairs),
        gt.roc_auc_error_bound().unwrap(),
    );
    assert!(
        (auc - exact).abs() <= bound + 1e-12,
        "{auc} {exact} {bound}"
    );
    assert!(s.encode().len() < 4096 * 24, "{}", s.encode().len());
}

/// An imbalanced binary model losing its separation: accuracy stays ~97 % (it predicts
/// "no fraud" either way), the monitor opens one `auc_drop`, not an `accuracy_drop`, and
/// nothing on the windows before.
#[test]
fn an_imbalanced_model_is_monitored_on_auc_not_accuracy() {
    use modelwatch::{Baseline, IncidentKind, Monitor};
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut monitor = Monitor::new(Baseline::FirstWindows(10));
    for w in 0..300 {
        let separation = if w >= 200 { 1.2 } else { 2.5 };
        let mut b = SummaryBuilder::new("fraud", w * 60_000, 60_000, [9; 16]);
        for _ in 0..1000 {
            let y = next() < 0.03;
            let (u, v) = (next().max(1e-12), next());
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            let logit = -4.0 + if y { separation } else { 0.0 } + 1.2 * z;
            b.log_ground_truth(y, 1.0 / (1.0 + (-logit).exp()), ());
        }
        monitor.observe(&b.build());
    }
    let incidents = monitor.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let i = &incidents[0];
    assert_eq!(
        (i.kind, i.subject.as_str()),
        (IncidentKind::AucDrop, "all segments")
    );
    let window = i.opened_ms / 60_000;
    assert!((200..210).contains(&window), "opened at {window}");
}

/// The decision threshold decides the confusion matrix (so accuracy, precision, recall,
/// F1), not the ranking metrics: counted here by hand at 0.2 and at the default 0.5.
#[test]
fn the_decision_threshold_sets_the_confusion_matrix_not_the_auc() {
    let pairs: Vec<(f64, bool)> = (0..1000)
        .map(|i| (f64::from(i) / 1000.0, (i * 7919) % 10 < 3))
        .collect();
    let at = |threshold: f64| {
        let mut b = SummaryBuilder::new("m", 0, 60_000, [9; 16])
            .min_values_per_window(1)
            .decision_threshold(threshold);
        for &(p, y) in &pairs {
            b.log_ground_truth(y, p, ());
        }
        b.build()
    };
    for threshold in [0.2, 0.5] {
        let s = at(threshold);
        let gt = s.ground_truth_overall().unwrap();
        let tp = pairs.iter().filter(|&&(p, y)| y && p >= threshold).count() as u64;
        let fp = pairs.iter().filter(|&&(p, y)| !y && p >= threshold).count() as u64;
        assert_eq!(
            (gt.confusion(true, true), gt.confusion(false, true)),
            (tp, fp)
        );
        assert_eq!(
            gt.roc_auc(),
            at(0.5).ground_truth_overall().unwrap().roc_auc()
        );
    }
}
