//! The store on a real PostgreSQL: the same summaries give the same report as on SQLite,
//! and three collectors on one database, fed by the library's agents given all three and
//! one collector killed and restarted mid-run, store every prediction once and send each
//! incident's webhook once.
//!
//! The server: `MODELWATCH_TEST_POSTGRES`, by default
//! `postgres://modelwatch:modelwatch@127.0.0.1:5432/modelwatch_test` (what
//! `scripts/install-postgres.sh` sets up); each test creates a database of its own. Where
//! none answers the tests say SKIPPED, loudly; under `CI=true` they fail.

mod client;
#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;

use fraud_day::{Changes, DAY_START_MS, WINDOWS};
use modelwatch::{Agent, Config, Value as Feature};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_URL: &str = "postgres://modelwatch:modelwatch@127.0.0.1:5432/modelwatch_test";
const KEY: &str = "a-key-for-this-test";
/// `watch::LEADER_LEASE` as `pg_locks` shows a bigint advisory lock: its low 32 bits.
const LEASE_OBJID: i64 = 0x6d77_0002;

/// The test server's URL, or `None` (SKIPPED) where none answers.
fn server() -> Option<String> {
    let url = std::env::var("MODELWATCH_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(_) => Some(url),
        Err(e) => {
            let shown = modelwatch_cli::db::Location::parse(&url).display();
            assert!(
                std::env::var_os("CI").is_none(),
                "CI starts PostgreSQL (scripts/install-postgres.sh): {shown}: {e}"
            );
            eprintln!(
                "SKIPPED: no PostgreSQL at {shown} ({e}); run scripts/install-postgres.sh or set MODELWATCH_TEST_POSTGRES"
            );
            None
        }
    }
}

/// A new, empty database on the server of `url`, dropped when this is (after a test
/// that passed: a failed one leaves it to look at, and the next run drops it).
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn fresh(url: &str, tag: &str) -> Database {
        let name = format!("modelwatch_{tag}");
        let db = Database {
            admin: url.to_owned(),
            url: format!("{}/{name}", url.rsplit_once('/').unwrap().0),
            name,
        };
        db.drop_it();
        db.admin()
            .batch_execute(&format!("CREATE DATABASE {}", db.name))
            .unwrap();
        db
    }

    /// Its location, and a store opened on it (the schema migrated).
    fn open_store(&self) -> (modelwatch_cli::db::Location, modelwatch_cli::store::Store) {
        let location = modelwatch_cli::db::Location::parse(&self.url);
        let store = modelwatch_cli::store::Store::open(&location).unwrap();
        (location, store)
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.admin, postgres::NoTls).unwrap()
    }

    // Its own statement: DROP DATABASE refuses to run in a transaction, which a batch is.
    fn drop_it(&self) {
        self.admin()
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .unwrap();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.drop_it();
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    client::temp_dir("pg", tag)
}

