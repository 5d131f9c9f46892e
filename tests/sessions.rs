//! Bounds in the host across deployments: at most `max_sessions` sessions, and the window
//! memory of idle sessions released. Measured with a counting global allocator over every
//! thread (the worker is the one that frees released memory), so these tests run one at a
//! time.

mod common;

use modelwatch::{
    Agent, Config, Sink, Value, WindowSummary, BYTES_PER_NUMERIC_FEATURE, BYTES_PER_SESSION,
    BYTES_PER_STRING_FEATURE,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Counting;
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

static SERIAL: Mutex<()> = Mutex::new(());

const WAIT: Duration = Duration::from_secs(30);

/// Keeps (deployment number, sequence, predictions) of each summary in room reserved up
/// front, so that what the sink keeps does not count as the agent's memory.
#[derive(Clone)]
struct Seen(Arc<Mutex<Vec<(usize, u64, u64)>>>);

impl Seen {
    fn with_room(n: usize) -> Self {
        Seen(Arc::new(Mutex::new(Vec::with_capacity(n))))
    }
}

impl Sink for Seen {
    fn deliver(&mut self, s: &WindowSummary, _: &[u8]) -> std::io::Result<()> {
        let number = s.deployment().rsplit('-').next().unwrap().parse().unwrap();
        let mut seen = self.0.lock().unwrap();
        assert!(
            seen.len() < seen.capacity(),
            "room reserved for every summary"
        );
        seen.push((number, s.sequence(), s.predictions()));
        Ok(())
    }
}

#[test]
fn eight_thousand_deployment_names_stay_within_max_sessions_and_its_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const NAMES: usize = 8_000;
    const CAP: usize = 256; // the default
    let seen = Seen::with_room(2 * CAP);
    let agent = Agent::start(
        Config::new("k")
            .no_data_dir()
            .sink(seen.clone())
            .window(Duration::from_secs(7 * 86_400)),
    )
    .unwrap();
    let mut name = String::with_capacity(32);
    let start = live_bytes();
    let mut peak = 0;
    for i in 0..NAMES {
        use std::fmt::Write;
        name.clear();
        let _ = write!(name, "deployment-{i}");
        let sess = agent.session(&name);
        sess.log_prediction(
            [
                ("amount", Value::from(i as f64)),
                ("country", Value::from("NL")),
            ],
            0.5,
        );
        peak = peak.max(live_bytes() - start);
    }
    // Per session: the session itself, its name twice, and one window of one shard with a
    // numeric feature, a string feature and a numeric output, with their bookkeeping.
    let per_session = BYTES_PER_SESSION
        + 2 * "deployment-8000".len()
        + 2 * BYTES_PER_NUMERIC_FEATURE
        + BYTES_PER_STRING_FEATURE
        + 3 * 512;
    let bound = (CAP * per_session) as i64;
    eprintln!(
        "{NAMES} deployment names: peak growth {peak} bytes ({} per session kept), \
         documented bound {bound} bytes",
        peak / CAP as i64
    );
    assert!(peak <= bound, "peak growth {peak} > bound {bound}");

    let stats = agent.stats();
    assert_eq!(stats.sessions, CAP);
    assert_eq!(stats.sessions_over_cap, (NAMES - CAP) as u64);
    assert_eq!(
        agent.session("deployment-9").deployment(),
        Some("deployment-9")
    );
    assert_eq!(agent.session("deployment-9999").deployment(), None);
    agent.flush(WAIT).unwrap();
    let mut seen = seen.0.lock().unwrap().clone();
    seen.sort_unstable();
    let expected: Vec<(usize, u64, u64)> = (0..CAP).map(|i| (i, 1, 1)).collect();
    assert_eq!(
        seen, expected,
        "the first 256 deployments, one summary each"
    );
}

#[test]
fn idle_sessions_release_their_window_memory_and_their_handles_keep_working() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const SESSIONS: usize = 100;
    let seen = Seen::with_room(4 * SESSIONS);
    let agent = Agent::start(
        Config::new("k")
            .no_data_dir()
            .sink(seen.clone())
            .window(Duration::from_secs(1)),
    )
    .unwrap();
    let row: Vec<(String, f64)> = (0..50).map(|f| (format!("f{f}"), f64::from(f))).collect();
    let start = live_bytes();
    let handles: Vec<_> = (0..SESSIONS)
        .map(|i| agent.session(&format!("idle-{i}")))
        .collect();
    // 30 rows of 50 values: past the 1,024 values a window holds before it folds them,
    // so that each window's sketches are allocated.
    for h in &handles {
        for _ in 0..30 {
            h.log_prediction(&row, 0.5);
        }
    }
    let held = live_bytes() - start;

    // Ten windows with nothing logged: the worker frees every session's windows.
    let begin = Instant::now();
    while agent.stats().sessions_released < SESSIONS as u64 {
        assert!(begin.elapsed() < WAIT, "{:?}", agent.stats());
        std::thread::sleep(Duration::from_millis(100));
    }
    let released_after = begin.elapsed();
    let kept = live_bytes() - start;
    let bound = (SESSIONS * (BYTES_PER_SESSION + 2 * "idle-100".len()) + 1024) as i64;
    eprintln!(
        "{SESSIONS} sessions of 50 features: {held} bytes held while logging, {kept} bytes \
         after release ({released_after:?} after logging; bound {bound} bytes)"
    );
    assert!(kept <= bound, "kept {kept} > bound {bound}");
    assert!(held > 10 * kept, "the windows held most of the memory");

    // A live handle and a later lookup both still log, with the sequence continuing.
    handles[0].log_prediction(&row, 0.5);
    agent.session("idle-1").log_prediction(&row, 0.5);
    assert_eq!(agent.stats().sessions, SESSIONS);
    agent.flush(WAIT).unwrap();
    let seen = seen.0.lock().unwrap().clone();
    for number in [0, 1] {
        let mine: Vec<(u64, u64)> = seen
            .iter()
            .filter(|s| s.0 == number)
            .map(|s| (s.1, s.2))
            .collect();
        assert_eq!(mine, [(1, 30), (2, 1)], "idle-{number}");
    }
}
