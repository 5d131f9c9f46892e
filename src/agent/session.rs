//! Sessions: the handle a model server logs through, and its per-thread shards.

use crate::core::record::cut;
use crate::core::record::segments::Segments;
use crate::core::record::value::{Features, Prediction, Value};
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::anonymity::Carry;
use crate::core::summary::FeatureType;
use crate::core::window::join::{JoinStore, Remembered};
use crate::core::window::token::{self, TokenContent};
use crate::core::window::{declared_schema, Limits, Rules, Sealing, WindowAcc};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Finished windows a shard holds before the worker collects them. Past it (a stalled
/// worker) the current window keeps absorbing records, so memory stays bounded and nothing
/// is dropped; the summary then spans more than one window length.
const MAX_FINISHED: usize = 4;

/// Shards of a session, at most (`2 × available_parallelism`, clamped to 2..=16).
pub(crate) const MAX_SHARDS: usize = 16;

/// See [`crate::BYTES_PER_SESSION`]: the session, its shard array at most, its `Arc` and
/// registry entry, with room for the allocator's rounding.
pub(crate) const BYTES_PER_SESSION: usize = std::mem::size_of::<SessionInner>()
    + MAX_SHARDS * std::mem::size_of::<Padded<Mutex<Shard>>>()
    + 512;

/// Settings every session of an agent shares.
pub(crate) struct Shared {
    pub(crate) key: HashKey,
    pub(crate) limits: Limits,
    /// k of k-anonymity (`Config::min_values_per_window`).
    pub(crate) min_values: u64,
    /// Texts the text guard lets through (`Config::allow_text`).
    pub(crate) allowed_texts: HashSet<String>,
    /// Features whose categories ship by name (`Config::plain_categories`), and how often
    /// a category must occur in a window to ship so.
    pub(crate) plain: HashSet<String>,
    pub(crate) plain_min: u64,
    pub(crate) window_ms: i64,
    pub(crate) join_capacity: usize,
    pub(crate) join_ttl_ms: i64,
    /// Logging calls that found their shard locked (by another thread or the worker).
    pub(crate) contended: AtomicU64,
}

impl Shared {
    /// What folding a record follows besides the key.
    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            limits: &self.limits,
            plain: &self.plain,
        }
    }

    /// What sealing a summary follows.
    pub(crate) fn sealing(&self) -> Sealing<'_> {
        Sealing {
            key: &self.key,
            allowed_texts: &self.allowed_texts,
            min_values: self.min_values,
            plain_min: self.plain_min,
            limits: &self.limits,
        }
    }
}

/// One shard's windows. Each logging thread maps to one shard, so locks are uncontended.
pub(crate) struct Shard {
    pub(crate) start_ms: i64,
    pub(crate) current: WindowAcc,
    pub(crate) finished: Vec<(i64, WindowAcc)>,
    /// Cleared accumulators returned by the worker, reused so that rolling over to a new
    /// window allocates nothing.
    pub(crate) spare: Vec<WindowAcc>,
}

