//! Python values to modelwatch values: the one place where a Python object becomes a
//! [`Value`], so that a new kind of value (vectors, embeddings) is added here only.
//!
//! Scalars: `None` (missing), `bool`, `int`, `float` (NaN is missing), `str`, their
//! subclasses, numpy scalars (through `.item()`), pandas' `NA`/`NaT` (missing), and
//! anything with `__float__` (`Decimal`, `Fraction`). Containers flatten as
//! `modelwatch::Record` flattens a struct: a dict's entries as `name.key`; a list, tuple or
//! numpy array of numbers (an embedding) as one vector feature (`Value::Vector`, its
//! dimension, norms and mean: `docs/features.md`); an empty one as a missing value; other
//! sequences item by item as `name.0`, `name.1`, ... Anything else raises `TypeError`,
//! before anything is logged.

use modelwatch::{Features, Prediction, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::borrow::Cow;

/// A feature or output name: shared, so that a cached key or a batch's column name is
/// handed to each row without an allocation.
pub(crate) type Name = std::sync::Arc<str>;

/// Named values, owned: a row of features, named outputs, exception tags.
pub(crate) type Fields = Vec<(Name, Value<'static>)>;

/// Nesting deeper than this is refused (a list that contains itself would never end).
const MAX_DEPTH: usize = 16;

/// A Python scalar as a value; `None` when `obj` is a container (dict, list, tuple, array).
#[inline]
pub(crate) fn scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value<'static>>> {
    // The exact built-in types first: the hot path of a dict of floats and strings.
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Some(Value::Float(f.value())));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(Some(Value::Str(Cow::Owned(string(s)))));
    }
    if obj.is_none() {
        return Ok(Some(Value::Null));
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Some(Value::Bool(b.is_true())));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        // Also subclasses (IntEnum); bool was taken above, exactly (it is an int subclass).
        return Ok(Some(int_value(i)));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Some(Value::Float(f.value()))); // numpy.float64 is a float subclass
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(Value::Str(Cow::Owned(string(s)))));
    }
    if obj.cast::<PyDict>().is_ok() || obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok()
    {
        return Ok(None);
    }
    let py = obj.py();
    // numpy: scalars have ndim 0 and give the Python scalar through item(); arrays are
    // containers.
    if let Ok(ndim) = obj.getattr(intern!(py, "ndim")) {
        if obj.hasattr(intern!(py, "dtype"))? {
            if ndim.extract::<i64>().unwrap_or(-1) == 0 {
                let item = obj.call_method0(intern!(py, "item"))?;
                if !item.is(obj) {
                    return scalar(&item).map(|v| v.or(Some(Value::Null)));
                }
            } else {
                return Ok(None);
            }
        }
    }
    let ty = obj.get_type();
    let name = ty.name().map(|n| n.to_string()).unwrap_or_default();
    if matches!(name.as_str(), "NAType" | "NaTType") {
        return Ok(Some(Value::Null)); // pandas' missing values
    }
    if obj.hasattr(intern!(py, "__float__"))? {
        if let Ok(x) = obj.extract::<f64>() {
            return Ok(Some(Value::Float(x)));
        }
    }
    Err(PyTypeError::new_err(format!(
        "modelwatch cannot log a value of type {name}: use None, bool, int, float, str, \
         or a dict, list or numpy array of them"
    )))
}

/// A str as text; lone surrogates (which UTF-8 cannot hold) become U+FFFD.
#[inline]
fn string(s: &Bound<'_, PyString>) -> String {
    match s.to_cow() {
        Ok(c) => c.into_owned(),
        Err(_) => s.to_string_lossy().into_owned(),
    }
}

/// An int as a value: i64 when it fits, else a float (u64 and larger), infinite past f64.
fn int_value(i: &Bound<'_, PyInt>) -> Value<'static> {
    if let Ok(v) = i.extract::<i64>() {
        return Value::Int(v);
    }
    if let Ok(v) = i.extract::<u64>() {
        return Value::from(v);
    }
    match i.extract::<f64>() {
        Ok(x) => Value::Float(x),
        // Past f64::MAX: an infinity of the int's sign (counted apart as infinities).
        Err(_) => Value::Float(if i.lt(0).unwrap_or(false) {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
    }
}

/// A dict key or name as text: a `str` as it is, anything else through `str()`.
pub(crate) fn text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(string(s)),
        Err(_) => Ok(string(&obj.str()?)),
    }
}

/// Key texts by the address of their `str` object, per thread: a model server logs the
/// same dict keys (interned literals, or a DataFrame's column names) call after call, and
/// under the abi3 (3.9) API each copy out of a `str` costs two allocations. The entry holds
/// a reference to the `str`, so the address cannot be reused by another object while it
/// is cached. Cleared when full.
const KEY_CACHE: usize = 512;

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::HashMap<usize, (Py<PyString>, Name)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A dict key as text, through the per-thread cache when it is a `str`.
#[inline]
fn key(obj: &Bound<'_, PyAny>) -> PyResult<Name> {
    let Ok(s) = obj.cast_exact::<PyString>() else {
        return text(obj).map(Name::from);
    };
    let addr = s.as_ptr() as usize;
    KEYS.with(|keys| {
        if let Some((_, text)) = keys.borrow().get(&addr) {
            return Ok(text.clone());
        }
        let text = Name::from(string(s));
        let mut keys = keys.borrow_mut();
        if keys.len() >= KEY_CACHE {
            keys.clear();
        }
        keys.insert(addr, (s.clone().unbind(), text.clone()));
        Ok(text)
    })
}

/// Appends the features of `obj`, a mapping (dict, pandas Series) or `None`.
pub(crate) fn push_features(obj: &Bound<'_, PyAny>, out: &mut Fields) -> PyResult<()> {
    if obj.is_none() {
        return Ok(());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        out.reserve(d.len());
        for (k, v) in d.iter() {
            push_named(key(&k)?, &v, out, 0)?;
        }
        return Ok(());
    }
    if obj.hasattr(intern!(obj.py(), "items"))? {
        for item in obj.call_method0(intern!(obj.py(), "items"))?.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            push_named(key(&k)?, &v, out, 0)?;
        }
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "features must be a dict (name -> value), got {}",
        obj.get_type().name()?
    )))
}

