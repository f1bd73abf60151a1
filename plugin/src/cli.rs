//! The command line: argument parsing (clap), logging setup, and each command's output (the
//! types and the writer of [`crate::output`]) on stdout.
//!
//! Results go to stdout as JSON; logs, progress and errors go to stderr, so the output can be piped.

use crate::cache::Cache;
use crate::cut::{find_cuts, FindOptions};
use crate::output::{
    write_json, ClearOutput, CutOutput, RemovedFilesOutput, RunPrinted, SimulateOutput,
};
use crate::pauli::parse_observables;
use crate::pipeline::{self, simulate_one, FragmentSummary, RunSpec, SingleRequest};
use crate::qasm;
use crate::sim::Simulator;
use crate::store::StoreError;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
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
    /// Log format on stderr: text, or json (one object per line, for log collectors).
    #[arg(
        long,
        global = true,
        env = "QUARGO_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// id_errors, tolerance_rejected, evicted).
    Cache(CacheCommand),
    /// Serve Argo's executor-plugin API: POST /api/v1/template.execute for templates whose
    /// `plugin` object has the single key `quargo` (ops cut, simulate, reconstruct, run; see
    /// templates/workflows/quargo-cutting.yaml), GET /healthz (liveness), GET /readyz (the store answers),
    /// GET /metrics (Prometheus text).
    ///
    /// Every flag can also be set by the environment variable shown. The socket is bound before
    /// anything else; calls get 503 until the store is open. Work that outlasts --inline-wait runs
    /// in the background and the reply is Running with a requeue; its state lives in the store,
    /// so a restarted server picks it up. SIGTERM stops it gracefully.
    Serve(ServeArgs),
    /// Run one pipeline step as a container step does (Argo container templates that Kueue
    /// schedules on CPU or GPU nodes): the plugin's ops, inputs and outputs, reading and writing
    /// the store by key.
    ///
    /// Prints the step's outputs as JSON ({"parameters": [...], "result": "..."}); with --outputs
    /// DIR also writes each parameter to DIR/NAME and the result to DIR/result, for Argo's
    /// `valueFrom.path`. A failed step exits 1 with the reason; a store that cannot be reached
    /// exits 75 (retry: nothing partial was written, and a rerun computes only what is missing), and
    /// so does a step stopped by SIGTERM (a preempted pod) at its next check.
    ///
    /// Example: quargo worker simulate --batch b/3f... --cache redis://quargo-redis:6379/0
    Worker(WorkerArgs),
    /// Print a value from the store by key (o/... outputs and b/... p/... records as JSON,
    /// c/... circuits as OpenQASM, r/... cached results as numbers).
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (Argo calls http://localhost:<first containerPort>).
    #[arg(long, env = "QUARGO_LISTEN", default_value = "127.0.0.1:14735")]
    pub listen: std::net::SocketAddr,
    /// The agent's token (compared with `Authorization: Bearer ...`).
    #[arg(long, env = "QUARGO_TOKEN_FILE", default_value = "/var/run/argo/token")]
    pub token_file: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    /// `requeue` of Running replies (Go duration: 500ms, 10s, 2m).
    #[arg(long, env = "QUARGO_REQUEUE", default_value = "10s", value_parser = go_duration)]
    pub requeue: std::time::Duration,
    /// How long a call waits for its job before answering Running (keep well under Argo's 30 s).
    #[arg(long, env = "QUARGO_INLINE_WAIT", default_value = "5s", value_parser = go_duration)]
    pub inline_wait: std::time::Duration,
    /// Lease of a running job; a job whose server died is taken over once its lease lapses.
    #[arg(long, env = "QUARGO_JOB_LEASE", default_value = "15s", value_parser = go_duration)]
    pub job_lease: std::time::Duration,
    /// Variant circuits per batch in `cut`'s output (one `simulate` step each).
    #[arg(long, env = "QUARGO_BATCH_SIZE", default_value_t = 64)]
    pub batch_size: usize,
    /// Largest request body (bytes, or with K/M/G); larger ones get 413.
    #[arg(long, env = "QUARGO_MAX_BODY", default_value = "2M", value_parser = byte_size)]
    pub max_body: u64,
    /// Simulator threads per job (default: one per core).
    #[arg(long, env = "QUARGO_THREADS", default_value_t = 0, value_parser = threads_in_range)]
    pub threads: usize,
    /// Most gates one request's circuit may expand to; larger ones fail with a message.
    #[arg(long, env = "QUARGO_MAX_GATES", default_value_t = 1_000_000)]
    pub max_gates: usize,
    /// Memory all jobs together may reserve (bytes, or with K/M/G; default: the container's
    /// cgroup limit, else the machine's memory, less an eighth).
    #[arg(long, env = "QUARGO_MAX_MEMORY", value_parser = byte_size)]
    pub max_memory: Option<u64>,
    /// Largest error a cached answer may carry (see `quargo run --help`).
    #[arg(long, env = "QUARGO_CACHE_TOLERANCE", default_value_t = crate::cache::DEFAULT_TOLERANCE, value_parser = tolerance)]
    pub cache_tolerance: f64,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The step: cut, simulate, reconstruct or run.
    #[arg(value_parser = ["cut", "simulate", "reconstruct", "run"])]
    pub op: String,
    /// The b/... batch key to simulate.
    #[arg(long)]
    pub batch: Option<String>,
    /// The p/... plan key to reconstruct.
    #[arg(long)]
    pub plan: Option<String>,
    /// A c/... circuit key (cut, run, or simulate of one circuit).
    #[arg(long)]
    pub circuit: Option<String>,
    /// An OpenQASM 2 file instead of --circuit.
    #[arg(long, value_name = "PATH")]
    pub qasm_file: Option<PathBuf>,
    /// Any other input, named as the plugin names it (maxQubits=4, observables=["ZZZZ"]);
    /// repeatable.
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = name_value)]
    pub inputs: Vec<(String, String)>,
    /// Folder to write each output parameter (and `result`) to, one file each.
    #[arg(long, value_name = "DIR")]
    pub outputs: Option<PathBuf>,
    /// Variant circuits per batch in `cut`'s output.
    #[arg(long, env = "QUARGO_BATCH_SIZE", default_value_t = 64)]
    pub batch_size: usize,
    /// Simulator threads (default: one per core).
    #[arg(long, env = "QUARGO_THREADS", default_value_t = 0, value_parser = threads_in_range)]
    pub threads: usize,
    /// Most gates the circuit may expand to.
    #[arg(long, env = "QUARGO_MAX_GATES", default_value_t = 1_000_000)]
    pub max_gates: usize,
    /// Memory the step may reserve (bytes, or with K/M/G; default: the container's cgroup limit,
    /// else the machine's memory, less an eighth).
    #[arg(long, env = "QUARGO_MAX_MEMORY", value_parser = byte_size)]
    pub max_memory: Option<u64>,
    /// Largest error a cached answer may carry (see `quargo run --help`).
    #[arg(long, env = "QUARGO_CACHE_TOLERANCE", default_value_t = crate::cache::DEFAULT_TOLERANCE, value_parser = tolerance)]
    pub cache_tolerance: f64,
    #[command(flatten)]
    pub store: StoreArg,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

