//! `modelwatch constraints`: suggested from one half of a dataset, they hold for the other;
//! a stream broken in four known ways violates exactly the four matching constraints, and
//! `report --constraints` groups consecutive windows of one violation.

#[path = "../../tests/common/mod.rs"]
mod common;

use modelwatch::{SummaryBuilder, Value, WindowSummary};
use modelwatch_cli::constraints::{self, Checker, Constraints, Kind};
use modelwatch_cli::profile::{Options, Profiler};
use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;

const KEY: [u8; 16] = *b"constraints-key!";
const KEY_HEX: &str = "636f6e73747261696e74732d6b657921";
const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");

fn profile_csv(csv: &[u8], deployment: &str) -> WindowSummary {
    let mut o = Options::new(deployment, KEY);
    o.prediction = Some("prediction".into());
    if deployment == "wl" {
        o.label = Some("label".into()); // ground truth, not a feature
    }
    let mut p = Profiler::new(&o);
    p.read(csv).unwrap();
    p.finish().unwrap().summary
}

/// The reference workload's CSV text, header first.
fn workload_lines() -> Vec<String> {
    let file = std::fs::File::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/workload-100k.csv.gz"),
    )
    .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_owned).collect()
}

fn findings(c: &Constraints, w: &WindowSummary) -> BTreeSet<(String, &'static str)> {
    constraints::check(c, w)
        .into_iter()
        .map(|f| (f.feature, f.check))
        .collect()
}

#[test]
fn constraints_from_the_first_half_of_the_workload_hold_for_the_second() {
    let lines = workload_lines();
    let (header, rows) = (&lines[0], &lines[1..]);
    let half = |part: &[String]| {
        let mut csv = header.clone() + "\n";
        for l in part {
            csv += l;
            csv += "\n";
        }
        csv
    };
    let first = profile_csv(half(&rows[..50_000]).as_bytes(), "wl");
    let c = constraints::suggest(&first);
    assert_eq!(c.features.len(), 13);
    // What a data scientist would expect of the workload's columns.
    let f0 = &c.features["f0"];
    assert_eq!(f0.data_type.as_ref().unwrap().kind, Kind::Float);
    assert!(f0.completeness.unwrap() > 0.97 && f0.completeness.unwrap() < 0.99);
    assert!(f0.range.is_some() && f0.categories.is_none() && f0.distinct.is_none());
    let cat = &c.features["cat_small"];
    // 20 categories in 1,024 buckets: two may share one (here two do).
    assert_eq!(cat.categories.as_ref().unwrap().buckets.len(), 19);
    assert_eq!(cat.completeness, Some(1.0));
    assert!(
        c.features["user_id"].categories.is_none(),
        "an identifier, not categories"
    );
    assert_eq!(
        c.features["flag"].data_type.as_ref().unwrap().kind,
        Kind::Bool
    );

    // The file is editable JSON that reads back as written.
    let text = serde_json::to_string_pretty(&c).unwrap();
    assert_eq!(constraints::parse(&text).unwrap(), c);
    assert!(constraints::parse(&text.replace("\"min_share\"", "\"min_shar\"")).is_err());

    // The second half, as one profile and as windows of 5,000 rows logged by a server.
    let second = profile_csv(half(&rows[50_000..]).as_bytes(), "wl");
    assert_eq!(findings(&c, &second), BTreeSet::new());
    let typed = common::workload();
    for (i, chunk) in typed[50_000..].chunks(5_000).enumerate() {
        let mut b = SummaryBuilder::new("wl", i as i64 * 60_000, 60_000, KEY);
        for r in chunk {
            b.log_prediction(r.pairs(), r.prediction);
        }
        let w = b.build();
        assert_eq!(findings(&c, &w), BTreeSet::new(), "window {i}");
    }
}

/// A small deterministic generator (a 64-bit LCG), so that the data is the same each run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

const PLANS: [&str; 3] = ["free", "pro", "team"];

