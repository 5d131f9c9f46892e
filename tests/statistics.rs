//! Statistics of real data against exact computations: the reference workload and the
//! breast-cancer data set scored by scikit-learn.

mod common;

use common::{breast_cancer, breast_cancer_metrics, memory_agent, workload, Row};
use modelwatch::{WindowSummary, NUMBER_DISTINCT_STANDARD_ERROR, STRING_DISTINCT_STANDARD_ERROR};
use std::collections::HashSet;
use std::time::Duration;

const FLUSH: Duration = Duration::from_secs(30);

fn log_rows(rows: &[Row]) -> WindowSummary {
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("workload");
    for r in rows {
        sess.log_prediction(r.pairs(), r.prediction);
    }
    agent.flush(FLUSH).unwrap();
    sink.merged()
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

fn assert_relative(got: f64, want: f64, tol: f64, what: &str) {
    let err = if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    };
    assert!(
        err <= tol,
        "{what}: got {got}, want {want}, relative error {err:.5} > {tol}"
    );
}

fn assert_distinct(got: u64, exact: usize, standard_error: f64, what: &str) {
    assert_relative(got as f64, exact as f64, 3.0 * standard_error, what);
}

#[test]
fn workload_statistics_match_exact_computations() {
    let rows = workload();
    assert_eq!(rows.len(), 100_000);
    let s = log_rows(&rows);
    assert_eq!(s.predictions(), 100_000);
    for i in 0..10 {
        let name = format!("f{i}");
        let f = s.feature(&name).unwrap();
        let mut present: Vec<f64> = rows.iter().filter_map(|r| r.floats[i]).collect();
        assert_eq!(f.count(), 100_000, "{name}");
        assert_eq!(f.missing(), (100_000 - present.len()) as u64, "{name}");
        assert_eq!(f.floats(), present.len() as u64);
        assert_eq!(
            f.negatives(),
            present.iter().filter(|&&x| x < 0.0).count() as u64
        );
        let mean = present.iter().sum::<f64>() / present.len() as f64;
        assert_relative(f.mean().unwrap(), mean, 1e-9, &name);
        let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / present.len() as f64;
        assert_relative(f.variance().unwrap(), var, 1e-9, &name);
        let exact_distinct = present
            .iter()
            .map(|x| x.to_bits())
            .collect::<HashSet<_>>()
            .len();
        assert_distinct(
            f.distinct(),
            exact_distinct,
            NUMBER_DISTINCT_STANDARD_ERROR,
            &name,
        );
        present.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
            assert_relative(
                f.quantile(q).unwrap(),
                exact_quantile(&present, q),
                0.01,
                &format!("{name} q{q}"),
            );
        }
    }
    for (name, pick) in [("cat_small", 0), ("user_id", 1)] {
        let f = s.feature(name).unwrap();
        let values: HashSet<&str> = rows
            .iter()
            .map(|r| {
                if pick == 0 {
                    &*r.cat_small
                } else {
                    &*r.user_id
                }
            })
            .collect();
        assert_eq!(f.strings(), 100_000);
        assert_distinct(
            f.distinct(),
            values.len(),
            STRING_DISTINCT_STANDARD_ERROR,
            name,
        );
        assert_eq!(f.category_profile().unwrap().iter().sum::<u64>(), 100_000);
    }
    assert_eq!(
        s.feature("cat_small").unwrap().distinct(),
        20,
        "small cardinalities are exact in practice"
    );
    let flag = s.feature("flag").unwrap();
    assert_eq!(
        (flag.bools(), flag.trues()),
        (100_000, rows.iter().filter(|r| r.flag).count() as u64)
    );
    let out = s.output(modelwatch::PREDICTION).unwrap();
    let mut preds: Vec<f64> = rows.iter().map(|r| r.prediction).collect();
    preds.sort_by(f64::total_cmp);
    for q in [0.01, 0.5, 0.99] {
        assert_relative(
            out.quantile(q).unwrap(),
            exact_quantile(&preds, q),
            0.01,
            "prediction",
        );
    }
}

