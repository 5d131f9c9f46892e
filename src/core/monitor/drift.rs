//! Distribution drift between a window and a baseline, from the sketches alone.
//!
//! Numbers are binned at the baseline's deciles (read from its histogram) and strings by
//! the baseline's most frequent hashed category buckets; each side's share per bin gives the
//! population stability index (PSI) and the Jensen-Shannon distance.
//!
//! **Thresholds that account for sample size.** For two samples of n and m values from the
//! same distribution, PSI × nm/(n+m) is approximately χ² with k−1 degrees of freedom (k
//! bins). A drift is significant when PSI exceeds both the conventional 0.1 and the
//! 99.9th percentile of that null distribution, (χ²_{k−1, 0.999}) × (1/n + 1/m), plus 0.01
//! for the sketches' own resolution; so small windows need a larger shift to raise an alarm.

use crate::core::sketch::saturating_sum;
use crate::core::summary::FeatureSummary;

/// Drift of one feature against its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Drift {
    /// Population stability index, Σ (q − p) ln(q / p) over the bins (shares smoothed by
    /// half a count per bin).
    pub psi: f64,
    /// Jensen-Shannon distance (base 2), in [0, 1].
    pub js_distance: f64,
    /// The PSI above which the drift is significant for these sample sizes.
    pub threshold: f64,
    /// Bins compared.
    pub bins: usize,
    /// Values in the baseline and in the window.
    pub baseline_values: u64,
    /// Values in the window.
    pub current_values: u64,
}

impl Drift {
    /// PSI above the sample-size-aware threshold.
    pub fn is_significant(&self) -> bool {
        self.psi > self.threshold
    }

    fn from_counts(p: &[f64], q: &[f64]) -> Option<Drift> {
        let (n, m) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
        if p.len() < 2 || n < 1.0 || m < 1.0 {
            return None;
        }
        let k = p.len() as f64;
        let share = |c: f64, total: f64| (c + 0.5) / (total + 0.5 * k);
        let mut psi = 0.0;
        let mut js = 0.0;
        for (&a, &b) in p.iter().zip(q) {
            let (pa, qb) = (share(a, n), share(b, m));
            psi += (qb - pa) * (qb / pa).ln();
            let mid = (pa + qb) / 2.0;
            js += 0.5 * (pa * (pa / mid).log2() + qb * (qb / mid).log2());
        }
        let null = chi2_999(p.len() - 1) * (1.0 / n + 1.0 / m);
        Some(Drift {
            psi,
            js_distance: js.max(0.0).sqrt(),
            threshold: null.max(0.1) + 0.01,
            bins: p.len(),
            baseline_values: n as u64,
            current_values: m as u64,
        })
    }
}

/// Values of a window in hashed category buckets its baseline never saw.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewCategories {
    /// Strings in those buckets.
    pub values: u64,
    /// Their share of the window's strings.
    pub share: f64,
    /// Buckets the baseline never saw that the window used.
    pub buckets: usize,
}

/// 99.9th percentiles of χ² for 1 to 20 degrees of freedom.
fn chi2_999(df: usize) -> f64 {
    const Q: [f64; 20] = [
        10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53,
        36.12, 37.70, 39.25, 40.79, 42.31, 43.82, 45.31,
    ];
    Q[df.clamp(1, Q.len()) - 1]
}

/// Category bins: the baseline's most frequent buckets, one bin each, and the rest together.
const CATEGORY_BINS: usize = 20;

impl FeatureSummary {
    /// Drift of the numbers against a baseline's, over the baseline's deciles. `None` when
    /// either side has no numbers or the baseline has a single value.
    pub fn numeric_drift(&self, baseline: &FeatureSummary) -> Option<Drift> {
        let (b, c) = (
            &baseline.0.numbers.as_ref()?.histogram,
            &self.0.numbers.as_ref()?.histogram,
        );
        let mut edges: Vec<f64> = (1..10)
            .filter_map(|i| b.quantile(f64::from(i) / 10.0))
            .collect();
        edges.dedup();
        let counts = |h: &crate::core::sketch::exponential::Histogram| -> Vec<f64> {
            let mut below = 0;
            let mut out: Vec<f64> = edges
                .iter()
                .map(|&e| {
                    let le = h.count_le(e);
                    let bin = le.saturating_sub(below);
                    below = le;
                    bin as f64
                })
                .collect();
            out.push(h.len().saturating_sub(below) as f64);
            out
        };
        Drift::from_counts(&counts(b), &counts(c))
    }

