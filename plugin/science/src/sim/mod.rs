//! State-vector simulation (complex f64): gate fusion, specialised kernels, rayon parallelism.
//!
//! Hand-written because the hot loops are the product: no Rust crate offers a fused, parallel
//! state-vector engine. A circuit is first compiled into a short list of [`Op`]s: runs of gates on a
//! few qubits are multiplied into one matrix ([`fuse`]), which is then classified as diagonal,
//! monomial (a permutation with phases: X, CX, SWAP, CCX, ...) or dense, each with its own kernel.
//! Every kernel makes one pass over the amplitudes; the memory traffic, not the arithmetic, bounds
//! most circuits above ~20 qubits, so fewer passes is the main lever.
//!
//! Memory is reserved before anything is allocated: a state needs `16 * 2^n` bytes, admitted
//! against the process-wide [`memory`] budget (the container's limit, shared by concurrent jobs).
//! A [`Cancel`] flag is checked between ops, so a cancelled run stops within one pass.

mod buffer;
mod fusion;
mod kernels;
pub mod memory;

pub use fusion::{fuse, FusionLimits, Op};
pub use kernels::apply_matrix_small;

use crate::cancel::{Cancel, Cancelled};
use crate::circuit::Circuit;
use crate::pauli::{PauliError, PauliString};
use buffer::AmpBuffer;
pub use buffer::ZeroedBuf;
use num_complex::Complex64 as C64;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

/// Largest qubit count the simulator will ever consider (2^50 amplitudes is 16 PiB).
pub const MAX_QUBITS: usize = 50;
/// Most worker threads a simulator may ask for (more only costs memory and start-up time).
pub const MAX_THREADS: usize = 1024;
/// Below this many qubits a state fits in L1/L2 cache and threads cost more than they save.
const PARALLEL_MIN_QUBITS: usize = 14;
/// Chunks of `2^CHUNK_QUBITS` amplitudes (1 MiB) stay in a core's L2 cache while a batch of
/// chunk-local ops runs over them.
const CHUNK_QUBITS: usize = 16;

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
    #[error(
        "{what} needs {} of memory but only {} is left of this process's budget ({} in all); \
         wait for running jobs, cut the circuit or ask for less",
        human_bytes(*needed),
        human_bytes(*available),
        human_bytes(*capacity)
    )]
    OutOfBudget {
        what: String,
        needed: u128,
        available: u128,
        capacity: u128,
    },
    #[error("cannot build a thread pool with {threads} threads: {message}")]
    ThreadPool { threads: usize, message: String },
    #[error("shots must be between 1 and {max}, got {shots}")]
    Shots { shots: u64, max: u64 },
    #[error("{threads} threads is too many: at most {MAX_THREADS} are allowed")]
    TooManyThreads { threads: usize },
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    #[error(transparent)]
    Pauli(#[from] PauliError),
}

pub fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Bytes needed for the state of `num_qubits` qubits.
pub fn state_bytes(num_qubits: usize) -> u128 {
    16u128 << num_qubits.min(100)
}

