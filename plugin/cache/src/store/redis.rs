//! The shared store: Redis through the `redis` crate's async client and its connection manager
//! (one multiplexed connection, reconnected on failure). TLS (`rediss://`) and AUTH
//! (`redis://user:pass@host`) come from the URL.
//!
//! The [`Store`] trait is synchronous (the science runs on rayon threads), so the store owns a
//! small Tokio runtime and every call runs there with a deadline: a dead, slow or restarting Redis
//! gives an error within `op_timeout`, never a hang. Calls are safe from any thread, including
//! threads of another Tokio runtime.
//!
//! Keys: `quargo:v:KEY` values, `quargo:l:KEY` leases (`SET NX PX`, renewed and released by
//! owner-checking scripts), `quargo:stats` a hash of counters. The size bound is Redis's own
//! (`maxmemory` with an `allkeys-lru` policy is the recommended setting for a cache).

use super::{Store, StoreError, StoreStats};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Deadline for one operation (including reconnecting).
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
    /// Lifetime of data entries (circuits, batches, plans, outputs, job records), renewed by
    /// every write: data a workflow no longer touches is reclaimed by Redis itself.
    pub data_ttl: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            op_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            data_ttl: DEFAULT_DATA_TTL,
        }
    }
}

/// Default [`RedisOptions::data_ttl`]: a week.
pub const DEFAULT_DATA_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// `SET key value`, with an expiry for data entries (cache entries live until evicted).
fn set_command(cmd: &mut redis::Cmd, key: &str, ttl: Duration) {
    if !super::evictable(key.strip_prefix(VALUE).unwrap_or(key).as_bytes()) {
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
}

/// Shows where it points (never the password) and whether its breaker is open.
impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.display_url)
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

pub struct RedisStore {
    runtime: tokio::runtime::Runtime,
    manager: ConnectionManager,
    /// The URL without credentials, for messages.
    display_url: String,
    options: RedisOptions,
    /// Circuit breaker: after a connection failure, calls fail at once until this time (ms since
    /// the epoch), so a dead Redis costs one deadline per back-off period, not one per call.
    down_until_ms: AtomicU64,
    /// Connection failures in a row (the back-off doubles with each, up to `MAX_BACKOFF`).
    failures: AtomicU32,
}

/// First and longest pause after connection failures.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

const VALUE: &str = "quargo:v:";
const LEASE: &str = "quargo:l:";
const STATS: &str = "quargo:stats";

const RENEW_SCRIPT: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE_SCRIPT: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1]) else return 0 end";

/// `redis://user:secret@host:6379/0` -> `redis://host:6379/0`.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// Parses the URL and prepares a lazy connection: nothing is contacted until the first call.
    pub fn open(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let display_url = without_credentials(url);
        let bad = |reason: String| StoreError::BadUrl {
            url: display_url.clone(),
            reason,
        };
        let client = redis::Client::open(url).map_err(|e| bad(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("quargo-redis")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the Redis client runtime: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let manager = {
            let _context = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| bad(e.to_string()))?
        };
        Ok(RedisStore {
            runtime,
            manager,
            display_url,
            options,
            down_until_ms: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        })
    }

    fn redis_err(&self, e: redis::RedisError) -> StoreError {
        StoreError::Redis {
            url: self.display_url.clone(),
            message: e.to_string(),
        }
    }

    /// Runs `op` on the store's runtime with the deadline, from any thread.
    fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let now = crate::store::now_ms();
        let down_until = self.down_until_ms.load(Ordering::Acquire);
        if now < down_until {
            return Err(StoreError::Redis {
                url: self.display_url.clone(),
                message: format!(
                    "unreachable; not asked again for {} ms after {} failures in a row",
                    down_until - now,
                    self.failures.load(Ordering::Acquire)
                ),
            });
        }
        let result = self.call_now(op);
        match &result {
            Err(StoreError::Timeout { .. }) | Err(StoreError::Unreachable(_)) => {
                let failures = self
                    .failures
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                let backoff = MIN_BACKOFF
                    .saturating_mul(1 << failures.min(8).saturating_sub(1))
                    .min(MAX_BACKOFF);
                self.down_until_ms.store(
                    crate::store::now_ms().saturating_add(backoff.as_millis() as u64),
                    Ordering::Release,
                );
            }
            _ => self.failures.store(0, Ordering::Release),
        }
        result
    }

    fn call_now<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let timeout = self.options.op_timeout;
        let fut = op(self.manager.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, fut).await;
            let _ = tx.send(result);
        });
        let timed_out = || StoreError::Timeout {
            url: self.display_url.clone(),
            timeout,
        };
        match rx.recv_timeout(timeout + Duration::from_millis(500)) {
            Ok(Ok(result)) => result.map_err(|e| {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                {
                    StoreError::Unreachable(self.redis_err(e).to_string())
                } else {
                    self.redis_err(e)
                }
            }),
            Ok(Err(_)) | Err(_) => Err(timed_out()),
        }
    }

    /// Keys matching `pattern`, by SCAN (never KEYS: it blocks the server).
    fn scan(&self, pattern: String) -> Result<Vec<String>, StoreError> {
        self.call(move |mut con| async move {
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con)
                    .await?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
    }
}

