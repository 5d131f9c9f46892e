//! `modelwatch profile`: the reference workload profiled from its CSV has the statistics of
//! the same rows logged through the library and of the exact values; broken input is
//! counted, never a panic; memory stays bounded however long the file.

#[path = "../../tests/common/mod.rs"]
mod common;

use modelwatch::{SummaryBuilder, Value, WindowSummary};
use modelwatch_cli::profile::{self, ColumnType, Options, Profiler};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Mutex, MutexGuard};

const KEY: [u8; 16] = *b"profile-test-key";
const KEY_HEX: &str = "70726f66696c652d746573742d6b6579";
const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");

/// Heap bytes held by the process, and their peak. The profiler splits CSV on a second
/// thread, so the count is the process's: every test here takes [`serial`] first so that
/// no other test allocates while one measures.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn note(delta: isize) {
    let held = HELD.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(held, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as isize - l.size() as isize);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn workload_file() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/workload-100k.csv.gz")
}

fn workload_options() -> Options {
    let mut o = Options::new("wl", KEY);
    o.prediction = Some("prediction".into());
    o.label = Some("label".into());
    o
}

/// The exact q-quantile as the library defines it: the value of rank ceil(q n).
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

#[test]
fn the_workload_csv_profiles_as_its_rows_logged_through_the_library() {
    let _serial = serial();
    let p = profile::profile_files(&[workload_file()], &workload_options()).unwrap();
    assert_eq!(
        p.counts,
        profile::Counts {
            rows: 100_000,
            ..Default::default()
        }
    );
    let types: Vec<_> = p.types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    assert_eq!(types[0], ("f0", ColumnType::Float));
    assert!(types.contains(&("cat_small", ColumnType::String)));
    assert!(types.contains(&("user_id", ColumnType::String)));
    assert!(types.contains(&("flag", ColumnType::Bool)));
    assert!(types.contains(&("label", ColumnType::Int)));

    // The same rows, typed by the test's own parser, through a builder.
    let rows = common::workload();
    let mut b = SummaryBuilder::new("wl", 0, 60_000, KEY);
    for r in &rows {
        b.log_prediction(r.pairs(), r.prediction);
        b.log_ground_truth(r.label, r.prediction, ());
    }
    let logged = b.build();
    let s = &p.summary;
    assert_eq!(s.predictions(), logged.predictions());
    assert_eq!(s.key_fingerprint(), logged.key_fingerprint());
    let names: Vec<_> = s.features().map(|(n, _)| n).collect();
    let mut expected: Vec<_> = common::FEATURES.to_vec();
    expected.sort();
    assert_eq!(names, expected, "prediction and label are not features");

    for (i, name) in common::FEATURES.iter().enumerate() {
        let (a, e) = (s.feature(name).unwrap(), logged.feature(name).unwrap());
        let counts = |f: &modelwatch::FeatureSummary| {
            (
                f.count(),
                f.missing(),
                f.ints(),
                f.floats(),
                f.strings(),
                f.bools(),
                f.trues(),
            )
        };
        assert_eq!(counts(a), counts(e), "{name}: counts are exact");
        assert_eq!(a.category_profile(), e.category_profile(), "{name}");
        if i < 10 {
            // Against the exact values too, not only the library's own sketch.
            let mut exact: Vec<f64> = rows.iter().filter_map(|r| r.floats[i]).collect();
            exact.sort_by(f64::total_cmp);
            for q in [0.01, 0.1, 0.5, 0.9, 0.99] {
                let (got, want) = (a.quantile(q).unwrap(), exact_quantile(&exact, q));
                assert!(
                    (got - want).abs() <= modelwatch::RELATIVE_ERROR * want.abs(),
                    "{name} q{q}: {got} vs exact {want}"
                );
                assert_eq!(Some(got), e.quantile(q));
            }
            let distinct = exact
                .iter()
                .map(|x| x.to_bits())
                .collect::<HashSet<_>>()
                .len();
            let bound = 4.0 * modelwatch::NUMBER_DISTINCT_STANDARD_ERROR * distinct as f64;
            assert!(
                (a.distinct() as f64 - distinct as f64).abs() <= bound,
                "{name}"
            );
        }
    }
    let user = s.feature("user_id").unwrap();
    let distinct = rows
        .iter()
        .map(|r| &r.user_id)
        .collect::<HashSet<_>>()
        .len() as f64;
    let bound = 4.0 * modelwatch::STRING_DISTINCT_STANDARD_ERROR * distinct;
    assert!((user.distinct() as f64 - distinct).abs() <= bound);
    // Means and errors up to floating point: the profile folds on several threads, merged
    // with Chan's formula, where the builder summed in one order.
    let close = |a: Option<f64>, b: Option<f64>| {
        (a.unwrap() - b.unwrap()).abs() <= 1e-12 * b.unwrap().abs()
    };
    let prediction = (
        s.output("prediction").unwrap(),
        logged.output("prediction").unwrap(),
    );
    assert_eq!(prediction.0.count(), prediction.1.count());
    assert!(close(prediction.0.mean(), prediction.1.mean()));
    let truth = (
        s.ground_truth_overall().unwrap(),
        logged.ground_truth_overall().unwrap(),
    );
    assert_eq!(truth.0.count(), truth.1.count());
    assert!(close(truth.0.mse(), truth.1.mse()));
}

