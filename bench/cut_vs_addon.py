#!/usr/bin/env python3
"""quargo's cutting pipeline vs qiskit-addon-cutting on EfficientSU2, same circuits, one run.

Peer: `find_cuts` with DeviceConstraints(qubits_per_subcircuit=M) (gate and wire cuts allowed),
`cut_wires` + `expand_observables` + `partition_problem`, `generate_cutting_experiments`, Aer
`SamplerV2`, `reconstruct_expectation_values`. quargo: `quargo run --max-qubits M --shots S
--observable O` (wire cuts only), three ways: the same *total* shot budget as the peer; the
budget raised (x4 steps) until quargo's standard error is at most the peer's observed error
("matched"); and exact fragment probabilities (no sampling). The peer's error is the RMS over
`--repeats` seeded sampling runs of the same experiments (one run for circular: ~4 minutes each);
its time is one run. Observable: the
sum of single-qubit Z over every qubit. Exact value: qiskit's Statevector on the uncut circuit.

Cases: circular entanglement at 16 qubits, linear at 16 and 24. Circular at 24 qubits is estimated
at ~93 minutes for the peer, so only quargo runs it.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from qiskit import qasm2
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp, Statevector


def ansatz(n, entanglement):
    qc = efficient_su2(n, entanglement=entanglement, reps=2)
    rng = np.random.default_rng(1)
    return qc.assign_parameters(rng.uniform(-np.pi, np.pi, qc.num_parameters))


def z_sum(n):
    return SparsePauliOp.from_list([("I" * (n - 1 - q) + "Z" + "I" * q, 1.0) for q in range(n)])


def peer(qc, observable, m, shots, repeats):
    from qiskit_addon_cutting import (cut_wires, expand_observables, generate_cutting_experiments,
                                      partition_problem, reconstruct_expectation_values)
    from qiskit_addon_cutting.automated_cut_finding import DeviceConstraints, OptimizationParameters, find_cuts
    from qiskit_aer.primitives import SamplerV2

    times = {}
    t = time.perf_counter()
    cut_circuit, meta = find_cuts(qc, OptimizationParameters(seed=111), DeviceConstraints(qubits_per_subcircuit=m))
    times["cut"] = time.perf_counter() - t
    t = time.perf_counter()
    moved = cut_wires(cut_circuit)
    expanded = expand_observables(observable.paulis, qc, moved)
    problem = partition_problem(circuit=moved, observables=expanded)
    subexperiments, coefficients = generate_cutting_experiments(
        circuits=problem.subcircuits, observables=problem.subobservables, num_samples=np.inf)
    times["generate"] = time.perf_counter() - t
    values = []
    for r in range(repeats):
        t = time.perf_counter()
        sampler = SamplerV2(seed=1000 + r)
        results = {label: sampler.run(circuits, shots=shots).result() for label, circuits in subexperiments.items()}
        simulate = time.perf_counter() - t
        t = time.perf_counter()
        terms = reconstruct_expectation_values(results, coefficients, problem.subobservables)
        values.append(float(np.dot(terms, observable.coeffs).real))
        if r == 0:
            times["simulate"] = simulate
            times["reconstruct"] = time.perf_counter() - t
    count = sum(len(c) for c in subexperiments.values())
    return values, times, count


def quargo(path, n, m, shots, seed):
    observable = " + ".join("I" * (n - 1 - q) + "Z" + "I" * q for q in range(n))
    plan = json.loads(subprocess.run(["target/release/quargo", "cut", path, "--max-qubits", str(m)],
                                     check=True, capture_output=True, text=True).stdout)
    t = time.perf_counter()
    cmd = ["target/release/quargo", "run", path, "--max-qubits", str(m), "--no-probabilities",
           "--observable", observable, "--seed", str(seed), "--threads", "2"]
    if shots:
        cmd += ["--shots", str(shots)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    wall = time.perf_counter() - t
    e = out["expectation"][observable]
    return e["value"], e["stderr"], wall, out["report"], plan


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shots", type=int, default=1024, help="peer shots per sub-experiment")
    ap.add_argument("--out", default="bench/out/cut")
    ap.add_argument("--skip-peer-circular", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="peer sampling runs for its error (linear cases)")
    ap.add_argument("--only", help="run only cases whose name contains this, e.g. 'linear 24'")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cases = [("circular", 16, True), ("linear", 16, True), ("linear", 24, True), ("circular", 24, False)]
    print(f"EfficientSU2 reps=2, parameters uniform(-pi, pi) from seed 1, observable sum_i Z_i, M = n/2;")
    print(f"peer shots per sub-experiment = {args.shots}; quargo gets the same total shot budget.\n")
    hdr = (f"{'case':<14}{'tool':<9}{'cuts':>6}{'circuits':>9}{'cut s':>9}{'gen s':>8}{'sim s':>9}"
           f"{'rec s':>8}{'total s':>9}{'|error|':>10}{'stderr':>9}")
    print(hdr)
    print("-" * len(hdr))
    for ent, n, run_peer in cases:
        if args.only and args.only not in f"{ent} {n}":
            continue
        qc = ansatz(n, ent)
        m = n // 2
        path = os.path.join(args.out, f"su2_{ent}_{n}.qasm")
        with open(path, "w") as f:
            f.write(qasm2.dumps(qc))
        obs = z_sum(n)
        exact = float(Statevector(qc).expectation_value(obs).real)
        name = f"{ent} {n}"
        peer_total = None
        peer_wall = None
        if run_peer and not (ent == "circular" and args.skip_peer_circular):
            t = time.perf_counter()
            repeats = 1 if ent == "circular" else args.repeats
            values, times, count = peer(qc, obs, m, args.shots, repeats)
            wall = sum(times.values())
            rms = float(np.sqrt(np.mean([(v - exact) ** 2 for v in values])))
            peer_wall = wall
            peer_total = count * args.shots
            print(f"{name:<14}{'peer':<9}{'-':>6}{count:>9}{times['cut']:>9.3f}{times['generate']:>8.3f}"
                  f"{times['simulate']:>9.3f}{times['reconstruct']:>8.3f}{wall:>9.3f}{rms:>10.2e}{'-':>9}"
                  f"  rms error over {repeats} sampling run(s)", flush=True)
        plan = json.loads(subprocess.run(["target/release/quargo", "cut", path, "--max-qubits", str(m)],
                                         check=True, capture_output=True, text=True).stdout)
        variants = int(plan["variants"])
        budget = peer_total or args.shots * 2592
        rows = [("equal shots", 1)]
        peer_error = rms if peer_wall else None
        for label, factor in rows + [("matched", None), ("exact", 0)]:
            if factor is None:
                if peer_error is None:
                    continue
                # Raise the budget until quargo's standard error is at most the peer's error.
                factor = 4
                while True:
                    value, stderr, wall, report, _ = quargo(path, n, m, max(1, budget * factor // variants), seed=1)
                    if stderr <= peer_error or factor >= 1024:
                        break
                    factor *= 4
                label = f"x{factor} shots"
            elif factor == 0:
                value, stderr, wall, report, _ = quargo(path, n, m, None, seed=1)
            else:
                value, stderr, wall, report, _ = quargo(path, n, m, max(1, budget * factor // variants), seed=1)
            s = report["seconds"]
            se = f"{stderr:>9.1e}" if stderr is not None else f"{'exact':>9}"
            print(f"{name:<14}{'quargo':<9}{len(report['cuts']):>6}{report['circuits_simulated']:>9}{s['cut']:>9.3f}"
                  f"{'-':>8}{s['simulate']:>9.3f}{s['reconstruct']:>8.3f}{wall:>9.3f}{abs(value - exact):>10.2e}"
                  f"{se}  {label}" + (f", {peer_wall / wall:.0f}x faster" if peer_wall else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
