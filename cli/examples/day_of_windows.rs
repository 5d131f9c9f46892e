//! Writes one day of one-minute window summaries of a fraud model (1,440 files, 300
//! predictions each: `amount`, `age`, `country`, `device`; a probability output; labels
//! for two segments), for measuring `modelwatch report` at the scale of real use:
//!
//! ```sh
//! cargo run --release -p modelwatch-cli --example day_of_windows -- /tmp/day
//! /usr/bin/time -v target/release/modelwatch report --dir /tmp/day > /dev/null
//! ```

use modelwatch::{SummaryBuilder, Value};

#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;
use fraud_day::Rng;

const WINDOWS: i64 = 1_440;
const PER_WINDOW: usize = 300;
const COUNTRIES: [&str; 8] = ["NL", "DE", "FR", "BE", "ES", "IT", "PL", "SE"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "day-of-windows".into());
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let day_start = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    for w in 0..WINDOWS {
        let mut b = SummaryBuilder::new(
            "fraud_detection_prod",
            day_start + w * 60_000,
            60_000,
            *b"day-of-windows-k",
        )
        .identity(7, w as u64 + 1);
        for _ in 0..PER_WINDOW {
            let amount = (3.5 + 1.1 * rng.normal()).exp();
            let age = (40.0 + 12.0 * rng.normal()).round().max(18.0) as i64;
            let country = COUNTRIES[(rng.next() * rng.next() * 8.0) as usize];
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
            let label = rng.next() < proba;
            b.log_ground_truth(label, proba >= 0.5, [device]);
        }
        let path = format!("{dir}/window-{w:04}.msgpack");
        std::fs::write(path, b.build().encode())?;
    }
    eprintln!("wrote {WINDOWS} summaries to {dir}");
    Ok(())
}
