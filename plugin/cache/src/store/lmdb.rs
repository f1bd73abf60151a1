//! The embedded store: LMDB through heed. Several processes on one host may share a directory
//! (LMDB's lock file serialises writers across processes; readers never block).
//!
//! Layout, four databases in one environment:
//! - `values.v2`: key -> value bytes
//! - `seqs.v2`: key -> its use sequence (u64 BE)
//! - `order.v2`: use sequence (u64 BE) -> key, oldest first: the eviction queue of cache entries
//! - `data_order.v2`: the same for data entries (circuits, batches, plans, outputs, job records)
//! - `leases`: key -> expiry ms (u64 LE) ++ pid (u32 LE) ++ owner
//! - `meta`: `seq`, `bytes` and `counter:NAME` -> u64 LE
//!
//! Size bound: the map size is the bound. Recomputable entries (cache results and memos,
//! [`super::keys::EVICTABLE`]) are evicted first; data (circuits, plans, jobs) is reclaimed,
//! least recently used first, only when evicting every cache entry would not make room, so a full
//! store never stays full (a reclaimed plan is made again by re-running its workflow's `cut`).
//! Puts evict the least recently used evictable entries once the values
//! take more than half of it (LMDB needs head room for its B-tree, overflow pages and the pages
//! freed by readers still open). Values read since the last write move to the back of the queue at
//! the next write, so eviction approximates least-recently-used without a write per read.
//! A put that still finds the map full evicts half of what is left and tries once more.
//!
//! Damage: LMDB trusts its file, and a damaged page makes the reading process crash (SEGV, BUS,
//! an abort) rather than fail. So before a process first uses an existing file, a verifier
//! ([`set_verifier`]; the binary's is [`verify_in_child`]) reads every page in a child process;
//! a file that crashes it, or that LMDB itself reports as corrupt, is moved aside
//! (`data.mdb.damaged-<ms>`) and a fresh store takes its place: the cache is recomputable, and
//! the plugin's data is re-made by re-running its steps. [`remove_files`] clears a store without
//! opening it.

use super::{now_ms, Store, StoreError, StoreStats};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RwTxn};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Db = Database<'static, Bytes, Bytes>;

/// The environment's databases, in the order [`Shared`] lists them.
const DATABASES: [&str; 6] = [
    "values.v2",
    "seqs.v2",
    "order.v2",
    "data_order.v2",
    "leases",
    "meta.v2",
];

struct Shared {
    env: &'static Env,
    values: Db,
    seqs: Db,
    order: Db,
    data_order: Db,
    leases: Db,
    meta: Db,
    map_size: u64,
}

/// LMDB allows one environment per path per process, so environments are opened once and shared
/// by every [`LmdbStore`] on that path (they live as long as the process).
fn registry() -> &'static Mutex<HashMap<PathBuf, &'static Shared>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, &'static Shared>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

impl std::fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub struct LmdbStore {
    shared: &'static Shared,
    path: PathBuf,
    /// Keys read since the last write, re-queued as recently used by the next write.
    touched: Mutex<Vec<Vec<u8>>>,
}

const SEQ: &[u8] = b"seq";
const BYTES: &[u8] = b"bytes";
const COUNTER_PREFIX: &str = "counter:";
/// Per-entry bookkeeping charged on top of key and value (B-tree node, order entry).
const ENTRY_OVERHEAD: u64 = 64;

fn charge(key: &[u8], value_len: usize) -> u64 {
    key.len() as u64 * 2 + value_len as u64 + ENTRY_OVERHEAD
}

/// Keys under `prefix` (LMDB refuses an empty key as a range start, so "" means all keys).
fn keys_under(db: &Db, txn: &heed::RoTxn<'_>, prefix: &[u8]) -> Result<Vec<Vec<u8>>, heed::Error> {
    let mut keys = Vec::new();
    if prefix.is_empty() {
        for item in db.iter(txn)? {
            keys.push(item?.0.to_vec());
        }
    } else {
        for item in db.prefix_iter(txn, prefix)? {
            keys.push(item?.0.to_vec());
        }
    }
    Ok(keys)
}

fn read_u64(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| b.get(..8))
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// What a verification of an existing store found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Sound,
    /// Damaged: the reason (a signal, LMDB's own error).
    Damaged(String),
    /// Could not be checked (no child process, a time-out): used as it is.
    Unchecked(String),
}

