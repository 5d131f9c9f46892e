//! A simulated fraud-detection model server with modelwatch embedded.
//!
//! Two worker threads serve requests; each prediction is logged with its features and
//! timed; labels arrive later, from another thread, and are logged as ground truth by
//! segment. Windows are 2 seconds long so a few are sealed in under ten seconds; debug
//! mode prints each one. Half-way through, the traffic drifts: `amount` grows, a new
//! country appears, `device_age` goes missing more often and the model gets worse.
//!
//! It ends by printing the report of what it logged (`modelwatch report --dir
//! ./modelwatch-data`): the drift and the accuracy drop, found against the first windows.
//!
//! Run: `cargo run --release -p modelwatch-cli --example demo` (writes to ./modelwatch-data).

use modelwatch::{Config, Value};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;
use fraud_day::Rng;

const RUN: Duration = Duration::from_secs(12);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = modelwatch::DEFAULT_DATA_DIR;
    let _ = std::fs::remove_dir_all(dir);
    let guard = modelwatch::configure(
        Config::new("demo-api-key")
            .data_dir(dir)
            .window(Duration::from_secs(2))
            .debug_mode(true)
            .debug_to_stderr(true),
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
                    // Missing for 2% of requests, then for 30%.
                    let device_age =
                        (rng.next() < if drifted { 0.7 } else { 0.98 }).then(|| rng.next() * 900.0);
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

    // The report of what was written, against the first two windows.
    let (summaries, skipped) = modelwatch_cli::report::load(
        &modelwatch_cli::Source::Files(vec![dir.into()]),
        None,
        i64::MIN,
        i64::MAX,
    )?;
    assert!(skipped.is_empty(), "{skipped:?}");
    for r in modelwatch_cli::report::build(
        summaries,
        &modelwatch_cli::report::Baseline::FirstWindows(2),
    ) {
        println!("\n{}", modelwatch_cli::report::to_text(&r));
    }
    println!("(the same from the command line: cargo run --release -p modelwatch-cli -- report --dir {dir} --baseline-windows 2 --html report.html)");
    Ok(())
}