/// Polls `done` for up to two minutes (a shared machine).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `modelwatch collect` on `port` over `store` (a path or a URL, given by environment),
/// its standard error in `log`.
fn collect(store: &str, port: u16, log: &Path, extra: &[&str]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["collect", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("MODELWATCH_STORE", store)
        .env("MODELWATCH_API_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for("the collector to listen", || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    child
}

/// Stops a collector as its service manager would.
fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
}

/// `modelwatch report --json` over `store` (given by environment); its output.
fn report(store: &str, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_modelwatch"))
        .args(["report", "--json"])
        .args(args)
        .env("MODELWATCH_STORE", store)
        .output()
        .unwrap();
    assert!(
        o.status.code().is_some_and(|c| c < 2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_day_posted_to_sqlite_and_to_postgres_reports_the_same() {
    let Some(url) = server() else { return };
    let db = Database::fresh(&url, "same");
    let pg = db.url.clone();
    let dir = temp_dir("same");
    let sqlite = dir.join("store.db").display().to_string();
    let stores = [sqlite.as_str(), pg.as_str()];
    for store in stores {
        let port = client::free_port();
        let child = collect(store, port, &dir.join("collect.log"), &[]);
        let addr = format!("127.0.0.1:{port}");
        for w in 0..WINDOWS {
            let s = fraud_day::window(21, w, Changes { at: Some(720) });
            assert_eq!(client::post(&addr, KEY, &s.encode()).0, 200);
            // Every tenth also retried: stored once on both.
            if w % 10 == 0 {
                let (status, body) = client::post(&addr, KEY, &s.encode());
                assert_eq!((status, body.as_str()), (200, "duplicate"));
            }
        }
        terminate(child);
    }
    let to = (DAY_START_MS + 86_400_000).to_string();
    for resolution in ["1m", "1h", "1d"] {
        let args = ["--resolution", resolution, "--to", &to];
        let (a, b) = (report(stores[0], &args), report(stores[1], &args));
        let parsed: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(
            parsed[0]["merged"]["predictions"],
            (WINDOWS * fraud_day::PER_WINDOW) as u64,
            "{resolution}"
        );
        // One daily window has no baseline to differ from.
        assert!(
            resolution == "1d" || !parsed[0]["incidents"].as_array().unwrap().is_empty(),
            "{resolution}: the changes at window 720 are found"
        );
        assert!(a == b, "{resolution}: SQLite and PostgreSQL reports differ");
    }
    // Retention alike: a collector started with the windows kept 30 days (the day is older)
    // prunes them at start, and keeps the rollups.
    for store in stores {
        let port = client::free_port();
        let retain = ["--retain", "1m=30d,1h=forever"];
        terminate(collect(store, port, &dir.join("collect.log"), &retain));
        let s =
            modelwatch_cli::store::Store::open(modelwatch_cli::db::Location::parse(store)).unwrap();
        assert_eq!(s.count().unwrap(), 0, "{store}");
    }
    let args = ["--resolution", "1h", "--to", &to];
    assert!(
        report(stores[0], &args) == report(stores[1], &args),
        "after pruning: SQLite and PostgreSQL reports differ"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the webhook receiver got: (incident id, event) per request it answered 200.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver on 127.0.0.1 (one request per connection, answered 200); its URL.
fn receiver(received: &Received) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::clone(received);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            received.lock().unwrap().push((
                v["id"].as_str().unwrap_or("").to_owned(),
                v["event"].as_str().unwrap_or("").to_owned(),
            ));
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    url
}

/// One count from the database.
fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn three_collectors_on_one_database_store_once_and_alert_once_through_a_kill() {
    let Some(url) = server() else { return };
    let database = Database::fresh(&url, "three");
    let pg = database.url.clone();
    let dir = temp_dir("three");
    let received: Received = Arc::default();
    let hook = receiver(&received);
    let ports = [
        client::free_port(),
        client::free_port(),
        client::free_port(),
    ];
    let logs: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("c{i}.log"))).collect();
    let args = [
        "--evaluate-after",
        "1",
        "--baseline-windows",
        "3",
        "--alert-webhook",
        &hook,
    ];
    let mut db = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    // The first collector takes the lease before the others start: killing it later
    // forces a takeover.
    let mut collectors: Vec<Child> = vec![collect(&pg, ports[0], &logs[0], &args)];
    wait_for("the first collector to take the lease", || {
        count(
            &mut db,
            &format!(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND objid = {LEASE_OBJID}"
            ),
        ) == 1
    });
    for i in 1..3 {
        collectors.push(collect(&pg, ports[i], &logs[i], &args));
    }

    // 50 agents, each given the three collectors, on two deployments, one-second
    // windows; from the 12th to the 18th second a third of `age` goes missing.
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let logged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let agents: Vec<_> = (0..50)
        .map(|a| {
            let (endpoints, logged) = (endpoints.clone(), Arc::clone(&logged));
            std::thread::spawn(move || {
                // Each agent starts at another collector, as a fleet spread over them.
                let mut order = endpoints.clone();
                order.rotate_left(a % 3);
                let agent = Agent::start(
                    Config::new(KEY)
                        .hash_key(*b"three-collectors")
                        .endpoints(order)
                        .no_data_dir()
                        .window(Duration::from_secs(1)),
                )
                .unwrap();
                let session = agent.session(if a % 2 == 0 { "fraud" } else { "churn" });
                let mut i = 0u64;
                while start.elapsed() < Duration::from_secs(30) {
                    let t = start.elapsed().as_secs();
                    for _ in 0..10 {
                        let missing = (12..18).contains(&t) && i.is_multiple_of(3);
                        let age = (!missing).then_some(20 + (i % 50) as i64);
                        session.log_prediction([("age", Feature::from(age))], 0.2);
                        i += 1;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                logged.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
                agent.shutdown(Duration::from_secs(60)).unwrap();
                let stats = agent.stats();
                assert_eq!(stats.http_dropped_backlog, 0, "{stats:?}");
                assert_eq!(stats.backlog_len, 0, "{stats:?}");
            })
        })
        .collect();
    // Mid-run, the leader is killed (SIGKILL) and restarted on its port 3 s later.
    std::thread::sleep(Duration::from_secs(8));
    collectors[0].kill().unwrap();
    collectors[0].wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    collectors[0] = collect(&pg, ports[0], &logs[0], &args);
    for a in agents {
        a.join().unwrap();
    }
    // One summary posted to each of the three: stored by the first, a duplicate to the
    // others.
    let twice = fraud_day::window(5, 0, Changes { at: None });
    let answers: Vec<_> = ports
        .iter()
        .map(|p| client::post(&format!("127.0.0.1:{p}"), KEY, &twice.encode()).1)
        .collect();
    assert_eq!(answers, ["stored", "duplicate", "duplicate"]);

    // Every window evaluated (nothing left to take) and every alert delivered.
    wait_for("the evaluation and the deliveries", || {
        count(&mut db, "SELECT COUNT(*) FROM unevaluated") == 0
            && count(
                &mut db,
                "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'pending'",
            ) == 0
            && count(
                &mut db,
                "SELECT COUNT(*) FROM alert_outbox WHERE event = 'opened'",
            ) >= 2
    });
    let logged = logged.load(std::sync::atomic::Ordering::Relaxed);
    let reported: u64 = serde_json::from_str::<Value>(&report(&pg, &["--resolution", "1m"]))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["merged"]["predictions"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported,
        logged + twice.predictions(),
        "every prediction stored exactly once"
    );

    let outbox: Vec<(String, String)> = db
        .query("SELECT incident, event FROM alert_outbox ORDER BY seq", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut got = received.lock().unwrap().clone();
    got.sort();
    let mut expected = outbox.clone();
    expected.sort();
    assert_eq!(got, expected, "each event of the outbox sent once");
    for deployment in ["fraud", "churn"] {
        assert!(
            outbox.iter().any(|(id, e)| e == "opened"
                && id.starts_with(&format!("{deployment}/missing_rate/age/"))),
            "the missing ages of {deployment} opened an incident: {outbox:?}"
        );
    }
    for c in collectors {
        terminate(c);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lease in process: two watches on one database, the leader's session killed by the
/// server. The other takes the lease at its next tick; the old leader, not knowing yet,
/// evaluates a summary it receives but cannot save its state over the new leader's.
#[test]
fn a_lost_lease_passes_to_the_next_watch_and_the_old_leader_saves_nothing() {
    use modelwatch_cli::watch::{Watch, WatchConfig};
    let Some(url) = server() else { return };
    let database = Database::fresh(&url, "lease");
    let (location, store) = database.open_store();
    let config = WatchConfig {
        baseline: modelwatch::Baseline::FirstWindows(3),
        evaluate_after: Duration::from_secs(1),
        ..Default::default()
    };
    let mut a = Watch::open(&location, config.clone()).unwrap();
    let mut b = Watch::open(&location, config).unwrap();
    let mut ignore = |_: &modelwatch::IncidentEvent| Ok(());
    a.tick(0, &mut ignore).unwrap();
    b.tick(0, &mut ignore).unwrap();
    assert!(a.leading() && !b.leading());

    let mut db = postgres::Client::connect(&database.url, postgres::NoTls).unwrap();
    let killed = count(
        &mut db,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objid = {LEASE_OBJID}"
        ),
    );
    assert_eq!(killed, 1);
    wait_for("the lease to be free", || {
        b.tick(0, &mut ignore).unwrap();
        b.leading()
    });

    let s = fraud_day::window(1, 0, Changes { at: None });
    store.insert("k", &s, &s.encode(), 0).unwrap();
    let later = DAY_START_MS + 3_600_000;
    // The first statement on the dead session fails; the next reconnects, without the lock.
    let errors: Vec<String> = (0..2)
        .map(|_| a.accept("k", &s, later, &mut ignore).unwrap_err())
        .collect();
    assert!(errors[1].contains("lease"), "{errors:?}");
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM monitors"), 0);
    a.tick(later, &mut ignore).unwrap();
    assert!(!a.leading());

    b.tick(later, &mut ignore).unwrap();
    let saved: i64 = db
        .query_one("SELECT evaluated_to FROM monitors", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        saved,
        s.window_start(),
        "the new leader evaluated the window"
    );
}

/// Roll-ups of several collectors at once, while summaries are stored: every window is
/// merged into its hour and day exactly once.
#[test]
fn concurrent_roll_ups_while_storing_merge_every_window_once() {
    use modelwatch_cli::store::{Resolution, Store};
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(url) = server() else { return };
    let database = Database::fresh(&url, "rollups");
    let (location, store) = database.open_store();
    let storing = Arc::new(AtomicBool::new(true));
    let rollers: Vec<_> = (0..3)
        .map(|_| {
            let (location, storing) = (location.clone(), Arc::clone(&storing));
            std::thread::spawn(move || {
                let store = Store::open(&location).unwrap();
                let mut merged = 0;
                while storing.load(Ordering::SeqCst) {
                    merged += store.roll_up_pending().unwrap();
                }
                merged
            })
        })
        .collect();
    let windows = 600;
    for w in 0..windows {
        let s = fraud_day::window(3, w, Changes { at: None });
        store.insert("k", &s, &s.encode(), 0).unwrap();
    }
    storing.store(false, Ordering::SeqCst);
    let mut merged: u64 = rollers.into_iter().map(|r| r.join().unwrap()).sum();
    merged += store.roll_up_pending().unwrap();
    assert_eq!(merged, windows as u64, "each window merged once");
    for resolution in [Resolution::Hour, Resolution::Day] {
        let mut predictions = 0;
        store
            .scan(resolution, None, i64::MIN, i64::MAX, |s| {
                predictions += s.unwrap().predictions()
            })
            .unwrap();
        assert_eq!(predictions, (windows * fraud_day::PER_WINDOW) as u64);
    }
}
