//! Signals with `exit_on_signal` (feature `signals`, Unix), in child processes: alone,
//! with tokio's handlers installed after it (a server's graceful shutdown), with tokio's
//! handlers and no `exit_on_signal`, and under `nohup` with SIGINT ignored. Every
//! prediction must arrive exactly once at a real collector on 127.0.0.1, and the process
//! must end as its host decides: by the signal when nobody else handles it, else with the
//! server's own exit status.
#![cfg(all(unix, feature = "signals"))]

mod common;

use common::collector::Collector;
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

const KEY: &str = "test-api-key";
/// Logged before the signal.
const BEFORE: u64 = 3_000;
/// Logged by the tokio host during its graceful shutdown, after the signal.
const DURING: u64 = 500;
/// The tokio host's own exit status after a clean shutdown.
const SERVER_STATUS: i32 = 42;

/// Run as a child process by the tests below.
#[test]
#[ignore = "run as a child process by the signal tests"]
fn signal_child() {
    let mode = std::env::var("MODELWATCH_SIGNAL_CHILD").expect("child mode");
    let endpoint = std::env::var("MODELWATCH_ENDPOINT").unwrap();
    let config = modelwatch::Config::new(KEY)
        .no_data_dir()
        .endpoint(endpoint)
        .hash_key(*b"test-hash-key-16")
        .window(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_secs(5))
        .exit_on_signal(mode != "tokio-only");
    let guard = modelwatch::configure(config).unwrap();
    let sess = modelwatch::session("signals");
    if mode == "alone" {
        for i in 0..BEFORE {
            sess.log_prediction([("i", i)], 1);
        }
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
        unreachable!("the signal ends the process");
    }
    // "tokio" and "tokio-only": a server's runtime installs its handlers after configure.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Created (so registered) before "ready" is printed.
        let mut term = signal(SignalKind::terminate()).unwrap();
        let mut int = signal(SignalKind::interrupt()).unwrap();
        for i in 0..BEFORE {
            sess.log_prediction([("i", i)], 1);
        }
        println!("ready");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // The graceful shutdown: requests under way are still served and logged.
        for i in 0..DURING {
            sess.log_prediction([("i", BEFORE + i)], 1);
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        match guard.shutdown_async(Duration::from_secs(5)).await {
            Ok(()) => SERVER_STATUS,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        }
    });
    std::process::exit(status);
}

/// Starts the child (through `sh` when `ignore` lists signals to ignore, as `nohup` and a
/// script's `&` do), waits until it has logged, sends `signal`, and returns how it ended.
fn run(mode: &str, signal: &str, ignore: &str, collector: &Collector) -> ExitStatus {
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--ignored",
        "--exact",
        "signal_child",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut cmd = if ignore.is_empty() {
        let mut c = Command::new(&exe);
        c.args(args);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("trap '' {ignore}; exec \"$0\" \"$@\""))
            .arg(&exe)
            .args(args);
        c
    };
    let mut child = cmd
        .env("MODELWATCH_SIGNAL_CHILD", mode)
        .env("MODELWATCH_ENDPOINT", collector.endpoint())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "{mode}: the child ended before logging"
        );
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    assert!(Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap()
}

#[test]
fn alone_the_signal_ends_the_process_after_the_last_window_is_delivered() {
    for (signal, number) in [("-TERM", 15), ("-INT", 2)] {
        let collector = Collector::start(KEY);
        let status = run("alone", signal, "", &collector);
        assert_eq!(status.signal(), Some(number), "{signal}: {status:?}");
        assert_eq!(collector.predictions(), BEFORE, "{signal}");
        assert_eq!(collector.stored().len(), collector.unique_summaries().len());
    }
}

#[test]
fn with_tokio_handlers_installed_after_it_the_server_shuts_down_on_its_own_terms() {
    for signal in ["-TERM", "-INT"] {
        let collector = Collector::start(KEY);
        let status = run("tokio", signal, "", &collector);
        assert_eq!(
            status.code(),
            Some(SERVER_STATUS),
            "{signal}: the server's own status, not an exit from modelwatch: {status:?}"
        );
        assert_eq!(
            collector.predictions(),
            BEFORE + DURING,
            "{signal}: what the server logged during its shutdown arrived too"
        );
    }
}

#[test]
fn with_tokio_handlers_and_no_exit_on_signal_the_host_shutdown_delivers_everything() {
    for signal in ["-TERM", "-INT"] {
        let collector = Collector::start(KEY);
        let status = run("tokio-only", signal, "", &collector);
        assert_eq!(status.code(), Some(SERVER_STATUS), "{signal}: {status:?}");
        assert_eq!(collector.predictions(), BEFORE + DURING, "{signal}");
    }
}

#[test]
fn under_nohup_with_sigint_ignored_exit_on_signal_starts_and_handles_sigterm() {
    // Ignored signals are not handlers: start used to refuse them.
    let collector = Collector::start(KEY);
    let status = run("alone", "-TERM", "HUP INT", &collector);
    assert_eq!(status.signal(), Some(15), "{status:?}");
    assert_eq!(collector.predictions(), BEFORE);
}
