//! The session handle: logging calls, resolved to the process's current agent.

use crate::agent::{self, GENERATION};
use crate::batch::{self, Columns, FeatureBatch, PredictionBatch};
use crate::convert::{self, Fields, Pred};
use modelwatch::Value;
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static WARNED_INERT: AtomicBool = AtomicBool::new(false);

/// Metadata entries a session keeps to set again on a new agent, at most (the library
/// ships `Limits::max_metadata`, 64 by default, and counts the rest).
const MAX_KEPT_METADATA: usize = 1024;

/// What a session sets on its library session, kept so that a new agent (a forked worker,
/// a `configure` after the session was taken) gets it too.
#[derive(Default)]
struct Settings {
    metadata: BTreeMap<String, String>,
    threshold: Option<f64>,
}

/// The native session; `modelwatch.Session` (python/modelwatch/__init__.py) extends it.
#[pyclass(subclass, frozen, module = "modelwatch._modelwatch")]
pub(crate) struct NativeSession {
    deployment: String,
    /// The library session at the generation it was resolved at. Locked only with the GIL
    /// held and never across a release of it (see agent.rs: fork safety).
    cache: Mutex<(u64, Option<modelwatch::Session>)>,
    /// Same locking rule as `cache`.
    settings: Mutex<Settings>,
}

impl NativeSession {
    /// The library session of the current agent; `None` (and a warning, once) when none runs.
    fn resolve(&self, py: Python<'_>) -> PyResult<Option<modelwatch::Session>> {
        let session = self.resolve_quietly();
        if session.is_none() && !WARNED_INERT.swap(true, Ordering::Relaxed) {
            PyErr::warn(
                py,
                &py.get_type::<pyo3::exceptions::PyRuntimeWarning>(),
                c"modelwatch is not configured (or was shut down): nothing is logged",
                1,
            )?;
        }
        Ok(session)
    }

    /// `resolve` without the warning: for settings, which are kept for the next agent.
    fn resolve_quietly(&self) -> Option<modelwatch::Session> {
        let generation = GENERATION.load(Ordering::Acquire);
        let session = {
            let mut cache = self.cache.lock();
            if cache.0 != generation {
                let session = agent::session(&self.deployment);
                if let Some(s) = &session {
                    let settings = self.settings.lock();
                    for (k, v) in &settings.metadata {
                        s.log_metadata(k, v);
                    }
                    if let Some(t) = settings.threshold {
                        s.set_decision_threshold(t);
                    }
                }
                *cache = (generation, session);
            }
            cache.1.clone()
        };
        session
    }
}

