//! Gate fusion: compiles a gate list into few [`Op`]s, each one pass over the state.
//!
//! Adjacent gates on few qubits are multiplied into one matrix; the product is classified as
//! diagonal, monomial (permutation with phases) or dense, because the first two cost one memory pass
//! whatever their size while a dense `k`-qubit op costs `2^k` multiply-adds per amplitude. A merge
//! is taken only when the merged op is estimated no dearer than the ops it replaces.

use super::kernels::{apply_matrix_small, DenseKernel, DiagonalKernel, PermuteKernel};
use crate::circuit::{identity, Instruction};
use num_complex::Complex64 as C64;

/// How far gates are merged, by the kind of the merged matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusionLimits {
    /// Most qubits of a dense fused block.
    pub dense: usize,
    /// Most qubits of a diagonal or monomial block (its cost stays one pass whatever its size).
    pub sparse: usize,
}

impl FusionLimits {
    /// No fusion: one op per gate.
    pub const NONE: FusionLimits = FusionLimits {
        dense: 0,
        sparse: 0,
    };

    /// Defaults tuned with `make bench-sim` on a 2-core machine: small states are cache resident,
    /// so wide blocks only pay for large ones.
    pub fn for_qubits(n: usize) -> Self {
        if n < 12 {
            FusionLimits {
                dense: 3,
                sparse: 6,
            }
        } else {
            FusionLimits {
                dense: 3,
                sparse: 8,
            }
        }
    }
}

/// Estimated cost of an op in units of one memory-bound pass over the state. Measured on a 2-core
/// VM (`make bench-sim` and per-op timings under perf): a pass over 2^24 amplitudes takes
/// ~25 ms, a dense 4-qubit op ~100 ms; dense ops are compute bound from 3 qubits up.
fn cost(kind: Kind, qubits: usize) -> f64 {
    match (kind, qubits) {
        (Kind::Diagonal | Kind::Monomial, _) => 1.0,
        (Kind::Dense, 0..=1) => 1.0,
        (Kind::Dense, k) => 0.3 * (1u64 << k) as f64,
    }
}

/// A compiled operation on the state, with everything its kernel needs precomputed.
#[derive(Debug, Clone)]
pub enum Op {
    Diagonal(DiagonalKernel),
    Monomial(PermuteKernel),
    Dense(DenseKernel),
}

impl Op {
    /// The sorted qubits the op acts on.
    pub fn qubits(&self) -> &[usize] {
        match self {
            Op::Diagonal(k) => &k.qubits,
            Op::Monomial(k) => &k.qubits,
            Op::Dense(k) => &k.qubits,
        }
    }

    /// Builds the cheapest op for a matrix on sorted `qubits` (row-major, little-endian).
    pub fn from_matrix(qubits: Vec<usize>, m: &[C64]) -> Op {
        let d = 1usize << qubits.len();
        let is_zero = |r: usize, c: usize| m[r * d + c] == C64::new(0.0, 0.0);
        if (0..d).all(|r| (0..d).all(|c| r == c || is_zero(r, c))) {
            return Op::Diagonal(DiagonalKernel::new(
                qubits,
                (0..d).map(|k| m[k * d + k]).collect(),
            ));
        }
        let single_row = |c: usize| {
            let mut rows = (0..d).filter(|&r| !is_zero(r, c));
            match (rows.next(), rows.next()) {
                (Some(r), None) => Some(r),
                _ => None,
            }
        };
        let targets: Option<Vec<usize>> = (0..d).map(single_row).collect();
        if let Some(target) = targets {
            let phase = (0..d).map(|c| m[target[c] * d + c]).collect();
            return Op::Monomial(PermuteKernel::new(qubits, target, phase));
        }
        Op::Dense(DenseKernel::new(qubits, m))
    }

    /// True when the op only moves amplitude between indices that agree on every bit from
    /// `bits` up, so it can run on aligned chunks of `2^bits` amplitudes one at a time.
    pub fn is_chunk_local(&self, bits: usize) -> bool {
        match self {
            Op::Diagonal(_) => true,
            _ => self.qubits().iter().all(|&q| q < bits),
        }
    }

