//! Ground truth: confusion matrices for classes, error sums for regression, and the
//! metrics derived from them. The sums are what is shipped, so summaries stay mergeable.

use crate::core::record::value::Value;
use crate::core::sketch::moments::Moments;
use crate::core::sketch::saturating_sum;
use serde::{Deserialize, Serialize};

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
}

const OTHER_ID: u32 = u32::MAX;

impl GroundTruthSummary {
    /// Folds one (label, prediction) pair. `confidence` is the predicted class's probability
    /// when the prediction was a probability vector. `max_classes` caps the class vocabulary.
    pub(crate) fn fold(
        &mut self,
        label: &Value<'_>,
        prediction: &Value<'_>,
        confidence: Option<f64>,
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
                        self.calibrate(p, *label == Value::Bool(true));
                        (Value::Bool(p >= 0.5), None)
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
        let remap = |s: &mut Self, id: u32| {
            let name = o
                .classes
                .get(id as usize)
                .map_or(OTHER_CLASS, String::as_str);
            if id == OTHER_ID {
                OTHER_ID
            } else {
                s.class_id(&Value::from(name), max_classes)
            }
        };
        for &(l, p, n) in &o.cells {
            let (l, p) = (remap(self, l), remap(self, p));
            self.add_cell(l, p, n);
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
            (Some(l), Some(p)) => self
                .cells
                .iter()
                .filter(|c| c.0 == l && c.1 == p)
                .map(|c| c.2)
                .sum(),
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
    fn tp_fp_fn(&self, class: &Value<'_>) -> Option<(f64, f64, f64)> {
        Some(self.counts_of(self.id_of(class)?))
    }

    /// (true positives, false positives, false negatives) of a class id.
    /// As floats: the metrics divide them, and sums of untrusted counts must not overflow.
    fn counts_of(&self, id: u32) -> (f64, f64, f64) {
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
        let (tp, fp, _) = self.tp_fp_fn(&class.into())?;
        ratio(tp, tp + fp)
    }

    /// tp / (tp + fn) of a class; `None` if it never was the label.
    pub fn recall<'a>(&self, class: impl Into<Value<'a>>) -> Option<f64> {
        let (tp, _, fn_) = self.tp_fp_fn(&class.into())?;
        ratio(tp, tp + fn_)
    }

    /// 2tp / (2tp + fp + fn) of a class (scikit-learn's F1 where it is defined).
    pub fn f1<'a>(&self, class: impl Into<Value<'a>>) -> Option<f64> {
        let (tp, fp, fn_) = self.tp_fp_fn(&class.into())?;
        ratio(2.0 * tp, 2.0 * tp + fp + fn_)
    }

    /// Classes that take part in averages: every class seen, but the overflow class.
    fn class_ids(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.classes.len() as u32)
            .filter(|&id| self.cells.iter().any(|c| c.0 == id || c.1 == id))
    }

    fn macro_average(&self, metric: impl Fn(f64, f64, f64) -> Option<f64>) -> Option<f64> {
        let mut n = 0;
        let mut sum = 0.0;
        for id in self.class_ids() {
            let (tp, fp, fn_) = self.counts_of(id);
            // As scikit-learn's default (zero_division=0): an undefined class score counts as 0.
            sum += metric(tp, fp, fn_).unwrap_or(0.0);
            n += 1;
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    /// Unweighted mean of the per-class precisions (scikit-learn's `average="macro"`,
    /// `zero_division=0`), over the classes seen as label or prediction.
    pub fn macro_precision(&self) -> Option<f64> {
        self.macro_average(|tp, fp, _| ratio(tp, tp + fp))
    }

    /// Unweighted mean of the per-class recalls.
    pub fn macro_recall(&self) -> Option<f64> {
        self.macro_average(|tp, _, fn_| ratio(tp, tp + fn_))
    }

    /// Unweighted mean of the per-class F1 scores.
    pub fn macro_f1(&self) -> Option<f64> {
        self.macro_average(|tp, fp, fn_| ratio(2.0 * tp, 2.0 * tp + fp + fn_))
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
            gt.fold(&Value::from(l), &Value::from(p), None, 10);
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
            gt.fold(&Value::from(i), &Value::from(i), None, 3);
        }
        gt.fold(&Value::from(1.5), &Value::from(true), None, 3);
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
            part.fold(&Value::from(*y), &Value::from(p), None, 8);
            GroundTruthSummary::fold(&mut whole, &Value::from(*y), &Value::from(p), None, 8);
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
}
