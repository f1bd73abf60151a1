//! Reconstruction: fragment results back to the uncut circuit's distribution and expectations.
//!
//! Each wire cut inserts the identity `rho = 1/2 sum_P Tr(P rho) P` over P in {I, X, Y, Z}. For a
//! fragment, `T[K, L](y)` is its output distribution `y` with the Pauli labels `K` on its prepared
//! cuts and `L` on its measured cuts: measured cuts weight outcomes by the label's eigenvalue (I
//! reuses the Z circuit), prepared cuts combine the four preparations linearly
//! (`I = |0> + |1>`, `Z = |0> - |1>`, `X = 2|+> - |0> - |1>`, `Y = 2|+i> - |0> - |1>`). Then
//!
//! `p(x) = 2^-k sum_labels prod_f T_f[K_f, L_f](y_f(x))`,
//!
//! which costs `O(4^k 2^n)` for the full distribution and `O(4^k)` per Pauli expectation value.
//!
//! With sampled fragment results the same formulas give unbiased estimates; their standard errors
//! come from the delta method (exact for this multilinear estimator up to second-order terms) with
//! each variant's multinomial covariance. Entries of the estimate can be negative, and round-off
//! makes exact ones slightly negative too: they are reported raw, and [`project_to_simplex`] gives
//! the nearest probability distribution (Euclidean) on request.

use super::plan::CutPlan;
use super::variants::digits;
use crate::cancel::{Cancel, Cancelled};

/// Label assignments between two checks of the cancel flag.
const CANCEL_CHECK_EVERY: usize = 1 << 12;

/// Coefficient of preparation `s` (|0>, |1>, |+>, |+i>) in Pauli label `K` (I, X, Y, Z).
const PREP_COEFF: [[f64; 4]; 4] = [
    [1.0, 1.0, 0.0, 0.0],
    [-1.0, -1.0, 2.0, 0.0],
    [-1.0, -1.0, 0.0, 2.0],
    [1.0, -1.0, 0.0, 0.0],
];
/// Measurement basis (index into X, Y, Z) used for Pauli label I, X, Y, Z.
const LABEL_BASIS: [usize; 4] = [2, 0, 1, 2];

/// One fragment's variant results for one readout setting: `probs[s * 3^b + m]` is the
/// distribution over the fragment's local qubits for preparation index `s` and basis index `m`.
#[derive(Debug, Clone)]
pub struct FragmentResults {
    pub probs: Vec<Vec<f64>>,
    /// Shots behind each entry of `probs`; `None` for exact results.
    pub shots: Option<Vec<u64>>,
}

/// Where each local qubit of a fragment goes: which local bits are outputs (and to which original
/// qubit) and which are measured cuts.
#[derive(Debug, Clone)]
struct Layout {
    outputs: Vec<(usize, usize)>,
    measured: Vec<usize>,
    prepared_cuts: Vec<usize>,
    measured_cuts: Vec<usize>,
}

impl Layout {
    fn of(plan: &CutPlan, f: usize) -> Self {
        let frag = &plan.fragments[f];
        let measured = frag.measured_locals();
        Layout {
            outputs: frag.output_qubits(),
            measured,
            prepared_cuts: frag.prepared_cuts(),
            measured_cuts: frag.measured_cuts(),
        }
    }

    /// Splits a local outcome into (output bits y, measured-cut bits m).
    fn split(&self, o: usize) -> (usize, usize) {
        let y = self
            .outputs
            .iter()
            .enumerate()
            .map(|(j, &(l, _))| (o >> l & 1) << j)
            .sum();
        let m = self
            .measured
            .iter()
            .enumerate()
            .map(|(j, &l)| (o >> l & 1) << j)
            .sum();
        (y, m)
    }

    fn labels_in(&self) -> usize {
        4usize.pow(self.prepared_cuts.len() as u32)
    }

    fn labels_out(&self) -> usize {
        4usize.pow(self.measured_cuts.len() as u32)
    }

    /// Variant index of the basis setting that label index `l` (over measured cuts) reads.
    fn basis_index(&self, l: usize) -> usize {
        digits(l, 4, self.measured_cuts.len())
            .iter()
            .rev()
            .fold(0, |acc, &d| acc * 3 + LABEL_BASIS[d])
    }

    /// Eigenvalue weight of measured bits `m` under label index `l`.
    fn cut_weight(&self, l: usize, m: usize) -> f64 {
        let parity = digits(l, 4, self.measured_cuts.len())
            .iter()
            .enumerate()
            .filter(|&(j, &d)| d != 0 && m >> j & 1 == 1)
            .count();
        if parity % 2 == 1 {
            -1.0
        } else {
            1.0
        }
    }

