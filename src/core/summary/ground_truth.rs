//! Ground truth: confusion matrices for classes, error sums for regression, and the
//! metrics derived from them. The sums are what is shipped, so summaries stay mergeable.

use crate::core::record::value::Value;
use crate::core::sketch::moments::Moments;
use crate::core::sketch::saturating_sum;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The name of the class that collects classes past the cap.
pub const OTHER_CLASS: &str = "(other)";

/// How labels and predictions were compared, inferred from their types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `bool` label and prediction.
    Binary,
    /// Integer or string classes (or the argmax of probabilities).
    Classes,
    /// Numbers compared as numbers.
    Regression,
}

impl OutputKind {
    /// The kind a (label, prediction) pair implies, if any.
    fn of(label: &Value<'_>, prediction: &Value<'_>) -> Option<OutputKind> {
        use Value::*;
        let number = |v: &Value<'_>| match *v {
            Int(_) => true,
            Float(x) => x.is_finite(),
            _ => false,
        };
        match (label, prediction) {
            (Bool(_), Bool(_)) => Some(OutputKind::Binary),
            // A probability of `true`.
            (Bool(_), Float(p)) if (0.0..=1.0).contains(p) => Some(OutputKind::Binary),
            (Int(_) | Str(_), Int(_) | Str(_)) => Some(OutputKind::Classes),
            (l, p) if number(l) && number(p) => Some(OutputKind::Regression),
            _ => None,
        }
    }
}

/// Canonical class name of a label or prediction: `true`, `3`, `fraud`.
pub(crate) fn class_name<'v>(v: &'v Value<'_>) -> Option<std::borrow::Cow<'v, str>> {
    use std::borrow::Cow;
    match v {
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Int(i) => Some(Cow::Owned(i.to_string())),
        Value::Str(s) => Some(Cow::Borrowed(s)),
        _ => None,
    }
}

/// Equal-width buckets of predicted probability for calibration.
pub const CALIBRATION_BUCKETS: usize = 10;

/// Per bucket of predicted probability: pairs, sum of the probabilities, and hits (the
/// label was `true`, or the predicted class was the label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CalibrationBucket(u64, f64, u64);

/// One bucket of a calibration table, as returned by [`GroundTruthSummary::calibration`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Calibration {
    /// Lower edge of the bucket's predicted probability (inclusive).
    pub lower: f64,
    /// Upper edge (exclusive, but 1.0 falls in the last bucket).
    pub upper: f64,
    /// Pairs in the bucket.
    pub count: u64,
    /// Mean predicted probability of those pairs.
    pub mean_predicted: f64,
    /// Fraction of those pairs whose label was `true` (binary) or the predicted class.
    pub observed: f64,
}

/// Precision, recall and F1 of one class, as [`GroundTruthSummary::class_metrics`] returns
/// them.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClassMetrics<'a> {
    /// The class, as [`GroundTruthSummary::classes`] names it.
    pub class: &'a str,
    /// As [`GroundTruthSummary::precision`] of the class.
    pub precision: Option<f64>,
    /// As [`GroundTruthSummary::recall`] of the class.
    pub recall: Option<f64>,
    /// As [`GroundTruthSummary::f1`] of the class.
    pub f1: Option<f64>,
}

/// Regression error sums, e = prediction - label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorSums {
    pub(crate) n: u64,
    pub(crate) sum_e: f64,
    pub(crate) sum_abs_e: f64,
    pub(crate) sum_e2: f64,
    /// Label count, mean and M2, for R².
    pub(crate) label: (u64, f64, f64),
}

/// Ground truth of one segment (or of all segments together) in one window.
///
/// Metrics return `None` where they are undefined (no data, no predicted positives, ...),
/// never NaN. Classes are named as logged: `gt.precision(true)`, `gt.recall("fraud")`,
/// `gt.f1(3)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroundTruthSummary {
    kind: Option<OutputKind>,
    count: u64,
    /// Pairs whose types did not match this summary's kind, or that had no usable value.
    mismatched: u64,
    /// Class names by id; ids past the cap map to [`OTHER_CLASS`].
    classes: Vec<String>,
    /// (label id, predicted id, count); id `u32::MAX` is the overflow class.
    cells: Vec<(u32, u32, u64)>,
    /// Labels or predictions that fell into the overflow class.
    overflowed: u64,
    errors: ErrorSums,
    /// Calibration buckets, when predictions came with probabilities.
    calibration: Vec<CalibrationBucket>,
    /// Binary pairs with a probability: (score bucket, negatives, positives), ascending by
    /// bucket ([`score_bucket`]), for ROC AUC and average precision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scores: Vec<(i32, u64, u64)>,
    /// Halvings of the score buckets' resolution, past [`MAX_SCORE_BUCKETS`].
    #[serde(skip_serializing_if = "is_zero_u8")]
    score_coarsening: u8,
    /// Σ log loss and Σ squared error (Brier) of the probability pairs.
    #[serde(skip_serializing_if = "ProbabilitySums::is_empty")]
    probability: ProbabilitySums,
    /// k-anonymity (`summary/anonymity.rs`): pairs of this window held back, carried to a
    /// later summary; nothing else of them is here.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) withheld: u64,
    /// Pairs of earlier windows, held back there, included here.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) carried: u64,
    /// At the last seal, pairs counted here whose matrix and sums were dropped.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) unsketched: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