/// Training data: age (integers 18 to 80), plan (3 categories), income (floats), city (20
/// categories, never missing).
fn training_csv(rows: usize) -> String {
    let mut g = Lcg(7);
    let mut csv = String::from("age,plan,income,city,prediction\n");
    for _ in 0..rows {
        let age = 18 + g.next() % 63;
        let plan = PLANS[(g.next() % 3) as usize];
        let income = 20_000.0 + (g.next() % 80_000) as f64 + 0.25;
        let city = g.next() % 20;
        csv += &format!("{age},{plan},{income},city{city},0.{}\n", g.next() % 100);
    }
    csv
}

/// How a production window is broken.
#[derive(Clone, Copy, PartialEq)]
enum Break {
    None,
    AgeAsStrings,
    NewPlan,
    IncomeOutOfRange,
    CityMissing,
}

fn window(start: i64, rows: usize, seed: u64, how: Break) -> WindowSummary {
    let mut g = Lcg(seed);
    let mut b = SummaryBuilder::new("shop", start, 60_000, KEY);
    for i in 0..rows {
        let age = (18 + g.next() % 63) as i64;
        let age_text = age.to_string();
        let plan = if how == Break::NewPlan && i.is_multiple_of(10) {
            "enterprise"
        } else {
            PLANS[(g.next() % 3) as usize]
        };
        let mut income = 20_000.0 + (g.next() % 80_000) as f64 + 0.25;
        if how == Break::IncomeOutOfRange && i.is_multiple_of(100) {
            income *= 10.0;
        }
        let city = format!("city{}", g.next() % 20);
        let city = if how == Break::CityMissing && i.is_multiple_of(10) {
            Value::Null
        } else {
            Value::from(city.as_str())
        };
        let age = if how == Break::AgeAsStrings {
            Value::from(age_text.as_str())
        } else {
            Value::from(age)
        };
        let features = [
            ("age", age),
            ("plan", Value::from(plan)),
            ("income", Value::from(income)),
            ("city", city),
        ];
        b.log_prediction(features, 0.5);
    }
    b.build()
}

#[test]
fn each_break_violates_exactly_its_constraint() {
    let c = constraints::suggest(&profile_csv(training_csv(20_000).as_bytes(), "shop"));
    assert_eq!(
        c.features["age"].data_type.as_ref().map(|t| t.kind),
        Some(Kind::Int)
    );
    let expected = [
        (Break::None, None),
        (Break::AgeAsStrings, Some(("age", "data_type_check"))),
        (Break::NewPlan, Some(("plan", "categories_check"))),
        (Break::IncomeOutOfRange, Some(("income", "range_check"))),
        (Break::CityMissing, Some(("city", "completeness_check"))),
    ];
    for (i, (how, want)) in expected.into_iter().enumerate() {
        let w = window(0, 2_000, 100 + i as u64, how);
        let want: BTreeSet<_> = want.map(|(f, k)| (f.to_owned(), k)).into_iter().collect();
        assert_eq!(findings(&c, &w), want, "break {i}");
    }
    let all = constraints::check(&c, &window(0, 2_000, 1, Break::AgeAsStrings));
    assert_eq!(all[0].text, "expected int, only 0.0 % is int");
}