#[test]
fn encoded_summary_of_the_workload_fits_in_12_kib() {
    let s = log_rows(&workload());
    let bytes = s.encode();
    eprintln!(
        "encoded summary of 100k workload predictions: {} bytes",
        bytes.len()
    );
    for (name, f) in s.features().chain(s.outputs()) {
        let column = rmp_serde::to_vec_named(f).unwrap();
        eprintln!("  {name}: {} bytes", column.len());
    }
    assert!(bytes.len() <= 12 * 1024, "{} bytes", bytes.len());
}

/// `fixtures/schema2-window.msgpack` was written by the schema 2 encoder (deflated spans
/// and registers; e7fd290) from the first 2,000 workload rows: this version reads it as
/// the same window it builds from those rows, and writes that window back in schema 3.
#[test]
fn a_schema_2_window_reads_as_the_window_this_version_builds() {
    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/schema2-window.msgpack"
    ))
    .unwrap();
    let read = WindowSummary::decode(&old).unwrap();
    assert_eq!(read.schema_version(), 2);
    let mut b =
        modelwatch::SummaryBuilder::new("schema2", 1_764_547_200_000, 60_000, *b"schema-2-fixture");
    for r in &workload()[..2_000] {
        b.log_prediction(r.pairs(), r.prediction);
    }
    let built = b.build();
    let new = built.encode();
    assert_eq!(
        read.encode(),
        new,
        "schema 2 read back and written as schema 3"
    );
    assert_eq!(WindowSummary::decode(&new).unwrap().schema_version(), 3);
    // The statistics agree, not only the bytes (of the decoded window: the encoder drops
    // the registers of all-distinct numbers, docs/wire-format.md `unique_numbers`).
    let rebuilt = WindowSummary::decode(&new).unwrap();
    for (name, f) in rebuilt.features() {
        let g = read.feature(name).unwrap();
        assert_eq!(
            (g.count(), g.distinct(), g.category_profile()),
            (f.count(), f.distinct(), f.category_profile()),
            "{name}"
        );
        for q in [0.01, 0.5, 0.99] {
            assert_eq!(g.quantile(q), f.quantile(q), "{name}");
        }
    }
    eprintln!(
        "2,000 rows: schema 2 {} bytes, schema 3 {} bytes",
        old.len(),
        new.len()
    );
}

#[test]
fn merging_disjoint_streams_equals_the_union() {
    let rows = workload();
    let whole = log_rows(&rows[..30_000]);
    let mut a = log_rows(&rows[..17_000]);
    let b = log_rows(&rows[17_000..30_000]);
    a.merge(&b).unwrap();
    assert_eq!(a.predictions(), whole.predictions());
    for (name, w) in whole.features() {
        let m = a.feature(name).unwrap();
        assert_eq!(
            (m.count(), m.missing(), m.strings(), m.trues()),
            (w.count(), w.missing(), w.strings(), w.trues())
        );
        // Histograms and HyperLogLog registers add exactly: the estimates are identical.
        assert_eq!(m.distinct(), w.distinct(), "{name}");
        for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
            assert_eq!(m.quantile(q), w.quantile(q), "{name}");
        }
        assert_eq!(m.category_profile(), w.category_profile());
        if let (Some(x), Some(y)) = (m.mean(), w.mean()) {
            assert_relative(x, y, 1e-12, name);
        }
    }
}