/// Sums over binary pairs with a probability p of `true`: count, Σ log loss
/// (−ln p for a true label, −ln(1 − p) for a false one, p clipped to [1e-15, 1 − 1e-15] as
/// scikit-learn does) and Σ (p − y)².
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ProbabilitySums(u64, f64, f64);

impl ProbabilitySums {
    fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// Score buckets kept per summary, at most; past it, the resolution halves (as DDSketch
/// collapses), which only ever merges neighbours, so the order of scores is kept.
pub const MAX_SCORE_BUCKETS: usize = 4096;

/// The bucket of a probability of `true`, increasing with it: the exponential histogram's
/// bucket (0.54 % relative width) of p below one half, and of 1 − p, negated, from one
/// half on, so that scores near 0 and near 1 are both told apart finely.
fn score_bucket(p: f64) -> i32 {
    use crate::core::sketch::exponential::bucket_index;
    if p <= 0.0 {
        i32::MIN
    } else if p >= 1.0 {
        i32::MAX
    } else if p < 0.5 {
        bucket_index(p)
    } else {
        -bucket_index(1.0 - p)
    }
}

/// Sorts score buckets and adds up equal ones, coarsened by `shift` (< 32) halvings.
fn coalesce(scores: &mut Vec<(i32, u64, u64)>, shift: u8) {
    for s in scores.iter_mut() {
        s.0 >>= shift;
    }
    scores.sort_unstable_by_key(|s| s.0);
    scores.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 = a.1.saturating_add(b.1);
            a.2 = a.2.saturating_add(b.2);
            true
        } else {
            false
        }
    });
}

const OTHER_ID: u32 = u32::MAX;

impl GroundTruthSummary {
    /// Folds one (label, prediction) pair. `confidence` is the predicted class's probability
    /// when the prediction was a probability vector; a probability of `true` predicts `true`
    /// from `threshold` on. `max_classes` caps the class vocabulary.
    pub(crate) fn fold(
        &mut self,
        label: &Value<'_>,
        prediction: &Value<'_>,
        confidence: Option<f64>,
        threshold: f64,
        max_classes: usize,
    ) {
        let Some(kind) =
            OutputKind::of(label, prediction).filter(|k| self.kind.is_none_or(|s| s == *k))
        else {
            self.mismatched += 1;
            return;
        };
        self.kind = Some(kind);
        self.count += 1;
        match kind {
            OutputKind::Regression => {
                let (y, p) = (as_f64(label), as_f64(prediction));
                let e = p - y;
                let s = &mut self.errors;
                s.n += 1;
                s.sum_e += e;
                s.sum_abs_e += e.abs();
                s.sum_e2 += e * e;
                let mut m = Moments {
                    n: s.label.0,
                    mean: s.label.1,
                    m2: s.label.2,
                };
                m.push(y);
                s.label = (m.n, m.mean, m.m2);
            }
            OutputKind::Binary | OutputKind::Classes => {
                let (predicted, confidence) = match *prediction {
                    // A probability of `true`: calibrated against the label itself.
                    Value::Float(p) => {
                        let positive = *label == Value::Bool(true);
                        self.calibrate(p, positive);
                        self.score(p, positive);
                        (Value::Bool(p >= threshold), None)
                    }
                    _ => (prediction.borrowed(), confidence),
                };
                let l = self.class_id(label, max_classes);
                let p = self.class_id(&predicted, max_classes);
                if let Some(c) = confidence.filter(|c| (0.0..=1.0).contains(c)) {
                    self.calibrate(c, l == p && l != OTHER_ID);
                }
                self.add_cell(l, p, 1);
            }
        }
    }

    fn calibrate(&mut self, probability: f64, hit: bool) {
        if self.calibration.is_empty() {
            self.calibration = vec![CalibrationBucket::default(); CALIBRATION_BUCKETS];
        }
        let i = ((probability * CALIBRATION_BUCKETS as f64) as usize).min(CALIBRATION_BUCKETS - 1);
        let b = &mut self.calibration[i];
        b.0 += 1;
        b.1 += probability;
        b.2 += u64::from(hit);
    }

