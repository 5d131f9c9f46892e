//! LEB128 varints and zig-zag signed varints: the byte coding of every sketch payload.

use super::inflate::{inflate, Framing};
use super::{charge, WireError, WireResult};

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint; `None` when truncated or longer than ten bytes.
pub(crate) fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    // Most varints of a sketch are one byte (bucket counts and their deltas).
    if let Some((&b, rest)) = bytes.split_first() {
        if b < 0x80 {
            *bytes = rest;
            return Some(u64::from(b));
        }
    }
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub(crate) fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn take_zigzag(bytes: &mut &[u8]) -> Option<i64> {
    let v = take_varint(bytes)?;
    Some((v >> 1) as i64 ^ -((v & 1) as i64))
}

/// Writes sorted (index, positive count) pairs as Prometheus' native histograms lay out
/// their buckets: the span count; per span of consecutive indexes the gap from the previous
/// span's end (zig-zag; the first is the absolute start) and its length; then every count
/// as a zig-zag delta from the one before. A smooth distribution costs about a byte a bucket.
pub(crate) fn put_spans(out: &mut Vec<u8>, pairs: &[(i32, u64)]) {
    let mut spans: Vec<(i32, u32)> = Vec::new();
    for &(i, _) in pairs {
        match spans.last_mut() {
            Some((start, len)) if *start + *len as i32 == i => *len += 1,
            _ => spans.push((i, 1)),
        }
    }
    put_varint(out, spans.len() as u64);
    let mut end = 0i64;
    for &(start, len) in &spans {
        put_zigzag(out, i64::from(start) - end);
        put_varint(out, u64::from(len));
        end = i64::from(start) + i64::from(len);
    }
    let mut previous = 0i64;
    for &(_, c) in pairs {
        let c = c.min(i64::MAX as u64) as i64;
        put_zigzag(out, c.wrapping_sub(previous));
        previous = c;
    }
}

/// Reads what [`put_spans`] wrote, validated: every bucket costs an input byte and is
/// charged to the decode budget before it is allocated, spans are ordered and disjoint,
/// the indexes span at most `max_span`, counts are positive. `sketch` names it in errors.
pub(crate) fn take_spans(
    bytes: &mut &[u8],
    max_span: usize,
    sketch: &'static str,
) -> WireResult<Vec<(i32, u64)>> {
    let bad = |why| WireError::sketch(sketch, why);
    let spans = take_varint(bytes).ok_or_else(|| bad("truncated span count"))?;
    if spans > bytes.len() as u64 {
        return Err(bad("more spans than bytes"));
    }
    charge(spans as usize * std::mem::size_of::<(i64, u64)>())?;
    let mut layout = Vec::with_capacity(spans as usize);
    let mut total = 0u64;
    let mut end = 0i64;
    for _ in 0..spans {
        let gap = take_zigzag(bytes).ok_or_else(|| bad("truncated span"))?;
        let len = take_varint(bytes).ok_or_else(|| bad("truncated span"))?;
        if len == 0 || (!layout.is_empty() && gap <= 0) {
            return Err(bad("spans empty, overlapping or unordered"));
        }
        let start = end
            .checked_add(gap)
            .ok_or_else(|| bad("span out of range"))?;
        total = total.saturating_add(len);
        if total > bytes.len() as u64 {
            return Err(bad("more buckets than bytes"));
        }
        end = start + len as i64;
        layout.push((start, len));
    }
    if let Some(&(first, _)) = layout.first() {
        if first < i64::from(i32::MIN) || end > i64::from(i32::MAX) || end - first > max_span as i64
        {
            return Err(bad("bucket range over the cap"));
        }
    }
    charge(total as usize * std::mem::size_of::<(i32, u64)>())?;
    let mut pairs = Vec::with_capacity(total as usize);
    let mut previous = 0i64;
    for (start, len) in layout {
        for i in start..start + len as i64 {
            let delta = take_zigzag(bytes).ok_or_else(|| bad("truncated counts"))?;
            previous = previous
                .checked_add(delta)
                .ok_or_else(|| bad("count overflow"))?;
            if previous <= 0 {
                return Err(bad("bucket count not positive"));
            }
            pairs.push((i as i32, previous as u64));
        }
    }
    Ok(pairs)
}

const PLAIN: u8 = 0;
const DEFLATED: u8 = 1;

/// A payload as it travels: a tag byte, then the bytes as they are or raw-deflated,
/// whichever is smaller (deflate saves a quarter to a third of a histogram's spans).
pub(crate) fn pack(plain: Vec<u8>) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(vec![DEFLATED], flate2::Compression::best());
    z.write_all(&plain).expect("writing to a Vec");
    let deflated = z.finish().expect("writing to a Vec");
    if deflated.len() < plain.len() + 1 {
        deflated
    } else {
        let mut out = Vec::with_capacity(plain.len() + 1);
        out.push(PLAIN);
        out.extend_from_slice(&plain);
        out
    }
}

/// Reads what [`pack`] wrote, inflating at most `max_plain` bytes (a larger payload is an
/// error, not an allocation), each growth charged to the decode budget before it is made.
pub(crate) fn unpack<'a>(
    packed: &'a [u8],
    max_plain: usize,
    sketch: &'static str,
) -> WireResult<std::borrow::Cow<'a, [u8]>> {
    let bad = |why| WireError::sketch(sketch, why);
    match packed.split_first() {
        Some((&PLAIN, rest)) if rest.len() <= max_plain => Ok(rest.into()),
        Some((&DEFLATED, rest)) => {
            inflate(rest, Framing::Raw, max_plain, sketch).map(std::borrow::Cow::Owned)
        }
        Some((&PLAIN, _)) => Err(bad("payload past its bound")),
        _ => Err(bad("unknown payload encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(u in any::<u64>(), i in any::<i64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, u);
            put_zigzag(&mut out, i);
            let mut rest = &out[..];
            prop_assert_eq!(take_varint(&mut rest), Some(u));
            prop_assert_eq!(take_zigzag(&mut rest), Some(i));
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn packing_round_trips(bytes in prop::collection::vec(0u8..4, 0..500)) {
            let packed = pack(bytes.clone());
            prop_assert!(packed.len() <= bytes.len() + 1);
            prop_assert_eq!(unpack(&packed, 500, "t").unwrap().into_owned(), bytes.clone());
            prop_assert!(bytes.len() < 2 || unpack(&packed, bytes.len() - 1, "t").is_err());
        }

        #[test]
        fn spans_round_trip(entries in prop::collection::btree_map(-3000i32..3000, 1u64..u64::MAX / 2, 0..80)) {
            let pairs: Vec<(i32, u64)> = entries.into_iter().collect();
            let mut out = Vec::new();
            put_spans(&mut out, &pairs);
            let mut rest = &out[..];
            prop_assert_eq!(take_spans(&mut rest, 6000, "t").unwrap(), pairs);
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn span_decoding_never_panics_nor_overallocates(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut rest = &bytes[..];
            if let Ok(pairs) = take_spans(&mut rest, 6000, "t") {
                prop_assert!(pairs.len() <= bytes.len());
            }
        }
    }
}
