//! The command line: argument parsing (clap), logging setup, and JSON output on stdout.
//!
//! Results go to stdout as JSON; logs, progress and errors go to stderr, so the output can be piped.

use crate::cache::{Cache, ResultKind};
use crate::circuit::{bitstring, Circuit};
use crate::cut::{find_cuts, FindOptions};
use crate::pauli::{Observable, PauliString};
use crate::pipeline::{self, FragmentSummary, RunOptions};
use crate::qasm;
use crate::sim::Simulator;
use crate::sim::{sample_distribution, StateVector};
use crate::store::StoreError;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Hybrid quantum-classical workflows: simulate, cut and reconstruct quantum circuits.
///
/// Circuits are read from OpenQASM 2 files. Bitstrings follow Qiskit's convention: qubit 0 is the
/// rightmost character and the first declared register holds the lowest qubits.
#[derive(Debug, Parser)]
#[command(name = "quargo", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (for example `info` or `quargo=debug`); also read from RUST_LOG.
    #[arg(long, global = true, env = "QUARGO_LOG", default_value = "warn")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a circuit on the state-vector simulator and print its outcome distribution.
    ///
    /// Without --shots, prints exact probabilities (entries above 1e-12):
    ///   {"num_qubits": n, "probabilities": {"<bitstring>": p, ...}}
    /// With --shots, prints sampled counts:
    ///   {"num_qubits": n, "shots": N, "seed": S, "counts": {"<bitstring>": c, ...}}
    /// All qubits are read out at the end; `measure` statements do not change the output.
    ///
    /// Example: quargo simulate examples/ghz.qasm --shots 1000 --seed 7
    Simulate(SimulateArgs),
    /// Find wire cuts so that every fragment fits in --max-qubits, and print the plan as JSON:
    /// the cuts (qubit, and the instructions the cut sits between), the fragments (original qubit
    /// of each fragment qubit, width, gates, prepared and measured cuts) and the variant counts.
    ///
    /// Example: quargo cut examples/two_blocks.qasm --max-qubits 4
    Cut(CutArgs),
    /// Cut, simulate every fragment variant in parallel and reconstruct, in one process.
    ///
    /// Prints the same shape as `quargo simulate`: num_qubits and probabilities (exact, or the
    /// estimate with a per-outcome "stderr" map when --shots is given), "expectation" for each
    /// --observable ({"value": v, "stderr": s}), and a "report" (cuts, fragments, variants, shots,
    /// seconds per stage). Reconstructed probabilities may be slightly negative (round-off, or
    /// sampling noise): they are printed raw unless --project is given.
    ///
    /// Example: quargo run examples/two_blocks.qasm --max-qubits 4 --shots 2000 --seed 1 --observable ZZZZZZZ
    Run(RunArgs),
    /// Inspect or empty the result cache.
    ///
    /// `stats` prints JSON: location, entries, bytes, max_bytes, memo_entries, the ID recipe, and
    /// counters summed over every process that used the store (hits, misses,
    /// collisions_rejected, corrupt_values, store_errors, single_flight_waits, wait_timeouts,
    /// id_errors, evicted).
    Cache(CacheCommand),
}

#[derive(Debug, Args)]
pub struct CacheCommand {
    #[command(subcommand)]
    pub action: CacheAction,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Print entries, bytes and hit/miss counters as JSON.
    Stats(StoreArg),
    /// Remove every cached result, memo and counter.
    Clear(StoreArg),
}

#[derive(Debug, Args, Clone)]
pub struct StoreArg {
    /// Result cache: `lmdb://PATH[?max_bytes=4G]` (embedded; plain `lmdb://` is
    /// $QUARGO_CACHE_DIR or the platform cache directory) or `redis://[user:pass@]HOST:PORT/DB`
    /// (`rediss://` for TLS), shared by every worker.
    #[arg(
        long = "cache",
        env = "QUARGO_CACHE",
        default_value = "lmdb://",
        value_name = "URL"
    )]
    pub url: String,
}

