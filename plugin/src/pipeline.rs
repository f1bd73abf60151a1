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
use crate::pauli::{parse_observables, NamedObservable, ObservableInputError, PauliString};
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

/// What a user asks of a cutting run: the one model behind `quargo run`'s flags, the plugin's
/// `cut` and `run` inputs (same names in camelCase) and the options stored with a plan. Plain
/// values as given; [`RunSpec::resolve`] checks them against a circuit.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    /// Most qubits per fragment.
    #[arg(long)]
    pub max_qubits: usize,
    /// Most cuts allowed; the run fails, naming what would work, when no plan fits.
    #[arg(long)]
    pub max_cuts: Option<usize>,
    /// Sample this many shots per fragment variant (on average) instead of exact probabilities.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_SHOTS))]
    pub shots: Option<u64>,
    /// Seed for sampling; without it the command line draws one (and prints it) and the plugin
    /// uses 0, so that a retried step computes the same answer.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How shots are spread over variants when sampling.
    #[arg(long, value_enum, default_value = "weighted")]
    pub allocation: Allocation,
    /// Expectation value to reconstruct: a Pauli string (qubit 0 rightmost) or a weighted sum such
    /// as "0.5*ZZII + 0.5*XXII"; repeatable.
    #[arg(long = "observable", value_name = "OBSERVABLE")]
    pub observables: Vec<String>,
    /// Skip the full distribution (it costs 4^cuts * 2^qubits); print expectation values only.
    #[arg(long = "no-probabilities", action = clap::ArgAction::SetFalse)]
    pub probabilities: bool,
    /// Project the reconstructed distribution onto the nearest probability distribution.
    #[arg(long)]
    pub project: bool,
}

impl RunSpec {
    /// A spec with the defaults of every optional input.
    pub fn new(max_qubits: usize) -> RunSpec {
        RunSpec {
            max_qubits,
            max_cuts: None,
            shots: None,
            seed: None,
            allocation: Allocation::Weighted,
            observables: Vec::new(),
            probabilities: true,
            project: false,
        }
    }

    /// Checks the spec against a circuit of `num_qubits` qubits: observables parsed (the one
    /// place) and sized, shots in range, and a seed drawn when none was given.
    pub fn resolve(&self, num_qubits: usize) -> Result<RunOptions, RunError> {
        let observables = parse_observables(&self.observables, num_qubits)?;
        if let Some(shots) = self.shots {
            check_shots(shots)?;
        }
        let seed = self.seed.unwrap_or_else(rand::random);
        Ok(RunOptions {
            spec: RunSpec {
                seed: Some(seed),
                ..self.clone()
            },
            seed,
            observables,
        })
    }
}

