//! What every command prints, one serde type per command, and the one writer that prints them.
//!
//! The types are the contract: `quargo simulate`, `cut`, `run`, `cache stats|clear` and the `o/`
//! outputs the plugin stores all serialise through here, and a second writer (human-readable
//! tables on a terminal) will print the same types. Field order is the order users have always
//! seen: outputs that used to be built as JSON objects keep their alphabetical key order.
//!
//! Numbers are written as serde_json writes an `f64`: the shortest decimal that reads back to the
//! same double, and `null` for a non-finite value.

use crate::circuit::bitstring;
use crate::cut::WireCut;
use crate::pipeline::{FragmentSummary, RunOutput, RunReport, SingleResult};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::io::Write;

/// Values below this magnitude are left out of printed distributions (round-off, not outcomes).
pub const SHOWN_ABOVE: f64 = 1e-12;

/// Writes `value` as one line of compact JSON: the one writer of every command's output.
pub fn write_json(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// A map from outcome bitstrings (qubit 0 rightmost) to values, in outcome order.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitstrings<T> {
    pub width: usize,
    pub entries: Vec<(usize, T)>,
}

impl<T: Serialize> Serialize for Bitstrings<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (index, value) in &self.entries {
            map.serialize_entry(&bitstring(*index, self.width), value)?;
        }
        map.end()
    }
}

impl Bitstrings<f64> {
    /// The outcomes of a distribution whose magnitude is above [`SHOWN_ABOVE`].
    pub fn shown(width: usize, values: &[f64]) -> Self {
        Bitstrings {
            width,
            entries: values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.abs() > SHOWN_ABOVE)
                .map(|(i, v)| (i, *v))
                .collect(),
        }
    }
}

/// A map whose keys keep the order they were given in (observables, as the user listed them).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Ordered<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An exact expectation value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Exact {
    pub value: f64,
}

/// A reconstructed expectation value and its standard error (`null` when exact).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub stderr: Option<f64>,
}

/// `quargo simulate`.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateOutput {
    pub num_qubits: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Bitstrings<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shots: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Bitstrings<u64>>,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    pub expectation: Ordered<Exact>,
}

impl SimulateOutput {
    /// The printed form of one circuit's result; `observables` names the expectation values.
    pub fn new(num_qubits: usize, result: &SingleResult, observables: &[String]) -> Self {
        let counts = result.counts.as_ref();
        SimulateOutput {
            num_qubits,
            probabilities: result
                .probabilities
                .as_ref()
                .map(|p| Bitstrings::shown(num_qubits, p)),
            shots: counts.map(|c| c.shots),
            seed: counts.map(|c| c.seed),
            counts: counts.map(|c| Bitstrings {
                width: num_qubits,
                entries: c.counts.iter().map(|(i, n)| (*i, *n)).collect(),
            }),
            expectation: Ordered(
                observables
                    .iter()
                    .zip(&result.expectations)
                    .map(|(text, value)| (text.clone(), Exact { value: *value }))
                    .collect(),
            ),
        }
    }
}

/// `quargo run`, and the `o/` output the plugin's `reconstruct` and `run` store.
#[derive(Debug, Clone, Serialize)]
pub struct RunPrinted<'a> {
    pub num_qubits: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shots: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Bitstrings<f64>>,
    /// Per shown outcome of `probabilities`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Bitstrings<f64>>,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    pub expectation: Ordered<Estimate>,
    pub report: &'a RunReport,
}

impl<'a> RunPrinted<'a> {
    /// The printed form of a run; `shots` and `seed` are shown when the run sampled.
    pub fn new(output: &'a RunOutput, shots: Option<u64>, seed: u64) -> Self {
        let n = output.num_qubits;
        let probabilities = output
            .probabilities
            .as_ref()
            .map(|p| Bitstrings::shown(n, p));
        let stderr = output
            .stderr
            .as_ref()
            .zip(probabilities.as_ref())
            .map(|(se, shown)| Bitstrings {
                width: n,
                entries: shown.entries.iter().map(|(i, _)| (*i, se[*i])).collect(),
            });
        RunPrinted {
            num_qubits: n,
            shots,
            seed: shots.map(|_| seed),
            probabilities,
            stderr,
            expectation: Ordered(
                output
                    .expectations
                    .iter()
                    .map(|e| {
                        let estimate = Estimate {
                            value: e.value,
                            stderr: e.stderr,
                        };
                        (e.text.clone(), estimate)
                    })
                    .collect(),
            ),
            report: &output.report,
        }
    }
}

/// `quargo cut`.
#[derive(Debug, Clone, Serialize)]
pub struct CutOutput {
    pub cuts: Vec<WireCut>,
    pub fragments: Vec<FragmentSummary>,
    pub max_qubits: usize,
    pub num_qubits: usize,
    pub seconds: f64,
    pub variants: u64,
    /// The `2 * 8^k` circuits of the scheme that leaves duplicates to a cache (Qdislib).
    pub variants_without_dedup: u64,
}

/// `quargo cache clear`.
#[derive(Debug, Clone, Serialize)]
pub struct ClearOutput {
    pub location: String,
    pub removed: u64,
}

/// `quargo cache clear --all` on an embedded store: its files are removed without opening it.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedFilesOutput {
    pub location: String,
    pub removed_files: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitstrings_are_qiskit_ordered_and_numbers_shortest() {
        let shown = Bitstrings::shown(3, &[0.5, 1e-13, 0.0, 0.1, 0.0, 0.0, 0.0, -0.4]);
        let text = serde_json::to_string(&shown).unwrap();
        assert_eq!(text, r#"{"000":0.5,"011":0.1,"111":-0.4}"#);
    }

    #[test]
    fn observables_keep_their_order_and_non_finite_is_null() {
        let map = Ordered(vec![
            ("ZZ".to_string(), Exact { value: 1.0 }),
            ("XX".to_string(), Exact { value: f64::NAN }),
        ]);
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            r#"{"ZZ":{"value":1.0},"XX":{"value":null}}"#
        );
    }
}
