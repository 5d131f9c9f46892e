//! The agent's lifecycle on a real clock and a real folder: windows sealed when their end
//! passes, on flush and at shutdown; atomic files; sessions across threads; configuration
//! errors; a failing sink counted.

mod common;

use common::{memory_agent, memory_agent_k1, temp_dir, MemorySink};
use modelwatch::{Agent, Config, ErrorKind, Record, Sink, Value, WindowSummary};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn wait_for(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "condition not reached in {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn folder_sink_writes_one_decodable_file_per_window_and_no_temporary_files() {
    let dir = temp_dir("folder");
    // One value per column: k-anonymity off, the test is about the folder sink.
    let agent = Agent::start(Config::new("k").data_dir(&dir).min_values_per_window(1)).unwrap();
    let sess = agent.session("fraud/detection prod");
    sess.log_metadata("model_version", "1.0");
    sess.log_prediction(
        [("feat1", Value::from(1.2)), ("feat2", Value::from("XX"))],
        true,
    );
    sess.log_exception("wrong format", [("feature", "F1")]);
    agent.flush(WAIT).unwrap();
    // The summary and the folder's hash key (tests/hash_key.rs), nothing else.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with(modelwatch::HASH_KEY_FILE))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        // Cleaned to a file name, with a hash of the real name: never another's name.
        name.starts_with("fraud_detection_prod~") && name.ends_with(".msgpack"),
        "{name}"
    );
    let s = WindowSummary::decode(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(s.deployment(), "fraud/detection prod");
    assert_eq!(s.predictions(), 1);
    assert!(s.is_partial(), "a flush mid-window seals a partial window");
    assert_eq!(
        s.metadata().get("model_version").map(String::as_str),
        Some("1.0")
    );
    assert_eq!(s.exceptions()[0].message(), "wrong format");
    assert_eq!(
        s.exceptions()[0].tags(),
        [("feature".to_owned(), "F1".to_owned())]
    );
    assert_eq!(s.output(modelwatch::PREDICTION).unwrap().trues(), 1);
    assert_eq!(
        s.window_start() % 60_000,
        0,
        "windows align to UTC multiples of their length"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn windows_are_sealed_when_their_end_passes_without_flush() {
    let (agent, sink) = memory_agent(1);
    let sess = agent.session("rolling");
    // Log across at least two one-second windows.
    let start = Instant::now();
    let mut logged = 0;
    while start.elapsed() < Duration::from_millis(2_300) {
        sess.log_prediction([("x", logged as f64)], 1);
        logged += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    // The worker seals each window soon after its end, with no flush.
    wait_for(|| {
        sink.summaries()
            .iter()
            .map(|s| s.predictions())
            .sum::<u64>()
            == logged
    });
    let all = sink.summaries();
    assert!(all.len() >= 2, "{} summaries", all.len());
    let mut starts: Vec<i64> = all.iter().map(|s| s.window_start()).collect();
    starts.dedup();
    assert_eq!(starts.len(), all.len(), "one summary per window");
    assert!(all
        .iter()
        .all(|s| !s.is_partial() && s.window_length() == 1000 && s.window_start() % 1000 == 0));
    let seqs: Vec<u64> = all.iter().map(|s| s.sequence()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(all.iter().all(|s| s.instance() == all[0].instance()));
}

#[test]
fn dropping_the_agent_delivers_the_current_window_marked_partial() {
    let sink = MemorySink::default();
    {
        let agent = Agent::start(Config::new("k").no_data_dir().sink(sink.clone())).unwrap();
        let sess = agent.session("exit");
        for i in 0..1234 {
            sess.log_prediction([("i", i)], i % 2 == 0);
        }
        // The session outlives nothing: the agent drops here.
    }
    let all = sink.summaries();
    assert_eq!(all.iter().map(|s| s.predictions()).sum::<u64>(), 1234);
    assert!(all.iter().all(|s| s.is_partial()));
}

#[test]
fn flush_and_shutdown_report_their_outcome() {
    // k = 1: a shutdown with values held back sends one more summary (tests/anonymity.rs).
    let (agent, sink) = memory_agent_k1(3600);
    agent.session("s").log_prediction([("a", 1)], 1);
    agent.flush(WAIT).unwrap();
    agent.flush(WAIT).unwrap(); // nothing pending: still fine, nothing sent twice
    assert_eq!(sink.summaries().len(), 1);
    agent.shutdown(WAIT).unwrap();
    assert_eq!(agent.flush(WAIT).unwrap_err().kind(), ErrorKind::NotRunning);
    assert_eq!(agent.stats().delivered, 1);
}

struct Failing;
impl Sink for Failing {
    fn deliver(&mut self, _: &WindowSummary, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
}

struct Panicking;
impl Sink for Panicking {
    fn deliver(&mut self, _: &WindowSummary, _: &[u8]) -> std::io::Result<()> {
        panic!("a bug in a custom sink");
    }
}

#[test]
fn a_panicking_sink_is_a_counted_failure_and_the_agent_keeps_working() {
    let ok = MemorySink::default();
    let agent = Agent::start(
        Config::new("k")
            .no_data_dir()
            .sink(Panicking)
            .sink(ok.clone()),
    )
    .unwrap();
    for _ in 0..2 {
        agent.session("s").log_prediction([("a", 1)], 1);
        assert_eq!(agent.flush(WAIT).unwrap_err().kind(), ErrorKind::Delivery);
    }
    let stats = agent.stats();
    // Flush 1 offers its summary once; flush 2 offers the waiting one again, then its own.
    assert_eq!(stats.failed, 3);
    assert_eq!(
        stats.local_backlog_len, 2,
        "both wait for the panicking sink"
    );
    assert_eq!(
        ok.summaries().len(),
        2,
        "the worker survived and the other sink got both"
    );
}

#[test]
fn a_failing_sink_is_counted_and_reported_by_flush() {
    let ok = MemorySink::default();
    let agent = Agent::start(
        Config::new("k")
            .no_data_dir()
            .sink(Failing)
            .sink(ok.clone()),
    )
    .unwrap();
    agent.session("s").log_prediction([("a", 1)], 1);
    let e = agent.flush(WAIT).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Delivery);
    assert_eq!(e.undelivered().unwrap().waiting_local, 1, "{e}");
    let stats = agent.stats();
    assert_eq!((stats.delivered, stats.failed), (1, 1));
    assert_eq!(ok.summaries().len(), 1, "the other sink still got it");
}

#[test]
fn configuration_errors_are_clear() {
    let e = Agent::start(Config::new("k").window(Duration::from_millis(10))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("window"), "{e}");
    let file = temp_dir("not-a-dir").join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = Agent::start(Config::new("k").data_dir(file.join("sub"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(
        Agent::start(Config::new("k").no_data_dir())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidConfig
    );
}

#[test]
fn threads_share_a_session_and_every_record_counts() {
    let (agent, sink) = memory_agent(3600);
    let sess = agent.session("threads");
    std::thread::scope(|s| {
        for t in 0..4 {
            let sess = sess.clone();
            s.spawn(move || {
                for i in 0..25_000 {
                    sess.log_prediction([("t", Value::from(t)), ("i", Value::from(i))], 0.5);
                }
            });
        }
    });
    agent.flush(WAIT).unwrap();
    let m = sink.merged();
    assert_eq!(m.predictions(), 100_000);
    assert_eq!(m.feature("t").unwrap().count(), 100_000);
    assert_eq!(m.feature("t").unwrap().distinct(), 4);
}

#[derive(serde::Serialize)]
struct Address {
    country: &'static str,
}
#[derive(serde::Serialize)]
struct Applicant {
    age: u32,
    income: Option<f64>,
    address: Address,
}

#[test]
fn every_input_form_is_accepted_and_bad_values_are_counted() {
    // Fewer than 10 values per column: k-anonymity off, the test is about input forms.
    let (agent, sink) = memory_agent_k1(3600);
    let sess = agent.session("forms");
    sess.log_prediction(HashMap::from([("age", 30.0)]), 1_u8);
    sess.log_prediction(BTreeMap::from([("age".to_string(), Some(31.0))]), "fraud");
    sess.log_prediction(vec![("age", Value::Int(32))], vec![0.2, 0.8]);
    sess.log_prediction(&[("age", f64::NAN)][..], f64::INFINITY);
    sess.log_prediction(
        Record(&Applicant {
            age: 33,
            income: None,
            address: Address { country: "NL" },
        }),
        None::<f64>,
    );
    sess.log_prediction([("age", f64::NEG_INFINITY)], false);
    sess.log_prediction_batch(
        &[[("age", 1.0)], [("age", 2.0)], [("age", 3.0)]],
        &[true, false],
    );
    {
        let _t = sess.time_inference();
    }
    sess.record_latency(Duration::from_millis(250));
    agent.flush(WAIT).unwrap();
    let s = sink.merged();
    assert_eq!(s.predictions(), 8);
    let age = s.feature("age").unwrap();
    assert_eq!(
        age.count(),
        8,
        "the third batch row has no prediction: not logged"
    );
    assert_eq!(age.missing(), 1);
    assert_eq!(age.negative_infinities(), 1);
    assert_eq!((age.ints(), age.floats()), (2, 5));
    assert_eq!(s.feature("address.country").unwrap().strings(), 1);
    // One record had `income: None`, seven had no `income`: all eight are missing.
    let income = s.feature("income").unwrap();
    assert_eq!((income.count(), income.missing()), (8, 8));
    let out = s.output(modelwatch::PREDICTION).unwrap();
    assert_eq!(out.positive_infinities(), 1);
    let class_1 = s.output("1").unwrap();
    assert_eq!(
        (class_1.count(), class_1.floats(), class_1.missing()),
        (8, 1, 7),
        "probability vectors are outputs 0, 1, ...; the other records lack them"
    );
    assert_eq!(s.dropped().batch_unpaired, 1);
    let latency = s.latency().unwrap();
    assert_eq!(latency.count(), 2, "one timed, one recorded");
    // The recorded 250 ms is the largest, at the histogram's precision.
    let max = latency.max().unwrap();
    assert!(
        (max - 0.25).abs() <= 0.25 * modelwatch::RELATIVE_ERROR,
        "{max}"
    );
}

#[test]
fn ground_truth_kinds_follow_the_types() {
    // Fewer than 10 pairs per segment: k-anonymity off, the test is about kinds.
    let (agent, sink) = memory_agent_k1(3600);
    let sess = agent.session("gt");
    sess.log_ground_truth(true, true, ["a"]);
    sess.log_ground_truth(true, false, ["a", "b"]);
    sess.log_ground_truth(false, false, ()); // no segments, no annotation
    sess.log_ground_truth(1.5, true, ["a"]); // mismatch: counted
    sess.log_ground_truth(2, [0.1, 0.2, 0.7], ["probs"]); // argmax class 2
    sess.log_ground_truth(3.0, 2.5, ["reg"]);
    sess.log_ground_truth(5.0, 5.5, ["reg"]);
    agent.flush(WAIT).unwrap();
    let s = sink.merged();
    let a = s.ground_truth("a").unwrap();
    assert_eq!((a.count(), a.mismatched()), (2, 1));
    assert_eq!(a.accuracy(), Some(0.5));
    assert_eq!(a.precision(true), Some(1.0));
    assert_eq!(a.recall(true), Some(0.5));
    assert_eq!(s.ground_truth("b").unwrap().recall(true), Some(0.0));
    assert_eq!(s.ground_truth("probs").unwrap().accuracy(), Some(1.0));
    let r = s.ground_truth("reg").unwrap();
    assert_eq!(
        (r.mse(), r.mae(), r.r2()),
        (Some(0.25), Some(0.5), Some(1.0 - 0.5 / 2.0))
    );
    // Overall mixes kinds: the first kind wins, the rest are counted as mismatched.
    let all = s.ground_truth_overall().unwrap();
    assert_eq!(all.count() + all.mismatched(), 7);
}

#[test]
fn the_global_agent_configures_once_and_the_guard_flushes_on_drop() {
    let before = modelwatch::session("early");
    before.log_prediction([("x", 1)], 1); // inert, no panic
    assert_eq!(before.deployment(), None);
    let sink = MemorySink::default();
    let guard = modelwatch::configure(Config::new("k").no_data_dir().sink(sink.clone())).unwrap();
    let again = modelwatch::configure(Config::new("k").no_data_dir().sink(MemorySink::default()));
    assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyConfigured);
    modelwatch::session("global").log_prediction([("x", 1)], 1);
    modelwatch::session("global").log_prediction([("x", 2)], 1);
    drop(guard);
    assert_eq!(sink.merged().predictions(), 2);
    // After the guard, configure works again.
    let guard = modelwatch::configure(Config::new("k").no_data_dir().sink(sink.clone())).unwrap();
    guard.shutdown(WAIT).unwrap();
}

#[test]
fn the_feature_cap_counts_names_per_window_however_names_churn() {
    // Each flush seals a window and hands its cleared accumulator back for reuse: the
    // names of earlier windows must not count against later ones.
    let (agent, sink) = memory_agent(7 * 86_400);
    let sess = agent.session("churn");
    for window in 0..10 {
        let row: Vec<(String, f64)> = (0..301)
            .map(|i| (format!("w{window}-f{i}"), f64::from(i)))
            .collect();
        sess.log_prediction(row, 0.5);
        agent.flush(WAIT).unwrap();
        let s = sink.summaries().pop().unwrap();
        assert_eq!(s.features().count(), 301, "window {window}");
        assert_eq!(s.dropped().features_over_cap, 0, "window {window}");
        assert!(s.feature(&format!("w{window}-f300")).is_some());
    }
    assert_eq!(sink.summaries().len(), 10);
}

#[test]
fn sequence_numbers_count_per_deployment_and_file_names_never_collide() {
    let dir = temp_dir("sequences");
    let sink = MemorySink::default();
    let agent = Agent::start(Config::new("k").data_dir(&dir).sink(sink.clone())).unwrap();
    // "a_b" and "a/b" clean to the same file-name text; "busy" logs far more often.
    let (quiet, busy, twin) = (
        agent.session("a_b"),
        agent.session("busy"),
        agent.session("a/b"),
    );
    for round in 0..6 {
        busy.log_prediction([("x", 1)], 1);
        if round % 2 == 0 {
            quiet.log_prediction([("x", 1)], 1);
            twin.log_prediction([("x", 1)], 1);
        }
        agent.flush(WAIT).unwrap();
    }
    let mut by_deployment: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for s in sink.summaries() {
        by_deployment
            .entry(s.deployment().to_owned())
            .or_default()
            .push((s.instance(), s.sequence()));
    }
    let instance = by_deployment["busy"][0].0;
    let expect = |n: u64| (1..=n).map(|q| (instance, q)).collect::<Vec<_>>();
    // Each deployment counts 1, 2, 3, ...: nothing of the others' activity shows.
    assert_eq!(by_deployment["busy"], expect(6));
    assert_eq!(by_deployment["a_b"], expect(3));
    assert_eq!(by_deployment["a/b"], expect(3));
    // Same (instance, sequence) for "a_b" and "a/b", yet every summary has its own file.
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "msgpack"))
        .count();
    assert_eq!(files, 12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sessions_past_max_sessions_are_inert_and_counted() {
    let sink = MemorySink::default();
    let agent = Agent::start(
        Config::new("k")
            .no_data_dir()
            .sink(sink.clone())
            .max_sessions(2),
    )
    .unwrap();
    let (a, b) = (agent.session("a"), agent.session("b"));
    let over = agent.session("c");
    assert_eq!(over.deployment(), None);
    over.log_prediction([("x", 1)], 1);
    // Known deployments still get their session past the cap.
    agent.session("a").log_prediction([("x", 1)], 1);
    b.log_prediction([("x", 1)], 1);
    assert_eq!(agent.session("d").deployment(), None);
    agent.flush(WAIT).unwrap();
    let mut deployments: Vec<String> = sink
        .summaries()
        .iter()
        .map(|s| s.deployment().to_owned())
        .collect();
    deployments.sort();
    assert_eq!(deployments, ["a", "b"]);
    let stats = agent.stats();
    assert_eq!((stats.sessions, stats.sessions_over_cap), (2, 2));
    drop(a);
    let e = Agent::start(Config::new("k").no_data_dir().sink(sink).max_sessions(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
}

/// Counters, named values and named timers (the book's three metric types): exact totals
/// across logging threads and across a merge of two summaries, values as histograms,
/// names past `max_metrics` counted as dropped.
#[test]
fn counters_values_and_timers_travel_in_the_summary_and_merge() {
    let (agent, sink) = common::memory_agent_with(3600, |c| {
        let mut limits = modelwatch::Limits::default();
        limits.max_metrics = 3;
        c.limits(limits)
    });
    let sess = agent.session("m");
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let sess = sess.clone();
            scope.spawn(move || {
                for i in 0..250u64 {
                    sess.count("cache_hits", 2);
                    sess.record_value("queue_length", (t * 250 + i) as f64);
                }
            });
        }
    });
    {
        let _t = sess.time("lookup_seconds");
    }
    sess.count("one_too_many", 1);
    agent.flush(WAIT).unwrap();
    let s = sink.merged();
    assert_eq!(s.counter("cache_hits"), Some(2_000));
    let q = s.value("queue_length").unwrap();
    assert_eq!(q.count(), 1_000);
    assert_eq!(q.mean(), Some(499.5));
    let median = q.quantile(0.5).unwrap();
    assert!(
        (median - 499.0).abs() <= 499.0 * modelwatch::RELATIVE_ERROR,
        "{median}"
    );
    assert_eq!(s.value("lookup_seconds").unwrap().count(), 1);
    assert_eq!(s.counter("one_too_many"), None);
    assert_eq!(s.dropped().metrics_over_cap, 1);
    // Through the wire, and merged with itself: totals double.
    let mut twice = WindowSummary::decode(&s.encode()).unwrap();
    twice.merge(&s).unwrap();
    assert_eq!(twice.counter("cache_hits"), Some(4_000));
    assert_eq!(twice.value("queue_length").unwrap().count(), 2_000);
    assert!(format!("{s}").contains("counter cache_hits: 2000"));
}
