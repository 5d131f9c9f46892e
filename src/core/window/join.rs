//! The join store: predictions remembered by record key until their label arrives.
//!
//! It keeps, per key, only a 128-bit keyed hash of the key, the predicted value (a class, a
//! bool or a number), its confidence, and when it was logged: never a feature value, never
//! the key itself. It is bounded by a capacity (oldest first out) and a time-to-live.

use crate::core::record::value::Value;
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::FeedbackCounts;
use std::collections::{HashMap, VecDeque};

/// A remembered prediction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Remembered {
    pub(crate) predicted: Value<'static>,
    pub(crate) confidence: Option<f64>,
}

enum Slot {
    Waiting {
        at_ms: i64,
        prediction: Remembered,
    },
    /// Feedback came: kept until it expires, so that a second feedback is a duplicate.
    Answered {
        at_ms: i64,
    },
}

impl Slot {
    fn at_ms(&self) -> i64 {
        match self {
            Slot::Waiting { at_ms, .. } | Slot::Answered { at_ms } => *at_ms,
        }
    }
}

/// Heap bytes per entry of the store at most, besides a class name of up to
/// `max_text_bytes`: the hash map's slot and control byte with its growth headroom (up to
/// 16/7 slots per entry), plus the insertion-order queue, which compaction keeps within
/// twice the capacity and which may have doubled its allocation (4 places per entry).
pub const BYTES_PER_JOIN_ENTRY: usize = 320;

pub(crate) struct JoinStore {
    capacity: usize,
    ttl_ms: i64,
    slots: HashMap<u128, Slot>,
    /// Keys in insertion order, with the time they were logged; stale pairs (a key logged
    /// again since) are skipped when they reach the front.
    order: VecDeque<(u128, i64)>,
    counts: FeedbackCounts,
}

impl JoinStore {
    pub(crate) fn new(capacity: usize, ttl_ms: i64) -> Self {
        JoinStore {
            capacity: capacity.max(1),
            ttl_ms,
            slots: HashMap::new(),
            order: VecDeque::new(),
            counts: FeedbackCounts::default(),
        }
    }

    /// The store's key for a record key: a keyed hash, so the key itself is never kept.
    pub(crate) fn key(hash_key: &HashKey, record_key: &str) -> u128 {
        hash_key.hash_str_128(record_key)
    }

    pub(crate) fn remember(&mut self, key: u128, prediction: Remembered, now_ms: i64) {
        self.expire(now_ms);
        match self.slots.get(&key) {
            Some(Slot::Waiting { .. }) => self.counts.replaced += 1,
            Some(Slot::Answered { .. }) => {}
            None => {
                while self.slots.len() >= self.capacity {
                    self.pop_oldest(|c| &mut c.evicted);
                }
            }
        }
        self.slots.insert(
            key,
            Slot::Waiting {
                at_ms: now_ms,
                prediction,
            },
        );
        self.order.push_back((key, now_ms));
        if self.order.len() > 2 * self.capacity {
            let slots = &self.slots;
            self.order
                .retain(|(k, at)| slots.get(k).is_some_and(|s| s.at_ms() == *at));
        }
    }

    /// The remembered prediction for `key`, if it is waiting; counts the outcome.
    pub(crate) fn answer(&mut self, key: u128, now_ms: i64) -> Option<Remembered> {
        self.expire(now_ms);
        match self.slots.get_mut(&key) {
            None => {
                self.counts.unknown_key += 1;
                None
            }
            Some(Slot::Answered { .. }) => {
                self.counts.duplicate += 1;
                None
            }
            Some(slot @ Slot::Waiting { .. }) => {
                let at_ms = slot.at_ms();
                let Slot::Waiting { prediction, .. } =
                    std::mem::replace(slot, Slot::Answered { at_ms })
                else {
                    unreachable!("matched as waiting")
                };
                self.counts.matched += 1;
                Some(prediction)
            }
        }
    }

    /// Removes entries older than the time-to-live.
    fn expire(&mut self, now_ms: i64) {
        while let Some(&(_, at)) = self.order.front() {
            if at.saturating_add(self.ttl_ms) > now_ms {
                break;
            }
            self.pop_oldest(|c| &mut c.expired);
        }
    }

    /// Removes the oldest live entry; an unanswered one is counted in `counter`.
    fn pop_oldest(&mut self, counter: fn(&mut FeedbackCounts) -> &mut u64) {
        while let Some((key, at)) = self.order.pop_front() {
            if self.slots.get(&key).is_some_and(|s| s.at_ms() == at) {
                if let Some(Slot::Waiting { .. }) = self.slots.remove(&key) {
                    *counter(&mut self.counts) += 1;
                }
                return;
            }
        }
    }

    /// The outcome counts since the last call.
    pub(crate) fn take_counts(&mut self) -> FeedbackCounts {
        std::mem::take(&mut self.counts)
    }

    /// Whether the store holds nothing: no prediction waiting, no count to ship.
    pub(crate) fn is_idle(&self) -> bool {
        self.slots.is_empty() && self.counts == FeedbackCounts::default()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
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
        let c = s.take_counts();
        assert_eq!(
            (c.matched, c.duplicate, c.unknown_key, c.replaced),
            (2, 1, 1, 1)
        );
        assert_eq!(s.take_counts(), FeedbackCounts::default());
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
        let c = s.take_counts();
        assert_eq!((c.expired, c.unknown_key, c.matched), (5, 1, 1));
        // The answered one expires silently; the waiting ones are counted.
        s.answer(k("nothing"), 10_000);
        assert_eq!(s.take_counts().expired, 4);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn documented_bytes_per_entry_cover_the_structures() {
        let slot = std::mem::size_of::<(u128, Slot)>() + 1;
        let queue = std::mem::size_of::<(u128, i64)>();
        assert!(
            slot * 16 / 7 + 4 * queue <= BYTES_PER_JOIN_ENTRY,
            "{slot} {queue}"
        );
    }

    #[test]
    fn capacity_evicts_the_oldest_and_never_grows() {
        let mut s = JoinStore::new(1000, i64::MAX / 2);
        for i in 0..10_000 {
            s.remember(k(&i.to_string()), remembered(i), i);
            assert!(s.len() <= 1000);
            assert!(s.order.len() <= 2000);
        }
        assert_eq!(s.answer(k("8999"), 10_000), None);
        assert_eq!(s.answer(k("9000"), 10_000), Some(remembered(9000)));
        let c = s.take_counts();
        assert_eq!((c.evicted, c.unknown_key, c.matched), (9000, 1, 1));
        // Re-logging the same keys over and over keeps the order queue bounded too.
        for i in 0..10_000 {
            s.remember(k("same"), remembered(i), 20_000 + i);
            assert!(s.order.len() <= 2000);
        }
    }
}
