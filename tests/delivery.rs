//! Delivery to a real HTTP collector on 127.0.0.1 (tests/common/collector.rs): a collector
//! that is down, failing, rate-limiting, dropping connections or never answering; the
//! backlog bound; refused summaries; the request format; privacy over the wire; and process
//! exit in a child process (returning from main, SIGTERM, SIGINT, a dead collector).

mod common;

use common::collector::{free_port, Collector, Mode};
use modelwatch::{Agent, Config, ErrorKind, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const KEY: &str = "test-api-key";
/// The hash key every agent with an endpoint needs (it never derives from `KEY`).
const HASH_KEY: [u8; 16] = *b"test-hash-key-16";
const LONG: Duration = Duration::from_secs(30);

/// Captures `log` records, so tests can check what the agent says (and how often).
struct Capture;
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        if r.target().starts_with("modelwatch") {
            LOGS.lock()
                .unwrap()
                .push(format!("{} {} {}", r.level(), r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}
fn capture_logs() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
}
fn logs_with(text: &str) -> usize {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(text))
        .count()
}

fn http_agent(endpoint: &str) -> Config {
    Config::new(KEY)
        .no_data_dir()
        .endpoint(endpoint)
        .hash_key(HASH_KEY)
        .window(Duration::from_secs(3600))
}

#[test]
fn collector_down_at_start_gets_every_prediction_exactly_once_when_it_comes_up() {
    let port = free_port();
    let agent = Agent::start(
        http_agent(&format!("http://127.0.0.1:{port}")).window(Duration::from_secs(1)),
    )
    .unwrap();
    let sess = agent.session("down-then-up");
    let mut logged = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        sess.log_prediction([("x", logged)], 0.5);
        logged += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        agent.stats().http_retries > 0,
        "the agent tried while the collector was down"
    );
    let collector = Collector::start_on(port, KEY);
    // Each stored summary is then answered by a broken connection once: the agent retries,
    // the collector receives duplicates and keeps each (instance, sequence) once.
    collector.script(std::iter::repeat_n(Mode::StoreThenClose, 2));
    agent.flush(LONG).unwrap();
    assert_eq!(
        collector.predictions(),
        logged,
        "every prediction arrives once after de-duplication"
    );
    assert!(
        collector.stored().len() > collector.unique_summaries().len(),
        "duplicates were sent and dropped"
    );
    let stats = agent.stats();
    assert_eq!((stats.backlog_len, stats.http_dropped_backlog), (0, 0));
}

#[test]
fn errors_and_rate_limits_are_retried_with_backoff_and_retry_after() {
    let collector = Collector::start(KEY);
    collector.script([
        Mode::Status(500),
        Mode::Status(503),
        Mode::TooMany(2),
        Mode::StoreThenClose,
    ]);
    // No flush: a one-second window is sealed on its own and sent in normal running, where
    // back-off paces the retries (a flush would try at once).
    let agent = Agent::start(
        http_agent(&collector.endpoint())
            .window(Duration::from_secs(1))
            .upload_interval(Duration::from_millis(100)),
    )
    .unwrap();
    agent.session("retry").log_prediction([("x", 1)], 1);
    let start = Instant::now();
    while agent.stats().http_delivered == 0 {
        assert!(start.elapsed() < LONG, "not delivered: {:?}", agent.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(collector.predictions(), 1);
    assert_eq!(agent.stats().http_retries, 4);
    collector.with_requests(|r| {
        assert_eq!(r.len(), 5);
        // Backoff grows; Retry-After: 2 is honoured.
        let gaps: Vec<Duration> = r.windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(gaps[0] >= Duration::from_millis(250), "{gaps:?}");
        assert!(
            gaps[2] >= Duration::from_secs(2),
            "Retry-After ignored: {gaps:?}"
        );
    });
}

#[test]
fn a_collector_that_never_answers_neither_blocks_logging_nor_shutdown() {
    let collector = Collector::start(KEY);
    collector.set_mode(Mode::Hang);
    // A window that does not end during the test: the sealer, which swaps windows out
    // under the shard locks, stays out of the count below.
    let agent =
        Agent::start(http_agent(&collector.endpoint()).request_timeout(Duration::from_secs(60)))
            .unwrap();
    let sess = agent.session("hang");
    sess.log_prediction([("x", 1)], 1);
    // Sent by a flush, which gives up on its own; the request goes on hanging.
    assert!(agent.flush(Duration::from_millis(300)).is_err());
    // Wait until the worker is stuck in a request that will not be answered...
    collector.wait_for("a hanging request", |c| c.requests() >= 1, LONG);
    // ...then log on this thread: no call waits for the network.
    let before = agent.stats().contended_log_calls;
    for i in 0..100_000 {
        sess.log_prediction([("x", i)], 1);
    }
    let waited = agent.stats().contended_log_calls - before;
    assert_eq!(
        waited, 0,
        "log calls that waited for a lock while the worker was sending"
    );
    let start = Instant::now();
    let timeout = Duration::from_secs(2);
    let e = agent.shutdown(timeout).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Delivery),
        "{e}"
    );
    assert!(
        start.elapsed() < timeout + Duration::from_millis(500),
        "shutdown took {:?}",
        start.elapsed()
    );
}

