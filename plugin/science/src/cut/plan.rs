//! Cut plans: where the wires are cut, and the fragments that result.

use crate::circuit::Circuit;
use serde::Serialize;
use thiserror::Error;

/// One wire cut: qubit `qubit` is cut after its `position`-th gate (1-based), that is between
/// instructions `after_gate` and `before_gate` of the original circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WireCut {
    pub qubit: usize,
    pub position: usize,
    pub after_gate: usize,
    pub before_gate: usize,
}

/// How a fragment qubit starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentStart {
    /// In |0>, at the start of the circuit.
    Input,
    /// Prepared in a cut's eigenstate; the index is into [`CutPlan::cuts`].
    Prepare(usize),
}

/// How a fragment qubit ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentEnd {
    /// Read out as original qubit `qubit` of the result.
    Output,
    /// Measured in a cut's basis; the index is into [`CutPlan::cuts`].
    Measure(usize),
}

/// A piece of one original wire between cuts: one qubit of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub qubit: usize,
    pub start: SegmentStart,
    pub end: SegmentEnd,
}

/// A connected piece of the cut circuit: its qubits (segments) and its gates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fragment {
    /// Local qubit `i` of the fragment is `segments[i]`.
    pub segments: Vec<Segment>,
    /// Instruction indices of the original circuit, in order.
    pub gates: Vec<usize>,
    /// For each gate, its arguments as local qubits of this fragment.
    #[serde(skip)]
    pub local_args: Vec<Vec<usize>>,
}

impl Fragment {
    pub fn width(&self) -> usize {
        self.segments.len()
    }

    /// Cuts whose downstream end is prepared here, in local-qubit order.
    pub fn prepared_cuts(&self) -> Vec<usize> {
        self.segments
            .iter()
            .filter_map(|s| match s.start {
                SegmentStart::Prepare(c) => Some(c),
                SegmentStart::Input => None,
            })
            .collect()
    }

    /// Cuts whose upstream end is measured here, in local-qubit order.
    pub fn measured_cuts(&self) -> Vec<usize> {
        self.segments
            .iter()
            .filter_map(|s| match s.end {
                SegmentEnd::Measure(c) => Some(c),
                SegmentEnd::Output => None,
            })
            .collect()
    }

    /// Local qubits that start prepared at a cut, in local order (the order of `prepared_cuts`).
    pub fn prepared_locals(&self) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&l| matches!(self.segments[l].start, SegmentStart::Prepare(_)))
            .collect()
    }

    /// Local qubits that end measured at a cut, in local order (the order of `measured_cuts`).
    pub fn measured_locals(&self) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&l| matches!(self.segments[l].end, SegmentEnd::Measure(_)))
            .collect()
    }

    /// Local qubits that are read out as original qubits, in local order.
    pub fn output_qubits(&self) -> Vec<(usize, usize)> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.end == SegmentEnd::Output)
            .map(|(local, s)| (local, s.qubit))
            .collect()
    }

    /// Distinct circuits this fragment needs: 4 preparations per prepared cut, 3 bases per measured cut.
    pub fn num_variants(&self) -> u128 {
        let power =
            |base: u128, exp: usize| u32::try_from(exp).ok().and_then(|e| base.checked_pow(e));
        power(4, self.prepared_cuts().len())
            .zip(power(3, self.measured_cuts().len()))
            .and_then(|(a, b)| a.checked_mul(b))
            .unwrap_or(u128::MAX)
    }
}

/// The cuts of a circuit and the fragments they leave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutPlan {
    pub num_qubits: usize,
    pub cuts: Vec<WireCut>,
    pub fragments: Vec<Fragment>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("qubit {qubit} is out of range for a circuit of {num_qubits} qubits")]
    QubitOutOfRange { qubit: usize, num_qubits: usize },
    #[error("cannot cut qubit {qubit} after its gate {position}: the wire has {gates} gate(s), so a cut must come after gate 1 to {last}", last = gates.saturating_sub(1))]
    BadPosition {
        qubit: usize,
        position: usize,
        gates: usize,
    },
    #[error("qubit {qubit} is cut twice after its gate {position}")]
    DuplicateCut { qubit: usize, position: usize },
}

impl CutPlan {
    /// Builds the plan for cuts given as `(qubit, position)`: qubit's wire is cut after its
    /// `position`-th gate (1-based), so `position` runs from 1 to the wire's gate count minus one.
    pub fn from_cuts(circuit: &Circuit, cuts: &[(usize, usize)]) -> Result<CutPlan, PlanError> {
        let wires = wire_gates(circuit);
        let wire_cuts = checked_cuts(circuit.num_qubits(), &wires, cuts)?;
        let wiring = Wiring::split(&wires, &wire_cuts);
        let fragments = wiring.fragments(circuit);
        Ok(CutPlan {
            num_qubits: circuit.num_qubits(),
            cuts: wire_cuts,
            fragments,
        })
    }

    /// Widest fragment.
    pub fn max_width(&self) -> usize {
        self.fragments
            .iter()
            .map(Fragment::width)
            .max()
            .unwrap_or(0)
    }

