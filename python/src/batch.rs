//! Batches column by column: numeric numpy arrays (and pandas columns, which are numpy
//! arrays underneath) are read in place through the array interface, without a Python
//! object per cell, and folded with the interpreter released.
//!
//! A batch is prepared under the GIL: numeric columns become a pointer, a stride and a
//! type (the arrays kept alive by a reference); any other column is converted to owned
//! values cell by cell (`convert::scalar`). Folding then needs no Python at all.

use crate::convert::{self, Fields, Pred};
use modelwatch::{Features, Outputs, Prediction, Session, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// Rows handed to the library per call: its batch path works 64 rows at a time; the row
/// views of one call take 16 bytes each.
const CHUNK: usize = 4096;

/// The element type of a numeric array.
#[derive(Clone, Copy, Debug)]
enum Num {
    F64,
    F32,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
}

impl Num {
    /// From an array-interface type string in native byte order (`<f8`, `|b1`, ...).
    fn parse(typestr: &str) -> Option<Num> {
        let native = if cfg!(target_endian = "little") {
            '<'
        } else {
            '>'
        };
        let mut chars = typestr.chars();
        let order = chars.next()?;
        if order != native && order != '|' && order != '=' {
            return None;
        }
        Some(match chars.as_str() {
            "f8" => Num::F64,
            "f4" => Num::F32,
            "i8" => Num::I64,
            "i4" => Num::I32,
            "i2" => Num::I16,
            "i1" => Num::I8,
            "u8" => Num::U64,
            "u4" => Num::U32,
            "u2" => Num::U16,
            "u1" => Num::U8,
            "b1" => Num::Bool,
            _ => return None,
        })
    }
}

/// One column: read in place, or converted.
enum Col {
    Num {
        kind: Num,
        ptr: *const u8,
        stride: isize,
    },
    Values(Vec<Value<'static>>),
    /// No value in any row (predictions not given).
    Null,
}

impl Col {
    #[inline(always)]
    fn get(&self, i: usize) -> Value<'_> {
        match self {
            Col::Num { kind, ptr, stride } => {
                // SAFETY: i < the column's length, checked when the batch was made; the
                // array is kept alive by `Columns::keep`; reads are unaligned-safe.
                unsafe {
                    let p = ptr.offset(i as isize * stride);
                    match kind {
                        Num::F64 => Value::Float(p.cast::<f64>().read_unaligned()),
                        Num::F32 => Value::Float(f64::from(p.cast::<f32>().read_unaligned())),
                        Num::I64 => Value::Int(p.cast::<i64>().read_unaligned()),
                        Num::I32 => Value::Int(i64::from(p.cast::<i32>().read_unaligned())),
                        Num::I16 => Value::Int(i64::from(p.cast::<i16>().read_unaligned())),
                        Num::I8 => Value::Int(i64::from(p.cast::<i8>().read_unaligned())),
                        Num::U64 => Value::from(p.cast::<u64>().read_unaligned()),
                        Num::U32 => Value::Int(i64::from(p.cast::<u32>().read_unaligned())),
                        Num::U16 => Value::Int(i64::from(p.cast::<u16>().read_unaligned())),
                        Num::U8 => Value::Int(i64::from(p.read())),
                        Num::Bool => Value::Bool(p.read() != 0),
                    }
                }
            }
            Col::Values(v) => v[i].borrowed(),
            Col::Null => Value::Null,
        }
    }
}

/// Named columns of equal length.
pub(crate) struct Columns {
    names: Vec<String>,
    cols: Vec<Col>,
    len: usize,
    /// The arrays read in place, alive as long as the batch.
    keep: Vec<Py<PyAny>>,
}

// SAFETY: the raw pointers point into numpy buffers that `keep` holds references to; they
// are only read. An array written by another thread during the call gives that thread's
// values or older ones, as numpy's own functions that release the GIL do.
unsafe impl Send for Columns {}
unsafe impl Sync for Columns {}

impl Columns {
    /// Columns from names and 1-D arrays or lists.
    pub(crate) fn new(names: Vec<String>, arrays: &Bound<'_, PyList>) -> PyResult<Columns> {
        if names.len() != arrays.len() {
            return Err(PyValueError::new_err(format!(
                "{} names for {} columns",
                names.len(),
                arrays.len()
            )));
        }
        let mut columns = Columns {
            names,
            cols: Vec::with_capacity(arrays.len()),
            len: 0,
            keep: Vec::new(),
        };
        let mut len = None;
        for (j, a) in arrays.iter().enumerate() {
            let (col, n) = columns.column(&a)?;
            if *len.get_or_insert(n) != n {
                return Err(PyValueError::new_err(format!(
                    "column {:?} has {n} rows, the first one {}",
                    columns.names[j],
                    len.unwrap_or(0)
                )));
            }
            columns.cols.push(col);
        }
        columns.len = len.unwrap_or(0);
        Ok(columns)
    }

    /// One column of `n` rows where every value is missing.
    pub(crate) fn nulls(name: &str, n: usize) -> Columns {
        Columns {
            names: vec![name.to_owned()],
            cols: vec![Col::Null],
            len: n,
            keep: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn column(&mut self, a: &Bound<'_, PyAny>) -> PyResult<(Col, usize)> {
        if let Some((col, n)) = numeric(a)? {
            self.keep.push(a.clone().unbind());
            return Ok((col, n));
        }
        let list = if let Ok(l) = a.cast::<PyList>() {
            l.clone()
        } else if a.cast::<PyTuple>().is_ok() {
            PyList::new(a.py(), a.try_iter()?.collect::<PyResult<Vec<_>>>()?)?
        } else {
            // Object arrays, masked arrays (masked cells become None), other dtypes.
            a.call_method0(intern!(a.py(), "tolist"))?
                .cast_into::<PyList>()
                .map_err(|_| PyTypeError::new_err("a column must be a 1-D array or a list"))?
        };
        let mut values = Vec::with_capacity(list.len());
        for v in list.iter() {
            match convert::scalar(&v)? {
                Some(v) => values.push(v),
                None => {
                    return Err(PyTypeError::new_err(
                        "a column's values must be scalars (None, bool, int, float, str)",
                    ))
                }
            }
        }
        let n = values.len();
        Ok((Col::Values(values), n))
    }

    fn row(&self, i: usize) -> Row<'_> {
        Row { columns: self, i }
    }
}

/// A 1-D numeric array read in place: its element type, data pointer and stride.
fn numeric(a: &Bound<'_, PyAny>) -> PyResult<Option<(Col, usize)>> {
    let py = a.py();
    // Only numpy's own arrays are trusted to describe memory that is theirs; any other
    // object with an array interface is read value by value (through tolist()).
    if a.get_type().module()?.to_cow()? != "numpy" {
        return Ok(None);
    }
    let Ok(iface) = a.getattr(intern!(py, "__array_interface__")) else {
        return Ok(None);
    };
    let Ok(iface) = iface.cast_into::<PyDict>() else {
        return Ok(None);
    };
    let get = |k: &'static str| iface.get_item(k);
    if get("mask")?.is_some_and(|m| !m.is_none()) {
        return Ok(None);
    }
    let Some(typestr) = get("typestr")? else {
        return Ok(None);
    };
    let Some(kind) = Num::parse(&typestr.extract::<String>()?) else {
        return Ok(None);
    };
    let shape: Vec<usize> = match get("shape")? {
        Some(s) => s.extract()?,
        None => return Ok(None),
    };
    if shape.len() != 1 {
        return Err(PyValueError::new_err(format!(
            "a column must be 1-D, this array has shape {shape:?}"
        )));
    }
    let size = match kind {
        Num::F64 | Num::I64 | Num::U64 => 8,
        Num::F32 | Num::I32 | Num::U32 => 4,
        Num::I16 | Num::U16 => 2,
        Num::I8 | Num::U8 | Num::Bool => 1,
    };
    let stride = match get("strides")? {
        Some(s) if !s.is_none() => s.extract::<Vec<isize>>()?[0],
        _ => size,
    };
    let Some(data) = get("data")? else {
        return Ok(None);
    };
    let Ok((addr, _readonly)) = data.extract::<(usize, bool)>() else {
        return Ok(None); // a buffer object instead of an address
    };
    if addr == 0 && shape[0] > 0 {
        return Ok(None);
    }
    Ok(Some((
        Col::Num {
            kind,
            ptr: addr as *const u8,
            stride,
        },
        shape[0],
    )))
}

/// Row `i` of a batch, as features (or, wrapped in `Outputs`, as a prediction's outputs).
#[derive(Clone, Copy)]
pub(crate) struct Row<'a> {
    columns: &'a Columns,
    i: usize,
}

impl Features for Row<'_> {
    #[inline]
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        for (name, col) in self.columns.names.iter().zip(&self.columns.cols) {
            f(name, col.get(self.i));
        }
    }
}

