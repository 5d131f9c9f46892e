//! The collector's watch over a store: windows evaluated as they arrive, incidents opened
//! once, and a restart (a new `Watch` on the same store) that carries on without opening
//! anything again.

#[path = "../../tests/support/fraud_day.rs"]
mod fraud_day;

use fraud_day::{Changes, DAY_START_MS};
use modelwatch::{Baseline, IncidentEvent, IncidentKind};
use modelwatch_cli::store::Store;
use modelwatch_cli::watch::{Watch, WatchConfig};
use std::time::Duration;

fn config() -> WatchConfig {
    WatchConfig {
        baseline: Baseline::FirstWindows(10),
        evaluate_after: Duration::from_secs(30),
        ..Default::default()
    }
}

#[test]
fn incidents_open_once_across_restarts_and_late_summaries_are_counted() {
    let dir = std::env::temp_dir().join(format!("mw-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let _ = std::fs::remove_file(&path);
    let store = Store::open(&path).unwrap();
    let mut events: Vec<IncidentEvent> = Vec::new();
    let mut watch = Watch::open(&path, config()).unwrap();
    let windows = 200;
    for w in 0..windows {
        let s = fraud_day::window(21, w, Changes { at: Some(120) });
        store.insert("k", &s, &s.encode(), 0).unwrap();
        let now = DAY_START_MS + (w as i64 + 1) * 60_000 + 31_000;
        watch
            .accept("k", &s, now, &mut |e| {
                events.push(e.clone());
                Ok(())
            })
            .unwrap();
        if w % 37 == 0 {
            // A restart: the state comes back from the store.
            watch = Watch::open(&path, config()).unwrap();
        }
    }
    let opened: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            IncidentEvent::Opened(i) => Some(i),
            _ => None,
        })
        .collect();
    let mut ids: Vec<_> = opened.iter().map(|i| i.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), opened.len(), "{opened:#?}");
    for i in &opened {
        assert!(i.opened_ms >= DAY_START_MS + 120 * 60_000, "{i:?}");
    }
    let age = opened
        .iter()
        .find(|i| i.kind == IncidentKind::MissingRate && i.subject == "age")
        .expect("the missing ages open an incident");
    assert!(age.opened_ms < DAY_START_MS + 130 * 60_000);
    // A summary of an evaluated window: stored by the collector, not evaluated again.
    let old = fraud_day::window(22, 150, Changes { at: None });
    watch
        .accept("k", &old, DAY_START_MS + 300 * 60_000, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(watch.late(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Windows from the future (a wrong clock, a hostile sender) wait at most
/// `MAX_PENDING_WINDOWS` per deployment: past that, the oldest are evaluated early, so the
/// watch's memory stays bounded.
#[test]
fn far_future_windows_do_not_pile_up() {
    use modelwatch_cli::watch::MAX_PENDING_WINDOWS;
    let dir = std::env::temp_dir().join(format!("mw-watch-future-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let _ = std::fs::remove_file(&path);
    let store = Store::open(&path).unwrap();
    let mut watch = Watch::open(&path, config()).unwrap();
    for w in 0..200 {
        let s = fraud_day::window(4, w, Changes { at: None });
        store.insert("k", &s, &s.encode(), 0).unwrap();
        // The collector's clock stays before the first window: nothing is due by time.
        watch.accept("k", &s, 0, &mut |_| Ok(())).unwrap();
        assert!(watch.pending() <= MAX_PENDING_WINDOWS);
    }
    assert_eq!(watch.pending(), MAX_PENDING_WINDOWS);
    let m = watch.monitor("fraud_detection_prod").unwrap();
    assert!(m.is_checking(), "early evaluation formed the baseline");
    let _ = std::fs::remove_dir_all(&dir);
}
