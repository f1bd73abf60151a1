//! A small bounded in-process map for values that never go stale (they are keyed by exact
//! content): circuit IDs by canonical circuit bytes, parsed circuits by content key. The oldest
//! insertion goes first when it is full; a lock-protected map is enough at these sizes.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

pub struct Recent<K, V> {
    inner: Mutex<(HashMap<K, V>, VecDeque<K>)>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Recent<K, V> {
    pub fn new(capacity: usize) -> Self {
        Recent {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.inner.lock().ok()?.0.get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
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
}
