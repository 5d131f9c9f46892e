//! Incident notifications on real sockets: a small HTTP listener on 127.0.0.1 plays the
//! webhook receiver and Alertmanager, and receives exactly one open and one close per
//! incident, across restarts of the alerter and a listener that fails first. Then the real
//! Alertmanager (Debian's `prometheus-alertmanager`), when installed.

mod client;

use modelwatch::{Baseline, IncidentEvent, Monitor, SummaryBuilder, WindowSummary};
use modelwatch_cli::alerts::{AlertConfig, Alerter, Queued};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A window of 300 predictions of `deployment`, `missing` of them without `age`.
fn window(deployment: &str, minute: i64, missing: usize) -> WindowSummary {
    let mut b = SummaryBuilder::new(deployment, minute * 60_000, 60_000, [7; 16]);
    for i in 0..300 {
        let age = if i < missing {
            None
        } else {
            Some(20 + (i % 50) as i64)
        };
        b.log_prediction([("age", age)], 0.1);
    }
    b.build()
}

/// The events of one real incident, from the library's monitor: `age` goes missing for a
/// third of the predictions from minute 20 to 24, then recovers until the incident closes.
fn incident(deployment: &str) -> (IncidentEvent, IncidentEvent) {
    let mut monitor = Monitor::new(Baseline::FirstWindows(3));
    let mut events = Vec::new();
    for minute in 0..60 {
        let missing = if (20..25).contains(&minute) { 100 } else { 3 };
        events.extend(monitor.observe(&window(deployment, minute, missing)));
    }
    match &events[..] {
        [open @ IncidentEvent::Opened(_), close @ IncidentEvent::Closed(_)] => {
            (open.clone(), close.clone())
        }
        other => panic!("expected one incident opened and closed: {other:?}"),
    }
}

fn now_utc() -> String {
    modelwatch::format_utc(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    client::temp_dir("alerts", tag)
}

/// One request the listener received, and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    idempotency_key: Option<String>,
    body: Value,
    status: u16,
}