type Verifier = fn(&Path) -> Verdict;
static VERIFIER: OnceLock<Verifier> = OnceLock::new();

/// Installs the check every process runs once per store directory before opening it.
pub fn set_verifier(verifier: Verifier) {
    let _ = VERIFIER.set(verifier);
}

/// Exit code of the verifying child for a store LMDB reports as corrupt.
pub const VERIFY_EXIT_DAMAGED: i32 = 3;

/// Reads every entry of every database of the store in `dir` (every page is touched). Runs in
/// the verifying child: on a damaged file it may crash, which is the point.
pub fn verify_here(dir: &Path) -> Result<(), String> {
    let mut options = EnvOpenOptions::new();
    options.max_dbs(8).max_readers(16);
    // SAFETY: a fresh process opens the environment once, read-only.
    let env = unsafe {
        options.flags(EnvFlags::READ_ONLY);
        options.open(dir)
    }
    .map_err(|e| e.to_string())?;
    let names = DATABASES;
    let opened = env
        .open_databases_and_commit(
            env.read_txn().map_err(|e| e.to_string())?,
            |opener, rtxn| -> Result<_, heed::Error> {
                let dbs = names.map(|name| opener.open_database::<Bytes, Bytes>(rtxn, Some(name)));
                let [a, b, c, d, e, f] = dbs;
                Ok(CommitOrAbort::<_, ()>::Commit([a?, b?, c?, d?, e?, f?]))
            },
        )
        .map_err(|e| e.to_string())?;
    let CommitOrAbort::Commit(dbs) = opened else {
        return Err("opening the databases was aborted".into());
    };
    let txn = env.read_txn().map_err(|e| e.to_string())?;
    for db in dbs.into_iter().flatten() {
        let mut checksum = 0u64;
        for item in db.iter(&txn).map_err(|e| e.to_string())? {
            let (k, v) = item.map_err(|e| e.to_string())?;
            // Touch every byte, so every overflow page is read.
            checksum = checksum.wrapping_add(k.iter().chain(v).map(|&b| b as u64).sum::<u64>());
        }
        std::hint::black_box(checksum);
    }
    Ok(())
}

/// The binary's verifier: runs `<this executable> __verify-lmdb DIR` and reads how it ended.
pub fn verify_in_child(dir: &Path) -> Verdict {
    use std::os::unix::process::ExitStatusExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Verdict::Unchecked(format!("no executable to verify with: {e}")),
    };
    let child = std::process::Command::new(exe)
        .arg("__verify-lmdb")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Verdict::Unchecked(format!("cannot start the verifier: {e}")),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
                }
                return match (status.code(), status.signal()) {
                    (Some(0), _) => Verdict::Sound,
                    (Some(VERIFY_EXIT_DAMAGED), _) => Verdict::Damaged(stderr.trim().to_string()),
                    (_, Some(signal)) => {
                        Verdict::Damaged(format!("reading it crashed a process (signal {signal})"))
                    }
                    (code, _) => Verdict::Unchecked(format!(
                        "the verifier exited with {code:?}: {}",
                        stderr.trim()
                    )),
                };
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Verdict::Unchecked("the verifier took more than 120 s".into());
            }
            Err(e) => return Verdict::Unchecked(format!("cannot wait for the verifier: {e}")),
        }
    }
}

/// Deletes the store's files without opening them (a damaged file cannot crash this).
pub fn remove_files(dir: &Path) -> Result<bool, StoreError> {
    let mut removed = false;
    for name in ["data.mdb", "lock.mdb"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Lmdb {
                    path: dir.to_path_buf(),
                    message: format!("cannot remove {name}: {e}"),
                })
            }
        }
    }
    Ok(removed)
}

