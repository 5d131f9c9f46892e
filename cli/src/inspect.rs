//! `modelwatch inspect`: read summary files, print them (merged per deployment if asked).

use modelwatch::WindowSummary;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Summaries read from files, and the files that could not be read, with why.
#[derive(Default)]
pub struct Loaded {
    pub summaries: Vec<(PathBuf, WindowSummary)>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads files, and folders of `.msgpack` files (not recursively), in name order.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut files = Vec::new();
    let mut out = Loaded::default();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|f| f.extension().is_some_and(|x| x == "msgpack"))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => out.skipped.push((p.clone(), e.to_string())),
            }
        } else {
            files.push(p.clone());
        }
    }
    for f in files {
        match read(&f) {
            Ok(s) => out.summaries.push((f, s)),
            Err(e) => out.skipped.push((f, e)),
        }
    }
    out
}

fn read(path: &Path) -> Result<WindowSummary, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > modelwatch::MAX_SUMMARY_BYTES as u64 {
        return Err(format!("{} bytes: larger than any summary", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
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

/// Runs `inspect`; returns the exit status (1 when some file was skipped).
pub fn run(paths: &[PathBuf], merge: bool, as_json: bool) -> i32 {
    let loaded = load(paths);
    for (f, why) in &loaded.skipped {
        eprintln!("modelwatch: skipped {}: {why}", f.display());
    }
    let summaries: Vec<WindowSummary> = if merge {
        merge_per_deployment(loaded.summaries.into_iter().map(|(_, s)| s))
    } else {
        loaded.summaries.into_iter().map(|(_, s)| s).collect()
    };
    if as_json {
        let all: Vec<serde_json::Value> = summaries.iter().map(crate::json::summary).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("JSON values serialize")
        );
    } else {
        for s in &summaries {
            println!("{s}");
        }
    }
    i32::from(!loaded.skipped.is_empty())
}
