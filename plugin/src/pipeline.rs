//! The local pipeline: cut -> simulate every fragment variant (in parallel) -> reconstruct, in one
//! process. The Argo steps run the same pieces one by one; this is `quargo run`.

use crate::cache::codec::CacheValue;
use crate::cache::{Cache, ResultKind, Source};
use crate::circuit::{Circuit, CircuitError};
use crate::cut::{
    distribution, distribution_stderr, expectation_terms, find_cuts, fragment_variants,
    output_bases, project_to_simplex, Basis, CutPlan, FindError, FindOptions, FragmentResults,
    WireCut,
};
use crate::pauli::{Observable, PauliString};
use crate::sim::{sample_distribution, SimError, Simulator, StateVector};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Instant;
use thiserror::Error;

/// Most fragment variants one run may ask for.
pub const MAX_VARIANTS: u128 = 1 << 20;
/// Most `4^k 2^n` terms a full-distribution reconstruction may cost (about a minute of work).
pub const MAX_RECONSTRUCTION_TERMS: u128 = 1 << 34;
/// Most cuts whose `4^k` Pauli-label assignments any reconstruction enumerates (`4^12` = 16.8 M).
pub const MAX_RECONSTRUCTION_CUTS: usize = 12;
/// Most entries of all fragment tensors together (`4^(prepared + measured) 2^outputs` each).
const MAX_TENSOR_ENTRIES: u128 = 1 << 28;
/// Most shots one variant or circuit may ask for (sums over 2^20 variants stay within u64).
pub const MAX_SHOTS: u64 = 1_000_000_000_000;
/// Per-outcome standard errors cost another `4^k 2^n` times the fragment count; above this they are
/// skipped (and the report says so).
const MAX_STDERR_TERMS: u128 = 1 << 30;

/// How sampled shots are spread over the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// The same number of shots for every variant.
    Uniform,
    /// Shots in proportion to each variant's weight in the estimator (same total).
    Weighted,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub max_qubits: usize,
    pub max_cuts: Option<usize>,
    /// Shots per variant (on average, with weighted allocation); `None` for exact probabilities.
    pub shots: Option<u64>,
    pub seed: u64,
    pub allocation: Allocation,
    /// Observables with the text they were given as.
    pub observables: Vec<(String, Observable)>,
    /// Reconstruct the full distribution (costs `O(4^k 2^n)` time and `8 * 2^n` bytes).
    pub probabilities: bool,
    /// Project the reconstructed distribution onto the nearest probability distribution.
    pub project: bool,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Find(#[from] FindError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    #[error("observable '{text}' has {got} qubits but the circuit has {expected}")]
    ObservableWidth {
        text: String,
        got: usize,
        expected: usize,
    },
    #[error("the cut plan needs {variants} fragment variants ({cuts} cuts), more than the limit of {limit}; allow wider fragments (--max-qubits)")]
    TooManyVariants {
        variants: u128,
        cuts: usize,
        limit: u128,
    },
    #[error("the cut plan does not fit the circuit: {0}")]
    Plan(String),
    #[error("the plan has {cuts} cuts: reconstruction sums over 4^{cuts} Pauli-label assignments, more than the limit of 4^{limit}; allow wider fragments (--max-qubits) or fewer cuts (--max-cuts)")]
    TooManyCuts { cuts: usize, limit: usize },
    #[error("the fragment tensors of this plan have {entries} entries, more than the limit of {limit}; allow wider fragments (--max-qubits)")]
    TensorsTooLarge { entries: u128, limit: u128 },
    #[error(transparent)]
    Cancelled(#[from] crate::cancel::Cancelled),
    #[error("{missing} fragment variants have no result in the store; run the simulate step for every batch first")]
    MissingResults { missing: usize },
    #[error("the full distribution over {num_qubits} qubits with {cuts} cuts costs 4^{cuts} * 2^{num_qubits} terms and {bytes} bytes, too much for this machine; ask for expectation values instead (--observable ... --no-probabilities)")]
    DistributionTooLarge {
        num_qubits: usize,
        cuts: usize,
        bytes: u128,
    },
}

/// What one fragment of the plan looks like, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct FragmentSummary {
    /// Original qubit of each fragment qubit, in local order.
    pub qubits: Vec<usize>,
    pub width: usize,
    pub gates: usize,
    pub prepared_cuts: Vec<usize>,
    pub measured_cuts: Vec<usize>,
    pub variants: u128,
}

