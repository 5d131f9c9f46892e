//! Inflating sketch payloads with one decompressor per thread.
//!
//! A summary holds a dozen or more small deflate streams. Through `flate2`'s readers each
//! one allocated and zeroed a fresh decompressor with its window, then copied the output
//! out of it: two thirds of a collector's decode time. Here the decompressor is reset and
//! reused, and the output is written straight into the returned buffer. (flate2's backend
//! is zlib-rs, whose table building costs a third fewer instructions than miniz_oxide's on
//! these small streams: `examples/decode_probe.rs`.)

use super::{charge, WireError, WireResult};
use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// The framing of a deflate stream.
#[derive(Clone, Copy)]
pub(crate) enum Framing {
    /// Raw deflate (RFC 1951).
    Raw,
    /// zlib (RFC 1950): a header and an Adler-32 checksum around the deflate stream.
    Zlib,
}

/// Inflates `deflated` into at most `max_plain` bytes, each growth of the output charged to
/// the decode budget before it is made. A stream that is corrupt, truncated, or inflates
/// past `max_plain` is an error naming `sketch`.
pub(crate) fn inflate(
    deflated: &[u8],
    framing: Framing,
    max_plain: usize,
    sketch: &'static str,
) -> WireResult<Vec<u8>> {
    let zlib = matches!(framing, Framing::Zlib);
    DECOMPRESSOR.with(|cell| {
        // A decompressor already in use on this thread (not expected: decoding does not
        // nest) is left alone; this call takes a fresh one.
        let mut slot = cell.try_borrow_mut().ok();
        let mut d = match slot.as_mut().and_then(|s| s.take()) {
            Some(mut d) => {
                d.reset(zlib);
                d
            }
            None => Decompress::new(zlib),
        };
        let result = inflate_with(&mut d, deflated, max_plain, sketch);
        if let Some(mut slot) = slot {
            *slot = Some(d);
        }
        result
    })
}

fn inflate_with(
    d: &mut Decompress,
    input: &[u8],
    max_plain: usize,
    sketch: &'static str,
) -> WireResult<Vec<u8>> {
    let first = input.len().saturating_mul(4).max(64).min(max_plain);
    charge(first)?;
    let mut plain: Vec<u8> = Vec::with_capacity(first);
    loop {
        // Output goes into the spare capacity, never zeroed first; a stream that stops
        // short of its end with room left is truncated or corrupt.
        let read = d.total_in() as usize;
        let status = d.decompress_vec(
            input.get(read..).unwrap_or_default(),
            &mut plain,
            FlushDecompress::Finish,
        );
        match status {
            Ok(Status::StreamEnd) if d.total_in() as usize == input.len() => return Ok(plain),
            Ok(Status::StreamEnd) => {
                return Err(WireError::sketch(sketch, "bytes after the deflate stream"))
            }
            Ok(_) if plain.len() == plain.capacity() && plain.len() < max_plain => {
                let grown = plain.len().saturating_mul(2).min(max_plain);
                charge(grown - plain.len())?;
                plain.reserve_exact(grown - plain.len());
            }
            Ok(_) if plain.len() == plain.capacity() => {
                return Err(WireError::sketch(sketch, "payload inflates past its bound"))
            }
            _ => return Err(WireError::sketch(sketch, "corrupt deflate stream")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn deflate(plain: &[u8], framing: Framing) -> Vec<u8> {
        let level = flate2::Compression::best();
        match framing {
            Framing::Raw => {
                let mut z = flate2::write::DeflateEncoder::new(Vec::new(), level);
                z.write_all(plain).unwrap();
                z.finish().unwrap()
            }
            Framing::Zlib => {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), level);
                z.write_all(plain).unwrap();
                z.finish().unwrap()
            }
        }
    }

    proptest! {
        // flate2's encoder is the oracle: every stream comes back exactly, within a bound
        // of its size and not one byte under it; every truncation is refused.
        #[test]
        fn inflates_what_flate2_deflates(
            plain in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 7, 255]), 0..20_000),
            zlib in any::<bool>(),
        ) {
            let framing = if zlib { Framing::Zlib } else { Framing::Raw };
            let deflated = deflate(&plain, framing);
            prop_assert_eq!(inflate(&deflated, framing, plain.len(), "t").unwrap(), plain.clone());
            prop_assert_eq!(inflate(&deflated, framing, plain.len() + 100_000, "t").unwrap(), plain.clone());
            if !plain.is_empty() {
                prop_assert!(inflate(&deflated, framing, plain.len() - 1, "t").is_err());
            }
            for cut in [deflated.len() / 2, deflated.len().saturating_sub(1)] {
                prop_assert!(inflate(&deflated[..cut], framing, plain.len() + 1, "t").is_err());
            }
        }

        #[test]
        fn never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), zlib in any::<bool>()) {
            let framing = if zlib { Framing::Zlib } else { Framing::Raw };
            let _ = inflate(&bytes, framing, 10_000, "t");
        }
    }

    #[test]
    fn a_deflate_bomb_is_refused_at_its_bound() {
        let deflated = deflate(&vec![0u8; 10 << 20], Framing::Raw);
        let err = inflate(&deflated, Framing::Raw, 1 << 20, "t").unwrap_err();
        assert!(err.0.contains("past its bound"), "{err}");
    }

    #[test]
    fn growth_is_charged_to_the_decode_budget() {
        let deflated = deflate(&vec![3u8; 100_000], Framing::Raw);
        let over = super::super::with_decode_budget(50_000, || {
            inflate(&deflated, Framing::Raw, 1 << 20, "t")
        });
        assert!(over
            .unwrap_err()
            .0
            .starts_with(super::super::BUDGET_ERROR_PREFIX));
        let within = super::super::with_decode_budget(300_000, || {
            inflate(&deflated, Framing::Raw, 1 << 20, "t")
        });
        assert_eq!(within.unwrap().len(), 100_000);
    }
}