/// A [`RunSpec`] checked against its circuit: what the pipeline runs on.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The spec, with the seed that was used filled in.
    pub spec: RunSpec,
    pub seed: u64,
    /// The spec's observables, parsed, in the order given.
    pub observables: Vec<NamedObservable>,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Find(#[from] FindError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    #[error(transparent)]
    Observable(#[from] ObservableInputError),
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

/// A reconstructed expectation value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectationEstimate {
    /// The observable as the user wrote it.
    pub text: String,
    pub value: f64,
    /// Standard error when sampled; `None` when exact.
    pub stderr: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub num_qubits: usize,
    pub probabilities: Option<Vec<f64>>,
    pub stderr: Option<Vec<f64>>,
    /// One per observable, in the order asked.
    pub expectations: Vec<ExpectationEstimate>,
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

/// One Pauli term of an observable, as reconstruction reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Term {
    /// Index of the readout setting that measures it.
    setting: usize,
    coefficient: f64,
    /// Qubits where the term is not the identity.
    mask: usize,
}

/// A cut plan with every fragment variant it needs, per readout setting: the input of the
/// simulate stage and of reconstruction. Deterministic for a circuit, cuts and options.
#[derive(Debug)]
pub struct Prepared {
    pub plan: CutPlan,
    /// Readout settings: all-Z for the distribution, one per basis pattern of the observables.
    settings: Vec<Setting>,
    z_setting: Option<usize>,
    /// Per observable, its Pauli terms.
    observable_terms: Vec<Vec<Term>>,
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
    let started = Instant::now();
    let mut find = FindOptions::new(options.spec.max_qubits);
    find.max_cuts = options.spec.max_cuts;
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
    // Checked by `RunSpec::resolve` too; options built by hand pass here.
    if let Some(shots) = options.spec.shots {
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

fn prepare_plan(
    circuit: &Circuit,
    plan: CutPlan,
    options: &RunOptions,
    sim: &Simulator,
    cut_seconds: f64,
) -> Result<Prepared, RunError> {
    check_reconstruction_cost(&plan, options)?;
    check_plan_size(circuit.num_qubits(), &plan, options, sim)?;
    let readout = Readout::of(circuit.num_qubits(), options);
    let mut work: Vec<Vec<Vec<crate::cut::Variant>>> = Vec::with_capacity(readout.settings.len());
    for setting in &readout.settings {
        let per_fragment = (0..plan.fragments.len())
            .map(|f| fragment_variants(circuit, &plan, f, &output_bases(&plan, f, setting)))
            .collect::<Result<Vec<_>, _>>()?;
        work.push(per_fragment);
    }
    Ok(Prepared {
        plan,
        settings: readout.settings,
        z_setting: readout.z_setting,
        observable_terms: readout.observable_terms,
        work,
        cut_seconds,
    })
}

/// Refuses plans with too many variants, a full distribution that would not fit or finish, or a
/// fragment wider than memory allows, before any variant is made.
fn check_plan_size(
    n: usize,
    plan: &CutPlan,
    options: &RunOptions,
    sim: &Simulator,
) -> Result<(), RunError> {
    let k = plan.cuts.len();
    if plan.num_variants() > MAX_VARIANTS {
        return Err(RunError::TooManyVariants {
            variants: plan.num_variants(),
            cuts: k,
            limit: MAX_VARIANTS,
        });
    }
    if options.spec.probabilities {
        // k <= MAX_RECONSTRUCTION_CUTS here, so 4^k is small; the shift is capped like the bytes.
        let terms = 4u128.pow(k as u32) << n.min(100);
        let bytes = 8u128 << n.min(100);
        let too_large = RunError::DistributionTooLarge {
            num_qubits: n,
            cuts: k,
            bytes,
        };
        if sim.check_memory(n.saturating_sub(1)).is_err() || terms > MAX_RECONSTRUCTION_TERMS {
            return Err(too_large);
        }
    }
    for f in &plan.fragments {
        sim.check_memory(f.width())?;
    }
    Ok(())
}

/// The readout settings a run needs: all-Z for the distribution, one per basis pattern of the
/// observables' terms (terms that share a pattern share a setting).
struct Readout {
    settings: Vec<Setting>,
    z_setting: Option<usize>,
    observable_terms: Vec<Vec<Term>>,
}

impl Readout {
    fn of(n: usize, options: &RunOptions) -> Readout {
        let mut settings: Vec<Setting> = Vec::new();
        let mut index_of = |s: Setting| match settings.iter().position(|x| *x == s) {
            Some(i) => i,
            None => {
                settings.push(s);
                settings.len() - 1
            }
        };
        let z_setting = options
            .spec
            .probabilities
            .then(|| index_of(vec![Basis::Z; n]));
        let observable_terms = options
            .observables
            .iter()
            .map(|named| {
                named
                    .observable
                    .terms
                    .iter()
                    .map(|(c, p)| Term {
                        setting: index_of(setting_of(p)),
                        coefficient: *c,
                        mask: pauli_mask(p),
                    })
                    .collect()
            })
            .collect();
        Readout {
            settings,
            z_setting,
            observable_terms,
        }
    }
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
    let missing = prepared
        .distinct_circuits()
        .iter()
        .filter(|(id, _)| !probs_of.contains_key(*id))
        .count();
    if missing > 0 {
        return Err(RunError::MissingResults { missing });
    }
    let _reconstruction_memory = reserve_reconstruction(prepared, sim)?;
    let mut seconds = StageSeconds {
        cut: prepared.cut_seconds,
        ..Default::default()
    };
    let sample_started = Instant::now();
    let (results, shots_total) = fragment_results(prepared, probs_of, options);
    seconds.simulate = sample_started.elapsed().as_secs_f64();

    let rec_started = Instant::now();
    let mut notes = Vec::new();
    let distribution = match prepared.z_setting {
        Some(z) => Some(reconstruct_distribution(
            n,
            prepared,
            &results[z],
            options,
            sim,
            &mut notes,
        )?),
        None => None,
    };
    let expectations = reconstruct_expectations(prepared, &results, options, sim)?;
    seconds.reconstruct = rec_started.elapsed().as_secs_f64();

    let plan = &prepared.plan;
    let (probabilities, stderr) =
        distribution.map_or((None, None), |d| (Some(d.probabilities), d.stderr));
    Ok(RunOutput {
        num_qubits: n,
        probabilities,
        stderr,
        expectations,
        report: RunReport {
            cuts: plan.cuts.clone(),
            fragments: FragmentSummary::of(plan),
            variants: prepared.work.iter().flatten().map(Vec::len).sum(),
            circuits_simulated: 0,
            cache_hits: 0,
            shots_total: options.spec.shots.map(|_| shots_total),
            seconds,
            notes,
        },
    })
}

/// Reserves the copies of the variants' distributions and the fragment tensors built from them.
fn reserve_reconstruction(
    prepared: &Prepared,
    sim: &Simulator,
) -> Result<crate::sim::memory::Reservation, SimError> {
    let result_bytes: u128 = prepared
        .work
        .iter()
        .flatten()
        .flatten()
        .map(|v| 8u128 << v.circuit.num_qubits().min(100))
        .fold(0, u128::saturating_add);
    let tensor_bytes = 16u128
        .saturating_mul(tensor_entries(&prepared.plan))
        .saturating_mul(prepared.settings.len() as u128);
    sim.reserve(
        result_bytes.saturating_add(tensor_bytes),
        "the fragment results and tensors of the reconstruction",
    )
}

/// Fragment results per readout setting: the exact distributions, or samples of them with the
/// chosen shot allocation. Returns them and the shots drawn in all.
fn fragment_results(
    prepared: &Prepared,
    probs_of: &HashMap<String, Vec<f64>>,
    options: &RunOptions,
) -> (Vec<Vec<FragmentResults>>, u64) {
    let mut shots_total = 0u64;
    let results = prepared
        .work
        .iter()
        .enumerate()
        .map(|(si, per_fragment)| {
            let all: Vec<&crate::cut::Variant> = per_fragment.iter().flatten().collect();
            let weight_sum: f64 = all.iter().map(|v| variant_weight(&v.key)).sum();
            per_fragment
                .iter()
                .map(|variants| match options.spec.shots {
                    None => FragmentResults {
                        probs: variants.iter().map(|v| probs_of[&v.id].clone()).collect(),
                        shots: None,
                    },
                    Some(shots) => {
                        let budget = shots as f64 * all.len() as f64;
                        let sampling = Sampling {
                            shots,
                            budget,
                            weight_sum,
                            setting: si,
                        };
                        sample_fragment(variants, probs_of, options, &sampling, &mut shots_total)
                    }
                })
                .collect()
        })
        .collect();
    (results, shots_total)
}

/// How one readout setting's variants are sampled.
struct Sampling {
    /// Shots per variant (on average, with weighted allocation).
    shots: u64,
    /// Shots of the whole setting.
    budget: f64,
    /// Sum of the setting's variant weights.
    weight_sum: f64,
    setting: usize,
}

fn sample_fragment(
    variants: &[crate::cut::Variant],
    probs_of: &HashMap<String, Vec<f64>>,
    options: &RunOptions,
    sampling: &Sampling,
    shots_total: &mut u64,
) -> FragmentResults {
    let mut probs = Vec::with_capacity(variants.len());
    let mut used = Vec::with_capacity(variants.len());
    for v in variants {
        let n_v = match options.spec.allocation {
            Allocation::Uniform => sampling.shots,
            Allocation::Weighted => {
                ((sampling.budget * variant_weight(&v.key) / sampling.weight_sum).round() as u64)
                    .max(1)
            }
        };
        let seed = derive_seed(options.seed, sampling.setting, &v.id);
        let exact = &probs_of[&v.id];
        let counts = sample_distribution(exact, n_v, seed);
        let mut estimate = vec![0.0; exact.len()];
        for (i, c) in counts {
            estimate[i] = c as f64 / n_v as f64;
        }
        *shots_total = shots_total.saturating_add(n_v);
        probs.push(estimate);
        used.push(n_v);
    }
    FragmentResults {
        probs,
        shots: Some(used),
    }
}

/// A reconstructed distribution and, when sampled, its per-outcome standard errors.
struct Distribution {
    probabilities: Vec<f64>,
    stderr: Option<Vec<f64>>,
}

/// The full distribution from the all-Z setting's fragment results (its memory reserved first).
fn reconstruct_distribution(
    n: usize,
    prepared: &Prepared,
    results: &[FragmentResults],
    options: &RunOptions,
    sim: &Simulator,
    notes: &mut Vec<String>,
) -> Result<Distribution, RunError> {
    let plan = &prepared.plan;
    let cancel = sim.cancel();
    let _distribution_memory = sim.reserve(
        8u128 << n.min(100),
        &format!("the {n}-qubit reconstructed distribution"),
    )?;
    let mut probabilities = sim.install(|| distribution(plan, results, cancel))?;
    let mut stderr = None;
    if options.spec.shots.is_some() {
        let k = plan.cuts.len();
        let cost = (4u128.pow(k as u32) << n.min(100)).saturating_mul(plan.fragments.len() as u128);
        if cost <= MAX_STDERR_TERMS {
            stderr = Some(sim.install(|| distribution_stderr(plan, results, cancel))?);
        } else {
            notes.push(format!(
                "per-outcome standard errors skipped: they would cost {cost} terms; expectation values carry theirs"
            ));
        }
    }
    if options.spec.project {
        probabilities = project_to_simplex(&probabilities);
    }
    Ok(Distribution {
        probabilities,
        stderr,
    })
}

/// Every observable's value, term by term from the setting that measures it; standard errors
/// when sampled (settings are sampled independently, so their variances add).
fn reconstruct_expectations(
    prepared: &Prepared,
    results: &[Vec<FragmentResults>],
    options: &RunOptions,
    sim: &Simulator,
) -> Result<Vec<ExpectationEstimate>, RunError> {
    let cancel = sim.cancel();
    let mut expectations = Vec::with_capacity(options.observables.len());
    for (named, terms) in options.observables.iter().zip(&prepared.observable_terms) {
        let mut value = 0.0;
        let mut variance = Some(0.0);
        for (si, setting_results) in results.iter().enumerate() {
            let group: Vec<(f64, usize)> = terms
                .iter()
                .filter(|t| t.setting == si)
                .map(|t| (t.coefficient, t.mask))
                .collect();
            if group.is_empty() {
                continue;
            }
            let (values, se) = expectation_terms(&prepared.plan, setting_results, &group, cancel)?;
            value += group
                .iter()
                .zip(&values)
                .map(|((c, _), v)| c * v)
                .sum::<f64>();
            variance = match (variance, se) {
                (Some(acc), Some(s)) => Some(acc + s * s),
                _ => None,
            };
        }
        expectations.push(ExpectationEstimate {
            text: named.text.clone(),
            value,
            stderr: options.spec.shots.and(variance.map(f64::sqrt)),
        });
    }
    Ok(expectations)
}

/// What to compute for one uncut circuit (`quargo simulate`, the plugin's `simulate`).
#[derive(Debug)]
pub struct SingleRequest<'a> {
    /// Exact probabilities.
    pub probabilities: bool,
    /// Sampled counts: (shots, seed). Counts are cached only for an explicit seed.
    pub shots: Option<(u64, Option<u64>)>,
    pub observables: &'a [NamedObservable],
}

impl SingleRequest<'_> {
    /// Every Pauli term of every observable, with its coefficient, in order.
    fn pauli_terms(&self) -> impl Iterator<Item = &(f64, PauliString)> {
        self.observables
            .iter()
            .flat_map(|named| named.observable.terms.iter())
    }
}

/// Sampled outcomes of one circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub shots: u64,
    /// The seed used (drawn when none was given).
    pub seed: u64,
    /// Occurrences by outcome index.
    pub counts: BTreeMap<usize, u64>,
}

