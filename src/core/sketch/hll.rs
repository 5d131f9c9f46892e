//! HyperLogLog distinct counting, written in-crate.
//!
//! Why not `probabilistic-collections`: its estimator is inverted (`1/(alpha*m^2*sum)`), so
//! `len()` returns +inf past a few thousand distinct values; sketches made with `new()` get
//! random hash keys and panic when merged; some parameters panic; and it is unmaintained and
//! pulls bincode 1 (RUSTSEC-2025-0141). See `docs/hyperloglog.md`.
//!
//! This one has 2^P one-byte registers (P = 12 for strings, 10 for numbers) fed by the
//! crate's keyed 64-bit hash and uses Ertl's improved raw estimator ("New cardinality
//! estimation algorithms for HyperLogLog sketches", 2017), which is unbiased from 0 to far
//! past 10^9 without the empirical bias tables or the linear-counting switch of the original
//! paper. Standard error: 1.04/sqrt(2^P).

use super::inflate::{inflate, Framing};
use super::rice::{best_k, BitReader, BitWriter, MAX_K};
use super::{charge, WireError, WireResult};

/// Register-index bits of the sketch of strings: 4096 registers.
pub(crate) const STRING_PRECISION: u32 = 12;
/// Register-index bits of the sketch of numbers: 1024 registers. Lower than for strings so
/// that a summary of a dozen numeric features fits in 32 KiB (see `docs/hyperloglog.md`).
pub(crate) const NUMBER_PRECISION: u32 = 10;
/// Standard error of a distinct count of strings, 1.04/sqrt(4096).
pub const STRING_DISTINCT_STANDARD_ERROR: f64 = 0.01625;
/// Standard error of a distinct count of numbers, 1.04/sqrt(1024).
pub const NUMBER_DISTINCT_STANDARD_ERROR: f64 = 0.0325;

const SPARSE: u8 = 0;
/// Schema 2: the registers zlib-compressed (still read).
const DEFLATE: u8 = 2;
/// Schema 3: a base and a Rice parameter, then each register less the base Rice-coded.
const RICE: u8 = 3;

/// A HyperLogLog sketch with 2^P one-byte registers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Hll<const P: u32> {
    registers: Box<[u8]>,
}

impl<const P: u32> std::fmt::Debug for Hll<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll<{P}>(~{:.0})", self.estimate())
    }
}

impl<const P: u32> Default for Hll<P> {
    fn default() -> Self {
        Hll {
            registers: vec![0; Self::M].into_boxed_slice(),
        }
    }
}

impl<const P: u32> Hll<P> {
    const M: usize = 1 << P;
    /// Largest register value: leading zeros of the remaining 64 - P bits, plus one.
    const MAX_RANK: u8 = (64 - P + 1) as u8;

