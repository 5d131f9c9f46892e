//! A serde serializer that walks a struct and reports its leaves as `(dotted.path, Value)`.

use super::value::{Features, Value};
use serde::ser::{self, Impossible, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A `serde::Serialize` struct (or map) logged as features: nested fields are flattened
/// as `outer.inner`; a sequence of numbers (`Vec<f32>`, `[f64; N]`, a tuple of numbers) is
/// one vector feature ([`Value::Vector`]); other sequences give `name.0`, `name.1`, ...;
/// an enum gives its variant's name as a category at its path and the variant's fields
/// under `path.Variant`. The full table of shapes is in `docs/features.md`; fields absent
/// from a record count as missing there (see [`WindowSummary`](crate::WindowSummary)).
///
/// A wrapper rather than a blanket implementation, because arrays and maps of pairs are
/// `Serialize` too and must keep their own (faster, allocation-free) path.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Address { country: &'static str }
/// #[derive(serde::Serialize)]
/// struct Applicant { age: u32, address: Address }
///
/// use modelwatch::{Features, Record};
/// let mut seen = Vec::new();
/// Record(&Applicant { age: 41, address: Address { country: "NL" } })
///     .for_each_feature(&mut |name, value| seen.push(format!("{name}={value:?}")));
/// assert_eq!(seen, ["age=Int(41)", "address.country=Str(\"NL\")"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Record<T>(pub T);

impl<T: serde::Serialize> Features for Record<T> {
    fn for_each_feature(&self, f: &mut dyn FnMut(&str, Value<'_>)) {
        let mut flattener = Flattener::new(f);
        // Unsupported shapes (e.g. bytes) become missing values, never errors.
        let _ = self.0.serialize(&mut flattener);
    }
}

/// Never produced for data: serde requires an error type.
#[derive(Debug)]
pub(crate) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported shape")
    }
}
impl std::error::Error for Unsupported {}
impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

pub(crate) struct Flattener<'f> {
    sink: &'f mut dyn FnMut(&str, Value<'_>),
    path: String,
    /// Numbers of the sequences being walked, until each is known to hold only numbers.
    numbers: Vec<Number>,
    /// The components of a vector being emitted.
    vector: Vec<f32>,
    /// Set while an element of a sequence is tried as a number: leaves then go to
    /// `numbers`, and anything else fails.
    probing: bool,
}

/// A buffered number of a sequence, kept as logged in case the sequence turns out mixed.
#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl<'f> Flattener<'f> {
    pub(crate) fn new(sink: &'f mut dyn FnMut(&str, Value<'_>)) -> Self {
        Flattener {
            sink,
            path: String::new(),
            numbers: Vec::new(),
            vector: Vec::new(),
            probing: false,
        }
    }

    fn leaf(&mut self, v: Value<'_>) -> Result<(), Unsupported> {
        if self.probing {
            self.numbers.push(match v {
                Value::Int(i) => Number::Int(i),
                Value::Float(x) => Number::Float(x),
                _ => return Err(Unsupported),
            });
            return Ok(());
        }
        (self.sink)(&self.path, v);
        Ok(())
    }

    /// Fails a value tried as a sequence's number that is a compound.
    fn not_probing(&self) -> Result<(), Unsupported> {
        if self.probing {
            Err(Unsupported)
        } else {
            Ok(())
        }
    }

    /// Pushes `.segment` onto the path; returns the length to restore.
    fn push_segment(&mut self, segment: &dyn fmt::Display) -> usize {
        use std::fmt::Write;
        let len = self.path.len();
        if len > 0 {
            self.path.push('.');
        }
        let _ = write!(self.path, "{segment}");
        len
    }

    /// Serializes `value` under `path.key`, then restores the path.
    fn child<T: Serialize + ?Sized>(
        &mut self,
        key: &dyn fmt::Display,
        value: &T,
    ) -> Result<(), Unsupported> {
        let len = self.push_segment(key);
        let r = value.serialize(&mut *self);
        self.path.truncate(len);
        r
    }

    /// An enum's variant: its name as a category at the path, then its fields under
    /// `path.Variant` (a [`Compound`] that restores the path when it ends).
    fn variant(&mut self, variant: &'static str) -> Result<usize, Unsupported> {
        self.not_probing()?;
        self.leaf(Value::from(variant))?;
        Ok(self.push_segment(&variant))
    }
}

