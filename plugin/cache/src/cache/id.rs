//! Semantic circuit IDs: ZX-calculus reduction (quizx) plus a Weisfeiler-Leman hash of the reduced
//! graph, and the proof that two reduced graphs are the same graph.
//!
//! The recipe, with the traps of quizx 0.4 (f32 angles, dropped gates, i64 overflow) avoided:
//! 1. Every gate is rewritten into quizx's primitive gates through its API (quizx's own QASM reader
//!    is f32 and drops gates); SWAP becomes three CNOTs (quizx's graph drops SWAPs).
//! 2. Every angle lands on one exact grid: `round(θ/π · 2^32) / 2^32` half-turns, reduced mod 2π.
//!    Sums of such dyadic rationals never grow the denominator, so spider fusion cannot overflow
//!    i64 (the release profile also has overflow checks on). The grid step is π/2^32 ≈ 7e-10 rad,
//!    far below simulator round-off effects on probabilities; angles 1e-7 apart stay apart.
//! 3. Gates are put in a canonical order (Kahn's algorithm always emitting the ready gate with the
//!    smallest key), so reorderings of commuting gates on disjoint qubits give one circuit.
//! 4. `full_simp` on quizx's `vec_graph` backend (pinned: the backends reduce differently).
//! 5. Vertex labels are type, exact phase, and for boundaries the role (input or output) and qubit;
//!    edges carry their type. WL refinement runs until the colour partition is stable; the ID is a
//!    BLAKE3 digest of the recipe version and the sorted final colours.
//! 6. A hash match is only a candidate. [`proven_equal`] checks that the two labelled graphs are
//!    isomorphic with boundaries fixed: directly when refinement made every colour unique, else
//!    by labelled VF2 on graphs small enough for it to be safe; anything else is "not proven".
//!
//! 7. Rounding is accounted for, never trusted: every rotation's offset from its grid angle
//!    (radians) and a bound on the floating-point error of computing it are kept in a
//!    [`Precision`] record beside the graph. Two circuits with one reduced graph are each within
//!    `sum |offset| + error` (operator norm, up to global phase: `|1 - e^{i d}| <= |d|` per
//!    rotation) of the same grid circuit; when their grid gate sequences are the same, within
//!    `sum |offset_a - offset_b| + errors` of each other. A cache hit is served only when that
//!    distance `d` keeps every answer within the cache's tolerance: probabilities move by at most
//!    `d` each (total variation at most `d`), Pauli expectations by at most `2d`. Angles so large
//!    that `θ/π` loses the fraction in f64 get an error bound as large, so they never hit.
//!
//! Global phase is dropped (the graph's scalar is not part of the ID): the cache stores
//! probabilities and expectation values, which do not see it.

use num_rational::Rational64;
use quargo_science::circuit::{Circuit, Gate};
use quizx::gate::{GType, Gate as ZGate};
use quizx::graph::{EType, GraphLike, VType};
use quizx::phase::Phase;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::f64::consts::PI;
use thiserror::Error;

/// Denominator exponent of the angle grid (half-turns).
pub const PHASE_GRID_BITS: u32 = 32;
/// Everything that changes IDs; part of every cache key.
pub const RECIPE: &str =
    "quargo-id-v2;quizx-0.4.0;vec_graph;full_simp;grid=2^-32;wl-stable-max64;precision";
/// Relative bound on the rounding of the few f64 operations that turn gate parameters into one
/// primitive angle (sums of two, halving, constants): 8 units in the last place, conservatively.
const ANGLE_RELATIVE_ERROR: f64 = 8.0 * f64::EPSILON / 2.0;
/// Most Weisfeiler-Leman refinement rounds (see [`wl_colours`]).
const MAX_WL_ROUNDS: usize = 64;
/// Largest graph handed to VF2 when refinement leaves ties (labelled VF2 is fast on reduced ZX
/// graphs of this size; see crates-notes section 2).
const VF2_MAX_VERTICES: usize = 400;

/// Most primitive gates a circuit may have for an ID: the ZX reduction's time grows faster than
/// linearly on some shapes, so larger circuits are computed without the cache.
pub const MAX_ID_GATES: usize = 50_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("the ZX reduction failed: {0}")]
    Reduction(String),
    #[error("the circuit has {0} primitive gates, more than the {MAX_ID_GATES} a circuit ID is computed for; it is computed without the cache")]
    TooLarge(usize),
}

/// Label of a reduced-graph vertex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VertexLabel {
    /// 0 boundary, 1 Z, 2 X, 3 H-box, 4 other.
    pub kind: u8,
    /// Phase in half-turns as an exact fraction in (-1, 1].
    pub phase: (i64, i64),
    /// For boundaries: (0 input / 1 output, qubit).
    pub boundary: Option<(u8, u32)>,
}