/// A failure worth retrying (the store could not be reached): `quargo` exits 75 (EX_TEMPFAIL).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(String);

/// Exit code of a [`Transient`] failure.
pub const EXIT_RETRY: u8 = 75;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The store key (as a step's output parameter names it).
    pub key: String,
    #[command(flatten)]
    pub store: StoreArg,
}

fn go_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::argo::parse_go_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration such as 500ms, 10s or 2m"))
}

fn byte_size(text: &str) -> Result<u64, String> {
    crate::store::parse_size(text).ok_or_else(|| format!("'{text}' is not a size such as 2M"))
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
    /// Remove every cached result, memo and counter (with --all: also the plugin's data).
    Clear(ClearArgs),
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Also remove the plugin's data: circuits, batches, plans, outputs and job records.
    #[arg(long)]
    pub all: bool,
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
    /// File holding the secret that authenticates every stored value (keyed BLAKE3 MAC): a
    /// process with it accepts only values written with it. Without it values carry a checksum
    /// only (fine for a private embedded store; set it for a shared Redis).
    #[arg(
        long = "cache-key-file",
        env = "QUARGO_CACHE_KEY_FILE",
        value_name = "PATH"
    )]
    pub mac_secret_file: Option<PathBuf>,
    /// The secret itself (for a Kubernetes Secret through env valueFrom.secretKeyRef).
    #[arg(
        long = "cache-key",
        env = "QUARGO_CACHE_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub mac_secret: Option<String>,
}

