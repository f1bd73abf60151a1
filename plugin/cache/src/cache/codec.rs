//! The byte format of cache entries: an authenticated envelope that names its own key, so a
//! value that is truncated, corrupt, forged or stored under the wrong key decodes to nothing (a
//! miss), never to a wrong answer.
//!
//! ```text
//! magic 4 bytes | payload length u64 LE | tag 32 bytes | payload
//! payload = key length u32 LE | key text | proof length u32 LE | proof bytes | value bytes
//! ```
//! Unkeyed (`QRG1`, the local default), the tag is BLAKE3(payload): it catches damage, not an
//! attacker who can write to the store. Keyed (`QRK1`, [`Sealer::keyed`] with a secret from a
//! file or a Kubernetes Secret), the tag is BLAKE3's keyed MAC: without the secret nobody can
//! write a value this process accepts, and a keyed process refuses unkeyed values. The proof is
//! what a hit must match (the reduced graph and its precision); the value is the result.

const UNKEYED: &[u8; 4] = b"QRG1";
const KEYED: &[u8; 4] = b"QRK1";
const HEADER: usize = 4 + 8 + 32;
/// Shortest secret accepted for the MAC.
pub const MIN_SECRET_BYTES: usize = 16;

/// Seals and opens envelopes, with a MAC key or without.
#[derive(Clone, Default)]
pub struct Sealer {
    key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.key.is_some() {
            "keyed"
        } else {
            "unkeyed"
        };
        write!(f, "Sealer({mode})")
    }
}

/// A MAC secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cache MAC secret has {0} bytes; use at least {MIN_SECRET_BYTES} random bytes")]
pub struct WeakSecret(pub usize);

impl Sealer {
    /// Checksums only (the local default).
    pub fn unkeyed() -> Sealer {
        Sealer { key: None }
    }

    /// Authenticates values with a key derived from `secret` (surrounding white space ignored).
    pub fn keyed(secret: &[u8]) -> Result<Sealer, WeakSecret> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        Ok(Sealer {
            key: Some(blake3::derive_key("quargo cache value MAC v1", secret)),
        })
    }

    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    fn magic(&self) -> &'static [u8; 4] {
        if self.key.is_some() {
            KEYED
        } else {
            UNKEYED
        }
    }

    fn tag(&self, payload: &[u8]) -> blake3::Hash {
        match &self.key {
            Some(key) => blake3::keyed_hash(key, payload),
            None => blake3::hash(payload),
        }
    }

    /// Wraps `key`, `proof` and `value` into one envelope.
    pub fn seal(&self, key: &str, proof: &[u8], value: &[u8]) -> Vec<u8> {
        let payload_len = 4 + key.len() + 4 + proof.len() + value.len();
        let mut out = Vec::with_capacity(HEADER + payload_len);
        out.extend_from_slice(self.magic());
        out.extend_from_slice(&(payload_len as u64).to_le_bytes());
        out.extend_from_slice(&[0; 32]);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(proof.len() as u32).to_le_bytes());
        out.extend_from_slice(proof);
        out.extend_from_slice(value);
        let tag = self.tag(&out[HEADER..]);
        out[12..HEADER].copy_from_slice(tag.as_bytes());
        out
    }

    /// Checks the envelope and that it was written for `key`.
    pub fn open<'a>(&self, bytes: &'a [u8], key: &str) -> Result<Opened<'a>, Refused> {
        let (stored_key, opened) = self.unseal(bytes).ok_or(Refused::Corrupt)?;
        if stored_key != key.as_bytes() {
            return Err(Refused::OtherKey);
        }
        Ok(opened)
    }

    /// Checks the envelope whatever key it was written for, and returns its value.
    pub fn open_any<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.unseal(bytes).map(|(_, opened)| opened.value)
    }

    /// Magic, length and tag checked (the tag in constant time): the stored key and the parts.
    fn unseal<'a>(&self, bytes: &'a [u8]) -> Option<(&'a [u8], Opened<'a>)> {
        if bytes.len() < HEADER || &bytes[..4] != self.magic() {
            return None;
        }
        let len = u64::from_le_bytes(bytes[4..12].try_into().ok()?);
        let payload = &bytes[HEADER..];
        if payload.len() as u64 != len {
            return None;
        }
        let stored: [u8; 32] = bytes[12..HEADER].try_into().ok()?;
        // blake3::Hash compares in constant time.
        if self.tag(payload) != blake3::Hash::from_bytes(stored) {
            return None;
        }
        let (stored_key, rest) = take_prefixed(payload)?;
        let (proof, value) = take_prefixed(rest)?;
        Some((stored_key, Opened { proof, value }))
    }
}

/// [`Sealer::seal`] without a key.
pub fn seal(key: &str, proof: &[u8], value: &[u8]) -> Vec<u8> {
    Sealer::unkeyed().seal(key, proof, value)
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
    /// Bad magic, length or tag: the bytes are damaged, forged, or sealed with another key.
    Corrupt,
    /// Intact, but written for another key (a store-key collision).
    OtherKey,
}

/// [`Sealer::open`] without a key.
pub fn open<'a>(bytes: &'a [u8], key: &str) -> Result<Opened<'a>, Refused> {
    Sealer::unkeyed().open(bytes, key)
}

/// [`Sealer::open_any`] without a key.
pub fn open_any(bytes: &[u8]) -> Option<&[u8]> {
    Sealer::unkeyed().open_any(bytes)
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
    fn keyed_values_cannot_be_forged_or_downgraded() {
        let sealer = Sealer::keyed(b"a secret of at least sixteen bytes").expect("key");
        let sealed = sealer.seal("k1", b"graph", &0.5f64.encode());
        assert_eq!(
            sealer.open(&sealed, "k1").expect("opens").value,
            0.5f64.encode()
        );
        // Whoever can write to the store but lacks the secret re-seals with a valid checksum:
        // refused, both as an unkeyed envelope and as a keyed one under another secret.
        let forged = seal("k1", b"graph", &(-1.0f64).encode());
        assert_eq!(sealer.open(&forged, "k1"), Err(Refused::Corrupt));
        let other = Sealer::keyed(b"another secret, also long enough").expect("key");
        let forged = other.seal("k1", b"graph", &(-1.0f64).encode());
        assert_eq!(sealer.open(&forged, "k1"), Err(Refused::Corrupt));
        // Changing the magic to the unkeyed one does not help either.
        let mut downgraded = sealed.clone();
        downgraded[..4].copy_from_slice(UNKEYED);
        assert_eq!(sealer.open(&downgraded, "k1"), Err(Refused::Corrupt));
        assert_eq!(
            open(&sealed, "k1"),
            Err(Refused::Corrupt),
            "unkeyed readers refuse keyed values"
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                sealer.open(&bad, "k1"),
                Err(Refused::Corrupt),
                "flipped byte {i}"
            );
        }
        assert_eq!(Sealer::keyed(b"  short \n").unwrap_err(), WeakSecret(5));
        assert_eq!(format!("{sealer:?}"), "Sealer(keyed)");
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
