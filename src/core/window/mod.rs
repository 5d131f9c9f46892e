//! The accumulator of one window in one shard: folds logged records into sketches, under caps.

pub(crate) mod builder;
pub(crate) mod column;
pub(crate) mod join;

use crate::core::record::cut;
use crate::core::record::value::{Features, Prediction, Value};
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::ground_truth::GroundTruthSummary;
use crate::core::summary::{DropCounts, ExceptionSummary, FeatureSummary, WindowSummary};
use column::{Folded, ShardColumn};
use std::collections::HashMap;

/// Caps that bound the memory of one window, whatever is logged. Whatever passes a cap is
/// counted in [`DropCounts`], never silently lost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Distinct feature names per window (default 512).
    pub max_features: usize,
    /// Distinct output names per window (default 64).
    pub max_outputs: usize,
    /// Longest feature, output or segment name, in bytes (default 128); longer ones are dropped.
    pub max_name_bytes: usize,
    /// Bytes of a string value that are hashed (default 256); longer strings are counted as truncated.
    pub max_string_bytes: usize,
    /// Segments with ground truth per window (default 64).
    pub max_segments: usize,
    /// Classes per ground-truth matrix (default 64); the rest go to the overflow class.
    pub max_classes: usize,
    /// Distinct exception messages per window (default 64).
    pub max_exceptions: usize,
    /// Longest exception message, tag or metadata text, in bytes (default 256); longer ones are cut.
    pub max_text_bytes: usize,
    /// Tags kept per exception (default 16).
    pub max_tags: usize,
    /// Metadata entries per session (default 64).
    pub max_metadata: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_features: 512,
            max_outputs: 64,
            max_name_bytes: 128,
            max_string_bytes: 256,
            max_segments: 64,
            max_classes: 64,
            max_exceptions: 64,
            max_text_bytes: 256,
            max_tags: 16,
            max_metadata: 64,
        }
    }
}

/// Columns by name, with a positional cache: records usually repeat the same names in the
/// same order, so a name is found by one string comparison instead of a hash lookup.
#[derive(Default)]
struct Columns {
    columns: Vec<ShardColumn>,
    /// Every column's name, back to back: the positional check reads this small, hot
    /// buffer instead of following a pointer per name.
    names: String,
    /// (offset, length) of each column's name in `names`.
    spans: Vec<(u32, u32)>,
    index: HashMap<Box<str>, u32>,
    by_position: Vec<u32>,
    /// Per column, the values of a batch chunk waiting to be folded (empty between calls).
    scratch: Vec<Vec<Folded>>,
}

/// Rows of a batch gathered before folding column by column: each column's sketches then
/// stay in cache for a run of values instead of being evicted by the other columns'.
pub(crate) const BATCH_CHUNK: usize = 64;

/// Why a value was not folded.
enum Refused {
    OverCap,
    NameTooLong,
}

impl Columns {
    /// The index of the column named `name`, seen at `position` in its record.
    #[inline]
    fn slot(
        &mut self,
        position: usize,
        name: &str,
        cap: usize,
        max_name: usize,
    ) -> Result<usize, Refused> {
        if let Some(&i) = self.by_position.get(position) {
            if same_bytes(self.name_bytes(i as usize), name.as_bytes()) {
                return Ok(i as usize);
            }
        }
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                if name.len() > max_name {
                    return Err(Refused::NameTooLong);
                }
                if self.columns.len() >= cap {
                    return Err(Refused::OverCap);
                }
                let i = self.columns.len() as u32;
                self.columns.push(ShardColumn::default());
                self.spans
                    .push((self.names.len() as u32, name.len() as u32));
                self.names.push_str(name);
                self.index.insert(name.into(), i);
                i
            }
        };
        if position < self.by_position.len() {
            self.by_position[position] = i;
        } else if position == self.by_position.len() && position < cap {
            self.by_position.push(i);
        }
        Ok(i as usize)
    }

    /// Folds the gathered scratch values, column by column.
    fn fold_scratch(&mut self, key: &HashKey) {
        for (values, column) in self.scratch.iter_mut().zip(self.columns.iter_mut()) {
            column.apply_run(values, key);
            values.clear();
        }
    }

    fn name(&self, i: usize) -> &str {
        let (start, len) = self.spans[i];
        &self.names[start as usize..(start + len) as usize]
    }

    #[inline]
    fn name_bytes(&self, i: usize) -> &[u8] {
        let (start, len) = self.spans[i];
        &self.names.as_bytes()[start as usize..(start + len) as usize]
    }
}