/// Moves a damaged store's files aside, so a fresh one can be made in their place.
fn quarantine(dir: &Path, reason: &str) -> Result<PathBuf, StoreError> {
    let aside = dir.join(format!("data.mdb.damaged-{}", now_ms()));
    let io = |e: std::io::Error| StoreError::Lmdb {
        path: dir.to_path_buf(),
        message: format!("cannot move the damaged store aside: {e}"),
    };
    match std::fs::rename(dir.join("data.mdb"), &aside) {
        Ok(()) => {}
        // Another process moved it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let _ = std::fs::remove_file(dir.join("lock.mdb"));
    tracing::warn!(path = %dir.display(), %reason, moved_to = %aside.display(),
        "the LMDB store was damaged: moved aside, starting a fresh one");
    Ok(aside)
}

impl LmdbStore {
    /// Opens (creating) the store in `dir` with a map of `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<LmdbStore, StoreError> {
        let lmdb_err = |message: String| StoreError::Lmdb {
            path: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| lmdb_err(format!("cannot create the directory: {e}")))?;
        let canonical = dir
            .canonicalize()
            .map_err(|e| lmdb_err(format!("cannot resolve the directory: {e}")))?;
        let mut registry = registry()
            .lock()
            .map_err(|_| lmdb_err("the store registry was poisoned by a panic".into()))?;
        let shared = match registry.get(&canonical) {
            Some(shared) => *shared,
            None => {
                if let (Some(verify), true) = (VERIFIER.get(), canonical.join("data.mdb").exists())
                {
                    match verify(&canonical) {
                        Verdict::Sound => {}
                        Verdict::Damaged(reason) => {
                            quarantine(&canonical, &reason)?;
                        }
                        Verdict::Unchecked(reason) => {
                            tracing::debug!(path = %canonical.display(), %reason, "store not verified");
                        }
                    }
                }
                let shared: &'static Shared =
                    Box::leak(Box::new(Self::open_env(&canonical, max_bytes)?));
                registry.insert(canonical.clone(), shared);
                shared
            }
        };
        Ok(LmdbStore {
            shared,
            path: canonical,
            touched: Mutex::new(Vec::new()),
        })
    }

    fn open_env(dir: &Path, max_bytes: u64) -> Result<Shared, StoreError> {
        let lmdb_err = |e: heed::Error| StoreError::Lmdb {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let page = 4096u64;
        let map_size = max_bytes.max(1 << 20).div_ceil(page) * page;
        let mut options = EnvOpenOptions::new();
        options
            .map_size(map_size as usize)
            .max_dbs(8)
            .max_readers(512);
        // SAFETY: heed requires the caller to promise that the environment is not opened twice in
        // this process (the registry above guarantees it) and that the files are not modified by
        // anything but LMDB. NO_META_SYNC keeps integrity; a system crash may lose the last commit.
        let env = unsafe {
            options.flags(EnvFlags::NO_META_SYNC);
            options.open(dir)
        }
        .map_err(lmdb_err)?;
        let env: &'static Env = Box::leak(Box::new(env));
        let wtxn = env.write_txn().map_err(lmdb_err)?;
        let created = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, heed::Error> {
                let [values, seqs, order, data_order, leases, meta] =
                    DATABASES.map(|name| opener.create_database::<Bytes, Bytes>(wtxn, Some(name)));
                Ok(CommitOrAbort::<_, ()>::Commit([
                    values?,
                    seqs?,
                    order?,
                    data_order?,
                    leases?,
                    meta?,
                ]))
            })
            .map_err(lmdb_err)?;
        let CommitOrAbort::Commit([values, seqs, order, data_order, leases, meta]) = created else {
            return Err(StoreError::Lmdb {
                path: dir.to_path_buf(),
                message: "creating the databases was aborted".into(),
            });
        };
        // A map made larger by another process wins: LMDB adopts the file's size when it is larger.
        let map_size = map_size.max(env.info().map_size as u64);
        Ok(Shared {
            env,
            values,
            seqs,
            order,
            data_order,
            leases,
            meta,
            map_size,
        })
    }

    /// Reads keys in one read transaction; found keys are re-queued as recently used at the
    /// next write.
    fn read<'k>(
        &self,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let txn = self.shared.env.read_txn().map_err(|e| self.err(e))?;
        let mut found = Vec::new();
        let mut out = Vec::new();
        for key in keys {
            let value = self
                .shared
                .values
                .get(&txn, key.as_bytes())
                .map_err(|e| self.err(e))?
                .map(<[u8]>::to_vec);
            if value.is_some() {
                found.push(key.as_bytes().to_vec());
            }
            out.push(value);
        }
        drop(txn);
        if let Ok(mut touched) = self.touched.lock() {
            let room = 4096usize.saturating_sub(touched.len());
            touched.extend(found.into_iter().take(room));
        }
        Ok(out)
    }

    fn err(&self, e: heed::Error) -> StoreError {
        match e {
            heed::Error::Mdb(MdbError::MapFull) => StoreError::Full {
                map_size: self.shared.map_size,
            },
            other => StoreError::Lmdb {
                path: self.path.clone(),
                message: other.to_string(),
            },
        }
    }

    /// Runs `f` in a write transaction and commits; on a full map, evicts and tries once more.
    fn write<T>(
        &self,
        f: impl Fn(&Self, &mut RwTxn<'static>) -> Result<T, heed::Error>,
    ) -> Result<T, StoreError> {
        match self.try_write(&f) {
            Err(heed::Error::Mdb(MdbError::MapFull)) => {
                tracing::warn!(path = %self.path.display(), "LMDB map full: evicting half of the entries");
                self.try_write(&|s: &Self, txn: &mut RwTxn<'static>| {
                    let bytes = read_u64(s.shared.meta.get(txn, BYTES)?);
                    s.evict(txn, bytes / 2)
                })
                .map_err(|e| self.err(e))?;
                self.try_write(&f).map_err(|e| self.err(e))
            }
            other => other.map_err(|e| self.err(e)),
        }
    }

    fn try_write<T>(
        &self,
        f: &impl Fn(&Self, &mut RwTxn<'static>) -> Result<T, heed::Error>,
    ) -> Result<T, heed::Error> {
        let mut txn = self.shared.env.write_txn()?;
        self.requeue_touched(&mut txn)?;
        let out = f(self, &mut txn)?;
        txn.commit()?;
        Ok(out)
    }

    fn next_seq(&self, txn: &mut RwTxn<'static>) -> Result<u64, heed::Error> {
        let seq = read_u64(self.shared.meta.get(txn, SEQ)?) + 1;
        self.shared.meta.put(txn, SEQ, &seq.to_le_bytes())?;
        Ok(seq)
    }

    fn add_meta(
        &self,
        txn: &mut RwTxn<'static>,
        name: &[u8],
        delta: i64,
    ) -> Result<u64, heed::Error> {
        let value = read_u64(self.shared.meta.get(txn, name)?).saturating_add_signed(delta);
        self.shared.meta.put(txn, name, &value.to_le_bytes())?;
        Ok(value)
    }

    fn requeue_touched(&self, txn: &mut RwTxn<'static>) -> Result<(), heed::Error> {
        let touched = match self.touched.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return Ok(()),
        };
        for key in touched {
            if let Some(old_seq) = self.shared.seqs.get(txn, &key)? {
                let old_seq = old_seq.to_vec();
                self.queue_of(&key).delete(txn, &old_seq)?;
                self.enqueue(txn, &key)?;
            }
        }
        Ok(())
    }

    /// The eviction queue a key belongs to: cache entries', or data's (reclaimed last).
    fn queue_of(&self, key: &[u8]) -> &Db {
        if super::evictable(key) {
            &self.shared.order
        } else {
            &self.shared.data_order
        }
    }

    /// Gives `key` the next use sequence (the back of its eviction queue).
    fn enqueue(&self, txn: &mut RwTxn<'static>, key: &[u8]) -> Result<(), heed::Error> {
        let seq = self.next_seq(txn)?.to_be_bytes();
        self.shared.seqs.put(txn, key, &seq)?;
        self.queue_of(key).put(txn, &seq, key)
    }

    /// Removes `key`'s value and bookkeeping; true when there was one.
    fn remove_entry(&self, txn: &mut RwTxn<'static>, key: &[u8]) -> Result<bool, heed::Error> {
        let Some(old_len) = self.shared.values.get(txn, key)?.map(<[u8]>::len) else {
            return Ok(false);
        };
        if let Some(seq) = self.shared.seqs.get(txn, key)? {
            let seq = seq.to_vec();
            self.queue_of(key).delete(txn, &seq)?;
        }
        self.shared.seqs.delete(txn, key)?;
        self.shared.values.delete(txn, key)?;
        self.add_meta(txn, BYTES, -(charge(key, old_len) as i64))?;
        Ok(true)
    }

    /// Removes the least recently used entries until at least `target` bytes are freed: cache
    /// entries first, then data.
    fn evict(&self, txn: &mut RwTxn<'static>, target: u64) -> Result<(), heed::Error> {
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for queue in [&self.shared.order, &self.shared.data_order] {
            for item in queue.iter(txn)? {
                if freed >= target {
                    break;
                }
                let (_, key) = item?;
                let len = self.shared.values.get(txn, key)?.map_or(0, <[u8]>::len);
                freed += charge(key, len);
                victims.push(key.to_vec());
            }
        }
        for key in &victims {
            self.remove_entry(txn, key)?;
        }
        self.add_meta(txn, b"counter:evicted", victims.len() as i64)?;
        Ok(())
    }

    fn put_in(&self, txn: &mut RwTxn<'static>, key: &str, value: &[u8]) -> Result<(), heed::Error> {
        let key = key.as_bytes();
        self.remove_entry(txn, key)?;
        self.shared.values.put(txn, key, value)?;
        self.enqueue(txn, key)?;
        let bytes = self.add_meta(txn, BYTES, charge(key, value.len()) as i64)?;
        let high = self.shared.map_size / 2;
        if bytes > high {
            self.evict(txn, bytes - high * 3 / 4)?;
        }
        Ok(())
    }

    fn lease_in(
        &self,
        txn: &mut RwTxn<'static>,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, heed::Error> {
        if let Some(stored) = self.shared.leases.get(txn, key.as_bytes())? {
            if self.lease_live(stored) && lease_owner(stored) != owner.as_bytes() {
                return Ok(false);
            }
        }
        self.shared
            .leases
            .put(txn, key.as_bytes(), &lease_record(owner, ttl))?;
        Ok(true)
    }

    fn release_in(
        &self,
        txn: &mut RwTxn<'static>,
        key: &str,
        owner: &str,
    ) -> Result<(), heed::Error> {
        let held = match self.shared.leases.get(txn, key.as_bytes())? {
            Some(stored) => lease_owner(stored) == owner.as_bytes(),
            None => false,
        };
        if held {
            self.shared.leases.delete(txn, key.as_bytes())?;
        }
        Ok(())
    }

    fn lease_live(&self, stored: &[u8]) -> bool {
        if stored.len() < 12 {
            return false;
        }
        let expiry = read_u64(Some(stored));
        let pid = u32::from_le_bytes([stored[8], stored[9], stored[10], stored[11]]);
        expiry > now_ms() && process_alive(pid)
    }
}

