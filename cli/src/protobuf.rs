//! The Prometheus protobuf exposition, written by hand: the few `io.prometheus.client`
//! messages `/metrics` needs (`MetricFamily`, `Metric`, `LabelPair`, `Gauge`, `Counter`
//! and the native `Histogram` with its `BucketSpan`s), each family length-delimited.
//!
//! Prometheus scrapes native histograms only in this format, and `prometheus-client`
//! writes it only through `prost` and `protoc` at build time: about 150 lines here
//! against a code generator and a system compiler in every build. Field numbers and wire
//! types are those of `io/prometheus/client/metrics.proto` (client_model); repeated
//! scalars are written unpacked, proto2's default, which every protobuf parser reads.

/// The Content-Type of the exposition (and what a scraper's Accept names to ask for it).
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// A metric family's type (`MetricType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter = 0,
    Gauge = 1,
    Histogram = 4,
}

/// A native histogram: buckets as (Prometheus index, count), ascending, nonzero counts;
/// bucket `i` holds the magnitudes in (base^(i-1), base^i], base = 2^(2^-schema).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeHistogram {
    pub schema: i32,
    /// Values equal to zero (the zero bucket's threshold is 0: exact zeros only).
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub negative: Vec<(i32, u64)>,
    pub positive: Vec<(i32, u64)>,
}

/// One metric's value, of its family's [`Kind`].
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Counter(f64),
    Gauge(f64),
    Histogram(&'a NativeHistogram),
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

/// `sint32` and `sint64`: zigzag, so that small negatives stay short.
fn sint(out: &mut Vec<u8>, field: u32, v: i64) {
    uint(out, field, ((v << 1) ^ (v >> 63)) as u64);
}

fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A nested message, written into a scratch buffer first for its length.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

/// One side's buckets as spans (a span per run of consecutive indices) and deltas (each
/// count minus the previous, the first minus 0). In i64, so that indices at the ends of
/// i32 (a forged summary's) cannot overflow; offsets fit `sint32` while the indices span
/// less than 2^31, as the collector's do (at most `MAX_BUCKETS`).
fn buckets(out: &mut Vec<u8>, span_field: u32, delta_field: u32, buckets: &[(i32, u64)]) {
    let mut spans: Vec<(i64, u32)> = Vec::new();
    let mut next = None;
    for &(i, _) in buckets {
        let i = i64::from(i);
        match (spans.last_mut(), next) {
            (Some((_, length)), Some(n)) if n == i => *length += 1,
            _ => spans.push((next.map_or(i, |n| i - n), 1)),
        }
        next = Some(i + 1);
    }
    for (offset, length) in spans {
        message(out, span_field, |m| {
            sint(m, 1, offset);
            uint(m, 2, u64::from(length));
        });
    }
    let mut previous = 0i64;
    for &(_, c) in buckets {
        let c = i64::try_from(c).unwrap_or(i64::MAX);
        sint(out, delta_field, c.wrapping_sub(previous));
        previous = c;
    }
}

fn histogram(out: &mut Vec<u8>, h: &NativeHistogram) {
    uint(out, 1, h.count);
    double(out, 2, h.sum);
    sint(out, 5, i64::from(h.schema));
    double(out, 6, 0.0);
    uint(out, 7, h.zero_count);
    buckets(out, 9, 10, &h.negative);
    buckets(out, 12, 13, &h.positive);
}

/// Appends one length-delimited `MetricFamily`: `name` as the series are to be named
/// (counters with their `_total`), one `Metric` per (labels, value).
pub fn family<'a>(
    out: &mut Vec<u8>,
    name: &str,
    help: &str,
    kind: Kind,
    metrics: impl IntoIterator<Item = (&'a [(&'a str, &'a str)], Value<'a>)>,
) {
    let mut f = Vec::new();
    bytes(&mut f, 1, name.as_bytes());
    bytes(&mut f, 2, help.as_bytes());
    uint(&mut f, 3, kind as u64);
    for (labels, value) in metrics {
        message(&mut f, 4, |m| {
            for (n, v) in labels {
                message(m, 1, |l| {
                    bytes(l, 1, n.as_bytes());
                    bytes(l, 2, v.as_bytes());
                });
            }
            match value {
                Value::Gauge(v) => message(m, 2, |g| double(g, 1, v)),
                Value::Counter(v) => message(m, 3, |c| double(c, 1, v)),
                Value::Histogram(h) => message(m, 7, |o| histogram(o, h)),
            }
        });
    }
    varint(out, f.len() as u64);
    out.extend_from_slice(&f);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes worked out by hand from the protobuf encoding rules (keys are
    /// field << 3 | wire type; zigzag maps -1 to 1, 1 to 2, -2 to 3).
    #[test]
    fn a_gauge_family_is_delimited_and_tagged_as_protobuf_specifies() {
        let mut out = Vec::new();
        let labels = [("a", "b")];
        family(
            &mut out,
            "g",
            "h",
            Kind::Gauge,
            [(&labels[..], Value::Gauge(1.0))],
        );
        let mut expected = vec![
            29, // the family's length
            0x0a, 1, b'g', // name
            0x12, 1, b'h', // help
            0x18, 1, // type GAUGE
            0x22, 19, // metric
            0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', // label a="b"
            0x12, 9, 0x09, // gauge { value (fixed64) }
        ];
        expected.extend_from_slice(&1.0f64.to_le_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn indices_at_the_ends_of_i32_do_not_overflow() {
        let mut out = Vec::new();
        buckets(
            &mut out,
            1,
            2,
            &[(i32::MIN, 1), (i32::MAX - 1, 1), (i32::MAX, 1)],
        );
        let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
        let mut expected = Vec::new();
        // Spans (i32::MIN, 1) and, after the gap from i32::MIN + 1, (i32::MAX - 1, 2).
        for (offset, length) in [(i64::from(i32::MIN), 1u8), (i64::from(u32::MAX) - 2, 2)] {
            let mut span = vec![0x08];
            varint(&mut span, zigzag(offset));
            span.extend_from_slice(&[0x10, length]);
            expected.extend_from_slice(&[0x0a, span.len() as u8]);
            expected.extend_from_slice(&span);
        }
        expected.extend_from_slice(&[0x10, 2, 0x10, 0, 0x10, 0]);
        assert_eq!(out, expected);
    }

    #[test]
    fn native_buckets_become_spans_and_deltas() {
        let h = NativeHistogram {
            schema: 6,
            zero_count: 2,
            count: 13,
            sum: 0.5,
            negative: vec![(-1, 1)],
            positive: vec![(-2, 3), (-1, 5), (2, 2)],
        };
        let mut out = Vec::new();
        histogram(&mut out, &h);
        let mut expected = vec![0x08, 13, 0x11];
        expected.extend_from_slice(&0.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x28, 12, 0x31]); // schema 6 (zigzag 12), zero threshold
        expected.extend_from_slice(&0.0f64.to_le_bytes());
        expected.extend_from_slice(&[0x38, 2]); // zero count
                                                // Negative: one span at -1 (zigzag 1) of length 1; delta +1 (zigzag 2).
        expected.extend_from_slice(&[0x4a, 4, 0x08, 1, 0x10, 1, 0x50, 2]);
        // Positive: spans (-2, 2) and, after a gap of 2 from index 0, (2, 1); deltas 3, +2, -3.
        expected.extend_from_slice(&[0x62, 4, 0x08, 3, 0x10, 2, 0x62, 4, 0x08, 4, 0x10, 1]);
        expected.extend_from_slice(&[0x68, 6, 0x68, 4, 0x68, 5]);
        assert_eq!(out, expected);
    }
}
