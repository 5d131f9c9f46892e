//! LEB128 varints and zig-zag signed varints: the byte coding of every sketch payload.

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

    }
}