#[test]
fn consecutive_windows_of_one_violation_are_one_entry() {
    let c = constraints::suggest(&profile_csv(training_csv(20_000).as_bytes(), "shop"));
    let mut checker = Checker::new(c);
    let plan = [
        Break::None,
        Break::CityMissing,
        Break::CityMissing,
        Break::None,
        Break::CityMissing,
    ];
    for (i, how) in plan.into_iter().enumerate() {
        checker.observe(&window(i as i64 * 60_000, 2_000, 50 + i as u64, how));
    }
    let v = checker.finish();
    let runs: Vec<_> = v
        .iter()
        .map(|v| {
            (
                v.feature.as_str(),
                v.check,
                v.first_window_ms,
                v.last_window_ms,
                v.windows,
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("city", "completeness_check", 60_000, 120_000, 2),
            ("city", "completeness_check", 240_000, 240_000, 1),
        ]
    );
}

#[test]
fn the_commands_suggest_and_report_violations() {
    let dir = common::temp_dir("constraints-cmd");
    std::fs::write(dir.join("train.csv"), training_csv(20_000)).unwrap();
    let windows = dir.join("windows");
    std::fs::create_dir_all(&windows).unwrap();
    let plan = [
        Break::None,
        Break::None,
        Break::AgeAsStrings,
        Break::AgeAsStrings,
    ];
    for (i, how) in plan.into_iter().enumerate() {
        let start = 1_700_000_000_000 + i as i64 * 60_000;
        let w = window(start, 2_000, 10 + i as u64, how);
        std::fs::write(
            windows.join(format!("shop.{start}.0.1.msgpack")),
            w.encode(),
        )
        .unwrap();
    }
    let run = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env("MODELWATCH_HASH_KEY", KEY_HEX)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[
        "profile",
        "train.csv",
        "--deployment",
        "shop",
        "--prediction",
        "prediction",
        "-o",
        "base.msgpack",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["constraints", "base.msgpack", "-o", "constraints.json"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&[
        "report",
        "--dir",
        "windows",
        "--constraints",
        "constraints.json",
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("1 constraint violation(s):\n  age data_type_check: expected int, only 0.0 % is int; 2 window(s), 2023-11-14T22:15:20Z to 2023-11-14T22:16:20Z"),
        "{out}"
    );
    // And an incident, without a score (a constraint has none).
    assert!(
        out.contains("  constraint_violation (open):\n    age data_type_check: open since 2023-11-14T22:15:20Z (last seen 2023-11-14T22:16:20Z); 2 window(s) with evidence\n      data_type_check: expected int, only 0.0 % is int\n"),
        "{out}"
    );
    let (_, out, _) = run(&[
        "report",
        "--json",
        "--dir",
        "windows",
        "--constraints",
        "constraints.json",
        // The name of --baseline-file.
        "--baseline",
        "base.msgpack",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v = &json[0]["violations"];
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["windows"], 2);
    // The violation is an incident too, open since its first window.
    let incidents: Vec<_> = json[0]["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "constraint_violation")
        .collect();
    assert_eq!(incidents.len(), 1, "{}", json[0]["incidents"]);
    assert_eq!(incidents[0]["subject"], "age data_type_check");
    assert_eq!(incidents[0]["opened_ms"], 1_700_000_000_000i64 + 2 * 60_000);
    assert!(incidents[0]["closed_ms"].is_null());
    assert_eq!(
        incidents[0]["text"],
        "data_type_check: expected int, only 0.0 % is int"
    );
    let (_, out, _) = run(&["report", "--json", "--dir", "windows"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        json[0]["violations"].is_null(),
        "no constraints, no verdict"
    );
    let (_, _, err) = run(&[
        "report",
        "--dir",
        "windows",
        "--constraints",
        "constraints.json",
        "--html",
        "r.html",
    ]);
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(html.contains("<h3>1 constraint violation(s)</h3>"));
    assert!(html.contains(
        "<td>age</td><td>data_type_check</td><td>expected int, only 0.0 % is int</td><td>2</td>"
    ));

    // An edited file with a mistake is refused with the field named.
    std::fs::write(
        dir.join("bad.json"),
        std::fs::read_to_string(dir.join("constraints.json"))
            .unwrap()
            .replace("\"completeness\"", "\"completenes\""),
    )
    .unwrap();
    let (code, _, err) = run(&["report", "--dir", "windows", "--constraints", "bad.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("completenes"), "{err}");
    // By the collector too, before it listens; and two files for one deployment.
    let collect = |files: &[&str]| {
        let mut args = vec!["collect", "--listen", "127.0.0.1:0", "--store", "s.db"];
        for f in files {
            args.extend(["--constraints", f]);
        }
        let o = Command::new(BIN)
            .args(&args)
            .current_dir(&dir)
            .env("MODELWATCH_API_KEY", "a-key-of-this-test")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = collect(&["bad.json"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.json") && err.contains("completenes"),
        "{err}"
    );
    let (code, err) = collect(&["constraints.json", "constraints.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("two constraint files"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
