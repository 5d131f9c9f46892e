//! A simulated fraud-detection model server with modelwatch embedded.
//!
//! Two worker threads serve requests; each prediction is logged with its features and
//! timed; labels arrive later, from another thread, and are logged as ground truth by
//! segment. Windows are 2 seconds long so a few are sealed in under ten seconds; debug
//! mode prints each one. Half-way through, the traffic drifts: `amount` grows, a new
//! country appears, `device_age` goes missing more often and the model gets worse.
//!
//! Run: `cargo run --release --example demo` (writes to ./modelwatch-data).

use modelwatch::{Config, Value, WindowSummary};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A small deterministic generator, so the demo needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const RUN: Duration = Duration::from_secs(8);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = modelwatch::DEFAULT_DATA_DIR;
    let _ = std::fs::remove_dir_all(dir);
    let guard = modelwatch::configure(
        Config::new("demo-api-key")
            .data_dir(dir)
            .window(Duration::from_secs(2))
            .debug_mode(true),
    )?;
    let sess = modelwatch::session("fraud_detection_prod");
    sess.log_metadata("model_version", "1.0");

    let (labels_tx, labels_rx) = mpsc::channel::<(bool, bool, &'static str)>();
    let start = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..2u64 {
            let sess = sess.clone();
            let labels = labels_tx.clone();
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
                while start.elapsed() < RUN {
                    let drifted = start.elapsed() > RUN / 2;
                    let _timer = sess.time_inference();
                    let amount = (3.0 + rng.normal() + if drifted { 1.5 } else { 0.0 }).exp();
                    let country = match (rng.next() * 10.0) as u32 {
                        0..=5 => "NL",
                        6..=8 => "DE",
                        _ if drifted => "BR",
                        _ => "FR",
                    };
                    let device_age =
                        (rng.next() > if drifted { 0.7 } else { 0.98 }).then(|| rng.next() * 900.0);
                    let segment = if amount > 100.0 { "large" } else { "small" };
                    // The "model".
                    let score = (amount / 400.0 + rng.next() * 0.3).min(1.0);
                    let fraud = score > 0.5;
                    sess.log_prediction(
                        [
                            ("amount", Value::from(amount)),
                            ("country", Value::from(country)),
                            ("device_age_days", Value::from(device_age)),
                            ("is_mobile", Value::from(rng.next() < 0.4)),
                        ],
                        score,
                    );
                    if amount.is_nan() {
                        sess.log_exception("amount is NaN", [("feature", "amount")]);
                    }
                    // The truth, known later; the model errs more after the drift.
                    let flip = rng.next() < if drifted { 0.25 } else { 0.05 };
                    let _ = labels.send((fraud != flip, fraud, segment));
                    drop(_timer);
                    std::thread::sleep(Duration::from_micros(300));
                }
            });
        }
        drop(labels_tx);
        // Labels arrive a second late, from another thread.
        let sess = sess.clone();
        s.spawn(move || {
            for (label, predicted, segment) in labels_rx {
                std::thread::sleep(Duration::from_micros(120));
                sess.log_ground_truth(label, predicted, [segment]);
            }
        });
    });
    guard.shutdown(Duration::from_secs(5))?;

    // Read back what was written: one file per window.
    let mut summaries: Vec<WindowSummary> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "msgpack"))
        .map(|e| WindowSummary::decode(&std::fs::read(e.path())?).map_err(Into::into))
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    summaries.sort_by_key(|s| (s.window_start(), s.sequence()));
    println!("\n{} window summaries in {dir}:", summaries.len());
    println!(
        "{:>20} {:>8} {:>10} {:>12} {:>10}",
        "window start (ms)", "preds", "amount p50", "missing age", "accuracy"
    );
    for s in &summaries {
        let amount = s.feature("amount");
        let age = s.feature("device_age_days");
        println!(
            "{:>20} {:>8} {:>10.1} {:>11.1}% {:>10}",
            s.window_start(),
            s.predictions(),
            amount.and_then(|f| f.quantile(0.5)).unwrap_or(f64::NAN),
            age.and_then(|f| f.missing_rate()).unwrap_or(0.0) * 100.0,
            s.ground_truth_overall()
                .and_then(|g| g.accuracy())
                .map_or("-".into(), |a| format!("{:.1}%", a * 100.0)),
        );
    }
    Ok(())
}
