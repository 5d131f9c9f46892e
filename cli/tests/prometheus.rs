//! `GET /metrics`: the exposition's series against values computed apart, and a real
//! Prometheus (Debian's `prometheus`) scraping the real collector, in the text format and,
//! with native histograms enabled, in the protobuf format, asked through its HTTP API for
//! the predictions logged and the quantiles of the values logged.

mod client;

use modelwatch::{
    Baseline, IncidentEvent, Monitor, SummaryBuilder, Value, WindowSummary, RELATIVE_ERROR,
};
use modelwatch_cli::metrics::{CollectorCounts, Format, Metrics, MAX_DEPLOYMENTS};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_modelwatch");
const KEY: &str = "prometheus-test-key";
const HASH_KEY: [u8; 16] = *b"prom-test-hashky";
/// A deployment and feature name that the exposition must escape.
const ODD: &str = "a \"b\"\n\\c";

fn temp_dir(tag: &str) -> PathBuf {
    client::temp_dir("prom", tag)
}

/// Polls `done` for up to two minutes (Prometheus starts and scrapes on a shared machine).
fn wait_for<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = done() {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    client::http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// The value of the sample `series` (name and labels exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Row `i` of a window of `n`: `amount` uniform over `scale` × [0, 1), `balance` of both
/// signs with a zero every fifth row, and the prediction, a score in [0, 1) with zeros.
fn row(i: usize, n: usize, scale: f64) -> (f64, f64, f64) {
    let amount = scale * (i as f64 + 0.5) / n as f64;
    let balance = if i.is_multiple_of(5) {
        0.0
    } else {
        (i as f64 - 0.3 * n as f64) * 1.7
    };
    (amount, balance, (i % 20) as f64 / 20.0)
}

/// A window of `n` predictions ([`row`]): `age` missing for `missing` of them, labels in
/// segment `eu` right for the first `right`.
fn window(minute: i64, n: usize, missing: usize, scale: f64, right: usize) -> WindowSummary {
    let mut b = SummaryBuilder::new("fraud", minute * 60_000, 60_000, HASH_KEY);
    for i in 0..n {
        let age = (i >= missing).then_some(20 + (i % 50) as i64);
        let (amount, balance, prediction) = row(i, n, scale);
        b.log_prediction(
            [
                ("age", Value::from(age)),
                ("amount", Value::from(amount)),
                ("balance", Value::from(balance)),
            ],
            prediction,
        );
        let label = (i % 2) as i64;
        let predicted = if i < right { label } else { 1 - label };
        b.log_ground_truth(label, predicted, ["eu"]);
        b.record_latency(0.001 * (1 + i % 10) as f64);
    }
    b.build()
}

#[test]
fn the_exposition_has_each_series_of_the_latest_window() {
    let metrics = Metrics::new();
    let baseline = window(0, 400, 4, 100.0, 400);
    let latest = window(5, 400, 100, 160.0, 300);
    metrics.observe(&window(4, 250, 0, 100.0, 250), Some(&baseline));
    metrics.observe(&latest, Some(&baseline));
    // An older window counts its predictions but is not the one shown.
    metrics.observe(&window(3, 50, 0, 100.0, 50), Some(&baseline));

    let mut monitor = Monitor::new(Baseline::FirstWindows(1));
    monitor.observe(&baseline);
    let mut opened = 0;
    for minute in 1..4 {
        for e in monitor.observe(&window(minute, 400, 200, 100.0, 400)) {
            opened += usize::from(matches!(e, IncidentEvent::Opened(_)));
        }
    }
    assert!(opened >= 1);
    metrics.incidents("fraud", monitor.incidents());

    let text = metrics.render(CollectorCounts {
        accepted: 3,
        duplicates: 1,
        rejected: vec![("unauthorized", 2)],
        alerts: vec![("delivered", 5)],
        commits: 2,
    });
    assert!(text.ends_with("# EOF\n"), "{text}");
    let v = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        v(r#"modelwatch_predictions_total{deployment="fraud"}"#),
        700.0
    );
    assert_eq!(v("modelwatch_store_commits_total"), 2.0);
    assert_eq!(
        v(r#"modelwatch_window_predictions{deployment="fraud"}"#),
        400.0
    );
    assert_eq!(
        v(r#"modelwatch_window_start_seconds{deployment="fraud"}"#),
        300.0
    );
    assert_eq!(
        v(r#"modelwatch_feature_missing_ratio{deployment="fraud",feature="age"}"#),
        0.25
    );
    assert_eq!(
        v(r#"modelwatch_feature_missing_ratio{deployment="fraud",feature="amount"}"#),
        0.0
    );
    // Amounts stretched 1.6×: the first nine of the baseline's decile bins (edges 10 to
    // 90) hold 10/160 = 0.0625 of them each, the last 0.4375, so
    // PSI = 9 (0.0625 - 0.1) ln(0.625) + (0.4375 - 0.1) ln(4.375).
    let psi = v(r#"modelwatch_feature_drift_psi{deployment="fraud",feature="amount"}"#);
    let expected = 9.0 * (0.0625 - 0.1) * (0.625f64).ln() + (0.4375 - 0.1) * (4.375f64).ln();
    assert!((psi - expected).abs() < 0.03, "{psi} vs {expected}");
    assert_eq!(
        v(r#"modelwatch_accuracy_ratio{deployment="fraud",segment="eu"}"#),
        0.75
    );
    assert_eq!(
        v(r#"modelwatch_accuracy_ratio{deployment="fraud",segment="(all)"}"#),
        0.75
    );
    assert!((v(r#"modelwatch_f1_ratio{deployment="fraud",segment="eu"}"#) - 0.75).abs() < 1e-9);
    // Latencies 1 to 10 ms, 40 each: the median is 5 ms, p99 10 ms (histogram precision).
    let p50 = v(r#"modelwatch_latency_seconds{deployment="fraud",quantile="0.5"}"#);
    assert!((p50 - 0.005).abs() < 0.005 * 0.01, "{p50}");
    let p99 = v(r#"modelwatch_latency_seconds{deployment="fraud",quantile="0.99"}"#);
    assert!((p99 - 0.010).abs() < 0.010 * 0.01, "{p99}");
    let open = monitor.incidents().iter().filter(|i| i.is_open()).count();
    assert_eq!(
        v(r#"modelwatch_open_incidents{deployment="fraud",kind="missing_rate"}"#),
        open as f64
    );
    assert_eq!(v("modelwatch_ingest_accepted_total"), 3.0);
    assert_eq!(v("modelwatch_ingest_duplicates_total"), 1.0);
    assert_eq!(
        v(r#"modelwatch_ingest_rejected_total{reason="unauthorized"}"#),
        2.0
    );
    assert_eq!(v(r#"modelwatch_alerts_total{outcome="delivered"}"#), 5.0);
}

#[test]
fn deployments_past_the_cap_are_counted_not_exported() {
    let metrics = Metrics::new();
    for d in 0..MAX_DEPLOYMENTS + 5 {
        let mut b = SummaryBuilder::new(&format!("model{d:03}"), 0, 60_000, HASH_KEY);
        b.log_prediction([("x", 1.0)], 0.0);
        metrics.observe(&b.build(), None);
    }
    let text = metrics.render(CollectorCounts::default());
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("modelwatch_predictions_total{"))
            .count(),
        MAX_DEPLOYMENTS
    );
    assert_eq!(
        sample(&text, "modelwatch_metrics_deployments_over_cap_total"),
        Some(5.0)
    );
}

/// The Accept headers of Prometheus 2.42 (Debian bookworm's, captured from its scrapes),
/// without and with `--enable-feature=native-histograms`.
const ACCEPT_TEXT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const ACCEPT_PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn protobuf_is_served_only_to_those_who_rank_it_first() {
    assert_eq!(Format::negotiate(Some(ACCEPT_PROTOBUF)), Format::Protobuf);
    assert_eq!(Format::negotiate(Some(ACCEPT_TEXT)), Format::Text);
    assert_eq!(Format::negotiate(None), Format::Text);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
    // Ranked below text, or another protobuf message, or not delimited: text.
    let ranked = |q: &str| {
        format!("text/plain;q=0.5, application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; q={q}")
    };
    assert_eq!(Format::negotiate(Some(&ranked("0.4"))), Format::Text);
    assert_eq!(Format::negotiate(Some(&ranked("0.6"))), Format::Protobuf);
    assert_eq!(
        Format::negotiate(Some(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"
        )),
        Format::Text
    );
    assert_eq!(
        Format::negotiate(Some(
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited"
        )),
        Format::Text
    );
}

/// Distributions are kept and exported only when asked for (`--metrics-histograms`):
/// `/metrics` needs no key.
#[test]
fn histograms_are_exported_only_when_asked_for() {
    let has_histogram = |on: bool| {
        let metrics = Metrics::new();
        metrics.set_histograms(on);
        metrics.observe(&window(0, 120, 0, 100.0, 120), None);
        let (_, body) = metrics.exposition(Format::Protobuf, CollectorCounts::default());
        let name = b"modelwatch_feature_value";
        body.windows(name.len()).any(|w| w == name)
    };
    assert!(!has_histogram(false));
    assert!(has_histogram(true));
}

/// Kills the child when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks Prometheus for `query`; the value of its single sample, once it has one.
fn query(prometheus: &str, q: &str) -> Option<f64> {
    let (status, body) = get(prometheus, &format!("/api/v1/query?query={}", encode(q)));
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    match &result[..] {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// Starts Prometheus scraping `collector` every second; with `native`, with native
/// histograms enabled, so that it asks for the protobuf exposition.
fn prometheus(bin: &str, dir: &Path, collector: &str, native: bool) -> (Kill, String) {
    let tag = if native { "native" } else { "text" };
    let config = dir.join(format!("prometheus-{tag}.yml"));
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: modelwatch\n    static_configs:\n      - targets: ['{collector}']\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", client::free_port());
    let mut command = Command::new(bin);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join(format!("tsdb-{tag}")).display()
        ))
        .arg(format!("--web.listen-address={addr}"));
    if native {
        command.arg("--enable-feature=native-histograms");
    }
    let log = std::fs::File::create(dir.join(format!("prometheus-{tag}.log"))).unwrap();
    let child = command.stdout(Stdio::null()).stderr(log).spawn().unwrap();
    (Kill(child), addr)
}

/// Debian's Prometheus, or `None` (with a loud SKIPPED) where it is not installed; never
/// `None` in CI, which installs it (`.ci/run`).
fn installed_prometheus() -> Option<&'static str> {
    let bin = "/usr/bin/prometheus";
    if Path::new(bin).exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI installs prometheus (.ci/run)"
    );
    eprintln!("SKIPPED: {bin} is not installed (apt-get install prometheus)");
    None
}

/// The value of rank ceil(q·n) among `values` (the report's definition of a quantile).
fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

/// The bounds of the schema-6 bucket of `x` (magnitudes in (2^((k-1)/64), 2^(k/64)]), computed
/// apart from the library's index table; (0, 0) for zero.
fn bucket_of(x: f64) -> (f64, f64) {
    if x == 0.0 {
        return (0.0, 0.0);
    }
    let upper = (64.0 * x.abs().log2()).ceil() / 64.0;
    let (lower, upper) = (2f64.powf(upper - 1.0 / 64.0), 2f64.powf(upper));
    if x < 0.0 {
        (-upper, -lower)
    } else {
        (lower, upper)
    }
}

/// A real Prometheus scrapes the real collector every second, in the text format and, a
/// second one with native histograms enabled, in the protobuf format: the predictions of a
/// known run come back through PromQL from both, and `histogram_quantile` over the native
/// histograms gives the report's quantiles of the values logged. Skipped, loudly, where
/// `prometheus` is not installed; a failure in CI, which installs it (`.ci/run`).
#[test]
fn prometheus_scrapes_the_collector_and_promql_returns_the_logged_count() {
    let Some(bin) = installed_prometheus() else {
        return;
    };
    let dir = temp_dir("scrape");
    let store = dir.join("store.db");
    let collector = format!("127.0.0.1:{}", client::free_port());
    let _collector = Kill(
        Command::new(BIN)
            .args([
                "collect",
                "--metrics-histograms",
                "--listen",
                &collector,
                "--api-key",
                KEY,
                "--store",
            ])
            .arg(&store)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the collector", || TcpStream::connect(&collector).ok());

    let mut logged = 0;
    let (mut amounts, mut balances, mut predictions) = (vec![], vec![], vec![]);
    for (minute, n, scale) in [(0, 120, 100.0), (1, 250, 100.0), (2, 333, 160.0)] {
        let w = window(minute, n, 0, scale, n);
        logged += w.predictions();
        for i in 0..n {
            let (a, b, p) = row(i, n, scale);
            amounts.push(a);
            balances.push(b);
            predictions.push(p);
        }
        let body = w.encode();
        assert_eq!(client::post(&collector, KEY, &body).0, 200);
        if minute == 1 {
            assert_eq!(client::post(&collector, KEY, &body).1, "duplicate");
        }
    }
    assert_eq!(client::post(&collector, "wrong-key", b"x").0, 401);
    // Names with quotes, a backslash and a newline: escaped in the exposition, which
    // Prometheus must still parse.
    let mut b = SummaryBuilder::new(ODD, 0, 60_000, HASH_KEY).min_values_per_window(1);
    for i in 0..5 {
        b.log_prediction([(ODD, Value::from(i))], 0.0);
    }
    assert_eq!(client::post(&collector, KEY, &b.build().encode()).0, 200);
    // Two windows 40 decades apart: merged, the lower one is past the sketch's 24 decades
    // and collapsed into the lowest bucket kept, in the report and in the histogram alike.
    for (minute, scale) in [(0, 1e-30), (1, 1e10)] {
        let mut b = SummaryBuilder::new("wide", minute * 60_000, 60_000, HASH_KEY);
        for i in 0..150 {
            b.log_prediction([("x", scale * (1.0 + i as f64 / 10.0))], 0.0);
        }
        assert_eq!(client::post(&collector, KEY, &b.build().encode()).0, 200);
    }
    assert_eq!(logged, 703);
    let (status, exposition) = get(&collector, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &exposition,
            r#"modelwatch_predictions_total{deployment="fraud"}"#
        ),
        Some(703.0),
        "{exposition}"
    );
    // Native histograms are in the protobuf exposition only.
    assert!(!exposition.contains("modelwatch_feature_value"));

    let (_text, text) = prometheus(bin, &dir, &collector, false);
    let (_native, native) = prometheus(bin, &dir, &collector, true);
    // Both formats carry the same series.
    for prometheus in [&text, &native] {
        let q = |series: &str| wait_for(series, || query(prometheus, series));
        assert_eq!(
            q(r#"modelwatch_predictions_total{deployment="fraud"}"#),
            703.0
        );
        assert_eq!(
            q(r#"modelwatch_window_predictions{deployment="fraud"}"#),
            333.0
        );
        assert_eq!(q("modelwatch_ingest_accepted_total"), 6.0);
        let odd =
            r#"modelwatch_feature_missing_ratio{deployment="a \"b\"\n\\c",feature="a \"b\"\n\\c"}"#;
        assert_eq!(q(odd), 0.0);
        assert_eq!(q("modelwatch_ingest_duplicates_total"), 1.0);
        assert_eq!(
            q(r#"modelwatch_ingest_rejected_total{reason="unauthorized"}"#),
            1.0
        );
        // Prometheus took the exposition as valid: its own health of the target says so.
        assert_eq!(q(r#"up{job="modelwatch"}"#), 1.0);
    }

    // The report's quantiles of the same data, from the store.
    let report = |deployment: &str| {
        let o = Command::new(BIN)
            .args(["report", "--deployment", deployment, "--json", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(o.status.code().is_some_and(|c| c < 2), "{o:?}");
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        report[0]["merged"].clone()
    };
    let merged = report("fraud");
    assert_eq!(merged["predictions"], 703);
    let q = |query_: &str| wait_for(query_, || query(&native, query_));
    for (kind, name, values) in [
        ("feature", "amount", &amounts),
        ("feature", "balance", &balances),
        ("output", "prediction", &predictions),
    ] {
        let series = format!(r#"modelwatch_{kind}_value{{deployment="fraud",{kind}="{name}"}}"#);
        assert_eq!(
            q(&format!("histogram_count({series})")),
            values.len() as f64,
            "{series}"
        );
        let sum: f64 = values.iter().sum();
        let got = q(&format!("histogram_sum({series})"));
        assert!(
            (got - sum).abs() <= 1e-9 * sum.abs(),
            "{series}: {got} vs {sum}"
        );
        for (quantile, p) in [(0.1, "p10"), (0.5, "p50"), (0.9, "p90")] {
            let promql = q(&format!("histogram_quantile({quantile}, {series})"));
            let exact = exact_quantile(values, quantile);
            // Prometheus interpolates within the bucket of the value of that rank, so it
            // lands in the same bucket as the exact value (a bucket index off by one would
            // not)...
            let (low, high) = bucket_of(exact);
            let slack = 1e-12 * exact.abs();
            assert!(
                low - slack <= promql && promql <= high + slack,
                "{series} q{quantile}: {promql} outside ({low}, {high}] of {exact}"
            );
            // ...and the report's value of that bucket is within the sketch's relative
            // error of every value in it.
            let reported = merged[kind.to_owned() + "s"][name][p].as_f64().unwrap();
            assert!(
                (promql - reported).abs() <= RELATIVE_ERROR * promql.abs() + 1e-12,
                "{series} q{quantile}: PromQL {promql}, report {reported}"
            );
        }
    }

    let wide = report("wide");
    assert_eq!(wide["features"]["x"]["collapsed"], 150);
    let series = r#"modelwatch_feature_value{deployment="wide",feature="x"}"#;
    assert_eq!(q(&format!("histogram_count({series})")), 300.0);
    for (quantile, p) in [(0.1, "p10"), (0.5, "p50"), (0.9, "p90")] {
        let promql = q(&format!("histogram_quantile({quantile}, {series})"));
        let reported = wide["features"]["x"][p].as_f64().unwrap();
        assert!(
            (promql - reported).abs() <= RELATIVE_ERROR * promql.abs(),
            "{series} q{quantile}: PromQL {promql}, report {reported}"
        );
    }
}

/// Whether `query` returns at least one series (an instant vector that is not empty).
fn has_data(prometheus: &str, q: &str) -> bool {
    let (status, body) = get(prometheus, &format!("/api/v1/query?query={}", encode(q)));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    status == 200
        && v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
}

/// Every query of the Grafana dashboard in the repository (`dashboards/`), with the
/// deployment selector on "All", returns data from a real Prometheus scraping a real
/// collector: a classifier with labels and latency, a regression model, a rejected request.
/// Skipped, loudly, where `prometheus` is not installed; a failure in CI.
#[test]
fn every_panel_of_the_grafana_dashboard_returns_data() {
    let Some(bin) = installed_prometheus() else {
        return;
    };
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dashboards/grafana-modelwatch.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let var = &dashboard["templating"]["list"][0];
    assert_eq!(
        (var["name"].as_str(), var["allValue"].as_str()),
        (Some("deployment"), Some(".*"))
    );

    let dir = temp_dir("grafana");
    let collector = format!("127.0.0.1:{}", client::free_port());
    let _collector = Kill(
        Command::new(BIN)
            .args([
                "collect",
                "--baseline-windows",
                "1",
                "--listen",
                &collector,
                "--api-key",
                KEY,
                "--store",
            ])
            .arg(dir.join("store.db"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the collector", || TcpStream::connect(&collector).ok());
    // A classifier whose `age` goes missing and whose amounts grow after the baseline.
    for minute in 0..4 {
        let w = if minute < 2 {
            window(minute, 200, 0, 100.0, 180)
        } else {
            window(minute, 200, 120, 400.0, 100)
        };
        assert_eq!(client::post(&collector, KEY, &w.encode()).0, 200);
    }
    // A regression model.
    let mut b = SummaryBuilder::new("pricing", 0, 60_000, HASH_KEY);
    for i in 0..50 {
        let x = f64::from(i);
        b.log_prediction([("rooms", Value::from(i % 5))], x * 1.1);
        b.log_ground_truth(x, x * 1.1, ["all"]);
    }
    assert_eq!(client::post(&collector, KEY, &b.build().encode()).0, 200);
    assert_eq!(client::post(&collector, "wrong-key", b"x").0, 401);

    let (_prometheus, prometheus) = prometheus(bin, &dir, &collector, false);
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let promql = expr
                .replace("$deployment", ".*")
                .replace("$__rate_interval", "1m");
            let title = panel["title"].as_str().unwrap();
            wait_for(&format!("{title}: {promql}"), || {
                has_data(&prometheus, &promql).then_some(())
            });
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries} queries");
    // The selector's own query lists both deployments.
    let (_, body) = get(
        &prometheus,
        "/api/v1/label/deployment/values?match[]=modelwatch_window_predictions",
    );
    assert!(body.contains("fraud") && body.contains("pricing"), "{body}");
}