/// A reduced graph in plain form: what a cache entry keeps to prove a later match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducedGraph {
    pub num_qubits: usize,
    pub vertices: Vec<VertexLabel>,
    /// (a, b, edge type: 0 plain, 1 Hadamard), a < b, sorted.
    pub edges: Vec<(u32, u32, u8)>,
}

/// Little-endian reader over a byte slice; every read checks the bounds.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_le_bytes)
    }
}

impl ReducedGraph {
    /// A compact canonical encoding: equal graphs (vertex for vertex) give equal bytes, so a
    /// cache hit on identical bytes needs no decoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.vertices.len() * 23 + self.edges.len() * 9);
        out.extend_from_slice(&(self.num_qubits as u32).to_le_bytes());
        out.extend_from_slice(&(self.vertices.len() as u32).to_le_bytes());
        for v in &self.vertices {
            out.push(v.kind);
            out.extend_from_slice(&v.phase.0.to_le_bytes());
            out.extend_from_slice(&v.phase.1.to_le_bytes());
            match v.boundary {
                None => out.push(0),
                Some((role, qubit)) => {
                    out.push(1 + role);
                    out.extend_from_slice(&qubit.to_le_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.edges.len() as u32).to_le_bytes());
        for &(a, b, t) in &self.edges {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
            out.push(t);
        }
        out
    }

    /// The inverse of [`ReducedGraph::to_bytes`]; `None` for anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Option<ReducedGraph> {
        let mut r = Reader(bytes);
        let num_qubits = r.u32()? as usize;
        let nv = r.u32()? as usize;
        let mut vertices = Vec::with_capacity(nv.min(bytes.len()));
        for _ in 0..nv {
            let kind = r.u8()?;
            let phase = (r.i64()?, r.i64()?);
            let boundary = match r.u8()? {
                0 => None,
                tag @ (1 | 2) => Some((tag - 1, r.u32()?)),
                _ => return None,
            };
            vertices.push(VertexLabel {
                kind,
                phase,
                boundary,
            });
        }
        let ne = r.u32()? as usize;
        let mut edges = Vec::with_capacity(ne.min(bytes.len()));
        for _ in 0..ne {
            let (a, b, t) = (r.u32()?, r.u32()?, r.u8()?);
            if a as usize >= nv || b as usize >= nv {
                return None;
            }
            edges.push((a, b, t));
        }
        r.0.is_empty().then_some(ReducedGraph {
            num_qubits,
            vertices,
            edges,
        })
    }
}

/// A circuit's semantic ID and the graph that backs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitId {
    /// Hex BLAKE3 digest over the recipe and the WL colours.
    pub digest: String,
    pub graph: ReducedGraph,
    /// How far the circuit is from the grid circuit the graph stands for.
    pub precision: Precision,
}

/// How far a circuit is from its grid circuit: what a hit needs to bound its error.
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    /// BLAKE3 of the canonical grid gate sequence (types, qubits, grid phases).
    pub structure: [u8; 32],
    /// Per rotation, in canonical order: its angle minus its grid angle, in radians.
    pub offsets: Vec<f64>,
    /// Bound on the floating-point error of all offsets together, in radians.
    pub float_error: f64,
}

impl Precision {
    /// Bound on the distance (operator norm, up to global phase) to the grid circuit.
    pub fn grid_distance(&self) -> f64 {
        self.offsets.iter().map(|o| o.abs()).sum::<f64>() + self.float_error
    }

    /// Bound on the distance between two circuits that reduce to one graph.
    pub fn distance(&self, other: &Precision) -> f64 {
        let through_grid = self.grid_distance() + other.grid_distance();
        if self.structure != other.structure || self.offsets.len() != other.offsets.len() {
            return through_grid;
        }
        let direct = self
            .offsets
            .iter()
            .zip(&other.offsets)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            + self.float_error
            + other.float_error;
        direct.min(through_grid)
    }

    /// Largest error of a served answer (probabilities and expectations of Pauli strings) when
    /// one circuit's results answer for the other.
    pub fn answer_error(&self, other: &Precision) -> f64 {
        2.0 * self.distance(other)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44 + 8 * self.offsets.len());
        out.extend_from_slice(&self.structure);
        out.extend_from_slice(&self.float_error.to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Precision> {
        let mut r = Reader(bytes);
        let structure = r.take::<32>()?;
        let float_error = f64::from_le_bytes(r.take::<8>()?);
        let n = r.u32()? as usize;
        if r.0.len() != n.checked_mul(8)? {
            return None;
        }
        let offsets = (0..n)
            .map(|_| r.take::<8>().map(f64::from_le_bytes))
            .collect::<Option<Vec<f64>>>()?;
        let finite = float_error.is_finite() || float_error == f64::INFINITY;
        (finite && offsets.iter().all(|o| o.is_finite())).then_some(Precision {
            structure,
            offsets,
            float_error,
        })
    }
}

/// What a cache entry keeps to prove and bound a later hit: the graph and the precision.
pub fn encode_proof(graph: &[u8], precision: &Precision) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + graph.len() + 44 + 8 * precision.offsets.len());
    out.extend_from_slice(&(graph.len() as u32).to_le_bytes());
    out.extend_from_slice(graph);
    out.extend_from_slice(&precision.to_bytes());
    out
}

