//! A small bounded in-process map for values that never go stale (they are keyed by exact
//! content): circuit IDs by canonical circuit bytes, parsed circuits by content key. The oldest
//! insertion goes first when it is full, by count or by bytes (each entry's size estimated by the
//! owner's weigher), so a few huge circuits cannot hold the process's memory. A lock-protected map
//! is enough at these sizes.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// The map, insertion order with each entry's weight, and the total weight.
struct Entries<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<(K, usize)>,
    total: usize,
}

impl<K, V> std::fmt::Debug for Recent<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent")
            .field("capacity", &self.capacity)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

pub struct Recent<K, V> {
    inner: Mutex<Entries<K, V>>,
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&K, &V) -> usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Recent<K, V> {
    /// At most `capacity` entries, counted only.
    pub fn new(capacity: usize) -> Self {
        Self::bounded(capacity, usize::MAX, |_, _| 0)
    }

    /// At most `capacity` entries and `max_bytes` by `weigh` (an entry heavier than the whole
    /// budget is not kept).
    pub fn bounded(capacity: usize, max_bytes: usize, weigh: fn(&K, &V) -> usize) -> Self {
        Recent {
            inner: Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
                total: 0,
            }),
            capacity: capacity.max(1),
            max_bytes,
            weigh,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.inner.lock().ok()?.map.get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let weight = (self.weigh)(&key, &value);
        if weight > self.max_bytes {
            return;
        }
        let entries = &mut *guard;
        if entries.map.insert(key.clone(), value).is_none() {
            entries.order.push_back((key, weight));
            entries.total += weight;
            while entries.order.len() > self.capacity || entries.total > self.max_bytes {
                let Some((old, w)) = entries.order.pop_front() else {
                    break;
                };
                entries.map.remove(&old);
                entries.total -= w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first() {
        let r = Recent::new(2);
        r.insert(1, "a");
        r.insert(2, "b");
        r.insert(3, "c");
        assert_eq!(r.get(&1), None);
        assert_eq!(r.get(&2), Some("b"));
        assert_eq!(r.get(&3), Some("c"));
    }

    #[test]
    fn bytes_bound_it_too() {
        let r: Recent<u32, Vec<u8>> = Recent::bounded(100, 1000, |_, v| v.len());
        r.insert(1, vec![0; 600]);
        r.insert(2, vec![0; 300]);
        assert!(r.get(&1).is_some());
        r.insert(3, vec![0; 200]);
        assert_eq!(r.get(&1), None, "900 + 200 > 1000: the oldest goes");
        assert!(r.get(&2).is_some() && r.get(&3).is_some());
        r.insert(4, vec![0; 5000]);
        assert_eq!(r.get(&4), None, "heavier than the whole budget: not kept");
    }
}