    /// Distinct fragment circuits to run for one output basis.
    pub fn num_variants(&self) -> u128 {
        self.fragments
            .iter()
            .map(Fragment::num_variants)
            .fold(0u128, u128::saturating_add)
    }
}

/// Instruction indices on each wire, in order.
pub fn wire_gates(circuit: &Circuit) -> Vec<Vec<usize>> {
    let mut wires = vec![Vec::new(); circuit.num_qubits()];
    for (g, inst) in circuit.instructions().iter().enumerate() {
        for &q in &inst.qubits {
            wires[q].push(g);
        }
    }
    wires
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb)] = ra.min(rb);
    }
}

/// The cuts, sorted, each checked against its wire (qubit in range, between two of its gates,
/// not given twice), with the gates it sits between.
fn checked_cuts(
    n: usize,
    wires: &[Vec<usize>],
    cuts: &[(usize, usize)],
) -> Result<Vec<WireCut>, PlanError> {
    let mut sorted: Vec<(usize, usize)> = cuts.to_vec();
    sorted.sort_unstable();
    for (k, &(qubit, position)) in sorted.iter().enumerate() {
        if qubit >= n {
            return Err(PlanError::QubitOutOfRange {
                qubit,
                num_qubits: n,
            });
        }
        let gates = wires[qubit].len();
        if position == 0 || position >= gates {
            return Err(PlanError::BadPosition {
                qubit,
                position,
                gates,
            });
        }
        if k > 0 && sorted[k - 1] == (qubit, position) {
            return Err(PlanError::DuplicateCut { qubit, position });
        }
    }
    Ok(sorted
        .iter()
        .map(|&(qubit, position)| WireCut {
            qubit,
            position,
            after_gate: wires[qubit][position - 1],
            before_gate: wires[qubit][position],
        })
        .collect())
}

/// The wires split at their cuts into segments.
struct Wiring {
    segments: Vec<Segment>,
    /// `segment_of[q][j]`: the segment of the `j`-th gate on wire `q`.
    segment_of: Vec<Vec<usize>>,
}

impl Wiring {
    fn split(wires: &[Vec<usize>], wire_cuts: &[WireCut]) -> Wiring {
        // cut_after[q][j]: the cut between the (j-1)-th and j-th gate of wire q, if any.
        let mut cut_after: Vec<Vec<Option<usize>>> =
            wires.iter().map(|w| vec![None; w.len()]).collect();
        for (c, w) in wire_cuts.iter().enumerate() {
            cut_after[w.qubit][w.position] = Some(c);
        }
        let mut segments: Vec<Segment> = Vec::new();
        let mut segment_of: Vec<Vec<usize>> = Vec::with_capacity(wires.len());
        for (q, cuts_on_wire) in cut_after.iter().enumerate() {
            let mut ids = Vec::with_capacity(cuts_on_wire.len());
            let mut current = segments.len();
            segments.push(Segment {
                qubit: q,
                start: SegmentStart::Input,
                end: SegmentEnd::Output,
            });
            for &cut in cuts_on_wire {
                if let Some(c) = cut {
                    segments[current].end = SegmentEnd::Measure(c);
                    current = segments.len();
                    segments.push(Segment {
                        qubit: q,
                        start: SegmentStart::Prepare(c),
                        end: SegmentEnd::Output,
                    });
                }
                ids.push(current);
            }
            segment_of.push(ids);
        }
        Wiring {
            segments,
            segment_of,
        }
    }

    /// Fragments: segments joined by multi-qubit gates (union-find), each with its gates and their
    /// fragment-local qubit arguments.
    fn fragments(&self, circuit: &Circuit) -> Vec<Fragment> {
        let segments = &self.segments;
        let mut parent: Vec<usize> = (0..segments.len()).collect();
        let mut position_on_wire = vec![0usize; circuit.num_qubits()];
        let mut gate_segments: Vec<Vec<usize>> = Vec::with_capacity(circuit.len());
        for inst in circuit.instructions() {
            let segs: Vec<usize> = inst
                .qubits
                .iter()
                .map(|&q| {
                    let s = self.segment_of[q][position_on_wire[q]];
                    position_on_wire[q] += 1;
                    s
                })
                .collect();
            for w in segs.windows(2) {
                union(&mut parent, w[0], w[1]);
            }
            gate_segments.push(segs);
        }
        let mut root_to_fragment: Vec<Option<usize>> = vec![None; segments.len()];
        let mut local_index = vec![0usize; segments.len()];
        let mut fragments: Vec<Fragment> = Vec::new();
        for s in 0..segments.len() {
            let root = find(&mut parent, s);
            let f = *root_to_fragment[root].get_or_insert_with(|| {
                fragments.push(Fragment {
                    segments: Vec::new(),
                    gates: Vec::new(),
                    local_args: Vec::new(),
                });
                fragments.len() - 1
            });
            local_index[s] = fragments[f].segments.len();
            fragments[f].segments.push(segments[s]);
        }
        for (g, segs) in gate_segments.iter().enumerate() {
            let root = find(&mut parent, segs[0]);
            if let Some(f) = root_to_fragment[root] {
                fragments[f].gates.push(g);
                fragments[f]
                    .local_args
                    .push(segs.iter().map(|&s| local_index[s]).collect());
            }
        }
        fragments
    }
}
