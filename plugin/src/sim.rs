//! State-vector simulation (complex f64): gate fusion, specialised kernels, rayon parallelism.
//!
//! Hand-written because the hot loops are the product: no Rust crate offers a fused, parallel
//! state-vector engine. A circuit is first compiled into a short list of [`Op`]s: runs of gates on a
//! few qubits are multiplied into one matrix ([`fuse`]), which is then classified as diagonal,
//! monomial (a permutation with phases: X, CX, SWAP, CCX, ...) or dense, each with its own kernel.
//! Every kernel makes one pass over the amplitudes; the memory traffic, not the arithmetic, bounds
//! most circuits above ~20 qubits, so fewer passes is the main lever.
//!
//! Memory is checked before anything is allocated: a state needs `16 * 2^n` bytes.

use crate::circuit::{identity, Circuit, Instruction};
use crate::pauli::{PauliError, PauliString};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

type C64 = Complex64;

/// Largest qubit count the simulator will ever consider (2^50 amplitudes is 16 PiB).
pub const MAX_QUBITS: usize = 50;
/// Below this many qubits a state fits in L1/L2 cache and threads cost more than they save.
const PARALLEL_MIN_QUBITS: usize = 14;
/// Amplitude groups handed to one rayon task.
const GROUPS_PER_TASK: usize = 1 << 11;

#[derive(Debug, Error, PartialEq)]
pub enum SimError {
    #[error(
        "a {num_qubits}-qubit state needs {} of memory but only {} is available; \
         cut the circuit (quargo cut) or use fewer qubits",
        human_bytes(*needed),
        human_bytes(*available)
    )]
    TooLarge {
        num_qubits: usize,
        needed: u128,
        available: u128,
    },
    #[error("cannot build a thread pool with {threads} threads: {message}")]
    ThreadPool { threads: usize, message: String },
    #[error(transparent)]
    Pauli(#[from] PauliError),
}

fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Bytes of memory available to a new state: `MemAvailable` from `/proc/meminfo` where readable.
pub fn available_memory() -> u128 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u128>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// Bytes needed for the state of `num_qubits` qubits.
pub fn state_bytes(num_qubits: usize) -> u128 {
    16u128 << num_qubits.min(100)
}

/// Simulator settings. Cheap to clone; the thread pool is shared.
#[derive(Clone, Default)]
pub struct Simulator {
    pool: Option<Arc<rayon::ThreadPool>>,
    memory_limit: Option<u128>,
    fusion: Option<FusionLimits>,
}

impl Simulator {
    /// A simulator on rayon's global pool, with memory checked against what the system has free.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs on a private pool of `threads` threads (0 means rayon's default).
    pub fn with_threads(mut self, threads: usize) -> Result<Self, SimError> {
        if threads == 0 {
            self.pool = None;
            return Ok(self);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| SimError::ThreadPool {
                threads,
                message: e.to_string(),
            })?;
        self.pool = Some(Arc::new(pool));
        Ok(self)
    }

    /// Caps the state size in bytes (default: the system's available memory).
    pub fn with_memory_limit(mut self, bytes: u128) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Overrides the fusion limits (mainly for tests and benchmarks).
    pub fn with_fusion(mut self, limits: FusionLimits) -> Self {
        self.fusion = Some(limits);
        self
    }

