//! k-anonymity for small windows: no statistic computed over fewer than k values leaves.
//!
//! A mean of one value is that value; mean and M2 of two reveal both; the histogram
//! buckets, registers and sums of five leave one candidate. So a sealed summary goes
//! through [`withhold_small`] before it is shipped: a column (or ground-truth segment) with
//! fewer than k values is taken out whole, counts included, and carried by the session to
//! the same column of its next summary, where it merges with the existing merge functions.
//! Nothing is lost, only delayed, and each summary says how many values it held back
//! (`withheld`) and how many it brings from earlier windows (`carried`). At the last seal
//! a remainder below k ships its exact counts only (`unsketched`). Time-free and pure: the
//! agent keeps one [`Carry`] per session, an offline builder seals with an empty one.

use super::column::Column;
use super::ground_truth::GroundTruthSummary;
use super::{FeatureSummary, WindowSummary};
use std::collections::BTreeMap;

/// The default k: statistics of fewer than 10 values of a column or a segment in a window
/// wait for more (`Config::min_values_per_window`, `docs/privacy.md`).
pub const DEFAULT_MIN_VALUES_PER_WINDOW: u64 = 10;

/// Whether more summaries of the session follow the one being sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seal {
    /// More follow: what is under k waits for them.
    Carry,
    /// The last one (shutdown, an offline builder): what is under k ships its counts only.
    Last,
}

/// The rule and the bounds of what may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymity {
    /// k: the fewest values a shipped statistic is computed over. 0 and 1 hold nothing back.
    pub(crate) min_values: u64,
    /// Features, outputs and segments that may wait at most, each: names that churn must
    /// not grow the session. Past it, a small column ships its counts only, as at the end.
    pub(crate) max_features: usize,
    pub(crate) max_outputs: usize,
    pub(crate) max_segments: usize,
    /// Classes per matrix when a waiting matrix merges into the next one.
    pub(crate) max_classes: usize,
}

/// What a session holds back between its summaries.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    features: BTreeMap<String, FeatureSummary>,
    outputs: BTreeMap<String, FeatureSummary>,
    segments: BTreeMap<String, GroundTruthSummary>,
    /// The overall ground truth, under the empty name (see [`withhold_small`]).
    overall: BTreeMap<String, GroundTruthSummary>,
}

impl Carry {
    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.features.is_empty()
            && self.outputs.is_empty()
            && self.segments.is_empty()
            && self.overall.is_empty()
    }
}

/// A column or a segment, as k-anonymity treats them.
trait Held: Default {
    /// The fewest values any of its statistics is computed over.
    fn population(&self) -> u64;
    /// The values it counts, carried ones included.
    fn total(&self) -> u64;
    /// Of those, the ones carried from earlier windows.
    fn carried(&self) -> u64;
    /// What ships in its place when it is held back: how many of this window's values.
    fn stub(withheld: u64) -> Self;
    /// Adds values held back earlier (whose marks are clear), counting them as carried.
    fn add_carried(&mut self, earlier: &Self, max_classes: usize);
    /// Clears the carried count of a column about to wait again (its values are counted
    /// as carried when it ships, once).
    fn clear_carried(&mut self);
    /// Drops what describes the values, keeps the exact counts.
    fn keep_counts_only(&mut self);
}

impl Held for FeatureSummary {
    fn population(&self) -> u64 {
        self.0.smallest_population()
    }
    fn total(&self) -> u64 {
        self.0.counts.count
    }
    fn carried(&self) -> u64 {
        self.0.carried
    }
    fn stub(withheld: u64) -> Self {
        FeatureSummary(Column {
            withheld,
            ..Column::default()
        })
    }
    fn add_carried(&mut self, earlier: &Self, _: usize) {
        self.0.merge(&earlier.0);
        self.0.carried = self.0.carried.saturating_add(earlier.total());
    }
    fn clear_carried(&mut self) {
        self.0.carried = 0;
    }
    fn keep_counts_only(&mut self) {
        self.0.keep_counts_only();
    }
}

impl Held for GroundTruthSummary {
    fn population(&self) -> u64 {
        self.count()
    }
    fn total(&self) -> u64 {
        self.count()
    }
    fn carried(&self) -> u64 {
        self.carried
    }
    fn stub(withheld: u64) -> Self {
        let mut g = GroundTruthSummary::default();
        g.withheld = withheld;
        g
    }
    fn add_carried(&mut self, earlier: &Self, max_classes: usize) {
        self.merge(earlier, max_classes);
        self.carried = self.carried.saturating_add(earlier.total());
    }
    fn clear_carried(&mut self) {
        self.carried = 0;
    }
    fn keep_counts_only(&mut self) {
        GroundTruthSummary::keep_counts_only(self);
    }
}

