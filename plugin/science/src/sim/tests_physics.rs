//! Physics tests of the simulator against independent truth: textbook matrices written out here,
//! closed-form states, and a naive dense-unitary reference that shares no code with the kernels.

use super::kernels::apply_matrix_small;
use super::*;
use crate::circuit::{Circuit, Gate};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

fn c(re: f64, im: f64) -> C64 {
    C64::new(re, im)
}

fn e(phi: f64) -> C64 {
    C64::from_polar(1.0, phi)
}

fn close(a: &[C64], b: &[C64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).norm() < tol)
}

/// Textbook matrices (Nielsen & Chuang, Qiskit's gate docs), row-major, little-endian with the
/// control(s) on the low bit(s), typed in independently of `Gate::matrix`.
fn textbook(g: Gate) -> Vec<C64> {
    let o = c(0.0, 0.0);
    let l = c(1.0, 0.0);
    let i = c(0.0, 1.0);
    let h = c(FRAC_1_SQRT_2, 0.0);
    let one_qubit_controlled = |u: [C64; 4]| {
        vec![
            l, o, o, o, //
            o, u[0], o, u[1], //
            o, o, l, o, //
            o, u[2], o, u[3],
        ]
    };
    use Gate::*;
    match g {
        Id => vec![l, o, o, l],
        X => vec![o, l, l, o],
        Y => vec![o, -i, i, o],
        Z => vec![l, o, o, -l],
        H => vec![h, h, h, -h],
        S => vec![l, o, o, i],
        Sdg => vec![l, o, o, -i],
        T => vec![l, o, o, c(FRAC_1_SQRT_2, FRAC_1_SQRT_2)],
        Tdg => vec![l, o, o, c(FRAC_1_SQRT_2, -FRAC_1_SQRT_2)],
        Sx => vec![c(0.5, 0.5), c(0.5, -0.5), c(0.5, -0.5), c(0.5, 0.5)],
        Sxdg => vec![c(0.5, -0.5), c(0.5, 0.5), c(0.5, 0.5), c(0.5, -0.5)],
        Rx(t) => vec![
            c((t / 2.0).cos(), 0.0),
            c(0.0, -(t / 2.0).sin()),
            c(0.0, -(t / 2.0).sin()),
            c((t / 2.0).cos(), 0.0),
        ],
        Ry(t) => vec![
            c((t / 2.0).cos(), 0.0),
            c(-(t / 2.0).sin(), 0.0),
            c((t / 2.0).sin(), 0.0),
            c((t / 2.0).cos(), 0.0),
        ],
        Rz(t) => vec![e(-t / 2.0), o, o, e(t / 2.0)],
        P(t) => vec![l, o, o, e(t)],
        U2(p, q) => vec![
            h,
            -e(q) * FRAC_1_SQRT_2,
            e(p) * FRAC_1_SQRT_2,
            e(p + q) * FRAC_1_SQRT_2,
        ],
        U3(t, p, q) => vec![
            c((t / 2.0).cos(), 0.0),
            -e(q) * (t / 2.0).sin(),
            e(p) * (t / 2.0).sin(),
            e(p + q) * (t / 2.0).cos(),
        ],
        Cx => one_qubit_controlled([o, l, l, o]),
        Cy => one_qubit_controlled([o, -i, i, o]),
        Cz => one_qubit_controlled([l, o, o, -l]),
        Ch => one_qubit_controlled([h, h, h, -h]),
        Crx(t) => one_qubit_controlled(textbook(Rx(t)).try_into().unwrap()),
        Cry(t) => one_qubit_controlled(textbook(Ry(t)).try_into().unwrap()),
        Crz(t) => one_qubit_controlled(textbook(Rz(t)).try_into().unwrap()),
        Cp(t) => one_qubit_controlled([l, o, o, e(t)]),
        Cu3(t, p, q) => one_qubit_controlled(textbook(U3(t, p, q)).try_into().unwrap()),
        Swap => vec![
            l, o, o, o, //
            o, o, l, o, //
            o, l, o, o, //
            o, o, o, l,
        ],
        Rxx(t) => {
            let (co, si) = (c((t / 2.0).cos(), 0.0), c(0.0, -(t / 2.0).sin()));
            vec![
                co, o, o, si, //
                o, co, si, o, //
                o, si, co, o, //
                si, o, o, co,
            ]
        }
        Rzz(t) => vec![
            e(-t / 2.0),
            o,
            o,
            o,
            o,
            e(t / 2.0),
            o,
            o,
            o,
            o,
            e(t / 2.0),
            o,
            o,
            o,
            o,
            e(-t / 2.0),
        ],
        Ccx | Cswap => {
            // Permutations of basis states: Toffoli flips bit 2 when bits 0 and 1 are set (3 <-> 7);
            // Fredkin exchanges bits 1 and 2 when bit 0 is set (3 <-> 5).
            let (a, b) = if g == Ccx { (3, 7) } else { (3, 5) };
            let mut m = vec![o; 64];
            for col in 0..8 {
                let row = if col == a {
                    b
                } else if col == b {
                    a
                } else {
                    col
                };
                m[row * 8 + col] = l;
            }
            m
        }
    }
}

