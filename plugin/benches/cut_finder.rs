//! Cut-finder timing (`make bench-cut` prints it): 64 qubits, 1,000 two-qubit gates, max_qubits 32,
//! on three structures. Prints one JSON line per case.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use quargo::circuit::{Circuit, Gate};
use quargo::cut::{find_cuts, FindOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 64;
    let mut cases: Vec<(&str, Circuit)> = Vec::new();
    // Two 32-qubit halves with brickwork inside and a few links between them.
    let mut halves = Circuit::new(n);
    // A chain: nearest-neighbour gates only.
    let mut chain = Circuit::new(n);
    // Random pairs anywhere.
    let mut random = Circuit::new(n);
    for k in 0..1000 {
        let half = (k % 2) * 32;
        let a = half + rng.random_range(0..31);
        let (x, y) = if k % 97 == 0 { (31, 32) } else { (a, a + 1) };
        halves.push(Gate::Cx, &[x, y])?;
        let c = rng.random_range(0..n - 1);
        chain.push(Gate::Cz, &[c, c + 1])?;
        let p = rng.random_range(0..n);
        let q = (p + rng.random_range(1..n)) % n;
        random.push(Gate::Rzz(0.3), &[p, q])?;
    }
    cases.push(("halves_with_links", halves));
    cases.push(("nearest_neighbour_chain", chain));
    cases.push(("random_pairs", random));
    for (name, circuit) in &cases {
        let t = Instant::now();
        let plan = find_cuts(circuit, FindOptions::new(32))?;
        println!(
            "{{\"case\":\"{name}\",\"qubits\":{n},\"gates\":{},\"max_qubits\":32,\"cuts\":{},\"fragments\":{},\"seconds\":{}}}",
            circuit.len(),
            plan.cuts.len(),
            plan.fragments.len(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
