//! The accumulator of one window in one shard: folds logged records into sketches, under caps.

pub(crate) mod builder;
pub(crate) mod column;
pub(crate) mod join;
pub(crate) mod token;

use crate::core::prefetch::prefetch_lines;
use crate::core::record::cut;
use crate::core::record::value::{Features, Prediction, Value};
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::anonymity::{withhold_small, Anonymity, Carry, Seal};
use crate::core::summary::ground_truth::GroundTruthSummary;
use crate::core::summary::guard::guard_text;
use crate::core::summary::{
    note_over_cap, DropCounts, ExceptionSummary, FeatureSummary, FeatureType, WindowSummary,
};
use column::{Folded, Held, ShardColumn};
use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// Counters and named values per window, together (default 64).
    pub max_metrics: usize,
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
            max_metrics: 64,
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
    /// Whether each column received a value in the current window. The cap counts these,
    /// not the columns: an accumulator is reused window after window (cleared, not
    /// dropped), and names of earlier windows must not count against the current one.
    used: Vec<bool>,
    /// How many of `used` are true.
    in_use: usize,
    /// Every column before this one is used in the current window: where the search for
    /// a column to take over starts, so that churning names cost O(columns) per window.
    unused_from: usize,
    index: HashMap<Box<str>, u32>,
    by_position: Vec<u32>,
    /// Values reduced and named but not yet folded, in the order logged ([`DEFER_MAX`]).
    deferred: Vec<Held>,
}

/// Values of a window's features (or outputs) held before they are folded, at most. A
/// server's own work between two predictions evicts the sketches from the caches: folded
/// at once, each value misses on its column's counts, a histogram bucket and a HyperLogLog
/// register, lines of their own (159 misses a call for the reference row, simulated with
/// a 1 MiB last level; 95 held). Held, a record's values take a few consecutive lines of
/// this buffer, which is folded when full (or when the window is read), each column's
/// lines then fetched once for its ~18 values. 16 bytes a value: 4 KiB per window for the
/// features, as much at most for the outputs.
const DEFER_MAX: usize = 256;

/// How many held values ahead of the one folded [`Columns::settle`] prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Lines of each name table, and of the held values' room, that a record prefetches
/// ([`Columns::prefetch_for_record`]): all of them for a model of up to ~30 features.
const PREFETCH_TABLE_LINES: usize = 4;

/// What folding a record follows besides the hash key: the caps, and the features whose
/// categories ship by name (`Config::plain_categories`).
pub(crate) struct Rules<'a> {
    pub(crate) limits: &'a Limits,
    pub(crate) plain: &'a HashSet<String>,
}

#[cfg(test)]
impl Limits {
    /// Rules with these limits and no plain categories.
    pub(crate) fn rules(&self) -> Rules<'_> {
        static NONE: std::sync::OnceLock<HashSet<String>> = std::sync::OnceLock::new();
        Rules {
            limits: self,
            plain: NONE.get_or_init(HashSet::new),
        }
    }
}

/// Why a value was not folded.
enum Refused {
    OverCap,
    NameTooLong,
}

impl Columns {
    /// The index of the column named `name`, seen at `position` in its record. At most
    /// `cap` distinct names get a column per window.
    #[inline(always)]
    fn slot(
        &mut self,
        position: usize,
        name: &str,
        cap: usize,
        rules: &Rules<'_>,
    ) -> Result<usize, Refused> {
        // Records repeat their names in order: one comparison, inlined, finds the column.
        if let Some(&i) = self.by_position.get(position) {
            if same_bytes(self.name_bytes(i as usize), name.as_bytes()) {
                return self.mark_used(i as usize, cap);
            }
        }
        self.slot_by_name(position, name, cap, rules)
    }

    /// [`slot`](Self::slot) for a name not where its record had it last time: by the
    /// index, or a new column.
    #[inline(never)]
    fn slot_by_name(
        &mut self,
        position: usize,
        name: &str,
        cap: usize,
        rules: &Rules<'_>,
    ) -> Result<usize, Refused> {
        let i = match self.index.get(name) {
            Some(&i) => self.mark_used(i as usize, cap)?,
            None => {
                if name.len() > rules.limits.max_name_bytes {
                    return Err(Refused::NameTooLong);
                }
                if self.in_use >= cap {
                    return Err(Refused::OverCap);
                }
                let i = self.place(name, cap);
                self.columns[i].plain = rules.plain.contains(name).then(Default::default);
                self.used[i] = true;
                self.in_use += 1;
                i
            }
        };
        if position < self.by_position.len() {
            self.by_position[position] = i as u32;
        } else if position == self.by_position.len() && position < cap {
            self.by_position.push(i as u32);
        }
        Ok(i)
    }

