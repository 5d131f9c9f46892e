//! `modelwatch inspect | collect | report | profile | constraints`. Run `modelwatch help` or `modelwatch COMMAND
//! --help` for the options.

use clap::{Args, Parser, Subcommand};
use modelwatch_cli::db::Location;
use modelwatch_cli::keys::{self, Key, Keys};
use modelwatch_cli::report::{self, Baseline};
use modelwatch_cli::retention::{self, Retention};
use modelwatch_cli::store::Resolution;
use modelwatch_cli::text::sanitize;
use modelwatch_cli::{collect, inspect, time, Source};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Read, collect and report on modelwatch window summaries.
#[derive(Parser)]
#[command(name = "modelwatch", version, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Inspect(InspectArgs),
    Collect(CollectArgs),
    Report(ReportArgs),
    Profile(ProfileArgs),
    Constraints(ConstraintsArgs),
}

/// Print .msgpack summaries (files or folders) as tables. Exit status 1 if a file was
/// skipped.
#[derive(Args)]
struct InspectArgs {
    /// Summary files, or folders of .msgpack files.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Merge the summaries per deployment first.
    #[arg(long)]
    merge: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Receive POST /v1/windows from agents and store each summary in SQLite (or PostgreSQL,
/// shared with other collectors) before acknowledging it. Stops on SIGINT/SIGTERM.
///
/// Keys that may write any deployment also come from the environment variable
/// MODELWATCH_API_KEY.
#[derive(Args)]
struct CollectArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// The store: a SQLite file (created if missing), or a PostgreSQL URL
    /// postgres://USER:PASSWORD@HOST:PORT/DB that any number of collectors share; from the
    /// environment, the password stays out of `ps`.
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "MODELWATCH_STORE",
        hide_env_values = true
    )]
    store: Location,
    /// One key per line with the deployments it may write: `KEY fraud_* churn_model
    /// [id=NAME]`.
    #[arg(long, value_name = "FILE", env = "MODELWATCH_KEYS_FILE")]
    keys_file: Option<PathBuf>,
    /// Keys that may write any deployment, one per line.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// A key for any deployment; for tests only: it shows in `ps`.
    #[arg(long, value_name = "KEY")]
    api_key: Vec<String>,
    /// Open connections at most; more are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = collect::Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds to receive a request's headers (also the idle time of a connection).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    header_timeout: Duration,
    /// Seconds to receive a request's body once its headers are in.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    body_timeout: Duration,
    /// Summaries decoded at once (16 times as many decoded and waiting for their commit)
    /// [default: the number of cores].
    #[arg(long, value_name = "N")]
    max_inflight_decodes: Option<usize>,
    /// MiB of request bodies held in memory at once, over all connections.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_body_memory_mib: usize,
    /// Threads of the runtime that runs the connections.
    #[arg(long, value_name = "N", default_value_t = collect::Limits::default().threads)]
    threads: usize,
    /// How long the store keeps the windows as sent (1m) and the hourly (1h) and daily (1d)
    /// rollups; a span (7d, 90d, 5y) or `forever`; a resolution left out keeps its default.
    #[arg(long, value_name = "RES=SPAN,...", default_value = retention::DEFAULT, value_parser = Retention::parse)]
    retain: Retention,
    #[command(flatten)]
    baseline: BaselineArgs,
    /// Seconds after a window's end before it is evaluated, its instances' summaries in.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    evaluate_after: Duration,
    /// Check every evaluated window of the file's deployment (its `deployment` field)
    /// against these constraints (from `modelwatch constraints`): each one violated opens
    /// an incident of kind constraint_violation; repeatable, one file per deployment.
    #[arg(long, value_name = "FILE")]
    constraints: Vec<PathBuf>,
    /// A URL that gets a JSON POST when an incident opens and when it closes (with a
    /// Slack-compatible `text`); repeatable.
    #[arg(long, value_name = "URL")]
    alert_webhook: Vec<String>,
    /// An Alertmanager base URL: incidents are posted to its /api/v2/alerts; repeatable.
    #[arg(long, value_name = "URL")]
    alertmanager: Vec<String>,
    /// Also export each feature's and output's distribution on /metrics as a Prometheus
    /// native histogram. Off by default: /metrics needs no key, and a histogram bucket
    /// holding one value locates it to 0.54 %.
    #[arg(long)]
    metrics_histograms: bool,
}

