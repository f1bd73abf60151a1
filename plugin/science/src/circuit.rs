//! The circuit model: qubits, registers and the `qelib1.inc` gate set with exact textbook matrices.
//!
//! Everything downstream (simulation, cutting, hashing) works on [`Circuit`]; front ends such as
//! [`crate::qasm`] only produce it. Matrices follow Qiskit's little-endian convention: bit `j` of
//! a matrix index is the state of the gate's `j`-th qubit argument, and controls come first.

use num_complex::Complex64;
use std::f64::consts::FRAC_1_SQRT_2;
use thiserror::Error;

/// A gate of the standard library, with its real parameters.
///
/// Parameterised gates keep `f64` angles in radians; controlled gates take their control(s) as the
/// first argument(s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    Id,
    X,
    Y,
    Z,
    H,
    S,
    Sdg,
    T,
    Tdg,
    Sx,
    Sxdg,
    Rx(f64),
    Ry(f64),
    Rz(f64),
    /// Phase gate `diag(1, e^{iλ})`, also written `u1`.
    P(f64),
    U2(f64, f64),
    /// `U(θ, φ, λ)`, also written `u3` and `u`.
    U3(f64, f64, f64),
    Cx,
    Cy,
    Cz,
    Ch,
    Swap,
    Crx(f64),
    Cry(f64),
    Crz(f64),
    /// Controlled phase, also written `cu1`.
    Cp(f64),
    Cu3(f64, f64, f64),
    Ccx,
    Cswap,
    Rxx(f64),
    Rzz(f64),
}

impl Gate {
    /// Number of qubits the gate acts on.
    pub fn num_qubits(&self) -> usize {
        use Gate::*;
        match self {
            Id | X | Y | Z | H | S | Sdg | T | Tdg | Sx | Sxdg | Rx(_) | Ry(_) | Rz(_) | P(_)
            | U2(..) | U3(..) => 1,
            Cx | Cy | Cz | Ch | Swap | Crx(_) | Cry(_) | Crz(_) | Cp(_) | Cu3(..) | Rxx(_)
            | Rzz(_) => 2,
            Ccx | Cswap => 3,
        }
    }

