//! The byte format of cache entries: a checksummed envelope that names its own key, so a value
//! that is truncated, corrupt, or stored under the wrong key decodes to nothing (a miss), never
//! to a wrong answer.
//!
//! ```text
//! "QRG1" | payload length u64 LE | BLAKE3(payload) 32 bytes | payload
//! payload = key length u32 LE | key text | proof length u32 LE | proof bytes | value bytes
//! ```
//! The proof is what a hit must match (the reduced graph, as JSON); the value is the result.

const MAGIC: &[u8; 4] = b"QRG1";
const HEADER: usize = 4 + 8 + 32;

/// Wraps `key`, `proof` and `value` into one envelope.
pub fn seal(key: &str, proof: &[u8], value: &[u8]) -> Vec<u8> {
    let payload_len = 4 + key.len() + 4 + proof.len() + value.len();
    let mut out = Vec::with_capacity(HEADER + payload_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload_len as u64).to_le_bytes());
    out.extend_from_slice(&[0; 32]);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(proof.len() as u32).to_le_bytes());
    out.extend_from_slice(proof);
    out.extend_from_slice(value);
    let checksum = blake3::hash(&out[HEADER..]);
    out[12..HEADER].copy_from_slice(checksum.as_bytes());
    out
}

/// An opened envelope: the proof and the value, borrowed from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    pub proof: &'a [u8],
    pub value: &'a [u8],
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Bad magic, length or checksum: the bytes are damaged.
    Corrupt,
    /// Intact, but written for another key (a store-key collision).
    OtherKey,
}

/// Checks the envelope and that it was written for `key`.
pub fn open<'a>(bytes: &'a [u8], key: &str) -> Result<Opened<'a>, Refused> {
    let (stored_key, opened) = unseal(bytes).ok_or(Refused::Corrupt)?;
    if stored_key != key.as_bytes() {
        return Err(Refused::OtherKey);
    }
    Ok(opened)
}

/// Checks the envelope whatever key it was written for, and returns its value.
pub fn open_any(bytes: &[u8]) -> Option<&[u8]> {
    unseal(bytes).map(|(_, opened)| opened.value)
}

/// Magic, length and checksum checked: the stored key and the opened parts.
fn unseal(bytes: &[u8]) -> Option<(&[u8], Opened<'_>)> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(bytes[4..12].try_into().ok()?);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len || blake3::hash(payload).as_bytes() != &bytes[12..HEADER] {
        return None;
    }
    let (stored_key, rest) = take_prefixed(payload)?;
    let (proof, value) = take_prefixed(rest)?;
    Some((stored_key, Opened { proof, value }))
}

fn take_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let body = bytes.get(4..4 + len)?;
    Some((body, &bytes[4 + len..]))
}

/// A result the cache can hold.
pub trait CacheValue: Sized {
    fn encode(&self) -> Vec<u8>;
    /// `None` when the bytes are not a value of this type.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// A value's bytes as stored, for callers that decode several kinds themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw(pub Vec<u8>);

impl CacheValue for Raw {
    fn encode(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Raw(bytes.to_vec()))
    }
}

/// Probabilities (or any dense real vector): raw f64 LE.
impl CacheValue for Vec<f64> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 8);
        for v in self {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        Some(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        )
    }
}

/// One expectation value.
impl CacheValue for f64 {
    fn encode(&self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(f64::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// Sampled counts: (outcome, count) pairs, u64 LE each, outcomes ascending.
impl CacheValue for std::collections::BTreeMap<usize, u64> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 16);
        for (outcome, count) in self {
            out.extend_from_slice(&(*outcome as u64).to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(16) {
            return None;
        }
        bytes
            .chunks_exact(16)
            .map(|c| {
                let outcome = u64::from_le_bytes(c[..8].try_into().ok()?);
                let count = u64::from_le_bytes(c[8..].try_into().ok()?);
                Some((usize::try_from(outcome).ok()?, count))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn envelopes_round_trip() {
        let sealed = seal("k1", b"graph", b"value");
        let opened = open(&sealed, "k1").expect("opens");
        assert_eq!(opened.proof, b"graph");
        assert_eq!(opened.value, b"value");
    }

    #[test]
    fn any_damage_or_truncation_is_refused() {
        let sealed = seal("k1", b"graph", &[1, 2, 3, 4, 5, 6, 7, 8]);
        for cut in 0..sealed.len() {
            assert_eq!(
                open(&sealed[..cut], "k1"),
                Err(Refused::Corrupt),
                "truncated at {cut}"
            );
        }
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert_eq!(open(&bad, "k1"), Err(Refused::Corrupt), "flipped byte {i}");
        }
        assert_eq!(open(&sealed, "k2"), Err(Refused::OtherKey));
    }

    #[test]
    fn values_round_trip() {
        let probs = vec![0.25, 0.5, 0.0, 0.25];
        assert_eq!(Vec::<f64>::decode(&probs.encode()), Some(probs));
        assert_eq!(f64::decode(&0.125f64.encode()), Some(0.125));
        let counts: BTreeMap<usize, u64> = [(0, 7), (5, 3)].into_iter().collect();
        assert_eq!(BTreeMap::decode(&counts.encode()), Some(counts));
        assert_eq!(Vec::<f64>::decode(&[1, 2, 3]), None);
        assert_eq!(f64::decode(&[1, 2, 3]), None);
    }
}