    /// Counts column `i` as used in this window, unless that would pass the cap.
    #[inline]
    fn mark_used(&mut self, i: usize, cap: usize) -> Result<usize, Refused> {
        if !self.used[i] {
            if self.in_use >= cap {
                return Err(Refused::OverCap);
            }
            self.used[i] = true;
            self.in_use += 1;
        }
        Ok(i)
    }

    /// A column for a new name: a new one below the cap, else one that no name used in
    /// this window (there is one, as fewer than `cap` are in use), renamed, its cleared
    /// sketches reused. Memory thus stays within `cap` columns however names churn.
    fn place(&mut self, name: &str, cap: usize) -> usize {
        let i = if self.columns.len() < cap {
            self.columns.push(ShardColumn::default());
            self.spans.push((0, 0));
            self.used.push(false);
            self.columns.len() - 1
        } else {
            let j = self.unused_from
                + self.used[self.unused_from..]
                    .iter()
                    .position(|u| !u)
                    .expect("fewer names in use than columns");
            self.unused_from = j + 1;
            let old = self.name(j).to_owned();
            self.index.remove(old.as_str());
            j
        };
        // The old name's bytes stay in `names` until `clear` compacts it.
        self.spans[i] = (self.names.len() as u32, name.len() as u32);
        self.names.push_str(name);
        self.index.insert(name.into(), i as u32);
        i
    }

    /// Zeroes every column for the next window, keeping names and allocations, so that a
    /// model whose names repeat allocates nothing once warm.
    fn clear(&mut self) {
        for c in &mut self.columns {
            c.clear();
        }
        // Held values of a window not read (none, as the worker reads every window first)
        // must not fold into the next one.
        self.deferred.clear();
        self.used.fill(false);
        self.in_use = 0;
        self.unused_from = 0;
        let live: usize = self.spans.iter().map(|&(_, len)| len as usize).sum();
        if self.names.len() > live {
            // Renamed columns left their old names behind: keep only the current ones.
            let mut names = String::with_capacity(self.names.capacity());
            for span in &mut self.spans {
                let (start, len) = (span.0 as usize, span.1 as usize);
                *span = (names.len() as u32, span.1);
                names.push_str(&self.names[start..start + len]);
            }
            self.names = names;
        }
    }

    /// Holds a value of column `i` to be folded with others.
    #[inline]
    fn defer(&mut self, i: usize, v: Folded, key: &HashKey) {
        match Held::new(i as u32, v) {
            Some(held) => {
                if self.deferred.len() >= DEFER_MAX {
                    self.settle(key);
                }
                self.deferred.push(held);
            }
            None => self.columns[i].apply(v, key),
        }
    }

    /// Prefetches what resolving a record's names and holding its values touch: the
    /// positional cache, the names and their spans, the used flags and the next lines of
    /// the held values. A server's own work between two predictions evicts them; asked
    /// for together, they arrive in the time of one miss instead of one after another.
    #[inline(always)]
    fn prefetch_for_record(&self) {
        fn table<T>(items: &[T]) {
            prefetch_lines(
                items.as_ptr(),
                std::mem::size_of_val(items),
                PREFETCH_TABLE_LINES,
            );
        }
        table(&self.by_position);
        table(&self.spans);
        table(self.names.as_bytes());
        table(&self.used);
        // Where the record's values will be written.
        let next = self.deferred.as_ptr().wrapping_add(self.deferred.len());
        let room = self.deferred.capacity() - self.deferred.len();
        prefetch_lines(
            next,
            room * std::mem::size_of::<Held>(),
            PREFETCH_TABLE_LINES,
        );
    }

