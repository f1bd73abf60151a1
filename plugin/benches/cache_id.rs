//! Timing side of the circuit-ID benchmark (`bench/id_vs_pyzx.py`): for every `*.qasm` in a
//! directory, the best of `--reps` runs of `circuit_id` (parse excluded). One JSON line per file.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use quargo::cache::id::circuit_id;
use quargo::qasm;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut dir = None;
    let mut reps = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--reps" => reps = args.next().unwrap_or_default().parse()?,
            other => dir = Some(PathBuf::from(other)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: cache_id DIR [--reps R]");
        return Ok(());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "qasm"))
        .collect();
    files.sort();
    for path in files {
        let circuit = qasm::parse_file(&path)?;
        let mut best = f64::INFINITY;
        let mut vertices = 0;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            let id = circuit_id(&circuit)?;
            best = best.min(t.elapsed().as_secs_f64());
            vertices = id.graph.vertices.len();
        }
        let case = path.file_stem().unwrap_or_default().to_string_lossy();
        println!("{{\"case\":\"{case}\",\"seconds\":{best},\"vertices\":{vertices}}}");
    }
    Ok(())
}
