#!/usr/bin/env python3
"""quargo's state-vector simulator vs qiskit-aer, same circuits, same thread count, one run.

Circuits are generated here (seeded), written as OpenQASM 2 for quargo and built as QuantumCircuit
objects for Aer. Timed: Aer `run().result()` with `save_probabilities` (no transpile: every gate used
is native to Aer), fusion on (default) and off; quargo parse + simulate + probabilities, through the
`sim_peer` bench binary. Each case reports the best of `--reps` runs; both sides run one untimed
20-qubit warm-up first (thread pools, first touch of fresh memory).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

from qiskit import QuantumCircuit, qasm2
from qiskit_aer import AerSimulator

ONE_QUBIT = ["h", "x", "y", "sx", "t", "s", "rx", "ry", "rz", "u3"]
TWO_QUBIT = ["cx", "cz", "cp", "rzz", "swap", "cy"]


def ghz(n):
    qc = QuantumCircuit(n)
    qc.h(0)
    for q in range(1, n):
        qc.cx(q - 1, q)
    return qc


def qft(n):
    qc = QuantumCircuit(n)
    for q in range(n):  # a non-trivial input state
        if q % 3 == 0:
            qc.x(q)
    for target in reversed(range(n)):
        qc.h(target)
        for control in reversed(range(target)):
            qc.cp(3.141592653589793 / 2 ** (target - control), control, target)
    for q in range(n // 2):
        qc.swap(q, n - 1 - q)
    return qc


def random_circuit(n, depth, seed):
    """Each layer pairs the qubits at random; a pair gets a random two-qubit gate or, with
    probability 1/2, each of its qubits gets a random one-qubit gate."""
    rng = random.Random(seed)
    qc = QuantumCircuit(n)
    for _ in range(depth):
        qubits = list(range(n))
        rng.shuffle(qubits)
        for k in range(0, n - 1, 2):
            a, b = qubits[k], qubits[k + 1]
            if rng.random() < 0.5:
                add_gate(qc, rng.choice(TWO_QUBIT), [a, b], rng)
            else:
                add_gate(qc, rng.choice(ONE_QUBIT), [a], rng)
                add_gate(qc, rng.choice(ONE_QUBIT), [b], rng)
        if n % 2:
            add_gate(qc, rng.choice(ONE_QUBIT), [qubits[-1]], rng)
    return qc


def add_gate(qc, name, qubits, rng):
    angle = lambda: rng.uniform(-3.14, 3.14)
    if name in ("rx", "ry", "rz", "cp", "rzz"):
        getattr(qc, name)(angle(), *qubits)
    elif name == "u3":
        qc.u(angle(), angle(), angle(), *qubits)
    else:
        getattr(qc, name)(*qubits)


def regular3_edges(n, rng):
    while True:
        stubs = [q for q in range(n) for _ in range(3)]
        rng.shuffle(stubs)
        edges = {tuple(sorted(stubs[k:k + 2])) for k in range(0, len(stubs), 2)}
        if len(edges) == 3 * n // 2 and all(a != b for a, b in edges):
            return sorted(edges)


def qaoa(n, p, seed):
    rng = random.Random(seed)
    edges = regular3_edges(n, rng)
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for _ in range(p):
        gamma, beta = rng.uniform(0, 3.14), rng.uniform(0, 3.14)
        for a, b in edges:
            qc.rzz(2 * gamma, a, b)
        qc.rx(2 * beta, range(n))
    return qc


def aer_time(qc, threads, fusion, reps):
    sim = AerSimulator(method="statevector", max_parallel_threads=threads, fusion_enable=fusion)
    qc = qc.copy()
    qc.save_probabilities()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        result = sim.run(qc, shots=1).result()
        best = min(best, time.perf_counter() - t)
        assert result.success, result.status
    return best


def aer_small_batch(circuits, threads, fusion, reps):
    sim = AerSimulator(method="statevector", max_parallel_threads=threads, fusion_enable=fusion)
    prepared = []
    for qc in circuits:
        qc = qc.copy()
        qc.save_probabilities()
        prepared.append(qc)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for qc in prepared:
            sim.run(qc, shots=1).result()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench/out/sim")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "small"), exist_ok=True)

    sizes = (lambda big: [12, 14] if args.quick else big)
    cases = []
    for n in sizes([20, 24, 26]):
        cases.append((f"ghz_{n}", ghz(n)))
    for n in sizes([20, 24]):
        cases.append((f"qft_{n}", qft(n)))
    for n in sizes([20, 24]):
        cases.append((f"random_d20_{n}", random_circuit(n, 20, seed=n)))
    for n in sizes([20, 24]):
        cases.append((f"qaoa_p2_{n}", qaoa(n, 2, seed=n)))
    for name, qc in cases:
        with open(os.path.join(args.out, f"{name}.qasm"), "w") as f:
            f.write(qasm2.dumps(qc))
    small = [random_circuit(10, 20, seed=1000 + k) for k in range(100 if args.quick else 1000)]
    for k, qc in enumerate(small):
        with open(os.path.join(args.out, "small", f"c{k:04}.qasm"), "w") as f:
            f.write(qasm2.dumps(qc))

    quargo = subprocess.run(
        ["cargo", "bench", "-q", "--bench", "sim_peer", "--", os.path.abspath(args.out),
         "--threads", str(args.threads), "--reps", str(args.reps)],
        check=True, capture_output=True, text=True,
    )
    q_times = {}
    for line in quargo.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            q_times[row["case"]] = row["seconds"]

    aer_time(ghz(20), args.threads, False, 1)  # warm-up, as the quargo side does
    print(f"threads = {args.threads}, best of {args.reps} runs; ratio = Aer time / quargo time (> 1: quargo faster)")
    header = f"{'case':<26}{'quargo s':>11}{'aer s':>11}{'aer nofuse s':>14}{'ratio':>9}{'ratio nofuse':>14}"
    print(header)
    print("-" * len(header))
    rows = []
    for name, qc in cases:
        a_on = aer_time(qc, args.threads, True, args.reps)
        a_off = aer_time(qc, args.threads, False, args.reps)
        q = q_times[name]
        rows.append((name, q, a_on, a_off))
        print(f"{name:<26}{q:>11.4f}{a_on:>11.4f}{a_off:>14.4f}{a_on / q:>9.2f}{a_off / q:>14.2f}", flush=True)
    a_on = aer_small_batch(small, args.threads, True, args.reps)
    a_off = aer_small_batch(small, args.threads, False, args.reps)
    q = q_times["small_batch"]
    name = f"{len(small)} x random_d20_10"
    print(f"{name:<26}{q:>11.4f}{a_on:>11.4f}{a_off:>14.4f}{a_on / q:>9.2f}{a_off / q:>14.2f}")
    worst = min(min(a / q, b / q) for _, q, a, b in rows)
    print(f"\nslowest big-case ratio (vs the faster Aer setting): {worst:.2f}; small-batch ratio: {min(a_on, a_off) / q:.2f}")


if __name__ == "__main__":
    sys.exit(main())