/// An HTTP/1.1 listener on 127.0.0.1 that records every POST and answers `status`, or 500
/// to the first `fail_first` requests.
struct Receiver {
    url: String,
    /// When it started, as Alertmanager timestamps are written: a firing alert ends after
    /// it, a resolved one (these incidents are of 1970) before.
    since: String,
    status: Arc<AtomicU16>,
    fail_first: Arc<AtomicU64>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            since: now_utc(),
            status: Arc::new(AtomicU16::new(status)),
            fail_first: Arc::new(AtomicU64::new(0)),
            received: Arc::default(),
        };
        let (status, fail_first, received) = (
            Arc::clone(&r.status),
            Arc::clone(&r.fail_first),
            Arc::clone(&r.received),
        );
        // Runs until the test process ends; each connection is one request.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (mut length, mut key) = (0, None);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    let (name, value) = h.split_once(':').unwrap_or((&h, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "idempotency-key" => key = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let code = if fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    500
                } else {
                    status.load(Ordering::SeqCst)
                };
                received.lock().unwrap().push(Received {
                    path,
                    idempotency_key: key,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    status: code,
                });
                let _ = (&stream).write_all(
                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        r
    }

    /// The requests answered 2xx, as (path, event) with event "opened"/"closed" (webhook)
    /// or "firing"/"resolved" (Alertmanager).
    fn accepted(&self) -> Vec<(String, String)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| {
                let event = match &r.body {
                    Value::Array(alerts) => {
                        assert_eq!(alerts.len(), 1, "{:?}", r.body);
                        let ends = alerts[0]["endsAt"].as_str().unwrap();
                        if ends < self.since.as_str() {
                            "resolved".to_owned()
                        } else {
                            "firing".to_owned()
                        }
                    }
                    body => body["event"].as_str().unwrap().to_owned(),
                };
                (r.path.clone(), event)
            })
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Polls `done` for up to a minute (generous: the machine is shared).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(r: &Receiver) -> AlertConfig {
    AlertConfig {
        // Given twice: still one destination.
        webhooks: vec![format!("{}/hook", r.url), format!("{}/hook", r.url)],
        alertmanagers: vec![r.url.clone()],
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        // No re-send of firing alerts within a test: each post is an event.
        resend: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// A collector on 127.0.0.1 serving on a thread of its own: over the store in `dir`,
/// watching as `watch` says, posting its incidents to `r`'s webhook `/hook`.
struct Running {
    collector: Arc<modelwatch_cli::collect::Collector>,
    server: std::thread::JoinHandle<Result<(), String>>,
}

impl Running {
    fn start(
        dir: &std::path::Path,
        r: &Receiver,
        watch: &modelwatch_cli::watch::WatchConfig,
    ) -> Running {
        use modelwatch_cli::collect::{Collector, Limits};
        use modelwatch_cli::keys::{Key, Keys};
        let collector = Collector::bind(
            "127.0.0.1:0",
            &dir.join("store.db"),
            Keys::new(vec![Key::any_deployment("a-key-for-this-test").unwrap()]).unwrap(),
            Limits::default(),
            watch.clone(),
            AlertConfig {
                webhooks: vec![format!("{}/hook", r.url)],
                alertmanagers: vec![],
                ..config(r)
            },
        )
        .unwrap();
        let server = {
            let c = Arc::clone(&collector);
            std::thread::spawn(move || c.serve())
        };
        Running { collector, server }
    }

    fn stop(self) {
        self.collector.stop();
        self.server.join().unwrap().unwrap();
    }

    /// Posts the window of `minute`, then moves the collector's clock 31 s past its end:
    /// the window is due.
    fn post(&self, minute: i64, s: &WindowSummary) {
        let addr = self.collector.addr().to_string();
        assert_eq!(
            client::post(&addr, "a-key-for-this-test", &s.encode()).0,
            200
        );
        self.collector.tick((minute + 1) * 60_000 + 31_000);
    }

    /// The text of `GET /metrics`.
    fn metrics(&self) -> String {
        let addr = self.collector.addr();
        let mut response = ureq::get(format!("http://{addr}/metrics")).call().unwrap();
        response.body_mut().read_to_string().unwrap()
    }
}

fn pair(path: &str, event: &str) -> (String, String) {
    (path.to_owned(), event.to_owned())
}

#[test]
fn one_open_and_one_close_per_destination_across_restarts() {
    let dir = temp_dir("restart");
    let store = dir.join("store.db");
    let (open, close) = incident("fraud");
    let r = Receiver::start(503);

    // The receiver is down: the open waits in the outbox when the alerter stops.
    let alerter = Alerter::start(&store, config(&r)).unwrap();
    assert_eq!(alerter.notify(&open), Queued::Stored);
    assert_eq!(alerter.pending(), 2, "one delivery per destination");
    wait_for("a failed attempt", || !r.all().is_empty());
    assert!(!alerter.drain(Duration::from_millis(100)));
    drop(alerter);
    assert!(r.accepted().is_empty());

    // Up again; a new alerter on the same file sends what was left, once.
    r.status.store(200, Ordering::SeqCst);
    let alerter = Alerter::start(&store, config(&r)).unwrap();
    assert!(
        alerter.drain(Duration::from_secs(60)),
        "the open, sent on start"
    );
    // The monitor's state may be older than the outbox after a crash: the same event
    // again is stored once and not sent again.
    assert_eq!(alerter.notify(&open), Queued::Duplicate);
    assert_eq!(alerter.notify(&close), Queued::Stored);
    wait_for("the close", || alerter.pending() == 0);
    drop(alerter);

    let alerter = Alerter::start(&store, config(&r)).unwrap();
    assert_eq!(alerter.notify(&close), Queued::Duplicate);
    assert_eq!(alerter.notify(&open), Queued::Duplicate);
    assert_eq!(alerter.pending(), 0);
    drop(alerter);

    let mut accepted = r.accepted();
    accepted.sort();
    assert_eq!(
        accepted,
        vec![
            pair("/api/v2/alerts", "firing"),
            pair("/api/v2/alerts", "resolved"),
            pair("/hook", "closed"),
            pair("/hook", "opened"),
        ]
    );
    // Each event carries one idempotency key, the same on every attempt.
    let keys: std::collections::BTreeSet<_> = r
        .all()
        .into_iter()
        .map(|x| x.idempotency_key.unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
}

#[test]
fn a_receiver_that_fails_first_gets_each_event_once_and_in_order() {
    let dir = temp_dir("flaky");
    let store = dir.join("store.db");
    let (open, close) = incident("churn");
    let r = Receiver::start(200);
    r.fail_first.store(5, Ordering::SeqCst);
    let alerter = Alerter::start(&store, config(&r)).unwrap();
    assert_eq!(alerter.notify(&open), Queued::Stored);
    assert_eq!(alerter.notify(&close), Queued::Stored);
    wait_for("every delivery", || alerter.pending() == 0);
    assert!(alerter.stats().retries.load(Ordering::Relaxed) >= 5);
    assert_eq!(alerter.stats().delivered.load(Ordering::Relaxed), 4);
    drop(alerter);
    let accepted = r.accepted();
    let of = |path: &str| -> Vec<String> {
        accepted
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, e)| e.clone())
            .collect()
    };
    assert_eq!(of("/hook"), ["opened", "closed"]);
    assert_eq!(of("/api/v2/alerts"), ["firing", "resolved"]);
}

#[test]
fn payloads_carry_the_incident_for_webhooks_slack_and_alertmanager() {
    let dir = temp_dir("payload");
    let store = dir.join("store.db");
    let (open, close) = incident("fraud<&>");
    let IncidentEvent::Closed(closed) = &close else {
        unreachable!()
    };
    let r = Receiver::start(200);
    let alerter = Alerter::start(&store, config(&r)).unwrap();
    alerter.notify(&open);
    alerter.notify(&close);
    wait_for("every delivery", || alerter.pending() == 0);
    drop(alerter);
    let all = r.all();
    let hook: Vec<&Value> = all
        .iter()
        .filter(|x| x.path == "/hook")
        .map(|x| &x.body)
        .collect();
    let closed_hook = hook[1];
    assert_eq!(closed_hook["event"], "closed");
    assert_eq!(closed_hook["id"], closed.id().as_str());
    assert_eq!(closed_hook["deployment"], "fraud<&>");
    assert_eq!(closed_hook["kind"], "missing_rate");
    assert_eq!(closed_hook["subject"], "age");
    assert_eq!(closed_hook["opened_ms"], closed.opened_ms);
    assert_eq!(closed_hook["closed_ms"], closed.closed_ms.unwrap());
    assert_eq!(closed_hook["windows"], closed.windows);
    assert_eq!(closed_hook["summary"], closed.text.as_str());
    // Slack's `text`: its three special characters escaped, the plain words included.
    let text = closed_hook["text"].as_str().unwrap();
    assert!(text.contains("closed in fraud&lt;&amp;&gt;"), "{text}");
    assert!(text.contains("missing_rate of age"), "{text}");

    let am: Vec<&Value> = all
        .iter()
        .filter(|x| x.path == "/api/v2/alerts")
        .map(|x| &x.body[0])
        .collect();
    for alert in &am {
        assert_eq!(alert["labels"]["alertname"], "modelwatch_incident");
        assert_eq!(alert["labels"]["deployment"], "fraud<&>");
        assert_eq!(alert["labels"]["kind"], "missing_rate");
        assert_eq!(alert["labels"]["subject"], "age");
        assert_eq!(
            alert["startsAt"],
            modelwatch::format_utc(closed.opened_ms).as_str()
        );
    }
    assert_eq!(
        am[1]["endsAt"],
        modelwatch::format_utc(closed.closed_ms.unwrap()).as_str()
    );
    assert_eq!(am[1]["annotations"]["summary"], closed.text.as_str());
}

#[test]
fn a_refusal_is_not_retried_and_a_full_outbox_drops_and_counts() {
    let dir = temp_dir("refused");
    let store = dir.join("store.db");
    let (open, close) = incident("fraud");
    let r = Receiver::start(400);
    let alerter = Alerter::start(
        &store,
        AlertConfig {
            alertmanagers: vec![],
            ..config(&r)
        },
    )
    .unwrap();
    alerter.notify(&open);
    wait_for("the refusal", || {
        alerter.stats().refused.load(Ordering::Relaxed) == 1
    });
    assert_eq!(alerter.pending(), 0);
    assert_eq!(r.all().len(), 1);
    drop(alerter);

    // One delivery may wait: the close finds the outbox full while the receiver is down.
    let r = Receiver::start(503);
    let store = dir.join("store2.db");
    let alerter = Alerter::start(
        &store,
        AlertConfig {
            alertmanagers: vec![],
            max_pending: 1,
            ..config(&r)
        },
    )
    .unwrap();
    assert_eq!(alerter.notify(&open), Queued::Stored);
    assert_eq!(alerter.notify(&close), Queued::Dropped);
    assert_eq!(alerter.stats().dropped.load(Ordering::Relaxed), 1);
    assert_eq!(alerter.pending(), 1);
}

#[test]
fn firing_alerts_are_sent_to_alertmanager_again_until_they_close() {
    let dir = temp_dir("resend");
    let store = dir.join("store.db");
    let (open, close) = incident("fraud");
    let r = Receiver::start(200);
    let alerter = Alerter::start(
        &store,
        AlertConfig {
            resend: Duration::from_millis(50),
            ..config(&r)
        },
    )
    .unwrap();
    alerter.notify(&open);
    let firing = || {
        r.accepted()
            .iter()
            .filter(|x| *x == &pair("/api/v2/alerts", "firing"))
            .count()
    };
    wait_for("three re-sends", || firing() >= 4);
    alerter.notify(&close);
    wait_for("the close", || alerter.pending() == 0);
    let after_close = r.all().len();
    // Nothing is re-sent once closed: the next rounds (50 ms each) find nothing firing.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(r.all().len(), after_close);
    let hooks: Vec<_> = r
        .accepted()
        .into_iter()
        .filter(|(p, _)| p == "/hook")
        .collect();
    assert_eq!(hooks, [pair("/hook", "opened"), pair("/hook", "closed")]);
}

/// The real Alertmanager shows the alert while open and resolves it on close. Skipped,
/// loudly, where `prometheus-alertmanager` is not installed; a failure in CI, which
/// installs it (`.ci/run`).
#[test]
fn the_real_alertmanager_shows_the_alert_then_resolves_it() {
    let bin = "/usr/bin/prometheus-alertmanager";
    if !std::path::Path::new(bin).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs prometheus-alertmanager (.ci/run)"
        );
        eprintln!("SKIPPED: {bin} is not installed (apt-get install prometheus-alertmanager)");
        return;
    }
    let dir = temp_dir("alertmanager");
    std::fs::write(
        dir.join("am.yml"),
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("am.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let alerts = || -> Option<Value> {
        let mut response = ureq::get(format!("http://{addr}/api/v2/alerts"))
            .call()
            .ok()?;
        serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()
    };
    wait_for("Alertmanager to start", || alerts().is_some());

    let (open, close) = incident("fraud");
    let store = dir.join("store.db");
    let alerter = Alerter::start(
        &store,
        AlertConfig {
            alertmanagers: vec![format!("http://{addr}")],
            // Alertmanager may answer 5xx while it starts: retry soon.
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(1),
            ..AlertConfig::default()
        },
    )
    .unwrap();
    alerter.notify(&open);
    let ours = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == "modelwatch_incident")
            .cloned()
            .collect()
    };
    wait_for("the alert in Alertmanager", || {
        alerts().is_some_and(|v| ours(&v).len() == 1)
    });
    let shown = ours(&alerts().unwrap()).remove(0);
    assert_eq!(shown["labels"]["deployment"], "fraud");
    assert_eq!(shown["labels"]["kind"], "missing_rate");
    assert_eq!(shown["labels"]["subject"], "age");
    assert_eq!(shown["status"]["state"], "active");
    let IncidentEvent::Opened(i) = &open else {
        unreachable!()
    };
    assert_eq!(shown["annotations"]["summary"], i.text.as_str());

    alerter.notify(&close);
    wait_for("the alert to resolve", || {
        alerts().is_some_and(|v| ours(&v).is_empty())
    });
    // Alertmanager can show the resolution before the alerter has read its answer and
    // counted the delivery: wait for the count, then check that it is exactly two.
    let delivered = || alerter.stats().delivered.load(Ordering::Relaxed);
    wait_for("the resolution counted as delivered", || delivered() >= 2);
    assert_eq!(delivered(), 2);
}

