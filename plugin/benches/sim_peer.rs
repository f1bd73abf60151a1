//! Timing side of `make bench-sim` (driven by `bench/sim_vs_aer.py`): for every `*.qasm` in a
//! directory, the best of `--reps` runs of simulate + probabilities (parse excluded), and for the
//! `small/` subdirectory the best of `--reps` totals to parse and simulate all its circuits one
//! after another.
//! Prints one JSON line per case: `{"case": NAME, "seconds": S}`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use quargo::qasm;
use quargo::sim::{FusionLimits, Simulator};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut dir = None;
    let (mut threads, mut reps) = (0usize, 2usize);
    let mut fusion = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--threads" => threads = args.next().unwrap_or_default().parse()?,
            "--reps" => reps = args.next().unwrap_or_default().parse()?,
            "--fusion" => {
                let spec = args.next().unwrap_or_default();
                let (d, s) = spec.split_once(',').unwrap_or(("3", "8"));
                fusion = Some(FusionLimits {
                    dense: d.parse()?,
                    sparse: s.parse()?,
                });
            }
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: sim_peer DIR [--threads T] [--reps R]");
        return Ok(());
    };
    let mut sim = Simulator::new().with_threads(threads)?;
    if let Some(f) = fusion {
        sim = sim.with_fusion(f);
    }
    warm_up(&sim)?;
    for path in qasm_files(&dir)? {
        let circuit = qasm::parse_file(&path)?;
        let mut best = f64::INFINITY;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            let state = sim.run(&circuit)?;
            let probs = sim.install(|| state.probabilities());
            best = best.min(t.elapsed().as_secs_f64());
            std::hint::black_box(probs);
        }
        let case = path.file_stem().unwrap_or_default().to_string_lossy();
        println!("{{\"case\":\"{case}\",\"seconds\":{best}}}");
    }
    let small = dir.join("small");
    if small.is_dir() {
        let sources: Vec<String> = qasm_files(&small)?
            .iter()
            .map(std::fs::read_to_string)
            .collect::<Result<_, _>>()?;
        let mut best = f64::INFINITY;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            for src in &sources {
                let circuit = qasm::parse(src)?;
                let state = sim.run(&circuit)?;
                std::hint::black_box(state.probabilities());
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{{\"case\":\"small_batch\",\"seconds\":{best}}}");
    }
    Ok(())
}

/// Starts the thread pool and touches fresh memory once, as the peer's harness does too, so the
/// first timed case is not charged for process start-up.
fn warm_up(sim: &Simulator) -> anyhow::Result<()> {
    let mut circuit = quargo::circuit::Circuit::new(20);
    for q in 0..20 {
        circuit.push(quargo::circuit::Gate::H, &[q])?;
    }
    std::hint::black_box(sim.run(&circuit)?.probabilities());
    Ok(())
}

fn qasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "qasm"))
        .collect();
    files.sort();
    Ok(files)
}