impl Shard {
    /// A shard with no window, holding no heap memory: logging re-creates what it needs.
    fn empty() -> Self {
        Shard {
            start_ms: i64::MIN,
            current: WindowAcc::default(),
            finished: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Moves the current window to `finished` if `now_ms` lies in a later (or earlier) one.
    #[inline]
    fn roll(&mut self, now_ms: i64, window_ms: i64) {
        let start = now_ms - now_ms.rem_euclid(window_ms);
        if start != self.start_ms && self.finished.len() < MAX_FINISHED {
            self.seal_current();
            self.start_ms = start;
        }
    }

    /// Moves a non-empty current window to `finished`.
    pub(crate) fn seal_current(&mut self) {
        if !self.current.is_empty() {
            let fresh = self.spare.pop().unwrap_or_default();
            let old = std::mem::replace(&mut self.current, fresh);
            self.finished.push((self.start_ms, old));
        }
    }
}

/// Cache-line padding, so that two threads' shards never share a line.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// What the worker records of a session (only the worker takes this lock).
pub(crate) struct Book {
    /// The sequence number of the session's last summary. Counted per session, so that
    /// `(instance, sequence)` is unique per deployment and reveals nothing of the others.
    pub(crate) sequence: u64,
    /// When the worker last found something logged or waiting.
    pub(crate) active_ms: i64,
    /// Whether the memory of the windows was released since.
    pub(crate) released: bool,
    /// Columns and segments with fewer than k values, waiting for the session's next
    /// summary (k-anonymity). Kept when idle windows are released: they are small (fewer
    /// than k values each, at most the window caps of them) and not yet shipped.
    pub(crate) carry: Carry,
}

pub(crate) struct SessionInner {
    pub(crate) name: String,
    pub(crate) shared: Arc<Shared>,
    pub(crate) shards: Box<[Padded<Mutex<Shard>>]>,
    pub(crate) metadata: Mutex<BTreeMap<String, String>>,
    pub(crate) metadata_dropped: AtomicU64,
    /// Created on the first keyed prediction or feedback.
    join: Mutex<Option<JoinStore>>,
    /// Feedback tokens matched, forged, expired since the last summary.
    tokens: [AtomicU64; 3],
    /// The decision threshold of probabilities of `true`, as f64 bits.
    threshold: AtomicU64,
    /// Declared features and their types (`Session::declare_features`).
    pub(crate) schema: Mutex<BTreeMap<String, FeatureType>>,
    pub(crate) book: Mutex<Book>,
}

impl SessionInner {
    pub(crate) fn new(name: String, shared: Arc<Shared>, shards: usize) -> Self {
        // Nothing is allocated per shard before it is logged into: a session costs its
        // shard array until then (`BYTES_PER_SESSION`).
        let shards = (0..shards)
            .map(|_| Padded(Mutex::new(Shard::empty())))
            .collect();
        SessionInner {
            name,
            shared,
            shards,
            metadata: Mutex::new(BTreeMap::new()),
            metadata_dropped: AtomicU64::new(0),
            join: Mutex::new(None),
            tokens: Default::default(),
            threshold: AtomicU64::new(0.5f64.to_bits()),
            schema: Mutex::new(BTreeMap::new()),
            book: Mutex::new(Book {
                sequence: 0,
                active_ms: now_ms(),
                released: false,
                carry: Carry::default(),
            }),
        }
    }

    /// Frees the memory of the session's windows where nothing waits in them, and of an
    /// idle join store; logging later re-creates what it needs. Name, metadata, sequence
    /// number and waiting keyed predictions stay. Returns whether every shard was freed (a
    /// thread may have logged into one meanwhile).
    pub(crate) fn release_idle(&self) -> bool {
        let mut all = true;
        for shard in self.shards.iter() {
            let mut g = shard.0.lock();
            if g.current.is_empty() && g.finished.is_empty() {
                let old = std::mem::replace(&mut *g, Shard::empty());
                drop(g); // freed outside the lock
                drop(old);
            } else {
                all = false;
            }
        }
        let mut join = self.join.lock();
        if join.as_ref().is_some_and(JoinStore::is_idle) {
            *join = None;
        }
        all
    }

    fn join_store(&self) -> parking_lot::MappedMutexGuard<'_, JoinStore> {
        parking_lot::MutexGuard::map(self.join.lock(), |j| {
            j.get_or_insert_with(|| {
                JoinStore::new(self.shared.join_capacity, self.shared.join_ttl_ms)
            })
        })
    }

    /// Feedback outcomes since the last summary.
    pub(crate) fn take_feedback_counts(&self) -> crate::core::summary::FeedbackCounts {
        let mut c = self
            .join
            .lock()
            .as_mut()
            .map(|j| j.take_counts(now_ms()))
            .unwrap_or_default();
        let [matched, forged, expired] = &self.tokens;
        c.token_matched = matched.swap(0, Ordering::Relaxed);
        c.token_forged = forged.swap(0, Ordering::Relaxed);
        c.token_expired = expired.swap(0, Ordering::Relaxed);
        c
    }
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn now_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    #[cfg(test)]
    let now = now + test_clock::STEP_MS.load(Ordering::Relaxed);
    now
}

/// A step of the wall clock as the agent sees it, for the clock-step tests (unit tests
/// only: no other unit test runs an agent).
#[cfg(test)]
pub(crate) mod test_clock {
    pub(crate) static STEP_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
}

/// The handle a model server logs through: one per deployment, `Clone + Send + Sync`,
/// cheap to clone. Logging never blocks on I/O, never returns an error and never panics
/// for data problems: they are counted in the window's [`DropCounts`](crate::DropCounts)
/// and per-feature counts.
///
/// A session obtained from [`session`](crate::session) before [`configure`](crate::configure),
/// or for a new deployment past [`Config::max_sessions`](crate::Config::max_sessions), is
/// inert: it logs nothing (and says so once through the `log` crate).
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Option<Arc<SessionInner>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("deployment", &self.deployment())
            .finish()
    }
}

