//! Deterministic resource bounds, measured with a counting global allocator: no heap
//! allocation per `log_prediction` after warm-up, and memory within the documented bound
//! whatever is logged.

mod common;

use modelwatch::{
    Limits, Value, BYTES_PER_FEATURE_MAX, BYTES_PER_JOIN_ENTRY, BYTES_PER_STRING_FEATURE,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations and live bytes per thread, so that parallel tests do not mix.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + layout.size() as i64));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() - layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + new_size as i64 - layout.size() as i64));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}
fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

/// Seven-day windows: a window boundary inside a test (which would allocate) is a
/// one-in-a-million event.
const WEEK: u64 = 7 * 86_400;

#[test]
fn log_prediction_allocates_nothing_after_warm_up() {
    let rows = common::workload();
    let (agent, sink) = common::memory_agent(WEEK);
    let sess = agent.session("no-alloc");
    // Warm-up: every sketch is created lazily the first time it is needed (a feature's
    // negative-value histogram at its first negative value, row 8,877 for f6), so warm up
    // on the whole workload once, then count over a second pass.
    for r in &rows {
        sess.log_prediction(r.pairs(), r.prediction);
    }
    let before = allocations();
    for r in &rows {
        sess.log_prediction(r.pairs(), r.prediction);
    }
    let allocated = allocations() - before;
    assert_eq!(
        allocated, 0,
        "allocations in 100,000 log_prediction calls after warm-up"
    );
    agent.flush(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(sink.merged().predictions(), 200_000);
}

#[test]
fn memory_stays_bounded_with_100k_feature_names_and_megabyte_strings() {
    let limits = Limits::default();
    // One value per name: k-anonymity off, so that the merged summary shows every column.
    let (agent, sink) = common::memory_agent_k1(WEEK);
    let sess = agent.session("hostile");
    let huge = "x".repeat(1 << 20);
    let huge_name = "n".repeat(1 << 20);
    let mut name = String::with_capacity(32);
    let start = live_bytes();
    let mut peak = 0;
    for i in 0..100_000 {
        use std::fmt::Write;
        name.clear();
        let _ = write!(name, "feature-{i}");
        sess.log_prediction(
            [
                (name.as_str(), Value::from(huge.as_str())),
                ("n", Value::from(i)),
            ],
            0.5,
        );
        peak = peak.max(live_bytes() - start);
    }
    sess.log_prediction([(huge_name.as_str(), Value::from(1.0))], 0.5);
    // Per feature: its sketches, its name twice (vector and index) and bookkeeping.
    let bound =
        (limits.max_features * (BYTES_PER_FEATURE_MAX + 2 * limits.max_name_bytes + 512)) as i64;
    eprintln!("peak growth {peak} bytes, documented bound {bound} bytes");
    assert!(peak <= bound, "peak growth {peak} > bound {bound}");

    agent.flush(std::time::Duration::from_secs(30)).unwrap();
    let s = sink.merged();
    assert_eq!(s.predictions(), 100_001);
    assert_eq!(s.features().count(), limits.max_features);
    let d = s.dropped();
    // 100,000 names + "n" + the huge name; 512 kept (feature-0..510 and "n").
    assert_eq!(
        d.features_over_cap,
        100_000 - (limits.max_features as u64 - 1)
    );
    assert_eq!(d.names_too_long, 1);
    let f0 = s.feature("feature-0").unwrap();
    assert_eq!((f0.strings(), f0.truncated_strings()), (1, 1));
    assert_eq!(
        f0.length_quantile(0.5)
            .map(|l| (l - (1 << 20) as f64).abs() < 0.01 * (1 << 20) as f64),
        Some(true)
    );
    // The record with the huge name lacked "n": missing there.
    let n = s.feature("n").unwrap();
    assert_eq!((n.count(), n.missing()), (100_001, 1));
}

#[test]
fn the_join_store_stays_within_its_documented_bound() {
    const CAPACITY: usize = 10_000;
    let sink = common::MemorySink::default();
    let agent = modelwatch::Agent::start(
        modelwatch::Config::new("k")
            .no_data_dir()
            .sink(sink.clone())
            .window(std::time::Duration::from_secs(WEEK))
            .join_capacity(CAPACITY),
    )
    .unwrap();
    let sess = agent.session("join");
    let class = "c".repeat(1000); // cut to max_text_bytes when remembered
    let mut key = String::new();
    let start = live_bytes();
    let mut peak = 0;
    for i in 0..200_000 {
        use std::fmt::Write;
        key.clear();
        let _ = write!(key, "record-{i}");
        sess.log_prediction_keyed(&key, [("flag", true)], class.as_str(), ["segment"]);
        peak = peak.max(live_bytes() - start);
    }
    let limits = Limits::default();
    let segment = "segment".len() + modelwatch::BYTES_PER_JOIN_SEGMENT;
    let bound = (CAPACITY * (BYTES_PER_JOIN_ENTRY + limits.max_text_bytes + segment)
        + BYTES_PER_STRING_FEATURE
        + 64 * 1024) as i64;
    eprintln!("join store: peak growth {peak} bytes, documented bound {bound} bytes");
    assert!(peak <= bound, "peak growth {peak} > bound {bound}");
    agent.flush(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(sink.merged().feedback().evicted, 200_000 - CAPACITY as u64);
}
