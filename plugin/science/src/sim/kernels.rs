//! The kernels: one pass over a slice of amplitudes for a diagonal, monomial or dense op.
//!
//! Every kernel works on any power-of-two slice that covers whole groups of the op (all indices
//! that differ only in the op's qubits), with `base` the absolute index of the slice's first
//! amplitude; that lets the executor run a batch of ops chunk by chunk while a chunk sits in cache.

use num_complex::Complex64 as C64;
use rayon::prelude::*;
use std::ops::Range;

/// Amplitude groups handed to one rayon task.
const GROUPS_PER_TASK: usize = 1 << 11;
/// Amplitudes per step of the diagonal kernel: the low bits of an index are looked up in a table
/// this long, the high bits are constant within the step.
const DIAG_STEP_BITS: usize = 12;

/// Spreads the bits of `g` so that a zero sits at each of the sorted positions.
#[inline(always)]
pub fn insert_zero_bits(mut g: usize, sorted_qubits: &[usize]) -> usize {
    for &q in sorted_qubits {
        let low = g & ((1usize << q) - 1);
        g = ((g >> q) << (q + 1)) | low;
    }
    g
}

/// `offsets[j]`: the index offset of local basis state `j` (bit `b` of `j` is qubit `qubits[b]`).
pub fn local_offsets(qubits: &[usize]) -> Vec<usize> {
    (0..1usize << qubits.len())
        .map(|j| {
            qubits
                .iter()
                .enumerate()
                .filter(|(b, _)| j >> b & 1 == 1)
                .map(|(_, q)| 1usize << q)
                .sum()
        })
        .collect()
}

/// Applies a row-major matrix on `qubits` (argument order, little-endian) to a small state, serially.
/// The simple reference path: fusion uses it to build block matrices.
pub fn apply_matrix_small(state: &mut [C64], qubits: &[usize], m: &[C64]) {
    let k = qubits.len();
    let d = 1usize << k;
    let offsets = local_offsets(qubits);
    let mut sorted = qubits.to_vec();
    sorted.sort_unstable();
    let mut v = vec![C64::new(0.0, 0.0); d];
    for g in 0..state.len() >> k {
        let base = insert_zero_bits(g, &sorted);
        for j in 0..d {
            v[j] = state[base + offsets[j]];
        }
        for r in 0..d {
            let row = &m[r * d..(r + 1) * d];
            state[base + offsets[r]] = row.iter().zip(&v).map(|(a, b)| a * b).sum();
        }
    }
}

/// A raw pointer that may cross threads. Each task touches a disjoint set of amplitude groups, so no
/// two threads ever access the same element.
#[derive(Clone, Copy)]
struct SharedAmps(*mut C64);
unsafe impl Send for SharedAmps {}
unsafe impl Sync for SharedAmps {}

impl SharedAmps {
    #[inline(always)]
    fn ptr(self) -> *mut C64 {
        self.0
    }
}

/// Calls `body(range)` over ranges of group indices covering `0..num_groups`, in parallel tasks
/// when asked and worth it.
#[inline(always)]
fn for_each_range(num_groups: usize, parallel: bool, body: impl Fn(Range<usize>) + Sync + Send) {
    if parallel && num_groups >= 2 * GROUPS_PER_TASK {
        (0..num_groups.div_ceil(GROUPS_PER_TASK))
            .into_par_iter()
            .for_each(|task| {
                let start = task * GROUPS_PER_TASK;
                body(start..(start + GROUPS_PER_TASK).min(num_groups));
            });
    } else {
        body(0..num_groups);
    }
}

/// A diagonal op, ready to apply: amplitude `i` is multiplied by `diag[local(i)]`.
#[derive(Debug, Clone)]
pub struct DiagonalKernel {
    pub qubits: Vec<usize>,
    offsets: Vec<usize>,
    pub diag: Vec<C64>,
}

impl DiagonalKernel {
    pub fn new(qubits: Vec<usize>, diag: Vec<C64>) -> Self {
        let offsets = local_offsets(&qubits);
        Self {
            qubits,
            offsets,
            diag,
        }
    }

