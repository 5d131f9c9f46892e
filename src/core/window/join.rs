//! The join store: predictions remembered by record key until their label arrives.
//!
//! It keeps, per key, only a 128-bit keyed hash of the key, the predicted value (a class, a
//! bool or a number), its confidence, and when it was logged: never a feature value, never
//! the key itself. It is bounded by a capacity (oldest first out) and a time-to-live; an
//! answered key leaves at once (a bounded set of recent ones spots duplicates).

use crate::core::record::value::Value;
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::FeedbackCounts;
use std::collections::{HashMap, HashSet, VecDeque};

/// A remembered prediction: what the join needs, with the segments it was logged in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Remembered {
    pub(crate) predicted: Value<'static>,
    pub(crate) confidence: Option<f64>,
    pub(crate) segments: Vec<Box<str>>,
}

/// Most parts of a store: keys are spread over them by their hash, each part grows, evicts
/// and compacts on its own, so that no operation touches more than a part's worth of
/// entries (a hash map's growth rehashes every entry of the map it grows: with one map of
/// a million entries, that was a 25 ms pause in a request thread). Up to 4 million
/// entries, a part holds about [`PART_ENTRIES`] whatever the capacity.
const MAX_PARTS: usize = 4096;
/// Entries per part (one part up to this capacity: eviction is then exactly oldest first;
/// across parts it is oldest first within each part).
const PART_ENTRIES: usize = 1024;

/// Answered keys remembered per part, for duplicates, as a share of its capacity: they no
/// longer hold the capacity of waiting predictions.
const ANSWERED_SHARE: usize = 4;

/// Heap bytes per waiting entry of the store at most, besides its class name (up to
/// `max_text_bytes`) and its segment names (each its bytes plus
/// [`BYTES_PER_JOIN_SEGMENT`]): the hash map's slot and control byte with its growth
/// headroom (up to 16/7 slots per entry), the insertion-order queue, which compaction keeps
/// within twice the capacity and which may have doubled its allocation (4 places per
/// entry), the answered keys (a quarter of the capacity, in a set and a queue), and the
/// allocator's rounding (`tests/bounds.rs` measures it).
pub const BYTES_PER_JOIN_ENTRY: usize = 448;

/// Heap bytes per segment name remembered with a keyed prediction, besides the name's own
/// bytes: the list's and the name's allocations, rounded up by the allocator.
pub const BYTES_PER_JOIN_SEGMENT: usize = 64;

pub(crate) struct JoinStore {
    ttl_ms: i64,
    capacity: usize,
    /// Created on first use, so that a small store costs little.
    parts: Vec<Option<Box<Part>>>,
    counts: FeedbackCounts,
}

/// One part of the store.
#[derive(Default)]
struct Part {
    waiting: HashMap<u128, (i64, Remembered)>,
    /// Keys in insertion order, with the time they were logged; stale pairs (a key logged
    /// again since, or answered) are skipped when they reach the front.
    order: VecDeque<(u128, i64)>,
    /// Keys answered lately, oldest first out: a second label is a duplicate.
    answered: HashSet<u128>,
    answered_order: VecDeque<u128>,
}

impl JoinStore {
    pub(crate) fn new(capacity: usize, ttl_ms: i64) -> Self {
        let capacity = capacity.max(1);
        let parts = (capacity / PART_ENTRIES).clamp(1, MAX_PARTS);
        JoinStore {
            ttl_ms,
            capacity,
            parts: (0..parts).map(|_| None).collect(),
            counts: FeedbackCounts::default(),
        }
    }

    /// Part `i`'s share of the capacity: the parts' shares add up to it exactly.
    fn part_capacity(&self, i: usize) -> usize {
        let n = self.parts.len();
        self.capacity / n + usize::from(i < self.capacity % n)
    }

    /// The store's key for a record key: a keyed hash, so the key itself is never kept.
    pub(crate) fn key(hash_key: &HashKey, record_key: &str) -> u128 {
        hash_key.hash_str_128(record_key)
    }

    /// The part of `key`, and its capacity.
    fn part(&mut self, key: u128) -> (&mut Part, usize) {
        // The high half: the hash map uses the low bits.
        let i = ((key >> 64) as u64 % self.parts.len() as u64) as usize;
        let capacity = self.part_capacity(i);
        (self.parts[i].get_or_insert_with(Default::default), capacity)
    }