    /// Bytes this sketch holds on the heap.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.registers.len()
    }

    #[inline]
    pub(crate) fn insert_hash(&mut self, hash: u64) {
        let index = Self::register_of(hash);
        // A sentinel bit below the remaining bits caps the rank at MAX_RANK.
        let rest = (hash << P) | (1 << (P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        // Branch-free: once most registers are set, the comparison is unpredictable.
        let r = &mut self.registers[index];
        *r = (*r).max(rank);
    }

    /// The register `hash` goes to: its top `P` bits.
    #[inline(always)]
    fn register_of(hash: u64) -> usize {
        (hash >> (64 - P)) as usize
    }

    /// Prefetches the register that inserting `hash` will update
    /// ([`crate::core::prefetch::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_register(&self, hash: u64) {
        crate::core::prefetch::prefetch(&self.registers[Self::register_of(hash)]);
    }

    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.registers.fill(0);
    }

    /// Ertl's improved estimator.
    pub(crate) fn estimate(&self) -> f64 {
        let mut histogram = [0u32; 66];
        for &r in self.registers.iter() {
            histogram[r as usize] += 1;
        }
        Self::estimate_from(&histogram)
    }

    /// Ertl's estimator from the histogram of register values.
    fn estimate_from(histogram: &[u32; 66]) -> f64 {
        let q = (64 - P) as usize;
        let m = Self::M as f64;
        let mut z = m * tau(1.0 - f64::from(histogram[q + 1]) / m);
        for k in (1..=q).rev() {
            z = 0.5 * (z + f64::from(histogram[k]));
        }
        z += m * sigma(f64::from(histogram[0]) / m);
        let alpha_inf = 1.0 / (2.0 * std::f64::consts::LN_2);
        alpha_inf * m * m / z
    }

    /// Compact bytes: sparse (index, rank) triples while few registers are set, else the
    /// registers above their minimum Rice-coded (1.2-3.7 bits a register from a few
    /// hundred values to millions: as small as zlib was, within 3 %, and read without
    /// building Huffman tables).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let nonzero = self.registers.iter().filter(|&&r| r != 0).count();
        if nonzero <= sparse_max(Self::M) {
            let set = self.registers.iter().enumerate().filter(|(_, &r)| r != 0);
            return sparse_bytes::<P>(set.map(|(i, &r)| (i as u16, r)));
        }
        let base = self.registers.iter().copied().min().unwrap_or(0);
        let above: Vec<u64> = self
            .registers
            .iter()
            .map(|&r| u64::from(r - base))
            .collect();
        let k = best_k(&above);
        let mut out = vec![P as u8, RICE, base, k as u8];
        let mut bits = BitWriter::new(&mut out);
        for v in above {
            bits.put_rice(v, k);
        }
        bits.finish();
        out
    }

    /// The dense sketch of sparse (index, rank) pairs.
    fn from_pairs(pairs: &[(u16, u8)]) -> Self {
        let mut hll = Self::default();
        for &(i, r) in pairs {
            hll.registers[usize::from(i)] = r;
        }
        hll
    }

    /// Validated decoding: any byte string either yields a sketch or an error, and never
    /// inflates past the register count.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: &[u8]) -> WireResult<Self> {
        Ok(match HllSummary::from_bytes(bytes)? {
            HllSummary::Sparse(pairs) => Self::from_pairs(&pairs),
            HllSummary::Dense(hll) => hll,
        })
    }
}

/// The sparse wire form: precision, tag, then (u16 LE index, rank) triples.
fn sparse_bytes<const P: u32>(set: impl Iterator<Item = (u16, u8)>) -> Vec<u8> {
    let mut out = vec![P as u8, SPARSE];
    for (i, r) in set {
        out.extend_from_slice(&i.to_le_bytes());
        out.push(r);
    }
    out
}

/// Sparse registers kept at most: past this many set registers (a ninth of them: 3 bytes
/// each on the wire against about 3 bits a register deflated), the dense form is smaller.
const fn sparse_max(m: usize) -> usize {
    (m - 1) / 9
}

/// A HyperLogLog as a summary holds it: the set registers as (index, rank) pairs,
/// ascending, while few are set; the dense registers past that. Decoding then allocates
/// in proportion to its input (a sparse register costs 3 bytes on the wire, 4 in memory)
/// instead of 4 KiB for a string column that saw one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HllSummary<const P: u32> {
    Sparse(Vec<(u16, u8)>),
    Dense(Hll<P>),
}

impl<const P: u32> Default for HllSummary<P> {
    fn default() -> Self {
        HllSummary::Sparse(Vec::new())
    }
}

