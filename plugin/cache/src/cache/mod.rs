//! The semantic circuit cache: results keyed by (circuit ID, result kind, context, recipe), kept in
//! a [`Store`], returned only when the stored circuit is proven equal to the asked one.
//!
//! - [`id`]: circuit IDs from ZX reduction and Weisfeiler-Leman hashing, and the equality proof.
//! - [`codec`]: the checksummed envelope every value is written in.
//! - [`Cache`]: lookup with proof, single-flight computation (a store lease per key, renewed
//!   while computing), and degradation: a store that fails, a value that does not decode, a
//!   circuit whose ID cannot be computed all end in computing the answer, never in an error or a
//!   wrong answer. Each such event is logged once and counted.

pub mod codec;
pub mod id;
pub mod recent;

use crate::store::{Store, StoreError, StoreStats};
use codec::{CacheValue, Refused};
use id::{
    decode_proof, encode_proof, proof_graph, proven_equal, CircuitId, IdError, ReducedGraph, RECIPE,
};
use quargo_science::circuit::Circuit;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a cached result is, beyond the circuit: everything that changes the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResultKind {
    /// Exact outcome probabilities of every qubit read out in Z.
    Probabilities,
    /// `<O>` for an observable, in its canonical text.
    Expectation { observable: String },
    /// Sampled counts for a number of shots and a seed policy (`seed=N`).
    Counts { shots: u64, seed_policy: String },
    /// Counts from a QPU backend at one calibration epoch.
    QpuCounts {
        backend: String,
        calibration_epoch: String,
        shots: u64,
    },
}

impl ResultKind {
    /// Unambiguous text of the kind and its context (lengths prefix free-form fields).
    fn context(&self) -> String {
        match self {
            ResultKind::Probabilities => "probabilities".into(),
            ResultKind::Expectation { observable } => {
                format!("expectation;{}:{observable}", observable.len())
            }
            ResultKind::Counts { shots, seed_policy } => {
                format!("counts;shots={shots};{}:{seed_policy}", seed_policy.len())
            }
            ResultKind::QpuCounts {
                backend,
                calibration_epoch,
                shots,
            } => format!(
                "qpu;{}:{backend};{}:{calibration_epoch};shots={shots}",
                backend.len(),
                calibration_epoch.len()
            ),
        }
    }
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Found in the cache, proven equal.
    Hit,
    /// Computed by this call (and stored).
    Computed,
    /// Computed by another worker while this one waited on its lease.
    Waited,
}

/// Store key prefix of results; memo entries (content ID -> circuit ID) live under `m/`.
pub const RESULT_PREFIX: &str = crate::store::keys::RESULT;
pub const MEMO_PREFIX: &str = crate::store::keys::MEMO;

#[derive(Clone)]
struct Key {
    /// Short store key: a hash of `text`.
    store: String,
    /// The full key, kept inside the value and checked on read.
    text: String,
}

fn key(prefix: &str, text: String) -> Key {
    Key {
        store: format!("{prefix}{}", blake3::hash(text.as_bytes()).to_hex()),
        text,
    }
}

fn result_key(digest: &str, kind: &ResultKind) -> Key {
    key(
        RESULT_PREFIX,
        format!("{RECIPE}|{digest}|{}", kind.context()),
    )
}

/// Events the cache counts (persisted in the store by [`Cache::flush`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Hit,
    Miss,
    /// A stored entry under the same ID that the proof rejected.
    CollisionRejected,
    /// A value that failed its checksum or did not decode.
    Corrupt,
    /// A store operation that failed (the answer was computed instead).
    StoreError,
    /// A result another worker computed while this one waited.
    Waited,
    /// A wait that outlived `max_wait`; the waiter computed itself.
    WaitTimeout,
    /// A circuit whose ID could not be computed (computed without the cache).
    IdError,
    /// A proven-equal entry whose rounding bound exceeds the tolerance (computed instead).
    ToleranceRejected,
}

impl Event {
    /// Every event, in counter order: the one table behind `quargo cache stats` (counters summed
    /// over every process) and `/metrics` (`quargo_cache_events_total{event=...}`, this process).
    pub const ALL: [Event; 9] = [
        Event::Hit,
        Event::Miss,
        Event::CollisionRejected,
        Event::Corrupt,
        Event::StoreError,
        Event::Waited,
        Event::WaitTimeout,
        Event::IdError,
        Event::ToleranceRejected,
    ];

    /// The event's name in counters, stats and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Event::Hit => "hits",
            Event::Miss => "misses",
            Event::CollisionRejected => "collisions_rejected",
            Event::Corrupt => "corrupt_values",
            Event::StoreError => "store_errors",
            Event::Waited => "single_flight_waits",
            Event::WaitTimeout => "wait_timeouts",
            Event::IdError => "id_errors",
            Event::ToleranceRejected => "tolerance_rejected",
        }
    }

    /// Position in [`Event::ALL`] (the declaration order).
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Lease lifetime; the holder renews it every third of this while computing.
    pub lease_ttl: Duration,
    /// Longest a worker waits for another's result before computing it itself.
    pub max_wait: Duration,
    /// Largest error a served answer may carry from the rounding of angles onto the ID's grid
    /// (probabilities and Pauli expectations; see [`id::Precision`]). Hits whose proven bound
    /// exceeds it are recomputed.
    pub tolerance: f64,
    /// Seals and opens every value (keyed: values are authenticated with a secret).
    pub sealer: codec::Sealer,
}

