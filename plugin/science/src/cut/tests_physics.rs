//! Cutting against independent truth: every reconstruction is compared with a direct simulation
//! of the uncut circuit.

use super::*;
use crate::cancel::Cancel;
use crate::circuit::{Circuit, Gate};
use crate::sim::{sample_distribution, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

fn exact_results(circuit: &Circuit, plan: &CutPlan, setting: &[Basis]) -> Vec<FragmentResults> {
    (0..plan.fragments.len())
        .map(|f| {
            let outputs = output_bases(plan, f, setting);
            let probs = fragment_variants(circuit, plan, f, &outputs)
                .unwrap()
                .iter()
                .map(|v| {
                    Simulator::new()
                        .run(&v.circuit)
                        .unwrap()
                        .probabilities()
                        .to_vec()
                })
                .collect();
            FragmentResults { probs, shots: None }
        })
        .collect()
}

fn sampled_results(exact: &[FragmentResults], shots: u64, seed: u64) -> Vec<FragmentResults> {
    exact
        .iter()
        .enumerate()
        .map(|(f, r)| {
            let probs = r
                .probs
                .iter()
                .enumerate()
                .map(|(v, p)| {
                    let mut est = vec![0.0; p.len()];
                    for (i, c) in sample_distribution(p, shots, seed ^ (f as u64 * 1000 + v as u64))
                    {
                        est[i] = c as f64 / shots as f64;
                    }
                    est
                })
                .collect();
            FragmentResults {
                probs,
                shots: Some(vec![shots; r.probs.len()]),
            }
        })
        .collect()
}

fn direct(circuit: &Circuit) -> Vec<f64> {
    Simulator::new()
        .run(circuit)
        .unwrap()
        .probabilities()
        .to_vec()
}

fn tvd(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

fn check_exact(circuit: &Circuit, plan: &CutPlan, what: &str) {
    let z = vec![Basis::Z; circuit.num_qubits()];
    let got = distribution(plan, &exact_results(circuit, plan, &z), &Cancel::default()).unwrap();
    let want = direct(circuit);
    let d = tvd(&got, &want);
    assert!(d < 1e-9, "{what}: TVD {d:e} with {} cuts", plan.cuts.len());
}

fn random_structure(n: usize, gates: usize, rng: &mut ChaCha8Rng) -> Circuit {
    let mut c = Circuit::new(n);
    for _ in 0..gates {
        let a = rng.random_range(0..n);
        match rng.random_range(0..6) {
            0 => c.push(Gate::U3(rng.random(), rng.random(), rng.random()), &[a]),
            1 => c.push(Gate::H, &[a]),
            2 => c.push(Gate::Rz(rng.random_range(-PI..PI)), &[a]),
            _ => {
                // Mostly near-neighbour two-qubit gates, so small cuts exist.
                let b = (a + 1 + rng.random_range(0..2)) % n;
                if a == b {
                    continue;
                }
                match rng.random_range(0..3) {
                    0 => c.push(Gate::Cx, &[a, b]),
                    1 => c.push(Gate::Cz, &[a, b]),
                    _ => c.push(Gate::Rzz(rng.random_range(-PI..PI)), &[a, b]),
                }
            }
        }
        .unwrap();
    }
    c
}

fn hardware_efficient(n: usize, reps: usize, circular: bool, rng: &mut ChaCha8Rng) -> Circuit {
    let mut c = Circuit::new(n);
    for _ in 0..=reps {
        for q in 0..n {
            c.push(Gate::Ry(rng.random_range(-PI..PI)), &[q]).unwrap();
            c.push(Gate::Rz(rng.random_range(-PI..PI)), &[q]).unwrap();
        }
        for q in 0..n - 1 {
            c.push(Gate::Cx, &[q, q + 1]).unwrap();
        }
        if circular {
            c.push(Gate::Cx, &[n - 1, 0]).unwrap();
        }
    }
    c
}

fn qaoa_ring(n: usize, rng: &mut ChaCha8Rng) -> Circuit {
    let mut c = Circuit::new(n);
    for q in 0..n {
        c.push(Gate::H, &[q]).unwrap();
    }
    for _ in 0..2 {
        let (gamma, beta) = (rng.random_range(0.0..PI), rng.random_range(0.0..PI));
        for q in 0..n - 1 {
            c.push(Gate::Rzz(gamma), &[q, q + 1]).unwrap();
        }
        for q in 0..n {
            c.push(Gate::Rx(beta), &[q]).unwrap();
        }
    }
    c
}

fn qft_like(n: usize) -> Circuit {
    let mut c = Circuit::new(n);
    for q in 0..n {
        c.push(Gate::Ry(0.3 * q as f64 + 0.1), &[q]).unwrap();
    }
    for t in 0..n {
        c.push(Gate::H, &[t]).unwrap();
        // Only near neighbours, so the circuit can be cut with few cuts.
        for ctl in t + 1..(t + 3).min(n) {
            c.push(Gate::Cp(PI / (1 << (ctl - t)) as f64), &[ctl, t])
                .unwrap();
        }
    }
    c
}

#[test]
fn exact_reconstruction_matches_direct_simulation_across_structures() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut cases: Vec<(String, Circuit, usize)> = Vec::new();
    for n in [6, 8, 10, 12] {
        let m = n / 2 + 1;
        cases.push((
            format!("random {n}"),
            random_structure(n, 4 * n, &mut rng),
            m,
        ));
        cases.push((
            format!("hea linear {n}"),
            hardware_efficient(n, 1, false, &mut rng),
            m,
        ));
        cases.push((format!("qaoa {n}"), qaoa_ring(n, &mut rng), m));
        cases.push((format!("qft-like {n}"), qft_like(n), m));
    }
    // The ring closes every layer, so it needs wider fragments for few cuts.
    cases.push((
        "hea circular 6".into(),
        hardware_efficient(6, 1, true, &mut rng),
        5,
    ));
    cases.push((
        "hea circular 14".into(),
        hardware_efficient(14, 1, true, &mut rng),
        9,
    ));
    cases.push((
        "hea linear 16".into(),
        hardware_efficient(16, 1, false, &mut rng),
        8,
    ));
    for (what, circuit, m) in cases {
        let mut options = FindOptions::new(m);
        options.max_cuts = Some(6);
        let plan = match find_cuts(&circuit, options) {
            Ok(p) => p,
            Err(e) => panic!("{what}: {e}"),
        };
        assert!(plan.max_width() <= m, "{what}");
        let uncut = CutPlan::from_cuts(&circuit, &[]).unwrap();
        assert_eq!(plan.cuts.is_empty(), uncut.max_width() <= m, "{what}");
        eprintln!(
            "{what}: {} cuts, widths {:?}",
            plan.cuts.len(),
            plan.fragments.iter().map(|f| f.width()).collect::<Vec<_>>()
        );
        check_exact(&circuit, &plan, &what);
    }
}

#[test]
fn edge_cases_reconstruct_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let c = hardware_efficient(5, 2, false, &mut rng);
    let wires = plan::wire_gates(&c);
    check_exact(&c, &CutPlan::from_cuts(&c, &[]).unwrap(), "zero cuts");
    // A cut right after the first gate and right before the last gate of a wire.
    check_exact(
        &c,
        &CutPlan::from_cuts(&c, &[(2, 1)]).unwrap(),
        "after first gate",
    );
    let last = wires[2].len() - 1;
    check_exact(
        &c,
        &CutPlan::from_cuts(&c, &[(2, last)]).unwrap(),
        "before last gate",
    );
    // Several cuts on one wire; cuts whose two ends land in the same fragment.
    check_exact(
        &c,
        &CutPlan::from_cuts(&c, &[(2, 3), (2, 5), (2, 7)]).unwrap(),
        "three cuts on one wire",
    );
    // More than two fragments: blocks on {0,1}, {1,2}, {2,3} in sequence, cut between them.
    let mut b = Circuit::new(4);
    b.push(Gate::H, &[0]).unwrap();
    b.push(Gate::Cx, &[0, 1]).unwrap();
    b.push(Gate::Ry(0.7), &[1]).unwrap();
    b.push(Gate::Cx, &[1, 2]).unwrap();
    b.push(Gate::Rx(0.3), &[1]).unwrap();
    b.push(Gate::U3(0.2, 0.4, 0.6), &[2]).unwrap();
    b.push(Gate::Cz, &[2, 3]).unwrap();
    b.push(Gate::H, &[3]).unwrap();
    let chain = CutPlan::from_cuts(&b, &[(1, 1), (2, 1)]).unwrap();
    assert_eq!(chain.fragments.len(), 3);
    assert_eq!(chain.num_variants(), 3 + (4 * 3) + 4);
    check_exact(&b, &chain, "three fragments");
    let found = find_cuts(&b, FindOptions::new(2)).unwrap();
    assert_eq!(found.cuts.len(), 2);
    check_exact(&b, &found, "three fragments, found");
    // Disconnected pieces: two independent blocks plus an idle qubit.
    let mut d = Circuit::new(5);
    d.push(Gate::H, &[0]).unwrap();
    d.push(Gate::Cx, &[0, 1]).unwrap();
    d.push(Gate::Ry(0.4), &[3]).unwrap();
    d.push(Gate::Cx, &[3, 2]).unwrap();
    let plan = find_cuts(&d, FindOptions::new(2)).unwrap();
    assert!(plan.cuts.is_empty());
    check_exact(&d, &plan, "disconnected");
}