/// A CSV with everything wrong that a file can have.
const BROKEN: &[u8] = b"id,amount,city\n\
1,10.5,Paris\n\
2,11,\"Lyon, France\"\n\
3,oops,Nice\n\
4,12.0\n\
5,13,\"multi\nline\"\n\
6,NA,Caf\xe9\n\
7,14,Nice,extra\n";

fn read(bytes: &[u8], options: &Options) -> profile::Profile {
    let mut p = Profiler::new(options);
    p.read(bytes).unwrap();
    p.finish().unwrap()
}

#[test]
fn broken_rows_bad_cells_and_invalid_utf8_are_counted_not_fatal() {
    let _serial = serial();
    let mut o = Options::new("x", KEY);
    // k = 10 would keep the few values of these columns out of the sketches; counts ship anyway.
    let p = read(BROKEN, &o);
    assert_eq!(
        p.counts,
        profile::Counts {
            rows: 5,
            bad_rows: 2,
            invalid_utf8: 1,
            mistyped: 0,
        }
    );
    // "oops" in the sample makes `amount` text, as the strict inference says.
    assert!(p.types.contains(&("amount".into(), ColumnType::String)));
    let amount = p.summary.feature("amount").unwrap();
    assert_eq!(
        (amount.count(), amount.missing(), amount.strings()),
        (5, 1, 4)
    );

    // Typed by hand: the text is counted as mistyped and logged as a string.
    o.types = vec![("amount".into(), ColumnType::Float)];
    let p = read(BROKEN, &o);
    assert_eq!(p.counts.mistyped, 1);
    let amount = p.summary.feature("amount").unwrap();
    assert_eq!(
        (amount.floats(), amount.strings(), amount.missing()),
        (3, 1, 1)
    );
    let id = p.summary.feature("id").unwrap();
    assert_eq!(id.ints(), 5);
}

#[test]
fn a_huge_cell_and_an_empty_file_are_read_without_a_panic() {
    let _serial = serial();
    let o = Options::new("x", KEY);
    let mut csv = b"a,b\n1,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', 5 << 20));
    csv.extend(b"\n2,y\n");
    let p = read(&csv, &o);
    assert_eq!(p.counts.rows, 2);
    assert_eq!(p.summary.feature("b").unwrap().truncated_strings(), 1);
    let p = read(b"", &o);
    assert_eq!((p.counts.rows, p.summary.predictions()), (0, 0));
}

