//! Debug mode's tables, written by their own thread ("modelwatch-debug") so that a slow
//! logger or a stderr pipe nobody reads never holds up sealing: the sealer hands each table
//! over without waiting, and a table that finds the queue full is dropped and counted
//! (`Stats::debug_dropped`). Only tables are ever dropped this way, never summaries.

use super::AgentStats;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

/// Tables waiting for the debug thread, at most.
const QUEUE: usize = 32;

/// Where debug mode's tables go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DebugTo {
    /// The `log` crate, target `modelwatch::debug`, level info.
    Log,
    /// Standard error, outside any logger.
    Stderr,
}

pub(crate) struct DebugOut {
    tx: SyncSender<String>,
    stats: Arc<AgentStats>,
}

impl DebugOut {
    pub(crate) fn start(to: DebugTo, stats: Arc<AgentStats>) -> std::io::Result<DebugOut> {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        // Detached: it may be stuck in a write to a full pipe forever, and must not keep
        // shutdown waiting; it ends when the sealer drops the sender.
        std::thread::Builder::new()
            .name("modelwatch-debug".into())
            .spawn(move || {
                for table in rx {
                    match to {
                        DebugTo::Log => log::info!(target: "modelwatch::debug", "{table}"),
                        // Not eprint!: it panics when stderr is closed (a daemonized host).
                        DebugTo::Stderr => {
                            let _ = std::io::stderr().lock().write_all(table.as_bytes());
                        }
                    }
                }
            })?;
        Ok(DebugOut { tx, stats })
    }

    /// Hands a table to the debug thread, or drops it (counted) if the queue is full.
    pub(crate) fn send(&self, table: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(table)
        {
            self.stats.debug_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