    /// Applies the op to a slice of the state whose first amplitude has absolute index `base`. The
    /// slice must cover whole groups: the full state, or an aligned chunk when `is_chunk_local`.
    pub fn apply(&self, amps: &mut [C64], base: usize, parallel: bool) {
        match self {
            Op::Diagonal(k) => k.apply(amps, base, parallel),
            Op::Monomial(k) => k.apply(amps, parallel),
            Op::Dense(k) => k.apply(amps, parallel),
        }
    }
}

/// A block of gates being fused: the sorted qubits it touches and its gates in order.
struct Block<'a> {
    qubits: Vec<usize>,
    gates: Vec<&'a Instruction>,
    kind: Kind,
}

impl Block<'_> {
    fn cost(&self) -> f64 {
        cost(self.kind, self.qubits.len())
    }

    /// The gate's arguments as positions in the block's sorted qubit list.
    fn local_qubits(&self, inst: &Instruction) -> Vec<usize> {
        inst.qubits
            .iter()
            .filter_map(|q| self.qubits.iter().position(|b| b == q))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Diagonal,
    Monomial,
    Dense,
}

fn gate_kind(i: &Instruction) -> Kind {
    if i.gate.is_diagonal() {
        Kind::Diagonal
    } else if i.gate.is_monomial() {
        Kind::Monomial
    } else {
        Kind::Dense
    }
}

fn sorted(qubits: &[usize]) -> Vec<usize> {
    let mut q = qubits.to_vec();
    q.sort_unstable();
    q
}

/// Compiles a gate list into ops.
///
/// Blocks stay open while no later gate blocks them. A gate joins the open blocks it touches when
/// the union fits the limits and is estimated no dearer than keeping them apart (disjoint open
/// blocks commute, so merging them is exact); otherwise those blocks are emitted first and the gate
/// opens a new block.
pub fn fuse(instructions: &[Instruction], limits: FusionLimits) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut open: Vec<Block> = Vec::new();
    for inst in instructions {
        let gate_kind = gate_kind(inst);
        let touched: Vec<usize> = (0..open.len())
            .filter(|&b| open[b].qubits.iter().any(|q| inst.qubits.contains(q)))
            .collect();
        let mut qubits = inst.qubits.clone();
        let mut kind = gate_kind;
        let mut separate_cost = cost(gate_kind, inst.qubits.len());
        for &b in &touched {
            qubits.extend_from_slice(&open[b].qubits);
            kind = kind.max(open[b].kind);
            separate_cost += open[b].cost();
        }
        qubits.sort_unstable();
        qubits.dedup();
        let limit = match kind {
            Kind::Dense => limits.dense,
            _ => limits.sparse,
        };
        let merge = qubits.len() <= limit && cost(kind, qubits.len()) <= separate_cost + 1e-9;
        let mut gates = Vec::new();
        // Highest index first, so swap_remove never moves a block still to be visited.
        for &b in touched.iter().rev() {
            let mut block = open.swap_remove(b);
            if merge {
                // Keep the longest gate list and append the shorter ones (the blocks are disjoint
                // and commute, so their order is free): copying the growing list into a new one
                // for every gate would make a long run of gates on a few qubits quadratic.
                if block.gates.len() > gates.len() {
                    std::mem::swap(&mut gates, &mut block.gates);
                }
                gates.extend(block.gates);
            } else {
                ops.push(block_op(&block));
            }
        }
        if !merge {
            qubits = sorted(&inst.qubits);
            kind = gate_kind;
        }
        gates.push(inst);
        open.push(Block {
            qubits,
            gates,
            kind,
        });
    }
    ops.extend(merge_disjoint_sparse(open, limits).iter().map(block_op));
    ops
}

/// Open blocks at the end are disjoint and commute: pack the diagonal and monomial ones together
/// (first fit), so a final layer of swaps or phases costs one pass instead of one each.
fn merge_disjoint_sparse(open: Vec<Block>, limits: FusionLimits) -> Vec<Block> {
    let mut packed: Vec<Block> = Vec::new();
    for block in open {
        let slot = (block.kind != Kind::Dense)
            .then(|| {
                packed.iter().position(|p| {
                    p.kind != Kind::Dense && p.qubits.len() + block.qubits.len() <= limits.sparse
                })
            })
            .flatten();
        match slot {
            Some(k) => {
                let p = &mut packed[k];
                p.qubits.extend_from_slice(&block.qubits);
                p.qubits.sort_unstable();
                p.kind = p.kind.max(block.kind);
                p.gates.extend(block.gates);
            }
            None => packed.push(block),
        }
    }
    packed
}

