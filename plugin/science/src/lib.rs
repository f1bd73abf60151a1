//! quargo's science: the circuit model, OpenQASM 2 import, Pauli observables, the state-vector
//! simulator and wire cutting. It knows nothing of stores, caches, Argo, HTTP or the command line:
//! this crate does not depend on them, so the compiler enforces the layering.
//!
//! Dependencies inside point one way: [`circuit`] is the model; [`qasm`] produces it; [`sim`] and
//! [`cut`] consume it; [`cancel`] lets a caller stop long work cooperatively.

pub mod cancel;
pub mod circuit;
pub mod cut;
pub mod pauli;
pub mod qasm;
pub mod sim;