/// The default [`CacheOptions::tolerance`].
pub const DEFAULT_TOLERANCE: f64 = 1e-9;

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            lease_ttl: Duration::from_secs(6),
            max_wait: Duration::from_secs(600),
            tolerance: DEFAULT_TOLERANCE,
            sealer: codec::Sealer::unkeyed(),
        }
    }
}

/// Renews the leases this process holds, from one background thread.
struct LeaseKeeper {
    held: Arc<Mutex<HashMap<String, String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    fn start(store: Arc<dyn Store>, ttl: Duration) -> LeaseKeeper {
        let held: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (held_in, stop_in) = (held.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("quargo-lease-keeper".into())
            .spawn(move || {
                while !stop_in.load(Ordering::Acquire) {
                    std::thread::park_timeout(ttl / 3);
                    let snapshot: Vec<(String, String)> = match held_in.lock() {
                        Ok(h) => h.iter().map(|(k, o)| (k.clone(), o.clone())).collect(),
                        Err(_) => return,
                    };
                    for (key, owner) in snapshot {
                        if let Err(e) = store.renew_lease(&key, &owner, ttl) {
                            tracing::debug!(%key, error = %e, "lease renewal failed");
                        }
                    }
                }
            })
            .ok();
        LeaseKeeper { held, stop, thread }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A lease held while computing; released (and no longer renewed) when dropped.
struct HeldLease<'a> {
    cache: &'a Cache,
    key: String,
    owner: String,
    /// Set when the release went out with the result's write.
    released: AtomicBool,
}

impl Drop for HeldLease<'_> {
    fn drop(&mut self) {
        if let Ok(mut held) = self.cache.keeper.held.lock() {
            held.remove(&self.key);
        }
        if self.released.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.cache.store.release_lease(&self.key, &self.owner) {
            self.cache.degrade(Event::StoreError, &e);
        }
    }
}

/// The memo key of a circuit's exact bytes.
fn memo_key(exact: &[u8]) -> Key {
    key(
        MEMO_PREFIX,
        format!("{RECIPE}|memo|{}", blake3::hash(exact).to_hex()),
    )
}

/// A store entry to write: key and sealed value.
type Entry = (String, Vec<u8>);

/// A memo value: the 64-character hex digest, then the proof (graph and precision).
fn decode_memo(value: &[u8]) -> Option<CircuitId> {
    let (digest, proof) = value.split_at_checked(64)?;
    let (graph, precision) = decode_proof(proof)?;
    Some(CircuitId {
        digest: std::str::from_utf8(digest).ok()?.to_string(),
        graph: ReducedGraph::from_bytes(graph)?,
        precision,
    })
}

/// What a result entry carries to prove and bound a hit.
fn proof_of(id: &CircuitId) -> Vec<u8> {
    encode_proof(&id.graph.to_bytes(), &id.precision)
}

/// What a lookup found.
enum Lookup<V> {
    Found(V),
    Absent,
    /// Present but not usable (damaged, another circuit, or the store failed).
    Rejected,
}

/// One result asked of the lookup engine ([`Cache::lookup_batch`]): whose, under which key, and
/// the asked circuit's proof (encoded once: a waiter looks up many times).
struct Asked<'a> {
    id: &'a CircuitId,
    key: Key,
    proof: Vec<u8>,
}

impl<'a> Asked<'a> {
    fn new(id: &'a CircuitId, kind: &ResultKind) -> Asked<'a> {
        Asked {
            id,
            key: result_key(&id.digest, kind),
            proof: proof_of(id),
        }
    }
}

/// A result key that missed in a batch, and the circuits of the batch it answers.
struct Miss<'a> {
    /// What was asked for the circuit that stands for the group.
    asked: Asked<'a>,
    /// That circuit: its computation answers for the group.
    first: usize,
    /// Every circuit it answers (`first` included): same key, within the tolerance.
    circuits: Vec<usize>,
}

/// How the misses of a batch were leased.
struct Leases {
    owner: String,
    /// Misses this worker computes (leased, still absent).
    ours: Vec<usize>,
    /// Misses another worker holds: waited for.
    theirs: Vec<usize>,
    /// Keys leased but found filled in the meantime: released unused.
    released_unused: Vec<String>,
}

/// Cache statistics: the store's view plus this process's unflushed counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheStats {
    #[serde(flatten)]
    pub store: StoreStats,
    pub recipe: &'static str,
    /// Memo entries (exact circuit -> semantic ID).
    pub memo_entries: u64,
}