#[test]
fn breast_cancer_metrics_equal_scikit_learn() {
    let oracle = breast_cancer_metrics();
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("breast_cancer");
    for r in breast_cancer() {
        sess.log_prediction(&r.features, r.proba);
        sess.log_ground_truth(r.label, r.prediction, [r.segment.as_str()]);
    }
    agent.flush(FLUSH).unwrap();
    let s = sink.merged();
    assert_eq!(s.predictions(), 569);
    let check = |gt: &modelwatch::GroundTruthSummary, o: &serde_json::Value| {
        let close = |got: Option<f64>, key: &str| {
            let want = o[key].as_f64().unwrap();
            assert!(
                (got.unwrap() - want).abs() <= 1e-9,
                "{key}: {got:?} vs {want}"
            );
        };
        assert_eq!(gt.count(), o["count"].as_u64().unwrap());
        assert_eq!(gt.confusion(1, 1), o["tp"].as_u64().unwrap());
        assert_eq!(gt.confusion(0, 1), o["fp"].as_u64().unwrap());
        assert_eq!(gt.confusion(0, 0), o["tn"].as_u64().unwrap());
        assert_eq!(gt.confusion(1, 0), o["fn"].as_u64().unwrap());
        close(gt.accuracy(), "accuracy");
        close(gt.precision(1), "precision");
        close(gt.recall(1), "recall");
        close(gt.f1(1), "f1");
    };
    check(s.ground_truth_overall().unwrap(), &oracle["all"]);
    for seg in ["large", "small"] {
        check(s.ground_truth(seg).unwrap(), &oracle["segments"][seg]);
    }
    // Feature quantiles against numpy's, within the 1 % bound (numpy interpolates, so
    // compare with the exact rank-based quantile's tolerance doubled).
    for (name, qs) in oracle["feature_quantiles"].as_object().unwrap() {
        let f = s.feature(name).unwrap();
        assert_eq!(f.count(), 569);
        for (q, want) in qs.as_object().unwrap() {
            let q: f64 = q.parse().unwrap();
            assert_relative(f.quantile(q).unwrap(), want.as_f64().unwrap(), 0.02, name);
        }
    }
}

#[test]
fn encoded_bytes_round_trip_and_broken_bytes_are_errors() {
    let rows = workload();
    let s = log_rows(&rows[..2000]);
    let bytes = s.encode();
    let back = WindowSummary::decode(&bytes).unwrap();
    assert_eq!(back.encode(), bytes);
    // Every truncation and a sweep of single-byte corruptions: errors or valid summaries,
    // never a panic.
    for cut in (0..bytes.len()).step_by(7) {
        assert!(WindowSummary::decode(&bytes[..cut]).is_err());
    }
    let mut broken = bytes.clone();
    for i in (0..bytes.len()).step_by(3) {
        for v in [0x00, 0xff, 0xc1, 0x7f] {
            let old = broken[i];
            broken[i] = v;
            let _ = WindowSummary::decode(&broken);
            broken[i] = old;
        }
    }
    assert_eq!(
        WindowSummary::decode(b"not msgpack").unwrap_err().kind(),
        &modelwatch::SummaryErrorKind::Malformed
    );
}

#[test]
fn batches_fold_exactly_like_single_calls() {
    let rows = workload();
    let single = log_rows(&rows[..20_000]);
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("workload");
    let pairs: Vec<_> = rows[..20_000].iter().map(Row::pairs).collect();
    let predictions: Vec<f64> = rows[..20_000].iter().map(|r| r.prediction).collect();
    for (p, y) in pairs.chunks(777).zip(predictions.chunks(777)) {
        sess.log_prediction_batch(p, y);
    }
    agent.flush(FLUSH).unwrap();
    let batched = sink.merged();
    assert_eq!(batched.predictions(), single.predictions());
    for (name, a) in single.features().chain(single.outputs()) {
        let b = batched
            .feature(name)
            .or_else(|| batched.output(name))
            .unwrap();
        assert_eq!(
            (a.count(), a.missing(), a.numbers(), a.strings()),
            (b.count(), b.missing(), b.numbers(), b.strings())
        );
        assert_eq!(a.distinct(), b.distinct(), "{name}");
        assert_eq!(a.category_profile(), b.category_profile());
        for q in [0.0, 0.3, 0.5, 0.97, 1.0] {
            assert_eq!(a.quantile(q), b.quantile(q), "{name}");
        }
        // Batches take the per-row path: the same moments, to the bit.
        assert_eq!((a.mean(), a.variance()), (b.mean(), b.variance()), "{name}");
    }
}