    /// Fails with [`SimError::TooLarge`] when a state of `num_qubits` would not fit.
    pub fn check_memory(&self, num_qubits: usize) -> Result<(), SimError> {
        let needed = state_bytes(num_qubits);
        let available = self.memory_limit.unwrap_or_else(available_memory);
        if num_qubits > MAX_QUBITS || needed > available {
            return Err(SimError::TooLarge {
                num_qubits,
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Simulates the circuit from |0...0> and returns the final state.
    pub fn run(&self, circuit: &Circuit) -> Result<StateVector, SimError> {
        let n = circuit.num_qubits();
        self.check_memory(n)?;
        let limits = self.fusion.unwrap_or_else(|| FusionLimits::for_qubits(n));
        let work = || {
            let ops = fuse(circuit.instructions(), limits);
            let mut state = StateVector::zero_state(n);
            let parallel = n >= PARALLEL_MIN_QUBITS;
            for op in &ops {
                op.apply(&mut state.amps, parallel);
            }
            state
        };
        Ok(match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        })
    }

    /// Runs `f` on this simulator's pool, so its rayon work uses the configured thread count.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

/// How far gates are merged, by the kind of the merged matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusionLimits {
    /// Most qubits of a dense fused block (its cost grows as 4^k per group of 2^k amplitudes).
    pub dense: usize,
    /// Most qubits of a diagonal or monomial block (cost stays one pass whatever k).
    pub sparse: usize,
}

impl FusionLimits {
    /// No fusion: one op per gate.
    pub const NONE: FusionLimits = FusionLimits {
        dense: 0,
        sparse: 0,
    };

    /// Defaults tuned on a 2-core machine (`make bench-sim`): small states are cache resident, so
    /// merging only pays for large ones.
    pub fn for_qubits(n: usize) -> Self {
        if n < 12 {
            FusionLimits {
                dense: 2,
                sparse: 3,
            }
        } else {
            FusionLimits {
                dense: 4,
                sparse: 8,
            }
        }
    }
}

/// A state vector over `num_qubits` qubits; amplitude `i` belongs to basis state `i` (qubit 0 is
/// the least significant bit).
#[derive(Debug, Clone, PartialEq)]
pub struct StateVector {
    num_qubits: usize,
    amps: Vec<C64>,
}

impl StateVector {
    /// |0...0>.
    pub fn zero_state(num_qubits: usize) -> Self {
        let mut amps = vec![C64::new(0.0, 0.0); 1usize << num_qubits];
        amps[0] = C64::new(1.0, 0.0);
        Self { num_qubits, amps }
    }

    pub fn num_qubits(&self) -> usize {
        self.num_qubits
    }

    pub fn amplitudes(&self) -> &[C64] {
        &self.amps
    }

    /// |amplitude|^2 for every basis state.
    pub fn probabilities(&self) -> Vec<f64> {
        if self.num_qubits >= PARALLEL_MIN_QUBITS {
            self.amps.par_iter().map(|a| a.norm_sqr()).collect()
        } else {
            self.amps.iter().map(|a| a.norm_sqr()).collect()
        }
    }

    /// Draws `shots` samples of all qubits with a seeded, portable generator (ChaCha8).
    ///
    /// Returns counts per basis-state index. Sorting the uniforms and sweeping the cumulative
    /// distribution once costs O(2^n + shots log shots), whatever the number of shots.
    pub fn sample(&self, shots: u64, seed: u64) -> BTreeMap<usize, u64> {
        sample_distribution(&self.probabilities(), shots, seed)
    }

    /// <psi|P|psi> for a Pauli string over all qubits.
    pub fn expectation(&self, pauli: &PauliString) -> Result<f64, SimError> {
        pauli.check_width(self.num_qubits)?;
        let (flip, sign, ny) = pauli.masks();
        let term = |i: usize| -> f64 {
            let a = self.amps[i];
            let b = self.amps[i ^ flip];
            let v = b.conj() * a;
            if (i & sign).count_ones() % 2 == 1 {
                -v.re_im_for(ny)
            } else {
                v.re_im_for(ny)
            }
        };
        let n = self.amps.len();
        Ok(if self.num_qubits >= PARALLEL_MIN_QUBITS {
            (0..n).into_par_iter().map(term).sum()
        } else {
            (0..n).map(term).sum()
        })
    }
}

/// Real part of `i^ny * v`: the expectation is real, so only that part is summed.
trait RealPartTimesIPower {
    fn re_im_for(self, ny: u32) -> f64;
}

impl RealPartTimesIPower for C64 {
    fn re_im_for(self, ny: u32) -> f64 {
        match ny % 4 {
            0 => self.re,
            1 => -self.im,
            2 => -self.re,
            _ => self.im,
        }
    }
}

/// Samples indices from a (nearly) normalised distribution; negative entries count as zero.
pub fn sample_distribution(probs: &[f64], shots: u64, seed: u64) -> BTreeMap<usize, u64> {
    let mut counts = BTreeMap::new();
    let total: f64 = probs.iter().map(|p| p.max(0.0)).sum();
    if shots == 0 || total <= 0.0 {
        return counts;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draws: Vec<f64> = (0..shots).map(|_| rng.random::<f64>() * total).collect();
    draws.sort_unstable_by(f64::total_cmp);
    let mut cumulative = 0.0;
    let mut next = 0usize;
    let last_nonzero = probs.iter().rposition(|&p| p > 0.0).unwrap_or(0);
    for (i, &p) in probs.iter().enumerate() {
        cumulative += p.max(0.0);
        let start = next;
        while next < draws.len() && (draws[next] < cumulative || i == last_nonzero) {
            next += 1;
        }
        if next > start {
            counts.insert(i, (next - start) as u64);
        }
        if next == draws.len() {
            break;
        }
    }
    counts
}

/// A compiled operation on the state.
#[derive(Debug, Clone)]
pub enum Op {
    /// Multiply amplitude `i` by `diag[local(i)]`.
    Diagonal { qubits: Vec<usize>, diag: Vec<C64> },
    /// Local basis state `j` goes to `target[j]` with factor `phase[j]`.
    Monomial {
        qubits: Vec<usize>,
        target: Vec<usize>,
        phase: Vec<C64>,
    },
    /// Dense matrix, stored column-major (`matrix[c * d + r]`) so the kernel vectorises over rows.
    Dense {
        qubits: Vec<usize>,
        matrix: Vec<C64>,
    },
}

impl Op {
    pub fn qubits(&self) -> &[usize] {
        match self {
            Op::Diagonal { qubits, .. }
            | Op::Monomial { qubits, .. }
            | Op::Dense { qubits, .. } => qubits,
        }
    }

    /// Builds the cheapest op for a matrix on sorted `qubits` (row-major, little-endian).
    pub fn from_matrix(qubits: Vec<usize>, m: &[C64]) -> Op {
        let d = 1usize << qubits.len();
        let is_zero = |r: usize, c: usize| m[r * d + c] == C64::new(0.0, 0.0);
        if (0..d).all(|r| (0..d).all(|c| r == c || is_zero(r, c))) {
            return Op::Diagonal {
                qubits,
                diag: (0..d).map(|k| m[k * d + k]).collect(),
            };
        }
        let single_row = |c: usize| {
            let mut rows = (0..d).filter(|&r| !is_zero(r, c));
            match (rows.next(), rows.next()) {
                (Some(r), None) => Some(r),
                _ => None,
            }
        };
        let targets: Option<Vec<usize>> = (0..d).map(single_row).collect();
        if let Some(target) = targets {
            let phase = (0..d).map(|c| m[target[c] * d + c]).collect();
            return Op::Monomial {
                qubits,
                target,
                phase,
            };
        }
        let mut matrix = vec![C64::new(0.0, 0.0); d * d];
        for r in 0..d {
            for c in 0..d {
                matrix[c * d + r] = m[r * d + c];
            }
        }
        Op::Dense { qubits, matrix }
    }

    /// Applies the op to a full state vector.
    pub fn apply(&self, amps: &mut [C64], parallel: bool) {
        match self {
            Op::Diagonal { qubits, diag } => apply_diagonal(amps, qubits, diag, parallel),
            Op::Monomial {
                qubits,
                target,
                phase,
            } => apply_monomial(amps, qubits, target, phase, parallel),
            Op::Dense { qubits, matrix } => apply_dense(amps, qubits, matrix, parallel),
        }
    }
}

/// A block of gates being fused: the sorted qubits it touches and its gates in order.
struct Block<'a> {
    qubits: Vec<usize>,
    gates: Vec<&'a Instruction>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Diagonal,
    Monomial,
    Dense,
}

fn gate_kind(i: &Instruction) -> Kind {
    if i.gate.is_diagonal() {
        Kind::Diagonal
    } else if i.gate.is_monomial() {
        Kind::Monomial
    } else {
        Kind::Dense
    }
}

/// Compiles a gate list into ops, merging gates into blocks of at most the given qubit counts.
///
/// Blocks stay open while no later gate blocks them; a gate joins the open blocks it touches when
/// the union is small enough (disjoint open blocks commute, so merging them is exact), otherwise
/// those blocks are emitted first and the gate opens a new one.
pub fn fuse(instructions: &[Instruction], limits: FusionLimits) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut open: Vec<Block> = Vec::new();
    for inst in instructions {
        let touched: Vec<usize> = (0..open.len())
            .filter(|&b| open[b].qubits.iter().any(|q| inst.qubits.contains(q)))
            .collect();
        let mut qubits: Vec<usize> = inst.qubits.clone();
        let mut kind = gate_kind(inst);
        for &b in &touched {
            qubits.extend_from_slice(&open[b].qubits);
            kind = kind.max(open[b].kind);
        }
        qubits.sort_unstable();
        qubits.dedup();
        let limit = match kind {
            Kind::Dense => limits.dense,
            _ => limits.sparse,
        };
        // Merged: concatenate the touched blocks (in any order, they are disjoint) plus the gate.
        let mut merged_gates = Vec::new();
        for &b in touched.iter().rev() {
            let block = open.swap_remove(b);
            if qubits.len() <= limit {
                merged_gates.extend(block.gates);
            } else {
                ops.push(block_op(&block));
            }
        }
        if qubits.len() > limit {
            qubits = inst.qubits.clone();
            qubits.sort_unstable();
            kind = gate_kind(inst);
        }
        merged_gates.push(inst);
        open.push(Block {
            qubits,
            gates: merged_gates,
            kind,
        });
    }
    ops.extend(open.iter().map(block_op));
    ops
}

fn block_op(block: &Block) -> Op {
    let k = block.qubits.len();
    let d = 1usize << k;
    // Columns of the block's unitary: apply each gate to every basis column.
    let mut cols = identity(d); // column c stored at cols[c*d..]: identity is symmetric.
    for inst in &block.gates {
        let local: Vec<usize> = inst
            .qubits
            .iter()
            .map(|q| block.qubits.iter().position(|b| b == q).unwrap_or(0))
            .collect();
        let gm = inst.gate.matrix();
        for col in cols.chunks_mut(d) {
            apply_matrix_small(col, &local, &gm);
        }
    }
    let mut m = vec![C64::new(0.0, 0.0); d * d];
    for c in 0..d {
        for r in 0..d {
            m[r * d + c] = cols[c * d + r];
        }
    }
    Op::from_matrix(block.qubits.clone(), &m)
}

/// Applies a row-major matrix on `qubits` (argument order, little-endian) to a small state, serially.
pub fn apply_matrix_small(state: &mut [C64], qubits: &[usize], m: &[C64]) {
    let k = qubits.len();
    let d = 1usize << k;
    let offsets: Vec<usize> = (0..d)
        .map(|j| {
            (0..k)
                .filter(|&b| j >> b & 1 == 1)
                .map(|b| 1usize << qubits[b])
                .sum()
        })
        .collect();
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

/// Spreads the bits of `g` so that a zero sits at each of the sorted positions.
#[inline(always)]
fn insert_zero_bits(mut g: usize, sorted_qubits: &[usize]) -> usize {
    for &q in sorted_qubits {
        let low = g & ((1usize << q) - 1);
        g = ((g >> q) << (q + 1)) | low;
    }
    g
}

fn local_offsets(qubits: &[usize]) -> Vec<usize> {
    let d = 1usize << qubits.len();
    (0..d)
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

/// Calls `body(group_index)` for every group of `2^k` amplitudes, in parallel chunks when asked.
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

fn apply_diagonal(amps: &mut [C64], qubits: &[usize], diag: &[C64], parallel: bool) {
    let chunk = 1usize << 12;
    let kernel = |(ci, part): (usize, &mut [C64])| {
        let base = ci * chunk;
        for (off, a) in part.iter_mut().enumerate() {
            let i = base + off;
            let mut local = 0usize;
            for (b, &q) in qubits.iter().enumerate() {
                local |= (i >> q & 1) << b;
            }
            *a *= diag[local];
        }
    };
    if parallel && amps.len() >= 2 * chunk {
        amps.par_chunks_mut(chunk).enumerate().for_each(kernel);
    } else {
        amps.chunks_mut(chunk).enumerate().for_each(kernel);
    }
}

fn apply_monomial(
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
        // SAFETY: group `g` owns exactly the indices base + offsets[j], all < amps.len(), and no
        // other group shares one of them.
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

fn apply_dense(amps: &mut [C64], qubits: &[usize], matrix: &[C64], parallel: bool) {
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

/// Dense `D x D` kernel with the matrix split into real and imaginary planes, column-major, so the
/// inner loop runs over `D` independent rows and vectorises.
fn dense_kernel<const D: usize>(
    amps: &mut [C64],
    qubits: &[usize],
    matrix: &[C64],
    parallel: bool,
) {
    let k = qubits.len();
    let offsets = local_offsets(qubits);
    let mre: Vec<f64> = matrix.iter().map(|c| c.re).collect();
    let mim: Vec<f64> = matrix.iter().map(|c| c.im).collect();
    let (offsets, mre, mim) = (&offsets[..], &mre[..], &mim[..]);
    let shared = SharedAmps(amps.as_mut_ptr());
    let num_groups = amps.len() >> k;
    let run = move |g: usize| {
        let base = insert_zero_bits(g, qubits);
        // SAFETY: as in `apply_monomial`, group `g` owns its 2^k indices exclusively.
        unsafe { dense_group::<D>(shared.ptr().add(base), offsets, mre, mim) }
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            let run_avx = move |g: usize| {
                let base = insert_zero_bits(g, qubits);
                // SAFETY: the CPU supports AVX2 and FMA (checked above); indices as in `run`.
                unsafe { dense_group_avx2::<D>(shared.ptr().add(base), offsets, mre, mim) }
            };
            for_each_group(num_groups, parallel, run_avx);
            return;
        }
    }
    for_each_group(num_groups, parallel, run);
}

#[inline(always)]
unsafe fn dense_group<const D: usize>(p: *mut C64, offsets: &[usize], mre: &[f64], mim: &[f64]) {
    let mut vr = [0.0f64; D];
    let mut vi = [0.0f64; D];
    for j in 0..D {
        let a = *p.add(offsets[j]);
        vr[j] = a.re;
        vi[j] = a.im;
    }
    let mut or = [0.0f64; D];
    let mut oi = [0.0f64; D];
    for c in 0..D {
        let (xr, xi) = (vr[c], vi[c]);
        let colr = &mre[c * D..(c + 1) * D];
        let coli = &mim[c * D..(c + 1) * D];
        for r in 0..D {
            or[r] += colr[r] * xr - coli[r] * xi;
            oi[r] += colr[r] * xi + coli[r] * xr;
        }
    }
    for j in 0..D {
        *p.add(offsets[j]) = C64::new(or[j], oi[j]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_group_avx2<const D: usize>(
    p: *mut C64,
    offsets: &[usize],
    mre: &[f64],
    mim: &[f64],
) {
    dense_group::<D>(p, offsets, mre, mim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::Gate;

    #[test]
    fn insert_zero_bits_spreads_indices() {
        assert_eq!(insert_zero_bits(0b11, &[0]), 0b110);
        assert_eq!(insert_zero_bits(0b11, &[1]), 0b101);
        assert_eq!(insert_zero_bits(0b111, &[0, 2]), 0b11010);
    }

    #[test]
    fn refuses_states_that_do_not_fit_before_allocating() {
        let sim = Simulator::new().with_memory_limit(1 << 20);
        let err = sim.run(&Circuit::new(17)).unwrap_err();
        assert!(matches!(err, SimError::TooLarge { num_qubits: 17, .. }));
        assert!(err.to_string().contains("2.0 MiB"), "{err}");
        assert!(sim.run(&Circuit::new(16)).is_ok());
        assert!(Simulator::new().run(&Circuit::new(64)).is_err());
    }

    #[test]
    fn fusion_classifies_blocks() {
        let mut c = Circuit::new(3);
        c.push(Gate::Cx, &[0, 1]).unwrap();
        c.push(Gate::Cx, &[1, 2]).unwrap();
        c.push(Gate::T, &[2]).unwrap();
        let ops = fuse(
            c.instructions(),
            FusionLimits {
                dense: 3,
                sparse: 3,
            },
        );
        assert_eq!(ops.len(), 1);
        assert!(matches!(ops[0], Op::Monomial { .. }));
        c.push(Gate::H, &[0]).unwrap();
        let ops = fuse(
            c.instructions(),
            FusionLimits {
                dense: 3,
                sparse: 3,
            },
        );
        assert!(matches!(ops[0], Op::Dense { .. }));
        let ops = fuse(c.instructions(), FusionLimits::NONE);
        assert_eq!(ops.len(), 4);
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_distribution() {
        let probs = [0.5, 0.0, 0.25, 0.25];
        let a = sample_distribution(&probs, 10_000, 7);
        assert_eq!(a, sample_distribution(&probs, 10_000, 7));
        assert_ne!(a, sample_distribution(&probs, 10_000, 8));
        assert_eq!(a.values().sum::<u64>(), 10_000);
        assert!(!a.contains_key(&1));
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod physics_tests;