    /// The `qelib1.inc` name of the gate.
    pub fn name(&self) -> &'static str {
        use Gate::*;
        match self {
            Id => "id",
            X => "x",
            Y => "y",
            Z => "z",
            H => "h",
            S => "s",
            Sdg => "sdg",
            T => "t",
            Tdg => "tdg",
            Sx => "sx",
            Sxdg => "sxdg",
            Rx(_) => "rx",
            Ry(_) => "ry",
            Rz(_) => "rz",
            P(_) => "p",
            U2(..) => "u2",
            U3(..) => "u3",
            Cx => "cx",
            Cy => "cy",
            Cz => "cz",
            Ch => "ch",
            Swap => "swap",
            Crx(_) => "crx",
            Cry(_) => "cry",
            Crz(_) => "crz",
            Cp(_) => "cp",
            Cu3(..) => "cu3",
            Ccx => "ccx",
            Cswap => "cswap",
            Rxx(_) => "rxx",
            Rzz(_) => "rzz",
        }
    }

    /// The gate's parameters in declaration order.
    pub fn params(&self) -> Vec<f64> {
        use Gate::*;
        match *self {
            Rx(a) | Ry(a) | Rz(a) | P(a) | Crx(a) | Cry(a) | Crz(a) | Cp(a) | Rxx(a) | Rzz(a) => {
                vec![a]
            }
            U2(a, b) => vec![a, b],
            U3(a, b, c) | Cu3(a, b, c) => vec![a, b, c],
            _ => Vec::new(),
        }
    }

    /// True when the matrix is diagonal in the computational basis.
    pub fn is_diagonal(&self) -> bool {
        use Gate::*;
        matches!(
            self,
            Id | Z | S | Sdg | T | Tdg | Rz(_) | P(_) | Cz | Crz(_) | Cp(_) | Rzz(_)
        )
    }

    /// True when the matrix has exactly one non-zero entry per column (a permutation with phases).
    pub fn is_monomial(&self) -> bool {
        use Gate::*;
        self.is_diagonal() || matches!(self, X | Y | Cx | Cy | Swap | Ccx | Cswap)
    }

    /// The unitary as a row-major `2^k x 2^k` matrix in little-endian argument order.
    pub fn matrix(&self) -> Vec<Complex64> {
        use Gate::*;
        let c = Complex64::new;
        let z = c(0.0, 0.0);
        let one = c(1.0, 0.0);
        let i = c(0.0, 1.0);
        match *self {
            Id => vec![one, z, z, one],
            X => vec![z, one, one, z],
            Y => vec![z, -i, i, z],
            Z => vec![one, z, z, -one],
            H => {
                let h = c(FRAC_1_SQRT_2, 0.0);
                vec![h, h, h, -h]
            }
            S => vec![one, z, z, i],
            Sdg => vec![one, z, z, -i],
            T => vec![
                one,
                z,
                z,
                Complex64::from_polar(1.0, std::f64::consts::FRAC_PI_4),
            ],
            Tdg => vec![
                one,
                z,
                z,
                Complex64::from_polar(1.0, -std::f64::consts::FRAC_PI_4),
            ],
            Sx => vec![c(0.5, 0.5), c(0.5, -0.5), c(0.5, -0.5), c(0.5, 0.5)],
            Sxdg => vec![c(0.5, -0.5), c(0.5, 0.5), c(0.5, 0.5), c(0.5, -0.5)],
            Rx(t) => {
                let (s, co) = (t / 2.0).sin_cos();
                vec![c(co, 0.0), c(0.0, -s), c(0.0, -s), c(co, 0.0)]
            }
            Ry(t) => {
                let (s, co) = (t / 2.0).sin_cos();
                vec![c(co, 0.0), c(-s, 0.0), c(s, 0.0), c(co, 0.0)]
            }
            Rz(t) => vec![
                Complex64::from_polar(1.0, -t / 2.0),
                z,
                z,
                Complex64::from_polar(1.0, t / 2.0),
            ],
            P(l) => vec![one, z, z, Complex64::from_polar(1.0, l)],
            U2(phi, lam) => u3_matrix(std::f64::consts::FRAC_PI_2, phi, lam).to_vec(),
            U3(t, phi, lam) => u3_matrix(t, phi, lam).to_vec(),
            Cx => controlled(&X.matrix()),
            Cy => controlled(&Y.matrix()),
            Cz => controlled(&Z.matrix()),
            Ch => controlled(&H.matrix()),
            Crx(t) => controlled(&Rx(t).matrix()),
            Cry(t) => controlled(&Ry(t).matrix()),
            Crz(t) => controlled(&Rz(t).matrix()),
            Cp(l) => controlled(&P(l).matrix()),
            Cu3(t, phi, lam) => controlled(&U3(t, phi, lam).matrix()),
            Swap => {
                let mut m = vec![z; 16];
                for (row, col) in [(0, 0), (1, 2), (2, 1), (3, 3)] {
                    m[row * 4 + col] = one;
                }
                m
            }
            Rxx(t) => {
                let (s, co) = (t / 2.0).sin_cos();
                let (a, b) = (c(co, 0.0), c(0.0, -s));
                vec![a, z, z, b, z, a, b, z, z, b, a, z, b, z, z, a]
            }
            Rzz(t) => {
                let (m, p) = (
                    Complex64::from_polar(1.0, -t / 2.0),
                    Complex64::from_polar(1.0, t / 2.0),
                );
                let mut out = vec![z; 16];
                for (k, d) in [m, p, p, m].into_iter().enumerate() {
                    out[k * 4 + k] = d;
                }
                out
            }
            Ccx => {
                // Controls are arguments 0 and 1 (bits 0 and 1), the target is bit 2.
                let mut m = identity(8);
                m[3 * 8 + 3] = z;
                m[7 * 8 + 7] = z;
                m[3 * 8 + 7] = one;
                m[7 * 8 + 3] = one;
                m
            }
            Cswap => {
                // Control is bit 0; bits 1 and 2 are exchanged when it is set.
                let mut m = identity(8);
                m[3 * 8 + 3] = z;
                m[5 * 8 + 5] = z;
                m[3 * 8 + 5] = one;
                m[5 * 8 + 3] = one;
                m
            }
        }
    }
}

fn u3_matrix(theta: f64, phi: f64, lambda: f64) -> [Complex64; 4] {
    let (s, c) = (theta / 2.0).sin_cos();
    [
        Complex64::new(c, 0.0),
        -Complex64::from_polar(s, lambda),
        Complex64::from_polar(s, phi),
        Complex64::from_polar(c, phi + lambda),
    ]
}

/// `2^k x 2^k` identity matrix, row-major.
pub fn identity(dim: usize) -> Vec<Complex64> {
    let mut m = vec![Complex64::new(0.0, 0.0); dim * dim];
    for k in 0..dim {
        m[k * dim + k] = Complex64::new(1.0, 0.0);
    }
    m
}