fn all_gates(rng: &mut impl Rng) -> Vec<Gate> {
    let mut a = || rng.random_range(-2.0 * PI..2.0 * PI);
    use Gate::*;
    vec![
        Id,
        X,
        Y,
        Z,
        H,
        S,
        Sdg,
        T,
        Tdg,
        Sx,
        Sxdg,
        Rx(a()),
        Ry(a()),
        Rz(a()),
        P(a()),
        U2(a(), a()),
        U3(a(), a(), a()),
        Cx,
        Cy,
        Cz,
        Ch,
        Swap,
        Crx(a()),
        Cry(a()),
        Crz(a()),
        Cp(a()),
        Cu3(a(), a(), a()),
        Ccx,
        Cswap,
        Rxx(a()),
        Rzz(a()),
    ]
}

#[test]
fn every_gate_matches_its_textbook_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for g in all_gates(&mut rng) {
        assert!(
            close(&g.matrix(), &textbook(g), 1e-14),
            "{} differs from the textbook",
            g.name()
        );
    }
}

/// The naive reference: the full 2^n x 2^n unitary of each gate, multiplied into the state.
fn reference_state(circuit: &Circuit) -> Vec<C64> {
    let n = circuit.num_qubits();
    let dim = 1usize << n;
    let mut state = vec![c(0.0, 0.0); dim];
    state[0] = c(1.0, 0.0);
    for inst in circuit.instructions() {
        let g = inst.gate.matrix();
        let k = inst.qubits.len();
        let local = |i: usize| {
            (0..k)
                .map(|b| (i >> inst.qubits[b] & 1) << b)
                .sum::<usize>()
        };
        let mask: usize = inst.qubits.iter().map(|q| 1 << q).sum();
        let mut next = vec![c(0.0, 0.0); dim];
        for (r, out) in next.iter_mut().enumerate() {
            for (col, amp) in state.iter().enumerate() {
                if r & !mask == col & !mask {
                    *out += g[local(r) * (1 << k) + local(col)] * amp;
                }
            }
        }
        state = next;
    }
    state
}

fn random_circuit(n: usize, gates: usize, rng: &mut impl Rng) -> Circuit {
    let mut circuit = Circuit::new(n);
    while circuit.len() < gates {
        let pool = all_gates(rng);
        let g = *pool.choose(rng).unwrap();
        if g.num_qubits() > n {
            continue;
        }
        let mut qubits: Vec<usize> = (0..n).collect();
        for k in 0..g.num_qubits() {
            let j = rng.random_range(k..n);
            qubits.swap(k, j);
        }
        circuit.push(g, &qubits[..g.num_qubits()]).unwrap();
    }
    circuit
}

#[test]
fn single_gates_on_every_basis_state_reproduce_matrix_columns() {
    // Place each gate on scattered qubits of a 4-qubit register, including reversed argument order.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for g in all_gates(&mut rng) {
        let k = g.num_qubits();
        for qubits in [[3, 0, 2], [1, 3, 0]] {
            let mut circuit = Circuit::new(4);
            circuit.push(g, &qubits[..k]).unwrap();
            let want = reference_state(&circuit);
            for limits in [FusionLimits::NONE, FusionLimits::for_qubits(20)] {
                let got = Simulator::new().with_fusion(limits).run(&circuit).unwrap();
                assert!(close(got.amplitudes(), &want, 1e-12), "{}", g.name());
            }
        }
    }
}