#[test]
fn collect_refuses_an_alert_destination_that_is_not_an_http_url() {
    let dir = temp_dir("flags");
    for (flag, url) in [
        ("--alert-webhook", "ftp://127.0.0.1/hook"),
        ("--alertmanager", "http://"),
        ("--alert-webhook", "http://127.0.0.1/a b"),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_modelwatch"))
            .args(["collect", "--listen", "127.0.0.1:0", "--api-key", "k"])
            .args(["--store", dir.join("store.db").to_str().unwrap(), flag, url])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(url), "{err}");
    }
}

#[test]
fn notify_returns_while_a_destination_hangs() {
    let dir = temp_dir("hang");
    let (open, close) = incident("fraud");
    // A receiver that accepts and never answers: the delivery thread waits on it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let alerter = Alerter::start(
        &dir.join("store.db"),
        AlertConfig {
            webhooks: vec![url],
            timeout: Duration::from_secs(3600),
            ..AlertConfig::default()
        },
    )
    .unwrap();
    assert_eq!(alerter.notify(&open), Queued::Stored);
    let (stalled, _) = listener.accept().unwrap();
    // The open is in flight and will not finish: the close is still stored (a generous
    // deadline turns a notify that waited on the network into a failure, not a hang).
    let alerter = Arc::new(alerter);
    let (tx, rx) = std::sync::mpsc::channel();
    let a = Arc::clone(&alerter);
    std::thread::spawn(move || tx.send(a.notify(&close)).unwrap());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).ok(),
        Some(Queued::Stored)
    );
    assert_eq!(alerter.pending(), 2);
    // Closing the connection fails the request, so that the alerter can stop.
    drop(stalled);
}

