//! Sorted (index, count) pairs on the wire: a histogram's buckets, a profile's.
//!
//! A payload is a tag byte, then one or more sets of pairs. Each set is laid out as
//! Prometheus' native histograms lay out their buckets: the span count; per span of
//! consecutive indexes the gap from the previous span's end (zig-zag; the first is the
//! absolute start) and its length; then every count as a zig-zag delta from the one
//! before. The tag says how the counts are coded:
//!
//! - [`RICE`] (schema 3, what this version writes): per set with buckets, a byte `k`, then
//!   the deltas Rice-coded under `k` ([`super::rice`]), padded to a byte.
//! - [`PLAIN`] and [`DEFLATED`] (schema 2, still read): the deltas as varints, and the
//!   whole payload after the tag raw-deflated or not.

use super::inflate::{inflate, Framing};
use super::rice::{best_k, BitReader, BitWriter, MAX_K};
use super::varint::{put_varint, put_zigzag, take_varint, take_zigzag};
use super::{charge, WireError, WireResult};

/// Schema 2: varint counts, as they are.
const PLAIN: u8 = 0;
/// Schema 2: varint counts, the payload raw-deflated.
const DEFLATED: u8 = 1;
/// Schema 3: Rice-coded counts.
const RICE: u8 = 2;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The zig-zag delta of each count from the one before (counts capped at `i64::MAX`).
fn count_deltas(pairs: &[(i32, u64)]) -> impl Iterator<Item = u64> + '_ {
    let mut previous = 0i64;
    pairs.iter().map(move |&(_, c)| {
        let c = c.min(i64::MAX as u64) as i64;
        let delta = c.wrapping_sub(previous);
        previous = c;
        zigzag(delta)
    })
}

/// The spans of consecutive indexes of sorted `pairs`: (start, length) each.
fn spans_of(pairs: &[(i32, u64)]) -> Vec<(i32, u32)> {
    let mut spans: Vec<(i32, u32)> = Vec::new();
    for &(i, _) in pairs {
        match spans.last_mut() {
            Some((start, len)) if *start + *len as i32 == i => *len += 1,
            _ => spans.push((i, 1)),
        }
    }
    spans
}

/// Writes sets of sorted (index, positive count) pairs as one payload. Per set: the span
/// count; when there are spans, the first start (zig-zag) and three Rice parameters, for
/// the gaps between spans less one, the spans' lengths less one and the counts' zig-zag
/// deltas; then in one bit stream, padded to a byte, each span's gap (but the first's)
/// and length, then the counts. A smooth distribution costs 3-6 bits a bucket.
pub(crate) fn put_span_sets(sets: &[&[(i32, u64)]]) -> Vec<u8> {
    let mut out = vec![RICE];
    for pairs in sets {
        let spans = spans_of(pairs);
        put_varint(&mut out, spans.len() as u64);
        let Some(&(first, _)) = spans.first() else {
            continue;
        };
        put_zigzag(&mut out, i64::from(first));
        let gaps: Vec<u64> = spans
            .windows(2)
            .map(|w| (i64::from(w[1].0) - i64::from(w[0].0) - i64::from(w[0].1) - 1) as u64)
            .collect();
        let lengths: Vec<u64> = spans.iter().map(|&(_, len)| u64::from(len) - 1).collect();
        let deltas: Vec<u64> = count_deltas(pairs).collect();
        let [k_gap, k_length, k_count] = [&gaps, &lengths, &deltas].map(|v| best_k(v));
        out.extend([k_gap, k_length, k_count].map(|k| k as u8));
        let mut bits = BitWriter::new(&mut out);
        for (i, &length) in lengths.iter().enumerate() {
            if let Some(&gap) = i.checked_sub(1).and_then(|g| gaps.get(g)) {
                bits.put_rice(gap, k_gap);
            }
            bits.put_rice(length, k_length);
        }
        for &delta in &deltas {
            bits.put_rice(delta, k_count);
        }
        bits.finish();
    }
    out
}

