//! The operations a template can ask for (`plugin.quargo.op`) and their inputs and outputs.
//!
//! Data moves by reference. Store keys:
//! - `c/<content id>`: a circuit, as OpenQASM 2 text;
//! - `b/<hash>`: a batch of variant circuit keys, what one `simulate` step works on;
//! - `p/<hash>`: a cut plan: the circuit, the cut positions, the run options, the batch keys;
//! - `o/<hash>`: a reconstructed result (the JSON `quargo run` prints);
//! - `r/...`, `m/...`: the semantic cache's results and memos.
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `cut` | `qasm` or `circuit`, `maxQubits`, [`maxCuts`, `shots`, `seed`, `observables`, `allocation`, `probabilities`, `project`, `batchSize`] | `plan`, `batches`, `variants`, `cuts`; result: JSON list of batch keys |
//! | `simulate` | `batch`, or `qasm`/`circuit` [+ `observables`] | `simulated`, `cached`; result: JSON summary (for one circuit: its key, the key of its cached probabilities and the expectation values) |
//! | `reconstruct` | `plan` | `output`; result: JSON summary with the expectation values |
//! | `run` | as `cut` | as `reconstruct` |
//!
//! Every op is a pure function of its inputs and the store, so retries and repeats are safe.

use crate::argo::{text_field, Outputs, Parameter};
use crate::cache::{Cache, ResultKind, Source};
use crate::circuit::Circuit;
use crate::cut::FindError;
use crate::output::{write_json, RunPrinted};
use crate::pauli::{parse_observables, ObservableInputError};
use crate::pipeline::{self, Allocation, RunError, RunOptions, RunSpec};
use crate::qasm::ParseError;
use crate::sim::{SimError, Simulator};
use crate::store::{keys, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

/// Why an op did not answer. [`OpError::verdict`] is the one place that decides what each
/// means for the node: a Failed node (the user's input, or a result that cannot be), a retry
/// (the store is down: Argo gets 503 and calls again), or nothing (stopped by a deadline or a
/// shutdown, which the caller reports in its own words).
#[derive(Debug, Error)]
pub enum OpError {
    #[error("missing 'op' (one of {OPS})")]
    MissingOp,
    #[error("unknown op '{0}' (expected one of {OPS})")]
    UnknownOp(String),
    #[error("unknown input '{name}' (known: {known})", known = KNOWN_INPUTS.join(", "))]
    UnknownInput { name: String },
    /// `{0}` names the input and what it holds.
    #[error("missing input {0}")]
    MissingInput(&'static str),
    #[error("'{name}' must be {expected}, got {got}")]
    BadValue {
        name: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("bad QASM in {origin}: {source}")]
    Qasm { origin: String, source: ParseError },
    #[error("{what} expands to {gates} gates, more than the {max} one request may have (quargo serve --max-gates)")]
    TooManyGates {
        what: String,
        gates: usize,
        max: usize,
    },
    #[error("{what} '{key}' is not in the store {location}; was it produced by an earlier step of this workflow, with the same store?")]
    NotInStore {
        what: &'static str,
        key: String,
        location: String,
    },
    #[error("{what} '{key}' in the store is damaged; run the step that produced it again")]
    Damaged { what: &'static str, key: String },
    #[error("{what} '{key}' {problem}")]
    Malformed {
        what: &'static str,
        key: String,
        problem: &'static str,
    },
    #[error("the plan's {variants} variant circuits take {bytes} bytes, more than the {MAX_CUT_BYTES} one cut may store; allow wider fragments (maxQubits) or send a smaller circuit")]
    CutTooLarge { variants: usize, bytes: usize },
    #[error("{missing} of {variants} fragment variants of plan '{plan}' have no result in the cache; run simulate on every batch of the plan ({batches} batches) first")]
    MissingResults {
        missing: usize,
        variants: usize,
        plan: String,
        batches: usize,
    },
    #[error(transparent)]
    Observable(#[from] ObservableInputError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(&'static str),
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// What an [`OpError`] means for the node.
#[derive(Debug)]
pub enum Verdict {
    /// The node fails with this message; retrying the same call gives the same answer.
    Failed(String),
    /// The store failed: not the job's answer; the call is answered 503 and retried.
    Retry(StoreError),
    /// Stopped by its cancel flag (deadline or shutdown): not the job's answer either.
    Stopped,
}

impl OpError {
    pub fn verdict(self) -> Verdict {
        match self {
            OpError::Run(RunError::Cancelled(_))
            | OpError::Run(RunError::Sim(SimError::Cancelled(_)))
            | OpError::Run(RunError::Find(FindError::Cancelled(_)))
            | OpError::Sim(SimError::Cancelled(_)) => Verdict::Stopped,
            // A full store is not transient: retrying cannot make room; the message says what would.
            OpError::Store(e @ StoreError::Full { .. }) => Verdict::Failed(e.to_string()),
            OpError::Store(e) => Verdict::Retry(e),
            other => Verdict::Failed(other.to_string()),
        }
    }
}

pub const OPS: &str = "cut, simulate, reconstruct, run";

/// Most bytes of variant circuits one `cut` may write to the store.
pub const MAX_CUT_BYTES: usize = 64 << 20;

/// An op that panics, for the tests of panic isolation; enabled only by QUARGO_ENABLE_TEST_OPS.
const TEST_PANIC_OP: &str = "__panic";

fn test_ops_enabled() -> bool {
    std::env::var_os("QUARGO_ENABLE_TEST_OPS").is_some_and(|v| v == "1")
}

#[derive(Debug)]
pub struct Ops {
    pub store: Arc<dyn Store>,
    pub cache: Arc<Cache>,
    pub sim: Simulator,
    pub batch_size: usize,
    /// Most gates one request's circuit may expand to.
    pub max_gates: usize,
    /// Parsed circuits by `c/` key (content-addressed, so never stale).
    pub circuits: crate::cache::recent::Recent<String, Arc<Circuit>>,
}

/// A cut plan as stored under its `p/` key: everything `reconstruct` needs to prepare the same
/// variants again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanRecord {
    circuit: String,
    cuts: Vec<(usize, usize)>,
    /// The run spec, its seed filled in.
    options: RunSpec,
    batches: Vec<String>,
    variants: usize,
}

/// A circuit input, parsed, and its `c/` key.
struct CircuitInput {
    circuit: Circuit,
    key: String,
}

/// A plan read back from the store and prepared again.
struct LoadedPlan {
    record: PlanRecord,
    circuit: Circuit,
    options: RunOptions,
    prepared: pipeline::Prepared,
}

/// `simulate`'s result on one circuit.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CircuitSummary<'a> {
    circuit: &'a str,
    expectation: BTreeMap<&'a str, f64>,
    num_qubits: usize,
    /// The `r/` key of its probabilities, when they are in the store.
    probabilities: Option<&'a str>,
}

/// `simulate`'s result on a batch.
#[derive(Debug, Serialize)]
struct BatchSummary<'a> {
    batch: &'a str,
    cached: usize,
    circuits: usize,
    simulated: usize,
}

/// An expectation value in a step's summary.
#[derive(Debug, Serialize)]
struct SummaryEstimate {
    stderr: Option<f64>,
    value: f64,
}

/// `reconstruct`'s and `run`'s result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputSummary<'a> {
    cuts: usize,
    expectation: BTreeMap<&'a str, SummaryEstimate>,
    num_qubits: usize,
    output: &'a str,
}

fn to_json(what: &'static str, value: &impl Serialize) -> Result<String, OpError> {
    serde_json::to_string(value).map_err(|source| OpError::Encode { what, source })
}

fn param(name: &str, value: impl ToString) -> Parameter {
    Parameter {
        name: name.into(),
        value: value.to_string(),
    }
}

/// Every input an op reads; anything else in the body is refused (a typo would otherwise be
/// silently ignored and the step run with a default).
pub const KNOWN_INPUTS: [&str; 16] = [
    "op",
    "qasm",
    "circuit",
    "maxQubits",
    "maxCuts",
    "shots",
    "seed",
    "observables",
    "allocation",
    "probabilities",
    "project",
    "batchSize",
    "batch",
    "plan",
    "nodeName",
    "attempt",
];

fn check_known_inputs(body: &Map<String, Value>) -> Result<(), OpError> {
    match body.keys().find(|k| !KNOWN_INPUTS.contains(&k.as_str())) {
        Some(unknown) => Err(OpError::UnknownInput {
            name: unknown.clone(),
        }),
        None => Ok(()),
    }
}

fn get_text(body: &Map<String, Value>, name: &str) -> Option<String> {
    text_field(body, name).filter(|t| !t.trim().is_empty())
}

/// A scalar input as text: absent (or null, or blank) is `None`; a list or object is an error.
fn get_scalar(body: &Map<String, Value>, name: &'static str) -> Result<Option<String>, OpError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(other @ (Value::Array(_) | Value::Object(_))) => Err(OpError::BadValue {
            name,
            expected: "a single value",
            got: other.to_string(),
        }),
        Some(_) => Ok(get_text(body, name)),
    }
}

