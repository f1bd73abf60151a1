//! The command line: argument parsing (clap), logging setup, and JSON output on stdout.
//!
//! Results go to stdout as JSON; logs, progress and errors go to stderr, so the output can be piped.

use crate::circuit::bitstring;
use crate::pauli::PauliString;
use crate::qasm;
use crate::sim::Simulator;
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
}

/// Entry point of the binary: runs the command and maps errors to a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Simulate(args) => simulate(&args, &mut out),
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
    let started = std::time::Instant::now();
    let state = sim.run(&circuit)?;
    tracing::info!(
        qubits = circuit.num_qubits(),
        gates = circuit.len(),
        seconds = started.elapsed().as_secs_f64(),
        "simulated"
    );
    let n = circuit.num_qubits();
    write!(out, "{{\"num_qubits\":{n}")?;
    match args.shots {
        None => {
            let probs = sim.install(|| state.probabilities());
            write!(out, ",\"probabilities\":{{")?;
            let nonzero = probs.iter().enumerate().filter(|(_, p)| **p > 1e-12);
            write_map(out, nonzero.map(|(i, p)| (i, Number::F(*p))), n)?;
            write!(out, "}}")?;
        }
        Some(shots) => {
            let seed = args.seed.unwrap_or_else(rand::random);
            let counts = sim.install(|| state.sample(shots, seed));
            write!(out, ",\"shots\":{shots},\"seed\":{seed},\"counts\":{{")?;
            write_map(out, counts.into_iter().map(|(i, c)| (i, Number::U(c))), n)?;
            write!(out, "}}")?;
        }
    }
    if !observables.is_empty() {
        write!(out, ",\"expectation\":{{")?;
        for (k, p) in observables.iter().enumerate() {
            let v = sim.install(|| state.expectation(p))?;
            let sep = if k == 0 { "" } else { "," };
            write!(out, "{sep}\"{p}\":{{\"value\":{}}}", json_f64(v))?;
        }
        write!(out, "}}")?;
    }
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
