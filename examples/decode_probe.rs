//! A fixed number of `WindowSummary::decode` calls of one window of 1,000 reference-workload
//! predictions, for counting instructions with valgrind (docs/benchmarks.md, "Decoding,
//! merging and committing faster"): deterministic, where criterion's times are not on a
//! shared machine. Only `decode_one` is to be counted:
//!
//! ```sh
//! cargo build --release --example decode_probe
//! valgrind --tool=callgrind --toggle-collect='decode_probe::decode_one' \
//!     target/release/examples/decode_probe 200
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use modelwatch::{SummaryBuilder, WindowSummary};

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(200, |n| n.parse().expect("a number of calls"));
    let rows = common::workload();
    let mut b = SummaryBuilder::new("probe", 0, 60_000, *b"probe-hash-key-0");
    for r in &rows[..1_000] {
        b.log_prediction(r.pairs(), r.prediction);
    }
    let bytes = b.build().encode();
    for _ in 0..calls {
        std::hint::black_box(decode_one(&bytes));
    }
}

#[inline(never)]
fn decode_one(bytes: &[u8]) -> WindowSummary {
    WindowSummary::decode(bytes).expect("a valid summary")
}
