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
use crate::cache::{Cache, ResultKind};
use crate::circuit::Circuit;
use crate::pauli::{Observable, PauliString};
use crate::pipeline::{self, Allocation, RunOptions};
use crate::sim::{SimError, Simulator};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Why an op failed: the user's input (a Failed node) or the store (503, Argo retries).
#[derive(Debug)]
pub enum OpError {
    Input(String),
    Store(StoreError),
    /// Stopped by its cancel flag (deadline or shutdown): not the job's answer.
    Cancelled,
}

/// Pipeline errors are the user's input, except a cancellation.
impl From<pipeline::RunError> for OpError {
    fn from(e: pipeline::RunError) -> Self {
        match e {
            pipeline::RunError::Cancelled(_)
            | pipeline::RunError::Sim(SimError::Cancelled(_))
            | pipeline::RunError::Find(crate::cut::FindError::Cancelled(_)) => OpError::Cancelled,
            other => OpError::Input(other.to_string()),
        }
    }
}

impl From<SimError> for OpError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Cancelled(_) => OpError::Cancelled,
            other => OpError::Input(other.to_string()),
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            // Not transient: retrying cannot make room; the message says what would.
            e @ StoreError::Full { .. } => OpError::Input(e.to_string()),
            e => OpError::Store(e),
        }
    }
}

fn input(message: impl Into<String>) -> OpError {
    OpError::Input(message.into())
}

pub const OPS: &str = "cut, simulate, reconstruct, run";

/// Most bytes of variant circuits one `cut` may write to the store.
pub const MAX_CUT_BYTES: usize = 64 << 20;

/// An op that panics, for the tests of panic isolation; enabled only by QUARGO_ENABLE_TEST_OPS.
const TEST_PANIC_OP: &str = "__panic";

fn test_ops_enabled() -> bool {
    std::env::var_os("QUARGO_ENABLE_TEST_OPS").is_some_and(|v| v == "1")
}

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

/// Options of a cut plan, as stored with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanOptions {
    max_qubits: usize,
    max_cuts: Option<usize>,
    shots: Option<u64>,
    seed: u64,
    allocation: Allocation,
    observables: Vec<String>,
    probabilities: bool,
    project: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanRecord {
    circuit: String,
    cuts: Vec<(usize, usize)>,
    options: PlanOptions,
    batches: Vec<String>,
    variants: usize,
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
        Some(unknown) => Err(input(format!(
            "unknown input '{unknown}' (known: {})",
            KNOWN_INPUTS.join(", ")
        ))),
        None => Ok(()),
    }
}

fn get_text(body: &Map<String, Value>, name: &str) -> Option<String> {
    text_field(body, name).filter(|t| !t.trim().is_empty())
}

/// A scalar input as text: absent (or null, or blank) is `None`; a list or object is an error.
fn get_scalar(body: &Map<String, Value>, name: &str) -> Result<Option<String>, OpError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(_) | Value::Object(_)) => Err(input(format!(
            "'{name}' must be a single value, got {}",
            body[name]
        ))),
        Some(_) => Ok(get_text(body, name)),
    }
}

fn get_number<T: std::str::FromStr>(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, OpError> {
    match get_scalar(body, name)? {
        None => Ok(None),
        Some(t) => t.trim().parse().map(Some).map_err(|_| {
            input(format!(
                "'{name}' must be a non-negative integer, got '{t}'"
            ))
        }),
    }
}

fn get_bool(body: &Map<String, Value>, name: &str, default: bool) -> Result<bool, OpError> {
    match get_scalar(body, name)?.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(input(format!(
            "'{name}' must be true or false, got '{other}'"
        ))),
    }
}

/// Observables as a JSON list, a JSON-encoded list (what Argo substitution gives), or one string.
fn get_observables(body: &Map<String, Value>) -> Result<Vec<String>, OpError> {
    let list = match body.get("observables") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) if s.trim_start().starts_with('[') => serde_json::from_str(s)
            .map_err(|e| input(format!("'observables' is not a JSON list: {e}")))?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(other) => {
            return Err(input(format!(
                "'observables' must be a list of strings, got {other}"
            )))
        }
    };
    list.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(input(format!(
                "an observable must be a string, got {other}"
            ))),
        })
        .collect()
}

impl Ops {
    fn read(&self, key: &str, what: &str) -> Result<Vec<u8>, OpError> {
        let bytes = self.store.get(key)?.ok_or_else(|| {
            input(format!(
                "{what} '{key}' is not in the store {}; was it produced by an earlier step of this workflow, with the same store?",
                self.store.location()
            ))
        })?;
        let opened = self.cache.sealer().open(&bytes, key).map_err(|_| {
            input(format!(
                "{what} '{key}' in the store is damaged; run the step that produced it again"
            ))
        })?;
        Ok(opened.value.to_vec())
    }