impl<const P: u32> HllSummary<P> {
    /// Adds another sketch's registers (a shard's or a summary's).
    pub(crate) fn merge_registers(&mut self, registers: impl Iterator<Item = (usize, u8)>) {
        for (i, r) in registers.filter(|&(_, r)| r != 0) {
            match self {
                HllSummary::Dense(h) => h.registers[i] = h.registers[i].max(r),
                HllSummary::Sparse(pairs) => {
                    let i = i as u16;
                    match pairs.binary_search_by_key(&i, |&(j, _)| j) {
                        Ok(at) => pairs[at].1 = pairs[at].1.max(r),
                        Err(at) => pairs.insert(at, (i, r)),
                    }
                    if pairs.len() > sparse_max(Hll::<P>::M) {
                        *self = HllSummary::Dense(Hll::from_pairs(pairs));
                    }
                }
            }
        }
    }

    /// Adds a shard's sketch.
    pub(crate) fn add_shard(&mut self, h: &Hll<P>) {
        self.merge_registers(h.registers.iter().copied().enumerate());
    }

    /// Adds another summary's sketch: the result is the sketch of both streams.
    pub(crate) fn merge(&mut self, o: &Self) {
        match o {
            HllSummary::Sparse(pairs) => {
                self.merge_registers(pairs.iter().map(|&(i, r)| (usize::from(i), r)));
            }
            HllSummary::Dense(h) => self.add_shard(h),
        }
    }

    /// Ertl's estimator, as [`Hll::estimate`].
    pub(crate) fn estimate(&self) -> f64 {
        match self {
            HllSummary::Dense(h) => h.estimate(),
            HllSummary::Sparse(pairs) => {
                let mut histogram = [0u32; 66];
                histogram[0] = (Hll::<P>::M - pairs.len()) as u32;
                for &(_, r) in pairs {
                    histogram[usize::from(r)] += 1;
                }
                Hll::<P>::estimate_from(&histogram)
            }
        }
    }

