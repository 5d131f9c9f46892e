//! The spool: summaries the collector has not acknowledged, kept as files in
//! `<data folder>/spool/` so that the next agent started on that folder sends them after a
//! crash, a `kill -9` or a shutdown past its deadline. Bounded together with the in-memory
//! backlog (`Config::max_backlog_bytes`): a file leaves when its summary is delivered,
//! refused or dropped by the bound.

use std::path::{Path, PathBuf};

pub(crate) struct Spool {
    dir: PathBuf,
    /// Whether a failed write was reported (once per run of failures).
    warned: bool,
}

/// A summary found in the spool at start.
pub(crate) struct Spooled {
    pub(crate) path: PathBuf,
    pub(crate) body: Vec<u8>,
}

impl Spool {
    pub(crate) fn new(data_dir: &Path) -> Spool {
        Spool {
            dir: data_dir.join("spool"),
            warned: false,
        }
    }

    /// Writes one summary (temporary file, then rename: a crash mid-write leaves no
    /// truncated summary to replay). Not synced: it survives the process, not the machine.
    /// `None` when it could not be written; the summary then lives in memory only.
    pub(crate) fn write(&mut self, instance: u64, id: u64, body: &[u8]) -> Option<PathBuf> {
        let path = self.dir.join(format!("{instance:016x}-{id:012}.msgpack"));
        let tmp = self.dir.join(format!(".{instance:016x}-{id:012}.tmp"));
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

    /// The summaries a previous agent left, oldest first. Temporary files of an interrupted
    /// write are removed.
    pub(crate) fn replay(&self) -> Vec<Spooled> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(&path);
            } else if path.extension().is_some_and(|x| x == "msgpack") {
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                found.push((modified, path));
            }
        }
        found.sort();
        found
            .into_iter()
            .filter_map(|(_, path)| {
                let body = std::fs::read(&path).ok()?;
                Some(Spooled { path, body })
            })
            .collect()
    }
}