/// The inverse of [`encode_proof`]: the graph's bytes and the precision.
pub fn decode_proof(bytes: &[u8]) -> Option<(&[u8], Precision)> {
    let graph = proof_graph(bytes)?;
    let precision = Precision::from_bytes(bytes.get(4 + graph.len()..)?)?;
    Some((graph, precision))
}

/// The graph's bytes inside a proof, without decoding the precision.
pub fn proof_graph(bytes: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    bytes.get(4..4 + len)
}

/// Rounds an angle in radians onto the grid, in half-turns, reduced to (-1, 1].
pub fn grid_phase(theta: f64) -> Phase {
    grid_rounding(theta).phase
}

/// The grid phase of `theta`, its offset from it (radians) and a bound on the error of that
/// offset. `theta / π` is computed in f64, which loses `|θ| 2^-52` radians: for huge angles the
/// bound is huge and the circuit can only hit itself, never the grid circuit it lands on.
fn grid_rounding(theta: f64) -> Rounding {
    let scale = (1i64 << PHASE_GRID_BITS) as f64;
    if !theta.is_finite() {
        return Rounding {
            phase: Phase::new(Rational64::new(0, 1)),
            offset: 0.0,
            error: f64::INFINITY,
        };
    }
    let turns = (theta / PI).rem_euclid(2.0);
    let scaled = turns * scale;
    let num = scaled.round();
    let offset = (scaled - num) * (PI / scale);
    let error = theta.abs() * 2.0 * f64::EPSILON + offset.abs() * f64::EPSILON;
    Rounding {
        phase: Phase::new(Rational64::new(num as i64, 1i64 << PHASE_GRID_BITS)),
        offset,
        error,
    }
}

/// An angle put on the grid.
struct Rounding {
    phase: Phase,
    /// The angle less its grid phase, in radians.
    offset: f64,
    /// A bound on the floating-point error of `offset`.
    error: f64,
}

/// A gate on the grid with what rounding it took.
struct GridGate {
    gate: ZGate,
    /// Offset of its angle from the grid, in radians (0 for gates without an angle).
    offset: f64,
    /// A bound on the floating-point error of its angle.
    error: f64,
}

/// Rotations about one axis on one wire, summed until another gate touches the wire.
#[derive(Debug, Clone, Copy)]
struct PendingRotation {
    about_z: bool,
    angle: f64,
    /// A bound on the floating-point error of `angle`.
    error: f64,
}

/// A primitive gate with its angle still in radians.
#[derive(Debug, Clone, Copy)]
enum Prim {
    Z(usize, f64),
    X(usize, f64),
    Had(usize),
    Cnot(usize, usize),
    Cz(usize, usize),
    Toff(usize, usize, usize),
}

/// Primitive-gate form of a circuit. Consecutive rotations about one axis on one wire are summed
/// in f64 before they land on the grid, so `rz(a); rz(b)` and `rz(a + b)` get the same phase
/// (rounding each onto the grid first could differ by one grid step). Each rotation carries its
/// offset from the grid and a bound on its floating-point error.
fn primitives(circuit: &Circuit) -> Vec<GridGate> {
    let mut prims = Vec::with_capacity(circuit.len() * 3);
    // Per primitive: the error bound of its angle, from the magnitudes of its gate's parameters.
    let mut errors = Vec::with_capacity(circuit.len() * 3);
    for inst in circuit.instructions() {
        let scale = inst.gate.params().iter().map(|p| p.abs()).sum::<f64>() + PI;
        lower(inst.gate, &inst.qubits, &mut prims);
        errors.resize(prims.len(), scale * ANGLE_RELATIVE_ERROR);
    }
    let mut pending: Vec<Option<PendingRotation>> = vec![None; circuit.num_qubits()];
    let mut out: Vec<GridGate> = Vec::with_capacity(prims.len());
    let flush = |q: usize, pending: &mut Vec<Option<PendingRotation>>, out: &mut Vec<GridGate>| {
        if let Some(rotation) = pending[q].take() {
            let t = if rotation.about_z {
                GType::ZPhase
            } else {
                GType::XPhase
            };
            let rounding = grid_rounding(rotation.angle);
            out.push(GridGate {
                gate: ZGate::new_with_phase(t, vec![q], rounding.phase),
                offset: rounding.offset,
                error: rotation.error + rounding.error,
            });
        }
    };
    for (p, error) in prims.into_iter().zip(errors) {
        let (qubits, gate): (Vec<usize>, Option<ZGate>) = match p {
            Prim::Z(q, t) | Prim::X(q, t) => {
                let is_z = matches!(p, Prim::Z(..));
                match &mut pending[q] {
                    Some(rotation) if rotation.about_z == is_z => {
                        rotation.angle += t;
                        rotation.error += error + rotation.angle.abs() * f64::EPSILON;
                    }
                    _ => {
                        flush(q, &mut pending, &mut out);
                        pending[q] = Some(PendingRotation {
                            about_z: is_z,
                            angle: t,
                            error,
                        });
                    }
                }
                continue;
            }
            Prim::Had(q) => (vec![q], Some(ZGate::new(GType::HAD, vec![q]))),
            Prim::Cnot(c, t) => (vec![c, t], Some(ZGate::new(GType::CNOT, vec![c, t]))),
            Prim::Cz(a, b) => (vec![a, b], Some(ZGate::new(GType::CZ, vec![a, b]))),
            Prim::Toff(a, b, c) => (vec![a, b, c], Some(ZGate::new(GType::TOFF, vec![a, b, c]))),
        };
        for q in qubits {
            flush(q, &mut pending, &mut out);
        }
        out.extend(gate.map(|gate| GridGate {
            gate,
            offset: 0.0,
            error: 0.0,
        }));
    }
    for q in 0..pending.len() {
        flush(q, &mut pending, &mut out);
    }
    out
}