/// A timeline per window, the merged summary, and issues found against a baseline (default:
/// the first 3 windows). Exit status 1 if issues were found, 2 on errors.
///
/// T is Unix milliseconds or YYYY-MM-DDTHH:MM:SSZ.
#[derive(Args)]
struct ReportArgs {
    /// The store written by `modelwatch collect`: a SQLite file or a PostgreSQL URL; without
    /// it and without folders, the environment variable MODELWATCH_STORE.
    // Not clap's `env`: a store in the environment would conflict with `--dir`.
    #[arg(long, value_name = "FILE|URL", conflicts_with = "dir")]
    store: Option<Location>,
    /// Folders (or files) of .msgpack summaries; repeatable.
    #[arg(long, value_name = "PATH")]
    dir: Vec<PathBuf>,
    /// More folders or files, as with --dir.
    #[arg(value_name = "PATH", conflicts_with = "store")]
    paths: Vec<PathBuf>,
    /// Only this deployment.
    #[arg(long, value_name = "NAME")]
    deployment: Option<String>,
    /// Windows starting at or after T.
    #[arg(long, value_name = "T", value_parser = time::parse, conflicts_with = "since")]
    from: Option<i64>,
    /// Windows starting before T.
    #[arg(long, value_name = "T", value_parser = time::parse)]
    to: Option<i64>,
    /// Windows of the last SPAN: 24h, 30d, 2w, 1mo, 1y (UTC calendar).
    #[arg(long, value_name = "SPAN", value_parser = time::parse_span)]
    since: Option<jiff::Span>,
    #[command(flatten)]
    baseline: BaselineArgs,
    /// What to read from a store: 1m (the windows as sent), 1h or 1d (rollups), or auto:
    /// the finest that covers the range in at most 1,500 windows.
    #[arg(long, value_name = "RES", default_value = "auto", value_parser = ["auto", "1m", "1h", "1d"])]
    resolution: String,
    /// Check every window against these constraints (from `modelwatch constraints`, maybe
    /// edited): each violated one is an incident (kind constraint_violation), its runs of
    /// windows are listed, and the exit status is 1.
    #[arg(long, value_name = "FILE")]
    constraints: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// Profile a training (or validation) dataset, CSV files (.csv.gz too), into one summary
/// made with the deployment's hash key: a baseline for `report --baseline-file` and
/// `collect --baseline-file`, and the input of `constraints` (docs/baseline.md).
///
/// Prints the column types it used and what it could not read as given (records skipped,
/// cells not of their column's type, bytes not UTF-8).
#[derive(Args)]
struct ProfileArgs {
    /// CSV files with a header row, read in order into one profile.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The deployment the profile is a baseline of.
    #[arg(long, value_name = "NAME")]
    deployment: String,
    /// The column of the model's prediction (an output, not a feature).
    #[arg(long, value_name = "COL")]
    prediction: Option<String>,
    /// The column of the ground truth (with --prediction: logged as ground truth).
    #[arg(long, value_name = "COL", requires = "prediction")]
    label: Option<String>,
    /// The column naming each row's ground-truth segment.
    #[arg(long, value_name = "COL", requires = "label")]
    segment: Option<String>,
    /// A column to leave out; repeatable.
    #[arg(long, value_name = "COL")]
    exclude: Vec<String>,
    /// A column's type instead of the inferred one: int, float, bool, string or auto;
    /// repeatable.
    #[arg(long = "type", value_name = "COL=TYPE", value_parser = modelwatch_cli::profile::parse_type_override)]
    types: Vec<(String, modelwatch_cli::profile::ColumnType)>,
    /// The deployment's hash key file (its data folder's .hash-key, or that folder);
    /// default: MODELWATCH_HASH_KEY (32 hex characters).
    #[arg(long, value_name = "FILE")]
    hash_key_file: Option<PathBuf>,
    /// Where to write the profile (a .msgpack summary).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    quiet: bool,
    /// Threads that split, parse and fold records, besides the one reading the file [default:
    /// the cores, at most 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// Suggest constraints from a baseline summary (a training profile): per feature,
/// completeness, data type, range, known categories (hashed) and a distinct-count band, as
/// an editable JSON file for `report --constraints` (schema: docs/baseline.md).
#[derive(Args)]
struct ConstraintsArgs {
    /// The baseline summary (.msgpack), e.g. from `modelwatch profile`.
    #[arg(value_name = "FILE")]
    baseline: PathBuf,
    /// Where to write the constraints (JSON); default: standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The baseline flags `collect` and `report` share; the default number of first windows
/// differs (60 for a collector's watch, 3 for a report).
#[derive(Args)]
struct BaselineArgs {
    /// The baseline: the first N windows [default: 60 for collect, 3 for report]
    /// (docs/monitoring.md).
    #[arg(long, value_name = "N", conflicts_with_all = ["baseline_from", "baseline_file"])]
    baseline_windows: Option<usize>,
    /// The baseline: windows starting from T (with --baseline-to).
    #[arg(long, value_name = "T", value_parser = time::parse, requires = "baseline_to", conflicts_with = "baseline_file")]
    baseline_from: Option<i64>,
    /// The baseline: windows starting before T (with --baseline-from).
    #[arg(long, value_name = "T", value_parser = time::parse, requires = "baseline_from")]
    baseline_to: Option<i64>,
    /// The baseline: a summary file (a training profile from `modelwatch profile`, a saved
    /// window merge); every window is compared with it. Also `--baseline FILE`.
    #[arg(long, visible_alias = "baseline", value_name = "FILE")]
    baseline_file: Option<PathBuf>,
}

impl BaselineArgs {
    /// The baseline the flags name, as the library's monitor takes it.
    fn baseline(&self, default_windows: usize) -> Result<modelwatch::Baseline, String> {
        Ok(
            match (self.baseline_from, self.baseline_to, &self.baseline_file) {
                (_, _, Some(file)) => modelwatch::Baseline::Summary(Box::new(
                    inspect::read(file).map_err(|e| format!("{}: {e}", file.display()))?,
                )),
                (Some(f), Some(t), None) => modelwatch::Baseline::Range(f, t),
                _ => modelwatch::Baseline::FirstWindows(
                    self.baseline_windows.unwrap_or(default_windows),
                ),
            },
        )
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "takes a positive number of seconds".into())
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("modelwatch: {}", sanitize(&e));
            2
        }
    };
    std::process::exit(code);
}

/// Writes to stdout. A reader that closed the pipe (`| head`) has what it wanted: that is
/// not an error, and nothing more is written.
fn emit(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(format!("cannot write: {e}")),
        _ => Ok(()),
    }
}

