//! Every attack of issue 13 on the command, replayed against the real binary: a collector
//! on 127.0.0.1 that must keep serving, and `inspect`/`report` on hostile files.
//!
//! Timing is asserted only where the issue demands it ("/healthz and an authorized write
//! within a second", and the quadratic-work sizes "in seconds"); the times are printed
//! (`--nocapture`).

mod client;

use client::{http, post};
use modelwatch::{SummaryBuilder, WindowSummary};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");
const KEY: &str = "hostile-test-key";
/// The hash key of the summaries these tests forge.
const HASH_KEY: [u8; 16] = *b"hostile-hash-key";

fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "modelwatch-hostile-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A collector process; killed when dropped.
struct Server {
    child: Child,
    addr: String,
    store: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts `modelwatch collect` on a free port with `args`, under `wrapper` (for example
    /// `prlimit --nofile=64`), and waits for it to listen.
    fn start(tag: &str, wrapper: &[&str], args: &[&str]) -> Server {
        let dir = temp_dir(tag);
        let store = dir.join("store.db");
        let log = dir.join("collect.log");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["collect", "--listen", "127.0.0.1:0", "--store"])
            .arg(&store)
            .args(args)
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the collector did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            addr,
            store,
            log,
        }
    }

    fn with_key(tag: &str) -> Server {
        Server::start(tag, &[], &["--api-key", KEY])
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A line of the collector's /proc status, as a number (`Threads`, `VmRSS` in kB).
    fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// Rows per key id.
    fn rows(&self) -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(&self.store).unwrap();
        let mut stmt = conn
            .prepare("SELECT key_id, deployment FROM windows ORDER BY key_id, deployment")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn healthz(&self) -> u16 {
        http(
            &self.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.store.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn summary(deployment: &str, instance: u64, sequence: u64) -> Vec<u8> {
    let mut b = SummaryBuilder::new(deployment, 0, 60_000, HASH_KEY).identity(instance, sequence);
    b.log_prediction([("x", 1.0)], 0.5);
    b.build().encode()
}

/// Opens a connection that sent `head` and nothing more.
fn half_open(addr: &str, head: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head).unwrap();
    s
}

#[test]
fn an_oversized_content_length_is_refused_unread_and_the_collector_lives() {
    let mut server = Server::with_key("oversized");
    let huge = 100_000_000_000u64;
    for (request, expected) in [
        (
            format!("POST /v1/windows HTTP/1.1\r\nHost: x\r\nContent-Length: {huge}\r\n\r\n"),
            401,
        ),
        (
            format!("POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {huge}\r\n\r\n"),
            413,
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {huge}\r\n\r\n"),
            200,
        ),
    ] {
        let (status, _) = http(&server.addr, request.as_bytes());
        assert_eq!(status, expected, "{request}");
        std::thread::sleep(Duration::from_millis(50));
        assert!(server.alive(), "the collector died after {request}");
    }
    // A chunked body larger than the limit, actually sent: cut off at the limit.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut status = 0;
    for _ in 0..(modelwatch::MAX_SUMMARY_BYTES >> 20) + 2 {
        if write!(s, "{:x}\r\n", chunk.len()).is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    if let Some(code) = answer.split_whitespace().nth(1) {
        status = code.parse().unwrap_or(0);
    }
    assert_eq!(status, 413, "{answer}");
    assert_eq!(server.healthz(), 200);
    assert!(server.alive());
    eprintln!(
        "oversized: collector RSS {} kB after the attacks",
        server.status("VmRSS")
    );
}

#[test]
fn stalled_bodies_do_not_stall_healthz_or_an_authorized_write() {
    let server = Server::with_key("stalled");
    let head = format!(
        "POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 5000\r\n\r\n"
    );
    let unauthorized = "POST /v1/windows HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    let held: Vec<TcpStream> = (0..16)
        .map(|_| half_open(&server.addr, head.as_bytes()))
        .chain((0..8).map(|_| half_open(&server.addr, unauthorized.as_bytes())))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(server.healthz(), 200);
    let healthz = t.elapsed();
    let t = Instant::now();
    assert_eq!(
        post(&server.addr, KEY, &summary("svc", 1, 1)),
        (200, "stored".into())
    );
    let write = t.elapsed();
    eprintln!(
        "stalled: with {} stalled bodies held, /healthz in {healthz:?}, an authorized write in {write:?}",
        held.len()
    );
    assert!(healthz < Duration::from_secs(1), "{healthz:?}");
    assert!(write < Duration::from_secs(1), "{write:?}");
    drop(held);
}

#[test]
fn a_body_that_stops_coming_times_out_and_frees_its_connection() {
    let server = Server::start(
        "body-timeout",
        &[],
        &[
            "--api-key",
            KEY,
            "--body-timeout",
            "0.5",
            "--header-timeout",
            "0.5",
        ],
    );
    let head = format!(
        "POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 5000\r\n\r\npartial"
    );
    let mut stalled = half_open(&server.addr, head.as_bytes());
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    for s in [&mut stalled, &mut idle] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let t = Instant::now();
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // An idle connection is closed after the header timeout (read returns 0: EOF).
    let mut byte = [0u8; 1];
    assert_eq!(idle.read(&mut byte).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(server.healthz(), 200);
}

#[test]
fn two_thousand_idle_half_header_connections_hold_the_cap_and_few_threads() {
    let mut server = Server::start(
        "idle",
        &[],
        &[
            "--api-key",
            KEY,
            "--max-connections",
            "256",
            "--header-timeout",
            "5",
        ],
    );
    let threads_before = server.status("Threads");
    let t = Instant::now();
    let held: Vec<TcpStream> = (0..2000)
        .filter_map(|_| {
            let mut s = TcpStream::connect(&server.addr).ok()?;
            let _ = s.write_all(b"POST /v1/windows HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect();
    let opened = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let threads = server.status("Threads");
    let descriptors = server.open_descriptors();
    let rss = server.status("VmRSS");
    eprintln!(
        "idle: {} connections opened in {opened:?}; collector threads {threads_before} -> {threads}, open descriptors {descriptors}, RSS {rss} kB",
        held.len()
    );
    assert_eq!(held.len(), 2000);
    assert!(threads <= threads_before + 4, "{threads} threads");
    // 256 connections, the listener, the store (database, WAL, shm) and a few more.
    assert!(descriptors < 256 + 32, "{descriptors} descriptors");
    // The excess was answered 503 (an agent retries) and closed at once: most of the 2,000
    // (some slots may have freed if opening them took longer than the header timeout).
    let shed = held
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut answer = [0u8; 12];
            matches!((&**s).read(&mut answer), Ok(12) if answer.starts_with(b"HTTP/1.1 503"))
        })
        .count();
    eprintln!("idle: {shed} connections answered 503 over capacity");
    assert!(shed >= 1000, "{shed} answered 503");
    // The held ones time out (header timeout 5 s); then it serves again.
    let t = Instant::now();
    while server.healthz() != 200 {
        assert!(t.elapsed() < Duration::from_secs(8), "never served again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        post(&server.addr, KEY, &summary("svc", 1, 1)),
        (200, "stored".into())
    );
    assert!(server.alive());
    drop(held);
}

#[test]
fn descriptor_exhaustion_is_survived_and_it_serves_once_they_close() {
    let mut server = Server::start(
        "nofile",
        &["prlimit", "--nofile=64"],
        &["--api-key", KEY, "--header-timeout", "30"],
    );
    let held: Vec<TcpStream> = (0..150)
        .filter_map(|_| {
            let mut s = TcpStream::connect(&server.addr).ok()?;
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.alive(), "{}", server.log());
    drop(held);
    // The back-off is at most a second; connections queued meanwhile are served.
    let t = Instant::now();
    while server.healthz() != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "never served again: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let back = t.elapsed();
    assert_eq!(
        post(&server.addr, KEY, &summary("svc", 1, 1)),
        (200, "stored".into())
    );
    let log = server.log();
    eprintln!(
        "nofile: {} accept failures logged; serving again {back:?} after the connections closed",
        log.matches("accept failed").count()
    );
    assert!(log.contains("accept failed"), "{log}");
    assert!(server.alive());
}

fn keys_file(dir: &Path) -> PathBuf {
    let file = dir.join("keys");
    std::fs::write(
        &file,
        "# tenants\nkey-a fraud_* id=tenant-a\nkey-b churn_model id=tenant-b\nkey-ops *\n",
    )
    .unwrap();
    file
}

#[test]
fn a_key_writes_only_its_deployments_and_cannot_pre_empt_another_key() {
    let dir = temp_dir("tenancy-keys");
    let keys = keys_file(&dir);
    let server = Server::start("tenancy", &[], &["--keys-file", keys.to_str().unwrap()]);
    // B may not write A's deployment, even under A's (instance, sequence).
    let victim = summary("fraud_detection", 7, 1);
    assert_eq!(post(&server.addr, "key-b", &victim).0, 403);
    assert_eq!(
        post(&server.addr, "key-b", &summary("churn_model", 7, 1)),
        (200, "stored".into())
    );
    // A key that may write everything posts first under A's identity: A's own is still
    // stored, and A's retry is A's duplicate.
    assert_eq!(
        post(&server.addr, "key-ops", &victim),
        (200, "stored".into())
    );
    assert_eq!(post(&server.addr, "key-a", &victim), (200, "stored".into()));
    assert_eq!(
        post(&server.addr, "key-a", &victim),
        (200, "duplicate".into())
    );
    assert_eq!(
        post(&server.addr, "key-a", &summary("churn_model", 8, 1)).0,
        403
    );
    assert_eq!(post(&server.addr, "key-unknown", &victim).0, 401);
    let rows = server.rows();
    let ops_id = rows
        .iter()
        .find(|(id, _)| !id.starts_with("tenant"))
        .map(|r| r.0.clone())
        .unwrap();
    assert_eq!(ops_id.len(), 8, "a key without id= is named by its digest");
    let mut expected = vec![
        (ops_id, "fraud_detection".to_owned()),
        ("tenant-a".to_owned(), "fraud_detection".to_owned()),
        ("tenant-b".to_owned(), "churn_model".to_owned()),
    ];
    expected.sort();
    assert_eq!(rows, expected);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_from_before_keys_is_migrated_and_keeps_working() {
    let dir = temp_dir("migrate");
    let path = dir.join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE windows (
                deployment TEXT NOT NULL, window_start INTEGER NOT NULL,
                instance INTEGER NOT NULL, sequence INTEGER NOT NULL,
                window_ms INTEGER NOT NULL, predictions INTEGER NOT NULL,
                received_ms INTEGER NOT NULL, body BLOB NOT NULL,
                PRIMARY KEY (deployment, window_start, instance, sequence)) WITHOUT ROWID;",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO windows VALUES ('svc', 0, 7, 1, 60000, 1, 0, ?1)",
            [summary("svc", 7, 1)],
        )
        .unwrap();
    }
    let store = modelwatch_cli::store::Store::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 1);
    let s = WindowSummary::decode(&summary("svc", 7, 2)).unwrap();
    let stored = store.insert("k", &s, &s.encode(), 0).unwrap();
    assert_eq!(stored, modelwatch_cli::store::Stored::New);
    assert_eq!(store.load(Some("svc"), 0, 1).unwrap().len(), 2);
    drop(store);
    // Opening again is a no-op.
    assert_eq!(
        modelwatch_cli::store::Store::open(&path)
            .unwrap()
            .count()
            .unwrap(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- inspect and report on hostile files ----

/// `bytes` (an encoded summary) with `edit` applied to its MessagePack form: for shapes
/// the builder's caps would not let through, but the wire format allows.
fn forge(bytes: &[u8], edit: impl FnOnce(&mut rmpv::Value)) -> Vec<u8> {
    let mut v = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    edit(&mut v);
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &v).unwrap();
    out
}

fn field<'a>(v: &'a mut rmpv::Value, name: &str) -> &'a mut rmpv::Value {
    match v {
        rmpv::Value::Map(pairs) => pairs
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {name}")),
        _ => panic!("not a map"),
    }
}

/// What the quadratic-work cases may take, even in a debug build on a busy machine: they
/// take a few seconds; quadratic, they took a minute in a release build.
const SECONDS: Duration = Duration::from_secs(30);

fn run(args: &[&str]) -> (std::process::Output, Duration) {
    let t = Instant::now();
    let out = Command::new(BIN).args(args).output().unwrap();
    (out, t.elapsed())
}

#[test]
fn two_hundred_thousand_exceptions_report_in_seconds() {
    const N: usize = 200_000;
    let dir = temp_dir("exceptions");
    for (window, sequence) in [(0, 1), (60_000, 2)] {
        let mut b = SummaryBuilder::new("svc", window, 60_000, HASH_KEY).identity(1, sequence);
        b.log_prediction([("x", 1.0)], 0.5);
        b.log_exception("seed", [("k", "v")]);
        let bytes = forge(&b.build().encode(), |v| {
            *field(v, "exceptions") = rmpv::Value::Array(
                (0..N)
                    .map(|i| {
                        rmpv::Value::Map(vec![
                            ("message".into(), format!("error number {i}").into()),
                            ("tags".into(), rmpv::Value::Array(vec![])),
                            ("count".into(), 1.into()),
                        ])
                    })
                    .collect(),
            );
        });
        assert_eq!(WindowSummary::decode(&bytes).unwrap().exceptions().len(), N);
        std::fs::write(dir.join(format!("svc.{window}.msgpack")), bytes).unwrap();
    }
    let d = dir.to_str().unwrap();
    let (out, took) = run(&["report", "--dir", d, "--baseline-windows", "1"]);
    assert!(out.status.code().is_some_and(|c| c < 2), "{out:?}");
    let (json, took_json) = run(&["inspect", "--json", "--merge", d]);
    assert_eq!(json.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["exceptions"].as_array().unwrap().len(), N);
    eprintln!(
        "exceptions: {N} per summary, report in {took:?}, inspect --json --merge in {took_json:?}"
    );
    assert!(took < SECONDS && took_json < SECONDS);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forty_thousand_classes_inspect_in_seconds() {
    const N: usize = 40_000;
    let dir = temp_dir("classes");
    let mut b = SummaryBuilder::new("svc", 0, 60_000, HASH_KEY).identity(1, 1);
    b.log_prediction([("x", 1.0)], "c0");
    b.log_ground_truth("c0", "c1", ["web"]);
    let bytes = forge(&b.build().encode(), |v| {
        let classes = rmpv::Value::Array((0..N).map(|i| format!("c{i}").into()).collect());
        let cells = rmpv::Value::Array(
            (0..N as u64)
                .map(|i| {
                    rmpv::Value::Array(vec![i.into(), ((i + i % 2) % N as u64).into(), 1.into()])
                })
                .collect(),
        );
        let gt_web = field(field(v, "ground_truth"), "web");
        *field(gt_web, "classes") = classes.clone();
        *field(gt_web, "cells") = cells.clone();
        *field(gt_web, "count") = (N as u64).into();
        let overall = field(v, "ground_truth_overall");
        *field(overall, "classes") = classes;
        *field(overall, "cells") = cells;
        *field(overall, "count") = (N as u64).into();
    });
    let s = WindowSummary::decode(&bytes).unwrap();
    assert_eq!(s.ground_truth("web").unwrap().classes().count(), N);
    let file = dir.join("svc.msgpack");
    std::fs::write(&file, bytes).unwrap();
    let (json, took_json) = run(&["inspect", "--json", file.to_str().unwrap()]);
    assert_eq!(json.status.code(), Some(0), "{json:?}");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v[0]["ground_truth"]["web"]["classes"]
            .as_object()
            .unwrap()
            .len(),
        N
    );
    let (text, took_text) = run(&["inspect", file.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(0));
    // Merged with a copy of itself: every cell of one is looked up among the other's.
    std::fs::copy(&file, dir.join("svc-copy.msgpack")).unwrap();
    let d = dir.to_str().unwrap();
    let (merged, took_merge) = run(&["inspect", "--json", "--merge", d]);
    assert_eq!(merged.status.code(), Some(0), "{merged:?}");
    let v: serde_json::Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(v[0]["ground_truth"]["web"]["count"], 2 * N as u64);
    assert_eq!(
        v[0]["ground_truth"]["web"]["classes"]
            .as_object()
            .unwrap()
            .len(),
        N
    );
    eprintln!(
        "classes: {N}, inspect --json in {took_json:?}, inspect in {took_text:?}, \
         inspect --json --merge of two in {took_merge:?}"
    );
    assert!(took_json < SECONDS && took_text < SECONDS && took_merge < SECONDS);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_text_reaches_the_terminal_escaped() {
    let dir = temp_dir("ansi");
    let forged = "\n  FAKE LINE: accuracy=100%";
    for window in 0..4 {
        let mut b = SummaryBuilder::new(
            "svc\u{1b}]0;pwned\u{7}\u{1b}[2J",
            window * 60_000,
            60_000,
            HASH_KEY,
        )
        .identity(1, window as u64 + 1);
        for i in 0..50 {
            b.log_prediction(
                [(format!("amount{forged}\u{1b}[31m").as_str(), f64::from(i))],
                0.5,
            );
            b.log_ground_truth(i % 2 == 0, true, [format!("seg{forged}\u{9b}2J")]);
        }
        for _ in 0..(if window == 3 { 200 } else { 1 }) {
            b.log_exception(&format!("boom{forged}\u{1b}[H"), [("user", "x\r\u{202e}")]);
        }
        b.log_metadata("model\u{1b}[8m", &format!("1.0{forged}"));
        std::fs::write(dir.join(format!("w{window}.msgpack")), b.build().encode()).unwrap();
    }
    let d = dir.to_str().unwrap();
    for args in [
        vec!["inspect", d],
        vec!["inspect", "--merge", d],
        vec!["report", "--dir", d, "--baseline-windows", "2"],
    ] {
        let (out, _) = run(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "{args:?}: {out:?}"
        );
        assert!(text.contains("svc\\x1b]0;pwned\\x07"), "{args:?}: {text}");
        for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}'] {
            assert!(!text.contains(bad), "{args:?} printed {bad:?}: {text}");
        }
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("FAKE LINE")),
            "{args:?}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_symlink_in_a_folder_is_reported_and_skipped() {
    let dir = temp_dir("symlink");
    std::fs::write(dir.join("a.msgpack"), summary("svc", 1, 1)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.msgpack")).unwrap();
    std::os::unix::fs::symlink(dir.join("a.msgpack"), dir.join("link.msgpack")).unwrap();
    let (out, took) = run(&["inspect", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("zero.msgpack") && err.contains("symlink"),
        "{err}"
    );
    assert!(err.contains("link.msgpack"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("== svc")
            .count(),
        1
    );
    assert!(took < Duration::from_secs(10));
    // Named on the command line, a device is refused too.
    let (out, _) = run(&["inspect", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    let _ = std::fs::remove_dir_all(&dir);
}