/// Escapes glob characters so a prefix matches only itself in SCAN MATCH.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{VALUE}{key}");
        self.call(
            move |mut con| async move { redis::cmd("GET").arg(key).query_async(&mut con).await },
        )
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| format!("{VALUE}{k}")).collect();
        self.call(
            move |mut con| async move { redis::cmd("MGET").arg(keys).query_async(&mut con).await },
        )
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = format!("{VALUE}{key}");
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(value);
        set_command(&mut cmd, &key, self.options.data_ttl);
        self.call(move |mut con| async move { cmd.query_async::<()>(&mut con).await })
    }

    fn put_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        // An empty pipeline is an "empty command" error in Redis.
        if entries.is_empty() {
            return Ok(());
        }
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (format!("{VALUE}{k}"), v.clone()))
            .collect();
        let ttl = self.options.data_ttl;
        self.call(move |mut con| async move {
            let mut pipe = redis::pipe();
            for (key, value) in &entries {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value);
                set_command(&mut cmd, key, ttl);
                pipe.add_command(cmd).ignore();
            }
            pipe.query_async::<()>(&mut con).await
        })
    }

    fn try_lease_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| format!("{LEASE}{k}")).collect();
        let owner = owner.to_string();
        let ms = ttl.as_millis().max(1) as u64;
        self.call(move |mut con| async move {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(&owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms);
            }
            let set: Vec<Option<String>> = pipe.query_async(&mut con).await?;
            Ok(set.into_iter().map(|s| s.is_some()).collect())
        })
    }

    fn put_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let key = format!("{VALUE}{key}");
        let value = value.to_vec();
        self.call(move |mut con| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
                .query_async(&mut con)
                .await?;
            Ok(set.is_some())
        })
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = format!("{VALUE}{key}");
        self.call(move |mut con| async move {
            redis::cmd("DEL").arg(key).query_async::<()>(&mut con).await
        })
    }

    fn try_lease(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("{LEASE}{key}");
        let owner = owner.to_string();
        let ms = ttl.as_millis().max(1) as u64;
        self.call(move |mut con| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut con)
                .await?;
            if set.is_some() {
                return Ok(true);
            }
            // Re-entrant for the same owner (a retried call after a lost reply).
            let holder: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut con).await?;
            Ok(holder.as_deref() == Some(owner.as_str()))
        })
    }

    fn renew_lease(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("{LEASE}{key}");
        let owner = owner.to_string();
        let ms = ttl.as_millis().max(1) as u64;
        self.call(move |mut con| async move {
            let renewed: i64 = redis::Script::new(RENEW_SCRIPT)
                .key(key)
                .arg(owner)
                .arg(ms)
                .invoke_async(&mut con)
                .await?;
            Ok(renewed == 1)
        })
    }

    fn release_lease(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let key = format!("{LEASE}{key}");
        let owner = owner.to_string();
        self.call(move |mut con| async move {
            redis::Script::new(RELEASE_SCRIPT)
                .key(key)
                .arg(owner)
                .invoke_async::<i64>(&mut con)
                .await
                .map(|_| ())
        })
    }

    fn lease_held(&self, key: &str) -> Result<bool, StoreError> {
        let key = format!("{LEASE}{key}");
        self.call(move |mut con| async move {
            let n: i64 = redis::cmd("EXISTS").arg(key).query_async(&mut con).await?;
            Ok(n == 1)
        })
    }

    fn add_counters(&self, deltas: &[(&str, u64)]) -> Result<(), StoreError> {
        let deltas: Vec<(String, u64)> = deltas
            .iter()
            .filter(|(_, d)| *d > 0)
            .map(|(n, d)| (n.to_string(), *d))
            .collect();
        if deltas.is_empty() {
            return Ok(());
        }
        self.call(move |mut con| async move {
            let mut pipe = redis::pipe();
            for (name, delta) in &deltas {
                pipe.cmd("HINCRBY")
                    .arg(STATS)
                    .arg(name)
                    .arg(*delta)
                    .ignore();
            }
            pipe.query_async::<()>(&mut con).await
        })
    }

    fn stats(&self, prefix: &str) -> Result<StoreStats, StoreError> {
        let keys = self.scan(format!("{VALUE}{}*", glob_escape(prefix)))?;
        let mut stats = StoreStats {
            location: self.location(),
            entries: keys.len() as u64,
            ..Default::default()
        };
        for chunk in keys.chunks(1000) {
            let chunk = chunk.to_vec();
            let lengths: Vec<u64> = self.call(move |mut con| async move {
                let mut pipe = redis::pipe();
                for key in &chunk {
                    pipe.cmd("STRLEN").arg(key);
                }
                pipe.query_async(&mut con).await
            })?;
            stats.bytes += lengths.iter().sum::<u64>();
        }
        let counters: Vec<(String, u64)> = self.call(move |mut con| async move {
            redis::cmd("HGETALL").arg(STATS).query_async(&mut con).await
        })?;
        stats.counters = counters.into_iter().collect();
        let max: Vec<String> = self
            .call(move |mut con| async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory")
                    .query_async(&mut con)
                    .await
            })
            .unwrap_or_default();
        stats.max_bytes = max.get(1).and_then(|m| m.parse().ok()).filter(|m| *m > 0);
        Ok(stats)
    }

    fn clear(&self, prefix: &str) -> Result<u64, StoreError> {
        let values = self.scan(format!("{VALUE}{}*", glob_escape(prefix)))?;
        let leases = self.scan(format!("{LEASE}{}*", glob_escape(prefix)))?;
        let count = values.len() as u64;
        let mut all = values;
        all.extend(leases);
        all.push(STATS.to_string());
        for chunk in all.chunks(1000) {
            let chunk = chunk.to_vec();
            self.call(move |mut con| async move {
                redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async::<()>(&mut con)
                    .await
            })?;
        }
        Ok(count)
    }

    fn location(&self) -> String {
        self.display_url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            without_credentials("redis://user:secret@host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(without_credentials("redis://host:1/2"), "redis://host:1/2");
    }

    #[test]
    fn an_unreachable_server_is_an_error_within_the_deadline() {
        // Port 1 on loopback: nothing listens there.
        let store = RedisStore::open(
            "redis://127.0.0.1:1/0",
            RedisOptions {
                op_timeout: Duration::from_millis(300),
                connect_timeout: Duration::from_millis(100),
                ..Default::default()
            },
        )
        .expect("open is lazy");
        let started = std::time::Instant::now();
        assert!(store.get("x").is_err());
        assert!(store.put("x", b"y").is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
