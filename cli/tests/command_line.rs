//! The command line itself, on the real binary: help on every subcommand, errors that
//! name the bad option, a closed pipe, relative times, and what `report` says when it
//! finds nothing.

mod client;
#[path = "../../tests/common/mod.rs"]
mod common;

use modelwatch::{SummaryBuilder, WindowSummary};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");
const HASH_KEY: [u8; 16] = *b"cli-test-hashkey";

fn modelwatch(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn window(deployment: &str, start: i64, rows: usize) -> WindowSummary {
    let mut b = SummaryBuilder::new(deployment, start, 60_000, HASH_KEY).identity(3, start as u64);
    for i in 0..rows {
        b.log_prediction([("x", i as f64)], 0.5);
    }
    b.build()
}

fn write(dir: &Path, s: &WindowSummary) {
    let name = format!("{}.{}.msgpack", s.deployment(), s.window_start());
    std::fs::write(dir.join(name), s.encode()).unwrap();
}

#[test]
fn every_subcommand_has_help_and_a_bad_option_is_named() {
    for command in ["inspect", "collect", "report"] {
        let o = modelwatch(&[command, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let out = text(&o.stdout);
        assert!(
            out.contains(&format!("Usage: modelwatch {command}")),
            "{out}"
        );
    }
    let o = modelwatch(&["help", "report"]);
    assert!(text(&o.stdout).contains("--baseline-windows"));
    let o = modelwatch(&["report", "--dir", ".", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--bogus"), "{o:?}");
    let o = modelwatch(&["report", "--dir", ".", "--since", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not a span of time"), "{o:?}");
    let o = modelwatch(&["report", "--dir", ".", "--from", "2026-13-01T00:00:00Z"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not a time"), "{o:?}");
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_output_quietly() {
    let dir = common::temp_dir("closed-pipe");
    for w in 0..1_200 {
        write(&dir, &window("svc", w * 60_000, 20));
    }
    let d = dir.to_str().unwrap();
    for args in [vec!["inspect", d], vec!["report", "--dir", d, "--json"]] {
        // More than a pipe holds (64 KiB), so the command is still writing when the
        // reader goes away, whatever the timing.
        let whole = modelwatch(&args);
        assert!(whole.stdout.len() > 256 << 10, "{}", whole.stdout.len());
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 100];
        let mut out = child.stdout.take().unwrap();
        out.read_exact(&mut first).unwrap();
        drop(out); // like `| head -c 100`
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(err, "", "{args:?}");
        assert!(status.code().is_some_and(|c| c < 2), "{args:?}: {status:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn since_reads_the_windows_of_the_last_span() {
    let dir = common::temp_dir("since");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Hourly starts, half an hour off the hour: 24 of them fall in the last 24 hours
    // however long the command takes to start.
    for k in 0..48 {
        write(&dir, &window("svc", now - k * 3_600_000 - 1_800_000, 10));
    }
    let count = |span: &str| {
        let o = modelwatch(&[
            "report",
            "--dir",
            dir.to_str().unwrap(),
            "--since",
            span,
            "--json",
        ]);
        let json: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&o.stderr)));
        json[0]["timeline"].as_array().unwrap().len()
    };
    assert_eq!(count("24h"), 24);
    assert_eq!(count("1d"), 24);
    assert_eq!(count("6h"), 6);
    assert_eq!(count("30d"), 48);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn finding_nothing_lists_the_deployments_that_exist() {
    let dir = common::temp_dir("nothing-found");
    for w in 0..3 {
        write(&dir, &window("alpha", 1_800_000_000_000 + w * 60_000, 10));
    }
    write(&dir, &window("beta", 1_800_000_000_000, 10));
    let o = modelwatch(&[
        "report",
        "--dir",
        dir.to_str().unwrap(),
        "--deployment",
        "gamma",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("no summaries of the deployment \"gamma\""),
        "{err}"
    );
    assert!(
        err.contains("alpha: 3 window(s), 2027-01-15T08:00:00Z to 2027-01-15T08:02:00Z"),
        "{err}"
    );
    assert!(err.contains("beta: 1 window(s)"), "{err}");

    // A store: empty, then holding one deployment.
    let store = dir.join("store.db");
    let s = modelwatch_cli::store::Store::open(&store).unwrap();
    let o = modelwatch(&["report", "--store", store.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("the source holds no summaries"),
        "{o:?}"
    );
    let w = window("alpha", 1_800_000_000_000, 10);
    s.insert("k", &w, &w.encode(), 0).unwrap();
    let o = modelwatch(&[
        "report",
        "--store",
        store.to_str().unwrap(),
        "--deployment",
        "alfa",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("alpha: 1 window(s)"), "{o:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn collect_takes_its_keys_from_the_environment() {
    let dir = common::temp_dir("env-keys");
    let keys = dir.join("keys");
    std::fs::write(&keys, "file-key-0123456789 svc_* id=team\n").unwrap();
    let log = dir.join("collect.log");
    let mut child = Command::new(BIN)
        .args(["collect", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.join("store.db"))
        .env("MODELWATCH_KEYS_FILE", &keys)
        .env("MODELWATCH_API_KEY", "env-key-0123456789")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(rest) = text.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(child.try_wait().unwrap().is_none(), "{text}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let body = |d: &str| window(d, 0, 1).encode();
    // The file's key writes its deployments only; the environment's key writes any.
    assert_eq!(
        client::post(&addr, "file-key-0123456789", &body("svc_a")).0,
        200
    );
    assert_eq!(
        client::post(&addr, "file-key-0123456789", &body("other")).0,
        403
    );
    assert_eq!(
        client::post(&addr, "env-key-0123456789", &body("other")).0,
        200
    );
    assert_eq!(
        client::post(&addr, "no-such-key-0123456", &body("other")).0,
        401
    );
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("warning"),
        "no key on the command line: {text}"
    );
    assert!(
        text.contains("stored 2, duplicates 0, unauthorized 1, forbidden 1"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
