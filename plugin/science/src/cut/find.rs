//! Automatic cut finding: the fewest wire cuts that leave every fragment within `max_qubits`.
//!
//! Hand-written local search, because the peers' answers do not fit: MIP solvers (CutQC) bring
//! licences and fail on random circuits, KaHyPar is a C++ dependency. The search assigns every
//! multi-qubit gate to a fragment; a wire whose consecutive multi-qubit gates sit in different
//! fragments is cut between them, and a fragment's width is the number of wire runs it holds.
//! Simulated annealing over single-gate moves (to a fragment adjacent on one of its wires) minimises
//! `cuts + penalty * overflow`, with deterministic seeds, several restarts and fragment counts; the
//! plan with no overflow and the fewest cuts wins, ties going to fewer fragment variants.
//! Moves are evaluated in O(qubits of the gate), so 1,000 gates take well under a second.

use super::plan::{wire_gates, CutPlan};
use crate::cancel::{Cancel, Cancelled};
use crate::circuit::Circuit;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// What the search may do.
#[derive(Debug, Clone)]
pub struct FindOptions {
    pub max_qubits: usize,
    /// Most cuts accepted; `None` for no bound.
    pub max_cuts: Option<usize>,
    pub seed: u64,
    /// Checked between annealing steps: a cancelled search ends with [`FindError::Cancelled`].
    pub cancel: Cancel,
}

