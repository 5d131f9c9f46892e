//! `report` holds per-window figures, not per-window summaries: its peak heap over a day
//! of one-minute windows is a few times one summary, and grows by little per window.
//! Measured in process with a counting allocator (bytes live at once, exact), on the same
//! code path as `modelwatch report --dir`.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;

use fraud_day::Rng;
use modelwatch::{SummaryBuilder, Value};
use modelwatch_cli::report::{self, Baseline};
use modelwatch_cli::Source;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Writes `windows` one-minute windows of the day_of_windows example's model (300
/// predictions: amount, age, country, device; labels in two segments); returns the size of
/// one decoded summary in memory, as the peak heap of decoding one.
fn write_day(dir: &std::path::Path, windows: i64) -> usize {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let countries = ["NL", "DE", "FR", "BE", "ES", "IT", "PL", "SE"];
    let mut last = Vec::new();
    for w in 0..windows {
        let mut b = SummaryBuilder::new(
            "fraud",
            1_767_225_600_000 + w * 60_000,
            60_000,
            *b"day-of-windows-k",
        )
        .identity(7, w as u64 + 1);
        for _ in 0..300 {
            let amount = (3.5 + 1.1 * rng.normal()).exp();
            let age = (40.0 + 12.0 * rng.normal()).round().max(18.0) as i64;
            let country = countries[(rng.next() * rng.next() * 8.0) as usize];
            let device = if rng.next() < 0.7 {
                "mobile"
            } else {
                "desktop"
            };
            let proba = (rng.next() * 0.2 + if amount > 120.0 { 0.5 } else { 0.0 }).min(1.0);
            b.log_prediction(
                [
                    ("amount", Value::from(amount)),
                    ("age", Value::from(age)),
                    ("country", Value::from(country)),
                    ("device", Value::from(device)),
                ],
                proba,
            );
            b.log_ground_truth(rng.next() < proba, proba >= 0.5, [device]);
        }
        last = b.build().encode();
        std::fs::write(dir.join(format!("window-{w:04}.msgpack")), &last).unwrap();
    }
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let one = modelwatch::WindowSummary::decode(&last).unwrap();
    let size = PEAK.load(Ordering::Relaxed) - before;
    drop(one);
    size
}

/// Peak heap growth of reporting on a folder, as `modelwatch report --dir` does.
fn report_peak(dir: &std::path::Path) -> (usize, usize) {
    let source = Source::Files(vec![dir.to_path_buf()]);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let (reports, skipped, _) = report::run(
        &source,
        None,
        None,
        i64::MIN,
        i64::MAX,
        &Baseline::FirstWindows(3),
    )
    .unwrap();
    assert!(skipped.is_empty());
    let text = report::to_text(&reports[0]);
    assert!(!text.is_empty());
    (
        PEAK.load(Ordering::Relaxed) - before,
        reports[0].windows.len(),
    )
}

#[test]
fn a_day_of_windows_is_reported_without_holding_its_summaries() {
    let (quarter_dir, day_dir) = (
        common::temp_dir("memory-quarter"),
        common::temp_dir("memory-day"),
    );
    let one = write_day(&quarter_dir, 360);
    write_day(&day_dir, 1_440);
    let (quarter, n) = report_peak(&quarter_dir);
    assert_eq!(n, 360);
    let (day, n) = report_peak(&day_dir);
    assert_eq!(n, 1_440);
    eprintln!(
        "one summary {one} B; report peak heap: 360 windows {quarter} B, 1,440 windows {day} B"
    );
    // Holding the summaries would cost 1,080 more summaries for the day than for the
    // quarter; the figures and the text of a timeline line cost a small part of one.
    let per_extra_window = day.saturating_sub(quarter) / 1_080;
    assert!(
        per_extra_window * 8 < one,
        "{per_extra_window} B per window, a summary is {one} B"
    );
    // And the whole is a few summaries (the window being merged, the baseline, the merges
    // of the range and of the analysed windows), and the figures and text of each window
    // at under 2 KiB. (Before schema 3, `one` also counted the inflater's first
    // allocation, ~47 KB, which made the bound on the whole this loose by itself.)
    assert!(
        day < 40 * one + 1_440 * 2_048,
        "{day} B, a summary is {one} B"
    );
    let _ = std::fs::remove_dir_all(&quarter_dir);
    let _ = std::fs::remove_dir_all(&day_dir);
}
