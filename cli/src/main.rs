//! `modelwatch inspect | collect | report`. Run `modelwatch help` for the options.

use modelwatch_cli::keys::{self, Key, Keys};
use modelwatch_cli::report::{self, Baseline};
use modelwatch_cli::{collect, inspect, Source};
use std::path::PathBuf;

const USAGE: &str = "\
modelwatch: read, collect and report on modelwatch window summaries

USAGE:
  modelwatch inspect PATH... [--merge] [--json]
      Print .msgpack summaries (files or folders) as tables; --merge merges them per
      deployment first; --json prints JSON. Exit status 1 if a file was skipped.

  modelwatch collect --listen ADDR --store FILE [--keys-file FILE] [--api-key-file FILE]
                     [--max-connections N] [--header-timeout SECS] [--body-timeout SECS]
                     [--max-inflight-decodes N] [--max-body-memory-mib N] [--threads N]
                     [--alert-webhook URL]... [--alertmanager URL]...
      Receive POST /v1/windows from agents and store each summary in SQLite before
      acknowledging it. Keys: --keys-file (or MODELWATCH_KEYS_FILE), one per line with the
      deployments it may write (KEY fraud_* churn_model [id=NAME]); MODELWATCH_API_KEY
      and --api-key-file (one key per line) for keys that may write any deployment.
      Defaults: 1024 connections, 10 s headers, 30 s body, one decode per core, 256 MiB
      of bodies, 2 threads. Stops on SIGINT/SIGTERM. (--api-key KEY: for tests; it
      shows in `ps`.) GET /metrics: Prometheus metrics. Incidents are POSTed as JSON to
      each --alert-webhook URL and to each Alertmanager (base URL) --alertmanager names.

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
            eprintln!(
                "modelwatch: {}\n\n{USAGE}",
                modelwatch_cli::text::sanitize(&e)
            );
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
    fn number<T: std::str::FromStr>(&self, flag: &str) -> Result<Option<T>, String> {
        self.one(flag)
            .map(|n| n.parse().map_err(|_| format!("{flag} takes a number")))
            .transpose()
    }
    fn seconds(&self, flag: &str) -> Result<Option<std::time::Duration>, String> {
        self.one(flag)
            .map(|n| {
                n.parse::<f64>()
                    .ok()
                    .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("{flag} takes a positive number of seconds"))
            })
            .transpose()
    }
    fn time(&self, flag: &str) -> Result<Option<i64>, String> {
        self.one(flag)
            .map(|t| modelwatch_cli::time::parse(&t))
            .transpose()
    }
}

/// The keys of `collect`: the key file (`--keys-file` or `MODELWATCH_KEYS_FILE`), keys for
/// any deployment from `MODELWATCH_API_KEY`, `--api-key-file` (one per line) and
/// `--api-key` (tests only: the command line shows in `ps`).
fn collect_keys(a: &Args) -> Result<Keys, String> {
    let mut keys = Vec::new();
    if let Some(file) = a
        .one("--keys-file")
        .or_else(|| std::env::var("MODELWATCH_KEYS_FILE").ok())
    {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
        keys.extend(keys::parse_file(&text).map_err(|e| format!("{file}: {e}"))?);
    }
    if let Some(file) = a.one("--api-key-file") {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            keys.push(Key::any_deployment(line)?);
        }
    }
    if let Ok(k) = std::env::var("MODELWATCH_API_KEY") {
        keys.push(Key::any_deployment(&k).map_err(|e| format!("MODELWATCH_API_KEY: {e}"))?);
    }
    let on_command_line = a.all("--api-key");
    if !on_command_line.is_empty() {
        eprintln!(
            "modelwatch collect: warning: --api-key shows in `ps` to every user of this machine; use --keys-file or MODELWATCH_API_KEY"
        );
    }
    for k in on_command_line {
        keys.push(Key::any_deployment(&k)?);
    }
    Keys::new(keys)
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
                    "--keys-file",
                    "--threads",
                    "--max-connections",
                    "--header-timeout",
                    "--body-timeout",
                    "--max-inflight-decodes",
                    "--max-body-memory-mib",
                    "--alert-webhook",
                    "--alertmanager",
                ],
                &[],
            )?;
            let listen = a.one("--listen").ok_or("collect needs --listen ADDR")?;
            let store = a.one("--store").ok_or("collect needs --store FILE")?;
            let keys = collect_keys(&a)?;
            let defaults = collect::Limits::default();
            let limits = collect::Limits {
                max_connections: a
                    .number("--max-connections")?
                    .unwrap_or(defaults.max_connections),
                header_timeout: a
                    .seconds("--header-timeout")?
                    .unwrap_or(defaults.header_timeout),
                body_timeout: a
                    .seconds("--body-timeout")?
                    .unwrap_or(defaults.body_timeout),
                max_inflight_decodes: a
                    .number("--max-inflight-decodes")?
                    .unwrap_or(defaults.max_inflight_decodes),
                max_body_memory: a
                    .number("--max-body-memory-mib")?
                    .map_or(defaults.max_body_memory, |m: usize| {
                        m.saturating_mul(1 << 20)
                    }),
                threads: a.number("--threads")?.unwrap_or(defaults.threads),
            };
            let alerts = modelwatch_cli::alerts::AlertConfig {
                webhooks: a.all("--alert-webhook"),
                alertmanagers: a.all("--alertmanager"),
                ..Default::default()
            };
            Ok(collect::run(
                &listen,
                std::path::Path::new(&store),
                keys,
                limits,
                modelwatch_cli::watch::WatchConfig::default(),
                alerts,
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
                eprintln!("modelwatch: skipped {}", modelwatch_cli::text::sanitize(s));
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
                    modelwatch_cli::json::to_terminal_text(&serde_json::Value::Array(all))
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