#[test]
fn random_circuits_match_the_dense_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let limits = [
        FusionLimits::NONE,
        FusionLimits::for_qubits(8),
        FusionLimits::for_qubits(20),
        FusionLimits {
            dense: 5,
            sparse: 8,
        },
        FusionLimits {
            dense: 6,
            sparse: 6,
        },
    ];
    for case in 0..60 {
        let n = 1 + case % 8;
        let circuit = random_circuit(n, 10 + 3 * case, &mut rng);
        let want = reference_state(&circuit);
        for l in limits {
            let got = Simulator::new().with_fusion(l).run(&circuit).unwrap();
            assert!(
                close(got.amplitudes(), &want, 1e-10),
                "case {case} ({n} qubits) with {l:?}"
            );
        }
    }
}

#[test]
fn parallel_kernels_match_serial_application_on_large_states() {
    // 15 qubits crosses PARALLEL_MIN_QUBITS; the serial per-gate path was checked against the
    // dense reference above.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let circuit = random_circuit(15, 120, &mut rng);
    let mut want = StateVector::zero_state(15).amps.to_vec();
    for inst in circuit.instructions() {
        apply_matrix_small(&mut want, &inst.qubits, &inst.gate.matrix());
    }
    for l in [
        FusionLimits::NONE,
        FusionLimits::for_qubits(20),
        FusionLimits {
            dense: 6,
            sparse: 8,
        },
    ] {
        let sim = Simulator::new().with_threads(2).unwrap().with_fusion(l);
        let got = sim.run(&circuit).unwrap();
        assert!(close(got.amplitudes(), &want, 1e-10), "{l:?}");
    }
}

#[test]
fn bell_and_ghz_states() {
    for n in [2, 5, 16] {
        let mut circuit = Circuit::new(n);
        circuit.push(Gate::H, &[0]).unwrap();
        for q in 1..n {
            circuit.push(Gate::Cx, &[q - 1, q]).unwrap();
        }
        let probs = Simulator::new().run(&circuit).unwrap().probabilities();
        let last = (1 << n) - 1;
        assert!((probs[0] - 0.5).abs() < 1e-14 && (probs[last] - 0.5).abs() < 1e-14);
        assert!(probs[1..last].iter().all(|&p| p < 1e-28));
    }
}

#[test]
fn w_state() {
    // |W3> = (|001> + |010> + |100>)/sqrt(3), built with ry and controlled gates.
    let mut circuit = Circuit::new(3);
    // q0 = sqrt(2/3)|0> + sqrt(1/3)|1>; on q0 = 0 split evenly onto q1; on q0 = q1 = 0 set q2.
    let theta = 2.0 * (2.0f64 / 3.0).sqrt().acos();
    circuit.push(Gate::Ry(theta), &[0]).unwrap();
    circuit.push(Gate::X, &[0]).unwrap();
    circuit.push(Gate::Cry(PI / 2.0), &[0, 1]).unwrap();
    circuit.push(Gate::X, &[1]).unwrap();
    circuit.push(Gate::Ccx, &[0, 1, 2]).unwrap();
    circuit.push(Gate::X, &[0]).unwrap();
    circuit.push(Gate::X, &[1]).unwrap();
    let state = Simulator::new().run(&circuit).unwrap();
    let probs = state.probabilities();
    for (i, p) in probs.iter().enumerate() {
        let want = if i.count_ones() == 1 { 1.0 / 3.0 } else { 0.0 };
        assert!((p - want).abs() < 1e-12, "index {i}: {p}");
    }
}

fn qft(n: usize, input: usize) -> Circuit {
    let mut circuit = Circuit::new(n);
    for q in 0..n {
        if input >> q & 1 == 1 {
            circuit.push(Gate::X, &[q]).unwrap();
        }
    }
    for target in (0..n).rev() {
        circuit.push(Gate::H, &[target]).unwrap();
        for control in (0..target).rev() {
            let angle = PI / (1u64 << (target - control)) as f64;
            circuit.push(Gate::Cp(angle), &[control, target]).unwrap();
        }
    }
    for q in 0..n / 2 {
        circuit.push(Gate::Swap, &[q, n - 1 - q]).unwrap();
    }
    circuit
}

#[test]
fn qft_of_basis_states_is_the_discrete_fourier_transform() {
    for (n, x) in [(3, 5), (6, 17), (14, 12345)] {
        let state = Simulator::new().run(&qft(n, x)).unwrap();
        let dim = 1usize << n;
        let norm = 1.0 / (dim as f64).sqrt();
        for (k, amp) in state.amplitudes().iter().enumerate() {
            let phase = 2.0 * PI * ((x * k) % dim) as f64 / dim as f64;
            let want = C64::from_polar(norm, phase);
            assert!(
                (amp - want).norm() < 1e-10,
                "n={n} x={x} k={k}: {amp} vs {want}"
            );
        }
    }
}

