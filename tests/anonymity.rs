//! k-anonymity through an agent and a memory sink: a column or segment with fewer than k
//! values in a window ships nothing but how many were held back, arrives merged in the
//! session's next summary, and a remainder at shutdown ships its counts only.

mod common;

use common::memory_agent;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn held_back_values_arrive_merged_in_the_next_summary() {
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("k");
    let first = [123_456.78, 99.5, -7.25, 3.0, 1e6, 42.0, 0.5, 8.0, 16.0];
    for (i, x) in first.iter().enumerate() {
        sess.log_prediction([("salary", *x)], 0.5);
        sess.log_ground_truth(true, i % 3 == 0, ["web"]);
    }
    agent.flush(WAIT).unwrap();
    let s = &sink.summaries()[0];
    let salary = s.feature("salary").unwrap();
    assert_eq!(
        (salary.withheld(), salary.count(), salary.numbers()),
        (9, 0, 0)
    );
    assert_eq!(
        (salary.mean(), salary.variance(), salary.max()),
        (None, None, None)
    );
    assert_eq!(salary.exponential_buckets(false), &[]);
    let web = s.ground_truth("web").unwrap();
    assert_eq!((web.withheld(), web.count(), web.accuracy()), (9, 0, None));
    assert_eq!(s.ground_truth_overall().unwrap().withheld(), 9);

    let second = [10.0, 20.0];
    for x in second {
        sess.log_prediction([("salary", x)], 0.5);
        sess.log_ground_truth(true, true, ["web"]);
    }
    agent.flush(WAIT).unwrap();
    let s = &sink.summaries()[1];
    let salary = s.feature("salary").unwrap();
    assert_eq!(
        (salary.count(), salary.numbers(), salary.floats()),
        (11, 11, 11)
    );
    assert_eq!((salary.carried(), salary.withheld()), (9, 0));
    let all: Vec<f64> = first.iter().chain(&second).copied().collect();
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    assert!((salary.mean().unwrap() - mean).abs() < 1e-6);
    let max = salary.max().unwrap();
    assert!((max - 1e6).abs() <= 1e6 * modelwatch::RELATIVE_ERROR);
    // 9 pairs then 2: 3 + 2 predicted true of 11, all labelled true.
    let web = s.ground_truth("web").unwrap();
    assert_eq!((web.count(), web.carried()), (11, 9));
    assert_eq!(web.accuracy(), Some(5.0 / 11.0));
    assert_eq!(s.ground_truth_overall().unwrap().count(), 11);
    // Over both summaries every value is counted once.
    let merged = sink.merged();
    assert_eq!(merged.feature("salary").unwrap().count(), 11);
    assert_eq!(merged.predictions(), 11);
    agent.shutdown(WAIT).unwrap();
    assert_eq!(sink.summaries().len(), 2, "nothing waited at shutdown");
}

#[test]
fn a_remainder_under_k_ships_its_counts_at_shutdown() {
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("k");
    for x in [31337.1337, 2.5, f64::NAN] {
        sess.log_prediction([("x", x)], 0.25);
    }
    sess.log_ground_truth(2.0, 2.5, ["reg"]);
    agent.flush(WAIT).unwrap();
    assert_eq!(sink.summaries()[0].feature("x").unwrap().withheld(), 3);
    // Nothing logged since: shutdown still sends the waiting values, as counts.
    sess.log_prediction([("y", 1.0)], 0.25);
    agent.shutdown(WAIT).unwrap();
    let all = sink.summaries();
    assert_eq!(all.len(), 2);
    let last = &all[1];
    assert!(last.is_partial());
    let x = last.feature("x").unwrap();
    assert_eq!((x.count(), x.missing(), x.floats()), (3, 1, 2));
    assert_eq!((x.carried(), x.unsketched()), (3, 3));
    assert_eq!((x.numbers(), x.mean(), x.quantile(0.5)), (0, None, None));
    let y = last.feature("y").unwrap();
    assert_eq!((y.count(), y.unsketched(), y.mean()), (1, 1, None));
    let out = last.output(modelwatch::PREDICTION).unwrap();
    assert_eq!((out.count(), out.carried(), out.unsketched()), (4, 3, 4));
    let reg = last.ground_truth("reg").unwrap();
    assert_eq!((reg.count(), reg.unsketched(), reg.mse()), (1, 1, None));
    assert_eq!(sink.merged().feature("x").unwrap().count(), 3);
}

#[test]
fn rare_exceptions_ship_without_their_tags() {
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("k");
    sess.log_exception("rare", [("user", "u-1")]);
    for _ in 0..10 {
        sess.log_exception("common", [("stage", "parse")]);
    }
    agent.flush(WAIT).unwrap();
    let s = &sink.summaries()[0];
    let by = |m: &str| s.exceptions().iter().find(|e| e.message() == m).unwrap();
    assert_eq!((by("rare").count(), by("rare").tags()), (1, &[][..]));
    assert_eq!(by("common").tags(), [("stage".into(), "parse".into())]);
    assert_eq!(s.privacy().exception_tags_dropped, 1);
}