fn get_number<T: std::str::FromStr>(
    body: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<T>, OpError> {
    match get_scalar(body, name)? {
        None => Ok(None),
        Some(t) => t.trim().parse().map(Some).map_err(|_| OpError::BadValue {
            name,
            expected: "a non-negative integer",
            got: format!("'{t}'"),
        }),
    }
}

fn get_bool(body: &Map<String, Value>, name: &'static str, default: bool) -> Result<bool, OpError> {
    match get_scalar(body, name)?.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(OpError::BadValue {
            name,
            expected: "true or false",
            got: format!("'{other}'"),
        }),
    }
}

/// Observables as a JSON list, a JSON-encoded list (what Argo substitution gives), or one string.
/// Only their texts: [`parse_observables`] reads them, once the circuit's width is known.
fn get_observables(body: &Map<String, Value>) -> Result<Vec<String>, OpError> {
    let not_a_list = |got: String| OpError::BadValue {
        name: "observables",
        expected: "a list of strings",
        got,
    };
    let list = match body.get("observables") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) if s.trim_start().starts_with('[') => serde_json::from_str(s)
            .map_err(|e| not_a_list(format!("text that is not a JSON list ({e})")))?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(other) => return Err(not_a_list(other.to_string())),
    };
    list.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(not_a_list(format!("an entry {other}"))),
        })
        .collect()
}

