//! Ground truth against independent oracles: scikit-learn's metrics on the breast-cancer
//! data (logged with the prediction, and keyed with feedback in shuffled order), and
//! multiclass, regression and calibration cases computed here from exact sums, merged
//! across two agents.

mod common;

use common::{breast_cancer, breast_cancer_metrics, memory_agent, memory_agent_k1, MemorySink};
use modelwatch::{GroundTruthSummary, WindowSummary};
use std::time::Duration;

const FLUSH: Duration = Duration::from_secs(30);

fn assert_close(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: None"));
    assert!((got - want).abs() <= 1e-9, "{what}: {got} vs {want}");
}

fn check_against_sklearn(s: &WindowSummary) {
    let oracle = breast_cancer_metrics();
    let check = |gt: &GroundTruthSummary, o: &serde_json::Value| {
        assert_eq!(gt.count(), o["count"].as_u64().unwrap());
        assert_eq!(gt.confusion(1, 1), o["tp"].as_u64().unwrap());
        assert_eq!(gt.confusion(0, 1), o["fp"].as_u64().unwrap());
        assert_eq!(gt.confusion(0, 0), o["tn"].as_u64().unwrap());
        assert_eq!(gt.confusion(1, 0), o["fn"].as_u64().unwrap());
        for (got, key) in [
            (gt.accuracy(), "accuracy"),
            (gt.precision(1), "precision"),
            (gt.recall(1), "recall"),
            (gt.f1(1), "f1"),
        ] {
            assert_close(got, o[key].as_f64().unwrap(), key);
        }
    };
    check(s.ground_truth_overall().unwrap(), &oracle["all"]);
    for seg in ["large", "small"] {
        check(s.ground_truth(seg).unwrap(), &oracle["segments"][seg]);
    }
}

