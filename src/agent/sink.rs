//! Where sealed summaries go: the `Sink` trait, the folder sink, and the retry backlog the
//! sealer keeps for each local sink.

use super::backoff::Backoff;
use super::AgentStats;
use crate::core::summary::WindowSummary;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Receives every sealed window summary, on the agent's sealing thread (never on a thread
/// that logs, never behind HTTP delivery). `encoded` is the MessagePack form of `summary`:
/// what a sink should store or send. A summary it fails to take waits in a backlog bounded
/// by [`Config::max_backlog_bytes`](crate::Config::max_backlog_bytes) and is offered again
/// with back-off (and at once by `flush` and `shutdown`); a sink must not block for long,
/// as windows are sealed on the same thread.
///
/// ```
/// use modelwatch::{Sink, WindowSummary};
/// struct Count(usize);
/// impl Sink for Count {
///     fn deliver(&mut self, _summary: &WindowSummary, encoded: &[u8]) -> std::io::Result<()> {
///         self.0 += encoded.len();
///         Ok(())
///     }
/// }
/// ```
pub trait Sink: Send {
    /// Stores or sends one summary. An error is counted in the agent's statistics
    /// ([`Stats::failed`](crate::Stats::failed)) and the summary is offered again later.
    fn deliver(&mut self, summary: &WindowSummary, encoded: &[u8]) -> std::io::Result<()>;
}

/// Writes each summary to its own file, atomically (temporary file, then rename), named
/// `<deployment>.<window start ms>.<instance>.<sequence>.msgpack`. A deployment name is
/// kept as is when it is at most 64 ASCII letters, digits, `-` and `_`; any other is cut
/// and cleaned to those, and followed by `~` and a hash of the whole name, so that two
/// deployments never share a file name. A folder deleted while the agent runs is
/// created again on the next write.
///
/// On Unix, creating a folder sink sets SIGXFSZ to "ignore" if it has its default action:
/// a write past the process's file size limit (`ulimit -f`) then fails with an error the
/// agent retries, instead of killing the host. A handler the host installed is kept.
#[derive(Debug)]
pub struct FolderSink {
    dir: PathBuf,
}

impl FolderSink {
    /// A sink writing into `dir`, which is created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        #[cfg(unix)]
        ignore_sigxfsz();
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FolderSink { dir })
    }

    /// The folder written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// SIGXFSZ ignored unless the host handles it: writes past `ulimit -f` become `EFBIG`.
#[cfg(unix)]
fn ignore_sigxfsz() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a query, then (if the action is the default) SIG_IGN with an empty mask;
        // no handler code runs.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGXFSZ, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
            {
                let mut ignore: libc::sigaction = std::mem::zeroed();
                ignore.sa_sigaction = libc::SIG_IGN;
                libc::sigemptyset(&mut ignore.sa_mask);
                libc::sigaction(libc::SIGXFSZ, &ignore, std::ptr::null_mut());
            }
        }
    });
}

/// A file-name-safe form of a deployment name, distinct for distinct names: sequence
/// numbers count per deployment, so `a/b` and `a_b` both have a summary 1 of a window.
fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == name {
        return safe;
    }
    // Unkeyed on purpose: the name ships in the summary anyway, and file names must be
    // the same in every run.
    let mut h = siphasher::sip::SipHasher13::new();
    std::hash::Hasher::write(&mut h, name.as_bytes());
    format!("{safe}~{:016x}", std::hash::Hasher::finish(&h))
}