/// The run spec of a `cut` or `run` call: the same model as `quargo run`'s flags. A missing seed
/// is 0, so a retried step computes the same answer.
fn get_run_spec(body: &Map<String, Value>) -> Result<RunSpec, OpError> {
    let max_qubits = get_number(body, "maxQubits")?.ok_or(OpError::MissingInput(
        "'maxQubits' (most qubits per fragment)",
    ))?;
    let allocation = match get_scalar(body, "allocation")?.as_deref() {
        None | Some("weighted") => Allocation::Weighted,
        Some("uniform") => Allocation::Uniform,
        Some(other) => {
            return Err(OpError::BadValue {
                name: "allocation",
                expected: "weighted or uniform",
                got: format!("'{other}'"),
            })
        }
    };
    Ok(RunSpec {
        max_qubits,
        max_cuts: get_number(body, "maxCuts")?,
        shots: get_number(body, "shots")?,
        seed: Some(get_number(body, "seed")?.unwrap_or(0)),
        allocation,
        observables: get_observables(body)?,
        probabilities: get_bool(body, "probabilities", true)?,
        project: get_bool(body, "project", false)?,
    })
}

impl Ops {
    /// The ops over `cache` (and its store), with a memo of parsed circuits bounded by count and
    /// by an estimate of their size (an instruction with its qubit list is about 64 bytes).
    pub fn new(cache: Arc<Cache>, sim: Simulator, batch_size: usize, max_gates: usize) -> Ops {
        Ops {
            store: cache.store().clone(),
            cache,
            sim,
            batch_size: batch_size.max(1),
            max_gates,
            circuits: crate::cache::recent::Recent::bounded(1024, 256 << 20, |_, c| c.len() * 64),
        }
    }