/// Reads `N` sets of either coding, validated: every span and every bucket costs at least
/// an input bit and is charged to the decode budget before it is allocated, spans are
/// ordered and disjoint, each set's indexes span at most `max_span`, counts are positive.
/// `sketch` names the sketch in errors.
pub(crate) fn take_span_sets<const N: usize>(
    payload: &[u8],
    max_span: usize,
    sketch: &'static str,
) -> WireResult<[Vec<(i32, u64)>; N]> {
    let bad = |why| WireError::sketch(sketch, why);
    let (&tag, rest) = payload.split_first().ok_or_else(|| bad("empty payload"))?;
    let plain: std::borrow::Cow<'_, [u8]> = match tag {
        RICE | PLAIN => rest.into(),
        DEFLATED => {
            // Each set: a span count, then per bucket at most a span's two varints and
            // a count's (10 bytes each).
            let max_plain = N * (10 + max_span * 30);
            inflate(rest, Framing::Raw, max_plain, sketch)?.into()
        }
        _ => return Err(bad("unknown payload encoding")),
    };
    let mut bytes = &plain[..];
    let mut sets = [(); N].map(|()| Vec::new());
    for set in &mut sets {
        *set = if tag == RICE {
            take_rice_set(&mut bytes, max_span, sketch)?
        } else {
            take_varint_set(&mut bytes, max_span, sketch)?
        };
    }
    if !bytes.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(sets)
}

/// A set as [`put_span_sets`] writes it.
fn take_rice_set(
    bytes: &mut &[u8],
    max_span: usize,
    sketch: &'static str,
) -> WireResult<Vec<(i32, u64)>> {
    let bad = |why| WireError::sketch(sketch, why);
    let spans = take_varint(bytes).ok_or_else(|| bad("truncated span count"))?;
    if spans == 0 {
        return Ok(Vec::new());
    }
    let first = take_zigzag(bytes).ok_or_else(|| bad("truncated span"))?;
    let (&[k_gap, k_length, k_count], stream) = bytes
        .split_first_chunk()
        .ok_or_else(|| bad("truncated Rice parameters"))?;
    let [k_gap, k_length, k_count] = [k_gap, k_length, k_count].map(u32::from);
    if k_gap.max(k_length).max(k_count) > MAX_K {
        return Err(bad("Rice parameter out of range"));
    }
    // Every span's length costs at least a bit.
    let bits = stream.len() as u64 * 8;
    if spans > bits {
        return Err(bad("more spans than bytes"));
    }
    let mut reader = BitReader::new(stream);
    let mut layout = Layout::new(spans)?;
    let mut start = first;
    for i in 0..spans {
        if i > 0 {
            let gap = reader
                .take_rice(k_gap)
                .ok_or_else(|| bad("truncated span"))?;
            let (s, length) = layout.spans[layout.spans.len() - 1];
            start = i64::try_from(gap)
                .ok()
                .and_then(|g| s.checked_add(length as i64)?.checked_add(g)?.checked_add(1))
                .ok_or_else(|| bad("span out of range"))?;
        }
        let length = reader
            .take_rice(k_length)
            .ok_or_else(|| bad("truncated span"))?;
        // Every count costs at least a bit.
        layout.push_at(start, length.saturating_add(1), bits, sketch)?;
    }
    layout.check_range(max_span, sketch)?;
    let pairs = layout.counts(|| reader.take_rice(k_count), sketch)?;
    *bytes = &stream[reader.bytes_read()..];
    Ok(pairs)
}