    fn check_gates(&self, circuit: &Circuit, what: &str) -> Result<(), OpError> {
        if circuit.len() > self.max_gates {
            return Err(input(format!(
                "{what} expands to {} gates, more than the {} one request may have (quargo serve --max-gates)",
                circuit.len(),
                self.max_gates
            )));
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
    fn circuit_input(&self, body: &Map<String, Value>) -> Result<(Circuit, String), OpError> {
        if let Some(qasm) = get_text(body, "qasm") {
            let circuit = crate::qasm::parse_limited(&qasm, self.max_gates)
                .map_err(|e| input(format!("bad QASM in 'qasm': {e}")))?;
            self.check_gates(&circuit, "'qasm'")?;
            let key = circuit_key(&circuit);
            // Written once per process: repeated calls with the same inline circuit skip the write.
            // The text the user sent is stored, not its expansion (gate definitions can make a
            // few hundred bytes into millions of gates); it parses to the same circuit.
            if self.circuits.get(&key).is_none() {
                self.write(&key, qasm.as_bytes())?;
                self.circuits.insert(key.clone(), Arc::new(circuit.clone()));
            }
            return Ok((circuit, key));
        }
        let key = get_text(body, "circuit").ok_or_else(|| {
            input("missing input: give 'qasm' (OpenQASM 2 text) or 'circuit' (a c/... key)")
        })?;
        self.load_circuit(&key).map(|c| (c, key))
    }

    fn load_circuit(&self, key: &str) -> Result<Circuit, OpError> {
        if let Some(c) = self.circuits.get(&key.to_string()) {
            return Ok((*c).clone());
        }
        let text = self.read(key, "circuit")?;
        let text =
            String::from_utf8(text).map_err(|_| input(format!("circuit '{key}' is not text")))?;
        let circuit = crate::qasm::parse_limited(&text, self.max_gates)
            .map_err(|e| input(format!("circuit '{key}' does not parse: {e}")))?;
        self.check_gates(&circuit, &format!("circuit '{key}'"))?;
        self.circuits
            .insert(key.to_string(), Arc::new(circuit.clone()));
        Ok(circuit)
    }

    fn run_options(&self, body: &Map<String, Value>) -> Result<PlanOptions, OpError> {
        let max_qubits: usize = get_number(body, "maxQubits")?
            .ok_or_else(|| input("missing input 'maxQubits' (most qubits per fragment)"))?;
        let allocation = match get_scalar(body, "allocation")?.as_deref() {
            None | Some("weighted") => Allocation::Weighted,
            Some("uniform") => Allocation::Uniform,
            Some(other) => {
                return Err(input(format!(
                    "'allocation' must be weighted or uniform, got '{other}'"
                )))
            }
        };
        Ok(PlanOptions {
            max_qubits,
            max_cuts: get_number(body, "maxCuts")?,
            shots: get_number(body, "shots")?,
            seed: get_number(body, "seed")?.unwrap_or(0),
            allocation,
            observables: get_observables(body)?,
            probabilities: get_bool(body, "probabilities", true)?,
            project: get_bool(body, "project", false)?,
        })
    }

    fn to_run_options(options: &PlanOptions) -> Result<RunOptions, OpError> {
        let observables = options
            .observables
            .iter()
            .map(|text| {
                text.parse::<Observable>()
                    .map(|o| (text.clone(), o))
                    .map_err(|e| input(format!("bad observable '{text}': {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(RunOptions {
            max_qubits: options.max_qubits,
            max_cuts: options.max_cuts,
            shots: options.shots,
            seed: options.seed,
            allocation: options.allocation,
            observables,
            probabilities: options.probabilities,
            project: options.project,
        })
    }

    /// Answers at once when that is cheap and safe: input errors, and `simulate` calls whose
    /// results are all in the cache. `None`: the op must run as a job.
    pub fn fast_path(&self, body: &Map<String, Value>) -> Option<Result<Outputs, OpError>> {
        if let Err(e) = check_known_inputs(body) {
            return Some(Err(e));
        }
        match body.get("op").and_then(Value::as_str) {
            None => Some(Err(input(format!("missing 'op' (one of {OPS})")))),
            Some("simulate") => match self.simulate(body, None) {
                Ok(Some(outputs)) => Some(Ok(outputs)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            },
            Some("cut" | "reconstruct" | "run") => None,
            Some(TEST_PANIC_OP) if test_ops_enabled() => None,
            Some(other) => Some(Err(input(format!(
                "unknown op '{other}' (expected one of {OPS})"
            )))),
        }
    }

    /// Runs the op to the end, stopping early once `cancel` is raised.
    pub fn execute(
        &self,
        body: &Map<String, Value>,
        cancel: &crate::cancel::Cancel,
    ) -> Result<Outputs, OpError> {
        let sim = self.sim.clone().with_cancel(cancel.clone());
        match body.get("op").and_then(Value::as_str) {
            Some("cut") => self.cut(body, &sim),
            Some("simulate") => self
                .simulate(body, Some(&sim))?
                .ok_or_else(|| input("simulate produced no result")),
            Some("reconstruct") => self.reconstruct(body, &sim),
            Some("run") => self.run(body, &sim),
            Some(TEST_PANIC_OP) if test_ops_enabled() => {
                panic!("the test op {TEST_PANIC_OP} panics on purpose")
            }
            Some(other) => Err(input(format!(
                "unknown op '{other}' (expected one of {OPS})"
            ))),
            None => Err(input(format!("missing 'op' (one of {OPS})"))),
        }
    }

    fn cut(&self, body: &Map<String, Value>, sim: &Simulator) -> Result<Outputs, OpError> {
        let (circuit, circuit_key) = self.circuit_input(body)?;
        let options = self.run_options(body)?;
        let batch_size = get_number::<usize>(body, "batchSize")?
            .unwrap_or(self.batch_size)
            .max(1);
        let run_options = Self::to_run_options(&options)?;
        let prepared = pipeline::prepare(&circuit, &run_options, sim)?;
        let distinct = prepared.distinct_circuits();
        let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(distinct.len() + 1);
        let mut variant_keys = Vec::with_capacity(distinct.len());
        for (id, c) in &distinct {
            let key = format!("c/{id}");
            entries.push((key.clone(), c.to_qasm().into_bytes()));
            variant_keys.push(key);
        }
        let written: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        if written > MAX_CUT_BYTES {
            return Err(input(format!(
                "the plan's {} variant circuits take {written} bytes, more than the {MAX_CUT_BYTES} one cut may store; allow wider fragments (maxQubits) or send a smaller circuit",
                variant_keys.len()
            )));
        }
        let mut batches = Vec::new();
        for chunk in variant_keys.chunks(batch_size) {
            let value = serde_json::to_vec(chunk).map_err(|e| input(e.to_string()))?;
            let key = format!("b/{}", blake3::hash(&value).to_hex());
            entries.push((key.clone(), value));
            batches.push(key);
        }
        let record = PlanRecord {
            circuit: circuit_key,
            cuts: prepared.cut_positions(),
            options,
            batches: batches.clone(),
            variants: variant_keys.len(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| input(e.to_string()))?;
        let plan_key = format!("p/{}", blake3::hash(&value).to_hex());
        entries.push((plan_key.clone(), value));
        self.write_many(entries)?;
        Ok(Outputs {
            parameters: vec![
                param("plan", &plan_key),
                param("batches", batches.len()),
                param("variants", variant_keys.len()),
                param("cuts", record.cuts.len()),
            ],
            result: Some(json!(batches).to_string()),
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
        let (circuit, circuit_key) = self.circuit_input(body)?;
        let observables: Vec<PauliString> = get_observables(body)?
            .iter()
            .map(|t| {
                let p: PauliString = t
                    .parse()
                    .map_err(|e| input(format!("bad observable '{t}': {e}")))?;
                p.check_width(circuit.num_qubits())
                    .map_err(|e| input(format!("observable '{t}': {e}")))?;
                Ok(p)
            })
            .collect::<Result<_, OpError>>()?;
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
        let expectation: Map<String, Value> = observables
            .iter()
            .zip(&result.expectations)
            .map(|(p, v)| (p.to_string(), json!(v)))
            .collect();
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
            })
            .unwrap_or_default();
        let summary = json!({
            "circuit": circuit_key,
            "numQubits": circuit.num_qubits(),
            "probabilities": (!probabilities_key.is_empty()).then_some(&probabilities_key),
            "expectation": expectation,
        });
        Ok(Some(Outputs {
            parameters: vec![
                param("circuit", &circuit_key),
                param("probabilities", &probabilities_key),
                param("simulated", u8::from(result.simulated)),
            ],
            result: Some(summary.to_string()),
        }))
    }

    fn simulate_batch(
        &self,
        batch: &str,
        compute: Option<&Simulator>,
    ) -> Result<Option<Outputs>, OpError> {
        let keys: Vec<String> = serde_json::from_slice(&self.read(batch, "batch")?)
            .map_err(|_| input(format!("batch '{batch}' is not a list of circuit keys")))?;
        let circuits: Vec<Circuit> = keys
            .iter()
            .map(|k| self.load_circuit(k))
            .collect::<Result<_, _>>()?;
        let Some(sim) = compute else {
            let refs: Vec<&Circuit> = circuits.iter().collect();
            let all_cached = self
                .cache
                .lookup_many_if_known::<Vec<f64>>(&refs, &ResultKind::Probabilities)
                .iter()
                .all(Option::is_some);
            if !all_cached {
                return Ok(None);
            }
            return Ok(Some(batch_outputs(batch, keys.len(), 0)));
        };
        // One batched cache pass: reads, leases and writes grouped, equivalent circuits once.
        let refs: Vec<&Circuit> = circuits.iter().collect();
        let sources = sim.install(|| {
            self.cache
                .get_or_compute_many(&refs, &ResultKind::Probabilities, |i| {
                    pipeline::exact_probabilities(sim, refs[i])
                })
                .map(|results| {
                    results
                        .into_iter()
                        .map(|(_, source)| source)
                        .collect::<Vec<_>>()
                })
        });
        let sources = sources?;
        let simulated = sources
            .iter()
            .filter(|s| **s == crate::cache::Source::Computed)
            .count();
        Ok(Some(batch_outputs(batch, keys.len(), simulated)))
    }

    fn load_plan(
        &self,
        plan_key: &str,
        sim: &Simulator,
    ) -> Result<(PlanRecord, Circuit, RunOptions, pipeline::Prepared), OpError> {
        let record: PlanRecord = serde_json::from_slice(&self.read(plan_key, "plan")?)
            .map_err(|_| input(format!("plan '{plan_key}' does not decode")))?;
        let circuit = self.load_circuit(&record.circuit)?;
        let options = Self::to_run_options(&record.options)?;
        let prepared = pipeline::prepare_with_cuts(&circuit, &record.cuts, &options, sim)?;
        Ok((record, circuit, options, prepared))
    }

    fn reconstruct(&self, body: &Map<String, Value>, sim: &Simulator) -> Result<Outputs, OpError> {
        let plan_key = get_text(body, "plan")
            .ok_or_else(|| input("missing input 'plan' (the p/... key that cut produced)"))?;
        let (record, circuit, options, prepared) = self.load_plan(&plan_key, sim)?;
        let mut probs_of = std::collections::HashMap::new();
        let mut missing = 0usize;
        let distinct = prepared.distinct_circuits();
        let circuits: Vec<&Circuit> = distinct.iter().map(|(_, c)| *c).collect();
        let found = self
            .cache
            .lookup_many::<Vec<f64>>(&circuits, &ResultKind::Probabilities);
        for ((id, _), probs) in distinct.iter().zip(found) {
            match probs {
                Some(p) => {
                    probs_of.insert(id.to_string(), p);
                }
                None => missing += 1,
            }
        }
        if missing > 0 {
            return Err(input(format!(
                "{missing} of {} fragment variants of plan '{plan_key}' have no result in the cache; run simulate on every batch of the plan ({} batches) first",
                record.variants,
                record.batches.len()
            )));
        }
        let output =
            pipeline::reconstruct(circuit.num_qubits(), &prepared, &probs_of, &options, sim)?;
        self.store_output(&plan_key, &output, &options)
    }

    fn run(&self, body: &Map<String, Value>, sim: &Simulator) -> Result<Outputs, OpError> {
        let (circuit, circuit_key) = self.circuit_input(body)?;
        let options = self.run_options(body)?;
        let run_options = Self::to_run_options(&options)?;
        let output = pipeline::run(&circuit, &run_options, sim, Some(&self.cache), &|_, _| {})?;
        let identity = format!(
            "{circuit_key}|{}",
            serde_json::to_string(&options).unwrap_or_default()
        );
        self.store_output(&identity, &output, &run_options)
    }

    fn store_output(
        &self,
        identity: &str,
        output: &pipeline::RunOutput,
        options: &RunOptions,
    ) -> Result<Outputs, OpError> {
        let mut text = Vec::new();
        pipeline::write_run_json(&mut text, output, options.shots, options.seed)
            .map_err(|e| input(e.to_string()))?;
        let key = format!("o/{}", blake3::hash(identity.as_bytes()).to_hex());
        self.write(&key, &text)?;
        let expectation: Map<String, Value> = output
            .expectations
            .iter()
            .map(|(t, v, se)| (t.clone(), json!({"value": v, "stderr": se})))
            .collect();
        let summary = json!({
            "output": key,
            "numQubits": output.num_qubits,
            "cuts": output.report.cuts.len(),
            "expectation": expectation,
        });
        Ok(Outputs {
            parameters: vec![param("output", &key)],
            result: Some(summary.to_string()),
        })
    }
}

fn batch_outputs(batch: &str, circuits: usize, simulated: usize) -> Outputs {
    Outputs {
        parameters: vec![
            param("simulated", simulated),
            param("cached", circuits - simulated),
        ],
        result: Some(
            json!({"batch": batch, "circuits": circuits, "simulated": simulated, "cached": circuits - simulated})
                .to_string(),
        ),
    }
}

/// The store key of a circuit.
pub fn circuit_key(circuit: &Circuit) -> String {
    format!("c/{}", circuit.content_id())
}