    /// `base` is the absolute index of `amps[0]`: high qubits select the diagonal entry.
    pub fn apply(&self, amps: &mut [C64], base: usize, parallel: bool) {
        let (qubits, diag) = (&self.qubits[..], &self.diag[..]);
        if amps.len() <= 1 << DIAG_STEP_BITS && qubits.iter().all(|&q| 1 << q < amps.len()) {
            // Small slice: walk the groups; a lookup table would cost as much as the op.
            for g in 0..amps.len() >> qubits.len() {
                let start = insert_zero_bits(g, qubits);
                for (off, d) in self.offsets.iter().zip(diag) {
                    amps[start + off] *= d;
                }
            }
            return;
        }
        let step_bits = DIAG_STEP_BITS.min(amps.len().trailing_zeros() as usize);
        let step = 1usize << step_bits;
        let split = |low: bool| -> Vec<(usize, usize)> {
            qubits
                .iter()
                .enumerate()
                .filter(|(_, &q)| (q < step_bits) == low)
                .map(|(b, &q)| (b, q))
                .collect()
        };
        let (low, high) = (split(true), split(false));
        // Local-index bits contributed by the low `step_bits` bits of an index, for every offset.
        let low_map: Vec<u32> = (0..step)
            .map(|off| low.iter().map(|&(b, q)| ((off >> q & 1) << b) as u32).sum())
            .collect();
        let kernel = |(ci, part): (usize, &mut [C64])| {
            let start = base + ci * step;
            let hi: usize = high.iter().map(|&(b, q)| (start >> q & 1) << b).sum();
            for (a, &lo) in part.iter_mut().zip(&low_map) {
                *a *= diag[hi | lo as usize];
            }
        };
        if parallel && amps.len() >= 2 * step * 16 {
            amps.par_chunks_mut(step).enumerate().for_each(kernel);
        } else {
            amps.chunks_mut(step).enumerate().for_each(kernel);
        }
    }
}

/// A monomial op (permutation with phases), ready to apply: local basis state `j` moves to
/// `target[j]` with factor `phase[j]`.
#[derive(Debug, Clone)]
pub struct PermuteKernel {
    pub qubits: Vec<usize>,
    offsets: Vec<usize>,
    dest: Vec<usize>,
    pub target: Vec<usize>,
    pub phase: Vec<C64>,
    phased: bool,
}

impl PermuteKernel {
    pub fn new(qubits: Vec<usize>, target: Vec<usize>, phase: Vec<C64>) -> Self {
        let offsets = local_offsets(&qubits);
        let dest = target.iter().map(|&t| offsets[t]).collect();
        let phased = phase.iter().any(|p| *p != C64::new(1.0, 0.0));
        Self {
            qubits,
            offsets,
            dest,
            target,
            phase,
            phased,
        }
    }

    pub fn apply(&self, amps: &mut [C64], parallel: bool) {
        match (self.qubits.len(), self.phased) {
            (1, false) => self.run::<2, false>(amps, parallel),
            (1, true) => self.run::<2, true>(amps, parallel),
            (2, false) => self.run::<4, false>(amps, parallel),
            (2, true) => self.run::<4, true>(amps, parallel),
            (3, false) => self.run::<8, false>(amps, parallel),
            (3, true) => self.run::<8, true>(amps, parallel),
            (4, false) => self.run::<16, false>(amps, parallel),
            (4, true) => self.run::<16, true>(amps, parallel),
            (5, _) => self.run::<32, true>(amps, parallel),
            (6, _) => self.run::<64, true>(amps, parallel),
            (7, _) => self.run::<128, true>(amps, parallel),
            (8, _) => self.run::<256, true>(amps, parallel),
            (k, _) => {
                let d = 1usize << k;
                let mut m = vec![C64::new(0.0, 0.0); d * d];
                for c in 0..d {
                    m[self.target[c] * d + c] = self.phase[c];
                }
                apply_matrix_small(amps, &self.qubits, &m);
            }
        }
    }

    /// Gathers each group and scatters it to its targets; `PHASED` false skips the multiply for
    /// plain permutations (X, CX, SWAP, CCX chains).
    fn run<const D: usize, const PHASED: bool>(&self, amps: &mut [C64], parallel: bool) {
        let (qubits, offsets, dest, phase) = (
            &self.qubits[..],
            &self.offsets[..],
            &self.dest[..],
            &self.phase[..],
        );
        let shared = SharedAmps(amps.as_mut_ptr());
        for_each_range(amps.len() / D, parallel, move |range| {
            let mut v = [C64::new(0.0, 0.0); D];
            for g in range {
                let base = insert_zero_bits(g, qubits);
                // SAFETY: group `g` owns exactly the indices base + offsets[j], all < amps.len()
                // because the slice covers whole groups, and no other group shares one of them.
                unsafe {
                    let p = shared.ptr().add(base);
                    for j in 0..D {
                        v[j] = *p.add(offsets[j]);
                    }
                    for j in 0..D {
                        *p.add(dest[j]) = if PHASED { v[j] * phase[j] } else { v[j] };
                    }
                }
            }
        });
    }
}

/// A dense op, ready to apply: the matrix split into real and imaginary column-major planes so the
/// inner loop runs over independent rows and vectorises; an AVX2+FMA build is picked at run time.
#[derive(Debug, Clone)]
pub struct DenseKernel {
    pub qubits: Vec<usize>,
    offsets: Vec<usize>,
    re: Vec<f64>,
    im: Vec<f64>,
}

impl DenseKernel {
    /// `matrix` is row-major, little-endian over the sorted `qubits`.
    pub fn new(qubits: Vec<usize>, matrix: &[C64]) -> Self {
        let d = 1usize << qubits.len();
        let mut re = vec![0.0; d * d];
        let mut im = vec![0.0; d * d];
        for r in 0..d {
            for c in 0..d {
                re[c * d + r] = matrix[r * d + c].re;
                im[c * d + r] = matrix[r * d + c].im;
            }
        }
        let offsets = local_offsets(&qubits);
        Self {
            qubits,
            offsets,
            re,
            im,
        }
    }