/// Shows the store and the options; the counters are read through [`Cache::stats`].
impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.store.location())
            .field("tolerance", &self.options.tolerance)
            .finish_non_exhaustive()
    }
}

pub struct Cache {
    store: Arc<dyn Store>,
    /// Events since this cache was made (monotonic: metrics read them).
    counts: [AtomicU64; Event::ALL.len()],
    /// How much of `counts` has been added to the store's counters.
    flushed: [AtomicU64; Event::ALL.len()],
    warned: Mutex<HashSet<String>>,
    owner_prefix: String,
    next_owner: AtomicU64,
    options: CacheOptions,
    keeper: LeaseKeeper,
    /// Circuit IDs by exact circuit bytes, so repeated circuits skip the store's memo.
    ids: recent::Recent<Vec<u8>, CircuitId>,
}

impl Cache {
    pub fn new(store: Arc<dyn Store>, options: CacheOptions) -> Cache {
        let keeper = LeaseKeeper::start(store.clone(), options.lease_ttl);
        let nonce: u64 = rand::random();
        Cache {
            store,
            counts: Default::default(),
            flushed: Default::default(),
            warned: Mutex::new(HashSet::new()),
            owner_prefix: format!("{}:{nonce:016x}", std::process::id()),
            next_owner: AtomicU64::new(0),
            options,
            keeper,
            ids: recent::Recent::bounded(4096, 64 << 20, |exact, id| {
                exact.len()
                    + id.graph.vertices.len() * 32
                    + id.graph.edges.len() * 12
                    + id.precision.offsets.len() * 8
            }),
        }
    }

    /// Opens the store at `url` (see [`crate::store::open`]) with default options.
    pub fn open(url: &str) -> Result<Cache, StoreError> {
        Cache::open_with(url, CacheOptions::default())
    }

