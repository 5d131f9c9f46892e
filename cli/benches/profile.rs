//! `modelwatch profile`'s speed: the reference workload (100,000 rows, decompressed in
//! memory first, so that gunzip and the disk are not measured) folded by
//! [`Profiler::read`] with one folding thread and with the default (the cores). Results
//! and the machine are recorded in docs/benchmarks.md ("`modelwatch profile`").

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use modelwatch_cli::profile::{Options, Profiler};
use std::io::Read;
use std::time::Duration;

fn workload_csv() -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/workload-100k.csv.gz");
    let file = std::fs::File::open(&path).expect("the reference workload");
    let mut csv = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut csv)
        .expect("gunzip");
    csv
}

fn benches(c: &mut Criterion) {
    let csv = workload_csv();
    let rows = csv.iter().filter(|&&b| b == b'\n').count() as u64 - 1;
    let mut g = c.benchmark_group("profile");
    g.throughput(Throughput::Elements(rows));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let cores = Options::new("wl", [0; 16]).threads;
    for threads in [1, cores] {
        let mut o = Options::new("wl", *b"0123456789abcdef");
        o.prediction = Some("prediction".into());
        o.label = Some("label".into());
        o.threads = threads;
        g.bench_with_input(
            BenchmarkId::new("workload_100k_threads", threads),
            &o,
            |b, o| {
                b.iter(|| {
                    let mut p = Profiler::new(o);
                    p.read(&csv[..]).expect("the workload profiles");
                    let profile = p.finish().expect("a summary");
                    assert_eq!(profile.counts.rows, rows);
                    profile.summary
                })
            },
        );
        if cores == 1 {
            break;
        }
    }
    g.finish();
}

criterion_group!(profile, benches);
criterion_main!(profile);