impl Sink for FolderSink {
    fn deliver(&mut self, s: &WindowSummary, encoded: &[u8]) -> std::io::Result<()> {
        let name = format!(
            "{}.{}.{:016x}.{:06}.msgpack",
            safe_name(s.deployment()),
            s.window_start(),
            s.instance(),
            s.sequence()
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut f = match std::fs::File::create(&tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted under us (a cleanup job, an operator): make it again.
                    std::fs::create_dir_all(&self.dir)?;
                    std::fs::File::create(&tmp)?
                }
                other => other?,
            };
            f.write_all(encoded)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(&name))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// A local sink and the summaries it has not taken yet (oldest first).
struct Local {
    sink: Box<dyn Sink>,
    backlog: VecDeque<Arc<[u8]>>,
    bytes: usize,
    backoff: Backoff,
    next_attempt: Instant,
    failing: bool,
}

/// The local sinks, run by the sealing thread: each summary is offered to every sink once
/// when sealed; one a sink fails to take waits in that sink's backlog, bounded in bytes
/// (oldest dropped and counted), and is offered again with back-off.
pub(crate) struct LocalSinks {
    sinks: Vec<Local>,
    max_bytes: usize,
    stats: Arc<AgentStats>,
}

impl LocalSinks {
    pub(crate) fn new(sinks: Vec<Box<dyn Sink>>, max_bytes: usize, stats: Arc<AgentStats>) -> Self {
        let now = Instant::now();
        LocalSinks {
            sinks: sinks
                .into_iter()
                .map(|sink| Local {
                    sink,
                    backlog: VecDeque::new(),
                    bytes: 0,
                    backoff: Backoff::new(),
                    next_attempt: now,
                    failing: false,
                })
                .collect(),
            max_bytes,
            stats,
        }
    }

    /// Offers a new summary to every sink once.
    pub(crate) fn deliver(&mut self, summary: &WindowSummary, encoded: &Arc<[u8]>) {
        for i in 0..self.sinks.len() {
            if !self.attempt(i, summary, encoded) {
                let local = &mut self.sinks[i];
                local.bytes += encoded.len();
                local.backlog.push_back(Arc::clone(encoded));
                while local.bytes > self.max_bytes {
                    let Some(old) = local.backlog.pop_front() else {
                        break;
                    };
                    local.bytes -= old.len();
                    self.stats.local_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.publish();
    }

    /// Offers every waiting summary again: those whose back-off has passed, or with
    /// `now`, all of them once (flush and shutdown use their deadline, not the schedule).
    pub(crate) fn retry(&mut self, now: bool) {
        for i in 0..self.sinks.len() {
            let local = &mut self.sinks[i];
            if local.backlog.is_empty() || (!now && Instant::now() < local.next_attempt) {
                continue;
            }
            let mut kept = VecDeque::new();
            let waiting = std::mem::take(&mut self.sinks[i].backlog);
            let mut failed = false;
            for encoded in waiting {
                // In normal running a failure ends the round (the back-off paces the next);
                // at a deadline each summary gets its try.
                if (failed && !now) || !self.offer_again(i, &encoded) {
                    failed = true;
                    kept.push_back(encoded);
                } else {
                    self.sinks[i].bytes -= encoded.len();
                }
            }
            self.sinks[i].backlog = kept;
        }
        self.publish();
    }

    fn offer_again(&mut self, i: usize, encoded: &Arc<[u8]>) -> bool {
        match WindowSummary::decode(encoded) {
            Ok(summary) => self.attempt(i, &summary, encoded),
            // Encoded by this agent: cannot fail; if it did, keeping it would loop forever.
            Err(_) => true,
        }
    }

    /// One attempt; counts it, logs the first failure of a run and the recovery.
    fn attempt(&mut self, i: usize, summary: &WindowSummary, encoded: &[u8]) -> bool {
        let local = &mut self.sinks[i];
        // A panicking sink is a failed delivery, not a dead sealer.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            local.sink.deliver(summary, encoded)
        }))
        .unwrap_or_else(|_| Err(std::io::Error::other("the sink panicked")));
        match result {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                local.backoff.reset();
                if local.failing {
                    local.failing = false;
                    log::info!(target: "modelwatch::sink", "modelwatch: a sink stores summaries again");
                }
                true
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                local.next_attempt = Instant::now() + local.backoff.fail();
                if !local.failing {
                    local.failing = true;
                    log::warn!(
                        target: "modelwatch::sink",
                        "modelwatch: a sink failed to store a window summary: {e}; it is kept \
                         and retried with back-off (counted in Agent::stats)"
                    );
                }
                false
            }
        }
    }

    /// Summaries waiting in the sinks' backlogs.
    pub(crate) fn waiting(&self) -> u64 {
        self.sinks.iter().map(|l| l.backlog.len() as u64).sum()
    }

    fn publish(&self) {
        let (len, bytes) = self
            .sinks
            .iter()
            .fold((0, 0), |(n, b), l| (n + l.backlog.len(), b + l.bytes));
        self.stats.local_backlog_len.store(len, Ordering::Relaxed);
        self.stats
            .local_backlog_bytes
            .store(bytes, Ordering::Relaxed);
    }
}
