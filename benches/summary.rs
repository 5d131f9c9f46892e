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

fn benches(c: &mut Criterion) {
    let summary = window();
    let bytes = summary.encode();
    let mut g = c.benchmark_group("summary");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_reference_window", |b| {
        b.iter(|| WindowSummary::decode(std::hint::black_box(&bytes)).unwrap())
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
