//! A day of one-minute windows of a fraud model, stationary or with changes injected at a
//! known window: the oracle of the monitoring tests (library and command); its `Rng` also
//! feeds the command's examples and tests, so that they need no dependency.
//!
//! Per window: 300 predictions of `amount` (lognormal), `age` (integer, normal), `country`
//! (8 codes, skewed), `device` (mobile 70 %), a fraud probability; a label per prediction
//! drawn from that probability, in the segments `mobile` and `desktop`; exceptions at
//! 0.3 % of predictions; an inference latency around 2 ms.
//!
//! The changes, from window `Changes::at` on: `amount` × 1.6, 30 % of `age` missing, and a
//! quarter of the labels flipped.

#![allow(dead_code)] // Each test crate uses part of it.

use modelwatch::{SummaryBuilder, Value, WindowSummary};

/// Start of the generated day: 2026-01-01T00:00:00Z.
pub const DAY_START_MS: i64 = 1_767_225_600_000;
/// Windows in a day.
pub const WINDOWS: usize = 1_440;
/// Predictions per window.
pub const PER_WINDOW: usize = 300;
/// The hash key of every generated summary.
pub const KEY: [u8; 16] = *b"fraud-day-key-16";
const COUNTRIES: [&str; 8] = ["NL", "DE", "FR", "BE", "ES", "IT", "PL", "SE"];

/// Deterministic xorshift64 numbers, so the oracle needs no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Where the changes start; `None` for a stationary day.
#[derive(Clone, Copy, Debug)]
pub struct Changes {
    pub at: Option<usize>,
}

/// Window `w` of the day generated from `seed`.
pub fn window(seed: u64, w: usize, changes: Changes) -> WindowSummary {
    // One stream per window, so that any window can be made alone.
    let mut rng = Rng((seed ^ 0x2545_f491_4f6c_dd1d).wrapping_mul(w as u64 * 2 + 1) | 1);
    for _ in 0..4 {
        rng.next();
    }
    let changed = changes.at.is_some_and(|at| w >= at);
    let mut b = SummaryBuilder::new(
        "fraud_detection_prod",
        DAY_START_MS + w as i64 * 60_000,
        60_000,
        KEY,
    )
    .identity(7, w as u64 + 1);
    for _ in 0..PER_WINDOW {
        let mut amount = (3.5 + 1.1 * rng.normal()).exp();
        if changed {
            amount *= 1.6;
        }
        let age = (40.0 + 12.0 * rng.normal()).round().max(18.0) as i64;
        let age_missing = changed && rng.next() < 0.3;
        let country = COUNTRIES[(rng.next() * rng.next() * 8.0) as usize];
        let device = if rng.next() < 0.7 {
            "mobile"
        } else {
            "desktop"
        };
        let risk = (amount.ln() - 3.5) / 1.1;
        let proba = 1.0 / (1.0 + (-(2.0 * risk - 3.0)).exp());
        let age_value = if age_missing {
            Value::Null
        } else {
            Value::from(age)
        };
        b.log_prediction(
            [
                ("amount", Value::from(amount)),
                ("age", age_value),
                ("country", Value::from(country)),
                ("device", Value::from(device)),
            ],
            proba,
        );
        let mut label = rng.next() < proba;
        if changed && rng.next() < 0.25 {
            label = !label;
        }
        b.log_ground_truth(label, proba >= 0.5, [device]);
        if rng.next() < 0.003 {
            b.log_exception("model timeout", [("stage", "predict")]);
        }
        b.record_latency(0.002 * (0.25 * rng.normal()).exp());
    }
    b.build()
}

/// The whole day.
pub fn day(seed: u64, changes: Changes) -> impl Iterator<Item = WindowSummary> {
    (0..WINDOWS).map(move |w| window(seed, w, changes))
}
