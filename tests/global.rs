//! The global agent while a flush waits on a dead collector: `session` and logging go on,
//! and the guard's stats show the failures. One test in this file: the agent is global.

use modelwatch::{Config, Value};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_slow_flush_never_holds_up_sessions_and_the_guard_reports_it() {
    // A port nobody listens on: every delivery fails, and the flush waits its timeout.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let guard = modelwatch::configure(
        Config::new("key")
            .no_data_dir()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .hash_key([7; 16])
            .min_values_per_window(1),
    )
    .unwrap();
    modelwatch::session("global").log_prediction([("x", Value::from(1.0))], 0.5);
    let (started, flushing) = mpsc::channel();
    let (finished, done) = mpsc::channel();
    let flusher = std::thread::spawn(move || {
        started.send(()).unwrap();
        let r = modelwatch::flush(Duration::from_secs(3));
        finished.send(()).unwrap();
        r
    });
    flushing.recv().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // While the flush waits, sessions are taken and logged into.
    for i in 0..100 {
        modelwatch::session("global").log_prediction([("x", Value::from(i))], 0.5);
    }
    assert!(
        done.try_recv().is_err(),
        "the flush was still waiting while sessions were taken"
    );
    assert!(
        flusher.join().unwrap().is_err(),
        "nothing could be delivered"
    );
    let stats = guard.stats().unwrap();
    assert!(stats.http_retries > 0 || stats.backlog_len > 0, "{stats:?}");
    guard.shutdown(Duration::from_millis(500)).ok();
}