#[test]
fn pauli_expectations_match_direct_simulation() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let c = hardware_efficient(6, 1, false, &mut rng);
    let plan = find_cuts(&c, FindOptions::new(4)).unwrap();
    assert!(!plan.cuts.is_empty());
    let state = Simulator::new().run(&c).unwrap();
    for text in ["ZZZZZZ", "IXIIYZ", "XXXXXX", "YIIIIY", "IIZXII"] {
        let pauli: crate::pauli::PauliString = text.parse().unwrap();
        let setting: Vec<Basis> = (0..6)
            .map(|q| match pauli.letter(q) {
                b'X' => Basis::X,
                b'Y' => Basis::Y,
                _ => Basis::Z,
            })
            .collect();
        let mask = (0..6)
            .filter(|&q| pauli.letter(q) != b'I')
            .map(|q| 1 << q)
            .sum();
        let results = exact_results(&c, &plan, &setting);
        let (values, se) =
            expectation_terms(&plan, &results, &[(1.0, mask)], &Cancel::default()).unwrap();
        let want = state.expectation(&pauli).unwrap();
        assert!(
            (values[0] - want).abs() < 1e-10,
            "{text}: {} vs {want}",
            values[0]
        );
        assert!(se.is_none());
    }
}

#[test]
fn sampled_estimates_fall_within_five_standard_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let c = hardware_efficient(6, 1, false, &mut rng);
    let plan = find_cuts(&c, FindOptions::new(4)).unwrap();
    let z = vec![Basis::Z; 6];
    let exact = exact_results(&c, &plan, &z);
    let want = direct(&c);
    let state = Simulator::new().run(&c).unwrap();
    let zz: crate::pauli::PauliString = "ZZZZZZ".parse().unwrap();
    let want_zz = state.expectation(&zz).unwrap();
    for seed in 0..3u64 {
        let sampled = sampled_results(&exact, 4000, seed);
        let p = distribution(&plan, &sampled, &Cancel::default()).unwrap();
        let se = distribution_stderr(&plan, &sampled, &Cancel::default()).unwrap();
        let mut worst = 0.0f64;
        for x in 0..p.len() {
            assert!(
                se[x] > 0.0 || want[x] == 0.0,
                "outcome {x} has no error bar"
            );
            if se[x] > 0.0 {
                worst = worst.max((p[x] - want[x]).abs() / se[x]);
            }
        }
        assert!(
            worst < 5.0,
            "seed {seed}: worst outcome is {worst:.2} standard errors off"
        );
        let (v, e) =
            expectation_terms(&plan, &sampled, &[(1.0, 0b111111)], &Cancel::default()).unwrap();
        let e = e.unwrap();
        assert!(e > 0.0);
        assert!(
            (v[0] - want_zz).abs() < 5.0 * e,
            "seed {seed}: {} vs {want_zz} (se {e})",
            v[0]
        );
    }
}