    /// Folds the held values, in the order they were logged. The lines a value will write
    /// are asked for [`PREFETCH_AHEAD`] values before it is folded: when the server's own
    /// work has evicted the sketches, each value's misses then overlap with the folding of
    /// the values before it instead of stalling it.
    fn settle(&mut self, key: &HashKey) {
        let (columns, deferred) = (&mut self.columns, &self.deferred);
        // The numbers' hashes, computed when prefetched, by position modulo the distance.
        let mut hashes = [0u64; PREFETCH_AHEAD];
        for (j, held) in deferred.iter().enumerate().take(PREFETCH_AHEAD) {
            hashes[j] = columns[held.column as usize].prefetch(held.folded(), key);
        }
        for (j, held) in deferred.iter().enumerate() {
            let hash = hashes[j % PREFETCH_AHEAD];
            if let Some(ahead) = deferred.get(j + PREFETCH_AHEAD) {
                hashes[j % PREFETCH_AHEAD] =
                    columns[ahead.column as usize].prefetch(ahead.folded(), key);
            }
            columns[held.column as usize].apply_hashed(held.folded(), |_| hash);
        }
        self.deferred.clear();
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
    counters: HashMap<Box<str>, u64>,
    values: HashMap<Box<str>, ShardColumn>,
    drops: DropCounts,
    /// The first names refused for the feature or output cap, to name in the summary.
    names_over_cap: Vec<String>,
}

impl WindowAcc {
    /// Folds one prediction: features and outputs. Reduced values are held
    /// ([`DEFER_MAX`]); vectors and the names of plain categories are folded at once.
    #[inline]
    pub(crate) fn log_prediction<F: Features + ?Sized, P: Prediction + ?Sized>(
        &mut self,
        features: &F,
        prediction: &P,
        key: &HashKey,
        rules: &Rules<'_>,
    ) {
        let limits = rules.limits;
        self.features.prefetch_for_record();
        self.outputs.prefetch_for_record();
        self.predictions += 1;
        let drops = &mut self.drops;
        let fold = |c: &mut Columns, i: usize, v: Value<'_>| {
            c.columns[i].fold_unreduced(&v, limits.max_string_bytes);
            if !matches!(v, Value::Vector(_)) {
                c.defer(i, Folded::of(&v, key, limits.max_string_bytes), key);
            }
        };
        let named = &mut self.names_over_cap;
        walk_columns(
            &mut self.features,
            drops,
            named,
            false,
            rules,
            |f| features.for_each_feature(f),
            fold,
        );
        walk_columns(
            &mut self.outputs,
            drops,
            named,
            true,
            rules,
            |f| prediction.for_each_output(f),
            fold,
        );
    }

    /// Folds `rows[i]` with `predictions[i]`: the same as one `log_prediction` per row.
    pub(crate) fn log_batch<F: Features, P: Prediction>(
        &mut self,
        rows: &[F],
        predictions: &[P],
        key: &HashKey,
        rules: &Rules<'_>,
    ) {
        let n = rows.len().min(predictions.len());
        self.drops.batch_unpaired += rows.len().abs_diff(predictions.len()) as u64;
        for (row, p) in rows[..n].iter().zip(&predictions[..n]) {
            self.log_prediction(row, p, key, rules);
        }
    }