/// The features of a batch.
pub(crate) enum FeatureBatch {
    Columns(Columns),
    Rows(Vec<Fields>),
}

impl FeatureBatch {
    /// Rows: a list of dicts, or of lists with `names`.
    pub(crate) fn rows(
        rows: &Bound<'_, PyAny>,
        names: Option<Vec<String>>,
    ) -> PyResult<FeatureBatch> {
        let names: Option<Vec<convert::Name>> =
            names.map(|n| n.into_iter().map(convert::Name::from).collect());
        let mut out = Vec::new();
        for (r, row) in rows.try_iter()?.enumerate() {
            let row = row?;
            let mut fields = Fields::new();
            match &names {
                None => convert::push_features(&row, &mut fields)?,
                Some(names) => {
                    let values: Vec<Bound<'_, PyAny>> = row.try_iter()?.collect::<PyResult<_>>()?;
                    if values.len() != names.len() {
                        return Err(PyValueError::new_err(format!(
                            "row {r} has {} values for {} feature names",
                            values.len(),
                            names.len()
                        )));
                    }
                    fields.reserve(values.len());
                    for (name, v) in names.iter().zip(&values) {
                        convert::push_named(name.clone(), v, &mut fields, 0)?;
                    }
                }
            }
            out.push(fields);
        }
        Ok(FeatureBatch::Rows(out))
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            FeatureBatch::Columns(c) => c.len(),
            FeatureBatch::Rows(r) => r.len(),
        }
    }
}

