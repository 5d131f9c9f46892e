//! Per-dimension sums of vectors (embeddings): the mean vector and per-dimension variance
//! of a window, mergeable by addition, in at most [`MAX_VECTOR_DIMS`] slots.
//!
//! Components past the cap are folded into the slots as the hashing trick does (slot
//! `i mod MAX_VECTOR_DIMS`, a fixed pseudo-random sign per component): a linear map, so the
//! mean of the folded vectors is the folded mean, and inner products and cosine distances
//! between means are preserved in expectation. Below the cap the slots are the components.

use super::{charge, WireError, WireResult};
use serde::{Deserialize, Serialize};

/// Slots of a vector feature's per-dimension sums: components of longer vectors share
/// them (module docs). 256 slots cost 4 KiB per vector feature and shard (sums and
/// squares, f64).
pub const MAX_VECTOR_DIMS: usize = 256;

/// Sums and sums of squares per slot of the finite vectors folded.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct VectorSums {
    /// Vectors folded (finite ones only).
    pub(crate) n: u64,
    /// Smallest and largest dimension seen (0, 0 when none).
    pub(crate) dim_min: u32,
    pub(crate) dim_max: u32,
    pub(crate) sums: Vec<f64>,
    pub(crate) squares: Vec<f64>,
}

/// The slot and sign of component `i`.
#[inline]
fn slot(i: usize) -> (usize, f64) {
    if i < MAX_VECTOR_DIMS {
        return (i, 1.0);
    }
    // SplitMix64's finalizer: a fixed, well-mixed sign per component.
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let sign = if (z ^ (z >> 31)) & 1 == 0 { 1.0 } else { -1.0 };
    (i % MAX_VECTOR_DIMS, sign)
}

impl VectorSums {
    /// Folds one finite vector; returns its L2 norm.
    pub(crate) fn push(&mut self, v: &[f32]) -> f64 {
        let dim = u32::try_from(v.len()).unwrap_or(u32::MAX);
        if self.n == 0 {
            (self.dim_min, self.dim_max) = (dim, dim);
        } else {
            self.dim_min = self.dim_min.min(dim);
            self.dim_max = self.dim_max.max(dim);
        }
        self.n += 1;
        let slots = v.len().min(MAX_VECTOR_DIMS);
        if self.sums.len() < slots {
            self.sums.resize(slots, 0.0);
            self.squares.resize(slots, 0.0);
        }
        let mut norm2 = 0.0;
        let head = &v[..slots];
        for ((x, s), q) in head.iter().zip(&mut self.sums).zip(&mut self.squares) {
            let x = f64::from(*x);
            norm2 += x * x;
            *s += x;
            *q += x * x;
        }
        for (i, x) in v.iter().enumerate().skip(slots) {
            let x = f64::from(*x);
            norm2 += x * x;
            let (j, sign) = slot(i);
            self.sums[j] += sign * x;
            self.squares[j] += x * x;
        }
        norm2.sqrt()
    }

    /// Adds another window's (or shard's) sums.
    pub(crate) fn merge(&mut self, o: &VectorSums) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            (self.dim_min, self.dim_max) = (o.dim_min, o.dim_max);
        } else {
            self.dim_min = self.dim_min.min(o.dim_min);
            self.dim_max = self.dim_max.max(o.dim_max);
        }
        self.n = self.n.saturating_add(o.n);
        if self.sums.len() < o.sums.len() {
            self.sums.resize(o.sums.len(), 0.0);
            self.squares.resize(o.sums.len(), 0.0);
        }
        for (a, b) in self.sums.iter_mut().zip(&o.sums) {
            *a += b;
        }
        for (a, b) in self.squares.iter_mut().zip(&o.squares) {
            *a += b;
        }
    }

    /// Zeroes the sums, keeping the allocation for the next window.
    pub(crate) fn clear(&mut self) {
        self.n = 0;
        (self.dim_min, self.dim_max) = (0, 0);
        self.sums.fill(0.0);
        self.squares.fill(0.0);
    }

    /// The mean vector (folded past [`MAX_VECTOR_DIMS`]).
    pub(crate) fn mean(&self) -> Vec<f64> {
        let n = self.n.max(1) as f64;
        self.sums.iter().map(|s| s / n).collect()
    }

    /// Per-slot variance of the components (population).
    pub(crate) fn variance(&self) -> Vec<f64> {
        let n = self.n.max(1) as f64;
        self.sums
            .iter()
            .zip(&self.squares)
            .map(|(s, q)| (q / n - (s / n) * (s / n)).max(0.0))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.sums.capacity() + self.squares.capacity()) * 8
    }
}