/// A set as schema 2 wrote it: spans and counts as varints.
fn take_varint_set(
    bytes: &mut &[u8],
    max_span: usize,
    sketch: &'static str,
) -> WireResult<Vec<(i32, u64)>> {
    let bad = |why| WireError::sketch(sketch, why);
    let spans = take_varint(bytes).ok_or_else(|| bad("truncated span count"))?;
    if spans > bytes.len() as u64 {
        return Err(bad("more spans than bytes"));
    }
    let mut layout = Layout::new(spans)?;
    let mut end = 0i64;
    for _ in 0..spans {
        let gap = take_zigzag(bytes).ok_or_else(|| bad("truncated span"))?;
        let length = take_varint(bytes).ok_or_else(|| bad("truncated span"))?;
        if !layout.spans.is_empty() && gap <= 0 {
            return Err(bad("spans overlapping or unordered"));
        }
        let start = end
            .checked_add(gap)
            .ok_or_else(|| bad("span out of range"))?;
        // Every count costs at least a byte.
        layout.push_at(start, length, bytes.len() as u64, sketch)?;
        end = start + length as i64;
    }
    layout.check_range(max_span, sketch)?;
    layout.counts(|| take_varint(bytes), sketch)
}

/// A set's spans, checked as they are read.
struct Layout {
    /// (start, length) of each span.
    spans: Vec<(i64, u64)>,
    /// Buckets in the spans.
    total: u64,
}

impl Layout {
    /// Room for `spans` spans, charged to the decode budget first.
    fn new(spans: u64) -> WireResult<Self> {
        charge(spans as usize * std::mem::size_of::<(i64, u64)>())?;
        Ok(Layout {
            spans: Vec::with_capacity(spans as usize),
            total: 0,
        })
    }

    /// Adds the span of `length` buckets from `start`, which must follow the last one;
    /// the buckets may total at most `max_total`.
    fn push_at(
        &mut self,
        start: i64,
        length: u64,
        max_total: u64,
        sketch: &'static str,
    ) -> WireResult<()> {
        let bad = |why| WireError::sketch(sketch, why);
        if length == 0 {
            return Err(bad("empty span"));
        }
        if let Some(&(s, l)) = self.spans.last() {
            if start <= s.saturating_add(l as i64) {
                return Err(bad("spans overlapping or unordered"));
            }
        }
        self.total = self.total.saturating_add(length);
        if self.total > max_total {
            return Err(bad("more buckets than bytes"));
        }
        start
            .checked_add(length as i64)
            .ok_or_else(|| bad("span out of range"))?;
        self.spans.push((start, length));
        Ok(())
    }

    /// Fails unless the indexes lie within i32 and span at most `max_span`.
    fn check_range(&self, max_span: usize, sketch: &'static str) -> WireResult<()> {
        if let (Some(&(first, _)), Some(&(last, length))) = (self.spans.first(), self.spans.last())
        {
            let end = last + length as i64;
            if first < i64::from(i32::MIN)
                || end > i64::from(i32::MAX)
                || end - first > max_span as i64
            {
                return Err(WireError::sketch(sketch, "bucket range over the cap"));
            }
        }
        Ok(())
    }

