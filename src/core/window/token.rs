//! Feedback tokens: what a label needs to join its prediction, carried by whoever will
//! learn the label, so that any process of the deployment (same hash key) can fold it, with
//! no shared store. Pure: time is an argument.
//!
//! Layout before base64url (no padding): version (1 byte), the prediction's time (i64
//! milliseconds, little-endian), the predicted value (a tag byte, then 8 bytes for a
//! number, 1 for a bool, a length byte and the UTF-8 for a string), the confidence (a tag
//! byte and an f64, or tag 0), the segments (a count byte, then each as a length byte and
//! its UTF-8), and a 128-bit tag: SipHash-2-4 under two keys derived from the hash key, of
//! everything before it. Without the key a token cannot be made or altered; its contents
//! are readable by whoever holds it (the predicted value and segment names, never a feature).

use crate::core::record::cut;
use crate::core::record::value::Value;
use crate::core::sketch::keyed_hash::HashKey;
use std::borrow::Cow;

const VERSION: u8 = 1;
/// Segments a token carries, at most; more are left out.
pub(crate) const MAX_TOKEN_SEGMENTS: usize = 8;
/// Bytes of a string (predicted class or segment name) a token carries, at most.
const MAX_TOKEN_TEXT: usize = 128;
/// How far in the future a token's time may be (clocks of two replicas differ).
const CLOCK_SKEW_MS: i64 = 5 * 60_000;
const TAG_BYTES: usize = 16;

/// What a token carries.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TokenContent {
    pub(crate) at_ms: i64,
    pub(crate) predicted: Value<'static>,
    pub(crate) confidence: Option<f64>,
    pub(crate) segments: Vec<String>,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a token, altered, or made with another key.
    Forged,
    /// Older than the time-to-live.
    Expired,
}

/// The token of a prediction.
pub(crate) fn encode(key: &HashKey, c: &TokenContent) -> String {
    let mut b = Vec::with_capacity(48);
    b.push(VERSION);
    b.extend_from_slice(&c.at_ms.to_le_bytes());
    match &c.predicted {
        // A vector is no predicted class: the token carries none.
        Value::Null | Value::Vector(_) => b.push(0),
        Value::Bool(v) => b.extend_from_slice(&[1, u8::from(*v)]),
        Value::Int(i) => {
            b.push(2);
            b.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(x) => {
            b.push(3);
            b.extend_from_slice(&x.to_le_bytes());
        }
        Value::Str(s) => {
            b.push(4);
            push_text(&mut b, s);
        }
    }
    match c.confidence {
        Some(p) => {
            b.push(1);
            b.extend_from_slice(&p.to_le_bytes());
        }
        None => b.push(0),
    }
    let segments = &c.segments[..c.segments.len().min(MAX_TOKEN_SEGMENTS)];
    b.push(segments.len() as u8);
    for s in segments {
        push_text(&mut b, s);
    }
    let tag = key.mac_128(&b);
    b.extend_from_slice(&tag);
    base64url(&b)
}

fn push_text(b: &mut Vec<u8>, s: &str) {
    let s = cut(s, MAX_TOKEN_TEXT);
    b.push(s.len() as u8);
    b.extend_from_slice(s.as_bytes());
}

/// The content of a token made with `key`, if it is authentic and not older than `ttl_ms`.
pub(crate) fn decode(
    key: &HashKey,
    token: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<TokenContent, Refused> {
    // The longest token: every field at its largest.
    const MAX_BYTES: usize =
        1 + 8 + 2 + MAX_TOKEN_TEXT + 9 + 1 + MAX_TOKEN_SEGMENTS * (1 + MAX_TOKEN_TEXT) + TAG_BYTES;
    if token.len() > MAX_BYTES.div_ceil(3) * 4 {
        return Err(Refused::Forged);
    }
    let bytes = unbase64url(token).ok_or(Refused::Forged)?;
    if bytes.len() < TAG_BYTES + 1 {
        return Err(Refused::Forged);
    }
    let (body, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    // Compared in full whatever differs first: the time taken says nothing of the tag.
    let expected = key.mac_128(body);
    if expected.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b)) != 0 {
        return Err(Refused::Forged);
    }
    let c = parse(body).ok_or(Refused::Forged)?;
    if c.at_ms > now_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(Refused::Forged);
    }
    if now_ms.saturating_sub(c.at_ms) > ttl_ms {
        return Err(Refused::Expired);
    }
    Ok(c)
}