/// Cosine distance (1 − cosine similarity) of two vectors, `None` when either is zero.
pub(crate) fn cosine_distance(a: &[f64], b: &[f64]) -> Option<f64> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    (na > 0.0 && nb > 0.0).then(|| (1.0 - dot / (na * nb)).clamp(0.0, 2.0))
}

/// The wire form: plain fields, checked on the way in.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub(crate) struct VectorWire {
    n: u64,
    dim_min: u32,
    dim_max: u32,
    sums: Vec<f64>,
    squares: Vec<f64>,
}

impl From<&VectorSums> for VectorWire {
    fn from(v: &VectorSums) -> Self {
        VectorWire {
            n: v.n,
            dim_min: v.dim_min,
            dim_max: v.dim_max,
            sums: v.sums.clone(),
            squares: v.squares.clone(),
        }
    }
}

impl TryFrom<VectorWire> for VectorSums {
    type Error = WireError;
    fn try_from(w: VectorWire) -> WireResult<Self> {
        let bad = |why| Err(WireError::sketch("vectors", why));
        if w.sums.len() != w.squares.len() || w.sums.len() > MAX_VECTOR_DIMS {
            return bad("sums and squares of different or excessive lengths");
        }
        if w.dim_min > w.dim_max || (w.sums.len() as u64) > u64::from(w.dim_max) {
            return bad("dimensions out of order");
        }
        if w.squares.iter().any(|q| q.is_nan() || *q < 0.0) || w.sums.iter().any(|s| !s.is_finite())
        {
            return bad("negative or non-finite sums");
        }
        charge(w.sums.len() * 16)?;
        Ok(VectorSums {
            n: w.n,
            dim_min: w.dim_min,
            dim_max: w.dim_max,
            sums: w.sums,
            squares: w.squares,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_vectors_sum_exactly_and_merge_by_addition() {
        let (mut a, mut b, mut all) = (
            VectorSums::default(),
            VectorSums::default(),
            VectorSums::default(),
        );
        let vs = [[3.0f32, 4.0, 0.0], [1.0, 0.0, -1.0], [0.5, 0.5, 0.5]];
        for (i, v) in vs.iter().enumerate() {
            let norm = all.push(v);
            let exact: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            assert!((norm - exact).abs() < 1e-12);
            if i < 2 {
                a.push(v)
            } else {
                b.push(v)
            };
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(all.mean(), vec![4.5 / 3.0, 4.5 / 3.0, -0.5 / 3.0]);
        assert_eq!((all.dim_min, all.dim_max, all.n), (3, 3, 3));
    }

    #[test]
    fn folding_long_vectors_preserves_the_distance_between_means() {
        // Two 1,024-dimensional directions, folded into 256 slots: the cosine distance of
        // the folded means stays near the true one (the hashing trick's promise).
        let d = 1024;
        let a: Vec<f32> = (0..d)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let b: Vec<f32> = (0..d)
            .map(|i| ((i * 104_729) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let exact = cosine_distance(
            &a.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
            &b.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        )
        .unwrap();
        let (mut sa, mut sb) = (VectorSums::default(), VectorSums::default());
        sa.push(&a);
        sb.push(&b);
        let folded = cosine_distance(&sa.mean(), &sb.mean()).unwrap();
        assert_eq!(sa.sums.len(), MAX_VECTOR_DIMS);
        assert!((folded - exact).abs() < 0.15, "{folded} vs {exact}");
        assert_eq!(cosine_distance(&sa.mean(), &sa.mean()), Some(0.0));
    }

    #[test]
    fn forged_wire_forms_are_refused() {
        let wire = |sums: Vec<f64>, squares: Vec<f64>, dim_max| VectorWire {
            n: 1,
            dim_min: 0,
            dim_max,
            sums,
            squares,
        };
        assert!(VectorSums::try_from(wire(vec![1.0], vec![], 1)).is_err());
        assert!(VectorSums::try_from(wire(vec![1.0; 300], vec![1.0; 300], 300)).is_err());
        assert!(VectorSums::try_from(wire(vec![1.0], vec![-1.0], 1)).is_err());
        assert!(VectorSums::try_from(wire(vec![f64::NAN], vec![1.0], 1)).is_err());
        assert!(VectorSums::try_from(wire(vec![1.0, 2.0], vec![1.0, 4.0], 1)).is_err());
        assert!(VectorSums::try_from(wire(vec![1.0, 2.0], vec![1.0, 4.0], 2)).is_ok());
    }
}
