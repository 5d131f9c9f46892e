//! The `modelwatch` command end to end: the real binary on real files, a real SQLite store
//! and real agents over HTTP on 127.0.0.1.

mod client;
#[path = "../../tests/common/mod.rs"]
mod common;

use client::{http, post};

use modelwatch::{Agent, Config, SummaryBuilder, Value, WindowSummary};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");
const KEY: &str = "collector-key";
/// The hash key of every summary these tests make (agents and builders alike).
const HASH_KEY: [u8; 16] = *b"cli-test-hashkey";

fn modelwatch(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_summary(dir: &Path, s: &WindowSummary) {
    let name = format!(
        "{}.{}.{:016x}.{:06}.msgpack",
        s.deployment(),
        s.window_start(),
        s.instance(),
        s.sequence()
    );
    std::fs::write(dir.join(name), s.encode()).unwrap();
}

#[test]
fn inspect_prints_tables_merges_and_names_broken_files() {
    let dir = common::temp_dir("inspect");
    for (i, deployment) in ["alpha", "alpha", "beta"].iter().enumerate() {
        let mut b = SummaryBuilder::new(deployment, 60_000 * i as i64, 60_000, HASH_KEY)
            .identity(7, i as u64);
        for x in 0..(10 * (i + 1)) {
            b.log_prediction([("x", x as f64)], 0.5);
        }
        write_summary(&dir, &b.build());
    }
    std::fs::write(dir.join("broken.msgpack"), b"\x93\x01garbage").unwrap();
    std::fs::write(dir.join("foreign.msgpack"), [0x81, 0xa1, b'a', 0x01]).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a summary").unwrap();

    let o = modelwatch(&["inspect", dir.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a skipped file makes the exit status 1"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken.msgpack") && err.contains("foreign.msgpack"),
        "{err}"
    );
    assert!(!err.contains("notes.txt"));
    let out = stdout(&o);
    assert_eq!(out.matches("== alpha").count(), 2, "{out}");
    assert_eq!(out.matches("== beta").count(), 1);

    let o = modelwatch(&["inspect", "--merge", dir.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(
        out.contains("== alpha") && out.contains("30 predictions"),
        "{out}"
    );

    let o = modelwatch(&[
        "inspect",
        "--json",
        dir.join("alpha.0.0000000000000007.000000.msgpack")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json[0]["predictions"], 10);
    assert_eq!(json[0]["features"]["x"]["count"], 10);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Server {
    child: std::process::Child,
    addr: String,
    store: PathBuf,
}

impl Server {
    fn start(tag: &str) -> Server {
        let dir = common::temp_dir(tag);
        let store = dir.join("store.db");
        let port = common::collector::free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args([
                "collect",
                "--listen",
                &addr,
                "--store",
                store.to_str().unwrap(),
                "--api-key",
                KEY,
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the collector did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, addr, store }
    }

    fn stored(&self) -> (u64, u64) {
        let s = modelwatch_cli::store::Store::open(&self.store).unwrap();
        (s.count().unwrap(), s.predictions().unwrap())
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap()
    }
}

#[test]
fn collect_validates_authenticates_and_stores_each_summary_once() {
    let server = Server::start("collect-basic");
    let (status, body) = http(
        &server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (200, "ok"));

    let mut b = SummaryBuilder::new("svc", 0, 60_000, HASH_KEY);
    b.log_prediction([("x", 1.0)], 0.5);
    let bytes = b.build().encode();
    assert_eq!(post(&server.addr, "wrong-key", &bytes).0, 401);
    assert_eq!(server.stored().0, 0, "nothing stored for a wrong key");
    let (status, reason) = post(&server.addr, KEY, b"\x00\x01not msgpack");
    assert_eq!(status, 400);
    assert!(reason.contains("malformed"), "{reason}");
    let too_big = format!(
        "POST /v1/windows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        modelwatch::MAX_SUMMARY_BYTES + 1
    );
    assert_eq!(http(&server.addr, too_big.as_bytes()).0, 413);
    // Stored once, acknowledged twice.
    assert_eq!(post(&server.addr, KEY, &bytes), (200, "stored".into()));
    assert_eq!(post(&server.addr, KEY, &bytes), (200, "duplicate".into()));
    assert_eq!(server.stored(), (1, 1));
    assert_eq!(
        http(
            &server.addr,
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .0,
        404
    );
    assert!(server.terminate().success());
}

#[test]
fn many_concurrent_agents_lose_nothing_and_a_graceful_stop_keeps_every_acknowledged_summary() {
    const AGENTS: usize = 16;
    const FLUSHES: usize = 25;
    let server = Server::start("collect-load");
    let endpoint = format!("http://{}", server.addr);
    let start = Instant::now();
    let logged: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..AGENTS)
            .map(|a| {
                let endpoint = endpoint.clone();
                s.spawn(move || {
                    let agent = Agent::start(
                        Config::new(KEY)
                            .endpoint(endpoint)
                            .hash_key(HASH_KEY)
                            .window(Duration::from_secs(3600)),
                    )
                    .unwrap();
                    let sess = agent.session(&format!("agent-{}", a % 4));
                    let mut n = 0;
                    for f in 0..FLUSHES {
                        for i in 0..(a + f + 1) {
                            sess.log_prediction(
                                [("i", Value::from(i)), ("a", Value::from(a))],
                                0.5,
                            );
                            n += 1;
                        }
                        agent.flush(Duration::from_secs(30)).unwrap(); // one summary each
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = start.elapsed();
    let (summaries, predictions) = server.stored();
    eprintln!(
        "collect load: {summaries} summaries from {AGENTS} concurrent agents in {:.2} s: {:.0} accepted summaries/s",
        elapsed.as_secs_f64(),
        summaries as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(summaries, (AGENTS * FLUSHES) as u64, "zero loss");
    assert_eq!(predictions, logged);

    // A graceful stop while an agent is sending: whatever was acknowledged is stored.
    let agent = Agent::start(
        Config::new(KEY)
            .endpoint(&endpoint)
            .hash_key(HASH_KEY)
            .request_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let sess = agent.session("stopping");
    let before = server.stored().0;
    let stopper = std::thread::spawn({
        let pid = server.child.id().to_string();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            Command::new("kill").args(["-TERM", &pid]).status().unwrap()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        sess.log_prediction([("x", 1)], 1);
        let _ = agent.flush(Duration::from_millis(200));
    }
    assert!(stopper.join().unwrap().success());
    let store = server.store.clone();
    let status = {
        let mut s = server;
        s.child.wait().unwrap()
    };
    assert!(status.success());
    let acknowledged = agent.stats().http_delivered;
    let stored = modelwatch_cli::store::Store::open(&store)
        .unwrap()
        .count()
        .unwrap()
        - before;
    assert!(acknowledged > 0);
    assert!(
        stored >= acknowledged,
        "acknowledged {acknowledged}, stored {stored}"
    );
}

// ---- drift detection on data ----

const WINDOW_MS: i64 = 60_000;
const ROWS_PER_WINDOW: usize = 5_000;

/// Writes the reference workload as 20 windows of 5,000 rows, with the given changes.
fn workload_windows(dir: &Path, change: impl Fn(usize, &mut [(&str, Value<'_>); 13], &mut u64)) {
    let rows = common::workload();
    for (w, chunk) in rows.chunks(ROWS_PER_WINDOW).enumerate() {
        let mut b = SummaryBuilder::new(
            "workload",
            1_800_000_000_000 + w as i64 * WINDOW_MS,
            WINDOW_MS as u64,
            HASH_KEY,
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15 ^ w as u64;
        for r in chunk {
            let mut pairs = r.pairs();
            change(w, &mut pairs, &mut seed);
            b.log_prediction(pairs, r.prediction);
            b.log_ground_truth(r.label, i64::from(r.prediction > 0.5), ["all"]);
        }
        write_summary(dir, &b.build());
    }
}

/// The report's incidents: kind, subject, and the window each opened in.
fn incidents(dir: &Path) -> Vec<(String, String, i64)> {
    let o = modelwatch(&[
        "report",
        "--dir",
        dir.to_str().unwrap(),
        "--baseline-windows",
        "3",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    json[0]["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let w = (f["opened_ms"].as_i64().unwrap() - 1_800_000_000_000) / WINDOW_MS;
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["subject"].as_str().unwrap().to_owned(),
                w,
            )
        })
        .collect()
}

fn next(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn an_unshifted_stream_raises_nothing() {
    let dir = common::temp_dir("report-steady");
    workload_windows(&dir, |_, _, _| {});
    let found = incidents(&dir);
    assert!(found.is_empty(), "false alarms: {found:?}");
    let o = modelwatch(&["report", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("No incidents against the baseline"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shifts_are_flagged_at_the_window_they_start_and_not_before() {
    let dir = common::temp_dir("report-shift");
    // Window 8 on: f0 doubled (a shift of 0.69 standard deviations of its log; scaled by
    // 1.25, PSI stays near 0.05, under the conventional 0.1). Window 12 on: cat_small's mix flipped (c01 becomes
    // c19, c02 becomes c20). Window 16 on: f2 missing for 10 % more rows.
    workload_windows(&dir, |w, pairs, seed| {
        if w >= 8 {
            if let Value::Float(x) = pairs[0].1 {
                pairs[0].1 = Value::Float(x * 2.0);
            }
        }
        if w >= 12 {
            if let Value::Str(c) = &pairs[10].1 {
                let flipped = match c.as_ref() {
                    "c01" => Some("c19"),
                    "c02" => Some("c20"),
                    _ => None,
                };
                if let Some(f) = flipped {
                    pairs[10].1 = Value::from(f);
                }
            }
        }
        if w >= 16 && next(seed) < 0.10 {
            pairs[2].1 = Value::Null;
        }
    });
    let found = incidents(&dir);
    let opened = |kind: &str, subject: &str| {
        let of: Vec<i64> = found
            .iter()
            .filter(|f| f.0 == kind && f.1 == subject)
            .map(|f| f.2)
            .collect();
        assert_eq!(of.len(), 1, "one incident for {kind} {subject}: {found:?}");
        of[0]
    };
    // Each change is one incident, opened within two windows of its start.
    assert!((8..10).contains(&opened("drift", "f0")), "{found:?}");
    assert!(
        (12..14).contains(&opened("drift", "cat_small")),
        "{found:?}"
    );
    assert!(
        (16..18).contains(&opened("missing_rate", "f2")),
        "{found:?}"
    );
    // Nothing at all before the first change.
    assert!(found.iter().all(|f| f.2 >= 8), "{found:?}");
    // The HTML page has the incidents and the charts.
    let html = dir.join("report.html");
    let o = modelwatch(&[
        "report",
        "--dir",
        dir.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "incidents make the exit status 1");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("distribution drift") && page.matches("<svg").count() > 10);
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
