//! Memory admission: every large buffer (a state, a probability vector, a reconstructed
//! distribution) is reserved against one process-wide budget before it is allocated, so
//! concurrent jobs cannot together exceed what the container may use.
//!
//! The budget is the smallest of the cgroup limit (v2 `memory.max`, else v1
//! `memory.limit_in_bytes`) and the host's `MemTotal`, less an eighth for everything else the
//! process holds; `set_capacity` overrides it (`--max-memory`). A reservation is released when
//! dropped, so it lives exactly as long as the buffer it stands for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The process-wide budget.
#[derive(Debug)]
pub struct Budget {
    capacity: AtomicU64,
    reserved: AtomicU64,
}

static BUDGET: OnceLock<Budget> = OnceLock::new();

/// The process's budget (detected on first use).
pub fn budget() -> &'static Budget {
    BUDGET.get_or_init(|| Budget {
        capacity: AtomicU64::new(detected_capacity()),
        reserved: AtomicU64::new(0),
    })
}

/// Replaces the detected capacity (an explicit `--max-memory`).
pub fn set_capacity(bytes: u64) {
    budget().capacity.store(bytes, Ordering::Release);
}

/// Bytes held by one admitted buffer until dropped.
pub struct Reservation {
    budget: &'static Budget,
    bytes: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} bytes)", self.bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.reserved.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A reservation that did not fit: what was asked and what was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub requested: u128,
    pub available: u128,
}

impl Budget {
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Acquire)
    }

    /// Bytes not reserved by anyone now.
    pub fn available(&self) -> u64 {
        self.capacity()
            .saturating_sub(self.reserved.load(Ordering::Acquire))
    }

    /// Reserves `bytes`, or says how much is left.
    pub fn reserve(&'static self, bytes: u128) -> Result<Reservation, Refused> {
        let refused = |available: u64| Refused {
            requested: bytes,
            available: available as u128,
        };
        let Ok(want) = u64::try_from(bytes) else {
            return Err(refused(self.available()));
        };
        let mut current = self.reserved.load(Ordering::Acquire);
        loop {
            let capacity = self.capacity();
            let total = current.saturating_add(want);
            if total > capacity {
                return Err(refused(capacity.saturating_sub(current)));
            }
            match self.reserved.compare_exchange_weak(
                current,
                total,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: self,
                        bytes: want,
                    })
                }
                Err(seen) => current = seen,
            }
        }
    }
}

fn detected_capacity() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let limit = [
        read("/sys/fs/cgroup/memory.max").and_then(|t| cgroup_limit(&t)),
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes").and_then(|t| cgroup_limit(&t)),
        read("/proc/meminfo").and_then(|t| meminfo_total(&t)),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(8 << 30);
    limit - limit / 8
}

/// A cgroup memory limit file's value: `None` for "max" or v1's "no limit" (a huge number).
pub fn cgroup_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    // cgroup v1 writes PAGE_COUNTER_MAX (about 2^63) when there is no limit.
    (v < 1 << 60).then_some(v)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cgroup_v1_v2_and_meminfo() {
        assert_eq!(cgroup_limit("4294967296\n"), Some(4 << 30));
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(cgroup_limit("garbage"), None);
        let meminfo = "MemTotal:       24576000 kB\nMemFree:  100 kB\n";
        assert_eq!(meminfo_total(meminfo), Some(24576000 * 1024));
    }

    #[test]
    fn reservations_add_up_and_release_on_drop() {
        let b: &'static Budget = Box::leak(Box::new(Budget {
            capacity: AtomicU64::new(100),
            reserved: AtomicU64::new(0),
        }));
        let first = b.reserve(60).expect("fits");
        let refused = b.reserve(50).expect_err("60 + 50 > 100");
        assert_eq!(refused.available, 40);
        assert!(b.reserve(u128::MAX).is_err());
        drop(first);
        assert_eq!(b.available(), 100);
        assert!(b.reserve(100).is_ok());
    }
}