    /// The bytes of [`Hll::to_bytes`].
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            HllSummary::Dense(h) => h.to_bytes(),
            HllSummary::Sparse(pairs) => sparse_bytes::<P>(pairs.iter().copied()),
        }
    }

    /// Bytes this sketch holds on the heap.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            HllSummary::Dense(h) => h.registers.len(),
            HllSummary::Sparse(pairs) => pairs.capacity() * std::mem::size_of::<(u16, u8)>(),
        }
    }

    /// Validated decoding of [`to_bytes`](Self::to_bytes) (or of [`Hll::to_bytes`]):
    /// any byte string yields a sketch or an error; what it allocates is charged to the
    /// decode budget first.
    pub(crate) fn from_bytes(bytes: &[u8]) -> WireResult<Self> {
        const { assert!(P <= 16, "register indexes are u16") };
        let m = Hll::<P>::M;
        let max_rank = Hll::<P>::MAX_RANK;
        let bad = |why: &'static str| WireError::sketch("hyperloglog", why);
        let (&[precision, encoding], body) =
            bytes.split_first_chunk().ok_or_else(|| bad("short"))?;
        if u32::from(precision) != P {
            return Err(bad("unexpected precision"));
        }
        match encoding {
            SPARSE => {
                let n = body.len() / 3;
                if body.len() % 3 != 0 || n > m {
                    return Err(bad("sparse length"));
                }
                charge(n * std::mem::size_of::<(u16, u8)>())?;
                let mut pairs: Vec<(u16, u8)> = Vec::with_capacity(n);
                for t in body.chunks_exact(3) {
                    let index = u16::from_le_bytes([t[0], t[1]]);
                    if usize::from(index) >= m || t[2] == 0 || t[2] > max_rank {
                        return Err(bad("sparse entry out of range"));
                    }
                    if pairs.last().is_some_and(|&(j, _)| j >= index) {
                        return Err(bad("sparse entries not ascending"));
                    }
                    pairs.push((index, t[2]));
                }
                if n <= sparse_max(m) {
                    return Ok(HllSummary::Sparse(pairs));
                }
                charge(m)?;
                Ok(HllSummary::Dense(Hll::from_pairs(&pairs)))
            }
            DEFLATE => {
                let raw = inflate(body, Framing::Zlib, m, "hyperloglog")?;
                if raw.len() != m || raw.iter().any(|&r| r > max_rank) {
                    return Err(bad("registers out of range"));
                }
                Ok(HllSummary::Dense(Hll {
                    registers: raw.into_boxed_slice(),
                }))
            }
            RICE => {
                let (&[base, k], stream) = body.split_first_chunk().ok_or_else(|| bad("short"))?;
                let k = u32::from(k);
                // Every register costs at least a bit.
                if k > MAX_K || base > max_rank || stream.len() < m / 8 {
                    return Err(bad("dense registers truncated or out of range"));
                }
                charge(m)?;
                let mut reader = BitReader::new(stream);
                let mut registers = vec![base; m].into_boxed_slice();
                let mut i = 0;
                while i < m {
                    // Below a few thousand values most registers are at the base (k = 0:
                    // a lone one bit each); they are skipped a run at a time.
                    if k == 0 {
                        i += reader.take_zero_run(m - i);
                        if i == m {
                            break;
                        }
                    }
                    let above = reader
                        .take_rice(k)
                        .filter(|&v| v <= u64::from(max_rank - base))
                        .ok_or_else(|| bad("registers truncated or out of range"))?;
                    registers[i] = base + above as u8;
                    i += 1;
                }
                if reader.bytes_read() != stream.len() {
                    return Err(bad("trailing bytes"));
                }
                Ok(HllSummary::Dense(Hll { registers }))
            }
            _ => Err(bad("unknown encoding")),
        }
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_old = z;
        z += x * y;
        y += y;
        if z_old == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_old = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z_old == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sketch::keyed_hash::HashKey;

    #[test]
    fn the_summary_form_estimates_and_encodes_as_the_dense_one() {
        let key = HashKey::new([5; 16]);
        for n in [1u64, 20, 300, 511, 512, 513, 3000, 100_000] {
            let mut dense = super::Hll::<STRING_PRECISION>::default();
            (0..n).for_each(|i| dense.insert_hash(key.hash_f64(i as f64)));
            let mut summary = HllSummary::<STRING_PRECISION>::default();
            summary.add_shard(&dense);
            assert_eq!(summary.estimate(), dense.estimate(), "n = {n}");
            assert_eq!(summary.to_bytes(), dense.to_bytes(), "n = {n}");
            let back = HllSummary::<STRING_PRECISION>::from_bytes(&summary.to_bytes()).unwrap();
            assert_eq!(back.estimate(), dense.estimate());
            // Merging in halves gives the same registers.
            let mut halves = HllSummary::<STRING_PRECISION>::default();
            let (mut a, mut b) = (super::Hll::default(), super::Hll::default());
            (0..n / 2).for_each(|i| a.insert_hash(key.hash_f64(i as f64)));
            (n / 2..n).for_each(|i| b.insert_hash(key.hash_f64(i as f64)));
            let mut sb = HllSummary::default();
            sb.add_shard(&b);
            halves.add_shard(&a);
            halves.merge(&sb);
            assert_eq!(halves.estimate(), dense.estimate(), "n = {n}");
        }
    }

    const KEY: HashKey = HashKey::new(*b"0123456789abcdef");

    type Hll = super::Hll<STRING_PRECISION>;

    fn sketch(range: std::ops::Range<u64>) -> Hll {
        let mut h = Hll::default();
        for i in range {
            h.insert_hash(KEY.hash_str(&format!("user-{i}")));
        }
        h
    }

    fn assert_within_3_se<const P: u32>(h: &super::Hll<P>, exact: u64) {
        let est = h.estimate();
        let rel = (est - exact as f64).abs() / exact as f64;
        let se = 1.04 / ((1u64 << P) as f64).sqrt();
        assert!(
            rel <= 3.0 * se,
            "exact {exact}, estimate {est:.1}, relative error {rel:.4}"
        );
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Hll::default().estimate(), 0.0);
    }

    #[test]
    fn estimates_within_three_standard_errors_from_10_to_a_million() {
        for exact in [10, 100, 1_000, 10_000, 100_000, 1_000_000] {
            let h = sketch(0..exact);
            assert_within_3_se(&h, exact);
            // Repeats do not change the estimate.
            let mut again = h.clone();
            for i in 0..exact.min(1000) {
                again.insert_hash(KEY.hash_str(&format!("user-{i}")));
            }
            assert_eq!(again, h);
            // The sketch of numbers, fed with f64 hashes.
            let mut numbers = super::Hll::<NUMBER_PRECISION>::default();
            (0..exact).for_each(|i| numbers.insert_hash(KEY.hash_f64(i as f64 * 0.37)));
            assert_within_3_se(&numbers, exact);
        }
    }

    #[test]
    fn standard_error_constants_match_the_precisions() {
        assert!((STRING_DISTINCT_STANDARD_ERROR - 1.04 / 64.0).abs() < 1e-4);
        assert!((NUMBER_DISTINCT_STANDARD_ERROR - 1.04 / 32.0).abs() < 1e-4);
    }

    #[test]
    fn merge_of_overlapping_streams_counts_the_union() {
        let mut a = sketch(0..300_000);
        let b = sketch(200_000..500_000);
        a.merge(&b);
        assert_within_3_se(&a, 500_000);
        assert_eq!(a, sketch(0..500_000));
    }

    #[test]
    fn bytes_round_trip_sparse_and_dense() {
        for n in [0, 5, 500, 50_000] {
            let h = sketch(0..n);
            let bytes = h.to_bytes();
            assert!(
                bytes.len() <= 2 + 4096 * 6 / 8,
                "{n}: {} bytes",
                bytes.len()
            );
            assert_eq!(Hll::from_bytes(&bytes).unwrap(), h);
        }
    }

    #[test]
    fn schema_2_zlib_registers_still_decode() {
        for n in [2_000, 50_000] {
            let h = sketch(0..n);
            let mut z =
                flate2::write::ZlibEncoder::new(vec![12, DEFLATE], flate2::Compression::best());
            std::io::Write::write_all(&mut z, &h.registers).unwrap();
            let zlib = z.finish().unwrap();
            assert_eq!(Hll::from_bytes(&zlib).unwrap(), h);
            // The Rice form is no larger than zlib's, within 3 %.
            assert!(h.to_bytes().len() * 100 <= zlib.len() * 103, "{n}");
        }
    }

    #[test]
    fn broken_rice_registers_are_errors() {
        let good = sketch(0..50_000).to_bytes();
        assert_eq!(good[1], RICE);
        let mut base_too_high = good.clone();
        base_too_high[2] = 60;
        let mut k_too_high = good.clone();
        k_too_high[3] = 59;
        for bad in [
            &good[..good.len() - 1],
            &[&good[..], &[0]].concat()[..],
            &base_too_high[..],
            &k_too_high[..],
            &good[..4],
        ] {
            assert!(Hll::from_bytes(bad).is_err());
        }
    }

    #[test]
    fn deflate_bombs_are_refused() {
        let mut z = flate2::write::ZlibEncoder::new(vec![12, DEFLATE], flate2::Compression::best());
        std::io::Write::write_all(&mut z, &vec![1u8; 1 << 24]).unwrap();
        assert!(Hll::from_bytes(&z.finish().unwrap()).is_err());
    }

    #[test]
    fn broken_bytes_are_errors() {
        for bad in [
            &[][..],
            &[12][..],
            &[13, 0][..],
            &[12, 0, 0, 0][..],
            &[12, 0, 0xff, 0xff, 1][..],
            &[12, 0, 0, 0, 60][..],
            &[12, 2, 0][..],
            &[10, 0][..],
            &[12, 7][..],
        ] {
            assert!(Hll::from_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
