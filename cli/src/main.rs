//! `modelwatch inspect | collect | report`. Run `modelwatch help` for the options.

use modelwatch_cli::report::{self, Baseline};
use modelwatch_cli::{collect, inspect, Source};
use std::path::PathBuf;

const USAGE: &str = "\
modelwatch: read, collect and report on modelwatch window summaries

USAGE:
  modelwatch inspect PATH... [--merge] [--json]
      Print .msgpack summaries (files or folders) as tables; --merge merges them per
      deployment first; --json prints JSON. Exit status 1 if a file was skipped.

  modelwatch collect --listen ADDR --store FILE [--api-key KEY]... [--api-key-file FILE] [--threads N]
      Receive POST /v1/windows from agents and store each summary in SQLite before
      acknowledging it. Keys also from MODELWATCH_API_KEY. Stops on SIGINT/SIGTERM.

  modelwatch report (--store FILE | --dir PATH...) [--deployment NAME] [--from T] [--to T]
                    [--baseline-windows N | --baseline-from T --baseline-to T]
                    [--json] [--html FILE]
      A timeline per window, the merged summary, and issues found against a baseline
      (default: the first 3 windows). T: Unix milliseconds or YYYY-MM-DDTHH:MM:SSZ.
      Exit status 1 if issues were found, 2 on errors.
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("modelwatch: {e}\n\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

/// Flags and positional arguments of one subcommand.
struct Args {
    flags: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String], with_value: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut out = Args {
            flags: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if with_value.contains(&a.as_str()) {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                out.flags.push((a.clone(), Some(v.clone())));
            } else if switches.contains(&a.as_str()) {
                out.flags.push((a.clone(), None));
            } else if a.starts_with("--") {
                return Err(format!("unknown option {a}"));
            } else {
                out.positional.push(a.clone());
            }
        }
        Ok(out)
    }
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == flag)
    }
    fn all(&self, flag: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(f, _)| f == flag)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }
    fn one(&self, flag: &str) -> Option<String> {
        self.all(flag).pop()
    }
    fn time(&self, flag: &str) -> Result<Option<i64>, String> {
        self.one(flag)
            .map(|t| modelwatch_cli::time::parse(&t))
            .transpose()
    }
}

fn run(args: &[String]) -> Result<i32, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("no command".into());
    };
    match command.as_str() {
        "inspect" => {
            let a = Args::parse(rest, &[], &["--merge", "--json"])?;
            if a.positional.is_empty() {
                return Err("inspect needs at least one file or folder".into());
            }
            let paths: Vec<PathBuf> = a.positional.iter().map(PathBuf::from).collect();
            Ok(inspect::run(&paths, a.has("--merge"), a.has("--json")))
        }
        "collect" => {
            let a = Args::parse(
                rest,
                &[
                    "--listen",
                    "--store",
                    "--api-key",
                    "--api-key-file",
                    "--threads",
                ],
                &[],
            )?;
            let listen = a.one("--listen").ok_or("collect needs --listen ADDR")?;
            let store = a.one("--store").ok_or("collect needs --store FILE")?;
            let mut keys = a.all("--api-key");
            if let Some(file) = a.one("--api-key-file") {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {file}: {e}"))?;
                keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            if let Ok(k) = std::env::var("MODELWATCH_API_KEY") {
                keys.push(k);
            }
            let threads = a
                .one("--threads")
                .map(|t| t.parse().map_err(|_| "--threads takes a number"))
                .transpose()?
                .unwrap_or(8);
            Ok(collect::run(
                &listen,
                std::path::Path::new(&store),
                keys,
                threads,
            ))
        }
        "report" => {
            let a = Args::parse(
                rest,
                &[
                    "--store",
                    "--dir",
                    "--deployment",
                    "--from",
                    "--to",
                    "--baseline-windows",
                    "--baseline-from",
                    "--baseline-to",
                    "--html",
                ],
                &["--json"],
            )?;
            let mut dirs: Vec<PathBuf> = a.all("--dir").into_iter().map(PathBuf::from).collect();
            dirs.extend(a.positional.iter().map(PathBuf::from));
            let source = match (a.one("--store"), dirs.is_empty()) {
                (Some(store), true) => Source::Store(store.into()),
                (None, false) => Source::Files(dirs),
                _ => return Err("report needs --store FILE or --dir PATH".into()),
            };
            let baseline = match (a.time("--baseline-from")?, a.time("--baseline-to")?) {
                (Some(f), Some(t)) => Baseline::Range(f, t),
                (None, None) => Baseline::FirstWindows(
                    a.one("--baseline-windows")
                        .map(|n| n.parse().map_err(|_| "--baseline-windows takes a number"))
                        .transpose()?
                        .unwrap_or(3),
                ),
                _ => return Err("--baseline-from and --baseline-to go together".into()),
            };
            let from = a.time("--from")?.unwrap_or(i64::MIN);
            let to = a.time("--to")?.unwrap_or(i64::MAX);
            let (summaries, skipped) =
                report::load(&source, a.one("--deployment").as_deref(), from, to)?;
            for s in &skipped {
                eprintln!("modelwatch: skipped {s}");
            }
            let reports = report::build(summaries, &baseline);
            if reports.is_empty() {
                return Err("no summaries in that range".into());
            }
            if let Some(file) = a.one("--html") {
                std::fs::write(&file, modelwatch_cli::html::page(&reports))
                    .map_err(|e| format!("cannot write {file}: {e}"))?;
            }
            if a.has("--json") {
                let all: Vec<_> = reports.iter().map(report::to_json).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&all).expect("JSON values serialize")
                );
            } else {
                for r in &reports {
                    print!("{}", report::to_text(r));
                }
            }
            Ok(i32::from(reports.iter().any(|r| !r.findings.is_empty())))
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(format!("unknown command {other:?}")),
    }
}