#[test]
fn backlog_overflow_drops_the_oldest_counts_them_and_reports_them_in_the_next_summary() {
    let port = free_port();
    let agent =
        Agent::start(http_agent(&format!("http://127.0.0.1:{port}")).max_backlog_bytes(2_000))
            .unwrap();
    let sess = agent.session("overflow");
    const ROUNDS: u64 = 12;
    for round in 0..ROUNDS {
        for i in 0..10 {
            sess.log_prediction(
                [
                    ("x", Value::from(round * 10 + i)),
                    ("s", Value::from("abc")),
                ],
                0.5,
            );
        }
        // Each flush seals one summary; the collector is down, so it waits in the backlog.
        assert!(agent.flush(Duration::from_millis(100)).is_err());
        let stats = agent.stats();
        assert!(
            stats.backlog_bytes <= 2_000,
            "backlog {} bytes",
            stats.backlog_bytes
        );
    }
    let dropped = agent.stats().http_dropped_backlog;
    assert!(dropped > 0 && dropped < ROUNDS, "dropped {dropped}");
    let collector = Collector::start_on(port, KEY);
    // Sealing into the full backlog may drop one more; its count travels in the summary
    // after, so seal two.
    for _ in 0..2 {
        sess.log_prediction([("x", 0)], 0.5);
        if let Err(e) = agent.flush(LONG) {
            // Only that drop may be reported: everything else was delivered.
            let u = e.undelivered().expect("a delivery error");
            assert_eq!(
                (u.waiting_http, u.rejected.len(), u.dropped),
                (0, 0, 1),
                "{e}"
            );
        }
    }
    let got = collector.unique_summaries();
    let dropped = agent.stats().http_dropped_backlog;
    assert_eq!(
        got.len() as u64 + dropped,
        ROUNDS + 2,
        "every summary arrived or was counted as dropped"
    );
    let reported: u64 = got
        .iter()
        .map(|s| s.dropped().summaries_dropped_backlog)
        .sum();
    assert_eq!(reported, dropped, "drops travel in later summaries");
    assert_eq!(
        collector.predictions(),
        (ROUNDS - dropped) * 10 + 2,
        "the newest summaries were kept"
    );
}

#[test]
fn refused_summaries_are_dropped_counted_and_warned_about_once() {
    capture_logs();
    let collector = Collector::start("the-right-key");
    let agent = Agent::start(http_agent(&collector.endpoint())).unwrap(); // wrong key: 401
    let sess = agent.session("refused");
    for _ in 0..3 {
        sess.log_prediction([("x", 1)], 1);
        assert_eq!(agent.flush(LONG).unwrap_err().kind(), ErrorKind::Delivery);
    }
    assert_eq!(agent.stats().http_rejected.get(&401), Some(&3));
    assert_eq!(agent.stats().http_retries, 0, "4xx are not retried");
    assert_eq!(
        logs_with("API key is probably wrong"),
        1,
        "one warning: {:?}",
        LOGS.lock().unwrap()
    );
    assert!(collector.stored().is_empty());
}

