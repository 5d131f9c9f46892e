//! The losses of issue 16, reproduced against a real HTTP collector on 127.0.0.1
//! (tests/common/collector.rs): each test asserts that every prediction arrives exactly
//! once and that the summaries' windows are true to their length.

mod common;

use common::collector::{free_port, Collector, Mode};
use common::{assert_true_windows, folder_summaries, log_steadily, temp_dir};
use modelwatch::{Agent, Config, ErrorKind};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "test-api-key";
const HASH_KEY: [u8; 16] = *b"test-hash-key-16";
const LONG: Duration = Duration::from_secs(30);

fn config(endpoint: &str) -> Config {
    Config::new(KEY)
        .no_data_dir()
        .endpoint(endpoint)
        .hash_key(HASH_KEY)
        .window(Duration::from_secs(1))
        .upload_interval(Duration::from_millis(200))
}

#[test]
fn an_outage_then_recovery_then_shutdown_delivers_the_whole_backlog_at_once() {
    let collector = Collector::start(KEY);
    collector.set_mode(Mode::Status(500));
    let agent = Agent::start(config(&collector.endpoint())).unwrap();
    let sess = agent.session("outage");
    let logged = log_steadily(&sess, Duration::from_millis(2500));
    // Push the next retry a minute away: a shutdown that followed the back-off would
    // sleep toward it and lose everything.
    collector.set_mode(Mode::TooMany(60));
    let asked = collector.requests();
    collector.wait_for("a 429", |c| c.requests() > asked, LONG);
    collector.set_mode(Mode::Accept);
    assert!(agent.stats().backlog_len > 0, "{:?}", agent.stats());
    let start = Instant::now();
    agent.shutdown(Duration::from_secs(10)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "answered within its deadline"
    );
    assert_eq!(collector.predictions(), logged.predictions);
    assert_true_windows(&collector.unique_summaries(), &logged);
}

#[test]
fn a_silent_collector_never_delays_the_folder_nor_stretches_a_window() {
    let collector = Collector::start(KEY);
    collector.set_mode(Mode::Hang);
    let dir = temp_dir("silent");
    let agent = Agent::start(
        config(&collector.endpoint())
            .data_dir(&dir)
            .request_timeout(Duration::from_secs(600)),
    )
    .unwrap();
    let sess = agent.session("silent");
    let first = log_steadily(&sess, Duration::from_millis(2500));
    collector.wait_for("a hanging request", |c| c.requests() >= 1, LONG);
    // The seconds already past reach the folder while the request hangs (the old worker
    // waited 600 s for it).
    let past: u64 = first.predictions;
    let start = Instant::now();
    loop {
        let stored: u64 = folder_summaries(&dir).iter().map(|s| s.predictions()).sum();
        if stored == past {
            break;
        }
        // The last second is sealed when it ends: a window and a tick from now.
        assert!(start.elapsed() < LONG, "{stored} of {past} in the folder");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.stats().backlog_len > 1, "stats stay current");
    let more = log_steadily(&sess, Duration::from_millis(1500));
    let e = agent.shutdown(Duration::from_secs(2)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Delivery),
        "{e}"
    );
    let u = e.undelivered().expect("says what was left");
    assert!(u.waiting_http > 1 && u.waiting_local == 0, "{e}");
    let summaries = folder_summaries(&dir);
    let total: u64 = summaries.iter().map(|s| s.predictions()).sum();
    assert_eq!(total, first.predictions + more.predictions);
    let mut all = first;
    all.certain.extend(more.certain);
    all.possible.extend(more.possible);
    assert_true_windows(&summaries, &all);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_run_is_reported_by_shutdown_and_stats() {
    let collector = Collector::start("the-right-key");
    // k = 1: no last summary of held-back values at shutdown, three summaries in all.
    let agent = Agent::start(config(&collector.endpoint()).min_values_per_window(1)).unwrap();
    let sess = agent.session("refused");
    for _ in 0..3 {
        sess.log_prediction([("x", 1)], 1);
        let e = agent.flush(LONG).unwrap_err();
        assert_eq!(e.undelivered().unwrap().rejected[&401], 1, "{e}");
    }
    assert_eq!(agent.stats().http_rejected[&401], 3);
    let e = agent.shutdown(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Delivery);
    assert_eq!(e.undelivered().unwrap().rejected[&401], 3, "the whole run");
    assert!(e.to_string().contains("3 with status 401"), "{e}");
}