    /// Folds one (label, prediction) pair into each named segment and the overall summary.
    /// A probability of `true` counts as predicting `true` from `threshold` on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn log_ground_truth<S: AsRef<str>>(
        &mut self,
        label: &Value<'_>,
        prediction: &Value<'_>,
        confidence: Option<f64>,
        threshold: f64,
        segments: impl IntoIterator<Item = S>,
        limits: &Limits,
    ) {
        let fold = |gt: &mut GroundTruthSummary| {
            gt.fold(label, prediction, confidence, threshold, limits.max_classes)
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

    /// Adds `n` to the counter `name`.
    pub(crate) fn count(&mut self, name: &str, n: u64, limits: &Limits) {
        if let Some(c) = self.counters.get_mut(name) {
            *c = c.saturating_add(n);
        } else if self.admits_metric(name, limits) {
            self.counters.insert(name.into(), n);
        }
    }

    /// Records `x` in the named value `name` (NaN is missing, infinities are counted).
    pub(crate) fn record_value(&mut self, name: &str, x: f64, limits: &Limits) {
        if let Some(c) = self.values.get_mut(name) {
            c.record_number(x);
        } else if self.admits_metric(name, limits) {
            let mut c = ShardColumn::default();
            c.record_number(x);
            self.values.insert(name.into(), c);
        }
    }

    /// Whether a new counter or value name fits the limits; counts the refusal if not.
    fn admits_metric(&mut self, name: &str, limits: &Limits) -> bool {
        if name.len() > limits.max_name_bytes {
            self.drops.names_too_long += 1;
            false
        } else if self.counters.len() + self.values.len() >= limits.max_metrics {
            self.drops.metrics_over_cap += 1;
            false
        } else {
            true
        }
    }

    /// Records one inference latency, in seconds (NaN is missing, infinities are counted).
    pub(crate) fn record_latency(&mut self, seconds: f64) {
        self.latency.record_number(seconds);
    }

    /// Whether nothing was logged into this window.
    pub(crate) fn is_empty(&self) -> bool {
        self.predictions == 0
            && self.overall.is_none()
            && self.exceptions.is_empty()
            && self.latency.counts.count == 0
            && self.counters.is_empty()
            && self.values.is_empty()
            && self.drops == DropCounts::default()
    }

    /// Adds this window's statistics into a summary.
    pub(crate) fn add_to(&mut self, s: &mut WindowSummary, limits: &Limits, key: &HashKey) {
        self.features.settle(key);
        self.outputs.settle(key);
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
        for (name, n) in &self.counters {
            let c = s.counters.entry(name.to_string()).or_default();
            *c = c.saturating_add(*n);
        }
        for (name, v) in &self.values {
            v.add_to(&mut s.values.entry(name.to_string()).or_default().0);
        }
        s.dropped.add(&self.drops);
        for name in &self.names_over_cap {
            note_over_cap(&mut s.names_over_cap, name);
        }
    }

    /// Empties the window, keeping its allocations (names, sketches) for reuse.
    pub(crate) fn clear(&mut self) {
        self.predictions = 0;
        self.features.clear();
        self.outputs.clear();
        self.segments.clear();
        self.overall = None;
        self.exceptions.clear();
        self.exception_index.clear();
        self.latency.clear();
        self.counters.clear();
        self.values.clear();
        self.drops = DropCounts::default();
        self.names_over_cap.clear();
    }
}

/// A declared schema within the limits: at most `max_features` names of at most
/// `max_name_bytes` bytes (longer or further names are left out, with a warning).
pub(crate) fn declared_schema<S: AsRef<str>>(
    schema: impl IntoIterator<Item = (S, FeatureType)>,
    limits: &Limits,
) -> BTreeMap<String, FeatureType> {
    let mut declared = BTreeMap::new();
    for (name, t) in schema {
        let name = name.as_ref();
        if name.len() > limits.max_name_bytes || declared.len() >= limits.max_features {
            log::warn!(target: "modelwatch::agent", "declared feature {:?} left out: past max_name_bytes or max_features", cut(name, 64));
            continue;
        }
        declared.insert(name.to_owned(), t);
    }
    declared
}

/// What sealing a summary follows: the same in an agent and in a builder.
pub(crate) struct Sealing<'a> {
    pub(crate) key: &'a HashKey,
    /// Texts the text guard lets through (`Config::allow_text`).
    pub(crate) allowed_texts: &'a HashSet<String>,
    /// k of k-anonymity (`Config::min_values_per_window`).
    pub(crate) min_values: u64,
    /// Fewest occurrences of a plain category that ship by name
    /// (`Config::plain_category_min_count`).
    pub(crate) plain_min: u64,
    pub(crate) limits: &'a Limits,
}

/// Makes a sealed summary ready to ship, the same way in an agent and in a builder:
/// records without a feature count as missing values of it, plain categories seen fewer
/// than `plain_min` times lose their names, personal-looking texts become keyed tokens
/// (so that what waits is kept under the names it ships with), then groups of fewer than
/// `min_values` values wait in `carry`, their waiting bounded by the window caps
/// (`docs/privacy.md`).
pub(crate) fn finish_summary(
    s: &mut WindowSummary,
    how: &Sealing<'_>,
    carry: &mut Carry,
    seal: Seal,
) {
    s.account_absent();
    for f in s.features.values_mut().chain(s.outputs.values_mut()) {
        f.0.plain.retain(|_, n| *n >= how.plain_min.max(1));
    }
    guard_text(s, how.key, how.allowed_texts);
    let limits = how.limits;
    let rules = Anonymity {
        min_values: how.min_values,
        max_features: limits.max_features,
        max_outputs: limits.max_outputs,
        max_segments: limits.max_segments,
        max_classes: limits.max_classes,
    };
    withhold_small(s, carry, &rules, seal);
}

