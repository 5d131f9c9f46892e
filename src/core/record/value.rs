//! What callers log: values, feature sets and predictions, without copying them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// One logged value. Missing is `Null` (also what `None` and NaN become). Non-exhaustive:
/// a later version may add kinds of values, so a `match` on it needs a `_` arm.
///
/// ```
/// use modelwatch::Value;
/// assert_eq!(Value::from(3_u8), Value::Int(3));
/// assert_eq!(Value::from(None::<f64>), Value::Null);
/// assert_eq!(Value::from("fraud"), Value::Str("fraud".into()));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// Missing.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float; NaN counts as missing, infinities are counted apart.
    Float(f64),
    /// A string; it enters sketches only through the keyed hash.
    Str(Cow<'a, str>),
    /// An embedding or any fixed-length vector of numbers: one feature, sketched as its
    /// dimension, the distribution of its L2 norms and its per-dimension mean
    /// (`docs/features.md`), never as one feature per component.
    Vector(Cow<'a, [f32]>),
}

impl Value<'_> {
    /// An owned copy, strings cut to `max_bytes`.
    pub(crate) fn to_owned_cut(&self, max_bytes: usize) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(super::cut(s, max_bytes).to_owned())),
            Value::Vector(v) => Value::Vector(Cow::Owned(v.to_vec())),
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
        }
    }

    /// A borrowed view of this value (no allocation).
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Vector(v) => Value::Vector(Cow::Borrowed(v)),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value<'_> {
            fn from(v: $t) -> Self { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value<'_> {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}
impl From<usize> for Value<'_> {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}
impl From<isize> for Value<'_> {
    fn from(v: isize) -> Self {
        Value::Int(v as i64)
    }
}
impl From<f32> for Value<'_> {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}
impl From<f64> for Value<'_> {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Str(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Str(Cow::Borrowed(v))
    }
}
impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Str(Cow::Owned(v))
    }
}
impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(v: Cow<'a, str>) -> Self {
        Value::Str(v)
    }
}
impl<'a> From<&'a [f32]> for Value<'a> {
    fn from(v: &'a [f32]) -> Self {
        Value::Vector(Cow::Borrowed(v))
    }
}
impl From<Vec<f32>> for Value<'_> {
    fn from(v: Vec<f32>) -> Self {
        Value::Vector(Cow::Owned(v))
    }
}
/// Components are stored as `f32`, an embedding's own precision.
impl From<&[f64]> for Value<'_> {
    fn from(v: &[f64]) -> Self {
        Value::Vector(v.iter().map(|&x| x as f32).collect())
    }
}
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Anything that can be viewed as a [`Value`] without being consumed.
pub trait AsValue {
    /// The borrowed value.
    fn as_value(&self) -> Value<'_>;
}

impl AsValue for Value<'_> {
    fn as_value(&self) -> Value<'_> {
        self.borrowed()
    }
}
impl AsValue for str {
    fn as_value(&self) -> Value<'_> {
        Value::Str(Cow::Borrowed(self))
    }
}
impl AsValue for String {
    fn as_value(&self) -> Value<'_> {
        Value::Str(Cow::Borrowed(self))
    }
}
/// An embedding: one vector feature.
impl AsValue for [f32] {
    fn as_value(&self) -> Value<'_> {
        Value::Vector(Cow::Borrowed(self))
    }
}
/// An embedding: one vector feature.
impl AsValue for Vec<f32> {
    fn as_value(&self) -> Value<'_> {
        Value::Vector(Cow::Borrowed(self))
    }
}
impl<T: AsValue + ?Sized> AsValue for &T {
    fn as_value(&self) -> Value<'_> {
        (**self).as_value()
    }
}
impl<T: AsValue> AsValue for Option<T> {
    fn as_value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, AsValue::as_value)
    }
}
macro_rules! as_value_copy {
    ($($t:ty),*) => {$(
        impl AsValue for $t {
            fn as_value(&self) -> Value<'_> { Value::from(*self) }
        }
    )*};
}
as_value_copy!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

/// A set of named feature values: arrays, slices and `Vec`s of `(name, value)` pairs,
/// `HashMap`s and `BTreeMap`s, references to these, and any `serde::Serialize` struct
/// wrapped in [`Record`](crate::Record).
///
/// ```
/// use modelwatch::{Features, Value};
/// let mut names = Vec::new();
/// [("age", Value::from(41)), ("country", Value::from("NL"))]
///     .for_each_feature(&mut |name, _value| names.push(name.to_string()));
/// assert_eq!(names, ["age", "country"]);
/// ```
pub trait Features {
    /// Calls `f` once per feature, in a stable order where the container has one.
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>));
}

impl<T: Features + ?Sized> Features for &T {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        (**self).for_each_feature(f)
    }
}
impl<K: AsRef<str>, V: AsValue> Features for [(K, V)] {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        for (k, v) in self {
            f(k.as_ref(), v.as_value());
        }
    }
}
impl<K: AsRef<str>, V: AsValue, const N: usize> Features for [(K, V); N] {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        self.as_slice().for_each_feature(f)
    }
}
impl<K: AsRef<str>, V: AsValue> Features for Vec<(K, V)> {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        self.as_slice().for_each_feature(f)
    }
}
impl<K: AsRef<str>, V: AsValue, S: BuildHasher> Features for HashMap<K, V, S> {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        for (k, v) in self {
            f(k.as_ref(), v.as_value());
        }
    }
}
impl<K: AsRef<str>, V: AsValue> Features for BTreeMap<K, V> {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        for (k, v) in self {
            f(k.as_ref(), v.as_value());
        }
    }
}