    fn read(&self, key: &str, what: &'static str) -> Result<Vec<u8>, OpError> {
        let bytes = self.store.get(key)?.ok_or_else(|| OpError::NotInStore {
            what,
            key: key.to_string(),
            location: self.store.location(),
        })?;
        let opened = self
            .cache
            .sealer()
            .open(&bytes, key)
            .map_err(|_| OpError::Damaged {
                what,
                key: key.to_string(),
            })?;
        Ok(opened.value.to_vec())
    }

    fn check_gates(&self, circuit: &Circuit, what: impl FnOnce() -> String) -> Result<(), OpError> {
        if circuit.len() > self.max_gates {
            return Err(OpError::TooManyGates {
                what: what(),
                gates: circuit.len(),
                max: self.max_gates,
            });
        }
        Ok(())
    }

    fn write(&self, key: &str, value: &[u8]) -> Result<(), OpError> {
        Ok(self
            .store
            .put(key, &self.cache.sealer().seal(key, b"", value))?)
    }

    fn write_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), OpError> {
        let sealed: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .map(|(k, v)| {
                let s = self.cache.sealer().seal(&k, b"", &v);
                (k, s)
            })
            .collect();
        Ok(self.store.put_many(&sealed)?)
    }

    /// The circuit of `qasm` (inline) or `circuit` (a `c/` key), and its key (stored if new).
    fn circuit_input(&self, body: &Map<String, Value>) -> Result<CircuitInput, OpError> {
        if let Some(qasm) = get_text(body, "qasm") {
            let circuit = crate::qasm::parse_limited(&qasm, self.max_gates).map_err(|source| {
                OpError::Qasm {
                    origin: "'qasm'".into(),
                    source,
                }
            })?;
            self.check_gates(&circuit, || "'qasm'".into())?;
            let key = circuit_key(&circuit);
            // Written once per process: repeated calls with the same inline circuit skip the write.
            // The text the user sent is stored, not its expansion (gate definitions can make a
            // few hundred bytes into millions of gates); it parses to the same circuit.
            if self.circuits.get(&key).is_none() {
                self.write(&key, qasm.as_bytes())?;
                self.circuits.insert(key.clone(), Arc::new(circuit.clone()));
            }
            return Ok(CircuitInput { circuit, key });
        }
        let key = get_text(body, "circuit").ok_or(OpError::MissingInput(
            "'qasm' or 'circuit': give 'qasm' (OpenQASM 2 text) or 'circuit' (a c/... key)",
        ))?;
        let circuit = self.load_circuit(&key)?;
        Ok(CircuitInput { circuit, key })
    }

    fn load_circuit(&self, key: &str) -> Result<Circuit, OpError> {
        if let Some(c) = self.circuits.get(&key.to_string()) {
            return Ok((*c).clone());
        }
        let text =
            String::from_utf8(self.read(key, "circuit")?).map_err(|_| OpError::Malformed {
                what: "circuit",
                key: key.to_string(),
                problem: "is not text",
            })?;
        let circuit =
            crate::qasm::parse_limited(&text, self.max_gates).map_err(|source| OpError::Qasm {
                origin: format!("circuit '{key}'"),
                source,
            })?;
        self.check_gates(&circuit, || format!("circuit '{key}'"))?;
        self.circuits
            .insert(key.to_string(), Arc::new(circuit.clone()));
        Ok(circuit)
    }

    /// Answers at once when that is cheap and safe: input errors, and `simulate` calls whose
    /// results are all in the cache. `None`: the op must run as a job.
    pub fn fast_path(&self, body: &Map<String, Value>) -> Option<Result<Outputs, OpError>> {
        if let Err(e) = check_known_inputs(body) {
            return Some(Err(e));
        }
        match body.get("op").and_then(Value::as_str) {
            None => Some(Err(OpError::MissingOp)),
            Some("simulate") => self.simulate(body, None).transpose(),
            Some("cut" | "reconstruct" | "run") => None,
            Some(TEST_PANIC_OP) if test_ops_enabled() => None,
            Some(other) => Some(Err(OpError::UnknownOp(other.to_string()))),
        }
    }

    /// Runs the op to the end, stopping early once `cancel` is raised.
    pub fn execute(
        &self,
        body: &Map<String, Value>,
        cancel: &crate::cancel::Cancel,
    ) -> Result<Outputs, OpError> {
        check_known_inputs(body)?;
        let sim = self.sim.clone().with_cancel(cancel.clone());
        match body.get("op").and_then(Value::as_str) {
            Some("cut") => self.cut(body, &sim),
            Some("simulate") => self
                .simulate(body, Some(&sim))?
                .ok_or(OpError::Internal("simulate produced no result")),
            Some("reconstruct") => self.reconstruct(body, &sim),
            Some("run") => self.run(body, &sim),
            Some(TEST_PANIC_OP) if test_ops_enabled() => {
                panic!("the test op {TEST_PANIC_OP} panics on purpose")
            }
            Some(other) => Err(OpError::UnknownOp(other.to_string())),
            None => Err(OpError::MissingOp),
        }
    }

    fn cut(&self, body: &Map<String, Value>, sim: &Simulator) -> Result<Outputs, OpError> {
        let input = self.circuit_input(body)?;
        let spec = get_run_spec(body)?;
        let batch_size = get_number::<usize>(body, "batchSize")?
            .unwrap_or(self.batch_size)
            .max(1);
        let options = spec.resolve(input.circuit.num_qubits())?;
        let prepared = pipeline::prepare(&input.circuit, &options, sim)?;
        let distinct = prepared.distinct_circuits();
        let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(distinct.len() + 1);
        let mut variant_keys = Vec::with_capacity(distinct.len());
        for (id, c) in &distinct {
            let key = format!("{}{id}", keys::CIRCUIT);
            entries.push((key.clone(), c.to_qasm().into_bytes()));
            variant_keys.push(key);
        }
        let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_CUT_BYTES {
            return Err(OpError::CutTooLarge {
                variants: variant_keys.len(),
                bytes,
            });
        }
        let mut batches = Vec::new();
        for chunk in variant_keys.chunks(batch_size) {
            let value = to_json("a batch", &chunk)?.into_bytes();
            let key = keys::content_key(keys::BATCH, &value);
            entries.push((key.clone(), value));
            batches.push(key);
        }
        let record = PlanRecord {
            circuit: input.key,
            cuts: prepared.cut_positions(),
            options: options.spec,
            batches: batches.clone(),
            variants: variant_keys.len(),
        };
        let value = to_json("the plan", &record)?.into_bytes();
        let plan_key = keys::content_key(keys::PLAN, &value);
        entries.push((plan_key.clone(), value));
        self.write_many(entries)?;
        Ok(Outputs {
            parameters: vec![
                param("plan", &plan_key),
                param("batches", batches.len()),
                param("variants", variant_keys.len()),
                param("cuts", record.cuts.len()),
            ],
            result: Some(to_json("the batch list", &batches)?),
        })
    }

    /// Without a simulator: answer only from the cache (`Ok(None)` when something is missing).
    fn simulate(
        &self,
        body: &Map<String, Value>,
        compute: Option<&Simulator>,
    ) -> Result<Option<Outputs>, OpError> {
        if let Some(batch) = get_text(body, "batch") {
            return self.simulate_batch(&batch, compute);
        }
        let CircuitInput { circuit, key } = self.circuit_input(body)?;
        let observables = parse_observables(&get_observables(body)?, circuit.num_qubits())?;
        let request = pipeline::SingleRequest {
            // Probabilities too large to store are not computed for nothing.
            probabilities: circuit.num_qubits() <= pipeline::MAX_CACHED_PROBABILITY_QUBITS,
            shots: None,
            observables: &observables,
        };
        let result = if let Some(sim) = compute {
            pipeline::simulate_one(&circuit, &request, sim, Some(&self.cache))?
        } else {
            // The fast path runs on the request's thread: it must not compute a circuit ID
            // (quizx on a large circuit takes seconds); only IDs already known are used.
            match pipeline::cached_one(&circuit, &request, &self.cache) {
                Some(result) => result,
                None => return Ok(None),
            }
        };
        // Only a key that is in the store now is returned: probabilities over
        // MAX_CACHED_PROBABILITY_QUBITS qubits are never stored, and a store write can fail.
        let probabilities_key = self
            .cache
            .result_store_key(&circuit, &ResultKind::Probabilities)
            .filter(|_| circuit.num_qubits() <= pipeline::MAX_CACHED_PROBABILITY_QUBITS)
            .filter(|_| {
                self.cache
                    .lookup_kinds(&circuit, &[ResultKind::Probabilities])
                    .is_some()
            });
        let summary = CircuitSummary {
            circuit: &key,
            expectation: observables
                .iter()
                .zip(&result.expectations)
                .map(|(o, v)| (o.text.as_str(), *v))
                .collect(),
            num_qubits: circuit.num_qubits(),
            probabilities: probabilities_key.as_deref(),
        };
        Ok(Some(Outputs {
            parameters: vec![
                param("circuit", &key),
                param(
                    "probabilities",
                    probabilities_key.as_deref().unwrap_or_default(),
                ),
                param("simulated", u8::from(result.simulated)),
            ],
            result: Some(to_json("the summary", &summary)?),
        }))
    }

    fn simulate_batch(
        &self,
        batch: &str,
        compute: Option<&Simulator>,
    ) -> Result<Option<Outputs>, OpError> {
        let keys: Vec<String> =
            serde_json::from_slice(&self.read(batch, "batch")?).map_err(|_| {
                OpError::Malformed {
                    what: "batch",
                    key: batch.to_string(),
                    problem: "is not a list of circuit keys",
                }
            })?;
        let circuits: Vec<Circuit> = keys
            .iter()
            .map(|k| self.load_circuit(k))
            .collect::<Result<_, _>>()?;
        let refs: Vec<&Circuit> = circuits.iter().collect();
        let simulated = match compute {
            None => {
                let all_cached = self
                    .cache
                    .lookup_many_if_known::<Vec<f64>>(&refs, &ResultKind::Probabilities)
                    .iter()
                    .all(Option::is_some);
                if !all_cached {
                    return Ok(None);
                }
                0
            }
            // One batched cache pass: reads, leases and writes grouped, equivalent circuits once.
            Some(sim) => sim
                .install(|| {
                    self.cache
                        .get_or_compute_many(&refs, &ResultKind::Probabilities, |i| {
                            pipeline::exact_probabilities(sim, refs[i])
                        })
                })?
                .iter()
                .filter(|(_, source)| *source == Source::Computed)
                .count(),
        };
        let summary = BatchSummary {
            batch,
            cached: keys.len() - simulated,
            circuits: keys.len(),
            simulated,
        };
        Ok(Some(Outputs {
            parameters: vec![
                param("simulated", simulated),
                param("cached", summary.cached),
            ],
            result: Some(to_json("the summary", &summary)?),
        }))
    }

    fn load_plan(&self, plan_key: &str, sim: &Simulator) -> Result<LoadedPlan, OpError> {
        let record: PlanRecord =
            serde_json::from_slice(&self.read(plan_key, "plan")?).map_err(|_| {
                OpError::Malformed {
                    what: "plan",
                    key: plan_key.to_string(),
                    problem: "does not decode",
                }
            })?;
        let circuit = self.load_circuit(&record.circuit)?;
        let options = record.options.resolve(circuit.num_qubits())?;
        let prepared = pipeline::prepare_with_cuts(&circuit, &record.cuts, &options, sim)?;
        Ok(LoadedPlan {
            record,
            circuit,
            options,
            prepared,
        })
    }

    fn reconstruct(&self, body: &Map<String, Value>, sim: &Simulator) -> Result<Outputs, OpError> {
        let plan_key = get_text(body, "plan").ok_or(OpError::MissingInput(
            "'plan' (the p/... key that cut produced)",
        ))?;
        let plan = self.load_plan(&plan_key, sim)?;
        let distinct = plan.prepared.distinct_circuits();
        let circuits: Vec<&Circuit> = distinct.iter().map(|(_, c)| *c).collect();
        let found = self
            .cache
            .lookup_many::<Vec<f64>>(&circuits, &ResultKind::Probabilities);
        let mut probs_of = std::collections::HashMap::new();
        let mut missing = 0usize;
        for ((id, _), probs) in distinct.iter().zip(found) {
            match probs {
                Some(p) => {
                    probs_of.insert(id.to_string(), p);
                }
                None => missing += 1,
            }
        }
        if missing > 0 {
            return Err(OpError::MissingResults {
                missing,
                variants: plan.record.variants,
                plan: plan_key,
                batches: plan.record.batches.len(),
            });
        }
        let output = pipeline::reconstruct(
            plan.circuit.num_qubits(),
            &plan.prepared,
            &probs_of,
            &plan.options,
            sim,
        )?;
        self.store_output(&plan_key, &output, &plan.options)
    }

    fn run(&self, body: &Map<String, Value>, sim: &Simulator) -> Result<Outputs, OpError> {
        let input = self.circuit_input(body)?;
        let spec = get_run_spec(body)?;
        let options = spec.resolve(input.circuit.num_qubits())?;
        let output = pipeline::run(&input.circuit, &options, sim, Some(&self.cache), &|_, _| {})?;
        let identity = format!("{}|{}", input.key, to_json("the run spec", &spec)?);
        self.store_output(&identity, &output, &options)
    }

    fn store_output(
        &self,
        identity: &str,
        output: &pipeline::RunOutput,
        options: &RunOptions,
    ) -> Result<Outputs, OpError> {
        let mut text = Vec::new();
        let printed = RunPrinted::new(output, options.spec.shots, options.seed);
        write_json(&mut text, &printed).map_err(|e| OpError::Encode {
            what: "the output",
            source: serde_json::Error::io(e),
        })?;
        let key = keys::content_key(keys::OUTPUT, identity.as_bytes());
        self.write(&key, &text)?;
        let summary = OutputSummary {
            cuts: output.report.cuts.len(),
            expectation: output
                .expectations
                .iter()
                .map(|e| {
                    let estimate = SummaryEstimate {
                        stderr: e.stderr,
                        value: e.value,
                    };
                    (e.text.as_str(), estimate)
                })
                .collect(),
            num_qubits: output.num_qubits,
            output: &key,
        };
        Ok(Outputs {
            parameters: vec![param("output", &key)],
            result: Some(to_json("the summary", &summary)?),
        })
    }
}

/// The store key of a circuit.
pub fn circuit_key(circuit: &Circuit) -> String {
    format!("{}{}", keys::CIRCUIT, circuit.content_id())
}
