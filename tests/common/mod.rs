//! Fixtures shared by the integration tests and benches: the reference workload and the
//! breast-cancer data set, read from `fixtures/` (copied from the design brief's data).
#![allow(dead_code)]

pub mod collector;

use std::io::Read;

pub const FEATURES: [&str; 13] = [
    "f0",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "f6",
    "f7",
    "f8",
    "f9",
    "cat_small",
    "user_id",
    "flag",
];

/// One row of the reference workload, typed as a model server would have it.
pub struct Row {
    pub floats: [Option<f64>; 10],
    pub cat_small: String,
    pub user_id: String,
    pub flag: bool,
    pub prediction: f64,
    pub label: i64,
}

impl Row {
    /// The row as (name, value) pairs, the allocation-free input form.
    pub fn pairs(&self) -> [(&'static str, modelwatch::Value<'_>); 13] {
        use modelwatch::Value;
        let f = |i: usize| Value::from(self.floats[i]);
        [
            ("f0", f(0)),
            ("f1", f(1)),
            ("f2", f(2)),
            ("f3", f(3)),
            ("f4", f(4)),
            ("f5", f(5)),
            ("f6", f(6)),
            ("f7", f(7)),
            ("f8", f(8)),
            ("f9", f(9)),
            ("cat_small", Value::from(self.cat_small.as_str())),
            ("user_id", Value::from(self.user_id.as_str())),
            ("flag", Value::from(self.flag)),
        ]
    }
}

/// A file of the repository's `fixtures/` folder (found from this crate or the `cli` one).
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("fixtures"))
        .find(|d| d.is_dir())
        .expect("the fixtures folder")
        .join(name)
}

/// The 100,000-row reference workload (`fixtures/workload-100k.csv.gz`).
pub fn workload() -> Vec<Row> {
    let file = std::fs::File::open(fixture("workload-100k.csv.gz")).expect("fixture");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gzip");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,cat_small,user_id,flag,prediction,label"
    );
    lines
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            let mut floats = [None; 10];
            for (i, f) in floats.iter_mut().enumerate() {
                *f = (!c[i].is_empty()).then(|| c[i].parse().unwrap());
            }
            Row {
                floats,
                cat_small: c[10].to_owned(),
                user_id: c[11].to_owned(),
                flag: c[12] == "true",
                prediction: c[13].parse().unwrap(),
                label: c[14].parse().unwrap(),
            }
        })
        .collect()
}

/// Breast-cancer rows: (30 feature values, segment, probability, prediction, label).
pub struct Scored {
    pub features: Vec<(String, f64)>,
    pub segment: String,
    pub proba: f64,
    pub prediction: i64,
    pub label: i64,
}

pub fn breast_cancer() -> Vec<Scored> {
    let text = std::fs::read_to_string(fixture("breast_cancer_lr.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            Scored {
                features: (0..30)
                    .map(|i| (header[i].clone(), c[i].parse().unwrap()))
                    .collect(),
                segment: c[30].to_owned(),
                proba: c[31].parse().unwrap(),
                prediction: c[32].parse().unwrap(),
                label: c[33].parse().unwrap(),
            }
        })
        .collect()
}

pub fn breast_cancer_metrics() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("breast_cancer_lr.metrics.json")).unwrap(),
    )
    .unwrap()
}

/// A sink that keeps every encoded summary in memory, for tests.
#[derive(Clone, Default)]
pub struct MemorySink(pub std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl modelwatch::Sink for MemorySink {
    fn deliver(&mut self, _: &modelwatch::WindowSummary, encoded: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().push(encoded.to_vec());
        Ok(())
    }
}

impl MemorySink {
    pub fn summaries(&self) -> Vec<modelwatch::WindowSummary> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| modelwatch::WindowSummary::decode(b).unwrap())
            .collect()
    }

    /// All summaries merged into one.
    pub fn merged(&self) -> modelwatch::WindowSummary {
        let all = self.summaries();
        let mut it = all.into_iter();
        let mut first = it.next().expect("at least one summary");
        for s in it {
            first.merge(&s).unwrap();
        }
        first
    }
}

/// A fresh, empty temporary folder.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("modelwatch-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An agent writing only to memory, with a window long enough not to roll during a test.
pub fn memory_agent(window_secs: u64) -> (modelwatch::Agent, MemorySink) {
    memory_agent_with(window_secs, |c| c)
}

/// [`memory_agent`] with k-anonymity off (`min_values_per_window(1)`), for the tests about
/// something else that log fewer than 10 values of a column in a window.
pub fn memory_agent_k1(window_secs: u64) -> (modelwatch::Agent, MemorySink) {
    memory_agent_with(window_secs, |c| c.min_values_per_window(1))
}

/// [`memory_agent`] with more configuration.
pub fn memory_agent_with(
    window_secs: u64,
    configure: impl FnOnce(modelwatch::Config) -> modelwatch::Config,
) -> (modelwatch::Agent, MemorySink) {
    let sink = MemorySink::default();
    let agent = modelwatch::Agent::start(configure(
        modelwatch::Config::new("test-key")
            .no_data_dir()
            .sink(sink.clone())
            // Fixed, so that the sketches (and the tests on them) are the same every run;
            // without it a sink-only agent draws a random key per process.
            .hash_key(*b"test-hash-key-16")
            .window(std::time::Duration::from_secs(window_secs)),
    ))
    .unwrap();
    (agent, sink)
}

