//! Group commit: summaries arriving together are stored in one transaction, one fsync,
//! and each request is answered only once its transaction has committed.
//!
//! No thread of its own: the first request to find no commit under way leads one with
//! every summary waiting at that moment, then hands the outcomes to their requests; those
//! that arrive while it commits wait and form the next batch (LevelDB's writer queue). A
//! lone request is committed at once, with no added wait; under load, batches grow with
//! the time an fsync takes.

use crate::store::{Store, Stored};
use hyper::body::Bytes;
use modelwatch::WindowSummary;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

/// Summaries in one transaction, at most.
const MAX_BATCH: usize = 1_024;

/// A summary waiting to be stored.
pub struct Arriving {
    /// The id of the key that sent it.
    pub key_id: String,
    /// The decoded summary.
    pub summary: Arc<WindowSummary>,
    /// Its bytes as received.
    pub body: Bytes,
    /// When it was received (Unix milliseconds).
    pub received_ms: i64,
}

/// The queue of summaries waiting for a commit, and the outcomes not yet collected.
#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    settled: Condvar,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    waiting: Vec<(u64, Arriving)>,
    outcomes: HashMap<u64, Result<Stored, String>>,
    committing: bool,
    /// Transactions committed and summaries in them, for the collector's counters.
    commits: u64,
    committed: u64,
}

impl GroupCommit {
    /// Stores `arriving` in the next transaction of `store`; returns once it has committed
    /// (or failed: then every summary of that transaction fails, and is not acknowledged).
    pub fn store(&self, store: &Mutex<Store>, arriving: Arriving) -> Result<Stored, String> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiting.push((ticket, arriving));
        loop {
            if let Some(outcome) = st.outcomes.remove(&ticket) {
                return outcome;
            }
            if st.committing {
                st = self.settled.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.committing = true;
            let take = st.waiting.len().min(MAX_BATCH);
            let batch: Vec<(u64, Arriving)> = st.waiting.drain(..take).collect();
            drop(st);
            let rows: Vec<(&str, &WindowSummary, &[u8], i64)> = batch
                .iter()
                .map(|(_, a)| (a.key_id.as_str(), &*a.summary, &a.body[..], a.received_ms))
                .collect();
            let result = store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert_batch(&rows);
            st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.committing = false;
            match result {
                Ok(stored) => {
                    st.commits += 1;
                    st.committed += batch.len() as u64;
                    for ((t, _), s) in batch.iter().zip(stored) {
                        st.outcomes.insert(*t, Ok(s));
                    }
                }
                Err(e) => {
                    for (t, _) in &batch {
                        st.outcomes.insert(*t, Err(e.to_string()));
                    }
                }
            }
            self.settled.notify_all();
        }
    }

    /// Transactions committed, and summaries stored or found duplicate in them.
    pub fn commits(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.commits, st.committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::SummaryBuilder;

    fn arriving(instance: u64, sequence: u64) -> Arriving {
        let s = SummaryBuilder::new("m", 0, 60_000, [3; 16])
            .identity(instance, sequence)
            .build();
        let body = Bytes::from(s.encode());
        Arriving {
            key_id: "k".into(),
            summary: Arc::new(s),
            body,
            received_ms: 0,
        }
    }

    #[test]
    fn concurrent_requests_share_transactions_and_each_gets_its_own_outcome() {
        let dir = std::env::temp_dir().join(format!("modelwatch-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.join("s.db")).unwrap()));
        let commit = Arc::new(GroupCommit::default());
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let (store, commit) = (Arc::clone(&store), Arc::clone(&commit));
                std::thread::spawn(move || {
                    (0..50u64)
                        .map(|i| {
                            // Every fifth is a retry of the one before: a duplicate.
                            let sequence = if i % 5 == 4 { i } else { i + 1 };
                            commit.store(&store, arriving(t, sequence)).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut new = 0;
        for t in threads {
            let outcomes = t.join().unwrap();
            for (i, o) in outcomes.iter().enumerate() {
                let expected = if i % 5 == 4 {
                    Stored::Duplicate
                } else {
                    Stored::New
                };
                assert_eq!(*o, expected, "request {i}");
            }
            new += outcomes.iter().filter(|o| **o == Stored::New).count();
        }
        assert_eq!(new, 16 * 40);
        let (commits, committed) = commit.commits();
        assert_eq!(committed, 16 * 50);
        assert!(commits <= committed);
        let rows = store.lock().unwrap().count().unwrap();
        assert_eq!(rows, 16 * 40, "each summary stored once");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