/// The collector end to end: summaries posted over HTTP, evaluated as they come due, one
/// webhook open and one close per incident, across a collector restart in the middle of
/// the incident; the counts in `GET /metrics`.
#[test]
fn the_collector_watches_and_alerts_once_per_incident_across_a_restart() {
    let dir = temp_dir("collector");
    let r = Receiver::start(200);
    let watch = modelwatch_cli::watch::WatchConfig {
        baseline: Baseline::FirstWindows(5),
        evaluate_after: Duration::from_secs(30),
        ..Default::default()
    };
    // `age` missing for a third of predictions in minutes 20 to 29 only.
    let mut collector = Running::start(&dir, &r, &watch);
    for minute in 0..60 {
        if minute == 25 {
            // Mid-incident: the collector stops and a new one opens the same store.
            collector.stop();
            collector = Running::start(&dir, &r, &watch);
        }
        let missing = if (20..30).contains(&minute) { 100 } else { 3 };
        collector.post(minute, &window("fraud", minute, missing));
    }
    wait_for("the open and the close", || r.accepted().len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let events = r.accepted();
    assert_eq!(
        events,
        vec![
            ("/hook".to_owned(), "opened".to_owned()),
            ("/hook".to_owned(), "closed".to_owned())
        ]
    );
    let opened = &r.all()[0].body;
    assert_eq!(opened["subject"], "age");
    assert_eq!(opened["opened_ms"], 20 * 60_000);
    let text = collector.metrics();
    assert!(
        text.contains("modelwatch_alerts_total{outcome=\"delivered\"} 1\n"),
        "{text}"
    );
    collector.stop();
}

/// One window of the constraint test's model: `age` (integers 20 to 69), `country` (5
/// codes), `amount` (1 to 100); `change` alters it as a broken pipeline would.
fn model_window(deployment: &str, minute: i64, rows: usize, change: &str) -> WindowSummary {
    let mut b = SummaryBuilder::new(deployment, minute * 60_000, 60_000, [7; 16]);
    for i in 0..rows {
        let j = i + minute as usize * 7;
        let age = 20 + (j * 7919 % 50) as i64;
        let age = match change {
            "age as strings" => modelwatch::Value::from(age.to_string()),
            "age missing" if i % 10 == 0 => modelwatch::Value::Null,
            _ => modelwatch::Value::from(age),
        };
        let countries = ["NL", "DE", "FR", "BE", "LU"];
        let country = match change {
            "a new country" if i % 3 == 0 => "PL",
            _ => countries[j * 31 % 5],
        };
        let mut amount = 1.0 + (j * 104_729 % 9_900) as f64 / 100.0;
        if change == "amount out of range" && i % 100 == 0 {
            amount *= 10.0;
        }
        b.log_prediction(
            [
                ("age", age),
                ("country", modelwatch::Value::from(country)),
                ("amount", modelwatch::Value::from(amount)),
            ],
            0.1,
        );
    }
    b.build()
}

/// The collector with `--constraints` end to end: summaries posted over HTTP, each
/// evaluated window checked against constraints suggested from a training profile; a
/// feature switched to strings, a new category, values out of range and missing values
/// open exactly the matching `constraint_violation` incidents, each once, across a
/// collector restart, with a webhook post when each opens and closes; `/metrics` counts
/// the one still open. The engine's own baseline never completes here, so every incident
/// is a constraint's.
#[test]
fn the_collector_turns_violated_constraints_into_incidents_and_alerts() {
    use modelwatch_cli::watch::WatchConfig;
    let dir = temp_dir("constraints");
    let r = Receiver::start(200);
    let training = model_window("shop", 0, 3_000, "");
    let constraints = modelwatch_cli::constraints::suggest(&training);
    // Another deployment's constraints, which must not apply to "shop".
    let mut other = constraints.clone();
    other.deployment = "other".into();
    other
        .features
        .values_mut()
        .for_each(|f| f.completeness = Some(1.0));
    let watch = WatchConfig {
        baseline: Baseline::FirstWindows(1_000),
        evaluate_after: Duration::from_secs(30),
        constraints: vec![constraints.clone(), other],
    }
    .checked()
    .unwrap();
    let change = |minute: i64| match minute {
        10..=12 => "age as strings",
        20..=23 => "a new country",
        30..=31 => "age missing",
        55.. => "amount out of range",
        _ => "",
    };
    let mut collector = Running::start(&dir, &r, &watch);
    for minute in 1..60 {
        if minute == 21 {
            // Mid-incident: the collector stops and a new one opens the same store.
            collector.stop();
            collector = Running::start(&dir, &r, &watch);
        }
        collector.post(minute, &model_window("shop", minute, 300, change(minute)));
    }
    // Four opens, three closes (the range violation is still open at the end).
    wait_for("seven alerts", || r.accepted().len() >= 7);
    std::thread::sleep(Duration::from_millis(300));
    let mut seen: Vec<(String, String, i64, Option<i64>)> = r
        .all()
        .iter()
        .map(|p| {
            assert_eq!(p.body["kind"], "constraint_violation", "{:?}", p.body);
            (
                p.body["event"].as_str().unwrap().to_owned(),
                p.body["subject"].as_str().unwrap().to_owned(),
                p.body["opened_ms"].as_i64().unwrap() / 60_000,
                p.body["closed_ms"].as_i64().map(|c| c / 60_000),
            )
        })
        .collect();
    seen.sort();
    let e = |event: &str, subject: &str, opened: i64, closed: Option<i64>| {
        (event.to_owned(), subject.to_owned(), opened, closed)
    };
    assert_eq!(
        seen,
        vec![
            e("closed", "age completeness_check", 30, Some(41)),
            e("closed", "age data_type_check", 10, Some(22)),
            e("closed", "country categories_check", 20, Some(33)),
            e("opened", "age completeness_check", 30, None),
            e("opened", "age data_type_check", 10, None),
            e("opened", "amount range_check", 55, None),
            e("opened", "country categories_check", 20, None),
        ]
    );
    // What was expected and what was seen, in words.
    let text = |subject: &str| {
        r.all()
            .iter()
            .find(|p| p.body["subject"] == subject && p.body["event"] == "opened")
            .map(|p| p.body["summary"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(
        text("age data_type_check"),
        "data_type_check: expected int, only 0.0 % is int"
    );
    assert!(
        text("age completeness_check")
            .starts_with("completeness_check: expected at least 100.0 % present, only 90.0 %"),
        "{}",
        text("age completeness_check")
    );
    assert!(text("amount range_check").starts_with("range_check: expected values within"));
    let metrics = collector.metrics();
    assert!(
        metrics.contains(
            "modelwatch_open_incidents{deployment=\"shop\",kind=\"constraint_violation\"} 1.0\n"
        ),
        "{metrics}"
    );
    collector.stop();

    // Two files for one deployment are refused.
    let twice = WatchConfig {
        constraints: vec![constraints.clone(), constraints],
        ..Default::default()
    };
    assert!(twice.checked().unwrap_err().contains("\"shop\""));
}