/// Canary values planted by the privacy tests.
pub const CANARY_STRINGS: [&str; 3] = ["CANARY-7f3a9b", "zq-secret-user-0042", "Ünïcødé-🔑-canary"];
pub const CANARY_FLOATS: [f64; 4] = [31337.1337, -98765.4321, 0.000123456789, 6.02214076e23];
pub const CANARY_INTS: [i64; 2] = [424_242_424_242, -7_777_777];

/// Every byte encoding of the canaries a leak could take: text and any 8-byte piece of
/// it, f64 and f32 bits in both byte orders, i64 and i32 bits, decimal text.
pub fn canary_needles() -> Vec<(String, Vec<u8>)> {
    let mut n: Vec<(String, Vec<u8>)> = Vec::new();
    for s in CANARY_STRINGS {
        n.push((format!("string {s:?}"), s.as_bytes().to_vec()));
        for w in s.as_bytes().windows(8) {
            n.push((format!("part of {s:?}"), w.to_vec()));
        }
    }
    for x in CANARY_FLOATS {
        n.push((format!("f64 BE {x}"), x.to_be_bytes().to_vec()));
        n.push((format!("f64 LE {x}"), x.to_le_bytes().to_vec()));
        n.push((format!("f32 BE {x}"), (x as f32).to_be_bytes().to_vec()));
        n.push((format!("text {x}"), x.to_string().into_bytes()));
    }
    for i in CANARY_INTS {
        for (what, v) in [("i64", i), ("as f64", (i as f64).to_bits() as i64)] {
            n.push((format!("{what} BE {i}"), v.to_be_bytes().to_vec()));
            n.push((format!("{what} LE {i}"), v.to_le_bytes().to_vec()));
        }
        n.push((format!("i32 BE {i}"), (i as i32).to_be_bytes().to_vec()));
        n.push((format!("text {i}"), i.to_string().into_bytes()));
    }
    n
}

/// Asserts that no canary encoding appears in `blob`.
pub fn assert_no_canary(blob: &[u8], what: &str) {
    if let Some(needle_name) = canaries_in(blob).first() {
        panic!("{needle_name} found in {what}");
    }
}

/// Every canary encoding found in `blob`, by name.
pub fn canaries_in(blob: &[u8]) -> Vec<String> {
    canary_needles()
        .into_iter()
        .filter(|(_, needle)| blob.windows(needle.len()).any(|w| w == needle.as_slice()))
        .map(|(name, _)| name)
        .collect()
}

/// Polls a future to completion on this thread (parking between wake-ups): the tests of
/// the async API run it without any runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Milliseconds since the Unix epoch, as the agent reads the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What a test logged at a steady pace into one-second windows.
pub struct Logged {
    pub predictions: u64,
    /// Window starts (ms) that certainly received a prediction: the clock read the same
    /// second just before and just after the call.
    pub certain: std::collections::BTreeSet<i64>,
    /// Every window start that may have received one.
    pub possible: std::collections::BTreeSet<i64>,
}

/// Logs about one prediction per millisecond for `run`, recording the windows used.
pub fn log_steadily(sess: &modelwatch::Session, run: std::time::Duration) -> Logged {
    let mut logged = Logged {
        predictions: 0,
        certain: Default::default(),
        possible: Default::default(),
    };
    let start = std::time::Instant::now();
    while start.elapsed() < run {
        let before = now_ms() / 1000 * 1000;
        sess.log_prediction([("i", logged.predictions)], 0.5);
        let after = now_ms() / 1000 * 1000;
        logged.predictions += 1;
        logged.possible.extend([before, after]);
        if before == after {
            logged.certain.insert(before);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    logged
}

/// Asserts that summaries of one-second windows are true to their length: each says one
/// second, every second logged into has its summary, and none starts at a second nothing
/// could have been logged in (a stale window absorbing later seconds would).
pub fn assert_true_windows(summaries: &[modelwatch::WindowSummary], logged: &Logged) {
    let starts: std::collections::BTreeSet<i64> = summaries
        .iter()
        .filter(|s| s.predictions() > 0)
        .map(|s| {
            assert_eq!(s.window_length(), 1000, "a one-second window");
            s.window_start()
        })
        .collect();
    for start in &starts {
        // At least 1 ms passes between two predictions: a true second holds 1,001 at most.
        let n: u64 = summaries
            .iter()
            .filter(|s| s.window_start() == *start)
            .map(|s| s.predictions())
            .sum();
        assert!(n <= 1001, "the second at {start} holds {n} predictions");
    }
    assert!(
        logged.certain.is_subset(&starts),
        "seconds logged into without a summary: {:?}",
        logged.certain.difference(&starts).collect::<Vec<_>>()
    );
    assert!(
        starts.is_subset(&logged.possible),
        "summaries of seconds nothing was logged in: {:?}",
        starts.difference(&logged.possible).collect::<Vec<_>>()
    );
}

/// Every summary in the `.msgpack` files of a folder.
pub fn folder_summaries(dir: &std::path::Path) -> Vec<modelwatch::WindowSummary> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|f| f.path().extension().is_some_and(|x| x == "msgpack"))
                .map(|f| {
                    modelwatch::WindowSummary::decode(&std::fs::read(f.path()).unwrap()).unwrap()
                })
                .collect()
        })
        .unwrap_or_default()
}
