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

    /// The masks of `P|i> = i^num_y (-1)^popcount(i & sign) |i ^ flip>`.
    pub fn masks(&self) -> PauliMasks {
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
        PauliMasks {
            flip,
            sign,
            num_y: ny,
        }
    }
}

/// A Pauli string as the simulator applies it: `P|i> = i^num_y (-1)^popcount(i & sign) |i ^ flip>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauliMasks {
    /// Qubits where P is X or Y (the bits it flips).
    pub flip: usize,
    /// Qubits where P is Y or Z (the bits whose 1 gives a sign).
    pub sign: usize,
    /// How many Y letters (each contributes a factor i).
    pub num_y: u32,
}

/// A real-weighted sum of Pauli strings, written `ZZI`, `0.5*ZZI + 0.5*XXI` or `-ZIZ + 2*IYY`.
#[derive(Debug, Clone, PartialEq)]
pub struct Observable {
    pub terms: Vec<(f64, PauliString)>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ObservableError {
    #[error("bad coefficient '{0}' in observable")]
    Coefficient(String),
    #[error("observable '{text}': {source}")]
    Pauli { text: String, source: PauliError },
    #[error("observable terms have different lengths ({0} and {1})")]
    Mixed(usize, usize),
}

impl FromStr for Observable {
    type Err = ObservableError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        // Split on + and - that start a term (not those inside an exponent such as 1e-3).
        let mut terms_text = Vec::new();
        let mut start = 0;
        let bytes = compact.as_bytes();
        for i in 1..bytes.len() {
            let sign = bytes[i] == b'+' || bytes[i] == b'-';
            let in_exponent =
                matches!(bytes[i - 1], b'e' | b'E') && i >= 2 && bytes[i - 2].is_ascii_digit();
            if sign && !in_exponent {
                terms_text.push(&compact[start..i]);
                start = i;
            }
        }
        terms_text.push(&compact[start..]);
        let mut terms = Vec::new();
        for t in terms_text {
            let (sign, body) = match t.strip_prefix('-') {
                Some(rest) => (-1.0, rest),
                None => (1.0, t.strip_prefix('+').unwrap_or(t)),
            };
            let (coeff, pauli) = match body.rsplit_once('*') {
                Some((c, p)) => (
                    c.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| ObservableError::Coefficient(c.to_string()))?,
                    p,
                ),
                None => (1.0, body),
            };
            let pauli: PauliString = pauli.parse().map_err(|source| ObservableError::Pauli {
                text: s.to_string(),
                source,
            })?;
            if let Some((_, first)) = terms.first() {
                let first: &PauliString = first;
                if first.num_qubits() != pauli.num_qubits() {
                    return Err(ObservableError::Mixed(
                        first.num_qubits(),
                        pauli.num_qubits(),
                    ));
                }
            }
            terms.push((sign * coeff, pauli));
        }
        Ok(Observable { terms })
    }
}

impl Observable {
    pub fn num_qubits(&self) -> usize {
        self.terms.first().map_or(0, |(_, p)| p.num_qubits())
    }
}

/// An observable as the user wrote it: `text` names it in every output, `observable` is what is
/// computed.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedObservable {
    pub text: String,
    pub observable: Observable,
}

/// Why an observable a user gave cannot be used on a circuit.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ObservableInputError {
    #[error("bad observable '{text}': {source}")]
    Parse {
        text: String,
        source: ObservableError,
    },
    #[error("observable '{text}' has {got} qubits but the circuit has {expected}")]
    Width {
        text: String,
        got: usize,
        expected: usize,
    },
}

/// The one parser of user observables (command-line flags, plugin inputs, stored plans): each
/// text is parsed and checked against the circuit's width, in the order given.
pub fn parse_observables(
    texts: &[String],
    num_qubits: usize,
) -> Result<Vec<NamedObservable>, ObservableInputError> {
    texts
        .iter()
        .map(|text| {
            let observable: Observable =
                text.parse().map_err(|source| ObservableInputError::Parse {
                    text: text.clone(),
                    source,
                })?;
            if observable.num_qubits() != num_qubits {
                return Err(ObservableInputError::Width {
                    text: text.clone(),
                    got: observable.num_qubits(),
                    expected: num_qubits,
                });
            }
            Ok(NamedObservable {
                text: text.clone(),
                observable,
            })
        })
        .collect()
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
        let masks = |flip, sign, num_y| PauliMasks { flip, sign, num_y };
        assert_eq!(p.masks(), masks(0b100, 0b001, 0));
        assert_eq!("Y".parse::<PauliString>().unwrap().masks(), masks(1, 1, 1));
        assert_eq!("XQ".parse::<PauliString>(), Err(PauliError::BadLetter('Q')));
        assert!(p.check_width(2).is_err());
    }

    #[test]
    fn parses_weighted_sums() {
        let o: Observable = "0.5*ZZI - XIX + 1e-3*YYY".parse().unwrap();
        let coeffs: Vec<f64> = o.terms.iter().map(|t| t.0).collect();
        assert_eq!(coeffs, vec![0.5, -1.0, 1e-3]);
        assert_eq!(o.terms[1].1.to_string(), "XIX");
        assert!("ZZ + X".parse::<Observable>().is_err());
        assert!("abc*ZZ".parse::<Observable>().is_err());
    }

    #[test]
    fn user_observables_are_parsed_and_sized_in_one_place() {
        let texts = vec!["ZZ".to_string(), "0.5*XX - YY".to_string()];
        let parsed = parse_observables(&texts, 2).unwrap();
        assert_eq!(parsed[1].text, "0.5*XX - YY");
        assert_eq!(parsed[1].observable.terms.len(), 2);
        let wide = parse_observables(&texts, 3).unwrap_err();
        assert_eq!(
            wide.to_string(),
            "observable 'ZZ' has 2 qubits but the circuit has 3"
        );
        let bad = parse_observables(&["ZQ".to_string()], 2).unwrap_err();
        assert!(
            bad.to_string().starts_with("bad observable 'ZQ': "),
            "{bad}"
        );
    }
}