/// Applies k-anonymity to a sealed summary: merges what `carry` holds into it, holds back
/// (or, at the last seal, strips to counts) every column and segment with fewer than k
/// values, and drops the tags of exceptions seen fewer than k times (the message and count
/// stay: tags describe one occurrence, so waiting for more would not make them any less
/// one person's; counted in [`PrivacyCounts::exception_tags_dropped`](super::PrivacyCounts)).
pub(crate) fn withhold_small(
    s: &mut WindowSummary,
    carry: &mut Carry,
    rules: &Anonymity,
    seal: Seal,
) {
    let k = rules.min_values;
    let classes = rules.max_classes;
    hold(
        &mut s.features,
        &mut carry.features,
        k,
        rules.max_features,
        classes,
        seal,
    );
    hold(
        &mut s.outputs,
        &mut carry.outputs,
        k,
        rules.max_outputs,
        classes,
        seal,
    );
    hold(
        &mut s.ground_truth,
        &mut carry.segments,
        k,
        rules.max_segments,
        classes,
        seal,
    );
    // The overall ground truth follows the segments' rule, as a map of one.
    let mut overall: BTreeMap<String, GroundTruthSummary> = s
        .ground_truth_overall
        .take()
        .map(|g| (String::new(), g))
        .into_iter()
        .collect();
    hold(&mut overall, &mut carry.overall, k, 1, classes, seal);
    s.ground_truth_overall = overall.into_values().next();
    for e in &mut s.exceptions {
        if e.count < k && !e.tags.is_empty() {
            e.tags = Vec::new();
            s.privacy.exception_tags_dropped = s.privacy.exception_tags_dropped.saturating_add(1);
        }
    }
}