impl Session {
    /// The deployment name; `None` for an inert session.
    pub fn deployment(&self) -> Option<&str> {
        self.inner.as_deref().map(|i| i.name.as_str())
    }

    /// Runs `f` on this thread's shard, rolled to the current window.
    #[inline]
    fn with_shard(&self, f: impl FnOnce(&mut WindowAcc, &Shared)) {
        let Some(inner) = &self.inner else { return };
        let shared = &*inner.shared;
        let i = THREAD_INDEX.with(|i| *i) % inner.shards.len();
        let now = now_ms();
        let mut shard = match inner.shards[i].0.try_lock() {
            Some(guard) => guard,
            None => {
                // Counted so that "logging never waits" is checked, not assumed.
                shared.contended.fetch_add(1, Ordering::Relaxed);
                inner.shards[i].0.lock()
            }
        };
        shard.roll(now, shared.window_ms);
        f(&mut shard.current, shared);
    }

    /// Logs one prediction: its features and its output(s).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-log-prediction");
    /// use modelwatch::{Agent, Config, Value};
    /// let agent = Agent::start(Config::new("key").data_dir(&dir))?;
    /// let sess = agent.session("fraud_detection_prod");
    /// sess.log_prediction([("amount", Value::from(12.5)), ("country", Value::from("NL"))], true);
    /// sess.log_prediction([("amount", Value::from(None::<f64>))], false); // a missing value
    /// agent.flush(std::time::Duration::from_secs(5))?;
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    #[inline]
    pub fn log_prediction(&self, features: impl Features, prediction: impl Prediction) {
        self.with_shard(|w, s| w.log_prediction(&features, &prediction, &s.key, &s.rules()));
    }

    /// Logs many predictions under one lock: `rows[i]` with `predictions[i]`. Rows or
    /// predictions without a partner are counted as `DropCounts::batch_unpaired`.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-batch");
    /// use modelwatch::{Agent, Config};
    /// let agent = Agent::start(Config::new("key").data_dir(&dir))?;
    /// let rows = vec![[("x", 1.0)], [("x", 2.0)]];
    /// agent.session("m").log_prediction_batch(&rows, &[0.1, 0.9]);
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn log_prediction_batch<F: Features, P: Prediction>(&self, rows: &[F], predictions: &[P]) {
        self.with_shard(|w, s| w.log_batch(rows, predictions, &s.key, &s.rules()));
    }

    /// Counts an exception by message; the tags of its first occurrence in a window are
    /// kept. Message and tags are shipped as given (cut to `max_text_bytes`): do not put
    /// raw feature values in them.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-exc");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// agent.session("m").log_exception("wrong format", [("feature", "F1")]);
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn log_exception(&self, message: &str, tags: impl Features) {
        self.with_shard(|w, s| w.log_exception(message, &tags, &s.limits));
    }