/// What a model predicted: a scalar (`bool`, integer, float, string class), a vector of
/// class probabilities (`Vec<f64>`, `[f64; N]`, `&[f64]`), or named outputs ([`Outputs`]).
///
/// A scalar is the output named [`PREDICTION`] (`"prediction"`); probabilities are
/// outputs `"0"`, `"1"`, ... (one per class) and, for ground truth, their argmax is the
/// predicted class.
pub trait Prediction {
    /// Calls `f` once per output.
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>));
    /// The predicted value that ground truth is compared with.
    fn predicted(&self) -> Value<'_>;
    /// The probability of the predicted class, when the prediction carries one (the
    /// maximum of a probability vector). Used for calibration.
    fn confidence(&self) -> Option<f64> {
        None
    }
}

/// The output name of a single scalar prediction.
pub const PREDICTION: &str = "prediction";

/// Output names for positional outputs, so that naming them never allocates.
pub(crate) const INDEX_NAMES: [&str; 32] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
];

macro_rules! scalar_prediction {
    ($($t:ty),*) => {$(
        impl Prediction for $t {
            fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
                f(PREDICTION, self.as_value())
            }
            fn predicted(&self) -> Value<'_> {
                self.as_value()
            }
        }
    )*};
}
scalar_prediction!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);
scalar_prediction!(&str, String, Value<'_>);

impl<T: AsValue> Prediction for Option<T> {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        f(PREDICTION, self.as_value())
    }
    fn predicted(&self) -> Value<'_> {
        self.as_value()
    }
}

impl Prediction for [f64] {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        let mut name = String::new();
        for (i, &p) in self.iter().enumerate() {
            let name: &str = match INDEX_NAMES.get(i) {
                Some(n) => n,
                None => {
                    name.clear();
                    use std::fmt::Write;
                    let _ = write!(name, "{i}");
                    &name
                }
            };
            f(name, Value::Float(p));
        }
    }
    fn predicted(&self) -> Value<'_> {
        argmax(self).map_or(Value::Null, Value::from)
    }
    fn confidence(&self) -> Option<f64> {
        argmax(self).map(|i| self[i])
    }
}
impl<const N: usize> Prediction for [f64; N] {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        self.as_slice().for_each_output(f)
    }
    fn predicted(&self) -> Value<'_> {
        self.as_slice().predicted()
    }
    fn confidence(&self) -> Option<f64> {
        self.as_slice().confidence()
    }
}
impl Prediction for Vec<f64> {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        self.as_slice().for_each_output(f)
    }
    fn predicted(&self) -> Value<'_> {
        self.as_slice().predicted()
    }
    fn confidence(&self) -> Option<f64> {
        self.as_slice().confidence()
    }
}
impl<T: Prediction + ?Sized> Prediction for &T {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        (**self).for_each_output(f)
    }
    fn predicted(&self) -> Value<'_> {
        (**self).predicted()
    }
    fn confidence(&self) -> Option<f64> {
        (**self).confidence()
    }
}

/// The index of the largest finite probability.
fn argmax(p: &[f64]) -> Option<usize> {
    p.iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

/// Named model outputs, given as any [`Features`] container.
///
/// ```
/// use modelwatch::{Outputs, Prediction, Value};
/// let out = Outputs([("score", Value::from(0.93)), ("label", Value::from("fraud"))]);
/// let mut names = Vec::new();
/// out.for_each_output(&mut |name, _| names.push(name.to_string()));
/// assert_eq!(names, ["score", "label"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Outputs<F>(pub F);

impl<F: Features> Prediction for Outputs<F> {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        self.0.for_each_feature(f)
    }
    /// Named outputs have no single predicted value: ground truth for them is counted as a
    /// type mismatch, unless [`scored_by`](Outputs::scored_by) names the one it scores.
    fn predicted(&self) -> Value<'_> {
        Value::Null
    }
}

impl<F: Features> Outputs<F> {
    /// The same outputs, with the one named `name` as the predicted value that ground
    /// truth is compared with (a probability of `true`, a class, a number).
    ///
    /// ```
    /// use modelwatch::{Outputs, Prediction, Value};
    /// let out = || Outputs([("score", Value::from(0.93)), ("label", Value::from("fraud"))]);
    /// assert_eq!(out().scored_by("label").predicted(), Value::from("fraud"));
    /// assert_eq!(out().scored_by("score").predicted(), Value::from(0.93));
    /// assert_eq!(out().scored_by("nothing").predicted(), Value::Null);
    ///
    /// // In a server: both outputs logged, the label scored against the ground truth.
    /// let mut b = modelwatch::SummaryBuilder::new("m", 0, 60_000, [1; 16]);
    /// b.log_ground_truth("fraud", out().scored_by("label"), ());
    /// let s = b.min_values_per_window(1).build();
    /// assert_eq!(s.ground_truth_overall().unwrap().accuracy(), Some(1.0));
    /// ```
    pub fn scored_by(self, name: &str) -> ScoredOutputs<'_, F> {
        ScoredOutputs {
            outputs: self.0,
            scored: name,
        }
    }
}

/// Named outputs one of which ground truth scores: [`Outputs::scored_by`].
#[derive(Clone, Copy, Debug)]
pub struct ScoredOutputs<'n, F> {
    outputs: F,
    scored: &'n str,
}

impl<F: Features> Prediction for ScoredOutputs<'_, F> {
    fn for_each_output(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        self.outputs.for_each_feature(f)
    }
    /// The named output's value (`Null` when there is none by that name). A string is
    /// copied, since outputs hand out their values only for the length of a call.
    fn predicted(&self) -> Value<'_> {
        let mut found = Value::Null;
        self.outputs.for_each_feature(&mut |name, v| {
            if name == self.scored {
                found = v.to_owned_cut(usize::MAX);
            }
        });
        found
    }
}
