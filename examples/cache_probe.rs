//! A fixed number of `Session::log_prediction` calls of the reference workload's rows, for
//! counting instructions and cache misses with valgrind (docs/benchmarks.md, "Values held
//! and folded in bursts"): deterministic, where criterion's times are not on a shared
//! machine. `hot` logs in a loop; `cold` writes 8 MiB between two calls, as a server's own
//! work would. Only `log_one` is to be counted:
//!
//! ```sh
//! cargo build --release --example cache_probe
//! valgrind --tool=callgrind --toggle-collect='cache_probe::log_one' \
//!     target/release/examples/cache_probe hot 20000
//! valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=1048576,16,64 \
//!     --toggle-collect='cache_probe::log_one' target/release/examples/cache_probe cold 3000
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let mut args = std::env::args().skip(1);
    let cold = args.next().as_deref() == Some("cold");
    let calls: usize = args
        .next()
        .map_or(20_000, |n| n.parse().expect("a number of calls"));
    let rows = common::workload();
    let (agent, _sink) = common::memory_agent(7 * 86_400);
    let session = agent.session("probe");
    // Every column made and every buffer grown before counting.
    for r in rows.iter().take(1_000) {
        session.log_prediction(r.pairs(), r.prediction);
    }
    let mut work = vec![0u8; 8 << 20];
    for i in 0..calls {
        if cold {
            for line in work.chunks_mut(64) {
                line[0] = line[0].wrapping_add(1);
            }
            std::hint::black_box(&work);
        }
        log_one(&session, &rows[i % rows.len()]);
    }
}

/// The call counted (`--toggle-collect`).
#[inline(never)]
fn log_one(session: &modelwatch::Session, row: &common::Row) {
    session.log_prediction(row.pairs(), row.prediction);
}