    pub fn apply(&self, amps: &mut [C64], parallel: bool) {
        match self.qubits.len() {
            1 => self.run::<2>(amps, parallel),
            2 => self.run::<4>(amps, parallel),
            3 => self.run::<8>(amps, parallel),
            4 => self.run::<16>(amps, parallel),
            5 => self.run::<32>(amps, parallel),
            6 => self.run::<64>(amps, parallel),
            _ => {
                // Fusion never builds blocks this large; keep a correct, slow path for completeness.
                let d = 1usize << self.qubits.len();
                let m: Vec<C64> = (0..d * d)
                    .map(|k| {
                        let (r, c) = (k / d, k % d);
                        C64::new(self.re[c * d + r], self.im[c * d + r])
                    })
                    .collect();
                apply_matrix_small(amps, &self.qubits, &m);
            }
        }
    }

    fn run<const D: usize>(&self, amps: &mut [C64], parallel: bool) {
        let (cols_re, _) = self.re.as_chunks::<D>();
        let (cols_im, _) = self.im.as_chunks::<D>();
        let (qubits, offsets) = (&self.qubits[..], &self.offsets[..]);
        let shared = SharedAmps(amps.as_mut_ptr());
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                for_each_range(amps.len() / D, parallel, move |range| {
                    // SAFETY: AVX2 and FMA are present (checked above); each group owns its D
                    // indices exclusively, as in `PermuteKernel::run`.
                    unsafe {
                        dense_groups_avx2::<D>(
                            shared.ptr(),
                            range,
                            qubits,
                            offsets,
                            cols_re,
                            cols_im,
                        )
                    }
                });
                return;
            }
        }
        for_each_range(amps.len() / D, parallel, move |range| {
            // SAFETY: as above.
            unsafe {
                dense_groups::<D, false>(shared.ptr(), range, qubits, offsets, cols_re, cols_im)
            }
        });
    }
}

/// `FMA` selects `mul_add`, which is one instruction where the FMA unit is enabled and a slow
/// library call where it is not.
#[inline(always)]
unsafe fn dense_groups<const D: usize, const FMA: bool>(
    amps: *mut C64,
    groups: Range<usize>,
    qubits: &[usize],
    offsets: &[usize],
    cols_re: &[[f64; D]],
    cols_im: &[[f64; D]],
) {
    for g in groups {
        // SAFETY: the caller guarantees every group's amplitudes (base plus each offset) lie inside
        // `amps` and belong to this call alone.
        let p = unsafe { amps.add(insert_zero_bits(g, qubits)) };
        let mut or = [0.0f64; D];
        let mut oi = [0.0f64; D];
        for c in 0..D {
            // SAFETY: inside the group, as above.
            let x = unsafe { *p.add(offsets[c]) };
            let (cr, ci) = (&cols_re[c], &cols_im[c]);
            for r in 0..D {
                if FMA {
                    or[r] = cr[r].mul_add(x.re, (-ci[r]).mul_add(x.im, or[r]));
                    oi[r] = cr[r].mul_add(x.im, ci[r].mul_add(x.re, oi[r]));
                } else {
                    or[r] += cr[r] * x.re - ci[r] * x.im;
                    oi[r] += cr[r] * x.im + ci[r] * x.re;
                }
            }
        }
        for r in 0..D {
            // SAFETY: inside the group, as above.
            unsafe { *p.add(offsets[r]) = C64::new(or[r], oi[r]) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_groups_avx2<const D: usize>(
    amps: *mut C64,
    groups: Range<usize>,
    qubits: &[usize],
    offsets: &[usize],
    cols_re: &[[f64; D]],
    cols_im: &[[f64; D]],
) {
    // SAFETY: the caller's guarantee is passed on unchanged; this wrapper only enables AVX2 + FMA.
    unsafe { dense_groups::<D, true>(amps, groups, qubits, offsets, cols_re, cols_im) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_zero_bits_spreads_indices() {
        assert_eq!(insert_zero_bits(0b11, &[0]), 0b110);
        assert_eq!(insert_zero_bits(0b11, &[1]), 0b101);
        assert_eq!(insert_zero_bits(0b111, &[0, 2]), 0b11010);
    }

    #[test]
    fn diagonal_kernel_uses_the_absolute_index() {
        // Qubit 13 is above the table's low bits; a slice starting at 2^13 has it set.
        let diag = [C64::new(1.0, 0.0), C64::new(0.0, 1.0)];
        let op = DiagonalKernel::new(vec![13], diag.to_vec());
        let mut amps = vec![C64::new(1.0, 0.0); 1 << 13];
        op.apply(&mut amps, 1 << 13, false);
        assert!(amps.iter().all(|a| *a == C64::new(0.0, 1.0)));
        op.apply(&mut amps, 0, true);
        assert!(amps.iter().all(|a| *a == C64::new(0.0, 1.0)));
    }
}