fn z(q: usize, theta: f64, out: &mut Vec<Prim>) {
    out.push(Prim::Z(q, theta));
}

fn x(q: usize, theta: f64, out: &mut Vec<Prim>) {
    out.push(Prim::X(q, theta));
}

fn had(q: usize, out: &mut Vec<Prim>) {
    out.push(Prim::Had(q));
}

fn cnot(c: usize, t: usize, out: &mut Vec<Prim>) {
    out.push(Prim::Cnot(c, t));
}

/// Rewrites one gate into quizx primitives, equal up to global phase.
fn lower(gate: Gate, q: &[usize], out: &mut Vec<Prim>) {
    use std::f64::consts::FRAC_PI_2 as HALF;
    use Gate::*;
    match gate {
        Id => {}
        X => x(q[0], PI, out),
        // Y = i X Z.
        Y => {
            z(q[0], PI, out);
            x(q[0], PI, out);
        }
        Z => z(q[0], PI, out),
        H => had(q[0], out),
        S => z(q[0], HALF, out),
        Sdg => z(q[0], -HALF, out),
        T => z(q[0], PI / 4.0, out),
        Tdg => z(q[0], -PI / 4.0, out),
        Sx => x(q[0], HALF, out),
        Sxdg => x(q[0], -HALF, out),
        Rx(t) => x(q[0], t, out),
        Rz(t) | P(t) => z(q[0], t, out),
        // RY(t) = S RX(t) S^dagger.
        Ry(t) => {
            z(q[0], -HALF, out);
            x(q[0], t, out);
            z(q[0], HALF, out);
        }
        // U3 = RZ(phi) RY(theta) RZ(lambda) up to global phase.
        U3(t, phi, lam) => {
            z(q[0], lam, out);
            lower(Ry(t), q, out);
            z(q[0], phi, out);
        }
        U2(phi, lam) => lower(U3(HALF, phi, lam), q, out),
        Cx => cnot(q[0], q[1], out),
        Cz => out.push(Prim::Cz(q[0], q[1])),
        Cy => {
            z(q[1], -HALF, out);
            cnot(q[0], q[1], out);
            z(q[1], HALF, out);
        }
        // qelib1's definition of ch.
        Ch => {
            had(q[1], out);
            z(q[1], -HALF, out);
            cnot(q[0], q[1], out);
            had(q[1], out);
            z(q[1], PI / 4.0, out);
            cnot(q[0], q[1], out);
            z(q[1], PI / 4.0, out);
            had(q[1], out);
            z(q[1], HALF, out);
            x(q[1], PI, out);
            z(q[0], HALF, out);
        }
        Swap => {
            cnot(q[0], q[1], out);
            cnot(q[1], q[0], out);
            cnot(q[0], q[1], out);
        }
        Crz(t) => {
            z(q[1], t / 2.0, out);
            cnot(q[0], q[1], out);
            z(q[1], -t / 2.0, out);
            cnot(q[0], q[1], out);
        }
        Cp(l) => {
            z(q[0], l / 2.0, out);
            cnot(q[0], q[1], out);
            z(q[1], -l / 2.0, out);
            cnot(q[0], q[1], out);
            z(q[1], l / 2.0, out);
        }
        Crx(t) => {
            had(q[1], out);
            lower(Crz(t), q, out);
            had(q[1], out);
        }
        Cry(t) => {
            z(q[1], -HALF, out);
            lower(Crx(t), q, out);
            z(q[1], HALF, out);
        }
        // qelib1's definition of cu3 (controlled U3 up to the global phase of U3).
        Cu3(t, phi, lam) => {
            z(q[0], (lam + phi) / 2.0, out);
            z(q[1], (lam - phi) / 2.0, out);
            cnot(q[0], q[1], out);
            lower(U3(-t / 2.0, 0.0, -(phi + lam) / 2.0), &q[1..], out);
            cnot(q[0], q[1], out);
            lower(U3(t / 2.0, phi, 0.0), &q[1..], out);
        }
        Ccx => out.push(Prim::Toff(q[0], q[1], q[2])),
        Cswap => {
            cnot(q[2], q[1], out);
            out.push(Prim::Toff(q[0], q[1], q[2]));
            cnot(q[2], q[1], out);
        }
        Rzz(t) => {
            cnot(q[0], q[1], out);
            z(q[1], t, out);
            cnot(q[0], q[1], out);
        }
        Rxx(t) => {
            had(q[0], out);
            had(q[1], out);
            lower(Rzz(t), q, out);
            had(q[0], out);
            had(q[1], out);
        }
    }
}