/// The answer for one uncut circuit.
#[derive(Debug, Clone, Default)]
pub struct SingleResult {
    pub probabilities: Option<Vec<f64>>,
    pub counts: Option<Counts>,
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
    for (_, p) in request.pauli_terms() {
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
        result.counts = Some(Counts {
            shots,
            seed,
            counts,
        });
    }
    // Each Pauli term is cached on its own, so sums that share terms share their results.
    for named in request.observables {
        let mut value = 0.0;
        for (coefficient, p) in &named.observable.terms {
            sim.cancel().check()?;
            let kind = ResultKind::Expectation {
                observable: p.to_string(),
            };
            let compute = |state: &mut LazyState| -> Result<f64, SimError> {
                let s = state.get()?;
                sim.install(|| s.expectation(p))
            };
            let term = match cache {
                Some(c) => c.get_or_compute(circuit, &kind, || compute(&mut state))?.0,
                None => compute(&mut state)?,
            };
            value += coefficient * term;
        }
        result.expectations.push(value);
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
    kinds.extend(request.pauli_terms().map(|(_, p)| ResultKind::Expectation {
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
        result.counts = Some(Counts {
            shots,
            seed,
            counts: CacheValue::decode(values.next()?)?,
        });
    }
    for named in request.observables {
        let mut value = 0.0;
        for (coefficient, _) in &named.observable.terms {
            value += coefficient * <f64 as CacheValue>::decode(values.next()?)?;
        }
        result.expectations.push(value);
    }
    Some(result)
}
