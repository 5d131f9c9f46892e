//! `modelwatch inspect`: read summary files, print them (merged per deployment if asked).

use crate::text::sanitize;
use modelwatch::WindowSummary;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Summaries read from files, and the files that could not be read, with why.
#[derive(Default)]
pub struct Loaded {
    pub summaries: Vec<(PathBuf, WindowSummary)>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads files, and folders of `.msgpack` files (not recursively), in name order. In a
/// folder only regular files are read: a symlink or a device named `.msgpack` (one to
/// `/dev/zero` would be read until memory runs out) is reported as skipped.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let (files, skipped) = list(paths);
    let mut out = Loaded {
        summaries: Vec::new(),
        skipped,
    };
    for f in files {
        match read(&f) {
            Ok(s) => out.summaries.push((f, s)),
            Err(e) => out.skipped.push((f, e)),
        }
    }
    out
}

/// The files [`load`] reads, in its order, and what it skips without reading (with why).
pub fn list(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut out = Loaded::default();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut found = Vec::new();
                    for e in entries.flatten() {
                        let path = e.path();
                        if path.extension().is_none_or(|x| x != "msgpack") {
                            continue;
                        }
                        // `DirEntry::file_type` does not follow symlinks.
                        match e.file_type() {
                            Ok(t) if t.is_file() => found.push(path),
                            Ok(t) if t.is_symlink() => {
                                out.skipped.push((path, "a symlink: not followed".into()))
                            }
                            Ok(_) => out.skipped.push((path, "not a regular file".into())),
                            Err(err) => out.skipped.push((path, err.to_string())),
                        }
                    }
                    found.sort();
                    files.extend(found);
                }
                Err(e) => out.skipped.push((p.clone(), e.to_string())),
            }
        } else {
            files.push(p.clone());
        }
    }
    (files, out.skipped)
}

/// Reads one summary file: a regular file (a file named on the command line may be a
/// symlink to one), and never more than the largest summary, whatever its size claims.
pub fn read(path: &Path) -> Result<WindowSummary, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let limit = modelwatch::MAX_SUMMARY_BYTES as u64;
    if meta.len() > limit {
        return Err(format!("{} bytes: larger than any summary", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err("grew past the largest summary while read".into());
    }
    WindowSummary::decode(&bytes).map_err(|e| e.to_string())
}

/// Merges summaries per deployment, in time order.
pub fn merge_per_deployment(
    summaries: impl IntoIterator<Item = WindowSummary>,
) -> Vec<WindowSummary> {
    let mut by: BTreeMap<String, Vec<WindowSummary>> = BTreeMap::new();
    for s in summaries {
        by.entry(s.deployment().to_owned()).or_default().push(s);
    }
    by.into_values()
        .filter_map(|mut v| {
            v.sort_by_key(|s| (s.window_start(), s.instance(), s.sequence()));
            crate::report::merge_all(&v)
        })
        .collect()
}

/// Runs `inspect`, printing to `out`; returns the exit status (1 when some file was skipped).
pub fn run(
    paths: &[PathBuf],
    merge: bool,
    as_json: bool,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let loaded = load(paths);
    for (f, why) in &loaded.skipped {
        eprintln!(
            "modelwatch: skipped {}: {}",
            sanitize(&f.display().to_string()),
            sanitize(why)
        );
    }
    let summaries: Vec<WindowSummary> = if merge {
        merge_per_deployment(loaded.summaries.into_iter().map(|(_, s)| s))
    } else {
        loaded.summaries.into_iter().map(|(_, s)| s).collect()
    };
    if as_json {
        let all: Vec<serde_json::Value> = summaries.iter().map(crate::json::summary).collect();
        writeln!(
            out,
            "{}",
            crate::json::to_terminal_text(&serde_json::Value::Array(all))
        )?;
    } else {
        for s in &summaries {
            writeln!(out, "{s}")?; // the table escapes every shipped string
        }
    }
    Ok(i32::from(!loaded.skipped.is_empty()))
}