fn features(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Fields> {
    let mut fields = Fields::new();
    if let Some(f) = obj {
        convert::push_features(f, &mut fields)?;
    }
    Ok(fields)
}

fn prediction(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Pred> {
    match obj {
        Some(p) => convert::prediction(p),
        None => Ok(Pred::Scalar(Value::Null)),
    }
}

#[pymethods]
impl NativeSession {
    #[new]
    fn new(deployment_name: String) -> Self {
        NativeSession {
            deployment: deployment_name,
            cache: Mutex::new((0, None)),
            settings: Mutex::new(Settings::default()),
        }
    }

    /// The deployment name.
    #[getter]
    fn deployment_name(&self) -> &str {
        &self.deployment
    }

    /// Logs one prediction: a dict of features and the prediction (a scalar, a list of
    /// class probabilities, or a dict of named outputs). Values are converted before
    /// anything is logged: a value of an unsupported type raises TypeError and logs nothing.
    #[pyo3(signature = (features=None, prediction=None))]
    fn log_prediction(
        &self,
        py: Python<'_>,
        features: Option<&Bound<'_, PyAny>>,
        prediction: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let fields = self::features(features)?;
        let pred = self::prediction(prediction)?;
        if let Some(s) = self.resolve(py)? {
            s.log_prediction(&fields, &pred);
        }
        Ok(())
    }

    /// Folds a prepared batch: features as columns (`feature_names`, `feature_columns`) or
    /// rows (`feature_rows`, dicts or lists with `feature_names`); predictions as columns
    /// (`prediction_names`, `prediction_columns`), one object per row (`prediction_rows`),
    /// or none. The interpreter is released while folding.
    #[pyo3(signature = (*, feature_names=None, feature_columns=None, feature_rows=None,
                        prediction_names=None, prediction_columns=None, prediction_rows=None))]
    #[allow(clippy::too_many_arguments)]
    fn _log_batch(
        &self,
        py: Python<'_>,
        feature_names: Option<Vec<String>>,
        feature_columns: Option<&Bound<'_, PyList>>,
        feature_rows: Option<&Bound<'_, PyAny>>,
        prediction_names: Option<Vec<String>>,
        prediction_columns: Option<&Bound<'_, PyList>>,
        prediction_rows: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let features = match (feature_columns, feature_rows) {
            (Some(c), None) => {
                FeatureBatch::Columns(Columns::new(feature_names.unwrap_or_default(), c)?)
            }
            (None, Some(r)) => FeatureBatch::rows(r, feature_names)?,
            _ => {
                return Err(PyValueError::new_err(
                    "give either feature_columns or feature_rows",
                ))
            }
        };
        let predictions = match (prediction_columns, prediction_rows) {
            (Some(c), None) => {
                PredictionBatch::Columns(Columns::new(prediction_names.unwrap_or_default(), c)?)
            }
            (None, Some(r)) => PredictionBatch::each(r)?,
            (None, None) => {
                PredictionBatch::Columns(Columns::nulls(modelwatch::PREDICTION, features.len()))
            }
            _ => {
                return Err(PyValueError::new_err(
                    "give either prediction_columns or prediction_rows",
                ))
            }
        };
        if features.len() != predictions.len() {
            return Err(PyValueError::new_err(format!(
                "{} rows of features for {} predictions",
                features.len(),
                predictions.len()
            )));
        }
        let n = features.len();
        if let Some(s) = self.resolve(py)? {
            py.detach(|| batch::fold(&s, &features, &predictions));
        }
        Ok(n)
    }

    /// Counts an exception by message, with the tags of its first occurrence in a window.
    #[pyo3(signature = (message, tags=None))]
    fn _log_exception(
        &self,
        py: Python<'_>,
        message: &str,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let tags = features(tags)?;
        if let Some(s) = self.resolve(py)? {
            s.log_exception(message, &tags);
        }
        Ok(())
    }

    /// Sets a metadata entry shipped with every summary of this session (`str(value)`),
    /// also by the agent of a forked worker or of a later `configure`.
    fn log_metadata(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::text(value)?;
        {
            let mut settings = self.settings.lock();
            if settings.metadata.len() < MAX_KEPT_METADATA || settings.metadata.contains_key(key) {
                settings.metadata.insert(key.to_owned(), value.clone());
            }
        }
        if let Some(s) = self.resolve_quietly() {
            s.log_metadata(key, &value);
        }
        Ok(())
    }

    /// Logs ground truth: the label, what was predicted, and the segments it counts in.
    #[pyo3(signature = (label, prediction, segments=None))]
    fn log_ground_truth(
        &self,
        py: Python<'_>,
        label: &Bound<'_, PyAny>,
        prediction: &Bound<'_, PyAny>,
        segments: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let label = convert::label(label)?;
        let pred = convert::prediction(prediction)?;
        let segments = convert::segments(segments)?;
        if let Some(s) = self.resolve(py)? {
            s.log_ground_truth(label, &pred, &segments);
        }
        Ok(())
    }

    /// Logs a prediction and returns a feedback token (a short URL-safe str) to pass with
    /// the label to `log_token_feedback`, in any process sharing the hash key.
    #[pyo3(signature = (features=None, prediction=None, segments=None))]
    fn log_prediction_with_token(
        &self,
        py: Python<'_>,
        features: Option<&Bound<'_, PyAny>>,
        prediction: Option<&Bound<'_, PyAny>>,
        segments: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let fields = self::features(features)?;
        let pred = self::prediction(prediction)?;
        let segments = convert::segments(segments)?;
        Ok(match self.resolve(py)? {
            Some(s) => s
                .log_prediction_with_token(&fields, &pred, &segments)
                .to_string(),
            None => String::new(),
        })
    }

    /// Logs the label of a prediction logged with `log_prediction_with_token`.
    fn log_token_feedback(
        &self,
        py: Python<'_>,
        token: &str,
        label: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let label = convert::label(label)?;
        if let Some(s) = self.resolve(py)? {
            s.log_token_feedback(token, label);
        }
        Ok(())
    }

    /// Logs a prediction and remembers what was predicted, and its segments, under `key`,
    /// for `log_feedback` from this process.
    #[pyo3(signature = (key, features=None, prediction=None, segments=None))]
    fn log_prediction_keyed(
        &self,
        py: Python<'_>,
        key: &str,
        features: Option<&Bound<'_, PyAny>>,
        prediction: Option<&Bound<'_, PyAny>>,
        segments: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let fields = self::features(features)?;
        let pred = self::prediction(prediction)?;
        let segments = convert::segments(segments)?;
        if let Some(s) = self.resolve(py)? {
            s.log_prediction_keyed(key, &fields, &pred, &segments);
        }
        Ok(())
    }

    /// Logs the label of a prediction logged with `log_prediction_keyed`: in the segments
    /// remembered with it, and `segments` besides.
    #[pyo3(signature = (key, label, segments=None))]
    fn log_feedback(
        &self,
        py: Python<'_>,
        key: &str,
        label: &Bound<'_, PyAny>,
        segments: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let label = convert::label(label)?;
        let segments = convert::segments(segments)?;
        if let Some(s) = self.resolve(py)? {
            s.log_feedback(key, label, &segments);
        }
        Ok(())
    }

    /// Adds `n` to the counter `name` of the current window.
    #[pyo3(signature = (name, n=1))]
    fn count(&self, py: Python<'_>, name: &str, n: u64) -> PyResult<()> {
        if let Some(s) = self.resolve(py)? {
            s.count(name, n);
        }
        Ok(())
    }

    /// Records `value` in the named value `name` of the current window.
    fn record_value(&self, py: Python<'_>, name: &str, value: f64) -> PyResult<()> {
        if let Some(s) = self.resolve(py)? {
            s.record_value(name, value);
        }
        Ok(())
    }

    /// Records an inference latency in seconds.
    fn record_latency(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let latency = Duration::try_from_secs_f64(seconds).map_err(|_| {
            PyValueError::new_err(format!(
                "a latency must be a finite number of seconds >= 0, got {seconds}"
            ))
        })?;
        if let Some(s) = self.resolve(py)? {
            s.record_latency(latency);
        }
        Ok(())
    }

    /// Sets the decision threshold of this session's binary model (default 0.5).
    fn set_decision_threshold(&self, threshold: f64) -> PyResult<()> {
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(PyValueError::new_err(format!(
                "a decision threshold must be in (0, 1), got {threshold}"
            )));
        }
        self.settings.lock().threshold = Some(threshold);
        if let Some(s) = self.resolve_quietly() {
            s.set_decision_threshold(threshold);
        }
        Ok(())
    }

    /// The decision threshold (0.5 unless set).
    #[getter]
    fn decision_threshold(&self) -> f64 {
        self.settings.lock().threshold.unwrap_or(0.5)
    }

    fn __repr__(&self) -> String {
        format!("Session(deployment_name={:?})", self.deployment)
    }
}