fn hold<T: Held>(
    shipped: &mut BTreeMap<String, T>,
    held: &mut BTreeMap<String, T>,
    k: u64,
    cap: usize,
    max_classes: usize,
    seal: Seal,
) {
    // Earlier values join this window's column of the same name; without one, they wait
    // for a later window, or ship now if this is the last.
    for (name, earlier) in std::mem::take(held) {
        match shipped.get_mut(&name) {
            Some(x) if x.total() > 0 => x.add_carried(&earlier, max_classes),
            _ if seal == Seal::Last => shipped
                .entry(name)
                .or_default()
                .add_carried(&earlier, max_classes),
            _ => {
                held.insert(name, earlier);
            }
        }
    }
    for (name, x) in shipped.iter_mut() {
        let smallest = x.population();
        if smallest == 0 || smallest >= k {
            continue;
        }
        if seal == Seal::Carry && held.len() < cap {
            let own = x.total().saturating_sub(x.carried());
            let mut waiting = std::mem::replace(x, T::stub(own));
            waiting.clear_carried();
            held.insert(name.clone(), waiting);
        } else {
            x.keep_counts_only();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sketch::keyed_hash::HashKey;
    use crate::core::summary::Header;
    use crate::core::window::{Limits, WindowAcc};
    use crate::Value;
    use proptest::prelude::*;

    const K: u64 = 10;

    fn rules() -> Anonymity {
        Anonymity {
            min_values: K,
            max_features: 4,
            max_outputs: 4,
            max_segments: 4,
            max_classes: 64,
        }
    }

    /// One window's summary of `xs` logged as feature `x` (and `y` = 1 on every row), with
    /// `pairs` ground-truth pairs in segment `web`, before k-anonymity.
    fn window(start: i64, xs: &[f64], pairs: &[(f64, f64)]) -> WindowSummary {
        let (key, limits) = (HashKey::new([5; 16]), Limits::default());
        let mut w = WindowAcc::default();
        for &x in xs {
            w.log_prediction(&[("x", x)], &0.5, &key, &limits.rules());
        }
        for &(y, p) in pairs {
            let (y, p) = (Value::from(y), Value::from(p));
            w.log_ground_truth(&y, &p, None, 0.5, ["web"], &limits);
        }
        let header = Header {
            deployment: "d".into(),
            instance: 1,
            sequence: 1,
            window_start_ms: start,
            window_ms: 60_000,
            partial: false,
            key_fingerprint: 0,
        };
        let mut s = WindowSummary::new(header, BTreeMap::new());
        w.add_to(&mut s, &limits, &key);
        s
    }

    /// The column `name`, encoded and decoded, has no histogram, moments, registers,
    /// profile or lengths: the wire itself carries none of them.
    fn wire_column_has_no_statistics(s: &WindowSummary, name: &str) -> bool {
        let back = WindowSummary::decode(&s.encode()).unwrap();
        let c = &back.feature(name).unwrap().0;
        c.numbers.is_none()
            && c.distinct_numbers.is_none()
            && c.unique_numbers == 0
            && c.distinct_strings.is_none()
            && c.strings.is_none()
    }

    proptest! {
        #[test]
        fn a_column_under_k_ships_nothing_and_arrives_merged_in_the_next_window(
            first in prop::collection::vec(-1e6f64..1e6, 1..K as usize),
            second in prop::collection::vec(-1e6f64..1e6, 0..30),
        ) {
            let mut carry = Carry::default();
            let mut s1 = window(0, &first, &[]);
            withhold_small(&mut s1, &mut carry, &rules(), Seal::Carry);
            let x1 = s1.feature("x").unwrap();
            prop_assert_eq!(x1.withheld(), first.len() as u64);
            prop_assert_eq!(x1.count(), 0);
            prop_assert_eq!((x1.mean(), x1.variance(), x1.quantile(0.5)), (None, None, None));
            prop_assert_eq!(x1.distinct(), 0);
            prop_assert!(wire_column_has_no_statistics(&s1, "x"));

            let mut s2 = window(60_000, &second, &[]);
            withhold_small(&mut s2, &mut carry, &rules(), Seal::Carry);
            let total = first.len() + second.len();
            let x2 = s2.feature("x");
            if total >= K as usize && !second.is_empty() {
                // The oracle: both windows' values logged into one window.
                let both: Vec<f64> = first.iter().chain(&second).copied().collect();
                let whole = window(0, &both, &[]);
                let (x2, w) = (x2.unwrap(), whole.feature("x").unwrap());
                prop_assert_eq!(x2.count(), total as u64);
                prop_assert_eq!(x2.numbers(), total as u64);
                prop_assert_eq!(x2.carried(), first.len() as u64);
                prop_assert_eq!(x2.withheld(), 0);
                prop_assert_eq!(x2.exponential_buckets(false), w.exponential_buckets(false));
                prop_assert_eq!(x2.exponential_buckets(true), w.exponential_buckets(true));
                prop_assert!((x2.mean().unwrap() - w.mean().unwrap()).abs() <= 1e-9 * 1e6);
                prop_assert_eq!(x2.distinct(), w.distinct());
                prop_assert!(carry.is_empty());
            } else {
                // Still under k, or no window to join: it waits, nothing of it ships.
                prop_assert!(x2.is_none_or(|x| x.count() == 0 && x.mean().is_none()));
                prop_assert!(!carry.is_empty());
            }
        }
    }

    #[test]
    fn the_last_seal_ships_the_counts_of_a_remainder_and_no_sketch() {
        let mut carry = Carry::default();
        let mut s1 = window(0, &[123_456.78, 2.5], &[(3.0, 2.0)]);
        withhold_small(&mut s1, &mut carry, &rules(), Seal::Carry);
        assert_eq!(s1.ground_truth("web").unwrap().withheld(), 1);
        assert_eq!(s1.ground_truth_overall().unwrap().withheld(), 1);
        assert_eq!(s1.ground_truth("web").unwrap().mse(), None);
        // The last window logs nothing into `x`: the carried values ship there.
        let mut last = window(60_000, &[], &[(1.0, 1.0)]);
        withhold_small(&mut last, &mut carry, &rules(), Seal::Last);
        assert!(carry.is_empty());
        let x = last.feature("x").unwrap();
        assert_eq!(
            (x.count(), x.floats(), x.carried(), x.unsketched()),
            (2, 2, 2, 2)
        );
        assert_eq!((x.numbers(), x.mean(), x.quantile(1.0)), (0, None, None));
        assert!(wire_column_has_no_statistics(&last, "x"));
        for gt in [
            last.ground_truth("web").unwrap(),
            last.ground_truth_overall().unwrap(),
        ] {
            assert_eq!((gt.count(), gt.carried(), gt.unsketched()), (2, 1, 2));
            assert_eq!((gt.mse(), gt.mae(), gt.r2()), (None, None, None));
        }
    }

    #[test]
    fn waiting_is_bounded_and_k_of_one_holds_nothing_back() {
        let mut carry = Carry::default();
        let (key, limits) = (HashKey::new([5; 16]), Limits::default());
        let mut w = WindowAcc::default();
        for name in ["a", "b", "c", "d", "e", "f"] {
            w.log_prediction(&[(name, 1.0)], &0.5, &key, &limits.rules());
        }
        w.log_exception("boom", &[("user", "u-1")], &limits);
        let mut s = WindowSummary::default();
        w.add_to(&mut s, &limits, &key);
        let mut once = s.clone();
        withhold_small(&mut s, &mut carry, &rules(), Seal::Carry);
        let withheld = s.features().filter(|(_, f)| f.withheld() == 1).count();
        let stripped = s.features().filter(|(_, f)| f.unsketched() == 1).count();
        assert_eq!(
            (withheld, stripped),
            (4, 2),
            "four wait, the rest ship counts"
        );
        assert_eq!(s.exceptions()[0].tags(), &[]);
        assert_eq!(s.exceptions()[0].count(), 1);
        assert_eq!(s.privacy().exception_tags_dropped, 1);

        let off = Anonymity {
            min_values: 1,
            ..rules()
        };
        let before = once.encode();
        withhold_small(&mut once, &mut Carry::default(), &off, Seal::Last);
        assert_eq!(once.encode(), before);
    }
}