/// Reads an authentic body (it can still be malformed if made by another version).
fn parse(body: &[u8]) -> Option<TokenContent> {
    let mut r = Reader(body);
    if r.byte()? != VERSION {
        return None;
    }
    let at_ms = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let predicted = match r.byte()? {
        0 => Value::Null,
        1 => Value::Bool(r.byte()? != 0),
        2 => Value::Int(i64::from_le_bytes(r.take(8)?.try_into().ok()?)),
        3 => Value::Float(f64::from_le_bytes(r.take(8)?.try_into().ok()?)),
        4 => Value::Str(Cow::Owned(r.text()?)),
        _ => return None,
    };
    let confidence = match r.byte()? {
        0 => None,
        1 => Some(f64::from_le_bytes(r.take(8)?.try_into().ok()?)),
        _ => return None,
    };
    let n = r.byte()? as usize;
    let segments = (0..n).map(|_| r.text()).collect::<Option<Vec<_>>>()?;
    r.0.is_empty().then_some(TokenContent {
        at_ms,
        predicted,
        confidence,
        segments,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn text(&mut self) -> Option<String> {
        let n = self.byte()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 without padding (RFC 4648 §5): tokens go in URLs and headers as they are.
fn base64url(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | u32::from(x) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            s.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|d| d as u32);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let n = chunk
            .iter()
            .enumerate()
            .try_fold(0u32, |n, (i, &c)| Some(n | digit(c)? << (18 - 6 * i)))?;
        // Canonical only: bits past the last byte must be zero, so that no two strings
        // decode to one token.
        let unused = (1u32 << (24 - 8 * (chunk.len() - 1))) - 1;
        if n & unused != 0 {
            return None;
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: HashKey = HashKey::new([5; 16]);

    fn content() -> TokenContent {
        TokenContent {
            at_ms: 1_000_000,
            predicted: Value::Str(Cow::Owned("fraud".into())),
            confidence: Some(0.87),
            segments: vec!["web".into(), "eu".into()],
        }
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for n in 0..40u8 {
            let b: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let s = base64url(&b);
            assert!(s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(unbase64url(&s).unwrap(), b);
        }
        // RFC 4648 test vectors, padding removed.
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(b"fooba"), "Zm9vYmE");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        // A string whose unused bits are set is not a second spelling of the same bytes.
        assert_eq!(unbase64url("Zm9vYmE"), Some(b"fooba".to_vec()));
        assert_eq!(unbase64url("Zm9vYmF"), None);
    }

    #[test]
    fn a_token_round_trips_and_any_change_is_refused() {
        let t = encode(&KEY, &content());
        assert_eq!(decode(&KEY, &t, 1_000_500, 60_000), Ok(content()));
        assert_eq!(
            decode(&KEY, &t, 1_000_000 + 60_001, 60_000),
            Err(Refused::Expired)
        );
        assert_eq!(
            decode(&HashKey::new([6; 16]), &t, 1_000_500, 60_000),
            Err(Refused::Forged)
        );
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap();
            assert_eq!(
                decode(&KEY, &changed, 1_000_500, 60_000),
                Err(Refused::Forged),
                "{i}"
            );
        }
        for bad in ["", "x", "!!!!", &t[..t.len() - 1], &"A".repeat(100_000)] {
            assert_eq!(decode(&KEY, bad, 1_000_500, 60_000), Err(Refused::Forged));
        }
        // From too far in the future: another clock, or a forged time.
        let future = TokenContent {
            at_ms: 1_000_500 + CLOCK_SKEW_MS + 1,
            ..content()
        };
        let t = encode(&KEY, &future);
        assert_eq!(decode(&KEY, &t, 1_000_500, 60_000), Err(Refused::Forged));
    }

    #[test]
    fn every_predicted_type_and_long_texts_fit() {
        for predicted in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Float(0.25),
            Value::Str(Cow::Owned("é".repeat(200))),
        ] {
            let c = TokenContent {
                predicted: predicted.clone(),
                confidence: None,
                segments: (0..20).map(|i| format!("{i}").repeat(300)).collect(),
                ..content()
            };
            let back = decode(&KEY, &encode(&KEY, &c), 1_000_000, 1).unwrap();
            assert_eq!(back.segments.len(), MAX_TOKEN_SEGMENTS);
            assert!(back.segments.iter().all(|s| s.len() <= MAX_TOKEN_TEXT));
            if let (Value::Str(a), Value::Str(b)) = (&back.predicted, &predicted) {
                assert!(b.starts_with(a.as_ref()) && a.len() <= MAX_TOKEN_TEXT);
            } else {
                assert_eq!(back.predicted, predicted);
            }
        }
    }
}
