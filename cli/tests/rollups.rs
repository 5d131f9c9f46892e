//! Rollups and retention in the store: hourly and daily rollups report what the windows
//! they came from report, each resolution is pruned after its own retention, and `report`
//! reads the finest resolution that covers its range in a bounded number of windows.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;

use fraud_day::Rng;
use modelwatch::{FeatureSummary, SummaryBuilder, Value, WindowSummary};
use modelwatch_cli::store::{Resolution, Store};
use serde_json::Value as Json;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");
const HASH_KEY: [u8; 16] = *b"rollup-test-key!";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000;
const COUNTRIES: [&str; 5] = ["NL", "DE", "FR", "BE", "ES"];

fn modelwatch(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// One minute of a small fraud model: `rows` predictions with labels in two segments, and
/// an exception now and then.
fn window(start: i64, instance: u64, sequence: u64, rows: usize, rng: &mut Rng) -> WindowSummary {
    let mut b = SummaryBuilder::new("fraud", start, 60_000, HASH_KEY).identity(instance, sequence);
    for _ in 0..rows {
        let amount = (3.5 + 1.1 * rng.normal()).exp();
        let age = (40.0 + 12.0 * rng.normal()).round().max(18.0) as i64;
        let country = COUNTRIES[(rng.next() * 5.0) as usize];
        let age = if rng.next() < 0.05 {
            Value::Null
        } else {
            Value::from(age)
        };
        let proba = (rng.next() * 0.2 + if amount > 120.0 { 0.5 } else { 0.0 }).min(1.0);
        b.log_prediction(
            [
                ("amount", Value::from(amount)),
                ("age", age),
                ("country", Value::from(country)),
            ],
            proba,
        );
        let segment = if rng.next() < 0.7 {
            "mobile"
        } else {
            "desktop"
        };
        b.log_ground_truth(rng.next() < proba, proba >= 0.5, [segment]);
    }
    if rng.next() < 0.1 {
        b.log_exception("timeout calling the feature store", [("code", 504)]);
    }
    b.build()
}

/// A month of one-minute windows, three an hour (so 2,160 starts: more than a report reads
/// as windows), and every fifth hour a second instance sending the same minute and one more:
/// summaries of one hour from several instances and sequences. Returns the predictions.
fn fill_a_month(store: &Store) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut predictions = 0;
    for hour in 0..30 * 24 {
        let at = START + hour * HOUR;
        let mut sent = vec![
            window(at, 1, 3 * hour as u64, 12, &mut rng),
            window(at + 20 * 60_000, 1, 3 * hour as u64 + 1, 12, &mut rng),
            window(at + 40 * 60_000, 1, 3 * hour as u64 + 2, 12, &mut rng),
        ];
        if hour % 5 == 0 {
            sent.push(window(at + 20 * 60_000, 2, hour as u64, 7, &mut rng));
            sent.push(window(at + 40 * 60_000, 2, hour as u64 + 1, 5, &mut rng));
        }
        for s in &sent {
            predictions += s.predictions();
            let key = if s.instance() == 1 { "a" } else { "b" };
            store.insert(key, s, &s.encode(), 0).unwrap();
        }
    }
    predictions
}