    pub(crate) fn remember(&mut self, key: u128, prediction: Remembered, now_ms: i64) {
        let ttl = self.ttl_ms;
        let mut counts = std::mem::take(&mut self.counts);
        let (part, capacity) = self.part(key);
        part.expire(now_ms, ttl, &mut counts);
        if part.waiting.contains_key(&key) {
            counts.replaced += 1;
        } else {
            while part.waiting.len() >= capacity {
                part.pop_oldest(&mut counts.evicted);
            }
        }
        part.answered.remove(&key);
        part.waiting.insert(key, (now_ms, prediction));
        part.order.push_back((key, now_ms));
        if part.order.len() > 2 * capacity {
            let waiting = &part.waiting;
            part.order
                .retain(|(k, at)| waiting.get(k).is_some_and(|w| w.0 == *at));
        }
        self.counts.add(&counts);
    }

    /// The remembered prediction for `key`, if it is waiting; counts the outcome.
    pub(crate) fn answer(&mut self, key: u128, now_ms: i64) -> Option<Remembered> {
        let ttl = self.ttl_ms;
        let mut counts = std::mem::take(&mut self.counts);
        let (part, capacity) = self.part(key);
        part.expire(now_ms, ttl, &mut counts);
        let found = match part.waiting.remove(&key) {
            Some((_, prediction)) => {
                counts.matched += 1;
                part.note_answered(key, (capacity / ANSWERED_SHARE).max(1));
                Some(prediction)
            }
            None if part.answered.contains(&key) => {
                counts.duplicate += 1;
                None
            }
            None => {
                counts.unknown_key += 1;
                None
            }
        };
        self.counts.add(&counts);
        found
    }

    /// The outcome counts since the last call, entries past their time-to-live expired
    /// first (parts otherwise expire when a key of theirs is used).
    pub(crate) fn take_counts(&mut self, now_ms: i64) -> FeedbackCounts {
        for part in self.parts.iter_mut().flatten() {
            part.expire(now_ms, self.ttl_ms, &mut self.counts);
        }
        std::mem::take(&mut self.counts)
    }

    /// Whether the store holds nothing: no prediction waiting, no count to ship.
    pub(crate) fn is_idle(&self) -> bool {
        self.counts == FeedbackCounts::default()
            && self.parts.iter().flatten().all(|p| p.waiting.is_empty())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.parts.iter().flatten().map(|p| p.waiting.len()).sum()
    }
}

impl Part {
    /// Removes entries older than the time-to-live, counting the waiting ones.
    fn expire(&mut self, now_ms: i64, ttl_ms: i64, counts: &mut FeedbackCounts) {
        while let Some(&(_, at)) = self.order.front() {
            if at.saturating_add(ttl_ms) > now_ms {
                break;
            }
            self.pop_oldest(&mut counts.expired);
        }
    }

    /// Removes the oldest waiting entry, counted in `counter`.
    fn pop_oldest(&mut self, counter: &mut u64) {
        while let Some((key, at)) = self.order.pop_front() {
            if self.waiting.get(&key).is_some_and(|w| w.0 == at) {
                self.waiting.remove(&key);
                *counter += 1;
                return;
            }
        }
    }

