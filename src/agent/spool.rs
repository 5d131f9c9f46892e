//! The spool: summaries the collector has not acknowledged, kept as files in
//! `<data folder>/spool/` so that the next agent started on that folder sends them after a
//! crash, a `kill -9` or a shutdown past its deadline. Bounded together with the in-memory
//! backlog (`Config::max_backlog_bytes`): a file leaves when its summary is delivered,
//! refused or dropped by the bound.
//!
//! Several processes may share a data folder (the workers of one server). Each agent holds
//! an exclusive lock on `<instance>.lock` for its life; the operating system releases it
//! when the process dies, however it dies. A starting agent adopts only the files of
//! instances whose lock it can take (dead ones), by renaming them to its own name first,
//! so that two agents starting at once never both send one file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(crate) struct Spool {
    dir: PathBuf,
    instance: u64,
    /// The lock that tells other agents this one is alive (held, never read).
    _alive: Option<File>,
    /// Whether a failed write was reported (once per run of failures).
    warned: bool,
}

/// A summary adopted from the spool at start.
pub(crate) struct Spooled {
    pub(crate) path: PathBuf,
    pub(crate) body: Vec<u8>,
}

/// The instance a spool file belongs to, from its name (`<instance>-<id>.msgpack`,
/// `.<instance>-<id>.tmp`, `<instance>.lock`).
fn owner(name: &str) -> Option<u64> {
    let hex = name.trim_start_matches('.').get(..16)?;
    u64::from_str_radix(hex, 16).ok()
}

impl Spool {
    pub(crate) fn new(data_dir: &Path, instance: u64) -> Spool {
        let dir = data_dir.join("spool");
        let alive = (|| {
            std::fs::create_dir_all(&dir)?;
            let f = File::create(dir.join(format!("{instance:016x}.lock")))?;
            f.try_lock().map_err(std::io::Error::from)?;
            Ok::<_, std::io::Error>(f)
        })();
        if let Err(e) = &alive {
            log::warn!(
                target: "modelwatch::spool",
                "modelwatch: cannot lock the spool in {}: {e}; another agent starting on this \
                 folder may send this one's summaries too (the collector drops duplicates)",
                dir.display()
            );
        }
        Spool {
            dir,
            instance,
            _alive: alive.ok(),
            warned: false,
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir
            .join(format!("{:016x}-{id:012}.msgpack", self.instance))
    }

    /// Writes one summary (temporary file, then rename: a crash mid-write leaves no
    /// truncated summary to replay). Not synced: it survives the process, not the machine.
    /// `None` when it could not be written; the summary then lives in memory only.
    pub(crate) fn write(&mut self, id: u64, body: &[u8]) -> Option<PathBuf> {
        let path = self.path(id);
        let tmp = self
            .dir
            .join(format!(".{:016x}-{id:012}.tmp", self.instance));
        let write = || {
            std::fs::create_dir_all(&self.dir)?;
            std::fs::write(&tmp, body)?;
            std::fs::rename(&tmp, &path)
        };
        match write() {
            Ok(()) => {
                self.warned = false;
                Some(path)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if !self.warned {
                    self.warned = true;
                    log::warn!(
                        target: "modelwatch::spool",
                        "modelwatch: cannot spool a summary in {}: {e}; it waits in memory only",
                        self.dir.display()
                    );
                }
                None
            }
        }
    }

    /// Whether the agent `instance` is still running (holds its lock).
    fn alive(&self, instance: u64) -> bool {
        if instance == self.instance {
            return true;
        }
        let lock = self.dir.join(format!("{instance:016x}.lock"));
        match File::open(&lock) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Adopts the summaries of agents no longer running, oldest first, renamed to this
    /// agent's names with ids 0, 1, ... (the outbox's ids for them). Their temporary files
    /// and locks are removed.
    pub(crate) fn adopt(&self) -> Vec<Spooled> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
        let mut dead_locks = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let dead = owner(&name).is_none_or(|i| !self.alive(i));
            if !dead {
                continue;
            }
            match path.extension().and_then(|x| x.to_str()) {
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                Some("lock") => dead_locks.push(path),
                Some("msgpack") => {
                    let modified = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    found.push((modified, path));
                }
                _ => {}
            }
        }
        found.sort();
        let mut adopted = Vec::new();
        for (_, old) in found {
            let new = self.path(adopted.len() as u64);
            // A rename is atomic: of two agents adopting at once, one gets each file.
            if std::fs::rename(&old, &new).is_err() {
                continue;
            }
            match std::fs::read(&new) {
                Ok(body) => adopted.push(Spooled { path: new, body }),
                Err(_) => {
                    let _ = std::fs::remove_file(&new);
                }
            }
        }
        for lock in dead_locks {
            let _ = std::fs::remove_file(lock);
        }
        adopted
    }
}
