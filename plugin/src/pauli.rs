//! Pauli strings: parsing and the bit masks that let the simulator evaluate them in one pass.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A tensor product of I, X, Y, Z over `num_qubits` qubits, written as in Qiskit: the rightmost
/// character acts on qubit 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PauliString {
    /// One letter per qubit, index = qubit.
    letters: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PauliError {
    #[error("Pauli string is empty")]
    Empty,
    #[error("invalid character {0:?} in Pauli string (use I, X, Y, Z)")]
    BadLetter(char),
    #[error("Pauli string '{pauli}' has {got} letters but the circuit has {expected} qubits")]
    Length {
        pauli: String,
        got: usize,
        expected: usize,
    },
}

impl FromStr for PauliString {
    type Err = PauliError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(PauliError::Empty);
        }
        let letters = s
            .chars()
            .rev()
            .map(|c| match c.to_ascii_uppercase() {
                l @ ('I' | 'X' | 'Y' | 'Z') => Ok(l as u8),
                _ => Err(PauliError::BadLetter(c)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { letters })
    }
}

impl fmt::Display for PauliString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: String = self.letters.iter().rev().map(|&b| b as char).collect();
        f.write_str(&s)
    }
}

impl PauliString {
    pub fn num_qubits(&self) -> usize {
        self.letters.len()
    }

    /// The letter acting on `qubit` (`b'I'`, `b'X'`, `b'Y'` or `b'Z'`).
    pub fn letter(&self, qubit: usize) -> u8 {
        self.letters[qubit]
    }

    /// A string of identities with the given letters placed on qubits.
    pub fn from_letters(num_qubits: usize, placed: &[(usize, u8)]) -> Self {
        let mut letters = vec![b'I'; num_qubits];
        for &(q, l) in placed {
            letters[q] = l;
        }
        Self { letters }
    }

    /// Fails unless the string covers exactly `num_qubits` qubits.
    pub fn check_width(&self, num_qubits: usize) -> Result<(), PauliError> {
        if self.letters.len() == num_qubits {
            return Ok(());
        }
        Err(PauliError::Length {
            pauli: self.to_string(),
            got: self.letters.len(),
            expected: num_qubits,
        })
    }

    /// Masks `(flip, sign, num_y)`: `P|i> = i^num_y (-1)^popcount(i & sign) |i ^ flip>`.
    pub fn masks(&self) -> (usize, usize, u32) {
        let (mut flip, mut sign, mut ny) = (0usize, 0usize, 0u32);
        for (q, &l) in self.letters.iter().enumerate() {
            match l {
                b'X' => flip |= 1 << q,
                b'Y' => {
                    flip |= 1 << q;
                    sign |= 1 << q;
                    ny += 1;
                }
                b'Z' => sign |= 1 << q,
                _ => {}
            }
        }
        (flip, sign, ny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qiskit_order() {
        let p: PauliString = "XIZ".parse().unwrap();
        assert_eq!(p.letter(0), b'Z');
        assert_eq!(p.letter(2), b'X');
        assert_eq!(p.to_string(), "XIZ");
        assert_eq!(p.masks(), (0b100, 0b001, 0));
        assert_eq!("Y".parse::<PauliString>().unwrap().masks(), (1, 1, 1));
        assert_eq!("XQ".parse::<PauliString>(), Err(PauliError::BadLetter('Q')));
        assert!(p.check_width(2).is_err());
    }
}