impl FindOptions {
    pub fn new(max_qubits: usize) -> Self {
        Self {
            max_qubits,
            max_cuts: None,
            seed: 0x9e37_79b9,
            cancel: Cancel::default(),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FindError {
    #[error("max_qubits must be at least 1")]
    ZeroWidth,
    #[error("gate {gate} (instruction {index}) acts on {qubits} qubits, more than max_qubits = {max_qubits}: wire cuts cannot split a gate")]
    GateTooWide {
        gate: &'static str,
        index: usize,
        qubits: usize,
        max_qubits: usize,
    },
    #[error("{}", no_plan_message(*max_qubits, *max_cuts, *best_cuts, *smallest_max_qubits))]
    NoPlan {
        max_qubits: usize,
        max_cuts: usize,
        /// Fewest cuts found for `max_qubits`, if any plan was found.
        best_cuts: Option<usize>,
        /// Smallest `max_qubits` for which a plan within `max_cuts` was found.
        smallest_max_qubits: Option<usize>,
    },
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

fn no_plan_message(
    max_qubits: usize,
    max_cuts: usize,
    best: Option<usize>,
    width: Option<usize>,
) -> String {
    let mut m = format!("no cut plan with at most {max_cuts} cut(s) leaves every fragment within {max_qubits} qubit(s)");
    if let Some(b) = best {
        m += &format!("; the best plan found for max_qubits = {max_qubits} needs {b} cut(s)");
    }
    if let Some(w) = width {
        m += &format!("; with {max_cuts} cut(s), max_qubits = {w} is the smallest that works");
    }
    m
}

/// Finds a cut plan; see the module doc.
pub fn find_cuts(circuit: &Circuit, options: FindOptions) -> Result<CutPlan, FindError> {
    let m = options.max_qubits;
    if m == 0 {
        return Err(FindError::ZeroWidth);
    }
    if let Some((index, inst)) = circuit
        .instructions()
        .iter()
        .enumerate()
        .find(|(_, i)| i.qubits.len() > m)
    {
        return Err(FindError::GateTooWide {
            gate: inst.gate.name(),
            index,
            qubits: inst.qubits.len(),
            max_qubits: m,
        });
    }
    let cancel = &options.cancel;
    let best = search(circuit, m, options.seed, cancel)?;
    let max_cuts = options.max_cuts.unwrap_or(usize::MAX);
    if best.cuts.len() <= max_cuts {
        return Ok(best);
    }
    // Wider fragments need no more cuts: bisect for the smallest width that fits, in
    // O(log qubits) searches rather than one per width.
    let fits = |w: usize| -> Result<bool, Cancelled> {
        Ok(search(circuit, w, options.seed, cancel)?.cuts.len() <= max_cuts)
    };
    let (mut low, mut high) = (m + 1, circuit.num_qubits());
    let mut smallest = None;
    while low <= high {
        let mid = low + (high - low) / 2;
        if fits(mid)? {
            smallest = Some(mid);
            high = mid - 1;
        } else {
            low = mid + 1;
        }
    }
    Err(FindError::NoPlan {
        max_qubits: m,
        max_cuts,
        best_cuts: Some(best.cuts.len()),
        smallest_max_qubits: smallest,
    })
}

/// The best plan found for width `m` (always feasible: in the worst case every multi-qubit gate
/// gets its own fragment, which is within `m` because no gate is wider).
fn search(circuit: &Circuit, m: usize, seed: u64, cancel: &Cancel) -> Result<CutPlan, Cancelled> {
    let uncut = CutPlan::from_cuts(circuit, &[]).expect("no cuts is always a valid plan");
    if uncut.max_width() <= m {
        return Ok(uncut);
    }
    let problem = Problem::new(circuit);
    let active = problem.wires.iter().filter(|w| !w.is_empty()).count();
    let min_fragments = active.div_ceil(m).max(2);
    // The plan is judged by (cuts, variants), the fewest first; `num_variants` is computed once.
    let mut best: Option<((usize, u128), CutPlan)> = None;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Try a few fragment counts from the least that could fit; when none of them yields a
    // feasible plan, keep adding fragments until one does.
    let most = problem.gates.len().max(min_fragments);
    let mut fragments = min_fragments;
    let mut extra_after_feasible = 2;
    while fragments <= most && extra_after_feasible > 0 {
        for restart in 0..2 {
            let initial = problem.initial_assignment(fragments, restart, &mut rng);
            let assignment = problem.anneal(initial, fragments, m, &mut rng, cancel)?;
            // Groups that are not connected split into several fragments, so even an assignment
            // that overflows can give a plan that fits: judge the real plan.
            let plan = CutPlan::from_cuts(circuit, &problem.cuts_of(&assignment))
                .expect("cuts derived from an assignment are valid");
            if plan.max_width() > m {
                continue;
            }
            let key = (plan.cuts.len(), plan.num_variants());
            if best.as_ref().is_none_or(|(best_key, _)| key < *best_key) {
                best = Some((key, plan));
            }
        }
        extra_after_feasible -= best.is_some() as usize;
        // Beyond the first few counts, double: a feasible count is found in O(log gates) steps.
        fragments = if fragments < min_fragments + 2 {
            fragments + 1
        } else {
            fragments * 2
        };
    }
    Ok(match best {
        Some((_, plan)) => plan,
        None => {
            // Always feasible: every multi-qubit gate in a fragment of its own.
            let own: Vec<usize> = (0..problem.gates.len()).collect();
            CutPlan::from_cuts(circuit, &problem.cuts_of(&own)).expect("valid cuts")
        }
    })
}

/// The search's view of a circuit: multi-qubit gates and, per wire, their order.
struct Problem {
    /// Qubits of each multi-qubit gate.
    gates: Vec<Vec<usize>>,
    /// Per wire: (multi-qubit gate id, position of that gate on the wire's full gate list).
    wires: Vec<Vec<(usize, usize)>>,
    /// Per gate and argument: index of the gate in `wires[qubit]`.
    slot: Vec<Vec<usize>>,
}

impl Problem {
    fn new(circuit: &Circuit) -> Self {
        let all = wire_gates(circuit);
        let mut gates = Vec::new();
        let mut id_of = vec![usize::MAX; circuit.len()];
        for (g, inst) in circuit.instructions().iter().enumerate() {
            if inst.qubits.len() > 1 {
                id_of[g] = gates.len();
                gates.push(inst.qubits.clone());
            }
        }
        let mut wires = vec![Vec::new(); circuit.num_qubits()];
        let mut slot: Vec<Vec<usize>> = gates.iter().map(|qs| vec![0; qs.len()]).collect();
        for (q, list) in all.iter().enumerate() {
            for (position, &g) in list.iter().enumerate() {
                let id = id_of[g];
                if id == usize::MAX {
                    continue;
                }
                if let Some(arg) = gates[id].iter().position(|&x| x == q) {
                    slot[id][arg] = wires[q].len();
                }
                wires[q].push((id, position));
            }
        }
        Self { gates, wires, slot }
    }

    /// Qubits in breadth-first order over the interaction graph, cut into equal groups; each gate
    /// joins the group of most of its qubits. Restart 1 starts the walk from a random qubit.
    fn initial_assignment(
        &self,
        fragments: usize,
        restart: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<usize> {
        let n = self.wires.len();
        let mut neighbours = vec![Vec::new(); n];
        for qubits in &self.gates {
            for &a in qubits {
                for &b in qubits {
                    if a != b && !neighbours[a].contains(&b) {
                        neighbours[a].push(b);
                    }
                }
            }
        }
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        let first = if restart == 0 {
            0
        } else {
            rng.random_range(0..n)
        };
        for start in (first..n).chain(0..first) {
            if seen[start] || self.wires[start].is_empty() {
                continue;
            }
            let mut queue = std::collections::VecDeque::from([start]);
            seen[start] = true;
            while let Some(q) = queue.pop_front() {
                order.push(q);
                let mut next = neighbours[q].clone();
                next.sort_unstable();
                for b in next {
                    if !seen[b] {
                        seen[b] = true;
                        queue.push_back(b);
                    }
                }
            }
        }
        let per_group = order.len().div_ceil(fragments).max(1);
        let mut group = vec![0usize; n];
        for (k, &q) in order.iter().enumerate() {
            group[q] = (k / per_group).min(fragments - 1);
        }
        self.gates
            .iter()
            .map(|qubits| {
                let mut votes = vec![0usize; fragments];
                for &q in qubits {
                    votes[group[q]] += 1;
                }
                let top = votes.iter().copied().max().unwrap_or(0);
                votes.iter().position(|&v| v == top).unwrap_or(0)
            })
            .collect()
    }

    fn widths(&self, a: &[usize], fragments: usize) -> Vec<usize> {
        let mut w = vec![0usize; fragments];
        for wire in &self.wires {
            for (k, &(g, _)) in wire.iter().enumerate() {
                if k == 0 || a[wire[k - 1].0] != a[g] {
                    w[a[g]] += 1;
                }
            }
        }
        w
    }

    fn cut_count(&self, a: &[usize]) -> usize {
        self.wires
            .iter()
            .map(|w| w.windows(2).filter(|p| a[p[0].0] != a[p[1].0]).count())
            .sum()
    }

    /// `(qubit, position)` cuts implied by an assignment: just before the later gate of each pair
    /// of consecutive multi-qubit gates in different fragments.
    fn cuts_of(&self, a: &[usize]) -> Vec<(usize, usize)> {
        let mut cuts = Vec::new();
        for (q, wire) in self.wires.iter().enumerate() {
            for p in wire.windows(2) {
                if a[p[0].0] != a[p[1].0] {
                    cuts.push((q, p[1].1));
                }
            }
        }
        cuts
    }

    /// Change in (cuts, per-fragment widths) if gate `g` moves from its fragment to `to`.
    fn delta(&self, a: &[usize], g: usize, to: usize, dw: &mut Vec<(usize, isize)>) -> isize {
        let from = a[g];
        let mut dcuts = 0isize;
        dw.clear();
        let add = |f: usize, d: isize, dw: &mut Vec<(usize, isize)>| {
            if d == 0 {
                return;
            }
            match dw.iter_mut().find(|(x, _)| *x == f) {
                Some(e) => e.1 += d,
                None => dw.push((f, d)),
            }
        };
        for (arg, &q) in self.gates[g].iter().enumerate() {
            let wire = &self.wires[q];
            let i = self.slot[g][arg];
            let prev = (i > 0).then(|| a[wire[i - 1].0]);
            let next = wire.get(i + 1).map(|&(h, _)| a[h]);
            if let Some(p) = prev {
                dcuts += (p != to) as isize - (p != from) as isize;
            }
            if let Some(nx) = next {
                dcuts += (nx != to) as isize - (nx != from) as isize;
                add(nx, (nx != to) as isize - (nx != from) as isize, dw);
            }
            add(from, -((prev != Some(from)) as isize), dw);
            add(to, (prev != Some(to)) as isize, dw);
        }
        dcuts
    }

    /// Anneals `cuts + penalty * overflow`, the penalty rising from 1 to more than any cut count,
    /// so the search may cross infeasible ground early and must end feasible. Returns the feasible
    /// assignment with the fewest cuts seen, or the least overflowing one if none was.
    fn anneal(
        &self,
        mut a: Vec<usize>,
        fragments: usize,
        m: usize,
        rng: &mut ChaCha8Rng,
        cancel: &Cancel,
    ) -> Result<Vec<usize>, Cancelled> {
        if self.gates.is_empty() {
            return Ok(a);
        }
        let mut widths = self.widths(&a, fragments);
        let over = |w: usize| w.saturating_sub(m) as isize;
        let mut cuts = self.cut_count(&a) as isize;
        let mut overflow: isize = widths.iter().map(|&w| over(w)).sum();
        let mut best_feasible: Option<(isize, Vec<usize>)> =
            (overflow == 0).then(|| (cuts, a.clone()));
        let mut least_overflow = (overflow, cuts, a.clone());
        let iterations = (300 * self.gates.len()).clamp(20_000, 600_000);
        let final_penalty = 2.0 * (2 * self.gates.len() + 1) as f64;
        let (t_start, t_end) = (2.0f64, 0.02f64);
        let mut dw = Vec::with_capacity(8);
        let mut candidates = Vec::with_capacity(8);
        for it in 0..iterations {
            if it % 4096 == 0 {
                cancel.check()?;
            }
            let progress = it as f64 / iterations as f64;
            let t = t_start * (t_end / t_start).powf(progress);
            let penalty = 1.0 + (final_penalty - 1.0) * progress;
            let g = rng.random_range(0..self.gates.len());
            // Only fragments next to the gate on one of its wires can save a cut; an occasional
            // random fragment lets the search leave a dead end.
            candidates.clear();
            for (arg, &q) in self.gates[g].iter().enumerate() {
                let i = self.slot[g][arg];
                let wire = &self.wires[q];
                if i > 0 {
                    candidates.push(a[wire[i - 1].0]);
                }
                if let Some(&(h, _)) = wire.get(i + 1) {
                    candidates.push(a[h]);
                }
            }
            candidates.push(rng.random_range(0..fragments));
            let to = candidates[rng.random_range(0..candidates.len())];
            if to == a[g] {
                continue;
            }
            let dcuts = self.delta(&a, g, to, &mut dw);
            let dover: isize = dw
                .iter()
                .map(|&(f, d)| over((widths[f] as isize + d) as usize) - over(widths[f]))
                .sum();
            let dcost = dcuts as f64 + penalty * dover as f64;
            if dcost <= 0.0 || rng.random::<f64>() < (-dcost / t).exp() {
                a[g] = to;
                for &(f, d) in &dw {
                    widths[f] = (widths[f] as isize + d) as usize;
                }
                cuts += dcuts;
                overflow += dover;
                if overflow == 0 && best_feasible.as_ref().is_none_or(|(c, _)| cuts < *c) {
                    best_feasible = Some((cuts, a.clone()));
                }
                if (overflow, cuts) < (least_overflow.0, least_overflow.1) {
                    least_overflow = (overflow, cuts, a.clone());
                }
            }
        }
        Ok(match best_feasible {
            Some((_, assignment)) => assignment,
            None => least_overflow.2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::Gate;

    fn two_blocks(width: usize) -> Circuit {
        // Block A on qubits 0..width, then block B on width-1..2*width-1: they share one wire.
        let n = 2 * width - 1;
        let mut c = Circuit::new(n);
        for layer in 0..3 {
            for q in 0..width - 1 {
                c.push(Gate::Ry(0.1 * (q + layer) as f64), &[q]).unwrap();
                c.push(Gate::Cx, &[q, q + 1]).unwrap();
            }
        }
        for layer in 0..3 {
            for q in width - 1..n - 1 {
                c.push(Gate::Rx(0.2 * (q + layer) as f64), &[q]).unwrap();
                c.push(Gate::Cz, &[q, q + 1]).unwrap();
            }
        }
        c
    }

    #[test]
    fn two_blocks_need_one_cut() {
        let c = two_blocks(4);
        let plan = find_cuts(&c, FindOptions::new(4)).unwrap();
        assert_eq!(plan.cuts.len(), 1, "{:?}", plan.cuts);
        assert_eq!(plan.cuts[0].qubit, 3);
        assert_eq!(plan.fragments.len(), 2);
        assert!(plan.max_width() <= 4);
        assert_eq!(plan.num_variants(), 3 + 4);
    }

    #[test]
    fn circuits_that_fit_need_no_cut() {
        let c = two_blocks(4);
        let plan = find_cuts(&c, FindOptions::new(7)).unwrap();
        assert!(plan.cuts.is_empty());
        // Disconnected pieces stay separate fragments without any cut.
        let mut d = Circuit::new(6);
        d.push(Gate::Cx, &[0, 1]).unwrap();
        d.push(Gate::Cx, &[2, 3]).unwrap();
        d.push(Gate::H, &[5]).unwrap();
        let plan = find_cuts(&d, FindOptions::new(2)).unwrap();
        assert!(plan.cuts.is_empty());
        assert_eq!(plan.fragments.len(), 4);
    }

    #[test]
    fn a_cancelled_search_stops() {
        let c = two_blocks(4);
        let mut options = FindOptions::new(4);
        options.cancel = Cancel::new();
        options.cancel.cancel();
        assert_eq!(find_cuts(&c, options), Err(FindError::Cancelled(Cancelled)));
    }

    #[test]
    fn infeasible_requests_explain_what_would_work() {
        let c = two_blocks(4);
        let mut options = FindOptions::new(4);
        options.max_cuts = Some(0);
        let err = find_cuts(&c, options).unwrap_err();
        let FindError::NoPlan {
            best_cuts,
            smallest_max_qubits,
            ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(*best_cuts, Some(1));
        assert_eq!(*smallest_max_qubits, Some(7));
        assert!(err.to_string().contains("max_qubits = 7"), "{err}");
        let mut t = Circuit::new(3);
        t.push(Gate::Ccx, &[0, 1, 2]).unwrap();
        assert!(matches!(
            find_cuts(&t, FindOptions::new(2)),
            Err(FindError::GateTooWide { .. })
        ));
        assert_eq!(
            find_cuts(&t, FindOptions::new(0)),
            Err(FindError::ZeroWidth)
        );
    }
}