/// A lease whose holder process is gone is dead at once (LMDB is local, so the pid is meaningful).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn lease_record(owner: &str, ttl: Duration) -> Vec<u8> {
    let mut record = (now_ms() + ttl.as_millis() as u64).to_le_bytes().to_vec();
    record.extend_from_slice(&std::process::id().to_le_bytes());
    record.extend_from_slice(owner.as_bytes());
    record
}

fn lease_owner(stored: &[u8]) -> &[u8] {
    stored.get(12..).unwrap_or(&[])
}

impl Store for LmdbStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(std::iter::once(key))?.pop().flatten())
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.read(keys.iter().map(String::as_str))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(|s, txn| s.put_in(txn, key, value))
    }

    fn put_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.put_many_and_release(entries, &[], "")
    }

    fn put_many_and_release(
        &self,
        entries: &[(String, Vec<u8>)],
        lease_keys: &[String],
        owner: &str,
    ) -> Result<(), StoreError> {
        self.write(|s, txn| {
            for (key, value) in entries {
                s.put_in(txn, key, value)?;
            }
            for key in lease_keys {
                s.release_in(txn, key, owner)?;
            }
            Ok(())
        })
    }

    fn try_lease_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.write(|s, txn| {
            keys.iter()
                .map(|k| s.lease_in(txn, k, owner, ttl))
                .collect()
        })
    }

    fn put_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        self.write(|s, txn| {
            if s.shared.values.get(txn, key.as_bytes())?.is_some() {
                return Ok(false);
            }
            s.put_in(txn, key, value)?;
            Ok(true)
        })
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.write(|s, txn| s.remove_entry(txn, key.as_bytes()).map(|_| ()))
    }

    fn try_lease(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.write(|s, txn| s.lease_in(txn, key, owner, ttl))
    }

    fn renew_lease(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.write(|s, txn| {
            let held = match s.shared.leases.get(txn, key.as_bytes())? {
                Some(stored) => lease_owner(stored) == owner.as_bytes(),
                None => false,
            };
            if held {
                s.shared
                    .leases
                    .put(txn, key.as_bytes(), &lease_record(owner, ttl))?;
            }
            Ok(held)
        })
    }

    fn release_lease(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.write(|s, txn| s.release_in(txn, key, owner))
    }

    fn lease_held(&self, key: &str) -> Result<bool, StoreError> {
        let txn = self.shared.env.read_txn().map_err(|e| self.err(e))?;
        let stored = self
            .shared
            .leases
            .get(&txn, key.as_bytes())
            .map_err(|e| self.err(e))?;
        Ok(stored.is_some_and(|s| self.lease_live(s)))
    }

    fn add_counters(&self, deltas: &[(&str, u64)]) -> Result<(), StoreError> {
        if deltas.iter().all(|(_, d)| *d == 0) {
            return Ok(());
        }
        self.write(|s, txn| {
            for (name, delta) in deltas {
                let key = format!("{COUNTER_PREFIX}{name}");
                s.add_meta(txn, key.as_bytes(), *delta as i64)?;
            }
            Ok(())
        })
    }

    fn stats(&self, prefix: &str) -> Result<StoreStats, StoreError> {
        let txn = self.shared.env.read_txn().map_err(|e| self.err(e))?;
        let mut stats = StoreStats {
            location: self.location(),
            max_bytes: Some(self.shared.map_size / 2),
            ..Default::default()
        };
        let keys =
            keys_under(&self.shared.values, &txn, prefix.as_bytes()).map_err(|e| self.err(e))?;
        for key in keys {
            let value = self
                .shared
                .values
                .get(&txn, &key)
                .map_err(|e| self.err(e))?;
            stats.entries += 1;
            stats.bytes += value.map_or(0, <[u8]>::len) as u64;
        }
        for item in self
            .shared
            .meta
            .prefix_iter(&txn, COUNTER_PREFIX.as_bytes())
            .map_err(|e| self.err(e))?
        {
            let (name, value) = item.map_err(|e| self.err(e))?;
            let name = String::from_utf8_lossy(&name[COUNTER_PREFIX.len()..]).into_owned();
            stats.counters.insert(name, read_u64(Some(value)));
        }
        Ok(stats)
    }

    fn clear(&self, prefix: &str) -> Result<u64, StoreError> {
        self.write(|s, txn| {
            let keys = keys_under(&s.shared.values, txn, prefix.as_bytes())?;
            for key in &keys {
                s.remove_entry(txn, key)?;
            }
            let leases = keys_under(&s.shared.leases, txn, prefix.as_bytes())?;
            for key in &leases {
                s.shared.leases.delete(txn, key)?;
            }
            let counters: Vec<Vec<u8>> = s
                .shared
                .meta
                .prefix_iter(txn, COUNTER_PREFIX.as_bytes())?
                .map(|item| item.map(|(k, _)| k.to_vec()))
                .collect::<Result<_, _>>()?;
            for key in &counters {
                s.shared.meta.delete(txn, key)?;
            }
            Ok(keys.len() as u64)
        })
    }

    fn location(&self) -> String {
        format!("lmdb://{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(max_bytes: u64) -> (LmdbStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "quargo-lmdb-test-{}-{}",
            std::process::id(),
            blake3::hash(format!("{:?}", std::time::Instant::now()).as_bytes()).to_hex()
        ));
        (LmdbStore::open(&dir, max_bytes).expect("open"), dir)
    }

    #[test]
    fn put_get_replace_delete() {
        let (store, dir) = temp_store(8 << 20);
        assert_eq!(store.get("a").expect("get"), None);
        store.put("a", b"one").expect("put");
        assert_eq!(store.get("a").expect("get").as_deref(), Some(&b"one"[..]));
        store.put("a", b"two!").expect("put");
        assert_eq!(store.get("a").expect("get").as_deref(), Some(&b"two!"[..]));
        assert!(!store.put_if_absent("a", b"three").expect("put"));
        assert!(store.put_if_absent("b", b"three").expect("put"));
        let stats = store.stats("").expect("stats");
        assert_eq!((stats.entries, stats.bytes), (2, 9));
        store.delete("a").expect("delete");
        assert_eq!(store.get("a").expect("get"), None);
        assert_eq!(store.clear("").expect("clear"), 1);
        assert_eq!(store.stats("").expect("stats").entries, 0);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn leases_are_exclusive_until_released_or_expired() {
        let (store, dir) = temp_store(8 << 20);
        let ttl = Duration::from_millis(300);
        assert!(store.try_lease("k", "alice", ttl).expect("lease"));
        assert!(!store.try_lease("k", "bob", ttl).expect("lease"));
        assert!(store.lease_held("k").expect("held"));
        assert!(store.renew_lease("k", "alice", ttl).expect("renew"));
        assert!(!store.renew_lease("k", "bob", ttl).expect("renew"));
        store.release_lease("k", "bob").expect("release");
        assert!(store.lease_held("k").expect("held"));
        store.release_lease("k", "alice").expect("release");
        assert!(!store.lease_held("k").expect("held"));
        assert!(store.try_lease("k", "bob", ttl).expect("lease"));
        std::thread::sleep(Duration::from_millis(400));
        assert!(!store.lease_held("k").expect("held"));
        assert!(store.try_lease("k", "carol", ttl).expect("lease"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_dead_holders_lease_is_not_live() {
        let (store, dir) = temp_store(8 << 20);
        // A pid that cannot exist (above Linux's pid_max limit).
        let mut record = (now_ms() + 60_000).to_le_bytes().to_vec();
        record.extend_from_slice(&(u32::MAX - 1).to_le_bytes());
        record.extend_from_slice(b"ghost");
        store
            .write(|s, txn| s.shared.leases.put(txn, b"k", &record))
            .expect("write");
        assert!(!store.lease_held("k").expect("held"));
        assert!(store
            .try_lease("k", "me", Duration::from_secs(5))
            .expect("lease"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_size_bound_evicts_least_recently_used_first() {
        let (store, dir) = temp_store(1 << 20);
        let value = vec![7u8; 20_000];
        store.put("r/first", &value).expect("put");
        store.put("r/second", &value).expect("put");
        for i in 0..60 {
            // Reading "r/first" keeps it recent; "r/second" is never read and ages out.
            assert!(
                store.get("r/first").expect("get").is_some(),
                "first evicted at {i}"
            );
            store.put(&format!("r/filler{i}"), &value).expect("put");
        }
        let stats = store.stats("").expect("stats");
        assert!(stats.bytes <= (1 << 20) / 2, "bytes {}", stats.bytes);
        assert!(stats.counters.get("evicted").copied().unwrap_or(0) > 0);
        assert_eq!(store.get("r/second").expect("get"), None);
        assert!(store.get("r/filler59").expect("get").is_some());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn cache_entries_go_before_data() {
        let (store, dir) = temp_store(1 << 20);
        let value = vec![3u8; 20_000];
        store.put("p/plan", &value).expect("put");
        for i in 0..60 {
            store.put(&format!("r/{i}"), &value).expect("put");
        }
        assert!(store.get("p/plan").expect("get").is_some());
        assert_eq!(store.get("r/0").expect("get"), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_store_full_of_data_reclaims_the_oldest_and_keeps_accepting_writes() {
        // The amplification attack: data only (never-cached circuits and plans), far more than
        // the store holds. Every write succeeds; the newest data is there, the oldest reclaimed.
        let (store, dir) = temp_store(1 << 20);
        let value = vec![5u8; 30_000];
        for i in 0..200 {
            store
                .put(&format!("c/{i}"), &value)
                .expect("every write succeeds");
        }
        let stats = store.stats("").expect("stats");
        assert!(stats.bytes <= (1 << 20) / 2, "bytes {}", stats.bytes);
        assert!(store.get("c/199").expect("get").is_some());
        assert_eq!(store.get("c/0").expect("get"), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn counters_add_up() {
        let (store, dir) = temp_store(8 << 20);
        store
            .add_counters(&[("hits", 2), ("misses", 1)])
            .expect("add");
        store.add_counters(&[("hits", 3)]).expect("add");
        let stats = store.stats("").expect("stats");
        assert_eq!(stats.counters.get("hits"), Some(&5));
        assert_eq!(stats.counters.get("misses"), Some(&1));
        std::fs::remove_dir_all(dir).ok();
    }
}