/// Sort key of a primitive gate: smallest qubit, then type, qubits and phase.
fn gate_key(g: &ZGate) -> (usize, u8, Vec<usize>, (i64, i64)) {
    let r = g.phase.to_rational();
    (
        g.qs.iter().copied().min().unwrap_or(0),
        g.t as u8,
        g.qs.clone(),
        (*r.numer(), *r.denom()),
    )
}

/// Kahn's topological sort of the wire DAG, always emitting the ready gate with the smallest key.
fn canonical_order(gates: Vec<GridGate>, num_qubits: usize) -> Vec<GridGate> {
    let n = gates.len();
    let mut preds = vec![0usize; n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut last_on_wire: Vec<Option<usize>> = vec![None; num_qubits];
    for (i, GridGate { gate: g, .. }) in gates.iter().enumerate() {
        let mut from: Vec<usize> = g.qs.iter().filter_map(|&q| last_on_wire[q]).collect();
        from.sort_unstable();
        from.dedup();
        for p in from {
            succs[p].push(i);
            preds[i] += 1;
        }
        for &q in &g.qs {
            last_on_wire[q] = Some(i);
        }
    }
    let keys: Vec<_> = gates.iter().map(|g| gate_key(&g.gate)).collect();
    let mut ready: std::collections::BTreeSet<(_, usize)> = (0..n)
        .filter(|&i| preds[i] == 0)
        .map(|i| (keys[i].clone(), i))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some((key, i)) = ready.iter().next().cloned() {
        ready.remove(&(key, i));
        order.push(i);
        for &s in &succs[i] {
            preds[s] -= 1;
            if preds[s] == 0 {
                ready.insert((keys[s].clone(), s));
            }
        }
    }
    let mut slots: Vec<Option<GridGate>> = gates.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Reduces a circuit to its labelled ZX graph.
pub fn reduce(circuit: &Circuit) -> Result<ReducedGraph, IdError> {
    reduce_with_precision(circuit).map(|(graph, _)| graph)
}

/// The canonical grid sequence's precision record.
fn precision_of(gates: &[GridGate]) -> Precision {
    let mut structure = blake3::Hasher::new();
    let mut offsets = Vec::new();
    let mut float_error = 0.0;
    for GridGate {
        gate: g,
        offset,
        error,
    } in gates
    {
        let (_, kind, qubits, (num, den)) = gate_key(g);
        structure.update(&[kind]);
        structure.update(&(qubits.len() as u32).to_le_bytes());
        for q in qubits {
            structure.update(&(q as u64).to_le_bytes());
        }
        structure.update(&num.to_le_bytes());
        structure.update(&den.to_le_bytes());
        if matches!(g.t, GType::ZPhase | GType::XPhase) {
            offsets.push(*offset);
            float_error += error;
        }
    }
    Precision {
        structure: *structure.finalize().as_bytes(),
        offsets,
        float_error,
    }
}

/// Reduces a circuit to its labelled ZX graph, with the precision of its grid rounding.
fn reduce_with_precision(circuit: &Circuit) -> Result<(ReducedGraph, Precision), IdError> {
    let n = circuit.num_qubits();
    let prims = primitives(circuit);
    if prims.len() > MAX_ID_GATES {
        return Err(IdError::TooLarge(prims.len()));
    }
    let ordered = canonical_order(prims, n);
    let precision = precision_of(&ordered);
    let gates: Vec<ZGate> = ordered.into_iter().map(|g| g.gate).collect();
    let reduced = std::panic::catch_unwind(move || {
        let mut zc = quizx::circuit::Circuit::new(n);
        for g in gates {
            zc.push(g);
        }
        let mut g: quizx::vec_graph::Graph = zc.to_graph();
        quizx::simplify::full_simp(&mut g);
        plain_graph(&g, n)
    });
    reduced.map(|graph| (graph, precision)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        IdError::Reduction(msg)
    })
}

fn plain_graph(g: &quizx::vec_graph::Graph, n: usize) -> ReducedGraph {
    let mut boundary: HashMap<usize, (u8, u32)> = HashMap::new();
    for (q, &v) in g.inputs().iter().enumerate() {
        boundary.insert(v, (0, q as u32));
    }
    for (q, &v) in g.outputs().iter().enumerate() {
        boundary.insert(v, (1, q as u32));
    }
    let mut ids: Vec<usize> = g.vertices().collect();
    ids.sort_unstable();
    let index: HashMap<usize, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as u32))
        .collect();
    let vertices = ids
        .iter()
        .map(|&v| {
            let r = g.phase(v).to_rational();
            VertexLabel {
                kind: match g.vertex_type(v) {
                    VType::B => 0,
                    VType::Z => 1,
                    VType::X => 2,
                    VType::H => 3,
                    _ => 4,
                },
                phase: (*r.numer(), *r.denom()),
                boundary: boundary.get(&v).copied(),
            }
        })
        .collect();
    let mut edges: Vec<(u32, u32, u8)> = g
        .edges()
        .map(|(a, b, t)| {
            let (a, b) = (index[&a], index[&b]);
            let kind = match t {
                EType::N => 0,
                EType::H => 1,
                _ => 2,
            };
            (a.min(b), a.max(b), kind)
        })
        .collect();
    edges.sort_unstable();
    ReducedGraph {
        num_qubits: n,
        vertices,
        edges,
    }
}