/// The keys of `collect`: the key file (`--keys-file` or `MODELWATCH_KEYS_FILE`), keys for
/// any deployment from `MODELWATCH_API_KEY`, `--api-key-file` (one per line) and
/// `--api-key` (tests only: the command line shows in `ps`).
fn collect_keys(a: &CollectArgs) -> Result<Keys, String> {
    let read = |file: &PathBuf| {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    };
    let mut keys = Vec::new();
    if let Some(file) = &a.keys_file {
        keys.extend(
            keys::parse_file(&read(file)?).map_err(|e| format!("{}: {e}", file.display()))?,
        );
    }
    if let Some(file) = &a.api_key_file {
        for line in read(file)?.lines().map(str::trim).filter(|l| !l.is_empty()) {
            keys.push(Key::any_deployment(line)?);
        }
    }
    if let Ok(k) = std::env::var("MODELWATCH_API_KEY") {
        keys.push(Key::any_deployment(&k).map_err(|e| format!("MODELWATCH_API_KEY: {e}"))?);
    }
    if !a.api_key.is_empty() {
        eprintln!(
            "modelwatch collect: warning: --api-key shows in `ps` to every user of this machine; use --keys-file or MODELWATCH_API_KEY"
        );
    }
    for k in &a.api_key {
        keys.push(Key::any_deployment(k)?);
    }
    Keys::new(keys)
}

fn run(command: Command) -> Result<i32, String> {
    match command {
        Command::Inspect(a) => {
            let mut code = 0;
            emit(|out| {
                code = inspect::run(&a.paths, a.merge, a.json, out)?;
                Ok(())
            })?;
            Ok(code)
        }
        Command::Collect(a) => {
            let keys = collect_keys(&a)?;
            let limits = collect::Limits {
                max_connections: a.max_connections,
                header_timeout: a.header_timeout,
                body_timeout: a.body_timeout,
                max_inflight_decodes: a
                    .max_inflight_decodes
                    .unwrap_or(collect::Limits::default().max_inflight_decodes),
                max_body_memory: a.max_body_memory_mib.saturating_mul(1 << 20),
                threads: a.threads,
            };
            let alerts = modelwatch_cli::alerts::AlertConfig {
                webhooks: a.alert_webhook.clone(),
                alertmanagers: a.alertmanager.clone(),
                ..Default::default()
            };
            let watch = modelwatch_cli::watch::WatchConfig {
                baseline: a.baseline.baseline(60)?,
                evaluate_after: a.evaluate_after,
                constraints: a
                    .constraints
                    .iter()
                    .map(|f| modelwatch_cli::constraints::read(f))
                    .collect::<Result<_, _>>()?,
            }
            .checked()?;
            let monitoring = collect::Monitoring {
                watch,
                alerts,
                metrics_histograms: a.metrics_histograms,
            };
            Ok(collect::run(
                &a.listen, &a.store, keys, limits, &a.retain, monitoring,
            ))
        }
        Command::Report(a) => report_command(a),
        Command::Profile(a) => profile_command(a),
        Command::Constraints(a) => {
            let base =
                inspect::read(&a.baseline).map_err(|e| format!("{}: {e}", a.baseline.display()))?;
            let c = modelwatch_cli::constraints::suggest(&base);
            let text = serde_json::to_string_pretty(&c).map_err(|e| e.to_string())? + "\n";
            match &a.output {
                Some(f) => std::fs::write(f, text)
                    .map_err(|e| format!("cannot write {}: {e}", f.display()))?,
                None => emit(|out| out.write_all(text.as_bytes()))?,
            }
            Ok(0)
        }
    }
}