#[test]
fn agent_events_and_debug_tables_go_through_log_with_stable_targets() {
    capture_logs();
    let port = free_port();
    let agent = Agent::start(
        http_agent(&format!("http://127.0.0.1:{port}"))
            .debug_mode(true)
            .min_values_per_window(1),
    )
    .unwrap();
    agent.session("debug-to-log").log_prediction([("x", 1)], 1);
    assert!(agent.flush(Duration::from_millis(500)).is_err());
    let collector = Collector::start_on(port, KEY);
    agent.flush(LONG).unwrap();
    assert_eq!(collector.predictions(), 1);
    drop(agent);
    let logs = LOGS.lock().unwrap().clone();
    let with = |prefix: &str, text: &str| {
        logs.iter()
            .any(|l| l.starts_with(prefix) && l.contains(text))
    };
    // The debug thread logs the table on its own time: wait for it, not for a deadline.
    let start = Instant::now();
    while !LOGS
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("INFO modelwatch::debug") && l.contains("debug-to-log"))
    {
        assert!(start.elapsed() < LONG, "no debug table: {logs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(with("WARN modelwatch::http", "failing"), "{logs:?}");
    assert!(with("INFO modelwatch::http", "recovered"), "{logs:?}");
}

#[test]
fn requests_have_the_documented_format_and_no_canary() {
    use common::{assert_no_canary, CANARY_FLOATS, CANARY_INTS, CANARY_STRINGS};
    let collector = Collector::start(KEY);
    let agent = Agent::start(http_agent(&collector.endpoint())).unwrap();
    let sess = agent.session("wire");
    for i in 0..3000usize {
        sess.log_prediction(
            [
                ("s", Value::from(CANARY_STRINGS[i % 3])),
                ("f", Value::from(CANARY_FLOATS[i % 4])),
                ("n", Value::from(CANARY_INTS[i % 2])),
                ("x", Value::from(i as f64 * 0.1)),
            ],
            CANARY_FLOATS[i % 4],
        );
    }
    agent.flush(LONG).unwrap();
    collector.with_requests(|requests| {
        assert!(!requests.is_empty());
        for r in requests {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/v1/windows")
            );
            assert_eq!(r.headers["content-type"], "application/x-msgpack");
            assert_eq!(r.headers["authorization"], format!("Bearer {KEY}"));
            assert!(
                r.headers["user-agent"].starts_with("modelwatch/"),
                "{:?}",
                r.headers
            );
            assert_no_canary(&r.body, "a request body");
            let s = modelwatch::WindowSummary::decode(&r.body).unwrap();
            assert_eq!(s.feature("s").unwrap().distinct(), 3);
        }
    });
    assert_eq!(collector.predictions(), 3000);
}

// ---- process exit, in a child process ----

/// Run by the exit tests as a child process (`MODELWATCH_EXIT_CHILD` says how it ends).
#[test]
#[ignore = "run as a child process by the exit tests"]
fn exit_child() {
    let mode = std::env::var("MODELWATCH_EXIT_CHILD").expect("child mode");
    let endpoint = std::env::var("MODELWATCH_ENDPOINT").unwrap();
    let n: u64 = std::env::var("MODELWATCH_N").unwrap().parse().unwrap();
    let mut config = http_agent(&endpoint).shutdown_timeout(Duration::from_secs(1));
    if mode == "signal" {
        config = config.exit_on_signal(true);
    }
    if mode == "static" || mode == "exit" {
        // Never dropped: a static, or a process::exit that runs no destructor.
        static AGENT: std::sync::OnceLock<Agent> = std::sync::OnceLock::new();
        let agent = AGENT.get_or_init(|| Agent::start(config).unwrap());
        let sess = agent.session("exit");
        for i in 0..n {
            sess.log_prediction([("i", i)], 1);
        }
        println!("logged");
        if mode == "exit" {
            std::process::exit(3);
        }
        return;
    }
    let _guard = modelwatch::configure(config).unwrap();
    let sess = modelwatch::session("exit");
    for i in 0..n {
        sess.log_prediction([("i", i)], 1);
    }
    println!("logged");
    if mode == "signal" {
        std::thread::sleep(Duration::from_secs(60));
        unreachable!("the signal handler exits the process");
    }
    // mode "return": the guard drops here, when the test returns.
}