/// Simulator settings. Cheap to clone; the thread pool is shared.
#[derive(Clone, Debug, Default)]
pub struct Simulator {
    pool: Option<Arc<rayon::ThreadPool>>,
    memory_limit: Option<u128>,
    fusion: Option<FusionLimits>,
    cancel: Cancel,
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
        if threads > MAX_THREADS {
            return Err(SimError::TooManyThreads { threads });
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

    /// This simulator with `cancel` checked between ops (and by the stages that take it).
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Caps the state size in bytes (default: the process's memory budget).
    pub fn with_memory_limit(mut self, bytes: u128) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Overrides the fusion limits (mainly for tests and benchmarks).
    pub fn with_fusion(mut self, limits: FusionLimits) -> Self {
        self.fusion = Some(limits);
        self
    }

    /// Fails with [`SimError::TooLarge`] when a state of `num_qubits` could never fit (the
    /// explicit limit, or the whole budget), before anything is reserved.
    pub fn check_memory(&self, num_qubits: usize) -> Result<(), SimError> {
        let needed = state_bytes(num_qubits);
        let available = self
            .memory_limit
            .unwrap_or(memory::budget().capacity() as u128);
        if num_qubits > MAX_QUBITS || needed > available {
            return Err(SimError::TooLarge {
                num_qubits,
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Reserves `bytes` for `what` against the explicit limit and the process's budget.
    pub fn reserve(&self, bytes: u128, what: &str) -> Result<memory::Reservation, SimError> {
        let budget = memory::budget();
        let out_of_budget = |available: u128, capacity: u128| SimError::OutOfBudget {
            what: what.to_string(),
            needed: bytes,
            available,
            capacity,
        };
        if let Some(limit) = self.memory_limit {
            if bytes > limit {
                return Err(out_of_budget(limit, limit));
            }
        }
        budget
            .reserve(bytes)
            .map_err(|r| out_of_budget(r.available, budget.capacity() as u128))
    }

    /// Simulates the circuit from |0...0> and returns the final state.
    pub fn run(&self, circuit: &Circuit) -> Result<StateVector, SimError> {
        let n = circuit.num_qubits();
        self.check_memory(n)?;
        let reservation = self.reserve(state_bytes(n), &format!("a {n}-qubit state"))?;
        self.cancel.check()?;
        let limits = self.fusion.unwrap_or_else(|| FusionLimits::for_qubits(n));
        let work = || -> Result<StateVector, SimError> {
            let ops = fuse(circuit.instructions(), limits);
            let mut state = StateVector::zero_state(n);
            execute(&ops, &mut state.amps, &self.cancel)?;
            state.reservation = Some(Arc::new(reservation));
            Ok(state)
        };
        // Small states run serially on the caller's thread: handing them to the pool costs more
        // than simulating them.
        match &self.pool {
            Some(pool) if n >= PARALLEL_MIN_QUBITS => pool.install(work),
            _ => work(),
        }
    }

    /// Runs `f` on this simulator's pool, so its rayon work uses the configured thread count.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

/// Runs the ops in order. Runs of chunk-local ops (see [`Op::is_chunk_local`]) are applied chunk
/// by chunk, so each chunk is loaded from memory once per run instead of once per op; the chunks
/// are spread over the threads.
fn execute(ops: &[Op], amps: &mut [C64], cancel: &Cancel) -> Result<(), Cancelled> {
    let n = amps.len().trailing_zeros() as usize;
    let parallel = n >= PARALLEL_MIN_QUBITS;
    let chunk_bits = CHUNK_QUBITS.min(n.saturating_sub(4));
    let mut k = 0;
    while k < ops.len() {
        // Small states are checked every 4096 ops: a check costs more than a tiny op.
        if parallel || k % 4096 == 0 {
            cancel.check()?;
        }
        let run = ops[k..]
            .iter()
            .take_while(|op| op.is_chunk_local(chunk_bits))
            .count();
        if parallel && run >= 2 {
            let batch = &ops[k..k + run];
            amps.par_chunks_mut(1 << chunk_bits)
                .enumerate()
                .for_each(|(c, chunk)| {
                    for op in batch {
                        op.apply(chunk, c << chunk_bits, false);
                    }
                });
            k += run;
        } else {
            ops[k].apply(amps, 0, parallel);
            k += 1;
        }
    }
    Ok(())
}

/// A state vector over `num_qubits` qubits; amplitude `i` belongs to basis state `i` (qubit 0 is
/// the least significant bit).
#[derive(Debug, Clone)]
pub struct StateVector {
    num_qubits: usize,
    amps: AmpBuffer,
    /// The memory admitted for `amps`, released with the state.
    reservation: Option<Arc<memory::Reservation>>,
}

impl StateVector {
    /// |0...0>.
    pub fn zero_state(num_qubits: usize) -> Self {
        let mut amps = AmpBuffer::zeroed(1usize << num_qubits);
        amps[0] = C64::new(1.0, 0.0);
        Self {
            num_qubits,
            amps,
            reservation: None,
        }
    }

    pub fn num_qubits(&self) -> usize {
        self.num_qubits
    }

    pub fn amplitudes(&self) -> &[C64] {
        &self.amps
    }

    /// |amplitude|^2 for every basis state.
    pub fn probabilities(&self) -> ZeroedBuf<f64> {
        let mut probs = ZeroedBuf::for_overwrite(self.amps.len());
        let chunk = 1 << 14;
        let fill = |(p, a): (&mut [f64], &[C64])| {
            for (p, a) in p.iter_mut().zip(a) {
                *p = a.norm_sqr();
            }
        };
        if self.num_qubits >= PARALLEL_MIN_QUBITS {
            probs
                .par_chunks_mut(chunk)
                .zip(self.amps.par_chunks(chunk))
                .for_each(fill);
        } else {
            probs
                .chunks_mut(chunk)
                .zip(self.amps.chunks(chunk))
                .for_each(fill);
        }
        probs
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
        let crate::pauli::PauliMasks {
            flip,
            sign,
            num_y: ny,
        } = pauli.masks();
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
///
/// Two exact multinomial samplers, picked by cost: with few shots, sorted uniforms swept once
/// through the cumulative distribution (`O(2^n + shots log shots)`); with many, a chain of
/// conditional binomials (`O(2^n)` whatever the shot count). Both are seeded (ChaCha8).
pub fn sample_distribution(probs: &[f64], shots: u64, seed: u64) -> BTreeMap<usize, u64> {
    let total: f64 = probs.iter().map(|p| p.max(0.0)).sum();
    if shots == 0 || total <= 0.0 {
        return BTreeMap::new();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    if shots as usize > probs.len() / 4 {
        sample_by_binomials(probs, shots, total, &mut rng)
    } else {
        sample_by_sorted_uniforms(probs, shots, total, &mut rng)
    }
}

fn sample_by_sorted_uniforms(
    probs: &[f64],
    shots: u64,
    total: f64,
    rng: &mut impl Rng,
) -> BTreeMap<usize, u64> {
    let mut counts = BTreeMap::new();
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

fn sample_by_binomials(
    probs: &[f64],
    shots: u64,
    total: f64,
    rng: &mut impl Rng,
) -> BTreeMap<usize, u64> {
    let mut counts = BTreeMap::new();
    let (mut shots_left, mut mass_left) = (shots, total);
    let last_nonzero = probs.iter().rposition(|&p| p > 0.0).unwrap_or(0);
    for (i, &p) in probs.iter().enumerate() {
        if shots_left == 0 {
            break;
        }
        let p = p.max(0.0);
        if p == 0.0 {
            continue;
        }
        let c = if i == last_nonzero || p >= mass_left {
            shots_left
        } else {
            let conditional = (p / mass_left).clamp(0.0, 1.0);
            rand_distr::Binomial::new(shots_left, conditional)
                .map(|b| rng.sample(b))
                .unwrap_or(0)
        };
        if c > 0 {
            counts.insert(i, c);
        }
        shots_left -= c;
        mass_left -= p;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

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
mod tests_physics;