    /// Opens the store at `url` with `options`.
    pub fn open_with(url: &str, options: CacheOptions) -> Result<Cache, StoreError> {
        let store: Arc<dyn Store> = Arc::from(crate::store::open(url)?);
        Ok(Cache::new(store, options))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How this cache seals and opens values (the plugin seals its data the same way).
    pub fn sealer(&self) -> &codec::Sealer {
        &self.options.sealer
    }

    pub fn count(&self, event: Event) {
        self.counts[event.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// This process's count of `event` since the cache was made (flushed or not).
    pub fn local_count(&self, event: Event) -> u64 {
        self.counts[event.index()].load(Ordering::Relaxed)
    }

    /// Counts the event and logs the error, once per kind of error.
    fn degrade(&self, event: Event, error: &dyn std::fmt::Display) {
        self.count(event);
        let text = error.to_string();
        let kind: String = text.chars().take(60).collect();
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(kind))
            .unwrap_or(false);
        if first {
            tracing::warn!(error = %text, "cache degraded: computing instead (logged once)");
        }
    }

    /// The circuit's semantic ID, memoised in the store by exact content (the memo entry carries
    /// the circuit's canonical bytes and is used only when they match).
    pub fn circuit_id(&self, circuit: &Circuit) -> Result<CircuitId, IdError> {
        let (id, memo) = self.circuit_id_and_memo(circuit)?;
        if let Some((key, value)) = memo {
            if let Err(e) = self.store.put(&key, &value) {
                self.degrade(Event::StoreError, &e);
            }
        }
        Ok(id)
    }

    /// The ID, and the memo entry to write when it was computed here (the caller writes it,
    /// batched with the result).
    fn circuit_id_and_memo(
        &self,
        circuit: &Circuit,
    ) -> Result<(CircuitId, Option<Entry>), IdError> {
        let exact = circuit.canonical_bytes();
        if let Some(id) = self.ids.get(&exact) {
            return Ok((id, None));
        }
        let memo = memo_key(&exact);
        if let Some(id) = self.memo_from(self.store.get(&memo.store), &memo, &exact) {
            return Ok((id, None));
        }
        self.compute_id(circuit, exact, memo)
    }

    /// The ID in a fetched memo entry, when it is intact and for these exact bytes.
    fn memo_from(
        &self,
        fetched: Result<Option<Vec<u8>>, StoreError>,
        memo: &Key,
        exact: &[u8],
    ) -> Option<CircuitId> {
        match fetched {
            Ok(Some(bytes)) => match self.options.sealer.open(&bytes, &memo.text) {
                Ok(opened) if opened.proof == exact => {
                    if let Some(id) = decode_memo(opened.value) {
                        self.ids.insert(exact.to_vec(), id.clone());
                        return Some(id);
                    }
                    self.degrade(Event::Corrupt, &"a memo entry does not decode");
                }
                Ok(_) | Err(Refused::OtherKey) => self.count(Event::CollisionRejected),
                Err(Refused::Corrupt) => {
                    self.degrade(Event::Corrupt, &"a memo entry failed its checksum")
                }
            },
            Ok(None) => {}
            Err(e) => self.degrade(Event::StoreError, &e),
        }
        None
    }

    fn compute_id(
        &self,
        circuit: &Circuit,
        exact: Vec<u8>,
        memo: Key,
    ) -> Result<(CircuitId, Option<Entry>), IdError> {
        let id = id::circuit_id(circuit)?;
        let mut value = id.digest.as_bytes().to_vec();
        value.extend_from_slice(&proof_of(&id));
        let entry = (
            memo.store,
            self.options.sealer.seal(&memo.text, &exact, &value),
        );
        self.ids.insert(exact, id.clone());
        Ok((id, Some(entry)))
    }

    /// One `get_many` for all `keys`; a failed store reads as all absent (and is counted).
    fn fetch_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        match self.store.get_many(keys) {
            Ok(values) if values.len() == keys.len() => values,
            Ok(_) => vec![None; keys.len()],
            Err(e) => {
                self.degrade(Event::StoreError, &e);
                vec![None; keys.len()]
            }
        }
    }

    /// The store key under which `kind` of `circuit` is (or would be) cached.
    pub fn result_store_key(&self, circuit: &Circuit, kind: &ResultKind) -> Option<String> {
        self.circuit_id(circuit)
            .ok()
            .map(|id| result_key(&id.digest, kind).store)
    }

    /// The circuit's ID when this process or the store's memo already knows it: never runs the
    /// ZX reduction, so it is cheap enough for a request's thread.
    pub fn known_id(&self, circuit: &Circuit) -> Option<CircuitId> {
        let exact = circuit.canonical_bytes();
        if let Some(id) = self.ids.get(&exact) {
            return Some(id);
        }
        let memo = memo_key(&exact);
        self.memo_from(self.store.get(&memo.store), &memo, &exact)
    }

    /// [`Cache::lookup_kinds`] when the circuit's ID is already known ([`Cache::known_id`]).
    pub fn lookup_kinds_if_known(
        &self,
        circuit: &Circuit,
        kinds: &[ResultKind],
    ) -> Option<Vec<Vec<u8>>> {
        let id = self.known_id(circuit)?;
        self.lookup_kinds_of(&id, kinds)
    }

    /// [`Cache::lookup_many`] for a batch whose IDs are all known already; `None` for any
    /// circuit when one is not (nothing is computed).
    pub fn lookup_many_if_known<V: CacheValue>(
        &self,
        circuits: &[&Circuit],
        kind: &ResultKind,
    ) -> Vec<Option<V>> {
        // One batched memo read, then one for the results.
        let known = self.known_ids(circuits).1;
        if known.iter().any(Option::is_none) {
            return circuits.iter().map(|_| None).collect();
        }
        let ids = known
            .into_iter()
            .flatten()
            .map(|id| Ok((id, None)))
            .collect();
        self.lookup_with_ids(ids, kind)
    }

    /// Cached results of several kinds for one circuit, all or nothing, in one store read: the
    /// values' bytes (decode each with its [`CacheValue`]), or `None` when any is missing.
    pub fn lookup_kinds(&self, circuit: &Circuit, kinds: &[ResultKind]) -> Option<Vec<Vec<u8>>> {
        let id = self.circuit_id(circuit).ok()?;
        self.lookup_kinds_of(&id, kinds)
    }

    fn lookup_kinds_of(&self, id: &CircuitId, kinds: &[ResultKind]) -> Option<Vec<Vec<u8>>> {
        let asked: Vec<Asked> = kinds.iter().map(|k| Asked::new(id, k)).collect();
        let values = self
            .lookup_batch::<codec::Raw>(&asked.iter().collect::<Vec<_>>())
            .into_iter()
            .map(|found| match found {
                Lookup::Found(codec::Raw(v)) => Some(v),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        for _ in &values {
            self.count(Event::Hit);
        }
        Some(values)
    }

    /// Returns the cached result of `kind` for `circuit`, or computes, stores and returns it.
    /// Concurrent callers on the same key compute once (single-flight).
    pub fn get_or_compute<V: CacheValue, E>(
        &self,
        circuit: &Circuit,
        kind: &ResultKind,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<(V, Source), E> {
        match self.circuit_id_and_memo(circuit) {
            Ok((id, memo)) => self.get_or_compute_inner(&id, memo, kind, compute),
            Err(e) => {
                self.degrade(Event::IdError, &e);
                compute().map(|v| (v, Source::Computed))
            }
        }
    }

    fn get_or_compute_inner<V: CacheValue, E>(
        &self,
        id: &CircuitId,
        mut memo: Option<Entry>,
        kind: &ResultKind,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<(V, Source), E> {
        let asked = Asked::new(id, kind);
        let (key, proof) = (&asked.key, &asked.proof);
        // A memo computed here is written with the result, or on its own when none is written.
        let first = self.lookup(&asked);
        let was_absent = matches!(first, Lookup::Absent);
        if let Lookup::Found(v) = first {
            self.count(Event::Hit);
            self.write_memo(memo.take());
            return Ok((v, Source::Hit));
        }
        self.count(Event::Miss);
        let owner = format!(
            "{}:{}",
            self.owner_prefix,
            self.next_owner.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = Instant::now() + self.options.max_wait;
        let mut delay = Duration::from_millis(1);
        loop {
            match self
                .store
                .try_lease(&key.store, &owner, self.options.lease_ttl)
            {
                Ok(true) => {
                    let lease = self.hold(&key.store, &owner);
                    // Another worker may have finished between our miss and our lease.
                    if was_absent {
                        if let Lookup::Found(v) = self.lookup(&asked) {
                            self.count(Event::Waited);
                            self.write_memo(memo.take());
                            return Ok((v, Source::Waited));
                        }
                    }
                    let v = compute()?;
                    self.save(key, proof, &v, memo.take(), Some(&lease));
                    return Ok((v, Source::Computed));
                }
                Ok(false) => {
                    if Instant::now() >= deadline {
                        self.degrade(
                            Event::WaitTimeout,
                            &format!(
                                "waited {:?} for another worker's result; computing it here",
                                self.options.max_wait
                            ),
                        );
                        let v = compute()?;
                        self.save(key, proof, &v, memo.take(), None);
                        return Ok((v, Source::Computed));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(50));
                    if let Lookup::Found(v) = self.lookup(&asked) {
                        self.count(Event::Waited);
                        self.write_memo(memo.take());
                        return Ok((v, Source::Waited));
                    }
                    // Try the lease again: it is free once the holder finished without a result
                    // (it failed), released it, or died and let it expire.
                }
                Err(e) => {
                    self.degrade(Event::StoreError, &e);
                    let v = compute()?;
                    self.save(key, proof, &v, memo.take(), None);
                    return Ok((v, Source::Computed));
                }
            }
        }
    }

    /// IDs of many circuits: this process's memo, then one store read for the stored memos, then
    /// quizx (in parallel) for the rest, with their memo entries to write.
    fn ids_of(&self, circuits: &[&Circuit]) -> Vec<Result<(CircuitId, Option<Entry>), IdError>> {
        use rayon::prelude::*;
        let (exacts, known) = self.known_ids(circuits);
        known
            .into_par_iter()
            .enumerate()
            .map(|(i, id)| match id {
                Some(id) => Ok((id, None)),
                None => self.compute_id(circuits[i], exacts[i].clone(), memo_key(&exacts[i])),
            })
            .collect()
    }

    /// The circuits' exact bytes and the IDs already known for them: this process's memo, then
    /// one store read for the stored memos. Never runs the ZX reduction.
    fn known_ids(&self, circuits: &[&Circuit]) -> (Vec<Vec<u8>>, Vec<Option<CircuitId>>) {
        use rayon::prelude::*;
        let exacts: Vec<Vec<u8>> = circuits.par_iter().map(|c| c.canonical_bytes()).collect();
        let mut known: Vec<Option<CircuitId>> = exacts.iter().map(|e| self.ids.get(e)).collect();
        let unknown: Vec<usize> = (0..circuits.len())
            .filter(|&i| known[i].is_none())
            .collect();
        let memo_keys: Vec<Key> = unknown.iter().map(|&i| memo_key(&exacts[i])).collect();
        let stores: Vec<String> = memo_keys.iter().map(|k| k.store.clone()).collect();
        for ((&i, memo), fetched) in unknown.iter().zip(&memo_keys).zip(self.fetch_many(&stores)) {
            known[i] = self.memo_from(Ok(fetched), memo, &exacts[i]);
        }
        (exacts, known)
    }

    /// Cached results of `kind` for many circuits, proven equal, `None` where there is none;
    /// one store read for the memos and one for the results. Never computes a result.
    pub fn lookup_many<V: CacheValue>(
        &self,
        circuits: &[&Circuit],
        kind: &ResultKind,
    ) -> Vec<Option<V>> {
        self.lookup_with_ids(self.ids_of(circuits), kind)
    }

    /// The results of `kind` for circuits whose IDs are given (their memos written on the way).
    fn lookup_with_ids<V: CacheValue>(
        &self,
        ids: Vec<Result<(CircuitId, Option<Entry>), IdError>>,
        kind: &ResultKind,
    ) -> Vec<Option<V>> {
        let memos: Vec<Entry> = ids
            .iter()
            .filter_map(|id| id.as_ref().ok()?.1.clone())
            .collect();
        let asked: Vec<(usize, Asked)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((i, Asked::new(&id.as_ref().ok()?.0, kind))))
            .collect();
        let (positions, asked): (Vec<usize>, Vec<Asked>) = asked.into_iter().unzip();
        let mut found: Vec<Option<V>> = ids.iter().map(|_| None).collect();
        let refs: Vec<&Asked> = asked.iter().collect();
        for (i, lookup) in positions.into_iter().zip(self.lookup_batch::<V>(&refs)) {
            if let Lookup::Found(v) = lookup {
                self.count(Event::Hit);
                found[i] = Some(v);
            }
        }
        if !memos.is_empty() {
            if let Err(e) = self.store.put_many(&memos) {
                self.degrade(Event::StoreError, &e);
            }
        }
        found
    }

    /// [`Cache::get_or_compute`] for many circuits of one kind, batched: every lookup first,
    /// then one store write to lease all misses, the misses computed in parallel (`compute(i)` for
    /// circuit `i`; circuits with one semantic ID are computed once), and one write for all results,
    /// memos and lease releases. Keys leased by other workers are waited for as in
    /// `get_or_compute`. On an error the successful results are still stored.
    pub fn get_or_compute_many<V, E, F>(
        &self,
        circuits: &[&Circuit],
        kind: &ResultKind,
        compute: F,
    ) -> Result<Vec<(V, Source)>, E>
    where
        V: CacheValue + Clone + Send + Sync,
        E: Send,
        F: Fn(usize) -> Result<V, E> + Sync,
    {
        let ids = self.ids_of(circuits);
        let mut out: Vec<Option<(V, Source)>> = (0..circuits.len()).map(|_| None).collect();
        let (misses, mut pending) = self.first_lookups(&ids, kind, &mut out);
        let leases = self.lease_misses(&misses, &mut out);
        let first_error = self.compute_ours(&misses, &leases, &compute, &mut pending, &mut out);
        self.write_and_release(&misses, &leases, &pending);
        if let Some(e) = first_error {
            return Err(e);
        }
        self.wait_for_theirs(&misses, &leases, kind, &compute, &mut out)?;
        // Circuits without an ID (and, defensively, any left without a result) are computed here.
        out.into_iter()
            .enumerate()
            .map(|(i, o)| match o {
                Some(result) => Ok(result),
                None => compute(i).map(|v| (v, Source::Computed)),
            })
            .collect()
    }

    /// Phase 1: one store read for every result key. Hits fill `out`; misses are grouped by key
    /// (equivalent circuits of one batch share a computation, within the tolerance). Returns the
    /// misses and the memos computed on the way (written with the results).
    fn first_lookups<'a, V: CacheValue>(
        &self,
        ids: &'a [Result<(CircuitId, Option<Entry>), IdError>],
        kind: &ResultKind,
        out: &mut [Option<(V, Source)>],
    ) -> (Vec<Miss<'a>>, Vec<Entry>) {
        let mut pending: Vec<Entry> = Vec::new();
        let mut asked: Vec<(usize, Asked)> = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            match id {
                Ok((id, memo)) => {
                    pending.extend(memo.clone());
                    asked.push((i, Asked::new(id, kind)));
                }
                // Computed at the end, without the cache.
                Err(e) => self.degrade(Event::IdError, e),
            }
        }
        let mut misses: Vec<Miss> = Vec::new();
        let mut miss_of: HashMap<String, usize> = HashMap::new();
        let found = self.lookup_batch::<V>(&asked.iter().map(|(_, a)| a).collect::<Vec<_>>());
        for ((i, a), lookup) in asked.into_iter().zip(found) {
            if let Some(&m) = miss_of.get(&a.key.store) {
                // One computation answers for both only within the tolerance; else this one is
                // computed on its own in the final pass.
                let first = &misses[m].asked.id.precision;
                if self.within_tolerance(first, &a.id.precision) {
                    misses[m].circuits.push(i);
                }
                continue;
            }
            match lookup {
                Lookup::Found(v) => {
                    self.count(Event::Hit);
                    out[i] = Some((v, Source::Hit));
                }
                _ => {
                    self.count(Event::Miss);
                    miss_of.insert(a.key.store.clone(), misses.len());
                    misses.push(Miss {
                        asked: a,
                        first: i,
                        circuits: vec![i],
                    });
                }
            }
        }
        (misses, pending)
    }

    /// Phase 2: one store write leases every miss. Keys filled by another worker between the
    /// lookups and the leases are taken from the store and released unused.
    fn lease_misses<V: CacheValue + Clone>(
        &self,
        misses: &[Miss<'_>],
        out: &mut [Option<(V, Source)>],
    ) -> Leases {
        let owner = format!(
            "{}:{}",
            self.owner_prefix,
            self.next_owner.fetch_add(1, Ordering::Relaxed)
        );
        let keys: Vec<String> = misses.iter().map(|m| m.asked.key.store.clone()).collect();
        let leased = match self
            .store
            .try_lease_many(&keys, &owner, self.options.lease_ttl)
        {
            Ok(leased) => leased,
            Err(e) => {
                self.degrade(Event::StoreError, &e);
                vec![false; keys.len()]
            }
        };
        let (ours, theirs): (Vec<usize>, Vec<usize>) =
            (0..misses.len()).partition(|&m| leased.get(m).copied().unwrap_or(false));
        let asked: Vec<&Asked> = ours.iter().map(|&m| &misses[m].asked).collect();
        let refilled = self.lookup_batch::<V>(&asked);
        let mut still_ours = Vec::with_capacity(ours.len());
        let mut released_unused = Vec::new();
        for (m, lookup) in ours.into_iter().zip(refilled) {
            match lookup {
                Lookup::Found(v) => {
                    self.count(Event::Waited);
                    for &i in &misses[m].circuits {
                        out[i] = Some((v.clone(), Source::Waited));
                    }
                    released_unused.push(keys[m].clone());
                }
                _ => still_ours.push(m),
            }
        }
        if let Ok(mut held) = self.keeper.held.lock() {
            for &m in &still_ours {
                held.insert(keys[m].clone(), owner.clone());
            }
        }
        Leases {
            owner,
            ours: still_ours,
            theirs,
            released_unused,
        }
    }

    /// Phase 3: the misses this worker leased, computed in parallel; results sealed into
    /// `pending`. Returns the first error (the other results are still written).
    fn compute_ours<V, E, F>(
        &self,
        misses: &[Miss<'_>],
        leases: &Leases,
        compute: &F,
        pending: &mut Vec<Entry>,
        out: &mut [Option<(V, Source)>],
    ) -> Option<E>
    where
        V: CacheValue + Clone + Send + Sync,
        E: Send,
        F: Fn(usize) -> Result<V, E> + Sync,
    {
        use rayon::prelude::*;
        let computed: Vec<(usize, Result<V, E>)> = leases
            .ours
            .par_iter()
            .map(|&m| (m, compute(misses[m].first)))
            .collect();
        let mut first_error = None;
        for (m, result) in computed {
            match result {
                Ok(v) => {
                    let miss = &misses[m];
                    let key = &miss.asked.key;
                    let sealed =
                        self.options
                            .sealer
                            .seal(&key.text, &miss.asked.proof, &v.encode());
                    pending.push((key.store.clone(), sealed));
                    for (n, &i) in miss.circuits.iter().enumerate() {
                        let source = if n == 0 {
                            Source::Computed
                        } else {
                            Source::Hit
                        };
                        out[i] = Some((v.clone(), source));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error
    }

    /// Phase 4: one store write for every result and memo, releasing this worker's leases.
    fn write_and_release(&self, misses: &[Miss<'_>], leases: &Leases, pending: &[Entry]) {
        let mut our_keys: Vec<String> = leases
            .ours
            .iter()
            .map(|&m| misses[m].asked.key.store.clone())
            .collect();
        our_keys.extend(leases.released_unused.iter().cloned());
        if let Ok(mut held) = self.keeper.held.lock() {
            for key in &our_keys {
                held.remove(key);
            }
        }
        if let Err(e) = self
            .store
            .put_many_and_release(pending, &our_keys, &leases.owner)
        {
            self.degrade(Event::StoreError, &e);
            for key in &our_keys {
                let _ = self.store.release_lease(key, &leases.owner);
            }
        }
    }

    /// Phase 5: keys another worker holds are waited for as single calls do.
    fn wait_for_theirs<V, E, F>(
        &self,
        misses: &[Miss<'_>],
        leases: &Leases,
        kind: &ResultKind,
        compute: &F,
        out: &mut [Option<(V, Source)>],
    ) -> Result<(), E>
    where
        V: CacheValue + Clone + Send + Sync,
        E: Send,
        F: Fn(usize) -> Result<V, E> + Sync,
    {
        use rayon::prelude::*;
        let waited = leases
            .theirs
            .par_iter()
            .map(|&m| {
                let miss = &misses[m];
                self.get_or_compute_inner(miss.asked.id, None, kind, || compute(miss.first))
                    .map(|r| (m, r))
            })
            .collect::<Result<Vec<_>, E>>()?;
        for (m, (v, source)) in waited {
            for &i in &misses[m].circuits {
                out[i] = Some((v.clone(), source));
            }
        }
        Ok(())
    }

    fn hold(&self, key: &str, owner: &str) -> HeldLease<'_> {
        if let Ok(mut held) = self.keeper.held.lock() {
            held.insert(key.to_string(), owner.to_string());
        }
        HeldLease {
            cache: self,
            key: key.to_string(),
            owner: owner.to_string(),
            released: AtomicBool::new(false),
        }
    }

    /// One lookup: a batch of one.
    fn lookup<V: CacheValue>(&self, asked: &Asked<'_>) -> Lookup<V> {
        self.lookup_batch(&[asked]).pop().unwrap_or(Lookup::Absent)
    }

    /// The lookup engine under every read of a result: one store read for all asked keys, each
    /// value then checked by [`Cache::lookup_in`]. A failed read is counted once and rejects all.
    fn lookup_batch<V: CacheValue>(&self, asked: &[&Asked<'_>]) -> Vec<Lookup<V>> {
        let stores: Vec<String> = asked.iter().map(|a| a.key.store.clone()).collect();
        let fetched = match stores.as_slice() {
            [] => return Vec::new(),
            [one] => self.store.get(one).map(|v| vec![v]),
            many => self.store.get_many(many),
        };
        match fetched {
            Ok(values) if values.len() == asked.len() => asked
                .iter()
                .zip(values)
                .map(|(a, value)| self.lookup_in(value, &a.key, a.id, &a.proof))
                .collect(),
            Ok(_) => asked.iter().map(|_| Lookup::Absent).collect(),
            Err(e) => {
                self.degrade(Event::StoreError, &e);
                asked.iter().map(|_| Lookup::Rejected).collect()
            }
        }
    }

    fn within_tolerance(&self, a: &id::Precision, b: &id::Precision) -> bool {
        a.answer_error(b) <= self.options.tolerance
    }

    /// Checks a fetched value: intact, for this key, for a proven-equal graph, within the
    /// tolerance of the asked circuit, decodable. `proof` is `proof_of(asked)`, encoded once by
    /// the caller (a waiter looks up many times).
    fn lookup_in<V: CacheValue>(
        &self,
        fetched: Option<Vec<u8>>,
        key: &Key,
        asked: &CircuitId,
        proof: &[u8],
    ) -> Lookup<V> {
        let Some(bytes) = fetched else {
            return Lookup::Absent;
        };
        let opened = match self.options.sealer.open(&bytes, &key.text) {
            Ok(opened) => opened,
            Err(Refused::Corrupt) => {
                self.degrade(Event::Corrupt, &"a cached value failed its checksum");
                return Lookup::Rejected;
            }
            Err(Refused::OtherKey) => {
                self.count(Event::CollisionRejected);
                return Lookup::Rejected;
            }
        };
        let Some((stored_graph, stored_precision)) = decode_proof(opened.proof) else {
            self.degrade(Event::Corrupt, &"a cached proof does not decode");
            return Lookup::Rejected;
        };
        if Some(stored_graph) != proof_graph(proof) {
            let Some(stored) = ReducedGraph::from_bytes(stored_graph) else {
                self.degrade(Event::Corrupt, &"a cached proof graph does not decode");
                return Lookup::Rejected;
            };
            if proven_equal(&stored, &asked.graph) != Some(true) {
                self.count(Event::CollisionRejected);
                return Lookup::Rejected;
            }
        }
        if !self.within_tolerance(&stored_precision, &asked.precision) {
            self.count(Event::ToleranceRejected);
            return Lookup::Rejected;
        }
        match V::decode(opened.value) {
            Some(v) => Lookup::Found(v),
            None => {
                self.degrade(Event::Corrupt, &"a cached value does not decode");
                Lookup::Rejected
            }
        }
    }

    /// Writes the result (and a memo computed here) and releases the lease, in one store write.
    fn save<V: CacheValue>(
        &self,
        key: &Key,
        proof: &[u8],
        value: &V,
        memo: Option<Entry>,
        lease: Option<&HeldLease<'_>>,
    ) {
        let mut entries = vec![(
            key.store.clone(),
            self.options.sealer.seal(&key.text, proof, &value.encode()),
        )];
        entries.extend(memo);
        let written = match lease {
            Some(lease) => {
                let result = self.store.put_many_and_release(
                    &entries,
                    std::slice::from_ref(&lease.key),
                    &lease.owner,
                );
                if result.is_ok() {
                    lease.released.store(true, Ordering::Release);
                }
                result
            }
            None => self.store.put_many(&entries),
        };
        if let Err(e) = written {
            self.degrade(Event::StoreError, &e);
        }
    }

    fn write_memo(&self, memo: Option<Entry>) {
        if let Some((key, value)) = memo {
            if let Err(e) = self.store.put(&key, &value) {
                self.degrade(Event::StoreError, &e);
            }
        }
    }

    /// Adds this process's counts (since the last flush) to the store's persistent counters.
    pub fn flush(&self) {
        let deltas: Vec<(&str, u64)> = Event::ALL
            .iter()
            .zip(self.counts.iter().zip(&self.flushed))
            .map(|(event, (count, flushed))| {
                let now = count.load(Ordering::Relaxed);
                (
                    event.name(),
                    now.saturating_sub(flushed.swap(now, Ordering::Relaxed)),
                )
            })
            .collect();
        if let Err(e) = self.store.add_counters(&deltas) {
            // Take the deltas back so a later flush can try again.
            for (flushed, (_, delta)) in self.flushed.iter().zip(&deltas) {
                flushed.fetch_sub(*delta, Ordering::Relaxed);
            }
            self.degrade(Event::StoreError, &e);
        }
    }

    /// Statistics over every process that used the store (flushes this one's first).
    pub fn stats(&self) -> Result<CacheStats, StoreError> {
        self.flush();
        let mut store = self.store.stats(RESULT_PREFIX)?;
        let memo = self.store.stats(MEMO_PREFIX)?;
        for event in Event::ALL {
            store.counters.entry(event.name().to_string()).or_insert(0);
        }
        Ok(CacheStats {
            store,
            recipe: RECIPE,
            memo_entries: memo.entries,
        })
    }

    /// Removes every cached result and memo, and the counters; returns how many results went.
    pub fn clear(&self) -> Result<u64, StoreError> {
        for (count, flushed) in self.counts.iter().zip(&self.flushed) {
            flushed.store(count.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let results = self.store.clear(RESULT_PREFIX)?;
        self.store.clear(MEMO_PREFIX)?;
        Ok(results)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests;