/// Controlled version of a one-qubit matrix: control is argument 0 (bit 0), target argument 1.
fn controlled(u: &[Complex64]) -> Vec<Complex64> {
    let mut m = identity(4);
    // Indices with the control bit set are 1 (target 0) and 3 (target 1).
    m[4 + 1] = u[0];
    m[4 + 3] = u[1];
    m[3 * 4 + 1] = u[2];
    m[3 * 4 + 3] = u[3];
    m
}

/// One gate applied to concrete qubits.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub gate: Gate,
    /// Qubit indices in argument order (controls first); all distinct.
    pub qubits: Vec<usize>,
}

/// A named quantum register occupying the qubit range `offset..offset + size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    pub name: String,
    pub offset: usize,
    pub size: usize,
}

/// Why a circuit could not be built.
#[derive(Debug, Error, PartialEq)]
pub enum CircuitError {
    #[error("gate {gate} takes {expected} qubit(s), got {got}")]
    Arity {
        gate: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("qubit {qubit} is out of range for a circuit of {num_qubits} qubit(s)")]
    QubitOutOfRange { qubit: usize, num_qubits: usize },
    #[error("gate {gate} uses qubit {qubit} more than once")]
    RepeatedQubit { gate: &'static str, qubit: usize },
    #[error("parameter of gate {gate} is not finite ({value})")]
    NonFiniteParameter { gate: &'static str, value: f64 },
}

/// A unitary circuit over `num_qubits` qubits.
///
/// Qubit 0 is the least significant bit of a basis-state index, as in Qiskit. Measurements are not
/// part of the model: every qubit is read out at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Circuit {
    num_qubits: usize,
    registers: Vec<Register>,
    instructions: Vec<Instruction>,
}

impl Circuit {
    /// An empty circuit with one anonymous register `q` of `num_qubits` qubits.
    pub fn new(num_qubits: usize) -> Self {
        Self {
            num_qubits,
            registers: vec![Register {
                name: "q".into(),
                offset: 0,
                size: num_qubits,
            }],
            instructions: Vec::new(),
        }
    }

    /// An empty circuit over the given registers, laid out one after another in order.
    pub fn with_registers(registers: Vec<(String, usize)>) -> Self {
        let mut offset = 0;
        let registers = registers
            .into_iter()
            .map(|(name, size)| {
                let r = Register { name, offset, size };
                offset += size;
                r
            })
            .collect();
        Self {
            num_qubits: offset,
            registers,
            instructions: Vec::new(),
        }
    }

    pub fn num_qubits(&self) -> usize {
        self.num_qubits
    }

    pub fn registers(&self) -> &[Register] {
        &self.registers
    }

    pub fn instructions(&self) -> &[Instruction] {
        &self.instructions
    }

    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }

    /// Appends a gate after checking arity, qubit range, distinct qubits and finite parameters.
    pub fn push(&mut self, gate: Gate, qubits: &[usize]) -> Result<&mut Self, CircuitError> {
        let expected = gate.num_qubits();
        if qubits.len() != expected {
            return Err(CircuitError::Arity {
                gate: gate.name(),
                expected,
                got: qubits.len(),
            });
        }
        for (k, &q) in qubits.iter().enumerate() {
            if q >= self.num_qubits {
                return Err(CircuitError::QubitOutOfRange {
                    qubit: q,
                    num_qubits: self.num_qubits,
                });
            }
            if qubits[..k].contains(&q) {
                return Err(CircuitError::RepeatedQubit {
                    gate: gate.name(),
                    qubit: q,
                });
            }
        }
        if let Some(value) = gate.params().into_iter().find(|p| !p.is_finite()) {
            return Err(CircuitError::NonFiniteParameter {
                gate: gate.name(),
                value,
            });
        }
        self.instructions.push(Instruction {
            gate,
            qubits: qubits.to_vec(),
        });
        Ok(self)
    }