struct Child {
    child: std::process::Child,
    logged_at: Instant,
}

fn spawn_child(mode: &str, endpoint: &str, n: u64) -> Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "exit_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MODELWATCH_EXIT_CHILD", mode)
        .env("MODELWATCH_ENDPOINT", endpoint)
        .env("MODELWATCH_N", n.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("logged") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended before logging"
        );
    }
    let logged_at = Instant::now();
    // Keep draining: a closed pipe would fail the child's own test report.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Child { child, logged_at }
}

fn wait(mut c: Child) -> (std::process::ExitStatus, Duration) {
    let status = c.child.wait().unwrap();
    (status, c.logged_at.elapsed())
}

#[test]
fn returning_from_main_with_the_guard_alive_delivers_everything() {
    let collector = Collector::start(KEY);
    let (status, _) = wait(spawn_child("return", &collector.endpoint(), 5_000));
    assert!(status.success());
    assert_eq!(collector.predictions(), 5_000);
}

#[cfg(unix)]
#[test]
fn an_agent_in_a_static_or_a_process_exit_still_delivers_the_last_window() {
    for (mode, code) in [("static", 0), ("exit", 3)] {
        let collector = Collector::start(KEY);
        let (status, _) = wait(spawn_child(mode, &collector.endpoint(), 4_000));
        assert_eq!(status.code(), Some(code), "{mode}");
        assert_eq!(collector.predictions(), 4_000, "{mode}");
    }
}

#[test]
fn with_a_dead_collector_the_child_still_exits_within_the_shutdown_timeout() {
    let port = free_port();
    let (status, took) = wait(spawn_child(
        "return",
        &format!("http://127.0.0.1:{port}"),
        100,
    ));
    assert!(status.success());
    // shutdown_timeout is 1 s; the margin covers process exit.
    assert!(took < Duration::from_millis(2500), "exit took {took:?}");
    let hanging = Collector::start(KEY);
    hanging.set_mode(Mode::Hang);
    let (status, took) = wait(spawn_child("return", &hanging.endpoint(), 100));
    assert!(status.success());
    assert!(
        took < Duration::from_millis(2500),
        "exit took {took:?} with a collector that never answers"
    );
}

#[cfg(all(unix, feature = "signals"))]
#[test]
fn sigterm_and_sigint_with_exit_on_signal_deliver_everything() {
    for signal in ["-TERM", "-INT"] {
        let collector = Collector::start(KEY);
        let child = spawn_child("signal", &collector.endpoint(), 7_000);
        let pid = child.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        let (status, _) = wait(child);
        use std::os::unix::process::ExitStatusExt;
        // Ended by the signal itself, as without modelwatch: not an exit status of its own.
        let expected = if signal == "-TERM" { 15 } else { 2 };
        assert_eq!(status.signal(), Some(expected), "{signal}: {status:?}");
        assert_eq!(collector.predictions(), 7_000, "{signal}");
    }
}

#[cfg(feature = "signals")]
#[test]
fn exit_on_signal_refuses_a_second_handler() {
    // Only this test installs a handler in this process.
    let first = Agent::start(
        Config::new(KEY)
            .no_data_dir()
            .sink(common::MemorySink::default())
            .exit_on_signal(true),
    );
    let second = Agent::start(
        Config::new(KEY)
            .no_data_dir()
            .sink(common::MemorySink::default())
            .exit_on_signal(true),
    );
    assert!(first.is_ok(), "no handler was installed before");
    let e = second.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("already has"), "{e}");
}

#[cfg(not(feature = "signals"))]
#[test]
fn exit_on_signal_without_the_feature_is_a_clear_error() {
    let e = Agent::start(
        Config::new(KEY)
            .no_data_dir()
            .sink(common::MemorySink::default())
            .exit_on_signal(true),
    )
    .unwrap_err();
    assert!(e.to_string().contains("signals"), "{e}");
}