    /// The pairs, each count the one before plus the zig-zag delta `next` reads.
    fn counts(
        &self,
        mut next: impl FnMut() -> Option<u64>,
        sketch: &'static str,
    ) -> WireResult<Vec<(i32, u64)>> {
        let bad = |why| WireError::sketch(sketch, why);
        charge(self.total as usize * std::mem::size_of::<(i32, u64)>())?;
        let mut pairs = Vec::with_capacity(self.total as usize);
        let mut previous = 0i64;
        for &(start, length) in &self.spans {
            for i in start..start + length as i64 {
                let delta = unzigzag(next().ok_or_else(|| bad("truncated counts"))?);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Schema 2's writer, the oracle of what stores and spools written before hold.
    fn put_schema_2(sets: &[&[(i32, u64)]], deflate: bool) -> Vec<u8> {
        let mut plain = Vec::new();
        for pairs in sets {
            let spans = spans_of(pairs);
            put_varint(&mut plain, spans.len() as u64);
            let mut end = 0i64;
            for &(start, len) in &spans {
                put_zigzag(&mut plain, i64::from(start) - end);
                put_varint(&mut plain, u64::from(len));
                end = i64::from(start) + i64::from(len);
            }
            let mut previous = 0i64;
            for &(_, c) in *pairs {
                put_zigzag(&mut plain, c as i64 - previous);
                previous = c as i64;
            }
        }
        if !deflate {
            return [&[PLAIN][..], &plain].concat();
        }
        let mut z = flate2::write::DeflateEncoder::new(vec![DEFLATED], flate2::Compression::best());
        std::io::Write::write_all(&mut z, &plain).expect("writing to a Vec");
        z.finish().expect("writing to a Vec")
    }

    fn sets() -> impl Strategy<Value = [Vec<(i32, u64)>; 2]> {
        let counts = prop_oneof![1u64..50, 1u64..u64::MAX / 2];
        let set = prop::collection::btree_map(-3000i32..3000, counts, 0..120)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>());
        [set.clone(), set]
    }

    proptest! {
        #[test]
        fn both_schemas_round_trip(sets in sets()) {
            let refs = [&sets[0][..], &sets[1][..]];
            for payload in [put_span_sets(&refs), put_schema_2(&refs, false), put_schema_2(&refs, true)] {
                prop_assert_eq!(&take_span_sets::<2>(&payload, 6000, "t").unwrap(), &sets);
                for cut in [1, payload.len() / 2, payload.len() - 1] {
                    prop_assert!(take_span_sets::<2>(&payload[..cut], 6000, "t").is_err());
                }
                let longer = [&payload[..], &[0]].concat();
                // (Trailing bytes after a deflate stream are refused by the inflater.)
                prop_assert!(take_span_sets::<2>(&longer, 6000, "t").is_err());
            }
        }

        #[test]
        fn decoding_never_panics_nor_overallocates(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let payload = [&[RICE][..], &bytes].concat();
            if let Ok([a, b]) = take_span_sets::<2>(&payload, 6000, "t") {
                prop_assert!(a.len() + b.len() <= bytes.len() * 8);
            }
            let payload = [&[PLAIN][..], &bytes].concat();
            if let Ok([a, b]) = take_span_sets::<2>(&payload, 6000, "t") {
                prop_assert!(a.len() + b.len() <= bytes.len());
            }
        }
    }

    /// Bucket counts of `n` lognormal values (scale 6 indexes of e^(2z)).
    fn lognormal_buckets(n: usize) -> Vec<(i32, u64)> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..n {
            let z = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
            let index = ((2.0 * z).exp().log2() * 64.0).floor() as i32;
            *counts.entry(index).or_insert(0u64) += 1;
        }
        counts.into_iter().collect()
    }

    #[test]
    fn sampled_counts_cost_less_than_deflated_varints() {
        for n in [1_000, 100_000] {
            let pairs = lognormal_buckets(n);
            let rice = put_span_sets(&[&pairs]).len();
            let deflated = put_schema_2(&[&pairs], true).len();
            let plain = put_schema_2(&[&pairs], false).len();
            eprintln!(
                "{n} values, {} buckets: Rice {rice} B, deflated {deflated} B, plain {plain} B",
                pairs.len()
            );
            assert!(rice < deflated, "{n}: {rice} >= {deflated}");
        }
    }

    #[test]
    fn spans_past_the_cap_or_out_of_order_are_refused() {
        let far = put_span_sets(&[&[(0, 1), (7000, 1)]]);
        assert!(take_span_sets::<1>(&far, 6000, "t").is_err());
        assert!(take_span_sets::<1>(&far, 7001, "t").is_ok());
        // A second span with a zero gap overlaps the first.
        let mut overlap = vec![RICE];
        for v in [2, 0, 1, 0, 1] {
            put_varint(&mut overlap, v);
        }
        overlap.extend_from_slice(&[0, 0b11]);
        assert!(take_span_sets::<1>(&overlap, 6000, "t").is_err());
        assert!(take_span_sets::<1>(&[9, 0], 6000, "t").is_err());
    }
}