/// Appends `name = obj`, flattening containers as `name.key` and `name.0`.
pub(crate) fn push_named(
    name: Name,
    obj: &Bound<'_, PyAny>,
    out: &mut Fields,
    depth: usize,
) -> PyResult<()> {
    if let Some(v) = scalar(obj)? {
        out.push((name, v));
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "modelwatch: the value of {name:?} is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let child = |key: &str| -> Name {
        if name.is_empty() {
            key.into()
        } else {
            format!("{name}.{key}").into()
        }
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            push_named(child(&text(&k)?), &v, out, depth + 1)?;
        }
        return Ok(());
    }
    let items = if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        obj.clone()
    } else {
        obj.call_method0(intern!(obj.py(), "tolist"))? // a numpy array
    };
    let items: Vec<Bound<'_, PyAny>> = items.try_iter()?.collect::<PyResult<_>>()?;
    // A named sequence is a feature: one vector if it holds numbers. Unnamed (a prediction's
    // class probabilities), its items stay apart.
    if !name.is_empty() {
        if items.is_empty() {
            out.push((name, Value::Null));
            return Ok(());
        }
        if let Some(vector) = numbers(&items) {
            out.push((name, Value::Vector(Cow::Owned(vector))));
            return Ok(());
        }
    }
    for (i, v) in items.iter().enumerate() {
        push_named(child(&i.to_string()), v, out, depth + 1)?;
    }
    Ok(())
}

/// The items as a vector, if every one is a number (`int` or `float`, not `bool`; NaN and
/// infinities included: the vector is then counted and not sketched).
fn numbers(items: &[Bound<'_, PyAny>]) -> Option<Vec<f32>> {
    items
        .iter()
        .map(|v| {
            if v.cast::<PyBool>().is_ok() {
                None
            } else if let Ok(f) = v.cast::<PyFloat>() {
                Some(f.value() as f32)
            } else if v.cast::<PyInt>().is_ok() {
                v.extract::<f64>().ok().map(|x| x as f32)
            } else {
                None
            }
        })
        .collect()
}

/// What a model predicted, converted from Python.
#[derive(Debug)]
pub(crate) enum Pred {
    /// A scalar: the output `prediction`, compared with ground truth as it is.
    Scalar(Value<'static>),
    /// Class probabilities (a list or array of numbers): outputs `0`, `1`, ...; the argmax
    /// is the predicted class.
    Probabilities(Vec<f64>),
    /// Named outputs (a dict); no single predicted value for ground truth.
    Named(Fields),
}

/// A prediction: a scalar, a sequence of numbers (probabilities) or a dict of outputs.
pub(crate) fn prediction(obj: &Bound<'_, PyAny>) -> PyResult<Pred> {
    if let Some(v) = scalar(obj)? {
        return Ok(Pred::Scalar(v));
    }
    let mut fields = Fields::new();
    if obj.cast::<PyDict>().is_ok() {
        push_features(obj, &mut fields)?;
        return Ok(Pred::Named(fields));
    }
    push_named("".into(), obj, &mut fields, 0)?;
    let numbers: Option<Vec<f64>> = fields
        .iter()
        .map(|(_, v)| match v {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        })
        .collect();
    // Only a flat sequence is a probability vector; names are then "0", "1", ...
    let flat = fields
        .iter()
        .enumerate()
        .all(|(i, (n, _))| **n == *i.to_string());
    match numbers {
        Some(p) if flat => Ok(Pred::Probabilities(p)),
        _ => Ok(Pred::Named(fields)),
    }
}

impl Prediction for Pred {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        match self {
            Pred::Scalar(v) => v.for_each_output(f),
            Pred::Probabilities(p) => p.for_each_output(f),
            Pred::Named(o) => o.for_each_feature(f),
        }
    }
    fn predicted(&self) -> Value<'_> {
        match self {
            Pred::Scalar(v) => v.borrowed(),
            Pred::Probabilities(p) => p.predicted(),
            Pred::Named(_) => Value::Null,
        }
    }
    fn confidence(&self) -> Option<f64> {
        match self {
            Pred::Probabilities(p) => p.confidence(),
            _ => None,
        }
    }
}

/// A label for ground truth: a scalar.
pub(crate) fn label(obj: &Bound<'_, PyAny>) -> PyResult<Value<'static>> {
    scalar(obj)?.ok_or_else(|| {
        PyTypeError::new_err("a label must be a scalar (bool, int, float, str or None)")
    })
}

/// Segment names: `None`, one `str`, or an iterable of `str`.
pub(crate) fn segments(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if obj.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![string(s)]);
    }
    obj.try_iter()?
        .map(|s| {
            let s = s?;
            match s.cast::<PyString>() {
                Ok(s) => Ok(string(s)),
                Err(_) => Err(PyTypeError::new_err(format!(
                    "segment names must be str, got {}",
                    s.get_type().name()?
                ))),
            }
        })
        .collect()
}