impl StoreArg {
    /// The sealer this store's values are written with.
    pub fn sealer(&self) -> Result<crate::cache::codec::Sealer> {
        use crate::cache::codec::Sealer;
        let secret = match (&self.mac_secret, &self.mac_secret_file) {
            (Some(secret), _) => secret.as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read(path)
                .with_context(|| format!("cannot read the cache key file {}", path.display()))?,
            (None, None) => return Ok(Sealer::unkeyed()),
        };
        Ok(Sealer::keyed(&secret)?)
    }
}

#[derive(Debug, Args, Clone)]
pub struct CacheArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Neither read nor write the cache: compute everything.
    #[arg(long)]
    pub no_cache: bool,
    /// Largest error a cached answer may carry from rounding angles onto the circuit ID's grid
    /// (each probability and Pauli expectation); hits with a larger proven bound are recomputed.
    #[arg(long, env = "QUARGO_CACHE_TOLERANCE", default_value_t = crate::cache::DEFAULT_TOLERANCE, value_parser = tolerance)]
    pub tolerance: f64,
}

fn tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!(
            "'{text}' is not a non-negative number such as 1e-9"
        )),
    }
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
    #[command(flatten)]
    pub spec: RunSpec,
    /// Worker threads (default: one per core).
    #[arg(long, env = "QUARGO_THREADS", default_value_t = 0, value_parser = threads_in_range)]
    pub threads: usize,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// OpenQASM 2 file to simulate.
    pub file: PathBuf,
    /// Sample this many shots instead of printing exact probabilities.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::pipeline::MAX_SHOTS))]
    pub shots: Option<u64>,
    /// Seed for sampling (ChaCha8; the same seed gives the same counts on every machine).
    /// Without it a random seed is drawn and printed in the output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads for the simulator (default: one per core).
    #[arg(long, env = "QUARGO_THREADS", default_value_t = 0, value_parser = threads_in_range)]
    pub threads: usize,
    /// Also print this expectation value: a Pauli string (Qiskit order, qubit 0 rightmost) or a
    /// weighted sum such as "0.5*ZZ + 0.5*XX"; repeatable.
    #[arg(long = "observable", value_name = "OBSERVABLE")]
    pub observables: Vec<String>,
    /// Refuse states larger than this many bytes (default: the memory the system has available).
    #[arg(long, env = "QUARGO_MAX_MEMORY", value_name = "BYTES")]
    pub max_memory: Option<u128>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Entry point of the binary: runs the command and maps errors to a message and exit code 1.
