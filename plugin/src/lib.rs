//! quargo: hybrid quantum-classical workflows. Circuits too wide for one simulator are cut into
//! fragments, every fragment variant is simulated once (a semantic cache recognises circuits that
//! differ in syntax but not in meaning), and the results are stitched back together; locally in one
//! process (`quargo run`) or as Argo Workflows steps through the executor plugin (`quargo serve`).
//!
//! # Three crates, dependencies one way
//!
//! - `quargo-science` (`plugin/science/`): [`circuit`], [`qasm`], [`pauli`], [`sim`], [`cut`],
//!   [`cancel`]. No store, cache, HTTP or CLI dependency: the compiler enforces it.
//! - `quargo-cache` (`plugin/cache/`): [`cache`] and [`store`], on top of the science.
//! - `quargo` (this crate, `plugin/src/`): [`pipeline`], [`output`], [`argo`], [`server`],
//!   [`cli`]. It re-exports the modules of the other two, so `quargo::sim` is the simulator.
//!
//! # The life of a circuit
//!
//! | step | what happens | owner |
//! |---|---|---|
//! | QASM | OpenQASM 2 text is read, gate definitions expanded, limits enforced | [`qasm`] |
//! | circuit | qubits, registers, gates with exact matrices | [`circuit`] |
//! | plan | cuts found so every fragment fits `max_qubits`; fragments and their segments | [`cut::find`], [`cut::plan`] |
//! | variants | each fragment with every preparation and measurement basis its cuts need | [`cut::variants`], [`pipeline::prepare`] |
//! | IDs | each variant's semantic ID: ZX reduction, then Weisfeiler-Leman hashing | [`cache::id`] |
//! | store | results looked up by ID, proven equal before use; misses leased (single-flight) | [`cache`], [`store`] |
//! | simulation | the misses run on the state-vector simulator, in parallel | [`sim`], [`pipeline::simulate_variants`] |
//! | reconstruction | fragment results contracted into the distribution and expectation values | [`cut::reconstruct`], [`pipeline::reconstruct`] |
//! | reply | printed by [`output`] (`quargo run`), or stored and returned to Argo | [`cli`], [`server::ops`], [`argo`] |
//!
//! What a user asks is one model: [`pipeline::RunSpec`] (the flags of `quargo run`, the inputs of
//! the plugin's `cut` and `run`, the options stored with a plan), checked against a circuit by
//! [`pipeline::RunSpec::resolve`]; observables are parsed in one place,
//! [`pauli::parse_observables`].
//!
//! A circuit, simulated:
//!
//! ```
//! use quargo::qasm;
//! use quargo::sim::Simulator;
//!
//! let bell = qasm::parse("OPENQASM 2.0; include \"qelib1.inc\"; qreg q[2]; h q[0]; cx q[0], q[1];")?;
//! let state = Simulator::new().run(&bell)?;
//! let p = state.probabilities();
//! assert!((p[0b00] - 0.5).abs() < 1e-12 && (p[0b11] - 0.5).abs() < 1e-12);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same circuit's family, cut into fragments of at most 3 qubits and reconstructed, agrees
//! with the direct simulation:
//!
//! ```
//! use quargo::pipeline::{self, RunSpec};
//! use quargo::{qasm, sim::Simulator};
//!
//! let ghz = qasm::parse(
//!     "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[5]; h q[0]; \
//!      cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3]; cx q[3], q[4];",
//! )?;
//! let spec = RunSpec { observables: vec!["ZZIII".into()], ..RunSpec::new(3) };
//! let options = spec.resolve(ghz.num_qubits())?;
//! let sim = Simulator::new();
//! let output = pipeline::run(&ghz, &options, &sim, None, &|_, _| {})?;
//! assert!(!output.report.cuts.is_empty());
//! let direct = sim.run(&ghz)?.probabilities().to_vec();
//! let cut = output.probabilities.expect("asked for");
//! assert!(direct.iter().zip(&cut).all(|(a, b)| (a - b).abs() < 1e-9));
//! // GHZ: qubits 3 and 4 always agree, so <Z3 Z4> = 1.
//! assert!((output.expectations[0].value - 1.0).abs() < 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Glossary of IDs and keys
//!
//! - **content ID** ([`circuit::Circuit::content_id`]): BLAKE3 of a circuit's exact canonical
//!   bytes. Two circuits share it only if they are the same gate list. Names circuits in the store.
//! - **semantic ID** ([`cache::id::CircuitId`]): the digest of the ZX-reduced graph's
//!   Weisfeiler-Leman hash, with the graph and angle offsets as a proof. Circuits equal in meaning
//!   share it; a hit is served only when the stored proof is equal to the asked one and the
//!   rounding bound is within the tolerance.
//! - **result key**: the semantic ID with the kind of result (probabilities, counts with shots
//!   and seed, an expectation value) and the ID recipe, hashed; what the cache reads and leases.
//! - **store key prefixes** ([`store::keys`]): `r/` results and `m/` memos (evictable), `c/`
//!   circuits by content ID, `b/` batches, `p/` plans, `o/` outputs, `j/` job records.
//! - **idempotency key** ([`argo::PluginCall::idempotency_key`]): the workflow uid, node name,
//!   attempt and template name of a plugin call, hashed; a repeated call finds its job record under `j/` and
//!   never computes twice.

pub mod argo;
pub mod cli;
pub mod output;
pub mod pipeline;
pub mod server;

pub use quargo_cache::{cache, store};
pub use quargo_science::{cancel, circuit, cut, pauli, qasm, sim};