    /// Coefficient of preparation index `s` in label index `k` (over prepared cuts).
    fn prep_coeff(&self, k: usize, s: usize) -> f64 {
        let a = self.prepared_cuts.len();
        digits(k, 4, a)
            .iter()
            .zip(digits(s, 4, a))
            .map(|(&kd, sd)| PREP_COEFF[kd][sd])
            .product()
    }

    fn num_bases(&self) -> usize {
        3usize.pow(self.measured_cuts.len() as u32)
    }
}

/// `T[K, L](y)` of every fragment, flattened as `((K * labels_out) + L) * 2^outputs + y`.
fn fragment_tensor(layout: &Layout, results: &FragmentResults) -> Vec<f64> {
    let (nk, nl) = (layout.labels_in(), layout.labels_out());
    let ny = 1usize << layout.outputs.len();
    let nb = layout.num_bases();
    // M[s, L](y): measured cuts folded in.
    let mut folded = vec![0.0; nk * nl * ny];
    for s in 0..nk {
        for l in 0..nl {
            let q = &results.probs[s * nb + layout.basis_index(l)];
            let row = &mut folded[(s * nl + l) * ny..(s * nl + l + 1) * ny];
            for (o, &p) in q.iter().enumerate() {
                if p != 0.0 {
                    let (y, m) = layout.split(o);
                    row[y] += layout.cut_weight(l, m) * p;
                }
            }
        }
    }
    // T[K, L](y) = sum_s c_K(s) M[s, L](y).
    let mut t = vec![0.0; nk * nl * ny];
    for k in 0..nk {
        for s in 0..nk {
            let c = layout.prep_coeff(k, s);
            if c == 0.0 {
                continue;
            }
            for l in 0..nl {
                let src = &folded[(s * nl + l) * ny..(s * nl + l + 1) * ny];
                let dst = &mut t[(k * nl + l) * ny..(k * nl + l + 1) * ny];
                for (d, v) in dst.iter_mut().zip(src) {
                    *d += c * v;
                }
            }
        }
    }
    t
}

/// Label indices (K, L) of every fragment for one global assignment of labels to cuts, written
/// into `out` (no allocation: this runs once per assignment, `4^k` times).
fn fragment_labels(layouts: &[Layout], cut_labels: &[usize], out: &mut [(usize, usize)]) {
    for (lay, slot) in layouts.iter().zip(out.iter_mut()) {
        let k = lay
            .prepared_cuts
            .iter()
            .rev()
            .fold(0, |acc, &c| acc * 4 + cut_labels[c]);
        let l = lay
            .measured_cuts
            .iter()
            .rev()
            .fold(0, |acc, &c| acc * 4 + cut_labels[c]);
        *slot = (k, l);
    }
}

/// Everything the sums over cut labels need: each fragment's layout and tensor. The `4^k` label
/// assignments are enumerated on the fly ([`Contraction::for_each_assignment`]), never stored:
/// a table of them would cost `16 * 4^k` bytes per fragment.
struct Contraction {
    layouts: Vec<Layout>,
    tensors: Vec<Vec<f64>>,
    cuts: usize,
    scale: f64,
}

impl Contraction {
    fn new(plan: &CutPlan, results: &[FragmentResults]) -> Self {
        let layouts: Vec<Layout> = (0..plan.fragments.len())
            .map(|f| Layout::of(plan, f))
            .collect();
        let tensors = layouts
            .iter()
            .zip(results)
            .map(|(l, r)| fragment_tensor(l, r))
            .collect();
        let k = plan.cuts.len();
        Self {
            layouts,
            tensors,
            cuts: k,
            scale: 0.5f64.powi(k as i32),
        }
    }

    /// Calls `visit` with the (K, L) labels of every fragment, for each of the `4^k` assignments
    /// of Pauli labels to cuts (an odometer over the cut labels), checking `cancel` as it goes.
    fn for_each_assignment(
        &self,
        cancel: &Cancel,
        mut visit: impl FnMut(&[(usize, usize)]),
    ) -> Result<(), Cancelled> {
        let mut cut_labels = vec![0usize; self.cuts];
        let mut labels = vec![(0, 0); self.layouts.len()];
        for step in 0usize.. {
            if step % CANCEL_CHECK_EVERY == 0 {
                cancel.check()?;
            }
            fragment_labels(&self.layouts, &cut_labels, &mut labels);
            visit(&labels);
            let Some(c) = cut_labels.iter().position(|&d| d < 3) else {
                break;
            };
            cut_labels[..c].fill(0);
            cut_labels[c] += 1;
        }
        Ok(())
    }

    /// Row `T_f[K, L](.)` of fragment `f`.
    fn row(&self, f: usize, (k, l): (usize, usize)) -> &[f64] {
        let lay = &self.layouts[f];
        let ny = 1usize << lay.outputs.len();
        let at = (k * lay.labels_out() + l) * ny;
        &self.tensors[f][at..at + ny]
    }

