//! quargo: hybrid quantum-classical workflows. This crate holds the science (circuit model, OpenQASM
//! import, simulation, wire cutting) and, above it, the local pipeline and the command line. Dependencies point one way: `circuit` knows
//! nothing of `qasm` or `sim`, and none of the science knows about the CLI.

pub mod argo;
pub mod cache;
pub mod cancel;
pub mod circuit;
pub mod cli;
pub mod cut;
pub mod pauli;
pub mod pipeline;
pub mod qasm;
pub mod server;
pub mod sim;
pub mod store;
