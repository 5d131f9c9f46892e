//! Decoding is bounded by its input: a forged summary whose sketches would inflate far
//! past its size is refused before the allocation, and what any decode allocates stays
//! within `DECODE_BUDGET_FACTOR × size + DECODE_BUDGET_BASE` (a process-wide counting
//! allocator; this file holds one test, so nothing else allocates meanwhile).

use modelwatch::{
    SummaryBuilder, SummaryErrorKind, Value, WindowSummary, DECODE_BUDGET_BASE,
    DECODE_BUDGET_FACTOR, MAX_BUCKETS,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed) + layout.size() as i64;
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = new_size as i64 - layout.size() as i64;
        let now = LIVE.fetch_add(grown, Ordering::Relaxed) + grown;
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Decodes, returning the result and the peak heap growth while decoding.
fn decode_measured(bytes: &[u8]) -> (Result<WindowSummary, modelwatch::SummaryError>, i64) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let r = WindowSummary::decode(bytes);
    (r, PEAK.load(Ordering::Relaxed) - start)
}

fn budget(bytes: &[u8]) -> i64 {
    (DECODE_BUDGET_FACTOR * bytes.len() + DECODE_BUDGET_BASE) as i64
}

#[test]
fn forged_inflation_is_refused_and_every_decode_stays_in_budget() {
    // The worst case the format allows per column: one value in every bucket of both
    // signs over the whole cap (Rice codes a run of equal counts in about a bit and a half
    // a bucket, and a bucket decodes to 16 bytes: past the budget's 64 per input byte),
    // every register of both HyperLogLogs set, every profile bucket used.
    let mut b = SummaryBuilder::new("forged", 0, 60_000, [9; 16]);
    let mut row: Vec<(String, Value<'static>)> = Vec::new();
    for k in 0..MAX_BUCKETS as i32 {
        let x = (f64::from(k) / 64.0 - 40.0).exp2() * 1.0001;
        row.clear();
        for f in 0..200 {
            row.push((
                format!("f{f}"),
                Value::from(if k % 2 == 0 { x } else { -x }),
            ));
        }
        let pairs: Vec<(&str, Value<'_>)> =
            row.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        b.log_prediction(&pairs[..], 0.5);
    }
    let forged = b.build().encode();
    let (r, peak) = decode_measured(&forged);
    eprintln!(
        "forged: {} bytes, peak {peak} bytes while decoding, budget {}",
        forged.len(),
        budget(&forged)
    );
    assert_eq!(r.unwrap_err().kind(), &SummaryErrorKind::OverBudget);
    assert!(peak <= budget(&forged), "peak {peak}");

    // A real window of many rows decodes, within a fraction of its budget.
    let mut b = SummaryBuilder::new("real", 0, 60_000, [9; 16]);
    for i in 0..50_000u32 {
        let user = format!("user-{}", i % 7919);
        let amount = (f64::from(i % 1000) / 150.0).exp();
        b.log_prediction(
            [
                ("amount", Value::from(amount)),
                ("age", Value::from(i64::from(18 + i % 70))),
                ("user", Value::from(user.as_str())),
            ],
            f64::from(i % 100) / 100.0,
        );
    }
    let real = b.build().encode();
    let (r, peak) = decode_measured(&real);
    eprintln!(
        "real: {} bytes, peak {peak} bytes while decoding, budget {}",
        real.len(),
        budget(&real)
    );
    assert_eq!(r.unwrap().predictions(), 50_000);
    assert!(peak <= budget(&real) / 4, "peak {peak}");
}