#[test]
fn standard_errors_match_the_observed_spread() {
    // The delta-method error bar of <ZZ...Z> agrees with the spread over independent repetitions.
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let c = hardware_efficient(5, 1, false, &mut rng);
    let plan = find_cuts(&c, FindOptions::new(3)).unwrap();
    let exact = exact_results(&c, &plan, &[Basis::Z; 5]);
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for seed in 0..60u64 {
        let (v, e) = expectation_terms(
            &plan,
            &sampled_results(&exact, 2000, 100 + seed),
            &[(1.0, 0b11111)],
            &Cancel::default(),
        )
        .unwrap();
        values.push(v[0]);
        errors.push(e.unwrap());
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let spread =
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt();
    let predicted = errors.iter().sum::<f64>() / errors.len() as f64;
    let ratio = spread / predicted;
    assert!(
        (0.7..1.4).contains(&ratio),
        "observed spread / predicted = {ratio:.2}"
    );
}

#[test]
fn projection_gives_the_nearest_distribution() {
    let p = project_to_simplex(&[0.6, 0.5, -0.05, -0.05]);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(p.iter().all(|&v| v >= 0.0));
    assert!((p[0] - 0.55).abs() < 1e-12 && (p[1] - 0.45).abs() < 1e-12);
    let already = [0.25, 0.75];
    assert_eq!(project_to_simplex(&already), already.to_vec());
}