pub fn main() -> ExitCode {
    // The verifier of a damaged LMDB store runs in a child process of this same binary; it may
    // crash, and must not take the caller with it.
    let mut raw = std::env::args_os().skip(1);
    if raw.next().is_some_and(|a| a == "__verify-lmdb") {
        let Some(dir) = raw.next() else {
            return ExitCode::from(2);
        };
        return match crate::store::lmdb::verify_here(std::path::Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(crate::store::lmdb::VERIFY_EXIT_DAMAGED as u8)
            }
        };
    }
    crate::store::lmdb::set_verifier(crate::store::lmdb::verify_in_child);
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Simulate(args) => simulate(&args, &mut out),
        Command::Cut(args) => cut(&args, &mut out),
        Command::Run(args) => run(&args, &mut out),
        Command::Cache(args) => cache_command(&args, &mut out),
        Command::Serve(args) => serve(&args),
        Command::Fetch(args) => fetch(&args, &mut out),
        Command::Worker(args) => worker(&args, &mut out),
    }
    .and_then(|()| out.flush().context("cannot write the output"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Transient>().is_some() {
                ExitCode::from(EXIT_RETRY)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `quargo serve`.
pub fn serve(args: &ServeArgs) -> Result<()> {
    let config = crate::server::ServerConfig {
        listen: args.listen,
        token_file: args.token_file.clone(),
        cache_url: args.store.url.clone(),
        jobs: crate::server::jobs::JobOptions {
            requeue: args.requeue,
            inline_wait: args.inline_wait,
            lease_ttl: args.job_lease,
        },
        batch_size: args.batch_size.max(1),
        max_body_bytes: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        threads: args.threads,
        max_gates: args.max_gates,
        cache_tolerance: args.cache_tolerance,
        sealer: args.store.sealer()?,
    };
    if let Some(bytes) = args.max_memory {
        crate::sim::memory::set_capacity(bytes);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quargo-serve")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(crate::server::serve(config));
    // Cancelled jobs stop within one step; do not wait on anything that does not.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// `quargo worker`: one plugin op, run in this process against the store.
pub fn worker(args: &WorkerArgs, out: &mut impl Write) -> Result<()> {
    use crate::server::ops::{Ops, Verdict};
    use serde_json::{Map, Value};
    let mut body = Map::new();
    body.insert("op".into(), Value::String(args.op.clone()));
    for (name, value) in [
        ("batch", &args.batch),
        ("plan", &args.plan),
        ("circuit", &args.circuit),
    ] {
        if let Some(value) = value {
            body.insert(name.into(), Value::String(value.clone()));
        }
    }
    if let Some(path) = &args.qasm_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        body.insert("qasm".into(), Value::String(text));
    }
    for (name, value) in &args.inputs {
        body.insert(name.clone(), Value::String(value.clone()));
    }
    if let Some(bytes) = args.max_memory {
        crate::sim::memory::set_capacity(bytes);
    }
    let options = crate::cache::CacheOptions {
        tolerance: args.cache_tolerance,
        sealer: args.store.sealer()?,
        ..Default::default()
    };
    let cache = Cache::open_with(&args.store.url, options)
        .map_err(|e| Transient(format!("cannot open the store: {e}")))?;
    let sim = Simulator::new().with_threads(args.threads)?;
    let ops = Ops::new(
        std::sync::Arc::new(cache),
        sim,
        args.batch_size,
        args.max_gates,
    );
    let cancel = crate::cancel::Cancel::new();
    stop_on_sigterm(cancel.clone());
    let outputs = match ops.execute(&body, &cancel) {
        Ok(outputs) => outputs,
        Err(e) => {
            ops.cache.flush();
            return Err(match e.verdict() {
                Verdict::Failed(message) => anyhow::anyhow!("{} failed: {message}", args.op),
                Verdict::Retry(e) => Transient(format!(
                    "{} stopped, the store failed (retry; nothing partial was written): {e}",
                    args.op
                ))
                .into(),
                Verdict::Stopped => Transient(format!(
                    "{} was stopped by SIGTERM (preempted?); what it finished is stored, a rerun computes the rest",
                    args.op
                ))
                .into(),
            });
        }
    };
    ops.cache.flush();
    if let Some(dir) = &args.outputs {
        write_output_files(dir, &outputs)?;
    }
    write_json(out, &outputs)?;
    Ok(())
}

/// Raises `cancel` on SIGTERM or SIGINT (Kueue preempts a pod by deleting it): the step stops at
/// its next check, with every result it finished already stored.
fn stop_on_sigterm(cancel: crate::cancel::Cancel) {
    let watcher = std::thread::Builder::new()
        .name("quargo-signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
                tracing::warn!("stopping at the next step: a signal asked to");
                cancel.cancel();
            });
        });
    if let Err(e) = watcher {
        tracing::warn!(error = %e, "cannot watch for SIGTERM; the step will not stop early");
    }
}

/// Each output parameter in `dir/NAME` and the result in `dir/result`, each written whole (a
/// temporary file renamed into place), so a reader never sees half a value.
fn write_output_files(dir: &std::path::Path, outputs: &crate::argo::Outputs) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = outputs.result.iter().map(|r| ("result", r.as_str()));
    let parameters = outputs
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()));
    for (name, value) in parameters.chain(result) {
        let path = dir.join(name);
        let partial = dir.join(format!(".{name}.partial"));
        std::fs::write(&partial, value)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `quargo fetch`.
pub fn fetch(args: &FetchArgs, out: &mut impl Write) -> Result<()> {
    let sealer = args.store.sealer()?;
    let store = crate::store::open(&args.store.url)?;
    let bytes = store
        .get(&args.key)?
        .with_context(|| format!("'{}' is not in {}", args.key, store.location()))?;
    if args.key.starts_with(crate::cache::RESULT_PREFIX) {
        // Cached results are sealed with their full key text, which we do not know here: show the
        // numbers after checking the checksum through the envelope's own length and hash.
        let values = sealer
            .open_any(&bytes)
            .context("the value is damaged or not sealed with this key")?;
        let numbers: Vec<f64> = values
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        return Ok(write_json(out, &numbers)?);
    }
    let opened = sealer
        .open(&bytes, &args.key)
        .map_err(|_| anyhow::anyhow!("the value under '{}' is damaged", args.key))?;
    out.write_all(opened.value)?;
    if !opened.value.ends_with(b"\n") {
        writeln!(out)?;
    }
    Ok(())
}

/// `quargo simulate`.
pub fn simulate(args: &SimulateArgs, out: &mut impl Write) -> Result<()> {
    let circuit = qasm::parse_file(&args.file)?;
    let n = circuit.num_qubits();
    let observables = parse_observables(&args.observables, n)?;
    let mut sim = Simulator::new().with_threads(args.threads)?;
    if let Some(bytes) = args.max_memory {
        sim = sim.with_memory_limit(bytes);
    }
    // The limit holds whether or not the result is cached: its output is as large as the state.
    sim.check_memory(n)?;
    let cache = open_cache(&args.cache)?;
    let request = SingleRequest {
        probabilities: args.shots.is_none(),
        shots: args.shots.map(|shots| (shots, args.seed)),
        observables: &observables,
    };
    let result = simulate_one(&circuit, &request, &sim, cache.as_ref())?;
    write_json(out, &SimulateOutput::new(n, &result, &args.observables))?;
    Ok(())
}

/// Opens the cache the flags name. A store that cannot be opened (unwritable directory, ...)
/// is a warning and no cache; a malformed URL is an error.
fn open_cache(args: &CacheArgs) -> Result<Option<Cache>> {
    if args.no_cache {
        return Ok(None);
    }
    let options = crate::cache::CacheOptions {
        tolerance: args.tolerance,
        sealer: args.store.sealer()?,
        ..Default::default()
    };
    match Cache::open_with(&args.store.url, options) {
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
        CacheAction::Stats(store) => store,
        CacheAction::Clear(clear) => &clear.store,
    };
    if let CacheAction::Clear(ClearArgs { all: true, .. }) = &args.action {
        // Removing everything needs no open store: a damaged file cannot stop it.
        if let Some((dir, _)) = crate::store::lmdb_location(&store.url)? {
            let removed_files = crate::store::lmdb::remove_files(&dir)?;
            let report = RemovedFilesOutput {
                location: format!("lmdb://{}", dir.display()),
                removed_files,
            };
            return Ok(write_json(out, &report)?);
        }
    }
    let cache = Cache::open(&store.url)?;
    match &args.action {
        CacheAction::Stats(_) => write_json(out, &cache.stats()?)?,
        CacheAction::Clear(clear) => {
            let mut removed = cache.clear()?;
            if clear.all {
                removed += cache.store().clear("")?;
            }
            let report = ClearOutput {
                location: cache.store().location(),
                removed,
            };
            write_json(out, &report)?;
        }
    }
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
    let report = CutOutput {
        num_qubits: plan.num_qubits,
        max_qubits: args.max_qubits,
        cuts: plan.cuts.clone(),
        fragments: FragmentSummary::of(&plan),
        variants: u64::try_from(plan.num_variants()).unwrap_or(u64::MAX),
        variants_without_dedup: if k == 0 {
            0
        } else {
            2u64.saturating_mul(8u64.saturating_pow(k))
        },
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json(out, &report)?;
    Ok(())
}

/// `quargo run`.
pub fn run(args: &RunArgs, out: &mut impl Write) -> Result<()> {
    let circuit = qasm::parse_file(&args.file)?;
    let options = args.spec.resolve(circuit.num_qubits())?;
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
    write_json(
        out,
        &RunPrinted::new(&output, options.spec.shots, options.seed),
    )?;
    Ok(())
}

/// `--threads`: 0 (one per core) up to [`crate::sim::MAX_THREADS`].
fn threads_in_range(text: &str) -> Result<usize, String> {
    let threads: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number"))?;
    if threads > crate::sim::MAX_THREADS {
        return Err(format!(
            "at most {} threads are allowed",
            crate::sim::MAX_THREADS
        ));
    }
    Ok(threads)
}