/// One window of one shard.
#[derive(Default)]
pub(crate) struct WindowAcc {
    predictions: u64,
    features: Columns,
    outputs: Columns,
    /// By name: a raised `max_segments` must not make each lookup a scan.
    segments: HashMap<Box<str>, GroundTruthSummary>,
    overall: Option<GroundTruthSummary>,
    /// In order of first occurrence, as they ship.
    exceptions: Vec<ExceptionSummary>,
    /// Where each message sits in `exceptions`: a repeated exception is found by one hash
    /// lookup, however high `max_exceptions` is raised.
    exception_index: HashMap<Box<str>, usize>,
    latency: ShardColumn,
    drops: DropCounts,
}

impl WindowAcc {
    /// Folds one prediction: features and outputs.
    #[inline]
    pub(crate) fn log_prediction<F: Features + ?Sized, P: Prediction + ?Sized>(
        &mut self,
        features: &F,
        prediction: &P,
        key: &HashKey,
        limits: &Limits,
    ) {
        self.predictions += 1;
        let drops = &mut self.drops;
        let fold = |c: &mut Columns, i: usize, v: Value<'_>| {
            c.columns[i].fold(&v, key, limits.max_string_bytes)
        };
        walk_columns(
            &mut self.features,
            drops,
            false,
            limits,
            |f| features.for_each_feature(f),
            fold,
        );
        walk_columns(
            &mut self.outputs,
            drops,
            true,
            limits,
            |f| prediction.for_each_output(f),
            fold,
        );
    }

    /// Folds `rows[i]` with `predictions[i]`, gathering [`BATCH_CHUNK`] rows at a time and
    /// folding them column by column. Same result as one `log_prediction` per row.
    pub(crate) fn log_batch<F: Features, P: Prediction>(
        &mut self,
        rows: &[F],
        predictions: &[P],
        key: &HashKey,
        limits: &Limits,
    ) {
        let n = rows.len().min(predictions.len());
        self.drops.batch_unpaired += rows.len().abs_diff(predictions.len()) as u64;
        for (rows, predictions) in rows[..n]
            .chunks(BATCH_CHUNK)
            .zip(predictions[..n].chunks(BATCH_CHUNK))
        {
            self.predictions += rows.len() as u64;
            let drops = &mut self.drops;
            let gather = |c: &mut Columns, i: usize, v: Value<'_>| {
                if c.scratch.len() <= i {
                    c.scratch.resize_with(i + 1, Vec::new);
                }
                c.scratch[i].push(Folded::of(&v, key, limits.max_string_bytes));
            };
            for (row, p) in rows.iter().zip(predictions) {
                walk_columns(
                    &mut self.features,
                    drops,
                    false,
                    limits,
                    |f| row.for_each_feature(f),
                    gather,
                );
                walk_columns(
                    &mut self.outputs,
                    drops,
                    true,
                    limits,
                    |f| p.for_each_output(f),
                    gather,
                );
            }
            self.features.fold_scratch(key);
            self.outputs.fold_scratch(key);
        }
    }

    /// Folds one (label, prediction) pair into each named segment and the overall summary.
    pub(crate) fn log_ground_truth<S: AsRef<str>>(
        &mut self,
        label: &Value<'_>,
        prediction: &Value<'_>,
        confidence: Option<f64>,
        segments: impl IntoIterator<Item = S>,
        limits: &Limits,
    ) {
        let fold = |gt: &mut GroundTruthSummary| {
            gt.fold(label, prediction, confidence, limits.max_classes)
        };
        for s in segments {
            let s = s.as_ref();
            if let Some(gt) = self.segments.get_mut(s) {
                fold(gt);
            } else if s.len() > limits.max_name_bytes {
                self.drops.names_too_long += 1;
            } else if self.segments.len() >= limits.max_segments {
                self.drops.segments_over_cap += 1;
            } else {
                fold(self.segments.entry(s.into()).or_default());
            }
        }
        fold(self.overall.get_or_insert_with(Default::default));
    }

    /// Counts one exception by message; the tags of its first occurrence are kept.
    pub(crate) fn log_exception(&mut self, message: &str, tags: &dyn Features, limits: &Limits) {
        let message = cut(message, limits.max_text_bytes);
        if let Some(&i) = self.exception_index.get(message) {
            self.exceptions[i].count += 1;
            return;
        }
        if self.exceptions.len() >= limits.max_exceptions {
            self.drops.exceptions_over_cap += 1;
            return;
        }
        let mut kept = Vec::new();
        tags.for_each_feature(&mut |k, v| {
            if kept.len() < limits.max_tags {
                kept.push((
                    cut(k, limits.max_text_bytes).to_owned(),
                    value_text(&v, limits.max_text_bytes),
                ));
            }
        });
        self.exception_index
            .insert(message.into(), self.exceptions.len());
        self.exceptions.push(ExceptionSummary {
            message: message.to_owned(),
            tags: kept,
            count: 1,
        });
    }

    /// Records one inference latency, in seconds.
    pub(crate) fn record_latency(&mut self, seconds: f64) {
        self.latency.counts.count += 1;
        self.latency.counts.floats += 1;
        self.latency.numbers.histogram.record(seconds);
        self.latency.numbers.moments.push(seconds);
    }

    /// Whether nothing was logged into this window.
    pub(crate) fn is_empty(&self) -> bool {
        self.predictions == 0
            && self.overall.is_none()
            && self.exceptions.is_empty()
            && self.latency.counts.count == 0
            && self.drops == DropCounts::default()
    }

    /// Adds this window's statistics into a summary.
    pub(crate) fn add_to(&self, s: &mut WindowSummary, limits: &Limits) {
        s.predictions += self.predictions;
        for (columns, into) in [
            (&self.features, &mut s.features),
            (&self.outputs, &mut s.outputs),
        ] {
            for (i, c) in columns
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.counts.count > 0)
            {
                let name = columns.name(i);
                c.add_to(
                    &mut into
                        .entry(name.to_string())
                        .or_insert_with(FeatureSummary::default)
                        .0,
                );
            }
        }
        for (name, gt) in &self.segments {
            s.ground_truth
                .entry(name.to_string())
                .or_default()
                .merge(gt, limits.max_classes);
        }
        if let Some(gt) = &self.overall {
            s.ground_truth_overall
                .get_or_insert_with(Default::default)
                .merge(gt, limits.max_classes);
        }
        s.add_exceptions(&self.exceptions);
        if self.latency.counts.count > 0 {
            self.latency
                .add_to(&mut s.latency.get_or_insert_with(FeatureSummary::default).0);
        }
        s.dropped.add(&self.drops);
    }

    /// Empties the window, keeping its allocations (names, sketches) for reuse.
    pub(crate) fn clear(&mut self) {
        self.predictions = 0;
        for c in self
            .features
            .columns
            .iter_mut()
            .chain(self.outputs.columns.iter_mut())
        {
            c.clear();
        }
        self.segments.clear();
        self.overall = None;
        self.exceptions.clear();
        self.exception_index.clear();
        self.latency.clear();
        self.drops = DropCounts::default();
    }
}

/// Resolves each (name, value) of a record to its column and hands it to `each`; counts
/// what the caps refuse.
#[inline]
fn walk_columns(
    columns: &mut Columns,
    drops: &mut DropCounts,
    outputs: bool,
    limits: &Limits,
    walk: impl FnOnce(&mut dyn FnMut(&str, Value<'_>)),
    mut each: impl FnMut(&mut Columns, usize, Value<'_>),
) {
    let cap = if outputs {
        limits.max_outputs
    } else {
        limits.max_features
    };
    let mut position = 0;
    walk(&mut |name, value| {
        match columns.slot(position, name, cap, limits.max_name_bytes) {
            Ok(i) => each(columns, i, value),
            Err(Refused::OverCap) if outputs => drops.outputs_over_cap += 1,
            Err(Refused::OverCap) => drops.features_over_cap += 1,
            Err(Refused::NameTooLong) => drops.names_too_long += 1,
        }
        position += 1;
    });
}

/// Byte equality as a loop: names are short, and a libc `bcmp` call per value (what `==`
/// on slices becomes) costs more than the comparison.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn value_text(v: &Value<'_>, max: usize) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => cut(s, max).to_owned(),
    }
}