/// Generates `rows` CSV rows on the fly (nothing held): 4 numbers and 2 texts per row.
struct Generated {
    rows: u64,
    next: u64,
    line: Vec<u8>,
    at: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.line.len() {
            self.line.clear();
            self.at = 0;
            if self.next == 0 {
                self.line.extend(b"a,b,c,d,city,comment\n");
            } else if self.next > self.rows {
                return Ok(0);
            } else {
                let i = self.next;
                let text = format!(
                    "{},{}.{},{},{},city{},a comment that makes the row long {}\n",
                    i % 1000,
                    i % 97,
                    i % 13,
                    i * 7919 % 100_003,
                    if i.is_multiple_of(50) {
                        String::new()
                    } else {
                        (i % 3).to_string()
                    },
                    i % 40,
                    i
                );
                self.line.extend(text.as_bytes());
            }
            self.next += 1;
        }
        let n = buf.len().min(self.line.len() - self.at);
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Peak heap bytes this thread held while profiling `rows` generated rows.
fn peak_profiling(rows: u64) -> (usize, u64) {
    let o = Options::new("gen", KEY);
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut p = Profiler::new(&o);
    p.read(Generated {
        rows,
        next: 0,
        line: Vec::new(),
        at: 0,
    })
    .unwrap();
    let n = p.counts().rows;
    let summary: WindowSummary = p.finish().unwrap().summary;
    assert_eq!(summary.predictions(), rows);
    ((PEAK.load(Ordering::Relaxed) - before) as usize, n)
}

/// The bound (docs/baseline.md): the sketches, bounded per column by the library, plus the
/// type-inference sample (at most 10,000 records and 16 MiB) plus the record being read.
/// 400,000 rows (about 24 MB of CSV) must take no more than 40,000 do, give or take the
/// sketches' growth: a profiler that held the file, or a String per cell of it, would not.
#[test]
fn memory_is_bounded_whatever_the_length_of_the_file() {
    let _serial = serial();
    let (small, _) = peak_profiling(40_000);
    let (large, n) = peak_profiling(400_000);
    assert_eq!(n, 400_000);
    eprintln!("peak heap: {small} B for 40,000 rows, {large} B for 400,000");
    assert!(
        large < small + small / 4,
        "peak {large} B for 400k rows vs {small} B for 40k"
    );
    assert!(large < 8 << 20, "peak {large} B");
}

#[test]
fn the_command_writes_a_profile_with_the_deployments_key() {
    let _serial = serial();
    let dir = common::temp_dir("profile-cmd");
    let out = dir.join("base.msgpack");
    let csv = dir.join("train.csv");
    std::fs::write(&csv, BROKEN).unwrap();
    let run = |env: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["profile", csv.to_str().unwrap(), "--deployment", "d", "-o"])
            .arg(&out)
            .env_remove("MODELWATCH_HASH_KEY");
        if let Some(k) = env {
            c.env("MODELWATCH_HASH_KEY", k);
        }
        c.output().unwrap()
    };
    let o = run(None);
    assert_eq!(o.status.code(), Some(2), "no key, no profile");
    assert!(String::from_utf8_lossy(&o.stderr).contains("hash key"));
    let o = run(Some("not hex"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("not hex"),
        "a secret is never echoed"
    );
    let o = run(Some(KEY_HEX));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 record(s) skipped"), "{err}");
    let s = WindowSummary::decode(&std::fs::read(&out).unwrap()).unwrap();
    let mut b = SummaryBuilder::new("d", 0, 60_000, KEY);
    b.log_prediction([("x", Value::Null)], 0.0);
    assert_eq!(s.key_fingerprint(), b.build().key_fingerprint());
    assert_eq!(s.predictions(), 5);
    std::fs::remove_dir_all(&dir).ok();
}

/// Production windows of the workload's rows, 10,000 a window, with `shift` added to f2 in
/// windows from `shifted_from` on.
fn production(dir: &std::path::Path, shifted_from: usize, shift: f64) {
    for (w, chunk) in common::workload().chunks(10_000).enumerate() {
        let start = 1_700_000_000_000 + w as i64 * 60_000;
        let mut b = SummaryBuilder::new("wl", start, 60_000, KEY);
        for r in chunk {
            let mut pairs = r.pairs();
            if w >= shifted_from {
                pairs[2].1 = Value::from(r.floats[2].map(|x| x + shift));
            }
            b.log_prediction(pairs, r.prediction);
        }
        let s = b.build();
        std::fs::write(dir.join(format!("wl.{start}.0.1.msgpack")), s.encode()).unwrap();
    }
}