fn block_op(block: &Block) -> Op {
    if block.kind != Kind::Dense {
        return sparse_block_op(block);
    }
    let d = 1usize << block.qubits.len();
    // Column c of the block's unitary is the block applied to basis state c; identity's columns
    // start at cols[c * d].
    let mut cols = identity(d);
    for inst in &block.gates {
        let local = block.local_qubits(inst);
        // `cols` read as a 2k-qubit state: local qubits are its low (row) bits, so one call
        // applies the gate to every column.
        apply_matrix_small(&mut cols, &local, &inst.gate.matrix());
    }
    let mut m = vec![C64::new(0.0, 0.0); d * d];
    for c in 0..d {
        for r in 0..d {
            m[r * d + c] = cols[c * d + r];
        }
    }
    Op::from_matrix(block.qubits.clone(), &m)
}

/// Diagonal and monomial blocks: follow each basis state through the gates (each maps a basis state
/// to one basis state times a phase), which costs 2^k per gate instead of the dense 4^k.
fn sparse_block_op(block: &Block) -> Op {
    let d = 1usize << block.qubits.len();
    let mut target: Vec<usize> = (0..d).collect();
    let mut phase = vec![C64::new(1.0, 0.0); d];
    for inst in &block.gates {
        let local = block.local_qubits(inst);
        let gm = inst.gate.matrix();
        let gd = 1usize << local.len();
        for (t, ph) in target.iter_mut().zip(phase.iter_mut()) {
            let col: usize = local
                .iter()
                .enumerate()
                .map(|(b, &l)| (*t >> l & 1) << b)
                .sum();
            let row = (0..gd)
                .find(|&r| gm[r * gd + col] != C64::new(0.0, 0.0))
                .unwrap_or(col);
            *ph *= gm[row * gd + col];
            let mut next = *t;
            for (b, &l) in local.iter().enumerate() {
                next = (next & !(1 << l)) | ((row >> b & 1) << l);
            }
            *t = next;
        }
    }
    if target.iter().enumerate().all(|(j, &t)| j == t) {
        return Op::Diagonal(DiagonalKernel::new(block.qubits.clone(), phase));
    }
    Op::Monomial(PermuteKernel::new(block.qubits.clone(), target, phase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::{Circuit, Gate};

    #[test]
    fn fusion_classifies_blocks() {
        let wide = FusionLimits {
            dense: 3,
            sparse: 3,
        };
        let mut c = Circuit::new(3);
        c.push(Gate::Cx, &[0, 1]).unwrap();
        c.push(Gate::Cx, &[1, 2]).unwrap();
        c.push(Gate::T, &[2]).unwrap();
        let ops = fuse(c.instructions(), wide);
        assert_eq!(ops.len(), 1);
        assert!(matches!(ops[0], Op::Monomial(_)));
        let mut d = Circuit::new(3);
        d.push(Gate::H, &[0]).unwrap();
        d.push(Gate::Cx, &[0, 1]).unwrap();
        let ops = fuse(d.instructions(), wide);
        assert_eq!(ops.len(), 1);
        assert!(matches!(ops[0], Op::Dense(_)));
        assert_eq!(fuse(c.instructions(), FusionLimits::NONE).len(), 3);
    }

    #[test]
    fn diagonal_ops_are_chunk_local_wherever_they_act() {
        let mut c = Circuit::new(20);
        c.push(Gate::Rzz(0.3), &[2, 19]).unwrap();
        c.push(Gate::Cx, &[3, 18]).unwrap();
        let ops = fuse(c.instructions(), FusionLimits::NONE);
        assert!(ops[0].is_chunk_local(10));
        assert!(!ops[1].is_chunk_local(10));
        assert!(ops[1].is_chunk_local(19));
    }
}
