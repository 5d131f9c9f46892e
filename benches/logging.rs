//! Logging speed on the reference workload (13 features, one float prediction), and of a
//! realistic request struct logged through `Record`.
//! Results and the machine are recorded in docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use modelwatch::{Agent, Record, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Long windows, no folder: the benchmark measures logging, not window sealing.
fn agent() -> (Agent, common::MemorySink) {
    common::memory_agent(7 * 86_400)
}

fn benches(c: &mut Criterion) {
    let rows = common::workload();
    let pairs: Vec<[(&str, Value<'_>); 13]> = rows.iter().map(|r| r.pairs()).collect();
    let predictions: Vec<f64> = rows.iter().map(|r| r.prediction).collect();

    let mut g = c.benchmark_group("log_prediction");
    g.throughput(Throughput::Elements(1));
    let (a, _sink) = agent();
    let sess = a.session("bench");
    let mut i = 0;
    g.bench_function("one_row_per_call", |b| {
        b.iter(|| {
            sess.log_prediction(rows[i].pairs(), rows[i].prediction);
            i = if i + 1 == rows.len() { 0 } else { i + 1 };
        })
    });
    g.finish();

    // A server between two predictions does its own work (parsing, the model, the
    // response), which evicts modelwatch's sketches from the caches. Each iteration writes
    // one byte per cache line of an 8 MiB buffer (more than this machine's L2, a good part
    // of its L3), untimed, then times one log_prediction: the figure is logging's cost in
    // a server, not in a hot loop (it includes ~25 ns of the two clock reads).
    let mut g = c.benchmark_group("log_prediction_cold_cache");
    g.throughput(Throughput::Elements(1));
    let (a, _sink) = agent();
    let sess = a.session("bench");
    let mut work = vec![0u8; 8 << 20];
    let mut i = 0;
    g.bench_function("one_row_per_call_8mib_between", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for line in work.chunks_mut(64) {
                    line[0] = line[0].wrapping_add(1);
                }
                std::hint::black_box(&work);
                let t0 = Instant::now();
                sess.log_prediction(rows[i].pairs(), rows[i].prediction);
                total += t0.elapsed();
                i = if i + 1 == rows.len() { 0 } else { i + 1 };
            }
            total
        })
    });
    g.finish();

    // A server's own request struct, logged as it is: nested, optional fields, an enum,
    // a 64-dimensional embedding (docs/features.md).
    let mut g = c.benchmark_group("log_prediction_record");
    g.throughput(Throughput::Elements(1));
    let (a, _sink) = agent();
    let sess = a.session("bench");
    let requests: Vec<Request> = (0..1024).map(Request::generated).collect();
    let mut i = 0;
    g.bench_function("fraud_request_64dim_embedding", |b| {
        b.iter(|| {
            let r = &requests[i];
            sess.log_prediction(Record(r), r.score);
            i = (i + 1) % requests.len();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("log_prediction_batch");
    for batch in [1_000usize, 100_000] {
        g.throughput(Throughput::Elements(batch as u64));
        let (a, _sink) = agent();
        let sess = a.session("bench");
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut start = 0;
            b.iter(|| {
                let end = (start + batch).min(rows.len());
                sess.log_prediction_batch(&pairs[start..end], &predictions[start..end]);
                start = if end == rows.len() { 0 } else { end };
            })
        });
    }
    g.finish();

    // Scaling: the same number of calls split over 1 or 2 threads logging to one session.
    // The threads live across iterations, as a server's worker threads do, so each keeps
    // its shard warm; an iteration is one round of 20,000 calls, timed from the start
    // signal to the last thread's end.
    let mut g = c.benchmark_group("threads_one_session");
    const PER_ITER: usize = 20_000;
    g.throughput(Throughput::Elements(PER_ITER as u64));
    let rows = Arc::new(rows);
    for threads in [1usize, 2] {
        let (a, _sink) = agent();
        let start = Arc::new(Barrier::new(threads + 1));
        let done = Arc::new(Barrier::new(threads + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (sess, rows) = (a.session("bench"), Arc::clone(&rows));
                let (start, done, stop) =
                    (Arc::clone(&start), Arc::clone(&done), Arc::clone(&stop));
                std::thread::spawn(move || loop {
                    start.wait();
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let chunk = PER_ITER / threads;
                    for r in &rows[t * chunk..(t + 1) * chunk] {
                        sess.log_prediction(r.pairs(), r.prediction);
                    }
                    done.wait();
                })
            })
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    start.wait();
                    done.wait();
                    total += t0.elapsed();
                }
                total
            })
        });
        stop.store(true, Ordering::Relaxed);
        start.wait();
        workers.into_iter().for_each(|w| w.join().unwrap());
    }
    g.finish();
}

#[derive(serde::Serialize)]
struct Device {
    os: &'static str,
    app_version: u32,
}

#[derive(serde::Serialize)]
enum Payment {
    Card { bin: u32, country: &'static str },
    Wallet(&'static str),
}

#[derive(serde::Serialize)]
struct Request {
    amount: f64,
    currency: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<u32>,
    device: Option<Device>,
    payment: Payment,
    embedding: Vec<f32>,
    #[serde(skip)]
    score: f64,
}

impl Request {
    fn generated(i: usize) -> Request {
        let x = (i as f64 * 0.618_033_988_7).fract();
        Request {
            amount: 5.0 + 500.0 * x * x,
            currency: ["EUR", "USD", "GBP"][i % 3],
            age: (!i.is_multiple_of(4)).then_some(18 + (i % 60) as u32),
            device: (!i.is_multiple_of(5)).then_some(Device {
                os: ["ios", "android"][i % 2],
                app_version: 300 + (i % 12) as u32,
            }),
            payment: if i.is_multiple_of(3) {
                Payment::Wallet("apple")
            } else {
                Payment::Card {
                    bin: 400_000 + (i % 1000) as u32,
                    country: ["NL", "DE", "FR"][i % 3],
                }
            },
            embedding: (0..64)
                .map(|d| ((i * 31 + d * 17) % 97) as f32 / 97.0 - 0.5)
                .collect(),
            score: x,
        }
    }
}

criterion_group! {
    name = logging;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(logging);
