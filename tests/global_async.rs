//! The global API from async code, on no runtime at all (a hand-rolled `block_on`): a
//! wrong API key makes the collector refuse every summary, and the guard's stats, the
//! async flush and the async shutdown all say so. One test in this file: the agent is
//! global.

mod common;

use common::block_on;
use common::collector::Collector;
use modelwatch::{Config, ErrorKind};
use std::time::Duration;

#[test]
fn a_wrong_api_key_run_is_visible_in_stats_flush_async_and_shutdown_async() {
    let collector = Collector::start("the-right-key");
    let guard = modelwatch::configure(
        Config::new("a-wrong-key")
            .no_data_dir()
            .endpoint(collector.endpoint())
            .hash_key([7; 16])
            .min_values_per_window(1),
    )
    .unwrap();
    let sess = modelwatch::session("global-async");
    for i in 0..3 {
        sess.log_prediction([("x", i)], 0.5);
        let e = block_on(modelwatch::flush_async(Duration::from_secs(30))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Delivery);
        assert_eq!(e.undelivered().unwrap().rejected[&401], 1, "{e}");
    }
    let stats = guard.stats().unwrap();
    assert_eq!(stats.http_rejected[&401], 3, "{stats:?}");
    assert_eq!(stats.http_delivered, 0);
    sess.log_prediction([("x", 3)], 0.5);
    let e = block_on(guard.shutdown_async(Duration::from_secs(30))).unwrap_err();
    assert_eq!(
        e.undelivered().unwrap().rejected[&401],
        4,
        "the whole run: {e}"
    );
    assert_eq!(collector.requests(), 4);
    assert!(collector.stored().is_empty());
    // The agent is gone: the async API says so instead of hanging.
    let e = block_on(modelwatch::flush_async(Duration::from_secs(1))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotRunning);
}