    /// What a decoded summary must hold for the score buckets to be read and folded into:
    /// buckets strictly ascending, a coarsening a shift can apply.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.score_coarsening > 31 {
            return Err("score buckets coarsened past 31 halvings");
        }
        if self.scores.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("score buckets not strictly ascending");
        }
        Ok(())
    }

    /// Folds a probability p of `true` with its label into the score buckets and sums.
    fn score(&mut self, p: f64, positive: bool) {
        // An arithmetic shift divides rounding down: neighbours merge, order stays.
        let key = score_bucket(p) >> self.score_coarsening;
        match self.scores.binary_search_by_key(&key, |s| s.0) {
            Ok(i) => {
                let s = &mut self.scores[i];
                if positive {
                    s.2 = s.2.saturating_add(1);
                } else {
                    s.1 = s.1.saturating_add(1);
                }
            }
            Err(i) => {
                self.scores
                    .insert(i, (key, u64::from(!positive), u64::from(positive)));
                self.cap_scores();
            }
        }
        let q = p.clamp(1e-15, 1.0 - 1e-15);
        let y = if positive { 1.0 } else { 0.0 };
        let sums = &mut self.probability;
        sums.0 += 1;
        sums.1 -= if positive { q.ln() } else { (1.0 - q).ln() };
        sums.2 += (p - y) * (p - y);
    }

    fn cap_scores(&mut self) {
        while self.scores.len() > MAX_SCORE_BUCKETS && self.score_coarsening < 31 {
            self.score_coarsening += 1;
            coalesce(&mut self.scores, 1);
        }
    }

    fn class_id(&mut self, v: &Value<'_>, max_classes: usize) -> u32 {
        let name = class_name(v).unwrap_or_default();
        if let Some(i) = self.classes.iter().position(|c| *c == name) {
            return i as u32;
        }
        if self.classes.len() < max_classes {
            self.classes.push(name.into_owned());
            return (self.classes.len() - 1) as u32;
        }
        self.overflowed += 1;
        OTHER_ID
    }

    fn add_cell(&mut self, l: u32, p: u32, n: u64) {
        match self.cells.iter_mut().find(|c| c.0 == l && c.1 == p) {
            Some(c) => c.2 = c.2.saturating_add(n),
            None => self.cells.push((l, p, n)),
        }
    }

    /// Merges another summary of the same kind; pairs of another kind count as mismatched.
    pub(crate) fn merge(&mut self, o: &GroundTruthSummary, max_classes: usize) {
        self.withheld = self.withheld.saturating_add(o.withheld);
        self.carried = self.carried.saturating_add(o.carried);
        self.unsketched = self.unsketched.saturating_add(o.unsketched);
        if o.kind.is_some() && self.kind.is_some() && o.kind != self.kind {
            self.mismatched = self
                .mismatched
                .saturating_add(o.count)
                .saturating_add(o.mismatched);
            return;
        }
        self.kind = self.kind.or(o.kind);
        self.count = self.count.saturating_add(o.count);
        self.mismatched = self.mismatched.saturating_add(o.mismatched);
        self.overflowed = self.overflowed.saturating_add(o.overflowed);
        // Names and cells indexed once per merge: both sides may be decoded summaries with
        // any number of classes and cells, and a lookup per cell would be a scan of them.
        // The names are those of `o` (borrowed from it, not from `self`, which grows); the
        // value is the name's id in `self`, once it has one. A cell id past `o`'s classes
        // is named `OTHER_CLASS`, as an overflowed class is.
        let mut ids: HashMap<&str, Option<u32>> = HashMap::with_capacity(o.classes.len() + 1);
        for name in o.classes.iter().map(String::as_str).chain([OTHER_CLASS]) {
            ids.insert(name, None);
        }
        for (i, c) in self.classes.iter().enumerate() {
            if let Some(slot @ None) = ids.get_mut(c.as_str()) {
                *slot = Some(i as u32);
            }
        }
        let mut remap = |s: &mut Self, id: u32| {
            if id == OTHER_ID {
                return OTHER_ID;
            }
            let name = o
                .classes
                .get(id as usize)
                .map_or(OTHER_CLASS, String::as_str);
            let slot = ids.get_mut(name).expect("every name of o is a key");
            if let Some(id) = *slot {
                id
            } else if s.classes.len() < max_classes {
                s.classes.push(name.to_owned());
                let id = (s.classes.len() - 1) as u32;
                *slot = Some(id);
                id
            } else {
                s.overflowed = s.overflowed.saturating_add(1);
                OTHER_ID
            }
        };
        let mut cells: HashMap<(u32, u32), usize> = HashMap::with_capacity(self.cells.len());
        for (i, &(l, p, _)) in self.cells.iter().enumerate() {
            cells.entry((l, p)).or_insert(i);
        }
        for &(l, p, n) in &o.cells {
            let (l, p) = (remap(self, l), remap(self, p));
            match cells.get(&(l, p)) {
                Some(&i) => self.cells[i].2 = self.cells[i].2.saturating_add(n),
                None => {
                    cells.insert((l, p), self.cells.len());
                    self.cells.push((l, p, n));
                }
            }
        }
        if !o.calibration.is_empty() {
            if self.calibration.len() != o.calibration.len() {
                self.calibration = vec![CalibrationBucket::default(); o.calibration.len()];
            }
            for (a, b) in self.calibration.iter_mut().zip(&o.calibration) {
                a.0 = a.0.saturating_add(b.0);
                a.1 += b.1;
                a.2 = a.2.saturating_add(b.2);
            }
        }
        if !o.scores.is_empty() || o.score_coarsening > self.score_coarsening {
            // Both at the coarser resolution, then added bucket by bucket.
            let shift = o.score_coarsening.clamp(self.score_coarsening, 31);
            coalesce(&mut self.scores, shift - self.score_coarsening);
            let mut theirs = o.scores.clone();
            coalesce(&mut theirs, shift - o.score_coarsening.min(shift));
            self.scores.extend(theirs);
            self.score_coarsening = shift;
            coalesce(&mut self.scores, 0);
            self.cap_scores();
        }
        let (p, q) = (&mut self.probability, &o.probability);
        *p = ProbabilitySums(p.0.saturating_add(q.0), p.1 + q.1, p.2 + q.2);
        let (a, b) = (&mut self.errors, &o.errors);
        a.n = a.n.saturating_add(b.n);
        a.sum_e += b.sum_e;
        a.sum_abs_e += b.sum_abs_e;
        a.sum_e2 += b.sum_e2;
        let mut m = Moments {
            n: a.label.0,
            mean: a.label.1,
            m2: a.label.2,
        };
        m.merge(&Moments {
            n: b.label.0,
            mean: b.label.1,
            m2: b.label.2,
        });
        a.label = (m.n, m.mean, m.m2);
    }

    /// The class names, for the text guard to replace in place (ids stay).
    pub(crate) fn classes_mut(&mut self) -> &mut [String] {
        &mut self.classes
    }

    /// Keeps the counts (pairs, mismatched, overflowed, kind) and drops the matrix, the
    /// sums and the calibration, which describe the pairs: the last seal of fewer than k.
    pub(crate) fn keep_counts_only(&mut self) {
        self.classes = Vec::new();
        self.cells = Vec::new();
        self.errors = ErrorSums::default();
        self.calibration = Vec::new();
        self.scores = Vec::new();
        self.probability = ProbabilitySums::default();
        self.unsketched = self.count;
    }

    /// How labels were compared; `None` before the first usable pair.
    pub fn kind(&self) -> Option<OutputKind> {
        self.kind
    }

    /// Pairs folded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Pairs not folded because their types did not match (counted, not panicked on).
    pub fn mismatched(&self) -> u64 {
        self.mismatched
    }

    /// Pairs of this window held back because the segment had fewer than
    /// `min_values_per_window` of them: they are in a later summary's
    /// [`carried`](Self::carried), and nothing else of them is here (`docs/privacy.md`).
    pub fn withheld(&self) -> u64 {
        self.withheld
    }

    /// Pairs of earlier windows, held back there, included in this summary's matrix and sums.
    pub fn carried(&self) -> u64 {
        self.carried
    }

    /// Pairs counted in [`count`](Self::count) whose confusion matrix, error sums and
    /// calibration were dropped: fewer than `min_values_per_window` remained at the last
    /// seal (shutdown, or [`SummaryBuilder::build`](crate::SummaryBuilder::build)).
    pub fn unsketched(&self) -> u64 {
        self.unsketched
    }

    /// Labels or predictions past the class cap, folded into [`OTHER_CLASS`].
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Class names seen, in order of first appearance.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.classes.iter().map(String::as_str)
    }

    /// Count of pairs with this label and this prediction.
    pub fn confusion<'a>(
        &self,
        label: impl Into<Value<'a>>,
        predicted: impl Into<Value<'a>>,
    ) -> u64 {
        let (l, p) = (self.id_of(&label.into()), self.id_of(&predicted.into()));
        match (l, p) {
            (Some(l), Some(p)) => saturating_sum(
                self.cells
                    .iter()
                    .filter(|c| c.0 == l && c.1 == p)
                    .map(|c| c.2),
            ),
            _ => 0,
        }
    }

    fn id_of(&self, v: &Value<'_>) -> Option<u32> {
        let name = class_name(v)?;
        if name == OTHER_CLASS {
            return Some(OTHER_ID);
        }
        self.classes
            .iter()
            .position(|c| *c == name)
            .map(|i| i as u32)
    }

    fn classified(&self) -> u64 {
        saturating_sum(self.cells.iter().map(|c| c.2))
    }

    /// (true positives, false positives, false negatives) of a class.
    fn tp_fp_fn(&self, class: &Value<'_>) -> Option<Counts> {
        Some(self.counts_of(self.id_of(class)?))
    }

    /// (true positives, false positives, false negatives) of a class id: one pass over the
    /// cells, for one class. [`counts_by_id`](Self::counts_by_id) does every class at once.
    /// As floats: the metrics divide them, and sums of untrusted counts must not overflow.
    fn counts_of(&self, id: u32) -> Counts {
        let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
        for &(l, p, n) in &self.cells {
            match (l == id, p == id) {
                (true, true) => tp += n as f64,
                (false, true) => fp += n as f64,
                (true, false) => fn_ += n as f64,
                _ => {}
            }
        }
        (tp, fp, fn_)
    }

    /// [`counts_of`](Self::counts_of) every class id, the overflow class last, and whether
    /// any cell names the id, in one pass over the cells: per-class metrics and macro
    /// averages over many classes stay linear. Each count adds up in cell order, as in
    /// `counts_of`, so the floats are the same.
    fn counts_by_id(&self) -> (Vec<Counts>, Vec<bool>) {
        let n = self.classes.len();
        // Ids past the classes (only a forged summary has them) count for no class.
        let slot = |id: u32| match id {
            OTHER_ID => Some(n),
            id => Some(id as usize).filter(|&i| i < n),
        };
        let mut counts = vec![(0.0, 0.0, 0.0); n + 1];
        let mut seen = vec![false; n + 1];
        for &(l, p, c) in &self.cells {
            let c = c as f64;
            let (ls, ps) = (slot(l), slot(p));
            if l == p {
                if let Some(i) = ls {
                    counts[i].0 += c;
                }
            } else {
                if let Some(i) = ps {
                    counts[i].1 += c;
                }
                if let Some(i) = ls {
                    counts[i].2 += c;
                }
            }
            for i in [ls, ps].into_iter().flatten() {
                seen[i] = true;
            }
        }
        (counts, seen)
    }

    /// Fraction of pairs whose prediction equals the label.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.classified();
        let right = saturating_sum(
            self.cells
                .iter()
                .filter(|c| c.0 == c.1 && c.0 != OTHER_ID)
                .map(|c| c.2),
        );
        ratio(right as f64, total as f64)
    }

    /// tp / (tp + fp) of a class; `None` if it was never predicted.
    pub fn precision<'a>(&self, class: impl Into<Value<'a>>) -> Option<f64> {
        precision(self.tp_fp_fn(&class.into())?)
    }

    /// tp / (tp + fn) of a class; `None` if it never was the label.
    pub fn recall<'a>(&self, class: impl Into<Value<'a>>) -> Option<f64> {
        recall(self.tp_fp_fn(&class.into())?)
    }

    /// 2tp / (2tp + fp + fn) of a class (scikit-learn's F1 where it is defined).
    pub fn f1<'a>(&self, class: impl Into<Value<'a>>) -> Option<f64> {
        f1(self.tp_fp_fn(&class.into())?)
    }

    /// Precision, recall and F1 of every class, in the order of [`classes`](Self::classes):
    /// each the same as [`precision`](Self::precision), [`recall`](Self::recall) and
    /// [`f1`](Self::f1) of that class, but computed in one pass over the confusion matrix
    /// (each of those is a pass of its own, so calling them per class is quadratic).
    ///
    /// ```
    /// use modelwatch::SummaryBuilder;
    /// # let key = [7; 16];
    /// // Three pairs: fewer than the default k = 10 would ship their count only.
    /// let mut b = SummaryBuilder::new("m", 0, 60_000, key).min_values_per_window(1);
    /// for (label, predicted) in [("cat", "cat"), ("cat", "dog"), ("dog", "dog")] {
    ///     b.log_ground_truth(label, predicted, ["web"]);
    /// }
    /// let s = b.build();
    /// let gt = s.ground_truth_overall().unwrap();
    /// for m in gt.class_metrics() {
    ///     assert_eq!(m.precision, gt.precision(m.class));
    ///     assert_eq!(m.recall, gt.recall(m.class));
    ///     assert_eq!(m.f1, gt.f1(m.class));
    /// }
    /// let cat = gt.class_metrics().next().unwrap();
    /// assert_eq!((cat.class, cat.precision, cat.recall), ("cat", Some(1.0), Some(0.5)));
    /// ```
    pub fn class_metrics(&self) -> impl Iterator<Item = ClassMetrics<'_>> {
        let (counts, _) = self.counts_by_id();
        // A name that repeats (only in a forged summary) means its first id, as in `id_of`.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.classes.len());
        self.classes.iter().enumerate().map(move |(i, class)| {
            let slot = if class == OTHER_CLASS {
                counts.len() - 1
            } else {
                *first.entry(class.as_str()).or_insert(i)
            };
            let c = counts[slot];
            ClassMetrics {
                class,
                precision: precision(c),
                recall: recall(c),
                f1: f1(c),
            }
        })
    }

    fn macro_average(&self, metric: impl Fn(Counts) -> Option<f64>) -> Option<f64> {
        // Classes that take part: every class seen, but the overflow class.
        let (counts, seen) = self.counts_by_id();
        let mut n = 0;
        let mut sum = 0.0;
        for id in (0..self.classes.len()).filter(|&id| seen[id]) {
            // As scikit-learn's default (zero_division=0): an undefined class score counts as 0.
            sum += metric(counts[id]).unwrap_or(0.0);
            n += 1;
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    /// Unweighted mean of the per-class precisions (scikit-learn's `average="macro"`,
    /// `zero_division=0`), over the classes seen as label or prediction.
    pub fn macro_precision(&self) -> Option<f64> {
        self.macro_average(precision)
    }

    /// Unweighted mean of the per-class recalls.
    pub fn macro_recall(&self) -> Option<f64> {
        self.macro_average(recall)
    }

    /// Unweighted mean of the per-class F1 scores.
    pub fn macro_f1(&self) -> Option<f64> {
        self.macro_average(f1)
    }

    /// F1 from the counts summed over classes (`average="micro"`); with one label per pair
    /// it equals micro precision, micro recall and the accuracy over the classes seen.
    pub fn micro_f1(&self) -> Option<f64> {
        // Summed over classes, tp = right and fp = fn = total - right, so
        // 2tp / (2tp + fp + fn) = right / total.
        self.accuracy()
    }

    /// The calibration table: for each of [`CALIBRATION_BUCKETS`] equal-width buckets of
    /// predicted probability, how often the prediction was right. Empty when predictions
    /// carried no probability (a probability of `true` with a `bool` label, or a vector of
    /// class probabilities).
    pub fn calibration(&self) -> Vec<Calibration> {
        let width = 1.0 / self.calibration.len().max(1) as f64;
        self.calibration
            .iter()
            .enumerate()
            .map(|(i, b)| Calibration {
                lower: i as f64 * width,
                upper: (i + 1) as f64 * width,
                count: b.0,
                mean_predicted: if b.0 > 0 { b.1 / b.0 as f64 } else { 0.0 },
                observed: if b.0 > 0 {
                    b.2 as f64 / b.0 as f64
                } else {
                    0.0
                },
            })
            .collect()
    }

    /// Expected calibration error: Σ over buckets of (pairs in bucket / pairs) ×
    /// |observed − mean predicted|. `None` without probabilities.
    pub fn expected_calibration_error(&self) -> Option<f64> {
        let total = saturating_sum(self.calibration.iter().map(|b| b.0));
        (total > 0).then(|| {
            self.calibration
                .iter()
                .filter(|b| b.0 > 0)
                .map(|b| (b.2 as f64 - b.1).abs() / total as f64)
                .sum()
        })
    }

    /// Area under the ROC curve of binary pairs logged with a probability of `true`:
    /// the chance that a positive scores above a negative, ties counting one half (as
    /// scikit-learn's `roc_auc_score`). Scores are told apart at 0.54 % of min(p, 1 − p)
    /// (coarser past [`MAX_SCORE_BUCKETS`]); the result is within
    /// [`roc_auc_error_bound`](Self::roc_auc_error_bound) of the exact value. `None`
    /// without both classes.
    ///
    /// ```
    /// use modelwatch::SummaryBuilder;
    ///
    /// let mut b = SummaryBuilder::new("m", 0, 60_000, [1; 16]);
    /// for (p, label) in [(0.1, false), (0.4, true), (0.35, false), (0.8, true)] {
    ///     b.log_ground_truth(label, p, ["all"]);
    /// }
    /// let s = b.min_values_per_window(1).build();
    /// let gt = s.ground_truth_overall().unwrap();
    /// assert_eq!(gt.roc_auc(), Some(1.0));
    /// assert_eq!(gt.roc_auc_error_bound(), Some(0.0));
    /// ```
    pub fn roc_auc(&self) -> Option<f64> {
        let (neg, pos) = self.score_totals()?;
        let (mut below, mut area) = (0.0, 0.0);
        for &(_, n, p) in &self.scores {
            area += p as f64 * (below + 0.5 * n as f64);
            below += n as f64;
        }
        Some(area / (neg * pos))
    }

    /// The most [`roc_auc`](Self::roc_auc) can be off by: the share of (positive,
    /// negative) pairs that fall in one score bucket, halved (each such pair counts one
    /// half where the exact scores may order it either way).
    pub fn roc_auc_error_bound(&self) -> Option<f64> {
        let (neg, pos) = self.score_totals()?;
        let tied: f64 = self
            .scores
            .iter()
            .map(|&(_, n, p)| n as f64 * p as f64)
            .sum();
        Some(0.5 * tied / (neg * pos))
    }

    /// Average precision (the area under the precision-recall curve as scikit-learn's
    /// `average_precision_score` computes it: Σ (Rₙ − Rₙ₋₁) Pₙ over thresholds from the
    /// highest score down), with each score bucket one threshold. Equal to scikit-learn's
    /// when no bucket holds two different scores; tested within 0.005 of it on the
    /// fixtures. `None` without both classes.
    pub fn pr_auc(&self) -> Option<f64> {
        let (_, pos) = self.score_totals()?;
        let (mut tp, mut fp, mut ap) = (0.0, 0.0, 0.0);
        for &(_, n, p) in self.scores.iter().rev() {
            tp += p as f64;
            fp += n as f64;
            ap += p as f64 / pos * (tp / (tp + fp));
        }
        Some(ap)
    }

    /// Mean log loss of binary pairs logged with a probability of `true` (probabilities
    /// clipped to [1e-15, 1 − 1e-15], as scikit-learn's `log_loss`).
    pub fn log_loss(&self) -> Option<f64> {
        let s = &self.probability;
        (s.0 > 0).then(|| s.1 / s.0 as f64)
    }

    /// Brier score: mean of (p − y)² over binary pairs logged with a probability p of
    /// `true`.
    pub fn brier_score(&self) -> Option<f64> {
        let s = &self.probability;
        (s.0 > 0).then(|| s.2 / s.0 as f64)
    }

    /// Negatives and positives in the score buckets, when both are there.
    pub(crate) fn score_totals(&self) -> Option<(f64, f64)> {
        let neg = saturating_sum(self.scores.iter().map(|s| s.1)) as f64;
        let pos = saturating_sum(self.scores.iter().map(|s| s.2)) as f64;
        (neg > 0.0 && pos > 0.0).then_some((neg, pos))
    }

    /// Mean squared error of regression pairs.
    pub fn mse(&self) -> Option<f64> {
        self.per_pair(self.errors.sum_e2)
    }

    /// Mean absolute error.
    pub fn mae(&self) -> Option<f64> {
        self.per_pair(self.errors.sum_abs_e)
    }

    /// Root of [`mse`](Self::mse).
    pub fn rmse(&self) -> Option<f64> {
        self.mse().map(f64::sqrt)
    }

    /// Mean error (prediction - label): the bias.
    pub fn mean_error(&self) -> Option<f64> {
        self.per_pair(self.errors.sum_e)
    }

    /// Coefficient of determination, 1 - SSE/SST; `None` when the labels do not vary.
    pub fn r2(&self) -> Option<f64> {
        let sst = self.errors.label.2;
        (self.errors.n > 0 && sst > 0.0).then(|| 1.0 - self.errors.sum_e2 / sst)
    }

    fn per_pair(&self, sum: f64) -> Option<f64> {
        (self.errors.n > 0).then(|| sum / self.errors.n as f64)
    }
}

/// (true positives, false positives, false negatives) of a class.
type Counts = (f64, f64, f64);

fn precision((tp, fp, _): Counts) -> Option<f64> {
    ratio(tp, tp + fp)
}

fn recall((tp, _, fn_): Counts) -> Option<f64> {
    ratio(tp, tp + fn_)
}

fn f1((tp, fp, fn_): Counts) -> Option<f64> {
    ratio(2.0 * tp, 2.0 * tp + fp + fn_)
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn as_f64(v: &Value<'_>) -> f64 {
    match *v {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiclass_metrics_match_hand_counts() {
        let mut gt = GroundTruthSummary::default();
        // label, prediction
        let pairs = [
            ("a", "a"),
            ("a", "b"),
            ("b", "b"),
            ("c", "a"),
            ("c", "c"),
            ("b", "b"),
        ];
        for (l, p) in pairs {
            gt.fold(&Value::from(l), &Value::from(p), None, 0.5, 10);
        }
        assert_eq!(gt.accuracy(), Some(4.0 / 6.0));
        assert_eq!(gt.precision("a"), Some(0.5));
        assert_eq!(gt.recall("a"), Some(0.5));
        assert_eq!(gt.precision("b"), Some(2.0 / 3.0));
        assert_eq!(gt.recall("c"), Some(0.5));
        assert_eq!(gt.f1("c"), Some(2.0 / 3.0));
        assert_eq!(gt.precision("zzz"), None);
        assert_eq!(gt.mse(), None);
    }

    #[test]
    fn classes_past_the_cap_overflow_and_mismatches_count() {
        let mut gt = GroundTruthSummary::default();
        for i in 0..5 {
            gt.fold(&Value::from(i), &Value::from(i), None, 0.5, 3);
        }
        gt.fold(&Value::from(1.5), &Value::from(true), None, 0.5, 3);
        assert_eq!((gt.count(), gt.overflowed(), gt.mismatched()), (5, 4, 1));
        assert_eq!(gt.confusion(OTHER_CLASS, OTHER_CLASS), 2);
        assert_eq!(gt.accuracy(), Some(3.0 / 5.0));
    }

    #[test]
    fn regression_sums_and_merge() {
        let ys = [3.0, -0.5, 2.0, 7.0, 4.5];
        let ps = [2.5, 0.0, 2.0, 8.0, 4.0];
        let (mut a, mut b, mut whole) = Default::default();
        for (i, (y, p)) in ys.iter().zip(ps).enumerate() {
            let part: &mut GroundTruthSummary = if i < 2 { &mut a } else { &mut b };
            part.fold(&Value::from(*y), &Value::from(p), None, 0.5, 8);
            GroundTruthSummary::fold(&mut whole, &Value::from(*y), &Value::from(p), None, 0.5, 8);
        }
        a.merge(&b, 8);
        let mean_y = ys.iter().sum::<f64>() / 5.0;
        let sse: f64 = ys.iter().zip(ps).map(|(y, p)| (p - y) * (p - y)).sum();
        let sst: f64 = ys.iter().map(|y| (y - mean_y) * (y - mean_y)).sum();
        for gt in [&a, &whole] {
            assert!((gt.mse().unwrap() - sse / 5.0).abs() < 1e-12);
            assert!((gt.mae().unwrap() - 2.5 / 5.0).abs() < 1e-12);
            assert!((gt.r2().unwrap() - (1.0 - sse / sst)).abs() < 1e-12);
        }
    }

    /// A summary as the wire allows it: repeated names, a class named like the overflow
    /// class, cell ids past the classes, repeated cells, huge counts.
    fn forged(seed: u64) -> GroundTruthSummary {
        let mut x = seed;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let names = ["a", "b", "c", "a", OTHER_CLASS, "d"];
        let classes: Vec<String> = (0..next(7))
            .map(|_| names[next(names.len() as u64) as usize].to_owned())
            .collect();
        let id = |next: &mut dyn FnMut(u64) -> u64| match next(10) {
            0 => OTHER_ID,
            _ => next(classes.len() as u64 + 2) as u32,
        };
        let cells = (0..next(20))
            .map(|_| {
                let count = if next(10) == 0 { u64::MAX } else { next(5) };
                (id(&mut next), id(&mut next), count)
            })
            .collect();
        GroundTruthSummary {
            kind: Some(OutputKind::Classes),
            classes,
            cells,
            ..Default::default()
        }
    }

    #[test]
    fn indexed_merge_and_metrics_match_the_scans_on_forged_summaries() {
        for seed in 1..500u64 {
            let (a, b) = (forged(seed), forged(seed * 7919));
            for max_classes in [0, 3, 1024] {
                let mut merged = a.clone();
                merged.merge(&b, max_classes);
                // The merge as it was: a scan of the classes and of the cells per cell.
                let mut scanned = a.clone();
                for &(l, p, n) in &b.cells {
                    let mut remap = |id: u32| {
                        let name = b
                            .classes
                            .get(id as usize)
                            .map_or(OTHER_CLASS, String::as_str);
                        if id == OTHER_ID {
                            OTHER_ID
                        } else {
                            scanned.class_id(&Value::from(name), max_classes)
                        }
                    };
                    let (l, p) = (remap(l), remap(p));
                    scanned.add_cell(l, p, n);
                }
                assert_eq!(
                    (&merged.classes, &merged.cells, merged.overflowed),
                    (&scanned.classes, &scanned.cells, scanned.overflowed),
                    "seed {seed}, max {max_classes}"
                );
            }
            let seen = |id: u32| a.cells.iter().any(|c| c.0 == id || c.1 == id);
            let ids: Vec<u32> = (0..a.classes.len() as u32).filter(|&id| seen(id)).collect();
            let scanned = (!ids.is_empty()).then(|| {
                ids.iter()
                    .map(|&id| f1(a.counts_of(id)).unwrap_or(0.0))
                    .sum::<f64>()
                    / ids.len() as f64
            });
            assert_eq!(a.macro_f1(), scanned, "seed {seed}");
            let metrics: Vec<_> = a.class_metrics().collect();
            assert_eq!(metrics.len(), a.classes.len());
            for m in metrics {
                assert_eq!(
                    (m.precision, m.recall, m.f1),
                    (a.precision(m.class), a.recall(m.class), a.f1(m.class)),
                    "seed {seed}, class {}",
                    m.class
                );
            }
        }
    }
}