#[test]
fn the_folder_sink_is_the_default_only_without_an_endpoint_and_both_can_be_on() {
    let collector = Collector::start(KEY);
    let dir = common::temp_dir("both");
    let agent = Agent::start(
        Config::new(KEY)
            .endpoint(collector.endpoint())
            .hash_key(HASH_KEY)
            .data_dir(&dir),
    )
    .unwrap();
    agent.session("both").log_prediction([("x", 1)], 1);
    agent.flush(LONG).unwrap();
    let files = std::fs::read_dir(&dir).unwrap().flatten();
    assert_eq!(
        files
            .filter(|f| f.path().extension().is_some_and(|x| x == "msgpack"))
            .count(),
        1
    );
    assert!(
        common::folder_summaries(&dir.join("spool")).is_empty(),
        "delivered summaries leave the spool"
    );
    assert_eq!(collector.predictions(), 1);
    // With an endpoint and no explicit folder, the default folder is not used.
    let cwd_default = std::path::Path::new(modelwatch::DEFAULT_DATA_DIR);
    let existed = cwd_default.exists();
    let agent = Agent::start(
        Config::new(KEY)
            .endpoint(collector.endpoint())
            .hash_key(HASH_KEY),
    )
    .unwrap();
    agent.session("http-only").log_prediction([("x", 1)], 1);
    agent.flush(LONG).unwrap();
    assert_eq!(cwd_default.exists(), existed);
    assert_eq!(collector.predictions(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn https_without_a_tls_feature_and_bad_urls_are_configuration_errors() {
    let e = Agent::start(Config::new(KEY).endpoint("ftp://x").no_data_dir()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    if !cfg!(any(feature = "rustls", feature = "native-tls")) {
        let e = Agent::start(
            Config::new(KEY)
                .endpoint("https://example.invalid")
                .no_data_dir(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rustls"), "{e}");
    }
}

#[test]
fn a_failing_collector_is_set_aside_and_the_next_tried_at_once() {
    let (a, b) = (Collector::start(KEY), Collector::start(KEY));
    a.script([Mode::Status(503)]);
    let agent = Agent::start(
        http_agent("http://unused")
            .endpoints([a.endpoint(), b.endpoint()])
            .window(Duration::from_secs(1))
            .upload_interval(Duration::from_millis(50)),
    )
    .unwrap();
    let sess = agent.session("failover");
    sess.log_prediction([("x", 1)], 1);
    let start = Instant::now();
    while b.predictions() == 0 {
        assert!(start.elapsed() < LONG, "not delivered: {:?}", agent.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    // B got it right after A's 503, not after A's back-off (250 ms at least).
    let failed_at = a.with_requests(|r| r[0].at);
    let delivered_at = b.with_requests(|r| r[0].at);
    assert!(
        delivered_at - failed_at < Duration::from_millis(200),
        "{:?}",
        delivered_at - failed_at
    );
    // A is preferred again once its back-off has passed: the next window goes there.
    std::thread::sleep(Duration::from_millis(1100));
    sess.log_prediction([("x", 2)], 1);
    let start = Instant::now();
    while a.predictions() == 0 {
        assert!(start.elapsed() < LONG, "not back on A: {:?}", agent.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    agent.flush(LONG).unwrap();
    assert_eq!(a.predictions() + b.predictions(), 2, "each prediction once");
    assert_eq!(agent.stats().http_retries, 1);
}

#[test]
fn with_a_dead_first_collector_everything_reaches_the_second_exactly_once() {
    let live = Collector::start(KEY);
    // Every second answer is a broken connection after storing: the agent retries, and
    // the store keeps each summary once.
    live.script([Mode::StoreThenClose, Mode::Accept, Mode::StoreThenClose]);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(
        http_agent("http://unused")
            .endpoints([dead, live.endpoint()])
            .window(Duration::from_secs(1)),
    )
    .unwrap();
    let sess = agent.session("dead-first");
    let mut logged = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        sess.log_prediction([("x", logged)], 0.5);
        logged += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    agent.flush(LONG).unwrap();
    assert_eq!(live.predictions(), logged);
    let stats = agent.stats();
    assert_eq!((stats.backlog_len, stats.http_dropped_backlog), (0, 0));
}
