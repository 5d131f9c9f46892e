//! What a collector pays per summary: decoding (validation included), encoding and merging
//! one window of 1,000 reference-workload predictions. Results in docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use modelwatch::{SummaryBuilder, WindowSummary};

fn window() -> WindowSummary {
    let rows = common::workload();
    let mut b = SummaryBuilder::new("bench", 0, 60_000, *b"bench-hash-key-0");
    for r in &rows[..1_000] {
        b.log_prediction(r.pairs(), r.prediction);
    }
    b.build()
}

/// 100 windows of 1,000 different rows each: decoded in turn, as a collector meets them,
/// none is decoded twice in a row (so no branch history or cache line is left over from
/// decoding the same bytes just before).
fn distinct_windows() -> Vec<Vec<u8>> {
    let rows = common::workload();
    (0..100)
        .map(|w| {
            let mut b = SummaryBuilder::new("bench", 0, 60_000, *b"bench-hash-key-0");
            for r in &rows[w * 1_000..(w + 1) * 1_000] {
                b.log_prediction(r.pairs(), r.prediction);
            }
            b.build().encode()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let summary = window();
    let bytes = summary.encode();
    let mut g = c.benchmark_group("summary");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_reference_window", |b| {
        b.iter(|| WindowSummary::decode(std::hint::black_box(&bytes)).unwrap())
    });
    let windows = distinct_windows();
    g.bench_function("decode_distinct_windows_in_turn", |b| {
        b.iter_custom(|iterations| {
            let start = std::time::Instant::now();
            for i in 0..iterations {
                let bytes = &windows[i as usize % windows.len()];
                std::hint::black_box(WindowSummary::decode(bytes).unwrap());
            }
            start.elapsed()
        })
    });
    g.bench_function("encode_reference_window", |b| {
        b.iter(|| std::hint::black_box(&summary).encode())
    });
    g.bench_function("merge_reference_window", |b| {
        let mut total = summary.clone();
        b.iter(|| total.merge(std::hint::black_box(&summary)).unwrap())
    });
    g.finish();
}

criterion_group!(summary_benches, benches);
criterion_main!(summary_benches);
