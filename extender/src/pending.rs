//! Requests of pods filtered and not yet bound, by UID, bounded in count and bytes. Past a
//! bound the oldest are forgotten first, so a flood of filters (junk, or thousands of
//! unschedulable pods) costs only the oldest memories, never the binds in flight; a forgotten
//! pod is filtered again on its next scheduling attempt.

use std::collections::{BTreeMap, HashMap};

/// A bounded, oldest-first-forgetting map from pod UID to a remembered value and its size.
#[derive(Debug)]
pub struct Pending<T> {
    by_uid: HashMap<String, (T, usize, u64)>,
    /// Insertion order: sequence number to UID.
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl<T> Pending<T> {
    /// An empty map holding at most `max_items` values of `max_bytes` in all.
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        Pending {
            by_uid: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            bytes: 0,
            max_items,
            max_bytes,
        }
    }

    /// Remembers `value` (taking `size` bytes) for `uid`, replacing what it had; forgets the
    /// oldest others until it fits. Returns how many were forgotten.
    pub fn insert(&mut self, uid: &str, value: T, size: usize) -> usize {
        self.take(uid);
        let mut forgotten = 0;
        while !self.by_uid.is_empty()
            && (self.by_uid.len() >= self.max_items || self.bytes + size > self.max_bytes)
        {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, old, _)) = self.by_uid.remove(&oldest) {
                self.bytes -= old;
                forgotten += 1;
            }
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, uid.to_string());
        self.by_uid.insert(uid.to_string(), (value, size, seq));
        self.bytes += size;
        forgotten
    }

    /// The value remembered for `uid`, forgetting it.
    pub fn take(&mut self, uid: &str) -> Option<T> {
        let (value, size, seq) = self.by_uid.remove(uid)?;
        self.order.remove(&seq);
        self.bytes -= size;
        Some(value)
    }

    /// Values remembered and the bytes they take.
    pub fn size(&self) -> (usize, usize) {
        (self.by_uid.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflow_forgets_the_oldest_not_the_binds_in_flight() {
        let mut p = Pending::new(3, 1000);
        for uid in ["a", "b", "c"] {
            assert_eq!(p.insert(uid, uid, 10), 0);
        }
        assert_eq!(p.insert("d", "d", 10), 1, "one forgotten to make room");
        assert_eq!(p.take("a"), None, "the oldest is forgotten");
        assert_eq!(p.take("b"), Some("b"));
        assert_eq!(p.size(), (2, 20));
    }

    #[test]
    fn bytes_bound_forgets_as_many_oldest_as_needed_and_a_refilter_is_young_again() {
        let mut p = Pending::new(100, 100);
        for uid in ["a", "b", "c", "d"] {
            p.insert(uid, (), 25);
        }
        // Filtered again: "a" becomes the youngest.
        p.insert("a", (), 25);
        assert_eq!(p.insert("e", (), 50), 2, "b and c make room for 50 bytes");
        assert!(p.take("b").is_none() && p.take("c").is_none());
        assert!(p.take("a").is_some() && p.take("d").is_some() && p.take("e").is_some());
        assert_eq!(p.size(), (0, 0));
    }
}