/// Collects a map key as text.
struct KeyText(String);

macro_rules! leaf_methods {
    ($($m:ident: $t:ty => $conv:expr),* $(,)?) => {$(
        fn $m(self, v: $t) -> Result<(), Unsupported> { self.leaf($conv(v)) }
    )*};
}

impl<'a, 'f> ser::Serializer for &'a mut Flattener<'f> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a, 'f>;
    type SerializeTuple = Compound<'a, 'f>;
    type SerializeTupleStruct = Compound<'a, 'f>;
    type SerializeTupleVariant = Compound<'a, 'f>;
    type SerializeMap = Compound<'a, 'f>;
    type SerializeStruct = Compound<'a, 'f>;
    type SerializeStructVariant = Compound<'a, 'f>;

    leaf_methods! {
        serialize_bool: bool => Value::Bool,
        serialize_i8: i8 => Value::from, serialize_i16: i16 => Value::from,
        serialize_i32: i32 => Value::from, serialize_i64: i64 => Value::from,
        serialize_u8: u8 => Value::from, serialize_u16: u16 => Value::from,
        serialize_u32: u32 => Value::from, serialize_u64: u64 => Value::from,
        serialize_f32: f32 => Value::from, serialize_f64: f64 => Value::from,
        serialize_str: &str => Value::from,
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.leaf(Value::from(v.encode_utf8(&mut [0; 4]) as &str))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        self.leaf(Value::Null)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.leaf(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.leaf(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.leaf(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.leaf(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        let len = self.variant(variant)?;
        let r = v.serialize(&mut *self);
        self.path.truncate(len);
        r
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, 'f>, Unsupported> {
        self.not_probing()?;
        Ok(Compound::sequence(self))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a, 'f>, Unsupported> {
        self.not_probing()?;
        Ok(Compound::sequence(self))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'f>, Unsupported> {
        self.not_probing()?;
        Ok(Compound::sequence(self))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'f>, Unsupported> {
        let restore = self.variant(variant)?;
        Ok(Compound::fields(self, restore))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, 'f>, Unsupported> {
        self.not_probing()?;
        let restore = self.path.len();
        Ok(Compound::fields(self, restore))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a, 'f>, Unsupported> {
        self.not_probing()?;
        let restore = self.path.len();
        Ok(Compound::fields(self, restore))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'f>, Unsupported> {
        let restore = self.variant(variant)?;
        Ok(Compound::fields(self, restore))
    }
}

/// State of one struct, map or sequence being walked.
pub(crate) struct Compound<'a, 'f> {
    outer: &'a mut Flattener<'f>,
    index: usize,
    key: Option<String>,
    /// A sequence whose elements were all numbers so far: they wait in `outer.numbers`
    /// from this index, to become one vector at its end.
    numbers_from: Option<usize>,
    /// The path's length to restore at the end (an enum variant pushed its name).
    restore: usize,
}

impl<'a, 'f> Compound<'a, 'f> {
    /// A sequence: one vector feature if every element is a number, else `name.0`, ...
    fn sequence(outer: &'a mut Flattener<'f>) -> Self {
        let (start, restore) = (outer.numbers.len(), outer.path.len());
        Compound {
            outer,
            index: 0,
            key: None,
            numbers_from: Some(start),
            restore,
        }
    }

    /// A struct, map or variant: each field under its name.
    fn fields(outer: &'a mut Flattener<'f>, restore: usize) -> Self {
        Compound {
            outer,
            index: 0,
            key: None,
            numbers_from: None,
            restore,
        }
    }

    fn item<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        let i = self.index;
        self.index += 1;
        if self.numbers_from.is_some() {
            self.outer.probing = true;
            let number = v.serialize(&mut *self.outer);
            self.outer.probing = false;
            if number.is_ok() {
                return Ok(());
            }
            self.spill_numbers();
        }
        self.outer.child(&i, v)
    }

    /// A sequence turned out mixed: its numbers so far become `name.0`, `name.1`, ...
    fn spill_numbers(&mut self) {
        let Some(start) = self.numbers_from.take() else {
            return;
        };
        for j in start..self.outer.numbers.len() {
            let len = self.outer.push_segment(&(j - start));
            let value = match self.outer.numbers[j] {
                Number::Int(i) => Value::Int(i),
                Number::Float(x) => Value::Float(x),
            };
            (self.outer.sink)(&self.outer.path, value);
            self.outer.path.truncate(len);
        }
        self.outer.numbers.truncate(start);
    }

    fn end(self) -> Result<(), Unsupported> {
        let outer = self.outer;
        if let Some(start) = self.numbers_from {
            if outer.numbers.len() == start {
                // An empty sequence: nothing says what it would hold.
                (outer.sink)(&outer.path, Value::Null);
            } else {
                outer.vector.clear();
                outer
                    .vector
                    .extend(outer.numbers[start..].iter().map(|n| match *n {
                        Number::Int(i) => i as f32,
                        Number::Float(x) => x as f32,
                    }));
                outer.numbers.truncate(start);
                (outer.sink)(&outer.path, Value::Vector(Cow::Borrowed(&outer.vector)));
            }
        }
        outer.path.truncate(self.restore);
        Ok(())
    }
}

macro_rules! seq_like {
    ($($tr:ident :: $m:ident),*) => {$(
        impl ser::$tr for Compound<'_, '_> {
            type Ok = ();
            type Error = Unsupported;
            fn $m<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
                self.item(v)
            }
            fn end(self) -> Result<(), Unsupported> { Compound::end(self) }
        }
    )*};
}
seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! struct_like {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Compound<'_, '_> {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, k: &'static str, v: &T) -> Result<(), Unsupported> {
                self.outer.child(&k, v)
            }
            fn end(self) -> Result<(), Unsupported> { Compound::end(self) }
        }
    )*};
}
struct_like!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Unsupported> {
        let mut text = KeyText(String::new());
        k.serialize(&mut text)?;
        self.key = Some(text.0);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        let key = self.key.take().ok_or(Unsupported)?;
        self.outer.child(&key, v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

macro_rules! key_display {
    ($($m:ident: $t:ty),*) => {$(
        fn $m(self, v: $t) -> Result<(), Unsupported> { self.0 = v.to_string(); Ok(()) }
    )*};
}

/// Map keys must be strings, numbers, bools or chars.
impl ser::Serializer for &mut KeyText {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;
    key_display!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str);
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::Record;
    use crate::core::record::value::Features;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Inner {
        x: f64,
        tags: Vec<&'static str>,
    }
    #[derive(serde::Serialize)]
    struct Outer {
        id: Option<u32>,
        inner: Inner,
        extra: BTreeMap<u8, bool>,
    }

    #[test]
    fn nested_fields_flatten_with_dots() {
        let r = Outer {
            id: None,
            inner: Inner {
                x: 1.5,
                tags: vec!["a", "b"],
            },
            extra: BTreeMap::from([(7, true)]),
        };
        let mut seen = Vec::new();
        Record(&r).for_each_feature(&mut |k, v| seen.push(format!("{k}={v:?}")));
        assert_eq!(
            seen,
            [
                "id=Null",
                "inner.x=Float(1.5)",
                "inner.tags.0=Str(\"a\")",
                "inner.tags.1=Str(\"b\")",
                "extra.7=Bool(true)"
            ]
        );
    }
}