    /// Logs ground truth: the label, what was predicted, and the segments it belongs to
    /// (`()` for none, see [`Segments`]; every pair also counts in the overall summary). The kind of
    /// comparison follows the types: `bool` → binary, integers or strings → classes, floats
    /// → regression; the argmax of probabilities is the predicted class. Mismatched types
    /// are counted, not panicked on.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-gt");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// let sess = agent.session("m");
    /// sess.log_ground_truth(true, false, ["seg1", "seg2"]);
    /// sess.log_ground_truth("cat", "dog", ()); // no segments
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn log_ground_truth<'a>(
        &self,
        label: impl Into<Value<'a>>,
        prediction: impl Prediction,
        segments: impl Segments,
    ) {
        let label = label.into();
        let threshold = self.decision_threshold();
        self.with_shard(|w, s| {
            w.log_ground_truth(
                &label,
                &prediction.predicted(),
                prediction.confidence(),
                threshold,
                segments.names(),
                &s.limits,
            )
        });
    }

    /// Logs a prediction like [`log_prediction`](Self::log_prediction) and remembers its
    /// predicted value, confidence and `segments` under `key`, so that
    /// [`log_feedback`](Self::log_feedback) can join the label later, from this process
    /// (across processes and restarts, use [feedback tokens](Self::log_prediction_with_token)).
    /// The store keeps a keyed hash of the key, never the key or any feature value; it holds
    /// at most `Config::join_capacity` waiting predictions for at most `Config::join_ttl`
    /// (oldest out first, counted); an answered one leaves at once.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-keyed");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// let sess = agent.session("fraud");
    /// sess.log_prediction_keyed("txn-1042", [("amount", 99.5)], true, ["web"]);
    /// // Days later, when the investigation closes (segments come from the prediction):
    /// sess.log_feedback("txn-1042", false, ());
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn log_prediction_keyed(
        &self,
        key: &str,
        features: impl Features,
        prediction: impl Prediction,
        segments: impl Segments,
    ) {
        self.log_prediction(&features, &prediction);
        let Some(inner) = &self.inner else { return };
        let shared = &*inner.shared;
        let max = shared.limits.max_name_bytes;
        let remembered = Remembered {
            predicted: prediction
                .predicted()
                .to_owned_cut(shared.limits.max_text_bytes),
            confidence: prediction.confidence(),
            segments: segments
                .names()
                .filter(|s| s.len() <= max)
                .take(shared.limits.max_segments)
                .map(Into::into)
                .collect(),
        };
        let key = JoinStore::key(&shared.key, key);
        inner.join_store().remember(key, remembered, now_ms());
    }

    /// Logs the label of a prediction logged with [`log_prediction_keyed`](Self::log_prediction_keyed):
    /// the pair (label, remembered prediction) folds into the current window's ground truth,
    /// overall and per segment: the segments remembered with the prediction, and `segments`
    /// besides (those known only with the label). Feedback for an unknown, expired or
    /// already answered key is counted ([`WindowSummary::feedback`](crate::WindowSummary::feedback)),
    /// not folded.
    pub fn log_feedback<'a>(
        &self,
        key: &str,
        label: impl Into<Value<'a>>,
        segments: impl Segments,
    ) {
        let Some(inner) = &self.inner else { return };
        let key = JoinStore::key(&inner.shared.key, key);
        let Some(r) = inner.join_store().answer(key, now_ms()) else {
            return;
        };
        let label = label.into();
        let threshold = self.decision_threshold();
        let remembered = r.segments.iter().map(|s| &**s);
        let added = segments
            .names()
            .filter(|s| !r.segments.iter().any(|r| &**r == *s));
        self.with_shard(|w, s| {
            w.log_ground_truth(
                &label,
                &r.predicted,
                r.confidence,
                threshold,
                remembered.chain(added),
                &s.limits,
            )
        });
    }

    /// Sets the decision threshold of this session's binary model: a predicted probability
    /// p of `true` counts as predicting `true` when p ≥ `threshold`, for accuracy,
    /// precision, recall and F1 of the ground truth folded from now on (ROC AUC and average
    /// precision do not depend on it). Default 0.5; a value outside (0, 1) is ignored.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-threshold");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// let sess = agent.session("fraud");
    /// sess.set_decision_threshold(0.2); // the operating point of a 3 %-positive model
    /// assert_eq!(sess.decision_threshold(), 0.2);
    /// sess.log_ground_truth(true, 0.31, ()); // a true positive at 0.2
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn set_decision_threshold(&self, threshold: f64) {
        if let Some(inner) = &self.inner {
            if threshold > 0.0 && threshold < 1.0 {
                inner
                    .threshold
                    .store(threshold.to_bits(), Ordering::Relaxed);
            } else {
                log::warn!(target: "modelwatch::agent", "decision threshold {threshold} ignored: it must be in (0, 1)");
            }
        }
    }

    /// The decision threshold ([`set_decision_threshold`](Self::set_decision_threshold)).
    pub fn decision_threshold(&self) -> f64 {
        self.inner
            .as_ref()
            .map_or(0.5, |i| f64::from_bits(i.threshold.load(Ordering::Relaxed)))
    }

    /// Logs a prediction like [`log_prediction`](Self::log_prediction) and returns a
    /// [`FeedbackToken`]: a short URL-safe string that carries what the label's join needs
    /// (the predicted value, its confidence, these segments, the time), authenticated under
    /// the hash key. Hand it to whoever will learn the label (the client, a database, a
    /// queue); any process of the deployment with the same hash key turns it and the label
    /// into ground truth with [`log_token_feedback`](Self::log_token_feedback), across
    /// replicas and restarts, with no store. The token reveals the predicted value and the
    /// segment names to whoever holds it, never a feature (`docs/ground-truth.md`).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-token");
    /// # let key = [9u8; 16];
    /// # let replica_a = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir).hash_key(key))?;
    /// # let replica_b = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir).hash_key(key))?;
    /// // Replica A scores a transaction and returns the token with its answer.
    /// let token = replica_a
    ///     .session("fraud")
    ///     .log_prediction_with_token([("amount", 120.5)], true, ["web"]);
    /// let carried: String = token.to_string();
    /// // Days later, replica B (or A after a restart) learns the label.
    /// replica_b.session("fraud").log_token_feedback(&carried, false);
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn log_prediction_with_token(
        &self,
        features: impl Features,
        prediction: impl Prediction,
        segments: impl Segments,
    ) -> FeedbackToken {
        self.log_prediction(&features, &prediction);
        let Some(inner) = &self.inner else {
            return FeedbackToken(String::new());
        };
        let content = TokenContent {
            at_ms: now_ms(),
            predicted: prediction.predicted().to_owned_cut(usize::MAX),
            confidence: prediction.confidence(),
            segments: segments.names().map(str::to_owned).collect(),
        };
        FeedbackToken(token::encode(&inner.shared.key, &content))
    }

    /// Logs the label of a prediction logged with
    /// [`log_prediction_with_token`](Self::log_prediction_with_token), by its token: the
    /// pair (label, the token's prediction) folds into the current window's ground truth in
    /// the token's segments. A token that is not authentic under this session's hash key
    /// (corrupt, altered, made elsewhere) or older than `Config::join_ttl` is counted
    /// ([`FeedbackCounts`](crate::FeedbackCounts)`::token_forged`, `token_expired`), never
    /// folded. Each call folds once: a label sent twice with one token counts twice.
    pub fn log_token_feedback<'a>(&self, token: &str, label: impl Into<Value<'a>>) {
        let Some(inner) = &self.inner else { return };
        let [matched, forged, expired] = &inner.tokens;
        let content =
            match token::decode(&inner.shared.key, token, now_ms(), inner.shared.join_ttl_ms) {
                Ok(c) => c,
                Err(token::Refused::Forged) => {
                    forged.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(token::Refused::Expired) => {
                    expired.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
        matched.fetch_add(1, Ordering::Relaxed);
        let label = label.into();
        let threshold = self.decision_threshold();
        self.with_shard(|w, s| {
            w.log_ground_truth(
                &label,
                &content.predicted,
                content.confidence,
                threshold,
                content.segments.iter(),
                &s.limits,
            )
        });
    }

    /// Declares the features this session's records should have, and their types: each
    /// then appears in every summary, counted missing in the records (or whole windows)
    /// that lack it, and values of another type are a type violation from the first
    /// record, with no baseline needed (`docs/features.md`). Replaces any earlier
    /// declaration. At most `max_features` names; longer or further ones are left out
    /// with a warning. Undeclared features are still logged as usual.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-declare");
    /// use modelwatch::{Agent, Config, FeatureType, Value};
    /// let agent = Agent::start(Config::new("key").data_dir(&dir))?;
    /// let sess = agent.session("fraud");
    /// sess.declare_features([("amount", FeatureType::Float), ("country", FeatureType::String)]);
    /// sess.log_prediction([("amount", Value::from(12.5))], false); // country: missing
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn declare_features<S: AsRef<str>>(
        &self,
        schema: impl IntoIterator<Item = (S, FeatureType)>,
    ) {
        let Some(inner) = &self.inner else { return };
        *inner.schema.lock() = declared_schema(schema, &inner.shared.limits);
    }

    /// Sets a metadata entry (model version, ...) shipped with every summary of this session.
    /// Shipped as given (cut to `max_text_bytes`); past `max_metadata` entries, new keys are
    /// counted as dropped.
    pub fn log_metadata(&self, key: &str, value: &str) {
        let Some(inner) = &self.inner else { return };
        let max = inner.shared.limits.max_text_bytes;
        let mut m = inner.metadata.lock();
        let (k, v) = (cut(key, max), cut(value, max));
        if let Some(old) = m.get_mut(k) {
            v.clone_into(old);
        } else if m.len() < inner.shared.limits.max_metadata {
            m.insert(k.to_owned(), v.to_owned());
        } else {
            inner.metadata_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `n` to the counter `name` of the current window (cache hits, fallbacks to a
    /// default model, requests refused): the book's counter metric. Counters travel in the
    /// summary ([`WindowSummary::counter`](crate::WindowSummary::counter)) and add up when
    /// summaries merge. At most `max_metrics` counters and values per window, past which
    /// new names are counted as dropped.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-count");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// let sess = agent.session("m");
    /// sess.count("feature_store_fallbacks", 1);
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn count(&self, name: &str, n: u64) {
        self.with_shard(|w, s| w.count(name, n, &s.limits));
    }

    /// Records `x` in the named value `name` of the current window (a queue length, a
    /// score, a batch size): the book's value metric, kept as a histogram like a feature
    /// ([`WindowSummary::value`](crate::WindowSummary::value)). Not k-anonymized, like
    /// latency: meant for the server's own measurements, not for data about a person
    /// (log those as features).
    pub fn record_value(&self, name: &str, x: f64) {
        self.with_shard(|w, s| w.record_value(name, x, &s.limits));
    }

    /// A timer that records the seconds until it drops in the named value `name` (the
    /// book's timer metric; [`time_inference`](Self::time_inference) is the one for
    /// inference latency).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-time");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// # let sess = agent.session("m");
    /// {
    ///     let _t = sess.time("feature_lookup_seconds");
    ///     // call the feature store
    /// }
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn time<'s>(&'s self, name: &'s str) -> NamedTimer<'s> {
        NamedTimer {
            session: self,
            name,
            start: Instant::now(),
        }
    }

    /// Records an inference latency measured elsewhere (the host's own timer, a span), as
    /// [`time_inference`](Self::time_inference) does when its guard drops.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-latency");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// let sess = agent.session("m");
    /// sess.record_latency(std::time::Duration::from_micros(850));
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn record_latency(&self, latency: std::time::Duration) {
        let secs = latency.as_secs_f64();
        self.with_shard(|w, _| w.record_latency(secs));
    }

    /// Starts timing one inference; the latency is recorded when the guard drops.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("modelwatch-doc-timer");
    /// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
    /// # let sess = agent.session("m");
    /// {
    ///     let _t = sess.time_inference();
    ///     // run the model
    /// }
    /// # Ok::<(), modelwatch::Error>(())
    /// ```
    pub fn time_inference(&self) -> InferenceTimer<'_> {
        InferenceTimer {
            session: self,
            start: Instant::now(),
        }
    }
}

/// What [`Session::log_prediction_with_token`] returns: a short URL-safe string (base64url)
/// to hand to whoever will learn the label. Empty from an inert session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeedbackToken(String);

impl FeedbackToken {
    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FeedbackToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Records the seconds it lived in a named value when dropped. See [`Session::time`].
#[must_use = "the time is recorded when the timer drops"]
pub struct NamedTimer<'s> {
    session: &'s Session,
    name: &'s str,
    start: Instant,
}

impl Drop for NamedTimer<'_> {
    fn drop(&mut self) {
        self.session
            .record_value(self.name, self.start.elapsed().as_secs_f64());
    }
}

/// Records one inference latency when dropped. See [`Session::time_inference`].
#[must_use = "the latency is recorded when the timer drops"]
pub struct InferenceTimer<'s> {
    session: &'s Session,
    start: Instant,
}

impl Drop for InferenceTimer<'_> {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        self.session.with_shard(|w, _| w.record_latency(secs));
    }
}