/// A deterministic shuffle (Fisher-Yates with xorshift), so no dependency is needed.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[test]
fn keyed_feedback_in_shuffled_order_matches_scikit_learn() {
    let rows = breast_cancer();
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("breast_cancer");
    for (i, r) in rows.iter().enumerate() {
        sess.log_prediction_keyed(&format!("patient-{i}"), &r.features, r.prediction, ());
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    shuffle(&mut order, 0x5eed);
    for &i in &order {
        let r = &rows[i];
        sess.log_feedback(&format!("patient-{i}"), r.label, [r.segment.as_str()]);
    }
    // Noise: unknown keys and repeated feedback are counted, never folded.
    sess.log_feedback("patient-unknown", 1, ["large"]);
    sess.log_feedback("patient-3", 1, ["large"]);
    agent.flush(FLUSH).unwrap();
    let s = sink.merged();
    assert_eq!(s.predictions(), 569);
    check_against_sklearn(&s);
    let fb = s.feedback();
    assert_eq!(
        (
            fb.matched,
            fb.unknown_key,
            fb.duplicate,
            fb.expired,
            fb.evicted
        ),
        (569, 1, 1, 0, 0)
    );
}

#[test]
fn probabilities_give_the_argmax_class_and_a_calibration_error_computed_independently() {
    let rows = breast_cancer();
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("breast_cancer");
    for r in &rows {
        // A bool label with the probability of `true`...
        sess.log_ground_truth(r.label == 1, r.proba, ["binary"]);
        // ...and a class label with a probability vector (argmax = predicted class).
        sess.log_ground_truth(r.label, [1.0 - r.proba, r.proba], ["vector"]);
    }
    agent.flush(FLUSH).unwrap();
    let s = sink.merged();
    // The argmax of [1-p, p] is scikit-learn's prediction: same metrics as the oracle.
    let vector = s.ground_truth("vector").unwrap();
    let oracle = breast_cancer_metrics();
    assert_close(
        vector.accuracy(),
        oracle["all"]["accuracy"].as_f64().unwrap(),
        "accuracy",
    );
    assert_close(vector.f1(1), oracle["all"]["f1"].as_f64().unwrap(), "f1");
    let binary = s.ground_truth("binary").unwrap();
    assert_close(
        binary.precision(true),
        oracle["all"]["precision"].as_f64().unwrap(),
        "precision",
    );

    // Expected calibration error over 10 equal-width bins of p, computed here.
    let mut bins = [(0u64, 0.0f64, 0u64); 10];
    let mut top = [(0u64, 0.0f64, 0u64); 10];
    for r in &rows {
        let b = &mut bins[((r.proba * 10.0) as usize).min(9)];
        *b = (b.0 + 1, b.1 + r.proba, b.2 + u64::from(r.label == 1));
        let conf = r.proba.max(1.0 - r.proba);
        let predicted = i64::from(r.proba > 1.0 - r.proba);
        let t = &mut top[((conf * 10.0) as usize).min(9)];
        *t = (t.0 + 1, t.1 + conf, t.2 + u64::from(predicted == r.label));
    }
    let ece = |bins: &[(u64, f64, u64)]| {
        bins.iter().map(|b| (b.2 as f64 - b.1).abs()).sum::<f64>() / rows.len() as f64
    };
    assert_close(
        binary.expected_calibration_error(),
        ece(&bins),
        "binary ece",
    );
    assert_close(
        vector.expected_calibration_error(),
        ece(&top),
        "top-label ece",
    );
    let table = binary.calibration();
    assert_eq!(table.len(), 10);
    assert_eq!(table.iter().map(|b| b.count).sum::<u64>(), 569);
    assert_eq!(table[9].count, bins[9].0);
}

fn two_agents_merged(log: impl Fn(&modelwatch::Session, usize)) -> WindowSummary {
    // A few pairs per agent: k-anonymity off, the tests are about merged metrics.
    let halves: Vec<(modelwatch::Agent, MemorySink)> =
        (0..2).map(|_| memory_agent_k1(3600)).collect();
    for (part, (agent, _)) in halves.iter().enumerate() {
        log(&agent.session("m"), part);
        agent.flush(FLUSH).unwrap();
    }
    let mut merged = halves[0].1.merged();
    merged.merge(&halves[1].1.merged()).unwrap();
    merged
}

#[test]
fn multiclass_metrics_merged_across_two_agents_match_exact_counts() {
    // label, prediction; agent 0 logs the first 7, agent 1 the rest.
    let pairs = [
        ("cat", "cat"),
        ("cat", "dog"),
        ("dog", "dog"),
        ("bird", "cat"),
        ("dog", "dog"),
        ("bird", "bird"),
        ("cat", "cat"),
        ("dog", "bird"),
        ("bird", "bird"),
        ("cat", "cat"),
        ("fish", "cat"),
        ("dog", "dog"),
    ];
    let s = two_agents_merged(|sess, part| {
        let (lo, hi) = if part == 0 { (0, 7) } else { (7, pairs.len()) };
        for (l, p) in &pairs[lo..hi] {
            sess.log_ground_truth(*l, *p, ["all"]);
        }
    });
    let gt = s.ground_truth("all").unwrap();
    assert_eq!(gt.count(), 12);
    // Per class (tp, fp, fn), counted by hand from the pairs above:
    // cat (3, 2, 1), dog (3, 1, 1), bird (2, 1, 1), fish (0, 0, 1).
    let expect = [
        ("cat", 3.0, 2.0, 1.0),
        ("dog", 3.0, 1.0, 1.0),
        ("bird", 2.0, 1.0, 1.0),
    ];
    for (c, tp, fp, fn_) in expect {
        assert_close(gt.precision(c), tp / (tp + fp), c);
        assert_close(gt.recall(c), tp / (tp + fn_), c);
        assert_close(gt.f1(c), 2.0 * tp / (2.0 * tp + fp + fn_), c);
    }
    assert_eq!(gt.precision("fish"), None, "never predicted: undefined");
    assert_eq!(gt.recall("fish"), Some(0.0));
    assert_close(gt.accuracy(), 8.0 / 12.0, "accuracy");
    // scikit-learn's macro average over the 4 classes, zero_division=0.
    let f1s = [6.0 / 9.0, 6.0 / 8.0, 4.0 / 6.0, 0.0];
    assert_close(gt.macro_f1(), f1s.iter().sum::<f64>() / 4.0, "macro f1");
    assert_close(
        gt.macro_precision(),
        (3.0 / 5.0 + 3.0 / 4.0 + 2.0 / 3.0 + 0.0) / 4.0,
        "macro precision",
    );
    assert_close(
        gt.macro_recall(),
        (3.0 / 4.0 + 3.0 / 4.0 + 2.0 / 3.0 + 0.0) / 4.0,
        "macro recall",
    );
    assert_close(gt.micro_f1(), 8.0 / 12.0, "micro f1");
}

#[test]
fn regression_metrics_merged_across_two_agents_match_exact_sums() {
    let ys: Vec<f64> = (0..1000)
        .map(|i| (f64::from(i) * 0.37).sin() * 50.0 + 100.0)
        .collect();
    let ps: Vec<f64> = ys
        .iter()
        .enumerate()
        .map(|(i, y)| y + ((i % 7) as f64 - 3.0) * 1.5)
        .collect();
    let s = two_agents_merged(|sess, part| {
        for i in (0..1000).filter(|i| i % 2 == part) {
            sess.log_ground_truth(ys[i], ps[i], ["seg"]);
        }
    });
    let gt = s.ground_truth("seg").unwrap();
    let n = 1000.0;
    let sse: f64 = ys.iter().zip(&ps).map(|(y, p)| (p - y) * (p - y)).sum();
    let sae: f64 = ys.iter().zip(&ps).map(|(y, p)| (p - y).abs()).sum();
    let mean = ys.iter().sum::<f64>() / n;
    let sst: f64 = ys.iter().map(|y| (y - mean) * (y - mean)).sum();
    assert_eq!(gt.count(), 1000);
    assert_close(gt.mse(), sse / n, "mse");
    assert_close(gt.rmse(), (sse / n).sqrt(), "rmse");
    assert_close(gt.mae(), sae / n, "mae");
    assert_close(gt.r2(), 1.0 - sse / sst, "r2");
    assert_eq!(gt.accuracy(), None);
}

#[test]
fn keyed_predictions_expire_and_are_evicted_by_capacity() {
    let sink = MemorySink::default();
    let agent = modelwatch::Agent::start(
        modelwatch::Config::new("k")
            .no_data_dir()
            .sink(sink.clone())
            .join_capacity(100),
    )
    .unwrap();
    let sess = agent.session("bounded");
    for i in 0..1000 {
        sess.log_prediction_keyed(&format!("k{i}"), [("x", i)], i % 2 == 0, ());
    }
    for i in 0..1000 {
        sess.log_feedback(&format!("k{i}"), true, ["s"]);
    }
    agent.flush(FLUSH).unwrap();
    let s = sink.merged();
    let fb = s.feedback();
    assert_eq!((fb.evicted, fb.matched, fb.unknown_key), (900, 100, 900));
    assert_eq!(s.ground_truth("s").unwrap().count(), 100);
    assert_eq!(s.predictions(), 1000);
}

#[test]
fn the_worked_example_in_the_docs_prints_what_they_show() {
    // As the example says: two pairs are under the default k, so it sets k = 1.
    let (agent, sink) = memory_agent_k1(3600);
    let sess = agent.session("fraud");
    sess.log_prediction_keyed("t1", [("amount", 120.0)], true, ["web"]);
    sess.log_prediction_keyed("t2", [("amount", 15.0)], false, ["web"]);
    sess.log_prediction_keyed("t3", [("amount", 990.0)], true, ["web"]);
    sess.log_feedback("t1", true, ());
    sess.log_feedback("t3", false, ());
    sess.log_feedback("t9", true, ());
    agent.flush(FLUSH).unwrap();
    let table = sink.merged().to_string();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ground-truth.md"))
        .unwrap();
    for line in table
        .lines()
        .filter(|l| l.contains("ground truth") || l.contains("feedback:"))
    {
        assert!(
            doc.contains(line),
            "docs/ground-truth.md lacks the line:\n{line}"
        );
    }
}

/// Labels across replicas without a store: predictions logged in one agent return tokens,
/// a second agent with the same hash key (another process, a restart) folds the labels by
/// token in shuffled order; its ground truth equals scikit-learn's. Forged, altered and
/// foreign tokens are counted and never folded.
#[test]
fn tokens_carry_labels_to_another_agent_and_match_scikit_learn() {
    let rows = breast_cancer();
    let (predictor, _) = memory_agent(3600);
    let (labeller, sink) = memory_agent(3600);
    let tokens: Vec<String> = {
        let sess = predictor.session("breast_cancer");
        rows.iter()
            .map(|r| {
                sess.log_prediction_with_token(&r.features, r.prediction, [r.segment.as_str()])
                    .to_string()
            })
            .collect()
    };
    assert!(
        tokens.iter().all(|t| (20..120).contains(&t.len())),
        "{}",
        tokens[0]
    );
    let mut order: Vec<usize> = (0..rows.len()).collect();
    shuffle(&mut order, 0x70ce);
    let sess = labeller.session("breast_cancer");
    for &i in &order {
        sess.log_token_feedback(&tokens[i], rows[i].label);
    }
    // Forged: garbage, one character changed, a token of another hash key.
    sess.log_token_feedback("not-a-token", 1);
    let mut altered = tokens[7].clone().into_bytes();
    altered[12] = if altered[12] == b'A' { b'B' } else { b'A' };
    sess.log_token_feedback(std::str::from_utf8(&altered).unwrap(), 1);
    let (stranger, _) = common::memory_agent_with(3600, |c| c.hash_key(*b"another-hash-key"));
    let foreign =
        stranger
            .session("breast_cancer")
            .log_prediction_with_token([("x", 1.0)], 1, ["large"]);
    sess.log_token_feedback(foreign.as_str(), 1);
    labeller.flush(FLUSH).unwrap();
    let s = sink.merged();
    assert_eq!(s.predictions(), 0, "the labeller logged no prediction");
    check_against_sklearn(&s);
    let fb = s.feedback();
    assert_eq!(
        (fb.token_matched, fb.token_forged, fb.token_expired),
        (569, 3, 0)
    );
}

/// A token older than the time-to-live is counted as expired, not folded.
#[test]
fn an_expired_token_is_counted_not_folded() {
    let (agent, sink) = common::memory_agent_with(3600, |c| c.join_ttl(Duration::from_millis(50)));
    let sess = agent.session("m");
    let token = sess.log_prediction_with_token([("x", 1.0)], true, ());
    std::thread::sleep(Duration::from_millis(120));
    sess.log_token_feedback(token.as_str(), true);
    agent.flush(FLUSH).unwrap();
    let s = sink.merged();
    assert_eq!(s.feedback().token_expired, 1);
    assert!(s.ground_truth_overall().is_none_or(|g| g.count() == 0));
}

/// The longest single `log_prediction_keyed` call while the join store fills to a million
/// entries: the pause a request thread would see when the store's hash map grows. A
/// measurement, printed (timing is never asserted in tests): run it with
/// `cargo test --release --test ground_truth join_store_pauses -- --ignored --nocapture`.
#[test]
#[ignore]
fn join_store_pauses() {
    for capacity in [100_000usize, 1_000_000] {
        let (agent, _sink) = common::memory_agent_with(3600, |c| c.join_capacity(capacity));
        let sess = agent.session("pauses");
        let mut key = String::new();
        let mut times = Vec::with_capacity(capacity);
        for i in 0..capacity {
            use std::fmt::Write;
            key.clear();
            let _ = write!(key, "record-{i}");
            let t0 = std::time::Instant::now();
            sess.log_prediction_keyed(&key, [("x", 1.0)], true, ["web"]);
            times.push(t0.elapsed());
        }
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "capacity {capacity}: median {:?}, p99.99 {:?}, longest {:?}",
            at(0.5),
            at(0.9999),
            times[times.len() - 1]
        );
    }
}