fn report(store: &Path, extra: &[&str]) -> Json {
    let mut args = vec!["report", "--store", store.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = modelwatch(&args);
    assert!(o.status.code().is_some_and(|c| c < 2), "{o:?}");
    let all: Json = serde_json::from_slice(&o.stdout).unwrap();
    all[0].clone()
}

/// Equal, except floats that come of floating-point sums (means, variances, squared
/// errors, calibration), whose rounding depends on the order of the merges: those to 1e-9;
/// and the distinct counts of `amount` and `prediction` (see [`assert_same_sketch`]).
fn assert_same(a: &Json, b: &Json, path: &str) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}"
            );
            for (k, v) in x {
                assert_same(v, &y[k], &format!("{path}.{k}"));
            }
        }
        (Json::Array(x), Json::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_same(v, w, &format!("{path}[{i}]"));
            }
        }
        (Json::Number(x), Json::Number(y))
            if path.ends_with("amount.distinct") || path.ends_with("prediction.distinct") =>
        {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let bound = 3.0 * modelwatch::NUMBER_DISTINCT_STANDARD_ERROR;
            assert!(
                (x - y).abs() <= bound * x,
                "{path}: {x} {y} (see assert_same_sketch)"
            );
        }
        (Json::Number(x), Json::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let summed = [
                "mean",
                "variance",
                "mse",
                "mae",
                "rmse",
                "r2",
                "calibration",
            ]
            .iter()
            .any(|k| path.ends_with(k));
            if summed {
                assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{path}: {x} {y}");
            } else {
                assert_eq!(x, y, "{path}");
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// Sketches equal: every percentile, the extremes, the distinct count and the category
/// buckets. One exception, the distinct count of continuous numbers (`amount` and the
/// output `prediction`, a probability): where a
/// summary's numbers are all distinct, its encoding carries their count instead of the
/// registers (docs/wire-format.md), and a rollup of 864 values crosses that line where
/// windows of 12 do not: the two agree within the HyperLogLog's error, not exactly.
fn assert_same_sketch(a: &FeatureSummary, b: &FeatureSummary, name: &str) {
    for q in (0..=100).map(|i| f64::from(i) / 100.0) {
        assert_eq!(a.quantile(q), b.quantile(q), "{name} q{q}");
    }
    assert_eq!((a.min(), a.max()), (b.min(), b.max()), "{name}");
    assert_eq!(a.category_profile(), b.category_profile(), "{name}");
    if name == "amount" || name == modelwatch::PREDICTION {
        let (x, y) = (a.distinct() as f64, b.distinct() as f64);
        let bound = 3.0 * modelwatch::NUMBER_DISTINCT_STANDARD_ERROR;
        assert!((x - y).abs() <= bound * x, "{name}: {x} {y}");
    } else {
        assert_eq!(a.distinct(), b.distinct(), "{name}");
    }
}

fn merged(store: &Store, resolution: Resolution) -> WindowSummary {
    let mut all: Option<WindowSummary> = None;
    store
        .scan(resolution, Some("fraud"), i64::MIN, i64::MAX, |s| {
            let s = s.unwrap();
            match &mut all {
                Some(m) => m.merge(&s).unwrap(),
                None => all = Some(s),
            }
        })
        .unwrap();
    all.unwrap()
}

#[test]
fn a_month_of_hourly_and_daily_rollups_reports_what_its_minute_windows_do() {
    let dir = common::temp_dir("rollup-month");
    let path = dir.join("store.db");
    let store = Store::open(&path).unwrap();
    let logged = fill_a_month(&store);
    assert_eq!(
        store
            .rows_in(Resolution::Hour, None, i64::MIN, i64::MAX)
            .unwrap(),
        0
    );
    assert_eq!(store.roll_up_pending().unwrap(), 2_160 + 2 * 144);
    assert_eq!(store.roll_up_pending().unwrap(), 0, "each window once");
    // Rows: the windows as sent, one rollup per hour and per day whatever the instances.
    assert_eq!(
        store
            .rows_in(Resolution::Window, None, i64::MIN, i64::MAX)
            .unwrap(),
        2_160
    );
    assert_eq!(
        store
            .rows_in(Resolution::Hour, None, i64::MIN, i64::MAX)
            .unwrap(),
        720
    );
    assert_eq!(
        store
            .rows_in(Resolution::Day, None, i64::MIN, i64::MAX)
            .unwrap(),
        30
    );

    let by = [Resolution::Window, Resolution::Hour, Resolution::Day].map(|r| merged(&store, r));
    for m in &by {
        assert_eq!(m.predictions(), logged, "counts exact");
    }
    for m in &by[1..] {
        for (name, f) in by[0].features().chain(by[0].outputs()) {
            let g = m.feature(name).or_else(|| m.output(name)).unwrap();
            assert_eq!((f.count(), f.missing()), (g.count(), g.missing()), "{name}");
            assert_same_sketch(f, g, name);
        }
    }

    // The command: the merged summary of the month is the same read from each resolution.
    let minutes = report(&path, &["--resolution", "1m"]);
    let hours = report(&path, &["--resolution", "1h"]);
    let days = report(&path, &["--resolution", "1d"]);
    assert_eq!(minutes["merged"]["predictions"], logged);
    assert_eq!(minutes["timeline"].as_array().unwrap().len(), 2_160);
    assert_eq!(hours["timeline"].as_array().unwrap().len(), 720);
    assert_eq!(days["timeline"].as_array().unwrap().len(), 30);
    assert_same(&minutes["merged"], &hours["merged"], "hours");
    assert_same(&minutes["merged"], &days["merged"], "days");
    // One hour of rollup is that hour's windows merged, instances and sequences together.
    let hour_of = |j: &Json, i: usize| j["timeline"][i]["predictions"].as_u64().unwrap();
    assert_eq!(hour_of(&hours, 0), 12 * 3 + 7 + 5);
    assert_eq!(hour_of(&hours, 1), 12 * 3);

    // Left to choose, a month is read as hours, a day as windows.
    let auto = report(&path, &[]);
    assert_eq!(auto["resolution"], "1h");
    let day = (START + 3 * DAY).to_string();
    let next = (START + 4 * DAY).to_string();
    let one_day = report(&path, &["--from", &day, "--to", &next]);
    assert_eq!(one_day["resolution"], "1m");
    assert_eq!(one_day["timeline"].as_array().unwrap().len(), 72);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_from_before_rollups_gets_them_from_its_windows() {
    let dir = common::temp_dir("rollup-backfill");
    let path = dir.join("store.db");
    let mut rng = Rng(7);
    {
        let store = Store::open(&path).unwrap();
        for m in 0..150 {
            let s = window(START + m * 60_000, 1, m as u64, 10, &mut rng);
            store.insert("k", &s, &s.encode(), 0).unwrap();
            // Rolled up in three rounds, as a collector does every minute.
            if m % 50 == 49 {
                store.roll_up_pending().unwrap();
            }
        }
    }
    let before = merged(&Store::open(&path).unwrap(), Resolution::Hour);
    {
        // As an earlier version left it: windows only.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE rollups; DROP TABLE pruned; DROP TABLE unrolled; DROP INDEX windows_by_time;",
        )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.roll_up_pending().unwrap(), 150);
    assert_eq!(
        store
            .rows_in(Resolution::Hour, None, i64::MIN, i64::MAX)
            .unwrap(),
        3
    );
    let after = merged(&store, Resolution::Hour);
    assert_eq!(after.predictions(), 1_500);
    assert_eq!(after.merged_windows(), before.merged_windows());
    for (name, f) in before.features() {
        assert_same_sketch(f, after.feature(name).unwrap(), name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_resolution_is_pruned_after_its_retention_and_report_reads_what_covers_the_range() {
    let dir = common::temp_dir("rollup-retention");
    let path = dir.join("store.db");
    let before = modelwatch_cli::time::now_ms();
    // Starts a quarter past and a quarter to: none within minutes of a cutoff.
    let first = before - 5 * DAY + 15 * 60_000;
    let mut rng = Rng(11);
    {
        let store = Store::open(&path).unwrap();
        // Five days, a window every 30 minutes: 240 windows.
        for k in 0..240 {
            let s = window(first + k * 1_800_000, 1, k as u64, 5, &mut rng);
            store.insert("k", &s, &s.encode(), 0).unwrap();
        }
    }
    // The collector prunes before it listens.
    let log = dir.join("collect.log");
    let mut child = Command::new(BIN)
        .args([
            "collect",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "k",
            "--store",
        ])
        .arg(&path)
        .args(["--retain", "1m=1d,1h=3d,1d=forever"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("listening on")
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("retention 1m=1d,1h=3d,1d=forever"), "{text}");

    let after = modelwatch_cli::time::now_ms();

    let store = Store::open(&path).unwrap();
    let count = |r| store.rows_in(r, None, i64::MIN, i64::MAX).unwrap();
    // What a prune at `now` keeps: the collector's clock read between `before` and
    // `after`; an hour boundary may pass in between, so either may be the answer.
    let kept = |now: i64| {
        let windows = (0..240)
            .filter(|k| first + k * 1_800_000 >= now - DAY)
            .count() as u64;
        let hour_cut = (now - 3 * DAY).div_euclid(HOUR) * HOUR;
        let hours = (first.div_euclid(HOUR)..=(first + 239 * 1_800_000).div_euclid(HOUR))
            .filter(|h| h * HOUR >= hour_cut)
            .count() as u64;
        (windows, hours)
    };
    let found = (count(Resolution::Window), count(Resolution::Hour));
    assert!(
        found == kept(before) || found == kept(after),
        "{found:?} {:?}",
        kept(before)
    );
    assert!(found.0 < 240 && found.1 < 120, "pruned");
    let days = (first + 239 * 1_800_000).div_euclid(DAY) - first.div_euclid(DAY) + 1;
    assert_eq!(count(Resolution::Day), days as u64, "kept forever");
    assert_eq!(store.pruned_before(Resolution::Day).unwrap(), None);

    // The whole range is only in the daily rollups, every prediction still counted; the
    // last 12 hours are still in the windows, the last 2 days in the hours.
    let all = report(&path, &[]);
    assert_eq!(all["resolution"], "1d");
    assert_eq!(all["merged"]["predictions"], 240 * 5);
    assert_eq!(report(&path, &["--since", "12h"])["resolution"], "1m");
    assert_eq!(report(&path, &["--since", "2d"])["resolution"], "1h");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rollup_that_would_pass_the_limit_leaves_windows_out_and_storing_goes_on() {
    let dir = common::temp_dir("rollup-limit");
    let path = dir.join("store.db");
    let window_with_messages = |m: i64| {
        let mut b = SummaryBuilder::new("fraud", START + m * 60_000, 60_000, HASH_KEY)
            .identity(1, m as u64);
        b.log_prediction([("x", 1.0)], 0.5);
        for i in 0..40 {
            b.log_exception(&format!("error {m}-{i}: {}", "x".repeat(100)), [("k", 1)]);
        }
        b.build()
    };
    let one = window_with_messages(0).encode().len();
    let store = Store::open(&path).unwrap().with_rollup_limit(3 * one);
    for m in 0..10 {
        let s = window_with_messages(m);
        assert_eq!(
            store.insert("k", &s, &s.encode(), 0).unwrap(),
            modelwatch_cli::store::Stored::New
        );
        store.roll_up_pending().unwrap();
    }
    assert_eq!(store.count().unwrap(), 10, "every window stored");
    let (mut rollups, mut notes) = (Vec::new(), Vec::new());
    store
        .scan(Resolution::Hour, None, i64::MIN, i64::MAX, |s| match s {
            Ok(s) => rollups.push(s),
            Err(e) => notes.push(e),
        })
        .unwrap();
    assert_eq!(rollups.len(), 1);
    let merged_windows = rollups[0].merged_windows();
    assert!((2..10).contains(&merged_windows), "{merged_windows}");
    assert!(rollups[0].encode().len() <= 3 * one);
    let left_out = 10 - merged_windows;
    assert_eq!(notes.len(), 1);

    let o = modelwatch(&[
        "report",
        "--store",
        path.to_str().unwrap(),
        "--resolution",
        "1h",
    ]);
    assert!(o.status.code().is_some_and(|c| c < 2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{left_out} window(s) left out")),
        "{err}"
    );
    let o = modelwatch(&[
        "report",
        "--store",
        path.to_str().unwrap(),
        "--resolution",
        "1m",
    ]);
    assert!(o.stderr.is_empty(), "the windows have them all: {o:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_rolls_up_what_the_collector_has_not_yet_and_reads_a_store_it_cannot_write() {
    let dir = common::temp_dir("rollup-report");
    let path = dir.join("store.db");
    let store = Store::open(&path).unwrap();
    let mut rng = Rng(5);
    for m in 0..3 {
        let s = window(START + m * 60_000, 1, m as u64, 10, &mut rng);
        store.insert("k", &s, &s.encode(), 0).unwrap();
    }
    // Another process holds the write lock (busy for longer than the store waits).
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let o = modelwatch(&["report", "--store", path.to_str().unwrap(), "--json"]);
    assert!(o.status.code().is_some_and(|c| c < 2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not in the hourly and daily rollups"), "{err}");
    let json: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json[0]["timeline"].as_array().unwrap().len(), 3);
    locker.execute_batch("ROLLBACK").unwrap();
    // Free to write: the report rolls the three windows up and reads their hour.
    let hour = report(&path, &["--resolution", "1h"]);
    assert_eq!(hour["timeline"].as_array().unwrap().len(), 1);
    assert_eq!(hour["merged"]["predictions"], 30);
    assert_eq!(store.roll_up_pending().unwrap(), 0, "nothing left noted");
    let _ = std::fs::remove_dir_all(&dir);
}