mod merge_property {
    use modelwatch::{SummaryBuilder, Value, WindowSummary};
    use proptest::prelude::*;

    /// One logged record: a number (or missing), a category, a flag, and a labelled class.
    #[derive(Clone, Debug)]
    struct Rec {
        x: Option<f64>,
        cat: u8,
        flag: bool,
        label: u8,
        predicted: u8,
    }

    fn rec() -> impl Strategy<Value = Rec> {
        (
            prop_oneof![
                Just(None),
                (-1e6f64..1e6).prop_map(Some),
                (-3.0f64..3.0).prop_map(|e| Some(10f64.powf(e)))
            ],
            0u8..40,
            any::<bool>(),
            0u8..4,
            0u8..4,
        )
            .prop_map(|(x, cat, flag, label, predicted)| Rec {
                x,
                cat,
                flag,
                label,
                predicted,
            })
    }

    fn build(recs: &[Rec]) -> WindowSummary {
        // Streams of any length: k-anonymity off, the property is about merging.
        let mut b = SummaryBuilder::new("prop", 0, 60_000, [7; 16]).min_values_per_window(1);
        for r in recs {
            let cat = format!("c{}", r.cat);
            b.log_prediction(
                [
                    ("x", Value::from(r.x)),
                    ("cat", Value::from(cat.as_str())),
                    ("flag", Value::from(r.flag)),
                ],
                r.x.unwrap_or(0.0),
            );
            b.log_ground_truth(
                i64::from(r.label),
                i64::from(r.predicted),
                [if r.flag { "a" } else { "b" }],
            );
        }
        b.build()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Merging the summaries of two disjoint streams equals the summary of their union:
        /// exactly for counts, histograms, HyperLogLog registers and confusion matrices;
        /// to rounding for moments.
        #[test]
        fn merged_summaries_of_disjoint_streams_equal_the_union(recs in prop::collection::vec(rec(), 0..300), cut in 0usize..300) {
            let cut = cut.min(recs.len());
            let whole = build(&recs);
            let mut merged = build(&recs[..cut]);
            merged.merge(&build(&recs[cut..])).unwrap();
            prop_assert_eq!(merged.predictions(), whole.predictions());
            for (name, w) in whole.features().chain(whole.outputs()) {
                let m = merged.feature(name).or_else(|| merged.output(name)).unwrap();
                prop_assert_eq!((m.count(), m.missing(), m.strings(), m.trues(), m.negatives(), m.zeros()),
                    (w.count(), w.missing(), w.strings(), w.trues(), w.negatives(), w.zeros()));
                prop_assert_eq!(m.distinct(), w.distinct());
                prop_assert_eq!(m.category_profile(), w.category_profile());
                for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
                    prop_assert_eq!(m.quantile(q), w.quantile(q));
                }
                if let (Some(a), Some(b)) = (m.mean(), w.mean()) {
                    prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0));
                    let (va, vb) = (m.variance().unwrap(), w.variance().unwrap());
                    prop_assert!((va - vb).abs() <= 1e-9 * vb.abs().max(1.0), "{} vs {}", va, vb);
                }
            }
            for seg in ["a", "b"] {
                let (m, w) = (merged.ground_truth(seg), whole.ground_truth(seg));
                prop_assert_eq!(m.map(|g| g.count()), w.map(|g| g.count()));
                if let (Some(m), Some(w)) = (m, w) {
                    for (l, p) in (0..4).flat_map(|l| (0..4).map(move |p| (l, p))) {
                        prop_assert_eq!(m.confusion(l, p), w.confusion(l, p));
                    }
                    prop_assert_eq!(m.accuracy(), w.accuracy());
                }
            }
        }
    }
}