impl FragmentSummary {
    pub fn of(plan: &CutPlan) -> Vec<FragmentSummary> {
        plan.fragments
            .iter()
            .map(|f| FragmentSummary {
                qubits: f.segments.iter().map(|s| s.qubit).collect(),
                width: f.width(),
                gates: f.gates.len(),
                prepared_cuts: f.prepared_cuts(),
                measured_cuts: f.measured_cuts(),
                variants: f.num_variants(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSeconds {
    pub cut: f64,
    pub simulate: f64,
    pub reconstruct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub cuts: Vec<WireCut>,
    pub fragments: Vec<FragmentSummary>,
    /// Fragment variants the estimator uses, over all readout settings.
    pub variants: usize,
    /// Distinct circuits simulated (variants shared between settings run once).
    pub circuits_simulated: usize,
    /// Distinct circuits whose result came from the cache (or from another worker).
    pub cache_hits: usize,
    /// Shots drawn in all, when sampling.
    pub shots_total: Option<u64>,
    pub seconds: StageSeconds,
    /// Things the user should know (skipped error bars, ...).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub num_qubits: usize,
    pub probabilities: Option<Vec<f64>>,
    pub stderr: Option<Vec<f64>>,
    /// (text, value, standard error) per observable, in the order asked.
    pub expectations: Vec<(String, f64, Option<f64>)>,
    pub report: RunReport,
}

/// Readout basis per original qubit (Z for I and Z letters).
type Setting = Vec<Basis>;

fn setting_of(pauli: &crate::pauli::PauliString) -> Setting {
    (0..pauli.num_qubits())
        .map(|q| match pauli.letter(q) {
            b'X' => Basis::X,
            b'Y' => Basis::Y,
            _ => Basis::Z,
        })
        .collect()
}

fn pauli_mask(pauli: &crate::pauli::PauliString) -> usize {
    (0..pauli.num_qubits())
        .filter(|&q| pauli.letter(q) != b'I')
        .map(|q| 1usize << q)
        .sum()
}

/// Weight of a variant in the estimator: how many label terms use it, times |coefficient|.
fn variant_weight(key: &crate::cut::VariantKey) -> f64 {
    let prep: f64 = key
        .preps
        .iter()
        .map(|p| match p {
            crate::cut::Prep::Zero | crate::cut::Prep::One => 4.0,
            _ => 2.0,
        })
        .product();
    let meas: f64 = key
        .cut_bases
        .iter()
        .map(|b| if *b == Basis::Z { 2.0 } else { 1.0 })
        .product();
    prep * meas
}

fn derive_seed(seed: u64, setting: usize, id: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(&(setting as u64).to_le_bytes());
    h.update(id.as_bytes());
    let bytes = h.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// A cut plan with every fragment variant it needs, per readout setting: the input of the
/// simulate stage and of reconstruction. Deterministic for a circuit, cuts and options.
pub struct Prepared {
    pub plan: CutPlan,
    /// Readout settings: all-Z for the distribution, one per basis pattern of the observables.
    settings: Vec<Setting>,
    z_setting: Option<usize>,
    /// Per observable: (setting index, coefficient, mask) per term.
    observable_terms: Vec<Vec<(usize, f64, usize)>>,
    /// Variants per (setting, fragment), in reconstruction order.
    pub work: Vec<Vec<Vec<crate::cut::Variant>>>,
    pub cut_seconds: f64,
}

impl Prepared {
    /// Distinct variant circuits by content ID, sorted by ID.
    pub fn distinct_circuits(&self) -> Vec<(&str, &Circuit)> {
        let mut unique: HashMap<&str, &Circuit> = HashMap::new();
        for v in self.work.iter().flatten().flatten() {
            unique.entry(v.id.as_str()).or_insert(&v.circuit);
        }
        let mut u: Vec<_> = unique.into_iter().collect();
        u.sort_unstable_by_key(|(id, _)| *id);
        u
    }

    /// (qubit, position) of each cut: with the circuit, all that is needed to prepare again.
    pub fn cut_positions(&self) -> Vec<(usize, usize)> {
        self.plan
            .cuts
            .iter()
            .map(|c| (c.qubit, c.position))
            .collect()
    }
}

/// Finds cuts and prepares every variant.
pub fn prepare(
    circuit: &Circuit,
    options: &RunOptions,
    sim: &Simulator,
) -> Result<Prepared, RunError> {
    check_observables(circuit, options)?;
    let started = Instant::now();
    let mut find = FindOptions::new(options.max_qubits);
    find.max_cuts = options.max_cuts;
    find.cancel = sim.cancel().clone();
    let plan = find_cuts(circuit, find)?;
    let cut_seconds = started.elapsed().as_secs_f64();
    prepare_plan(circuit, plan, options, sim, cut_seconds)
}

/// Prepares the variants of a plan given by its cut positions (as [`Prepared::cut_positions`]).
pub fn prepare_with_cuts(
    circuit: &Circuit,
    cuts: &[(usize, usize)],
    options: &RunOptions,
    sim: &Simulator,
) -> Result<Prepared, RunError> {
    check_observables(circuit, options)?;
    let plan = CutPlan::from_cuts(circuit, cuts).map_err(|e| RunError::Plan(e.to_string()))?;
    prepare_plan(circuit, plan, options, sim, 0.0)
}

/// Shots between 1 and [`MAX_SHOTS`].
fn check_shots(shots: u64) -> Result<(), SimError> {
    if shots == 0 || shots > MAX_SHOTS {
        return Err(SimError::Shots {
            shots,
            max: MAX_SHOTS,
        });
    }
    Ok(())
}

/// Reserves the probability vector of an `n`-qubit state and its returned copy.
fn reserve_probability_buffers(
    sim: &Simulator,
    n: usize,
) -> Result<crate::sim::memory::Reservation, SimError> {
    sim.reserve(
        16u128 << n.min(100),
        &format!("{n}-qubit probability vectors"),
    )
}

/// Refuses plans whose reconstruction would not finish or not fit, before anything is computed:
/// the `4^k` label assignments, the fragment tensors, and shots that would overflow a sum.
fn check_reconstruction_cost(plan: &CutPlan, options: &RunOptions) -> Result<(), RunError> {
    if let Some(shots) = options.shots {
        check_shots(shots)?;
    }
    let k = plan.cuts.len();
    if k > MAX_RECONSTRUCTION_CUTS {
        return Err(RunError::TooManyCuts {
            cuts: k,
            limit: MAX_RECONSTRUCTION_CUTS,
        });
    }
    let entries = tensor_entries(plan);
    if entries > MAX_TENSOR_ENTRIES {
        return Err(RunError::TensorsTooLarge {
            entries,
            limit: MAX_TENSOR_ENTRIES,
        });
    }
    Ok(())
}

/// Entries of all fragment tensors of a plan (`4^(prepared + measured) 2^outputs` each).
fn tensor_entries(plan: &CutPlan) -> u128 {
    plan.fragments
        .iter()
        .map(|f| {
            let labels = f.prepared_cuts().len() + f.measured_cuts().len();
            let outputs = f.output_qubits().len();
            // 2^(2 labels + outputs), capped so the shift cannot overflow.
            1u128 << (2 * labels + outputs).min(120)
        })
        .fold(0u128, u128::saturating_add)
}

fn check_observables(circuit: &Circuit, options: &RunOptions) -> Result<(), RunError> {
    let n = circuit.num_qubits();
    for (text, obs) in &options.observables {
        if obs.num_qubits() != n {
            return Err(RunError::ObservableWidth {
                text: text.clone(),
                got: obs.num_qubits(),
                expected: n,
            });
        }
    }
    Ok(())
}

fn prepare_plan(
    circuit: &Circuit,
    plan: CutPlan,
    options: &RunOptions,
    sim: &Simulator,
    cut_seconds: f64,
) -> Result<Prepared, RunError> {
    let n = circuit.num_qubits();
    let k = plan.cuts.len();
    check_reconstruction_cost(&plan, options)?;
    if plan.num_variants() > MAX_VARIANTS {
        return Err(RunError::TooManyVariants {
            variants: plan.num_variants(),
            cuts: k,
            limit: MAX_VARIANTS,
        });
    }
    if options.probabilities {
        // k <= MAX_RECONSTRUCTION_CUTS here, so 4^k is small; the shift is capped like the bytes.
        let terms = 4u128.pow(k as u32) << n.min(100);
        let bytes = 8u128 << n.min(100);
        sim.check_memory(n.saturating_sub(1))
            .map_err(|_| RunError::DistributionTooLarge {
                num_qubits: n,
                cuts: k,
                bytes,
            })?;
        if terms > MAX_RECONSTRUCTION_TERMS {
            return Err(RunError::DistributionTooLarge {
                num_qubits: n,
                cuts: k,
                bytes,
            });
        }
    }
    for f in &plan.fragments {
        sim.check_memory(f.width())?;
    }

    let mut settings: Vec<Setting> = Vec::new();
    let setting_index =
        |s: Setting, settings: &mut Vec<Setting>| match settings.iter().position(|x| *x == s) {
            Some(i) => i,
            None => {
                settings.push(s);
                settings.len() - 1
            }
        };
    let z_setting = options
        .probabilities
        .then(|| setting_index(vec![Basis::Z; n], &mut settings));
    let observable_terms: Vec<Vec<(usize, f64, usize)>> = options
        .observables
        .iter()
        .map(|(_, obs)| {
            obs.terms
                .iter()
                .map(|(c, p)| {
                    (
                        setting_index(setting_of(p), &mut settings),
                        *c,
                        pauli_mask(p),
                    )
                })
                .collect()
        })
        .collect();
    let mut work: Vec<Vec<Vec<crate::cut::Variant>>> = Vec::with_capacity(settings.len());
    for setting in &settings {
        let per_fragment = (0..plan.fragments.len())
            .map(|f| fragment_variants(circuit, &plan, f, &output_bases(&plan, f, setting)))
            .collect::<Result<Vec<_>, _>>()?;
        work.push(per_fragment);
    }
    Ok(Prepared {
        plan,
        settings,
        z_setting,
        observable_terms,
        work,
        cut_seconds,
    })
}

/// Exact probabilities of every distinct variant, from the cache or simulated (in parallel),
/// and how many were simulated here.
pub fn simulate_variants(
    prepared: &Prepared,
    sim: &Simulator,
    cache: Option<&Cache>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(HashMap<String, Vec<f64>>, usize), RunError> {
    let unique = prepared.distinct_circuits();
    let total = unique.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let compute = |i: usize| -> Result<Vec<f64>, SimError> {
        let probs = exact_probabilities(sim, unique[i].1)?;
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, total);
        Ok(probs)
    };
    let results: Vec<(Vec<f64>, Source)> = sim.install(|| match cache {
        Some(cache) => {
            let circuits: Vec<&Circuit> = unique.iter().map(|(_, c)| *c).collect();
            cache.get_or_compute_many(&circuits, &ResultKind::Probabilities, compute)
        }
        None => (0..unique.len())
            .into_par_iter()
            .map(|i| compute(i).map(|p| (p, Source::Computed)))
            .collect(),
    })?;
    let mut probs_of: HashMap<String, Vec<f64>> = HashMap::with_capacity(results.len());
    let mut circuits_simulated = 0;
    for ((id, _), (probs, source)) in unique.iter().zip(results) {
        if source == Source::Computed {
            circuits_simulated += 1;
        }
        probs_of.insert(id.to_string(), probs);
    }
    Ok((probs_of, circuits_simulated))
}

/// Exact outcome probabilities of `circuit`, with the memory of the state, the probability buffer
/// and the returned copy admitted first.
pub fn exact_probabilities(sim: &Simulator, circuit: &Circuit) -> Result<Vec<f64>, SimError> {
    let n = circuit.num_qubits();
    sim.check_memory(n)?;
    let _buffers = reserve_probability_buffers(sim, n)?;
    let state = sim.run(circuit)?;
    Ok(sim.install(|| state.probabilities().to_vec()))
}

/// Runs the whole pipeline. Every distinct variant's exact probabilities come from `cache` when it
/// holds them (proven equal), else they are simulated and stored. `progress(done, total)` is
/// called as variants finish.
pub fn run(
    circuit: &Circuit,
    options: &RunOptions,
    sim: &Simulator,
    cache: Option<&Cache>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<RunOutput, RunError> {
    let prepared = prepare(circuit, options, sim)?;
    let sim_started = Instant::now();
    let (probs_of, circuits_simulated) = simulate_variants(&prepared, sim, cache, progress)?;
    let simulate_seconds = sim_started.elapsed().as_secs_f64();
    let mut out = reconstruct(circuit.num_qubits(), &prepared, &probs_of, options, sim)?;
    out.report.circuits_simulated = circuits_simulated;
    out.report.cache_hits = probs_of.len() - circuits_simulated;
    out.report.seconds.simulate += simulate_seconds;
    Ok(out)
}

/// Reconstructs from the variants' exact probabilities (sampling them first when `options.shots`
/// asks for it). Fails when a variant's probabilities are missing.
pub fn reconstruct(
    n: usize,
    prepared: &Prepared,
    probs_of: &HashMap<String, Vec<f64>>,
    options: &RunOptions,
    sim: &Simulator,
) -> Result<RunOutput, RunError> {
    let Prepared {
        plan,
        settings,
        z_setting,
        observable_terms,
        work,
        cut_seconds,
    } = prepared;
    let k = plan.cuts.len();
    let missing = prepared
        .distinct_circuits()
        .iter()
        .filter(|(id, _)| !probs_of.contains_key(*id))
        .count();
    if missing > 0 {
        return Err(RunError::MissingResults { missing });
    }
    let mut seconds = StageSeconds {
        cut: *cut_seconds,
        ..Default::default()
    };
    // The copies of the variants' distributions and the fragment tensors built from them.
    let result_bytes: u128 = work
        .iter()
        .flatten()
        .flatten()
        .map(|v| 8u128 << v.circuit.num_qubits().min(100))
        .fold(0, u128::saturating_add);
    let tensor_bytes = 16u128
        .saturating_mul(tensor_entries(plan))
        .saturating_mul(settings.len() as u128);
    let _reconstruction_memory = sim.reserve(
        result_bytes.saturating_add(tensor_bytes),
        "the fragment results and tensors of the reconstruction",
    )?;
    let sample_started = Instant::now();
    // Fragment results per setting: exact, or sampled with the chosen allocation.
    let mut shots_total = 0u64;
    let results: Vec<Vec<FragmentResults>> = work
        .iter()
        .enumerate()
        .map(|(si, per_fragment)| {
            let all: Vec<&crate::cut::Variant> = per_fragment.iter().flatten().collect();
            let weight_sum: f64 = all.iter().map(|v| variant_weight(&v.key)).sum();
            per_fragment
                .iter()
                .map(|variants| match options.shots {
                    None => FragmentResults {
                        probs: variants.iter().map(|v| probs_of[&v.id].clone()).collect(),
                        shots: None,
                    },
                    Some(shots) => {
                        let budget = shots as f64 * all.len() as f64;
                        let mut probs = Vec::with_capacity(variants.len());
                        let mut used = Vec::with_capacity(variants.len());
                        for v in variants {
                            let n_v = match options.allocation {
                                Allocation::Uniform => shots,
                                Allocation::Weighted => {
                                    ((budget * variant_weight(&v.key) / weight_sum).round() as u64)
                                        .max(1)
                                }
                            };
                            let seed = derive_seed(options.seed, si, &v.id);
                            let exact = &probs_of[&v.id];
                            let counts = sample_distribution(exact, n_v, seed);
                            let mut estimate = vec![0.0; exact.len()];
                            for (i, c) in counts {
                                estimate[i] = c as f64 / n_v as f64;
                            }
                            shots_total = shots_total.saturating_add(n_v);
                            probs.push(estimate);
                            used.push(n_v);
                        }
                        FragmentResults {
                            probs,
                            shots: Some(used),
                        }
                    }
                })
                .collect()
        })
        .collect();
    seconds.simulate = sample_started.elapsed().as_secs_f64();

    let rec_started = Instant::now();
    let mut notes = Vec::new();
    let (mut probabilities, mut stderr) = (None, None);
    let cancel = sim.cancel();
    if let Some(z) = *z_setting {
        let _distribution_memory = sim.reserve(
            8u128 << n.min(100),
            &format!("the {n}-qubit reconstructed distribution"),
        )?;
        let mut p = sim.install(|| distribution(plan, &results[z], cancel))?;
        if options.shots.is_some() {
            let cost =
                (4u128.pow(k as u32) << n.min(100)).saturating_mul(plan.fragments.len() as u128);
            if cost <= MAX_STDERR_TERMS {
                stderr = Some(sim.install(|| distribution_stderr(plan, &results[z], cancel))?);
            } else {
                notes.push(format!(
                    "per-outcome standard errors skipped: they would cost {cost} terms; expectation values carry theirs"
                ));
            }
        }
        if options.project {
            p = project_to_simplex(&p);
        }
        probabilities = Some(p);
    }
    let mut expectations = Vec::with_capacity(options.observables.len());
    for ((text, _), terms) in options.observables.iter().zip(observable_terms) {
        let mut value = 0.0;
        let mut variance = Some(0.0);
        for (si, _) in settings.iter().enumerate() {
            let group: Vec<(f64, usize)> = terms
                .iter()
                .filter(|t| t.0 == si)
                .map(|&(_, c, m)| (c, m))
                .collect();
            if group.is_empty() {
                continue;
            }
            let (values, se) = expectation_terms(plan, &results[si], &group, cancel)?;
            value += group
                .iter()
                .zip(&values)
                .map(|((c, _), v)| c * v)
                .sum::<f64>();
            // Settings are sampled independently, so their variances add.
            variance = match (variance, se) {
                (Some(acc), Some(s)) => Some(acc + s * s),
                _ => None,
            };
        }
        let stderr = options.shots.and(variance.map(f64::sqrt));
        expectations.push((text.clone(), value, stderr));
    }
    seconds.reconstruct = rec_started.elapsed().as_secs_f64();

    let variants = work.iter().flatten().map(Vec::len).sum();
    Ok(RunOutput {
        num_qubits: n,
        probabilities,
        stderr,
        expectations,
        report: RunReport {
            cuts: plan.cuts.clone(),
            fragments: FragmentSummary::of(plan),
            variants,
            circuits_simulated: 0,
            cache_hits: 0,
            shots_total: options.shots.map(|_| shots_total),
            seconds,
            notes,
        },
    })
}

/// What to compute for one uncut circuit (`quargo simulate`, the plugin's `simulate`).
pub struct SingleRequest<'a> {
    /// Exact probabilities.
    pub probabilities: bool,
    /// Sampled counts: (shots, seed). Counts are cached only for an explicit seed.
    pub shots: Option<(u64, Option<u64>)>,
    pub observables: &'a [PauliString],
}

/// The answer for one uncut circuit.
#[derive(Debug, Clone, Default)]
pub struct SingleResult {
    pub probabilities: Option<Vec<f64>>,
    /// (shots, seed used, counts).
    pub counts: Option<(u64, u64, BTreeMap<usize, u64>)>,
    /// `<P>` per observable, in the order asked.
    pub expectations: Vec<f64>,
    /// Whether the state was simulated here (false: everything came from the cache).
    pub simulated: bool,
}

/// Probability vectors above this many qubits are not cached (2^24 doubles = 128 MiB).
pub const MAX_CACHED_PROBABILITY_QUBITS: usize = 24;

/// The circuit's state, simulated on first use only (every result may come from the cache).
struct LazyState<'a> {
    sim: &'a Simulator,
    circuit: &'a Circuit,
    state: Option<StateVector>,
}

impl LazyState<'_> {
    fn get(&mut self) -> Result<&StateVector, SimError> {
        let state = match self.state.take() {
            Some(state) => state,
            None => {
                let started = Instant::now();
                let state = self.sim.run(self.circuit)?;
                tracing::info!(
                    qubits = self.circuit.num_qubits(),
                    gates = self.circuit.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "simulated"
                );
                state
            }
        };
        Ok(self.state.insert(state))
    }

    fn probabilities(&mut self, cache: Option<&Cache>) -> Result<Vec<f64>, SimError> {
        let sim = self.sim;
        let compute = |state: &mut LazyState| -> Result<Vec<f64>, SimError> {
            let n = state.circuit.num_qubits();
            let _buffers = reserve_probability_buffers(sim, n)?;
            let s = state.get()?;
            Ok(sim.install(|| s.probabilities().to_vec()))
        };
        match cache {
            Some(c) if self.circuit.num_qubits() <= MAX_CACHED_PROBABILITY_QUBITS => {
                let circuit = self.circuit;
                Ok(
                    c.get_or_compute(circuit, &ResultKind::Probabilities, || compute(self))?
                        .0,
                )
            }
            _ => compute(self),
        }
    }
}

/// Simulates one circuit for what `request` asks, taking every part it can from `cache`.
pub fn simulate_one(
    circuit: &Circuit,
    request: &SingleRequest,
    sim: &Simulator,
    cache: Option<&Cache>,
) -> Result<SingleResult, SimError> {
    sim.check_memory(circuit.num_qubits())?;
    if let Some((shots, _)) = request.shots {
        check_shots(shots)?;
    }
    for p in request.observables {
        p.check_width(circuit.num_qubits())?;
    }
    let mut state = LazyState {
        sim,
        circuit,
        state: None,
    };
    let mut result = SingleResult::default();
    if request.probabilities {
        result.probabilities = Some(state.probabilities(cache)?);
    }
    if let Some((shots, seed)) = request.shots {
        let sample = |state: &mut LazyState, seed| -> Result<BTreeMap<usize, u64>, SimError> {
            let probs = state.probabilities(cache)?;
            Ok(sim.install(|| sample_distribution(&probs, shots, seed)))
        };
        let (seed, counts) = match (seed, cache) {
            (Some(seed), Some(c)) => {
                let kind = ResultKind::Counts {
                    shots,
                    seed_policy: format!("seed={seed}"),
                };
                (
                    seed,
                    c.get_or_compute(circuit, &kind, || sample(&mut state, seed))?
                        .0,
                )
            }
            (Some(seed), None) => (seed, sample(&mut state, seed)?),
            (None, _) => {
                let seed = rand::random();
                (seed, sample(&mut state, seed)?)
            }
        };
        result.counts = Some((shots, seed, counts));
    }
    for p in request.observables {
        sim.cancel().check()?;
        let kind = ResultKind::Expectation {
            observable: p.to_string(),
        };
        let compute = |state: &mut LazyState| -> Result<f64, SimError> {
            let s = state.get()?;
            sim.install(|| s.expectation(p))
        };
        let v = match cache {
            Some(c) => c.get_or_compute(circuit, &kind, || compute(&mut state))?.0,
            None => compute(&mut state)?,
        };
        result.expectations.push(v);
    }
    result.simulated = state.state.is_some();
    Ok(result)
}

/// [`simulate_one`] from the cache alone: `None` unless every part is cached. Counts without
/// an explicit seed are never cached.
pub fn cached_one(
    circuit: &Circuit,
    request: &SingleRequest,
    cache: &Cache,
) -> Option<SingleResult> {
    let mut kinds = Vec::new();
    if request.probabilities {
        kinds.push(ResultKind::Probabilities);
    }
    let counts = match request.shots {
        // Counts without an explicit seed are never cached.
        Some((_, None)) => return None,
        Some((shots, Some(seed))) => {
            kinds.push(ResultKind::Counts {
                shots,
                seed_policy: format!("seed={seed}"),
            });
            Some((shots, seed))
        }
        None => None,
    };
    kinds.extend(request.observables.iter().map(|p| ResultKind::Expectation {
        observable: p.to_string(),
    }));
    // One store read for every part; an ID not known yet is not computed here (callers answer
    // from this on a request's thread).
    let values = cache.lookup_kinds_if_known(circuit, &kinds)?;
    let mut values = values.iter();
    let mut result = SingleResult::default();
    if request.probabilities {
        result.probabilities = Some(CacheValue::decode(values.next()?)?);
    }
    if let Some((shots, seed)) = counts {
        result.counts = Some((shots, seed, CacheValue::decode(values.next()?)?));
    }
    for _ in request.observables {
        result
            .expectations
            .push(CacheValue::decode(values.next()?)?);
    }
    Some(result)
}

/// Writes a run's result as the JSON `quargo run` prints: `num_qubits`, [`shots`, `seed`],
/// `probabilities` (+ `stderr`), `expectation`, `report`.
pub fn write_run_json(
    out: &mut impl std::io::Write,
    output: &RunOutput,
    shots: Option<u64>,
    seed: u64,
) -> std::io::Result<()> {
    let n = output.num_qubits;
    write!(out, "{{\"num_qubits\":{n}")?;
    if let Some(shots) = shots {
        write!(out, ",\"shots\":{shots},\"seed\":{seed}")?;
    }
    if let Some(p) = &output.probabilities {
        write!(out, ",\"probabilities\":{{")?;
        let shown = p.iter().enumerate().filter(|(_, v)| v.abs() > 1e-12);
        write_bitstring_map(out, shown.map(|(i, v)| (i, json_number(*v))), n)?;
        write!(out, "}}")?;
        if let Some(se) = &output.stderr {
            write!(out, ",\"stderr\":{{")?;
            let shown = p.iter().enumerate().filter(|(_, v)| v.abs() > 1e-12);
            write_bitstring_map(out, shown.map(|(i, _)| (i, json_number(se[i]))), n)?;
            write!(out, "}}")?;
        }
    }
    if !output.expectations.is_empty() {
        write!(out, ",\"expectation\":{{")?;
        for (k, (text, value, stderr)) in output.expectations.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            let key = serde_json::to_string(text).map_err(std::io::Error::other)?;
            let se = stderr.map_or("null".to_string(), json_number);
            write!(
                out,
                "{sep}{key}:{{\"value\":{},\"stderr\":{se}}}",
                json_number(*value)
            )?;
        }
        write!(out, "}}")?;
    }
    write!(out, ",\"report\":")?;
    serde_json::to_writer(&mut *out, &output.report).map_err(std::io::Error::other)?;
    writeln!(out, "}}")
}

/// `"bitstring": value` pairs, qubit 0 rightmost.
pub fn write_bitstring_map(
    out: &mut impl std::io::Write,
    entries: impl Iterator<Item = (usize, String)>,
    width: usize,
) -> std::io::Result<()> {
    for (k, (index, value)) in entries.enumerate() {
        let sep = if k == 0 { "" } else { "," };
        write!(
            out,
            "{sep}\"{}\":{value}",
            crate::circuit::bitstring(index, width)
        )?;
    }
    Ok(())
}

/// Shortest round-trip decimal form, valid JSON (`1e-7`, not `NaN`: non-finite is `null`).
pub fn json_number(v: f64) -> String {
    if v.is_finite() {
        ryu::Buffer::new().format_finite(v).to_string()
    } else {
        "null".into()
    }
}
