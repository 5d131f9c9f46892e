//! Group commit: summaries arriving together are stored in one transaction, one fsync,
//! and each request is answered only once its transaction has committed.
//!
//! One thread commits. Requests queue their decoded summary and wait, without holding a
//! thread, for the outcome; the committer takes every summary waiting at that moment (at
//! most `MAX_BATCH`) into one transaction, then hands each new one to the collector's
//! own work (the watch, `/metrics`) and answers it. Those that arrive meanwhile form the
//! next batch (LevelDB's writer queue): a lone request is committed at once, with no added
//! wait; under load, batches grow with the time a commit takes.
//!
//! Waking only the committer and then only the requests of its batch matters: a condition
//! variable shared by the waiting requests woke them all at every commit, and those task
//! switches cost more than the commit's own work (`docs/benchmarks.md`, "Collector").

use crate::store::{Store, Stored};
use hyper::body::Bytes;
use modelwatch::WindowSummary;
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::oneshot;

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
    /// Its places in the collector's bounds (body memory, decoded summaries), released
    /// once it is stored and observed.
    pub places: Vec<tokio::sync::OwnedSemaphorePermit>,
}

/// What the committer does with each summary it stored new, before answering its request.
pub type AfterCommit = Box<dyn FnMut(&Arriving) + Send>;

type Outcome = Result<Stored, String>;

/// The committing thread and its queue; dropping it commits what is queued, then stops
/// the thread.
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    waiting: Vec<(Arriving, oneshot::Sender<Outcome>)>,
    stopping: bool,
    /// Transactions committed and summaries in them, for the collector's counters.
    commits: u64,
    committed: u64,
}

impl GroupCommit {
    /// Starts the committing thread over `store`; `after` sees each summary stored new.
    pub fn start(store: Arc<Mutex<Store>>, after: AfterCommit) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("modelwatch-commit".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || commit_loop(&shared, &store, after)
            })?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Stores `arriving` in the next transaction; resolves once it has committed (or
    /// failed: then every summary of that transaction fails, and is not acknowledged).
    pub async fn store(&self, arriving: Arriving) -> Outcome {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = lock(&self.shared.state);
            if st.stopping {
                return Err("the collector is stopping".into());
            }
            st.waiting.push((arriving, tx));
        }
        self.shared.work.notify_one();
        rx.await
            .unwrap_or_else(|_| Err("the commit failed unexpectedly".into()))
    }

    /// Transactions committed, and summaries stored or found duplicate in them.
    pub fn commits(&self) -> (u64, u64) {
        let st = lock(&self.shared.state);
        (st.commits, st.committed)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn commit_loop(shared: &Shared, store: &Mutex<Store>, mut after: AfterCommit) {
    loop {
        let batch: Vec<(Arriving, oneshot::Sender<Outcome>)> = {
            let mut st = lock(&shared.state);
            while st.waiting.is_empty() && !st.stopping {
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.waiting.is_empty() {
                return;
            }
            let take = st.waiting.len().min(MAX_BATCH);
            st.waiting.drain(..take).collect()
        };
        // A panic (in the store or in `after`) answers this batch's requests with an error
        // (their senders are dropped) and leaves the thread committing the next ones; a
        // summary committed before it is found duplicate on the agent's retry.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit_batch(shared, store, &mut after, batch)
        }));
    }
}

fn commit_batch(
    shared: &Shared,
    store: &Mutex<Store>,
    after: &mut AfterCommit,
    batch: Vec<(Arriving, oneshot::Sender<Outcome>)>,
) {
    let rows: Vec<(&str, &WindowSummary, &[u8], i64)> = batch
        .iter()
        .map(|(a, _)| (a.key_id.as_str(), &*a.summary, &a.body[..], a.received_ms))
        .collect();
    let result = store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert_batch(&rows);
    drop(rows);
    match result {
        Ok(stored) => {
            {
                let mut st = lock(&shared.state);
                st.commits += 1;
                st.committed += batch.len() as u64;
            }
            for ((arriving, tx), s) in batch.into_iter().zip(stored) {
                if s == Stored::New {
                    after(&arriving);
                }
                // A request that gave up waiting (its connection closed) is not answered.
                let _ = tx.send(Ok(s));
            }
        }
        Err(e) => {
            for (_, tx) in batch {
                let _ = tx.send(Err(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::SummaryBuilder;
    use std::sync::atomic::{AtomicU64, Ordering};

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
            places: Vec::new(),
        }
    }

    /// A new SQLite store in a folder of its own (removed by the test at its end).
    fn fresh_store(tag: &str) -> (std::path::PathBuf, Arc<Mutex<Store>>) {
        let dir = std::env::temp_dir().join(format!("modelwatch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("s.db")).unwrap();
        (dir, Arc::new(Mutex::new(store)))
    }

    #[test]
    fn concurrent_requests_share_transactions_and_each_gets_its_own_outcome() {
        let (dir, store) = fresh_store("commit");
        let seen = Arc::new(AtomicU64::new(0));
        let after = {
            let seen = Arc::clone(&seen);
            Box::new(move |_: &Arriving| {
                seen.fetch_add(1, Ordering::Relaxed);
            })
        };
        let commit = Arc::new(GroupCommit::start(Arc::clone(&store), after).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let outcomes: Vec<Vec<Stored>> = runtime.block_on(async {
            let tasks: Vec<_> = (0..16u64)
                .map(|t| {
                    let commit = Arc::clone(&commit);
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        for i in 0..50u64 {
                            // Every fifth is a retry of the one before: a duplicate.
                            let sequence = if i % 5 == 4 { i } else { i + 1 };
                            out.push(commit.store(arriving(t, sequence)).await.unwrap());
                        }
                        out
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.push(t.await.unwrap());
            }
            all
        });
        let mut new = 0;
        for outcomes in &outcomes {
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
        assert_eq!(
            seen.load(Ordering::Relaxed),
            16 * 40,
            "each new one seen once"
        );
        let (commits, committed) = commit.commits();
        assert_eq!(committed, 16 * 50);
        assert!(commits < committed, "{commits} commits: none shared");
        let rows = store.lock().unwrap().count().unwrap();
        assert_eq!(rows, 16 * 40, "each summary stored once");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_panic_after_a_commit_fails_its_batch_and_the_next_commits() {
        let (dir, store) = fresh_store("commit-p");
        let after = Box::new(|a: &Arriving| assert_ne!(a.summary.instance(), 1, "a bug"));
        let commit = GroupCommit::start(Arc::clone(&store), after).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(commit.store(arriving(1, 1)).await.is_err());
            // Committed before the panic: the retry finds it.
            assert_eq!(commit.store(arriving(1, 1)).await, Ok(Stored::Duplicate));
            assert_eq!(commit.store(arriving(2, 1)).await, Ok(Stored::New));
        });
        drop(commit);
        assert_eq!(store.lock().unwrap().count().unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