/// Resolves each (name, value) of a record to its column and hands it to `each`; counts
/// what the caps refuse.
#[inline]
fn walk_columns(
    columns: &mut Columns,
    drops: &mut DropCounts,
    named: &mut Vec<String>,
    outputs: bool,
    rules: &Rules<'_>,
    walk: impl FnOnce(&mut dyn FnMut(&str, Value<'_>)),
    mut each: impl FnMut(&mut Columns, usize, Value<'_>),
) {
    let cap = if outputs {
        rules.limits.max_outputs
    } else {
        rules.limits.max_features
    };
    let mut position = 0;
    walk(&mut |name, value| {
        match columns.slot(position, name, cap, rules) {
            Ok(i) => each(columns, i, value),
            Err(Refused::OverCap) => {
                if outputs {
                    drops.outputs_over_cap += 1;
                } else {
                    drops.features_over_cap += 1;
                }
                note_over_cap(named, name);
            }
            Err(Refused::NameTooLong) => drops.names_too_long += 1,
        }
        position += 1;
    });
}

/// Byte equality, eight bytes at a time: names are short, and a libc `bcmp` call per
/// value (what `==` on slices becomes) costs more than the comparison.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().expect("8 bytes"));
    wa.zip(wb).all(|(x, y)| word(x) == word(y)) && ra.iter().zip(rb).all(|(x, y)| x == y)
}

fn value_text(v: &Value<'_>, max: usize) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => cut(s, max).to_owned(),
        Value::Vector(v) => format!("vector of {}", v.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::summary::Header;
    use std::collections::BTreeMap;

    /// The summary of one window, then the accumulator cleared for reuse, as the worker does.
    fn seal(w: &mut WindowAcc, limits: &Limits, key: &HashKey) -> WindowSummary {
        let header = Header {
            deployment: "d".into(),
            instance: 0,
            sequence: 0,
            window_start_ms: 0,
            window_ms: 60_000,
            partial: false,
            key_fingerprint: 0,
        };
        let mut s = WindowSummary::new(header, BTreeMap::new());
        w.add_to(&mut s, limits, key);
        w.clear();
        s
    }

    #[test]
    fn the_feature_cap_counts_names_per_window_not_names_ever_held() {
        let (key, limits) = (HashKey::new([7; 16]), Limits::default());
        let mut w = WindowAcc::default();
        for window in 0..10 {
            // 301 names never seen before, plus one that every window has.
            for i in 0..301 {
                let name = format!("w{window}-f{i}");
                w.log_prediction(
                    &[(name.as_str(), 1.5), ("stable", 2.0)],
                    &0.5,
                    &key,
                    &limits.rules(),
                );
            }
            let s = seal(&mut w, &limits, &key);
            assert_eq!(s.features().count(), 302, "window {window}");
            assert_eq!(s.dropped().features_over_cap, 0, "window {window}");
            assert_eq!(s.feature(&format!("w{window}-f300")).unwrap().count(), 1);
            assert_eq!(s.feature("stable").unwrap().count(), 301);
            // Columns are taken over, not added: memory stays within the cap.
            assert!(w.features.columns.len() <= limits.max_features);
            let live: usize = w.features.spans.iter().map(|s| s.1 as usize).sum();
            assert_eq!(w.features.names.len(), live, "names compacted");
        }
    }

    #[test]
    fn a_window_keeps_the_first_cap_names_and_counts_the_rest() {
        let key = HashKey::new([7; 16]);
        let limits = Limits {
            max_features: 4,
            ..Limits::default()
        };
        let mut w = WindowAcc::default();
        let log = |w: &mut WindowAcc, names: &[&str]| {
            for n in names {
                w.log_prediction(&[(*n, 1.0)], &0.5, &key, &limits.rules());
            }
        };
        log(&mut w, &["a", "b", "c", "d", "e", "a"]);
        let s = seal(&mut w, &limits, &key);
        let names: Vec<&str> = s.features().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(s.dropped().features_over_cap, 1);
        assert_eq!(s.feature("a").unwrap().count(), 2);

        // "a" and "b" are held from the last window; the cap counts what this one uses.
        log(&mut w, &["x", "y", "a", "z", "b", "c"]);
        let s = seal(&mut w, &limits, &key);
        let names: Vec<&str> = s.features().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "x", "y", "z"]);
        assert_eq!(s.dropped().features_over_cap, 2);
        assert_eq!(
            s.feature("a").unwrap().count(),
            1,
            "cleared between windows"
        );
    }
}