#[test]
fn a_folder_deleted_or_unwritable_for_a_while_loses_nothing() {
    let parent = temp_dir("unwritable");
    let dir = parent.join("data");
    let agent = Agent::start(
        Config::new(KEY)
            .data_dir(&dir)
            .hash_key(HASH_KEY)
            .window(Duration::from_secs(3600)),
    )
    .unwrap();
    let sess = agent.session("folder");
    let mut logged = 0;
    let mut round = |expect_ok: bool| {
        for _ in 0..10 {
            sess.log_prediction([("x", logged)], 1);
            logged += 1;
        }
        let r = agent.flush(LONG);
        assert_eq!(r.is_ok(), expect_ok, "{r:?}");
    };
    round(true);
    // Deleted: created again on the next write.
    std::fs::remove_dir_all(&dir).unwrap();
    round(true);
    // A file where the folder was: nothing can be written (root ignores permissions, so
    // a read-only mode would not do), and the summaries wait.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a folder").unwrap();
    round(false);
    round(false);
    let stats = agent.stats();
    assert_eq!(stats.local_backlog_len, 2, "{stats:?}");
    assert!(
        stats.local_backlog_bytes > 0 && stats.failed >= 2,
        "{stats:?}"
    );
    std::fs::remove_file(&dir).unwrap();
    agent.shutdown(LONG).unwrap();
    let summaries = folder_summaries(&dir);
    assert_eq!(
        summaries.len(),
        2,
        "the two summaries written after recovery"
    );
    assert_eq!(
        summaries.iter().map(|s| s.predictions()).sum::<u64>(),
        20,
        "the first two went into the folder that was deleted"
    );
    assert_eq!(agent.stats().local_backlog_len, 0);
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn a_local_backlog_past_its_bound_drops_the_oldest_and_says_so() {
    let parent = temp_dir("local-bound");
    let dir = parent.join("data");
    std::fs::write(&dir, b"not a folder").unwrap();
    let agent = Agent::start(
        Config::new(KEY)
            .no_data_dir()
            .sink(modelwatch::FolderSink::new(parent.join("ok")).unwrap())
            .sink(UnwritableUntilFixed(dir.clone()))
            .hash_key(HASH_KEY)
            // No values held back for a last summary at shutdown: 20 summaries exactly.
            .min_values_per_window(1)
            .max_backlog_bytes(1_000)
            .window(Duration::from_secs(3600)),
    )
    .unwrap();
    let sess = agent.session("bound");
    for i in 0..20 {
        sess.log_prediction([("x", i)], 1);
        let e = agent.flush(LONG).unwrap_err();
        assert!(agent.stats().local_backlog_bytes <= 1_000, "{e}");
    }
    let stats = agent.stats();
    assert!(stats.local_dropped > 0, "{stats:?}");
    assert_eq!(
        stats.local_dropped + stats.local_backlog_len as u64,
        20,
        "each summary is waiting or counted as dropped"
    );
    let e = agent.shutdown(Duration::from_secs(2)).unwrap_err();
    let u = e.undelivered().unwrap();
    assert_eq!(u.dropped, stats.local_dropped, "{e}");
    assert_eq!(u.waiting_local, stats.local_backlog_len as u64, "{e}");
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn a_running_agents_spool_is_left_to_it_and_adopted_once_it_is_gone() {
    let dir = temp_dir("shared-spool");
    let down = format!("http://127.0.0.1:{}", free_port());
    let collector = Collector::start(KEY);
    let on = |endpoint: &str| {
        Agent::start(
            Config::new(KEY)
                .data_dir(&dir)
                .endpoint(endpoint)
                .hash_key(HASH_KEY)
                .window(Duration::from_secs(3600)),
        )
        .unwrap()
    };
    // A sends to a collector that is down: its summary waits in the shared spool.
    let a = on(&down);
    for i in 0..10 {
        a.session("shared").log_prediction([("x", i)], 1);
    }
    assert!(a.flush(Duration::from_millis(300)).is_err());
    assert_eq!(folder_summaries(&dir.join("spool")).len(), 1);
    // B starts on the same folder while A runs: A's summary is A's to send.
    let b = on(&collector.endpoint());
    b.shutdown(LONG).unwrap();
    assert_eq!(collector.requests(), 0);
    // A gives up (still down) and ends; the summary stays spooled for the next agent.
    let e = a.shutdown(Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.undelivered().unwrap().waiting_http, 1, "{e}");
    drop(a);
    let c = on(&collector.endpoint());
    c.shutdown(LONG).unwrap();
    assert_eq!(collector.predictions(), 10);
    assert_eq!(collector.stored().len(), 1);
    assert!(folder_summaries(&dir.join("spool")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A folder sink at a path that is a file: every write fails.
struct UnwritableUntilFixed(std::path::PathBuf);
impl modelwatch::Sink for UnwritableUntilFixed {
    fn deliver(&mut self, s: &modelwatch::WindowSummary, encoded: &[u8]) -> std::io::Result<()> {
        modelwatch::FolderSink::new(&self.0)?.deliver(s, encoded)
    }
}

// ---- in child processes: debug output into a pipe nobody reads, kill -9 and the spool ----

/// Run by the tests below as a child process (`MODELWATCH_LOSS_CHILD` says what to do).
#[test]
#[ignore = "run as a child process by the tests below"]
fn loss_child() {
    let mode = std::env::var("MODELWATCH_LOSS_CHILD").expect("child mode");
    let dir = std::env::var("MODELWATCH_DIR").unwrap();
    match mode.as_str() {
        "debug" => {
            let agent = Agent::start(
                Config::new(KEY)
                    .data_dir(&dir)
                    .hash_key(HASH_KEY)
                    .window(Duration::from_secs(3600))
                    .debug_to_stderr(true),
            )
            .unwrap();
            let sess = agent.session("debug");
            // 400 summaries, each a table of about 1 KB: far past a 64 KB pipe.
            for i in 0..400u64 {
                for j in 0..10 {
                    sess.log_prediction([("i", i), ("j", j)], 1);
                }
                agent.flush(LONG).unwrap();
            }
            agent.shutdown(LONG).unwrap();
            println!("debug_dropped {}", agent.stats().debug_dropped);
        }
        "spool" => {
            let endpoint = std::env::var("MODELWATCH_ENDPOINT").unwrap();
            let agent = Agent::start(
                Config::new(KEY)
                    .data_dir(&dir)
                    .endpoint(endpoint)
                    .hash_key(HASH_KEY)
                    .window(Duration::from_secs(3600)),
            )
            .unwrap();
            let sess = agent.session("spool");
            for i in 0..5u64 {
                for j in 0..100 {
                    sess.log_prediction([("i", i), ("j", j)], 1);
                }
                // The collector is down: each flush seals a summary that stays unsent.
                assert!(agent.flush(Duration::from_millis(200)).is_err());
            }
            println!("sealed");
            std::thread::sleep(Duration::from_secs(600));
        }
        "fsize" => {
            // Run under `ulimit -f 0`: every write to a file fails.
            let agent = Agent::start(
                Config::new(KEY)
                    .data_dir(&dir)
                    .hash_key(HASH_KEY)
                    .window(Duration::from_secs(3600)),
            )
            .unwrap();
            agent.session("fsize").log_prediction([("x", 1)], 1);
            let e = agent.flush(LONG).unwrap_err();
            assert_eq!(e.undelivered().unwrap().waiting_local, 1, "{e}");
            println!("survived");
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn child(mode: &str, dir: &std::path::Path, endpoint: &str) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args([
        "--ignored",
        "--exact",
        "loss_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MODELWATCH_LOSS_CHILD", mode)
    .env("MODELWATCH_DIR", dir)
    .env("MODELWATCH_ENDPOINT", endpoint)
    .stdin(std::process::Stdio::null());
    c
}

#[cfg(unix)]
#[test]
fn debug_mode_into_a_pipe_nobody_reads_loses_no_summary() {
    use std::io::Read;
    let dir = temp_dir("debug-pipe");
    let mut c = child("debug", &dir, "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // stderr is held open and never read.
    let _unread = c.stderr.take();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success(), "{out}");
    let dropped: u64 = out
        .split("debug_dropped ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the child's report: {out}"))
        .parse()
        .unwrap();
    assert!(dropped > 0, "tables past the pipe's capacity were dropped");
    let summaries = folder_summaries(&dir);
    assert_eq!(summaries.len(), 400);
    assert_eq!(
        summaries.iter().map(|s| s.predictions()).sum::<u64>(),
        4_000
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn a_file_size_limit_is_a_sink_error_not_a_killed_host() {
    let dir = temp_dir("fsize");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 0 && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "loss_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MODELWATCH_LOSS_CHILD", "fsize")
        .env("MODELWATCH_DIR", &dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("survived"),
        "{:?}: {stdout}",
        out.status
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn summaries_spooled_before_a_kill_9_are_sent_by_the_next_agent_exactly_once() {
    use std::io::BufRead;
    let dir = temp_dir("spool");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut c = child("spool", &dir, &endpoint)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("sealed") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended early"
        );
    }
    c.kill().unwrap(); // SIGKILL: no destructor, no shutdown
    c.wait().unwrap();
    let collector = Collector::start_on(port, KEY);
    let next = Agent::start(
        Config::new(KEY)
            .data_dir(&dir)
            .endpoint(&endpoint)
            .hash_key(HASH_KEY),
    )
    .unwrap();
    next.shutdown(LONG).unwrap();
    let got = collector.unique_summaries();
    assert_eq!(got.len(), 5);
    assert_eq!(collector.predictions(), 500);
    assert_eq!(
        collector.stored().len(),
        5,
        "each spooled summary sent once"
    );
    assert!(
        folder_summaries(&dir.join("spool")).is_empty(),
        "the spool is empty once delivered"
    );
    // A third agent finds nothing to send again.
    let third = Agent::start(
        Config::new(KEY)
            .data_dir(&dir)
            .endpoint(&endpoint)
            .hash_key(HASH_KEY),
    )
    .unwrap();
    third.shutdown(LONG).unwrap();
    assert_eq!(collector.stored().len(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}