    /// `sum_labels scale * prod_f e_f[K_f, L_f]` for per-fragment scalars `e_f` (indexed
    /// `K * labels_out + L`), and its gradient with respect to every `e_f`.
    fn sum_of_products(
        &self,
        cancel: &Cancel,
        scalars: impl Fn(usize, (usize, usize)) -> f64,
    ) -> Result<(f64, Vec<Vec<f64>>), Cancelled> {
        let nf = self.layouts.len();
        let mut value = 0.0;
        let mut grad: Vec<Vec<f64>> = self
            .layouts
            .iter()
            .map(|l| vec![0.0; l.labels_in() * l.labels_out()])
            .collect();
        let mut factors = vec![0.0; nf];
        self.for_each_assignment(cancel, |fl| {
            for f in 0..nf {
                factors[f] = scalars(f, fl[f]);
            }
            value += self.scale * factors.iter().product::<f64>();
            for f in 0..nf {
                let others: f64 = (0..nf).filter(|&g| g != f).map(|g| factors[g]).product();
                grad[f][fl[f].0 * self.layouts[f].labels_out() + fl[f].1] += self.scale * others;
            }
        })?;
        Ok((value, grad))
    }
}

/// The full probability distribution over the original qubits (index as in the simulator).
pub fn distribution(
    plan: &CutPlan,
    results: &[FragmentResults],
    cancel: &Cancel,
) -> Result<Vec<f64>, Cancelled> {
    let c = Contraction::new(plan, results);
    let out_maps: Vec<Vec<usize>> = c.layouts.iter().map(output_map).collect();
    let mut p = vec![0.0; 1usize << plan.num_qubits];
    let mut slices: Vec<&[f64]> = Vec::with_capacity(c.layouts.len());
    c.for_each_assignment(cancel, |fl| {
        slices.clear();
        slices.extend((0..c.layouts.len()).map(|f| c.row(f, fl[f])));
        scatter_product(&slices, &out_maps, 0, 0, c.scale, &mut p);
    })?;
    Ok(p)
}

/// Original-qubit index bits of each fragment output value `y`.
fn output_map(layout: &Layout) -> Vec<usize> {
    (0..1usize << layout.outputs.len())
        .map(|y| {
            layout
                .outputs
                .iter()
                .enumerate()
                .map(|(j, &(_, q))| (y >> j & 1) << q)
                .sum()
        })
        .collect()
}

fn scatter_product(
    slices: &[&[f64]],
    maps: &[Vec<usize>],
    level: usize,
    index: usize,
    weight: f64,
    p: &mut [f64],
) {
    if level == slices.len() {
        p[index] += weight;
        return;
    }
    for (y, &v) in slices[level].iter().enumerate() {
        if v != 0.0 {
            scatter_product(
                slices,
                maps,
                level + 1,
                index | maps[level][y],
                weight * v,
                p,
            );
        }
    }
}

/// Expectation values of Pauli terms that share one readout setting (each term given by the mask
/// of its non-identity letters on the original qubits), from fragment results taken with that
/// setting's readout bases (X or Y outputs rotated, Z and I read as is). Returns every term's
/// value and, for sampled results, the standard error of `sum_i coeff_i <P_i>`.
pub fn expectation_terms(
    plan: &CutPlan,
    results: &[FragmentResults],
    terms: &[(f64, usize)],
    cancel: &Cancel,
) -> Result<(Vec<f64>, Option<f64>), Cancelled> {
    let c = Contraction::new(plan, results);
    let mut values = Vec::with_capacity(terms.len());
    // Per term and fragment: d<P>/d e_f[K, L].
    let mut grads: Vec<Vec<Vec<f64>>> = Vec::with_capacity(terms.len());
    for &(_, pauli_mask) in terms {
        let masks: Vec<usize> = c
            .layouts
            .iter()
            .map(|l| fragment_mask(l, pauli_mask))
            .collect();
        // e_f[K, L] = sum_y T_f[K, L](y) * eigenvalue(y).
        let (value, grad) = c.sum_of_products(cancel, |f, kl| {
            c.row(f, kl)
                .iter()
                .enumerate()
                .map(|(y, v)| eigen(y, masks[f]) * v)
                .sum()
        })?;
        values.push(value);
        grads.push(grad);
    }
    let stderr = results.iter().all(|r| r.shots.is_some()).then(|| {
        let variance: f64 = c
            .layouts
            .iter()
            .enumerate()
            .map(|(f, lay)| {
                let parts: Vec<Term> = terms
                    .iter()
                    .zip(&grads)
                    .map(|(&(coeff, mask), g)| Term {
                        coeff,
                        grad: &g[f],
                        mask: fragment_mask(lay, mask),
                    })
                    .collect();
                fragment_variance(lay, &results[f], &parts, None)
            })
            .sum();
        variance.sqrt()
    });
    Ok((values, stderr))
}