    /// A canonical encoding of the qubit count and every gate (name, parameter bits, qubits):
    /// equal circuits, written the same way, give equal bytes on every machine; registers and
    /// source formatting do not count.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.instructions.len() * 24);
        out.extend_from_slice(b"quargo-circuit-v1");
        out.extend_from_slice(&(self.num_qubits as u64).to_le_bytes());
        for inst in &self.instructions {
            out.extend_from_slice(inst.gate.name().as_bytes());
            out.push(0);
            for p in inst.gate.params() {
                // -0.0 and 0.0 are the same angle.
                let p = if p == 0.0 { 0.0 } else { p };
                out.extend_from_slice(&p.to_bits().to_le_bytes());
            }
            for &q in &inst.qubits {
                out.extend_from_slice(&(q as u32).to_le_bytes());
            }
            out.push(0xff);
        }
        out
    }

    /// OpenQASM 2 text of the circuit (one register `q`), angles in shortest round-trip form:
    /// parsing it gives back an equal circuit with the same content ID.
    pub fn to_qasm(&self) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{}];\n",
            self.num_qubits
        );
        let mut buf = ryu::Buffer::new();
        for inst in &self.instructions {
            out.push_str(inst.gate.name());
            let params = inst.gate.params();
            if !params.is_empty() {
                out.push('(');
                for (i, p) in params.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(buf.format(*p));
                }
                out.push(')');
            }
            for (i, q) in inst.qubits.iter().enumerate() {
                let sep = if i == 0 { " " } else { "," };
                let _ = write!(out, "{sep}q[{q}]");
            }
            out.push_str(";\n");
        }
        out
    }

    /// A stable content ID: the BLAKE3 hash (hex) of [`Circuit::canonical_bytes`].
    pub fn content_id(&self) -> String {
        blake3::hash(&self.canonical_bytes()).to_hex().to_string()
    }

    /// Formats a basis-state index as a bitstring, qubit 0 rightmost (Qiskit's convention).
    pub fn bitstring(&self, index: usize) -> String {
        bitstring(index, self.num_qubits)
    }
}

/// Formats `index` as `width` bits, most significant first, so qubit 0 is the rightmost character.
pub fn bitstring(index: usize, width: usize) -> String {
    (0..width)
        .rev()
        .map(|q| if index >> q & 1 == 1 { '1' } else { '0' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_unitary(m: &[Complex64]) -> bool {
        let d = (m.len() as f64).sqrt() as usize;
        (0..d).all(|r| {
            (0..d).all(|c| {
                let dot: Complex64 = (0..d).map(|k| m[k * d + r].conj() * m[k * d + c]).sum();
                let want = if r == c { 1.0 } else { 0.0 };
                (dot - want).norm() < 1e-12
            })
        })
    }

    #[test]
    fn every_gate_is_unitary_with_the_right_size() {
        use Gate::*;
        let gates = [
            Id,
            X,
            Y,
            Z,
            H,
            S,
            Sdg,
            T,
            Tdg,
            Sx,
            Sxdg,
            Rx(0.3),
            Ry(-1.2),
            Rz(2.1),
            P(0.7),
            U2(0.1, 0.2),
            U3(0.3, 0.4, 0.5),
            Cx,
            Cy,
            Cz,
            Ch,
            Swap,
            Crx(0.3),
            Cry(0.4),
            Crz(0.5),
            Cp(0.6),
            Cu3(0.1, 0.2, 0.3),
            Ccx,
            Cswap,
            Rxx(0.8),
            Rzz(0.9),
        ];
        for g in gates {
            let m = g.matrix();
            assert_eq!(m.len(), 1 << (2 * g.num_qubits()), "{}", g.name());
            assert!(is_unitary(&m), "{} is not unitary", g.name());
            let d = 1 << g.num_qubits();
            let off_diag_zero =
                (0..d).all(|r| (0..d).all(|c| r == c || m[r * d + c].norm() == 0.0));
            assert_eq!(g.is_diagonal(), off_diag_zero, "{} diagonal flag", g.name());
            let monomial =
                (0..d).all(|c| (0..d).filter(|&r| m[r * d + c].norm() > 0.0).count() == 1);
            if g.is_monomial() {
                assert!(monomial, "{} monomial flag", g.name());
            }
        }
    }

    #[test]
    fn push_rejects_bad_arguments() {
        let mut c = Circuit::new(2);
        assert!(matches!(
            c.push(Gate::Cx, &[0]),
            Err(CircuitError::Arity { .. })
        ));
        assert!(matches!(
            c.push(Gate::X, &[2]),
            Err(CircuitError::QubitOutOfRange { .. })
        ));
        assert!(matches!(
            c.push(Gate::Cx, &[1, 1]),
            Err(CircuitError::RepeatedQubit { .. })
        ));
        assert!(matches!(
            c.push(Gate::Rz(f64::NAN), &[0]),
            Err(CircuitError::NonFiniteParameter { .. })
        ));
        assert!(c.is_empty());
    }

    #[test]
    fn bitstrings_put_qubit_zero_on_the_right() {
        assert_eq!(bitstring(1, 3), "001");
        assert_eq!(bitstring(6, 3), "110");
        assert_eq!(bitstring(0, 0), "");
    }
}
