//! Fragment variants: the plain circuits that cutting asks to run.
//!
//! Upstream cut ends are measured in X, Y or Z (I reuses the Z circuit), downstream ends are
//! prepared in |0>, |1>, |+> or |+i> (|->, |-i> follow linearly), so a fragment with `a` prepared
//! and `b` measured cuts has `4^a 3^b` variants and two fragments joined by `k` cuts need
//! `3^k + 4^k` circuits, never `8^k`. Output qubits can be rotated into X or Y for Pauli
//! expectation values.

use super::plan::CutPlan;
use crate::circuit::{Circuit, CircuitError, Gate};
use serde::Serialize;

/// State prepared on a downstream cut end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Prep {
    Zero,
    One,
    Plus,
    PlusI,
}

impl Prep {
    pub const ALL: [Prep; 4] = [Prep::Zero, Prep::One, Prep::Plus, Prep::PlusI];
}

/// Basis a qubit is read out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Basis {
    X,
    Y,
    Z,
}

impl Basis {
    pub const ALL: [Basis; 3] = [Basis::X, Basis::Y, Basis::Z];
}

/// Which variant of which fragment: preparations per prepared cut and bases per measured cut (in
/// the fragment's local-qubit order), plus the readout basis of each output qubit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct VariantKey {
    pub fragment: usize,
    pub preps: Vec<Prep>,
    pub cut_bases: Vec<Basis>,
    pub output_bases: Vec<Basis>,
}

/// A variant and its circuit.
#[derive(Debug, Clone)]
pub struct Variant {
    pub key: VariantKey,
    pub circuit: Circuit,
    /// Content ID of the circuit (see [`Circuit::content_id`]).
    pub id: String,
}

/// Digits of `index` in base `base`, least significant first.
pub(crate) fn digits(mut index: usize, base: usize, len: usize) -> Vec<usize> {
    (0..len)
        .map(|_| {
            let d = index % base;
            index /= base;
            d
        })
        .collect()
}

/// Every variant of one fragment for the given output readout bases, in the order the
/// reconstruction indexes them: `prep_index * 3^measured + basis_index`, each a base-4 / base-3
/// number with the first cut as least significant digit.
pub fn fragment_variants(
    circuit: &Circuit,
    plan: &CutPlan,
    fragment: usize,
    output_bases: &[Basis],
) -> Result<Vec<Variant>, CircuitError> {
    let f = &plan.fragments[fragment];
    let (a, b) = (f.prepared_cuts().len(), f.measured_cuts().len());
    let mut out = Vec::with_capacity(4usize.pow(a as u32) * 3usize.pow(b as u32));
    for s in 0..4usize.pow(a as u32) {
        let preps: Vec<Prep> = digits(s, 4, a).into_iter().map(|d| Prep::ALL[d]).collect();
        for m in 0..3usize.pow(b as u32) {
            let cut_bases: Vec<Basis> =
                digits(m, 3, b).into_iter().map(|d| Basis::ALL[d]).collect();
            let key = VariantKey {
                fragment,
                preps: preps.clone(),
                cut_bases,
                output_bases: output_bases.to_vec(),
            };
            let circuit = variant_circuit(circuit, plan, &key)?;
            let id = circuit.content_id();
            out.push(Variant { key, circuit, id });
        }
    }
    Ok(out)
}

/// Readout bases of a fragment's output qubits for a readout setting given per original qubit.
pub fn output_bases(plan: &CutPlan, fragment: usize, setting: &[Basis]) -> Vec<Basis> {
    plan.fragments[fragment]
        .output_qubits()
        .iter()
        .map(|&(_, q)| setting[q])
        .collect()
}

/// Builds one variant: preparations, the fragment's gates on local qubits, basis rotations.
pub fn variant_circuit(
    circuit: &Circuit,
    plan: &CutPlan,
    key: &VariantKey,
) -> Result<Circuit, CircuitError> {
    let f = &plan.fragments[key.fragment];
    let mut c = Circuit::new(f.width());
    let prepared = f.prepared_locals();
    for (&local, prep) in prepared.iter().zip(&key.preps) {
        match prep {
            Prep::Zero => {}
            Prep::One => {
                c.push(Gate::X, &[local])?;
            }
            Prep::Plus => {
                c.push(Gate::H, &[local])?;
            }
            Prep::PlusI => {
                c.push(Gate::H, &[local])?;
                c.push(Gate::S, &[local])?;
            }
        }
    }
    for (&g, args) in f.gates.iter().zip(&f.local_args) {
        c.push(circuit.instructions()[g].gate, args)?;
    }
    let measured = f.measured_locals();
    let outputs = f.output_qubits().into_iter().map(|(l, _)| l);
    let rotations = measured
        .into_iter()
        .zip(key.cut_bases.iter())
        .chain(outputs.zip(key.output_bases.iter()));
    for (local, basis) in rotations {
        match basis {
            Basis::Z => {}
            Basis::X => {
                c.push(Gate::H, &[local])?;
            }
            Basis::Y => {
                c.push(Gate::Sdg, &[local])?;
                c.push(Gate::H, &[local])?;
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_fragments_with_k_cuts_need_3k_plus_4k_distinct_circuits() {
        // Block A on qubits 0..3, block B on 1..4 after it: wires 1 and 2 pass from A to B.
        let mut c = Circuit::new(4);
        c.push(Gate::H, &[0]).unwrap();
        c.push(Gate::Cx, &[0, 1]).unwrap();
        c.push(Gate::Cx, &[1, 2]).unwrap();
        c.push(Gate::Cx, &[2, 3]).unwrap();
        c.push(Gate::Ry(0.3), &[3]).unwrap();
        c.push(Gate::Cz, &[1, 3]).unwrap();
        let plan = CutPlan::from_cuts(&c, &[(1, 2), (2, 1)]).unwrap();
        assert_eq!(plan.fragments.len(), 2);
        assert_eq!(plan.num_variants(), 9 + 16);
        let mut ids = std::collections::HashSet::new();
        for f in 0..plan.fragments.len() {
            let outputs = vec![Basis::Z; plan.fragments[f].output_qubits().len()];
            for v in fragment_variants(&c, &plan, f, &outputs).unwrap() {
                ids.insert(v.id);
            }
        }
        assert_eq!(ids.len(), 25, "every variant is a distinct circuit");
    }
}
