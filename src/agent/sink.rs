//! Where sealed summaries go.

use crate::core::summary::WindowSummary;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Receives every sealed window summary, on the agent's background thread (never on a
/// thread that logs). `encoded` is the MessagePack form of `summary`: what a sink should
/// store or send.
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
    /// Stores or sends one summary. An error is counted in the agent's statistics.
    fn deliver(&mut self, summary: &WindowSummary, encoded: &[u8]) -> std::io::Result<()>;
}

/// Writes each summary to its own file, atomically (temporary file, then rename), named
/// `<deployment>.<window start ms>.<instance>.<sequence>.msgpack`. A deployment name is
/// kept as is when it is at most 64 ASCII letters, digits, `-` and `_`; any other is cut
/// and cleaned to those, and followed by `~` and a hash of the whole name, so that two
/// deployments never share a file name.
#[derive(Debug)]
pub struct FolderSink {
    dir: PathBuf,
}

impl FolderSink {
    /// A sink writing into `dir`, which is created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FolderSink { dir })
    }

    /// The folder written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
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
            let mut f = std::fs::File::create(&tmp)?;
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
