//! The memory of a wide model at the scale of real use: a 500-numeric-feature session
//! logged from 4 threads, measured with a process-wide counting allocator (this file holds
//! one test, so nothing else allocates meanwhile).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Barrier;
use std::time::Duration;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grew(by: i64) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FEATURES: usize = 500;
const THREADS: usize = 4;
const ROWS_PER_THREAD: usize = 25_000;

/// A lognormal value (mu 3.5, sigma 1.1, as the reference workload's f0) from a xorshift
/// stream: no allocation, different per thread.
fn lognormal(state: &mut u64) -> f64 {
    let mut uniform = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        ((*state >> 11) as f64 / (1u64 << 53) as f64).max(1e-300)
    };
    let (u1, u2) = (uniform(), uniform());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (3.5 + 1.1 * z).exp()
}

#[test]
fn a_500_feature_session_from_4_threads_stays_under_32_mib() {
    let names: Vec<String> = (0..FEATURES).map(|i| format!("feature_{i:03}")).collect();
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let (agent, sink) = common::memory_agent(7 * 86_400);
    let sess = agent.session("wide");
    let go = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (sess, names, go) = (&sess, &names, &go);
            s.spawn(move || {
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let mut row: Vec<(&str, f64)> = Vec::with_capacity(FEATURES);
                go.wait();
                for _ in 0..ROWS_PER_THREAD {
                    row.clear();
                    row.extend(names.iter().map(|n| (n.as_str(), lognormal(&mut state))));
                    sess.log_prediction(&row[..], 0.5);
                }
            });
        }
    });
    let growth = PEAK.load(Ordering::Relaxed) - start;
    let per_feature_shard = growth as f64 / (FEATURES * THREADS) as f64;
    eprintln!(
        "500 features x 4 threads x {ROWS_PER_THREAD} rows: peak growth {:.1} MiB ({per_feature_shard:.0} bytes per feature and shard)",
        growth as f64 / (1 << 20) as f64
    );
    assert!(growth <= 32 << 20, "peak growth {growth} bytes");
    agent.flush(Duration::from_secs(60)).unwrap();
    let s = sink.merged();
    assert_eq!(s.predictions(), (THREADS * ROWS_PER_THREAD) as u64);
    assert_eq!(s.features().count(), FEATURES);
    let f = s.feature("feature_042").unwrap();
    assert_eq!(f.numbers(), (THREADS * ROWS_PER_THREAD) as u64);
    // The median of lognormal(3.5, 1.1) is e^3.5 = 33.1; the sample's is within ~1 %.
    let median = f.quantile(0.5).unwrap();
    assert!(
        (median / 3.5f64.exp() - 1.0).abs() < 0.02,
        "median {median}"
    );
}