fn fragment_mask(layout: &Layout, pauli_mask: usize) -> usize {
    layout
        .outputs
        .iter()
        .enumerate()
        .filter(|(_, &(_, q))| pauli_mask >> q & 1 == 1)
        .map(|(j, _)| 1 << j)
        .sum()
}

fn eigen(y: usize, mask: usize) -> f64 {
    if (y & mask).count_ones() % 2 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// One term of a quantity whose variance is wanted: its coefficient, its gradient with respect to
/// `e_f[K, L]`, and the fragment-local eigenvalue mask on output bits.
struct Term<'a> {
    coeff: f64,
    grad: &'a [f64],
    mask: usize,
}

/// Delta-method variance contributed by one fragment's sampled variants to `sum_i coeff_i Q_i`,
/// where `Q_i` depends on the variant distributions through `e_f[K, L] = sum_o c_K(s) w_L(m(o))
/// eig_i(y(o)) q_{s, b(L)}(o)` with gradient `grad_i`. With `only_y`, outcomes whose output part
/// differs carry no weight (one entry `p(x)` of the distribution).
fn fragment_variance(
    layout: &Layout,
    results: &FragmentResults,
    terms: &[Term],
    only_y: Option<usize>,
) -> f64 {
    let Some(shots) = &results.shots else {
        return 0.0;
    };
    let (nk, nl, nb) = (layout.labels_in(), layout.labels_out(), layout.num_bases());
    let mut variance = 0.0;
    for s in 0..nk {
        // H_i[L] = sum_K c_K(s) grad_i[K, L].
        let h: Vec<Vec<f64>> = terms
            .iter()
            .map(|t| {
                (0..nl)
                    .map(|l| {
                        (0..nk)
                            .map(|k| layout.prep_coeff(k, s) * t.grad[k * nl + l])
                            .sum()
                    })
                    .collect()
            })
            .collect();
        for b in 0..nb {
            let v = s * nb + b;
            let n = shots[v];
            if n == 0 {
                continue;
            }
            let labels: Vec<usize> = (0..nl).filter(|&l| layout.basis_index(l) == b).collect();
            let (mut mean, mut square) = (0.0, 0.0);
            for (o, &q) in results.probs[v].iter().enumerate() {
                if q == 0.0 {
                    continue;
                }
                let (y, m) = layout.split(o);
                if only_y.is_some_and(|want| want != y) {
                    continue;
                }
                let g: f64 = terms
                    .iter()
                    .zip(&h)
                    .map(|(t, hi)| {
                        t.coeff
                            * eigen(y, t.mask)
                            * labels
                                .iter()
                                .map(|&l| layout.cut_weight(l, m) * hi[l])
                                .sum::<f64>()
                    })
                    .sum();
                mean += q * g;
                square += q * g * g;
            }
            variance += (square - mean * mean).max(0.0) / n as f64;
        }
    }
    variance
}

/// Standard error of every entry of the reconstructed distribution (delta method); cost
/// `O(2^n 4^k)` on top of the reconstruction.
pub fn distribution_stderr(
    plan: &CutPlan,
    results: &[FragmentResults],
    cancel: &Cancel,
) -> Result<Vec<f64>, Cancelled> {
    let c = Contraction::new(plan, results);
    (0..1usize << plan.num_qubits)
        .map(|x| {
            let ys: Vec<usize> = c
                .layouts
                .iter()
                .map(|lay| {
                    lay.outputs
                        .iter()
                        .enumerate()
                        .map(|(j, &(_, q))| (x >> q & 1) << j)
                        .sum()
                })
                .collect();
            let (_, grad) = c.sum_of_products(cancel, |f, kl| c.row(f, kl)[ys[f]])?;
            let variance: f64 = (0..c.layouts.len())
                .map(|f| {
                    let term = Term {
                        coeff: 1.0,
                        grad: &grad[f],
                        mask: 0,
                    };
                    fragment_variance(&c.layouts[f], &results[f], &[term], Some(ys[f]))
                })
                .sum();
            Ok(variance.sqrt())
        })
        .collect()
}

/// The probability distribution nearest (in Euclidean distance) to `p`: the projection onto the
/// simplex (sort-based, O(N log N)).
pub fn project_to_simplex(p: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = p.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    let mut theta = 0.0;
    for (i, &v) in sorted.iter().enumerate() {
        cumulative += v;
        let t = (cumulative - 1.0) / (i + 1) as f64;
        if v - t > 0.0 {
            theta = t;
        }
    }
    p.iter().map(|&v| (v - theta).max(0.0)).collect()
}