#[derive(Debug, Args, Clone)]
pub struct CacheArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Neither read nor write the cache: compute everything.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct CutArgs {
    /// OpenQASM 2 file to cut.
    pub file: PathBuf,
    /// Most qubits per fragment.
    #[arg(long)]
    pub max_qubits: usize,
    /// Most cuts allowed; the command fails, naming what would work, when no plan fits.
    #[arg(long)]
    pub max_cuts: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// OpenQASM 2 file to run.
    pub file: PathBuf,
    /// Most qubits per fragment.
    #[arg(long)]
    pub max_qubits: usize,
    /// Most cuts allowed.
    #[arg(long)]
    pub max_cuts: Option<usize>,
    /// Sample this many shots per fragment variant (on average) instead of exact probabilities.
    #[arg(long)]
    pub shots: Option<u64>,
    /// Seed for sampling; without it a seed is drawn and printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Expectation value to reconstruct: a Pauli string (qubit 0 rightmost) or a weighted sum such
    /// as "0.5*ZZII + 0.5*XXII"; repeatable.
    #[arg(long = "observable", value_name = "OBSERVABLE")]
    pub observables: Vec<String>,
    /// How shots are spread over variants when sampling.
    #[arg(long, value_enum, default_value = "weighted")]
    pub allocation: crate::pipeline::Allocation,
    /// Project the reconstructed distribution onto the nearest probability distribution.
    #[arg(long)]
    pub project: bool,
    /// Skip the full distribution (it costs 4^cuts * 2^qubits); print expectation values only.
    #[arg(long)]
    pub no_probabilities: bool,
    /// Worker threads (default: one per core).
    #[arg(long, env = "QUARGO_THREADS", default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// OpenQASM 2 file to simulate.
    pub file: PathBuf,
    /// Sample this many shots instead of printing exact probabilities.
    #[arg(long)]
    pub shots: Option<u64>,
    /// Seed for sampling (ChaCha8; the same seed gives the same counts on every machine).
    /// Without it a random seed is drawn and printed in the output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads for the simulator (default: one per core).
    #[arg(long, env = "QUARGO_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Also print <P> for this Pauli string (Qiskit order, qubit 0 rightmost); repeatable.
    #[arg(long = "observable", value_name = "PAULI")]
    pub observables: Vec<String>,
    /// Refuse states larger than this many bytes (default: the memory the system has available).
    #[arg(long, env = "QUARGO_MAX_MEMORY", value_name = "BYTES")]
    pub max_memory: Option<u128>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Entry point of the binary: runs the command and maps errors to a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Simulate(args) => simulate(&args, &mut out),
        Command::Cut(args) => cut(&args, &mut out),
        Command::Run(args) => run(&args, &mut out),
        Command::Cache(args) => cache_command(&args, &mut out),
    }
    .and_then(|()| out.flush().context("cannot write the output"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// `quargo simulate`.
pub fn simulate(args: &SimulateArgs, out: &mut impl Write) -> Result<()> {
    let circuit = qasm::parse_file(&args.file)?;
    let observables: Vec<PauliString> = args
        .observables
        .iter()
        .map(|s| {
            let p: PauliString = s.parse().with_context(|| format!("bad observable '{s}'"))?;
            p.check_width(circuit.num_qubits())?;
            Ok(p)
        })
        .collect::<Result<_>>()?;
    let mut sim = Simulator::new().with_threads(args.threads)?;
    if let Some(bytes) = args.max_memory {
        sim = sim.with_memory_limit(bytes);
    }
    let n = circuit.num_qubits();
    // The limit holds whether or not the result is cached: its output is as large as the state.
    sim.check_memory(n)?;
    let cache = open_cache(&args.cache)?;
    let cache = cache.as_ref();
    let mut state = LazyState {
        sim: &sim,
        circuit: &circuit,
        state: None,
    };
    write!(out, "{{\"num_qubits\":{n}")?;
    match args.shots {
        None => {
            let probs = probabilities(cache, &mut state)?;
            write!(out, ",\"probabilities\":{{")?;
            let nonzero = probs.iter().enumerate().filter(|(_, p)| **p > 1e-12);
            write_map(out, nonzero.map(|(i, p)| (i, Number::F(*p))), n)?;
            write!(out, "}}")?;
        }
        Some(shots) => {
            let sample = |state: &mut LazyState, seed| -> Result<BTreeMap<usize, u64>> {
                let probs = probabilities(cache, state)?;
                Ok(sim.install(|| sample_distribution(&probs, shots, seed)))
            };
            // Counts are cached only for an explicit seed: a drawn seed asks for fresh samples.
            let (seed, counts) = match args.seed {
                Some(seed) => {
                    let kind = ResultKind::Counts {
                        shots,
                        seed_policy: format!("seed={seed}"),
                    };
                    let counts = match cache {
                        Some(c) => {
                            c.get_or_compute(&circuit, &kind, || sample(&mut state, seed))?
                                .0
                        }
                        None => sample(&mut state, seed)?,
                    };
                    (seed, counts)
                }
                None => {
                    let seed = rand::random();
                    (seed, sample(&mut state, seed)?)
                }
            };
            write!(out, ",\"shots\":{shots},\"seed\":{seed},\"counts\":{{")?;
            write_map(out, counts.into_iter().map(|(i, c)| (i, Number::U(c))), n)?;
            write!(out, "}}")?;
        }
    }
    if !observables.is_empty() {
        write!(out, ",\"expectation\":{{")?;
        for (k, p) in observables.iter().enumerate() {
            let kind = ResultKind::Expectation {
                observable: p.to_string(),
            };
            let compute = |state: &mut LazyState| -> Result<f64> {
                let s = state.get()?;
                Ok(sim.install(|| s.expectation(p))?)
            };
            let v = match cache {
                Some(c) => c.get_or_compute(&circuit, &kind, || compute(&mut state))?.0,
                None => compute(&mut state)?,
            };
            let sep = if k == 0 { "" } else { "," };
            write!(out, "{sep}\"{p}\":{{\"value\":{}}}", json_f64(v))?;
        }
        write!(out, "}}")?;
    }
    writeln!(out, "}}")?;
    Ok(())
}

/// Probability vectors above this many qubits are not cached (2^24 doubles = 128 MiB).
const MAX_CACHED_PROBABILITY_QUBITS: usize = 24;

/// The circuit's state, simulated on first use only (every result may come from the cache).
struct LazyState<'a> {
    sim: &'a Simulator,
    circuit: &'a Circuit,
    state: Option<StateVector>,
}

impl LazyState<'_> {
    fn get(&mut self) -> Result<&StateVector> {
        if self.state.is_none() {
            let started = std::time::Instant::now();
            self.state = Some(self.sim.run(self.circuit)?);
            tracing::info!(
                qubits = self.circuit.num_qubits(),
                gates = self.circuit.len(),
                seconds = started.elapsed().as_secs_f64(),
                "simulated"
            );
        }
        self.state.as_ref().context("the state was not simulated")
    }
}