fn mix(mut h: u64, v: u64) -> u64 {
    // splitmix64 finaliser over a running combination: fast, well mixed, fixed across machines.
    h ^= v
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(h << 6)
        .wrapping_add(h >> 2);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn label_hash(l: &VertexLabel) -> u64 {
    let mut h = mix(0, l.kind as u64);
    h = mix(h, l.phase.0 as u64);
    h = mix(h, l.phase.1 as u64);
    match l.boundary {
        Some((role, q)) => mix(mix(h, 1 + role as u64), q as u64),
        None => mix(h, 0),
    }
}

/// WL colours refined until the partition is stable.
fn wl_colours(g: &ReducedGraph) -> Vec<u64> {
    let n = g.vertices.len();
    let mut adj: Vec<Vec<(u32, u8)>> = vec![Vec::new(); n];
    for &(a, b, t) in &g.edges {
        adj[a as usize].push((b, t));
        adj[b as usize].push((a, t));
    }
    let mut colours: Vec<u64> = g.vertices.iter().map(label_hash).collect();
    let mut classes = distinct(&colours);
    // A long path needs as many rounds as it is long to stabilise, which would make IDs quadratic
    // in circuit depth. The rounds are capped: colours stay isomorphism-invariant (equal circuits
    // keep equal IDs), and a tie they leave is settled by the proof (identical bytes or VF2), never
    // by trusting the hash.
    for _ in 0..n.clamp(1, MAX_WL_ROUNDS) {
        let next: Vec<u64> = (0..n)
            .map(|v| {
                let mut around: Vec<u64> = adj[v]
                    .iter()
                    .map(|&(u, t)| mix(colours[u as usize], t as u64))
                    .collect();
                around.sort_unstable();
                around
                    .iter()
                    .fold(mix(colours[v], 0x5157), |h, &c| mix(h, c))
            })
            .collect();
        let next_classes = distinct(&next);
        colours = next;
        if next_classes == classes {
            break;
        }
        classes = next_classes;
    }
    colours
}

fn distinct(c: &[u64]) -> usize {
    let mut v = c.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// The semantic ID of a circuit.
pub fn circuit_id(circuit: &Circuit) -> Result<CircuitId, IdError> {
    let (graph, precision) = reduce_with_precision(circuit)?;
    let mut colours = wl_colours(&graph);
    colours.sort_unstable();
    let mut h = blake3::Hasher::new();
    h.update(RECIPE.as_bytes());
    h.update(&(graph.num_qubits as u64).to_le_bytes());
    h.update(&(graph.vertices.len() as u64).to_le_bytes());
    h.update(&(graph.edges.len() as u64).to_le_bytes());
    for c in colours {
        h.update(&c.to_le_bytes());
    }
    Ok(CircuitId {
        digest: h.finalize().to_hex().to_string(),
        graph,
        precision,
    })
}

/// Whether two reduced graphs are provably the same labelled graph (boundaries fixed): `Some(true)`
/// proven equal, `Some(false)` proven different, `None` not decided (treat as a miss).
pub fn proven_equal(a: &ReducedGraph, b: &ReducedGraph) -> Option<bool> {
    if a == b {
        // The same labelled graph, vertex for vertex: the identity is the isomorphism.
        return Some(true);
    }
    if a.num_qubits != b.num_qubits
        || a.vertices.len() != b.vertices.len()
        || a.edges.len() != b.edges.len()
    {
        return Some(false);
    }
    let (ca, cb) = (wl_colours(a), wl_colours(b));
    let (mut sa, mut sb) = (ca.clone(), cb.clone());
    sa.sort_unstable();
    sb.sort_unstable();
    if sa != sb {
        return Some(false);
    }
    if distinct(&ca) == ca.len() {
        // Every colour unique: the only candidate bijection maps equal colours; check it exactly.
        let in_b: BTreeMap<u64, usize> = cb.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let map: Vec<usize> = ca.iter().map(|c| in_b[c]).collect();
        if (0..a.vertices.len()).any(|v| a.vertices[v] != b.vertices[map[v]]) {
            return Some(false);
        }
        let mut mapped: Vec<(u32, u32, u8)> = a
            .edges
            .iter()
            .map(|&(x, y, t)| {
                let (x, y) = (map[x as usize] as u32, map[y as usize] as u32);
                (x.min(y), x.max(y), t)
            })
            .collect();
        mapped.sort_unstable();
        return Some(mapped == b.edges);
    }
    if a.vertices.len() > VF2_MAX_VERTICES {
        return None;
    }
    let ga = petgraph_of(a);
    let gb = petgraph_of(b);
    Some(petgraph::algo::is_isomorphic_matching(
        &ga,
        &gb,
        |x: &VertexLabel, y: &VertexLabel| x == y,
        |x: &u8, y: &u8| x == y,
    ))
}

fn petgraph_of(g: &ReducedGraph) -> petgraph::graph::UnGraph<VertexLabel, u8> {
    let mut p = petgraph::graph::UnGraph::with_capacity(g.vertices.len(), g.edges.len());
    let nodes: Vec<_> = g.vertices.iter().map(|l| p.add_node(l.clone())).collect();
    for &(a, b, t) in &g.edges {
        p.add_edge(nodes[a as usize], nodes[b as usize], t);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use quargo_science::qasm::parse;

    fn id(body: &str, n: usize) -> CircuitId {
        let src = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n{body}");
        circuit_id(&parse(&src).unwrap()).unwrap()
    }

    fn same(a: &str, b: &str, n: usize) {
        let (x, y) = (id(a, n), id(b, n));
        assert_eq!(x.digest, y.digest, "'{a}' and '{b}' should share an ID");
        assert_eq!(
            proven_equal(&x.graph, &y.graph),
            Some(true),
            "'{a}' = '{b}' not proven"
        );
    }

    fn different(a: &str, b: &str, n: usize) {
        let (x, y) = (id(a, n), id(b, n));
        assert_ne!(x.digest, y.digest, "'{a}' and '{b}' must not share an ID");
        assert_ne!(
            proven_equal(&x.graph, &y.graph),
            Some(true),
            "'{a}' = '{b}' wrongly proven"
        );
    }

    #[test]
    fn graph_bytes_round_trip_and_refuse_damage() {
        let g = id("h q[0]; cx q[0],q[1]; rz(0.3) q[1]; t q[0];", 2).graph;
        let bytes = g.to_bytes();
        assert_eq!(ReducedGraph::from_bytes(&bytes), Some(g));
        for cut in 0..bytes.len() {
            assert_eq!(
                ReducedGraph::from_bytes(&bytes[..cut]),
                None,
                "truncated at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(ReducedGraph::from_bytes(&longer), None);
    }

    #[test]
    fn equivalent_circuits_share_an_id() {
        same("h q[0]; z q[0]; h q[0];", "x q[0];", 1);
        same("s q[0]; s q[0];", "z q[0];", 1);
        same("t q[0]; t q[0];", "s q[0];", 1);
        same("cx q[0], q[1]; cx q[0], q[1];", "", 2);
        same("h q[1]; cx q[0], q[1]; h q[1];", "cz q[0], q[1];", 2);
        same("rx(0.7) q[0];", "h q[0]; rz(0.7) q[0]; h q[0];", 1);
        same("rz(.3) q[0]; rz(.4) q[0];", "rz(.7) q[0];", 1);
        same("rz(0.5) q[0];", "rz(0.5 + 2*pi) q[0];", 1);
        same("h q[0]; x q[1]; t q[2];", "t q[2]; x q[1]; h q[0];", 3);
        same("t q[0]; cx q[0], q[1];", "cx q[0], q[1]; t q[0];", 2);
    }

    #[test]
    fn different_circuits_never_share_an_id() {
        different("swap q[0], q[1];", "", 2);
        different("x q[0];", "x q[1];", 2);
        different("cx q[0], q[1];", "cx q[1], q[0];", 2);
        different("rx(0.3) q[0];", "rx(0.3 + 1e-7) q[0];", 1);
        different(
            "h q[0]; t q[0]; cx q[0], q[1];",
            "cx q[0], q[1]; t q[0]; h q[0];",
            2,
        );
    }

    #[test]
    fn grid_keeps_small_differences_and_wraps_full_turns() {
        assert_eq!(grid_phase(PI / 4.0).to_rational(), Rational64::new(1, 4));
        assert_eq!(grid_phase(-PI / 2.0), grid_phase(3.0 * PI / 2.0));
        assert_ne!(grid_phase(0.3), grid_phase(0.3 + 1e-7));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use num_complex::Complex64;
    use quargo_science::sim::Simulator;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_gate(n: usize, rng: &mut ChaCha8Rng) -> (Gate, Vec<usize>) {
        let a = rng.random_range(0..n);
        let b = (a + rng.random_range(1..n)) % n;
        let angle = rng.random_range(-3.0..3.0);
        match rng.random_range(0..9) {
            0 => (Gate::H, vec![a]),
            1 => (Gate::T, vec![a]),
            2 => (Gate::Rz(angle), vec![a]),
            3 => (Gate::Rx(angle), vec![a]),
            4 => (Gate::S, vec![a]),
            5 => (Gate::Cx, vec![a, b]),
            6 => (Gate::Cz, vec![a, b]),
            7 => (Gate::Ry(angle), vec![a]),
            _ => (Gate::X, vec![a]),
        }
    }

    fn build(n: usize, gates: &[(Gate, Vec<usize>)]) -> Circuit {
        let mut c = Circuit::new(n);
        for (g, q) in gates {
            c.push(*g, q).unwrap();
        }
        c
    }

    /// Equivalent rewrites: swap neighbouring gates on disjoint qubits, split rotations in two.
    fn rewrite(gates: &[(Gate, Vec<usize>)], rng: &mut ChaCha8Rng) -> Vec<(Gate, Vec<usize>)> {
        let mut out = gates.to_vec();
        for _ in 0..out.len() * 2 {
            if out.len() < 2 {
                break;
            }
            let i = rng.random_range(0..out.len() - 1);
            if out[i].1.iter().all(|q| !out[i + 1].1.contains(q)) {
                out.swap(i, i + 1);
            }
        }
        let mut split = Vec::with_capacity(out.len() + 4);
        for (g, q) in out {
            match g {
                Gate::Rz(t) if rng.random_bool(0.5) => {
                    let part = rng.random_range(-1.0..1.0);
                    split.push((Gate::Rz(part), q.clone()));
                    split.push((Gate::Rz(t - part), q));
                }
                _ => split.push((g, q)),
            }
        }
        split
    }

    /// The full unitary, column by column, from the simulator.
    fn unitary(c: &Circuit) -> Vec<Complex64> {
        let n = c.num_qubits();
        let mut u = Vec::new();
        for col in 0..1usize << n {
            let mut prep = Circuit::new(n);
            for q in 0..n {
                if col >> q & 1 == 1 {
                    prep.push(Gate::X, &[q]).unwrap();
                }
            }
            for inst in c.instructions() {
                prep.push(inst.gate, &inst.qubits).unwrap();
            }
            u.extend_from_slice(Simulator::new().run(&prep).unwrap().amplitudes());
        }
        u
    }

    /// Equal up to a global phase.
    fn same_unitary(a: &[Complex64], b: &[Complex64]) -> bool {
        let overlap: Complex64 = a.iter().zip(b).map(|(x, y)| x.conj() * y).sum();
        (overlap.norm() - (a.len() as f64).sqrt()).abs() < 1e-9
    }

    #[test]
    fn equivalent_rewrites_hit_and_different_unitaries_miss() {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let (mut hits, mut misses) = (0, 0);
        for case in 0..1500 {
            let n = 2 + case % 3;
            let len = rng.random_range(1..12);
            let gates: Vec<_> = (0..len).map(|_| random_gate(n, &mut rng)).collect();
            let a = build(n, &gates);
            let ida = circuit_id(&a).unwrap();

            let b = build(n, &rewrite(&gates, &mut rng));
            let idb = circuit_id(&b).unwrap();
            assert_eq!(
                ida.digest, idb.digest,
                "case {case}: a rewrite changed the ID"
            );
            assert_eq!(
                proven_equal(&ida.graph, &idb.graph),
                Some(true),
                "case {case}"
            );
            hits += 1;

            // A mutated circuit: one gate replaced. When the simulator says the unitary changed,
            // the ID must not be proven equal.
            let mut mutated = gates.clone();
            let at = rng.random_range(0..mutated.len());
            mutated[at] = random_gate(n, &mut rng);
            let c = build(n, &mutated);
            if !same_unitary(&unitary(&a), &unitary(&c)) {
                let idc = circuit_id(&c).unwrap();
                let proven =
                    ida.digest == idc.digest && proven_equal(&ida.graph, &idc.graph) == Some(true);
                assert!(!proven, "case {case}: different unitaries proven equal");
                misses += 1;
            }
        }
        assert!(
            hits == 1500 && misses > 1000,
            "hits {hits}, misses {misses}"
        );
    }
}