fn pauli_matrix_expectation(state: &[C64], pauli: &PauliString) -> f64 {
    // Apply the Pauli letter by letter with the same reference machinery, then take <psi|P psi>.
    let mut v = state.to_vec();
    for q in 0..pauli.num_qubits() {
        let g = match pauli.letter(q) {
            b'X' => Gate::X,
            b'Y' => Gate::Y,
            b'Z' => Gate::Z,
            _ => continue,
        };
        apply_matrix_small(&mut v, &[q], &textbook(g));
    }
    state
        .iter()
        .zip(&v)
        .map(|(a, b)| a.conj() * b)
        .sum::<C64>()
        .re
}

#[test]
fn pauli_expectations_match_direct_evaluation() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for n in [1, 3, 6, 15] {
        let circuit = random_circuit(n, 40, &mut rng);
        let state = Simulator::new().run(&circuit).unwrap();
        for _ in 0..10 {
            let s: String = (0..n)
                .map(|_| *b"IXYZ".choose(&mut rng).unwrap() as char)
                .collect();
            let p: PauliString = s.parse().unwrap();
            let got = state.expectation(&p).unwrap();
            let want = pauli_matrix_expectation(state.amplitudes(), &p);
            assert!((got - want).abs() < 1e-10, "{s}: {got} vs {want}");
        }
    }
    let bell = {
        let mut c = Circuit::new(2);
        c.push(Gate::H, &[0]).unwrap();
        c.push(Gate::Cx, &[0, 1]).unwrap();
        Simulator::new().run(&c).unwrap()
    };
    let ev = |s: &str| bell.expectation(&s.parse().unwrap()).unwrap();
    assert!((ev("ZZ") - 1.0).abs() < 1e-14);
    assert!((ev("XX") - 1.0).abs() < 1e-14);
    assert!((ev("YY") + 1.0).abs() < 1e-14);
    assert!(ev("ZI").abs() < 1e-14);
    assert!(bell.expectation(&"Z".parse().unwrap()).is_err());
}

#[test]
fn sampled_counts_pass_a_chi_square_test() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let circuit = random_circuit(4, 30, &mut rng);
    let state = Simulator::new().run(&circuit).unwrap();
    let probs = state.probabilities();
    // 16 outcomes: 200,000 shots take the binomial path, 3 shots the sorted-uniform path.
    assert!(state.sample(3, 9).values().sum::<u64>() == 3);
    let shots = 200_000u64;
    for seed in [1u64, 2, 3] {
        let counts = state.sample(shots, seed);
        assert_eq!(counts.values().sum::<u64>(), shots);
        let mut chi2 = 0.0;
        let mut dof = 0;
        for (i, &p) in probs.iter().enumerate() {
            let expected = p * shots as f64;
            if expected < 5.0 {
                continue;
            }
            dof += 1;
            let observed = *counts.get(&i).unwrap_or(&0) as f64;
            chi2 += (observed - expected).powi(2) / expected;
        }
        // 99.9th percentile of chi-square with at most 15 degrees of freedom is 37.7.
        assert!(dof >= 5, "degenerate distribution");
        assert!(
            chi2 < 37.7,
            "seed {seed}: chi2 = {chi2} over {} dof",
            dof - 1
        );
    }
}

#[test]
fn few_shots_on_a_wide_state_pass_a_chi_square_test() {
    // 12 qubits, 1,000 shots: the sorted-uniform sampler. Two outcomes with cos^2 and sin^2 of 0.6.
    let mut circuit = Circuit::new(12);
    circuit.push(Gate::Ry(1.2), &[0]).unwrap();
    for q in 1..12 {
        circuit.push(Gate::Cx, &[q - 1, q]).unwrap();
    }
    let state = Simulator::new().run(&circuit).unwrap();
    let p0 = 0.6f64.cos().powi(2);
    for seed in [4u64, 5, 6] {
        let counts = state.sample(1000, seed);
        assert_eq!(counts.len(), 2);
        let zeros = counts[&0] as f64;
        let ones = counts[&4095] as f64;
        assert_eq!(zeros + ones, 1000.0);
        let chi2 = (zeros - 1000.0 * p0).powi(2) / (1000.0 * p0)
            + (ones - 1000.0 * (1.0 - p0)).powi(2) / (1000.0 * (1.0 - p0));
        // 99.9th percentile of chi-square with 1 degree of freedom.
        assert!(chi2 < 10.83, "seed {seed}: chi2 = {chi2}");
    }
}