    fn note_answered(&mut self, key: u128, keep: usize) {
        if self.answered.insert(key) {
            self.answered_order.push_back(key);
        }
        while self.answered_order.len() > keep {
            if let Some(old) = self.answered_order.pop_front() {
                self.answered.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: HashKey = HashKey::new([7; 16]);

    fn remembered(i: i64) -> Remembered {
        Remembered {
            predicted: Value::Int(i),
            confidence: None,
            segments: vec!["web".into()],
        }
    }

    fn k(s: &str) -> u128 {
        JoinStore::key(&KEY, s)
    }

    #[test]
    fn feedback_joins_once_and_unknown_keys_are_counted() {
        let mut s = JoinStore::new(10, 1000);
        s.remember(k("a"), remembered(1), 0);
        assert_eq!(s.answer(k("a"), 5), Some(remembered(1)));
        assert_eq!(s.answer(k("a"), 6), None);
        assert_eq!(s.answer(k("zzz"), 7), None);
        s.remember(k("b"), remembered(2), 8);
        s.remember(k("b"), remembered(3), 9);
        assert_eq!(s.answer(k("b"), 10), Some(remembered(3)));
        let c = s.take_counts(10);
        assert_eq!(
            (c.matched, c.duplicate, c.unknown_key, c.replaced),
            (2, 1, 1, 1)
        );
        assert_eq!(s.take_counts(10), FeedbackCounts::default());
        assert_eq!(s.len(), 0, "answered keys leave the store at once");
    }

    #[test]
    fn entries_expire_by_the_injected_clock() {
        let mut s = JoinStore::new(100, 1000);
        for i in 0..10 {
            s.remember(k(&i.to_string()), remembered(i), i * 100);
        }
        // At t = 1450, entries logged at 0..=400 are past their 1000 ms.
        assert_eq!(s.answer(k("4"), 1450), None);
        assert_eq!(s.answer(k("5"), 1450), Some(remembered(5)));
        let c = s.take_counts(1450);
        assert_eq!((c.expired, c.unknown_key, c.matched), (5, 1, 1));
        // The waiting ones expire, counted, when counts are taken.
        assert_eq!(s.take_counts(10_000).expired, 4);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn documented_bytes_per_entry_cover_the_structures() {
        let slot = std::mem::size_of::<(u128, (i64, Remembered))>() + 1;
        let queue = std::mem::size_of::<(u128, i64)>();
        let answered = (std::mem::size_of::<u128>() + 1) * 16 / 7 + 2 * 16;
        let per_entry = slot * 16 / 7 + 4 * queue + answered / ANSWERED_SHARE;
        assert!(per_entry <= BYTES_PER_JOIN_ENTRY, "{per_entry}");
    }

    #[test]
    fn a_small_store_evicts_exactly_the_oldest() {
        let mut s = JoinStore::new(1000, i64::MAX / 2);
        for i in 0..10_000 {
            s.remember(k(&i.to_string()), remembered(i), i);
            assert!(s.len() <= 1000);
            assert!(s.parts.iter().flatten().all(|p| p.order.len() <= 2000));
        }
        assert_eq!(s.answer(k("8999"), 10_000), None);
        assert_eq!(s.answer(k("9000"), 10_000), Some(remembered(9000)));
        let c = s.take_counts(10_000);
        assert_eq!((c.evicted, c.unknown_key, c.matched), (9000, 1, 1));
    }

    #[test]
    fn a_large_store_is_in_parts_whose_capacities_add_up() {
        let (capacity, n) = (64_000, 320_000);
        let mut s = JoinStore::new(capacity, i64::MAX / 2);
        assert_eq!(s.parts.len(), 62);
        let shares: usize = (0..s.parts.len()).map(|i| s.part_capacity(i)).sum();
        assert_eq!(shares, capacity);
        for i in 0..n {
            s.remember(k(&i.to_string()), remembered(i), i);
        }
        assert_eq!(s.len(), capacity, "every part full");
        for (i, p) in s.parts.iter().enumerate() {
            let p = p.as_ref().unwrap();
            assert!(p.order.len() <= 2 * s.part_capacity(i));
        }
        // Oldest first within each part: the oldest keys are all gone, the newest all
        // there (parts fill unevenly, so the line between is not exact).
        let gone =
            (0..n - 2 * capacity as i64).filter(|i| s.answer(k(&i.to_string()), n).is_some());
        assert_eq!(gone.count(), 0);
        let recent = n - capacity as i64 / 2..n;
        let kept = recent
            .clone()
            .filter(|i| s.answer(k(&i.to_string()), n).is_some());
        assert_eq!(kept.count(), capacity / 2);
        let c = s.take_counts(n);
        assert_eq!(c.evicted as usize, n as usize - capacity);
        // Re-logging the same key over and over keeps the order queues bounded too.
        for i in 0..10_000 {
            s.remember(k("same"), remembered(i), 2 * n + i);
        }
        assert!(s.parts.iter().flatten().all(|p| p.order.len() <= 2 * 1033));
    }

    #[test]
    fn answered_keys_free_their_capacity() {
        // A store of 64 waiting entries answered as fast as they come: nothing is evicted,
        // however many pass through, and duplicates of recent answers are still spotted.
        let mut s = JoinStore::new(64, i64::MAX / 2);
        for i in 0..100_000 {
            s.remember(k(&i.to_string()), remembered(i), i);
            assert_eq!(s.answer(k(&i.to_string()), i), Some(remembered(i)));
        }
        assert_eq!(s.answer(k("99999"), 100_000), None);
        let c = s.take_counts(100_000);
        assert_eq!((c.evicted, c.matched, c.duplicate), (0, 100_000, 1));
    }
}