/// The predictions of a batch.
pub(crate) enum PredictionBatch {
    /// Outputs by column: one named `prediction`, probabilities `0`, `1`, ..., or named
    /// outputs (a DataFrame's columns).
    Columns(Columns),
    /// One converted prediction per row.
    Each(Vec<Pred>),
}

impl PredictionBatch {
    pub(crate) fn each(predictions: &Bound<'_, PyAny>) -> PyResult<PredictionBatch> {
        predictions
            .try_iter()?
            .map(|p| convert::prediction(&p?))
            .collect::<PyResult<Vec<_>>>()
            .map(PredictionBatch::Each)
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            PredictionBatch::Columns(c) => c.len(),
            PredictionBatch::Each(p) => p.len(),
        }
    }
}

/// Folds a batch (call it with the interpreter released): equal to logging its rows one
/// by one, in order.
pub(crate) fn fold(session: &Session, features: &FeatureBatch, predictions: &PredictionBatch) {
    match (features, predictions) {
        (FeatureBatch::Columns(f), PredictionBatch::Columns(p)) => {
            chunks(session, f.len(), |i| f.row(i), |i| Outputs(p.row(i)))
        }
        (FeatureBatch::Columns(f), PredictionBatch::Each(p)) => {
            chunks(session, f.len(), |i| f.row(i), |i| &p[i])
        }
        (FeatureBatch::Rows(f), PredictionBatch::Columns(p)) => {
            chunks(session, f.len(), |i| &f[i], |i| Outputs(p.row(i)))
        }
        (FeatureBatch::Rows(f), PredictionBatch::Each(p)) => {
            chunks(session, f.len(), |i| &f[i], |i| &p[i])
        }
    }
}

fn chunks<F: Features, P: Prediction>(
    session: &Session,
    n: usize,
    feature: impl Fn(usize) -> F,
    prediction: impl Fn(usize) -> P,
) {
    let mut rows = Vec::with_capacity(CHUNK.min(n));
    let mut preds = Vec::with_capacity(CHUNK.min(n));
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        rows.clear();
        preds.clear();
        rows.extend((start..end).map(&feature));
        preds.extend((start..end).map(&prediction));
        session.log_prediction_batch(&rows, &preds);
        start = end;
    }
}
