//! Every namespace of the store, in one place. A key is `<prefix><hex>`; the prefix says what the
//! value is and whether it may be evicted.
//!
//! | prefix | value | written by | evictable |
//! |---|---|---|---|
//! | `r/` | a cached result (probabilities, counts, an expectation value), under its result key | the cache | yes |
//! | `m/` | a memo: exact circuit bytes -> semantic circuit ID | the cache | yes |
//! | `c/` | a circuit as OpenQASM 2 text, under its content ID | the plugin's `cut` and `simulate` | no |
//! | `b/` | a batch: the JSON list of the `c/` keys one `simulate` step runs | `cut` | no |
//! | `p/` | a cut plan: circuit key, cut positions, run spec, batch keys | `cut` | no |
//! | `o/` | a reconstructed result, the JSON `quargo run` prints | `reconstruct`, `run` | no |
//! | `j/` | a job record (phase, owner, lease, reply), under the call's idempotency key | the plugin's jobs | no |
//!
//! Leases and counters live beside these in each store's own bookkeeping.

/// Cached results (recomputable).
pub const RESULT: &str = "r/";
/// Memos from exact circuit bytes to semantic IDs (recomputable).
pub const MEMO: &str = "m/";
/// Circuits, by content ID.
pub const CIRCUIT: &str = "c/";
/// Batches of circuit keys.
pub const BATCH: &str = "b/";
/// Cut plans.
pub const PLAN: &str = "p/";
/// Reconstructed outputs.
pub const OUTPUT: &str = "o/";
/// Job records of the plugin.
pub const JOB: &str = "j/";

/// Namespaces whose entries can be recomputed: the only ones a size bound may evict. Everything
/// else is data.
pub const EVICTABLE: [&str; 2] = [RESULT, MEMO];

/// `prefix` followed by the BLAKE3 hash of `bytes`, in hex: the key of a content-addressed value.
pub fn content_key(prefix: &str, bytes: &[u8]) -> String {
    format!("{prefix}{}", blake3::hash(bytes).to_hex())
}
