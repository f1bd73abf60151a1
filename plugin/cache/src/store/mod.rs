//! Key-value stores behind one trait: the embedded LMDB store ([`lmdb`], the default, for one host)
//! and Redis ([`redis`], shared by a cluster). The store owns bytes, leases and counters; it knows
//! nothing of circuits (that is the cache's business) nor of Argo (the server's).
//!
//! Every operation is fallible and typed: callers decide whether a failure degrades (the cache) or
//! fails a request (the server answers 503).

pub mod keys;
pub mod lmdb;
pub mod redis;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot understand store URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("LMDB store at {path}: {message}")]
    Lmdb { path: PathBuf, message: String },
    #[error(
        "the LMDB store is full (map size {map_size} bytes); raise it with ?max_bytes= or clear it"
    )]
    Full { map_size: u64 },
    #[error("Redis at {url}: {message}")]
    Redis { url: String, message: String },
    #[error("Redis at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The connection failed (refused, dropped, I/O): the message names the server.
    #[error("{0}")]
    Unreachable(String),
    /// A value that could not be encoded: nothing was written.
    #[error("cannot encode {0} for the store")]
    Encode(String),
}

/// What `quargo cache stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Where the store lives (URL without credentials).
    pub location: String,
    /// Entries under the cache's value namespace.
    pub entries: u64,
    /// Bytes of those values.
    pub bytes: u64,
    /// The size bound, when the store enforces one.
    pub max_bytes: Option<u64>,
    /// Persistent event counters (hits, misses, ...), summed over every process that used it.
    pub counters: BTreeMap<String, u64>,
}

/// A key-value store with leases and counters.
///
/// Keys are printable ASCII. `put` replaces a value atomically: a reader sees the old value or the
/// new one, never a mix. Leases give single-flight: `try_lease` succeeds for one owner at a time,
/// until the owner releases it or it expires.
pub trait Store: Send + Sync + std::fmt::Debug {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Several gets (one read transaction, one round trip where possible).
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Several puts; stores that can make them one write (one transaction, one pipeline) do.
    fn put_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for (key, value) in entries {
            self.put(key, value)?;
        }
        Ok(())
    }
    /// `put_many`, then releases `owner`'s leases on `lease_keys` (one write where possible).
    fn put_many_and_release(
        &self,
        entries: &[(String, Vec<u8>)],
        lease_keys: &[String],
        owner: &str,
    ) -> Result<(), StoreError> {
        self.put_many(entries)?;
        for key in lease_keys {
            self.release_lease(key, owner)?;
        }
        Ok(())
    }
    /// `try_lease` on each key (one write where possible).
    fn try_lease_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        keys.iter().map(|k| self.try_lease(k, owner, ttl)).collect()
    }
    fn put_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Takes the lease on `key` for `owner` unless someone else holds a live one.
    fn try_lease(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Extends the lease if `owner` still holds it; false when it was lost.
    fn renew_lease(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;
    fn release_lease(&self, key: &str, owner: &str) -> Result<(), StoreError>;
    /// Whether some owner holds a live lease on `key`.
    fn lease_held(&self, key: &str) -> Result<bool, StoreError>;
    /// Adds to the persistent counters.
    fn add_counters(&self, deltas: &[(&str, u64)]) -> Result<(), StoreError>;
    /// Entries and bytes under `prefix`, and the counters.
    fn stats(&self, prefix: &str) -> Result<StoreStats, StoreError>;
    /// Removes every key under `prefix`, leases and counters included; returns how many values went.
    fn clear(&self, prefix: &str) -> Result<u64, StoreError>;
    /// Where the store lives, for messages (no credentials).
    fn location(&self) -> String;
}

pub(crate) fn evictable(key: &[u8]) -> bool {
    keys::EVICTABLE
        .iter()
        .any(|p| key.starts_with(p.as_bytes()))
}

/// Default size bound of the embedded store.
pub const DEFAULT_LMDB_MAX_BYTES: u64 = 4 << 30;

/// The default embedded store's directory: `$QUARGO_CACHE_DIR`, else the platform cache dir.
pub fn default_lmdb_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUARGO_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("quargo")
}

/// The directory and size bound of an `lmdb://` URL; `None` for other schemes.
pub fn lmdb_location(url: &str) -> Result<Option<(PathBuf, u64)>, StoreError> {
    let Some(rest) = url.strip_prefix("lmdb://") else {
        return Ok(None);
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut max_bytes = DEFAULT_LMDB_MAX_BYTES;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("max_bytes", v)) => {
                max_bytes = parse_size(v).ok_or_else(|| StoreError::BadUrl {
                    url: url.into(),
                    reason: format!("max_bytes '{v}' is not a size (bytes, or with K/M/G)"),
                })?
            }
            _ => {
                return Err(StoreError::BadUrl {
                    url: url.into(),
                    reason: format!("unknown option '{pair}' (known: max_bytes)"),
                })
            }
        }
    }
    let dir = if path.is_empty() {
        default_lmdb_dir()
    } else {
        PathBuf::from(path)
    };
    Ok(Some((dir, max_bytes)))
}

/// Opens a store from a URL: `lmdb://PATH[?max_bytes=N]` (`lmdb://` alone: the default directory),
/// `redis://[user:pass@]HOST:PORT/DB`, `rediss://...` for TLS.
///
/// Opening Redis does not connect: an unreachable server shows up as errors on use, so a caller
/// can degrade instead of failing.
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Box::new(redis::RedisStore::open(
            url,
            redis::RedisOptions::default(),
        )?));
    }
    let Some((dir, max_bytes)) = lmdb_location(url)? else {
        return Err(StoreError::BadUrl {
            url: url.into(),
            reason: "expected lmdb://PATH or redis://HOST:PORT/DB".into(),
        });
    };
    Ok(Box::new(lmdb::LmdbStore::open(&dir, max_bytes)?))
}

/// `123`, `64K`, `512M`, `4G` (binary units).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// Milliseconds since the Unix epoch (lease expiry times are wall-clock, shared between processes).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let err = open("memcached://x").err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("expected lmdb://"));
        let err = open("lmdb:///tmp/x?size=3").err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("unknown option"));
    }
}