fn report_command(a: ReportArgs) -> Result<i32, String> {
    let mut dirs = a.dir;
    dirs.extend(a.paths);
    let from_env = || match std::env::var("MODELWATCH_STORE") {
        Ok(s) if dirs.is_empty() => Some(Location::parse(&s)),
        _ => None,
    };
    let source =
        match (a.store.or_else(from_env), dirs.is_empty()) {
            (Some(store), true) => Source::Store(store),
            (None, false) => Source::Files(dirs),
            _ => return Err(
                "report needs --store FILE|URL (or MODELWATCH_STORE) or --dir PATH (see --help)"
                    .into(),
            ),
        };
    let baseline = match a.baseline.baseline(3)? {
        modelwatch::Baseline::Summary(s) => Baseline::Summary(s),
        modelwatch::Baseline::Range(f, t) => Baseline::Range(f, t),
        modelwatch::Baseline::FirstWindows(n) => Baseline::FirstWindows(n),
        other => return Err(format!("report cannot use the baseline {other:?}")),
    };
    let from = match a.since {
        Some(span) => time::before(time::now_ms(), span)?,
        None => a.from.unwrap_or(i64::MIN),
    };
    let to = a.to.unwrap_or(i64::MAX);
    let deployment = a.deployment.as_deref();
    let constraints = match &a.constraints {
        Some(f) => Some(modelwatch_cli::constraints::read(f)?),
        None => None,
    };
    let (reports, skipped, _) = report::run_checked(
        &source,
        Resolution::from_name(&a.resolution),
        deployment,
        from,
        to,
        &baseline,
        constraints.as_ref(),
    )?;
    for s in &skipped {
        eprintln!("modelwatch: skipped {}", sanitize(s));
    }
    if reports.is_empty() {
        return Err(report::nothing_found(&source, deployment, from, to));
    }
    if let Some(file) = &a.html {
        std::fs::write(file, modelwatch_cli::html::page(&reports))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    emit(|out| {
        if a.json {
            let all: Vec<_> = reports.iter().map(report::to_json).collect();
            writeln!(
                out,
                "{}",
                modelwatch_cli::json::to_terminal_text(&serde_json::Value::Array(all))
            )
        } else {
            reports
                .iter()
                .try_for_each(|r| out.write_all(report::to_text(r).as_bytes()))
        }
    })?;
    Ok(i32::from(reports.iter().any(|r| {
        !r.incidents.is_empty() || r.violations.as_ref().is_some_and(|v| !v.is_empty())
    })))
}

fn profile_command(a: ProfileArgs) -> Result<i32, String> {
    use modelwatch_cli::profile;
    use std::io::IsTerminal;
    let mut options = profile::Options::new(
        &a.deployment,
        profile::hash_key(a.hash_key_file.as_deref())?,
    );
    options.prediction = a.prediction;
    options.label = a.label;
    options.segment = a.segment;
    options.exclude = a.exclude;
    let overrides: Vec<String> = a.types.iter().map(|(n, _)| n.clone()).collect();
    options.types = a.types;
    options.progress = !a.quiet && std::io::stderr().is_terminal();
    if let Some(n) = a.threads {
        options.threads = usize::from(n);
    }
    let started = std::time::Instant::now();
    let p = profile::profile_files(&a.files, &options)?;
    std::fs::write(&a.output, p.summary.encode())
        .map_err(|e| format!("cannot write {}: {e}", a.output.display()))?;
    for name in overrides
        .iter()
        .filter(|n| !p.types.iter().any(|(t, _)| t == *n))
    {
        eprintln!(
            "modelwatch profile: warning: --type names {:?}, which no file has (or which is excluded)",
            sanitize(name)
        );
    }
    let c = &p.counts;
    let types: Vec<String> = p
        .types
        .iter()
        .map(|(n, t)| format!("{}={}", sanitize(n), t.name()))
        .collect();
    eprintln!(
        "modelwatch profile: {} rows in {:.1} s into {}; types: {}",
        c.rows,
        started.elapsed().as_secs_f64(),
        a.output.display(),
        types.join(" ")
    );
    if c.bad_rows + c.mistyped + c.invalid_utf8 > 0 {
        eprintln!(
            "modelwatch profile: {} record(s) skipped (malformed), {} cell(s) not of their column's type (logged as strings), {} cell(s) not UTF-8",
            c.bad_rows, c.mistyped, c.invalid_utf8
        );
    }
    Ok(0)
}