    /// Drift of the strings' hashed category shares against a baseline's. `None` without
    /// strings on either side.
    pub fn category_drift(&self, baseline: &FeatureSummary) -> Option<Drift> {
        let (b, c) = (baseline.category_profile()?, self.category_profile()?);
        let (b, c) = (&b[..], &c[..]);
        let mut order: Vec<usize> = (0..b.len()).filter(|&i| b[i] > 0).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(b[i]));
        order.truncate(CATEGORY_BINS - 1);
        let bins = |prof: &[u64]| -> Vec<f64> {
            let mut v: Vec<f64> = order.iter().map(|&i| prof[i] as f64).collect();
            let named = saturating_sum(order.iter().map(|&i| prof[i]));
            v.push(saturating_sum(prof.iter().copied()).saturating_sub(named) as f64);
            v
        };
        Drift::from_counts(&bins(b), &bins(c))
    }

    /// Strings of this window in hashed buckets the baseline never saw: new categories,
    /// detected without their values. Only meaningful for features whose baseline leaves
    /// most of the 1024 buckets empty (a few hundred categories at most); `None` otherwise,
    /// or without strings.
    pub fn new_categories(&self, baseline: &FeatureSummary) -> Option<NewCategories> {
        let (b, c) = (baseline.category_profile()?, self.category_profile()?);
        let used = b.iter().filter(|&&x| x > 0).count();
        if used * 2 > b.len() {
            return None;
        }
        let (mut values, mut buckets) = (0, 0);
        for (&x, &y) in b.iter().zip(&c) {
            if x == 0 && y > 0 {
                values = u64::saturating_add(values, y);
                buckets += 1;
            }
        }
        let total = saturating_sum(c.iter().copied());
        Some(NewCategories {
            values,
            share: if total > 0 {
                values as f64 / total as f64
            } else {
                0.0
            },
            buckets,
        })
    }

    /// The drift score of this column against a baseline's: the PSI of its numbers or of
    /// its categories, the larger when it has both; `None` when neither can be computed.
    /// What the report's timeline and `/metrics` show per feature.
    pub fn drift_score(&self, baseline: &FeatureSummary) -> Option<f64> {
        [self.numeric_drift(baseline), self.category_drift(baseline)]
            .into_iter()
            .flatten()
            .map(|d| d.psi)
            .reduce(f64::max)
    }

    /// The Good-Turing estimate of the share of new strings that fall in a hashed bucket
    /// this summary never saw: buckets seen once over strings seen. `None` without strings.
    pub(crate) fn unseen_mass(&self) -> Option<f64> {
        let p = self.category_profile()?;
        let total = saturating_sum(p.iter().copied());
        let once = p.iter().filter(|&&x| x == 1).count();
        (total > 0).then(|| once as f64 / total as f64)
    }

    /// Numbers of this window below the baseline's minimum or above its maximum (at
    /// histogram precision).
    pub fn count_outside(&self, baseline: &FeatureSummary) -> Option<u64> {
        let (lo, hi) = (baseline.min()?, baseline.max()?);
        let h = &self.0.numbers.as_ref()?.histogram;
        let below = if lo > f64::MIN {
            h.count_le(lo.next_down())
        } else {
            0
        };
        Some(below.saturating_add(h.len().saturating_sub(h.count_le(hi))))
    }
}

#[cfg(test)]
mod tests {
    use crate::core::record::value::Value;
    use crate::core::window::builder::SummaryBuilder;

    fn window(values: impl Iterator<Item = f64>, cats: &[&str]) -> crate::WindowSummary {
        let mut b = SummaryBuilder::new("d", 0, 60_000, [7; 16]);
        for (i, x) in values.enumerate() {
            b.log_prediction(
                [
                    ("x", Value::from(x)),
                    ("c", Value::from(cats[i % cats.len()])),
                ],
                0.0,
            );
        }
        b.build()
    }

    /// A deterministic normal-ish stream (sum of uniforms).
    fn stream(n: usize, seed: u64, shift: f64) -> impl Iterator<Item = f64> {
        let mut s = seed;
        (0..n).map(move |_| {
            let mut acc = 0.0;
            for _ in 0..12 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 11) as f64 / (1u64 << 53) as f64;
            }
            acc - 6.0 + 10.0 + shift
        })
    }

    #[test]
    fn same_distribution_is_not_significant_at_any_size() {
        for n in [30, 300, 3000, 30_000] {
            let a = window(stream(n, 1, 0.0), &["a", "b", "c"]);
            let b = window(stream(n, 2, 0.0), &["a", "b", "c"]);
            let d = b
                .feature("x")
                .unwrap()
                .numeric_drift(a.feature("x").unwrap())
                .unwrap();
            assert!(!d.is_significant(), "n={n}: {d:?}");
            let c = b
                .feature("c")
                .unwrap()
                .category_drift(a.feature("c").unwrap())
                .unwrap();
            assert!(!c.is_significant(), "n={n}: {c:?}");
            assert_eq!(
                b.feature("c")
                    .unwrap()
                    .new_categories(a.feature("c").unwrap())
                    .unwrap()
                    .values,
                0
            );
        }
    }

    #[test]
    fn a_shift_of_half_a_deviation_is_significant_with_enough_data() {
        let a = window(stream(5000, 1, 0.0), &["a"]);
        let b = window(stream(5000, 2, 0.5), &["a"]);
        let d = b
            .feature("x")
            .unwrap()
            .numeric_drift(a.feature("x").unwrap())
            .unwrap();
        assert!(
            d.is_significant() && d.psi > 0.2 && d.js_distance > 0.15,
            "{d:?}"
        );
        // The same shift in 20 values is within what chance produces.
        let small = window(stream(20, 2, 0.5), &["a"]);
        let d = small
            .feature("x")
            .unwrap()
            .numeric_drift(a.feature("x").unwrap())
            .unwrap();
        assert!(!d.is_significant(), "{d:?}");
        assert!(
            b.feature("x")
                .unwrap()
                .count_outside(a.feature("x").unwrap())
                .unwrap()
                > 0
        );
    }

    #[test]
    fn category_mix_flips_and_new_categories_are_seen_without_their_values() {
        let a = window(stream(4000, 1, 0.0), &["a", "a", "a", "b"]);
        let b = window(stream(4000, 2, 0.0), &["a", "b", "b", "b", "zzz-new"]);
        let c = b
            .feature("c")
            .unwrap()
            .category_drift(a.feature("c").unwrap())
            .unwrap();
        assert!(c.is_significant(), "{c:?}");
        let new = b
            .feature("c")
            .unwrap()
            .new_categories(a.feature("c").unwrap())
            .unwrap();
        assert_eq!((new.values, new.buckets), (800, 1));
        assert!((new.share - 0.2).abs() < 1e-12);
    }
}
