//! The kernels: one pass over a slice of amplitudes for a diagonal, monomial or dense op.
//!
//! Every kernel works on any power-of-two slice that covers whole groups of the op (all indices
//! that differ only in the op's qubits), with `base` the absolute index of the slice's first
//! amplitude; that lets the executor run a batch of ops chunk by chunk while a chunk sits in cache.

use num_complex::Complex64 as C64;
use rayon::prelude::*;

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

/// Calls `body(group_index)` for every group, in parallel chunks when asked.
#[inline(always)]
fn for_each_group(num_groups: usize, parallel: bool, body: impl Fn(usize) + Sync + Send) {
    if parallel && num_groups >= 2 * GROUPS_PER_TASK {
        (0..num_groups.div_ceil(GROUPS_PER_TASK))
            .into_par_iter()
            .for_each(|task| {
                let start = task * GROUPS_PER_TASK;
                let end = (start + GROUPS_PER_TASK).min(num_groups);
                (start..end).for_each(&body);
            });
    } else {
        (0..num_groups).for_each(body);
    }
}

/// Multiplies amplitude `i` by `diag[local(i)]`; `base` is the absolute index of `amps[0]`.
pub fn apply_diagonal(
    amps: &mut [C64],
    base: usize,
    qubits: &[usize],
    diag: &[C64],
    parallel: bool,
) {
    if amps.len() <= 1 << DIAG_STEP_BITS && qubits.iter().all(|&q| 1 << q < amps.len()) {
        // Small state: walk the groups; building the lookup table would cost as much as the op.
        let offsets = local_offsets(qubits);
        for g in 0..amps.len() >> qubits.len() {
            let start = insert_zero_bits(g, qubits);
            for (off, d) in offsets.iter().zip(diag) {
                amps[start + off] *= d;
            }
        }
        return;
    }
    let step_bits = DIAG_STEP_BITS.min(amps.len().trailing_zeros() as usize);
    let step = 1usize << step_bits;
    // Local-index bits contributed by the low `step_bits` bits of an index, for every offset.
    let low: Vec<(usize, usize)> = qubits
        .iter()
        .enumerate()
        .filter(|(_, &q)| q < step_bits)
        .map(|(b, &q)| (b, q))
        .collect();
    let high: Vec<(usize, usize)> = qubits
        .iter()
        .enumerate()
        .filter(|(_, &q)| q >= step_bits)
        .map(|(b, &q)| (b, q))
        .collect();
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

/// Local basis state `j` moves to `target[j]` with factor `phase[j]`.
pub fn apply_monomial(
    amps: &mut [C64],
    qubits: &[usize],
    target: &[usize],
    phase: &[C64],
    parallel: bool,
) {
    match qubits.len() {
        1 => monomial_kernel::<2>(amps, qubits, target, phase, parallel),
        2 => monomial_kernel::<4>(amps, qubits, target, phase, parallel),
        3 => monomial_kernel::<8>(amps, qubits, target, phase, parallel),
        4 => monomial_kernel::<16>(amps, qubits, target, phase, parallel),
        5 => monomial_kernel::<32>(amps, qubits, target, phase, parallel),
        6 => monomial_kernel::<64>(amps, qubits, target, phase, parallel),
        7 => monomial_kernel::<128>(amps, qubits, target, phase, parallel),
        8 => monomial_kernel::<256>(amps, qubits, target, phase, parallel),
        k => {
            let d = 1usize << k;
            let mut m = vec![C64::new(0.0, 0.0); d * d];
            for c in 0..d {
                m[target[c] * d + c] = phase[c];
            }
            apply_matrix_small(amps, qubits, &m);
        }
    }
}

fn monomial_kernel<const D: usize>(
    amps: &mut [C64],
    qubits: &[usize],
    target: &[usize],
    phase: &[C64],
    parallel: bool,
) {
    let offsets = local_offsets(qubits);
    let dest: Vec<usize> = target.iter().map(|&t| offsets[t]).collect();
    let (offsets, dest) = (&offsets[..], &dest[..]);
    let shared = SharedAmps(amps.as_mut_ptr());
    let num_groups = amps.len() / D;
    for_each_group(num_groups, parallel, move |g| {
        let base = insert_zero_bits(g, qubits);
        let mut v = [C64::new(0.0, 0.0); D];
        // SAFETY: group `g` owns exactly the indices base + offsets[j], all < amps.len() because the
        // slice covers whole groups, and no other group shares one of them.
        unsafe {
            let p = shared.ptr().add(base);
            for j in 0..D {
                v[j] = *p.add(offsets[j]);
            }
            for j in 0..D {
                *p.add(dest[j]) = v[j] * phase[j];
            }
        }
    });
}

/// Dense matrix stored column-major (`matrix[c * d + r]`).
pub fn apply_dense(amps: &mut [C64], qubits: &[usize], matrix: &[C64], parallel: bool) {
    match qubits.len() {
        1 => dense_kernel::<2>(amps, qubits, matrix, parallel),
        2 => dense_kernel::<4>(amps, qubits, matrix, parallel),
        3 => dense_kernel::<8>(amps, qubits, matrix, parallel),
        4 => dense_kernel::<16>(amps, qubits, matrix, parallel),
        5 => dense_kernel::<32>(amps, qubits, matrix, parallel),
        6 => dense_kernel::<64>(amps, qubits, matrix, parallel),
        _ => {
            // Fusion never builds blocks this large; keep a correct, slow path for completeness.
            let d = 1usize << qubits.len();
            let mut row_major = vec![C64::new(0.0, 0.0); d * d];
            for c in 0..d {
                for r in 0..d {
                    row_major[r * d + c] = matrix[c * d + r];
                }
            }
            apply_matrix_small(amps, qubits, &row_major);
        }
    }
}

/// Dense `D x D` kernel with the matrix split into real and imaginary column planes, so the inner
/// loop runs over `D` independent rows and vectorises; an AVX2+FMA build is picked at run time.
fn dense_kernel<const D: usize>(
    amps: &mut [C64],
    qubits: &[usize],
    matrix: &[C64],
    parallel: bool,
) {
    let offsets = local_offsets(qubits);
    let mut cols_re = vec![[0.0f64; D]; D];
    let mut cols_im = vec![[0.0f64; D]; D];
    for c in 0..D {
        for r in 0..D {
            cols_re[c][r] = matrix[c * D + r].re;
            cols_im[c][r] = matrix[c * D + r].im;
        }
    }
    let (offsets, cols_re, cols_im) = (&offsets[..], &cols_re[..], &cols_im[..]);
    let shared = SharedAmps(amps.as_mut_ptr());
    let num_groups = amps.len() / D;
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            for_each_group(num_groups, parallel, move |g| {
                let base = insert_zero_bits(g, qubits);
                // SAFETY: AVX2 and FMA are present (checked above); group `g` owns its D indices
                // exclusively, as in `monomial_kernel`.
                unsafe { dense_group_avx2::<D>(shared.ptr().add(base), offsets, cols_re, cols_im) }
            });
            return;
        }
    }
    for_each_group(num_groups, parallel, move |g| {
        let base = insert_zero_bits(g, qubits);
        // SAFETY: as above.
        unsafe { dense_group::<D, false>(shared.ptr().add(base), offsets, cols_re, cols_im) }
    });
}

/// `FMA` selects `mul_add`, which is one instruction where the FMA unit is enabled and a slow
/// library call where it is not.
#[inline(always)]
unsafe fn dense_group<const D: usize, const FMA: bool>(
    p: *mut C64,
    offsets: &[usize],
    cols_re: &[[f64; D]],
    cols_im: &[[f64; D]],
) {
    let mut or = [0.0f64; D];
    let mut oi = [0.0f64; D];
    for c in 0..D {
        let x = *p.add(offsets[c]);
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
        *p.add(offsets[r]) = C64::new(or[r], oi[r]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_group_avx2<const D: usize>(
    p: *mut C64,
    offsets: &[usize],
    cols_re: &[[f64; D]],
    cols_im: &[[f64; D]],
) {
    dense_group::<D, true>(p, offsets, cols_re, cols_im)
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
        let mut amps = vec![C64::new(1.0, 0.0); 1 << 13];
        apply_diagonal(&mut amps, 1 << 13, &[13], &diag, false);
        assert!(amps.iter().all(|a| *a == C64::new(0.0, 1.0)));
        apply_diagonal(&mut amps, 0, &[13], &diag, true);
        assert!(amps.iter().all(|a| *a == C64::new(0.0, 1.0)));
    }
}