#[test]
fn report_compares_every_window_with_the_training_profile() {
    let _serial = serial();
    let dir = common::temp_dir("profile-report");
    let windows = dir.join("windows");
    std::fs::create_dir_all(&windows).unwrap();
    // Drifted from the first window on: the first windows as baseline cannot see it.
    production(&windows, 0, 40.0);
    let base = dir.join("base.msgpack");
    let p = profile::profile_files(&[workload_file()], &workload_options()).unwrap();
    std::fs::write(&base, p.summary.encode()).unwrap();

    let report = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["report", "--json", "--dir"])
            .arg(&windows)
            .args(extra)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code(), json[0].clone())
    };
    let (code, r) = report(&[]);
    assert_eq!(
        code,
        Some(0),
        "against its own first windows nothing changed: {r}"
    );
    let (code, r) = report(&["--baseline-file", base.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{r}");
    assert!(r["baseline"]
        .as_str()
        .unwrap()
        .starts_with("a summary file of \"wl\""));
    let subjects: Vec<&str> = r["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&"f2"), "{subjects:?}");
    assert!(!subjects.contains(&"f1"), "{subjects:?}");
    assert_eq!(
        r["timeline"].as_array().unwrap().len(),
        10,
        "every window analysed"
    );

    // A profile made with another key is said to be one.
    let mut o = workload_options();
    o.hash_key = [9; 16];
    let other = dir.join("other-key.msgpack");
    let p = profile::profile_files(&[workload_file()], &o).unwrap();
    std::fs::write(&other, p.summary.encode()).unwrap();
    let (_, r) = report(&["--baseline-file", other.to_str().unwrap()]);
    assert!(
        r["baseline"].as_str().unwrap().contains("another hash key"),
        "{r}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn labels_are_ground_truth_per_segment_and_not_features() {
    let _serial = serial();
    let mut csv = String::from("x,region,score,truth\n");
    for i in 0..40 {
        csv += &format!("{i},{},{},{}\n", 1 + i % 2, i % 2, i % 2);
    }
    let mut o = Options::new("gt", KEY);
    o.prediction = Some("score".into());
    o.label = Some("truth".into());
    o.segment = Some("region".into());
    let p = read(csv.as_bytes(), &o);
    let names: Vec<_> = p.summary.features().map(|(n, _)| n).collect();
    assert_eq!(names, ["x"]);
    // Integer-looking segments are segment names all the same.
    for region in ["1", "2"] {
        let g = p.summary.ground_truth(region).unwrap();
        assert_eq!((g.count(), g.accuracy()), (20, Some(1.0)), "{region}");
    }
}

#[test]
fn past_the_sample_broken_rows_are_counted_too() {
    let _serial = serial();
    let mut csv = b"n,s\n".to_vec();
    for i in 0..(profile::SAMPLE_ROWS + 5_000) {
        match i {
            11_000 => csv.extend(b"1,2,3\n"),
            11_500 => csv.extend(b"x,caf\xe9\n"),
            _ => csv.extend(format!("{i},s{}\n", i % 7).as_bytes()),
        }
    }
    let p = read(&csv, &Options::new("x", KEY));
    assert_eq!(
        p.counts,
        profile::Counts {
            rows: profile::SAMPLE_ROWS as u64 + 4_999,
            bad_rows: 1,
            invalid_utf8: 1,
            mistyped: 1,
        }
    );
    let n = p.summary.feature("n").unwrap();
    assert_eq!(
        (n.ints(), n.strings()),
        (profile::SAMPLE_ROWS as u64 + 4_998, 1)
    );
}

/// The same data as CSV and as Parquet (nulls, integers, floats, booleans, strings and
/// dictionary-encoded strings as pandas writes categoricals) give the same summary, byte
/// for byte.
#[cfg(feature = "parquet")]
#[test]
fn a_parquet_file_and_a_csv_file_of_the_same_data_give_identical_summaries() {
    use arrow_array::types::Int32Type;
    use arrow_array::{
        ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    };
    use std::sync::Arc;
    let _serial = serial();
    let n = 3_000;
    let age: Vec<Option<i64>> = (0..n)
        .map(|i| (i % 17 != 0).then_some(18 + i % 60))
        .collect();
    let income: Vec<Option<f64>> = (0..n)
        .map(|i| (i % 23 != 0).then(|| 1000.0 + (i * 37 % 500) as f64 * 1.25))
        .collect();
    let active: Vec<Option<bool>> = (0..n)
        .map(|i| (i % 29 != 0).then_some(i % 3 == 0))
        .collect();
    let plan: Vec<Option<String>> = (0..n)
        .map(|i| (i % 31 != 0).then(|| ["free", "pro", "team"][i as usize % 3].to_owned()))
        .collect();
    let city: Vec<Option<String>> = (0..n)
        .map(|i| (i % 13 != 0).then(|| format!("city{}", i % 40)))
        .collect();
    let score: Vec<f64> = (0..n).map(|i| (i % 100) as f64 / 100.0).collect();
    let truth: Vec<i64> = (0..n).map(|i| i64::from(i % 100 >= 50)).collect();

    let mut csv = String::from("age,income,active,plan,city,score,truth\n");
    let or_empty = |v: Option<String>| v.unwrap_or_default();
    for i in 0..n as usize {
        csv += &format!(
            "{},{},{},{},{},{},{}\n",
            or_empty(age[i].map(|x| x.to_string())),
            or_empty(income[i].map(|x| x.to_string())),
            or_empty(active[i].map(|x| x.to_string())),
            or_empty(plan[i].clone()),
            or_empty(city[i].clone()),
            score[i],
            truth[i]
        );
    }
    let dir = common::temp_dir("parquet");
    let (csv_path, parquet_path) = (dir.join("d.csv"), dir.join("d.parquet"));
    std::fs::write(&csv_path, csv).unwrap();
    let city: DictionaryArray<Int32Type> = city.iter().map(|c| c.as_deref()).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("age", Arc::new(Int64Array::from(age))),
        ("income", Arc::new(Float64Array::from(income))),
        ("active", Arc::new(BooleanArray::from(active))),
        ("plan", Arc::new(StringArray::from(plan))),
        ("city", Arc::new(city)),
        ("score", Arc::new(Float64Array::from(score))),
        ("truth", Arc::new(Int64Array::from(truth))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(&parquet_path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let mut o = Options::new("pq", KEY);
    o.prediction = Some("score".into());
    o.label = Some("truth".into());
    let from_csv = profile::profile_files(&[csv_path], &o).unwrap();
    let from_parquet = profile::profile_files(&[parquet_path], &o).unwrap();
    assert_eq!(from_csv.types, from_parquet.types);
    assert_eq!(from_csv.counts, from_parquet.counts);
    assert_eq!(from_parquet.summary.feature("city").unwrap().missing(), 231);
    assert_eq!(from_csv.summary.encode(), from_parquet.summary.encode());
    std::fs::remove_dir_all(&dir).ok();
}

/// Lines without quotes (the type sample's too) are split on commas and newlines without
/// the csv crate; the same rows with every cell quoted (which the csv crate splits), with
/// `\r\n` line ends, with blank lines, and with a quote appearing half-way, give the same
/// summary byte for byte, and the same counts.
#[test]
fn plain_lines_split_as_the_csv_crate_splits_them() {
    let _serial = serial();
    let rows = profile::SAMPLE_ROWS + 30_000;
    let cells = |i: usize| {
        [
            (i % 1000).to_string(),
            format!("{}.{}", i % 97, i % 13),
            if i.is_multiple_of(50) {
                String::new()
            } else {
                format!("city{}", i % 40)
            },
            // One cell longer than a read block, past the sample.
            if i == rows - 7 {
                "x".repeat(300_000)
            } else {
                format!("c{}", i % 3)
            },
        ]
    };
    let write = |quote_from: usize, line_end: &str, blank_every: usize| {
        let mut csv = format!("a,b,city,comment{line_end}").into_bytes();
        for i in 0..rows {
            let c = cells(i);
            let line = if i >= quote_from {
                c.map(|x| format!("\"{x}\"")).join(",")
            } else {
                c.join(",")
            };
            csv.extend(line.as_bytes());
            csv.extend(line_end.as_bytes());
            if blank_every > 0 && i.is_multiple_of(blank_every) {
                csv.extend(line_end.as_bytes());
            }
        }
        csv
    };
    let mut o = Options::new("x", KEY);
    o.threads = 1;
    let plain = read(&write(usize::MAX, "\n", 0), &o);
    assert_eq!(plain.counts.rows, rows as u64);
    assert_eq!(plain.counts.bad_rows, 0);
    let plain_bytes = plain.summary.encode();
    for (what, csv) in [
        ("every cell quoted", write(0, "\n", 0)),
        ("quotes from row 25,000 on", write(25_000, "\n", 0)),
        // Within the type sample: the sample is split by the csv crate.
        ("quotes from row 5,000 on", write(5_000, "\n", 0)),
        ("\\r\\n", write(usize::MAX, "\r\n", 0)),
        ("blank lines", write(usize::MAX, "\n", 997)),
        (
            "\\r\\n, blank lines and quotes",
            write(33_000, "\r\n", 1_001),
        ),
    ] {
        let p = read(&csv, &o);
        assert_eq!(p.counts, plain.counts, "{what}");
        assert_eq!(p.summary.encode(), plain_bytes, "{what}");
    }

    // A record of another field count is skipped and counted, split either way.
    for quote_from in [usize::MAX, 0] {
        let mut csv = write(quote_from, "\n", 0);
        csv.extend(b"1,2\n3,4,5,6,7\n");
        let p = read(&csv, &o);
        assert_eq!((p.counts.rows, p.counts.bad_rows), (rows as u64, 2));
        // And a last line without its newline is read all the same.
        csv.extend(b"9,9.5,z,w");
        let p = read(&csv, &o);
        assert_eq!((p.counts.rows, p.counts.bad_rows), (rows as u64 + 1, 2));
    }
}