fn probabilities(cache: Option<&Cache>, state: &mut LazyState) -> Result<Vec<f64>> {
    let sim = state.sim;
    let compute = |state: &mut LazyState| -> Result<Vec<f64>> {
        let s = state.get()?;
        Ok(sim.install(|| s.probabilities().to_vec()))
    };
    match cache {
        Some(c) if state.circuit.num_qubits() <= MAX_CACHED_PROBABILITY_QUBITS => {
            let circuit = state.circuit;
            Ok(
                c.get_or_compute(circuit, &ResultKind::Probabilities, || compute(state))?
                    .0,
            )
        }
        _ => compute(state),
    }
}

/// Opens the cache the flags name. A store that cannot be opened (unwritable directory, ...)
/// is a warning and no cache; a malformed URL is an error.
fn open_cache(args: &CacheArgs) -> Result<Option<Cache>> {
    if args.no_cache {
        return Ok(None);
    }
    match Cache::open(&args.store.url) {
        Ok(cache) => Ok(Some(cache)),
        Err(e @ StoreError::BadUrl { .. }) => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "cache unavailable; computing without it");
            Ok(None)
        }
    }
}

/// `quargo cache stats|clear`.
pub fn cache_command(args: &CacheCommand, out: &mut impl Write) -> Result<()> {
    let store = match &args.action {
        CacheAction::Stats(store) | CacheAction::Clear(store) => store,
    };
    let cache = Cache::open(&store.url)?;
    match args.action {
        CacheAction::Stats(_) => {
            serde_json::to_writer(&mut *out, &cache.stats()?)?;
        }
        CacheAction::Clear(_) => {
            let removed = cache.clear()?;
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({"location": cache.store().location(), "removed": removed}),
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// `quargo cut`.
pub fn cut(args: &CutArgs, out: &mut impl Write) -> Result<()> {
    let circuit = qasm::parse_file(&args.file)?;
    let mut options = FindOptions::new(args.max_qubits);
    options.max_cuts = args.max_cuts;
    let started = std::time::Instant::now();
    let plan = find_cuts(&circuit, options)?;
    let k = plan.cuts.len() as u32;
    let report = serde_json::json!({
        "num_qubits": plan.num_qubits,
        "max_qubits": args.max_qubits,
        "cuts": plan.cuts,
        "fragments": FragmentSummary::of(&plan),
        "variants": u64::try_from(plan.num_variants()).unwrap_or(u64::MAX),
        // The 2 * 8^k circuits of the scheme that leaves duplicates to a cache (Qdislib).
        "variants_without_dedup": if k == 0 { 0 } else { 2u64.saturating_mul(8u64.saturating_pow(k)) },
        "seconds": started.elapsed().as_secs_f64(),
    });
    serde_json::to_writer(&mut *out, &report)?;
    writeln!(out)?;
    Ok(())
}

/// `quargo run`.
pub fn run(args: &RunArgs, out: &mut impl Write) -> Result<()> {
    let circuit = qasm::parse_file(&args.file)?;
    let observables = args
        .observables
        .iter()
        .map(|s| {
            Ok((
                s.clone(),
                s.parse::<Observable>()
                    .with_context(|| format!("bad observable '{s}'"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let options = RunOptions {
        max_qubits: args.max_qubits,
        max_cuts: args.max_cuts,
        shots: args.shots,
        seed,
        allocation: args.allocation,
        observables,
        probabilities: !args.no_probabilities,
        project: args.project,
    };
    let sim = Simulator::new().with_threads(args.threads)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} simulating variants {pos}/{len} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let cache = open_cache(&args.cache)?;
    let result = pipeline::run(&circuit, &options, &sim, cache.as_ref(), &progress);
    bar.finish_and_clear();
    let output = result?;
    let n = output.num_qubits;
    write!(out, "{{\"num_qubits\":{n}")?;
    if args.shots.is_some() {
        write!(
            out,
            ",\"shots\":{},\"seed\":{seed}",
            args.shots.unwrap_or(0)
        )?;
    }
    if let Some(p) = &output.probabilities {
        write!(out, ",\"probabilities\":{{")?;
        let shown = p.iter().enumerate().filter(|(_, v)| v.abs() > 1e-12);
        write_map(out, shown.map(|(i, v)| (i, Number::F(*v))), n)?;
        write!(out, "}}")?;
        if let Some(se) = &output.stderr {
            write!(out, ",\"stderr\":{{")?;
            let shown = p.iter().enumerate().filter(|(_, v)| v.abs() > 1e-12);
            write_map(out, shown.map(|(i, _)| (i, Number::F(se[i]))), n)?;
            write!(out, "}}")?;
        }
    }
    if !output.expectations.is_empty() {
        write!(out, ",\"expectation\":{{")?;
        for (k, (text, value, stderr)) in output.expectations.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            let key = serde_json::to_string(text)?;
            let se = stderr.map_or("null".to_string(), json_f64);
            write!(
                out,
                "{sep}{key}:{{\"value\":{},\"stderr\":{se}}}",
                json_f64(*value)
            )?;
        }
        write!(out, "}}")?;
    }
    write!(out, ",\"report\":")?;
    serde_json::to_writer(&mut *out, &output.report)?;
    writeln!(out, "}}")?;
    Ok(())
}

enum Number {
    F(f64),
    U(u64),
}

fn write_map(
    out: &mut impl Write,
    entries: impl Iterator<Item = (usize, Number)>,
    width: usize,
) -> Result<()> {
    for (k, (index, value)) in entries.enumerate() {
        let sep = if k == 0 { "" } else { "," };
        let value = match value {
            Number::F(p) => json_f64(p),
            Number::U(c) => c.to_string(),
        };
        write!(out, "{sep}\"{}\":{value}", bitstring(index, width))?;
    }
    Ok(())
}

/// Shortest round-trip decimal form, valid JSON (`1e-7`, not `0.0000001` or `NaN`).
fn json_f64(v: f64) -> String {
    if v.is_finite() {
        ryu::Buffer::new().format_finite(v).to_string()
    } else {
        "null".into()
    }
}
