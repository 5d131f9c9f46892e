//! The privacy contract: no logged string and no exact logged number appears in anything
//! a sink receives. Canaries are planted in features and outputs; every file the folder
//! sink writes is scanned for every byte encoding of them.

mod common;

use common::{assert_no_canary, CANARY_FLOATS, CANARY_INTS, CANARY_STRINGS};
use modelwatch::{Agent, Config, Outputs, Record, Value};
use std::collections::HashMap;
use std::time::Duration;

#[derive(serde::Serialize)]
struct Applicant {
    name: String,
    income: f64,
}

#[test]
fn no_canary_reaches_any_file_the_sink_writes() {
    let dir = common::temp_dir("privacy");
    let sink = common::MemorySink::default();
    let agent = Agent::start(Config::new("k").data_dir(&dir).sink(sink.clone())).unwrap();
    let sess = agent.session("privacy");
    // A control: metadata is shipped as given (the documented contract), so the scan must
    // find it; this proves the scan can fail.
    sess.log_metadata("note", "CONTROL-visible-7731");
    let long = format!("{}{}", CANARY_STRINGS[0], "y".repeat(10_000));
    // Canaries among ordinary traffic, in every input form.
    for i in 0..2_000_i64 {
        let x = (i as f64) * 1.37 - 500.0;
        let s = CANARY_STRINGS[i as usize % 3];
        let f = CANARY_FLOATS[i as usize % 4];
        let n = CANARY_INTS[i as usize % 2];
        sess.log_prediction(
            [
                ("user", Value::from(s)),
                ("amount", Value::from(x)),
                ("canary_f", Value::from(f)),
                ("canary_i", Value::from(n)),
            ],
            Outputs([("score", Value::from(f)), ("class", Value::from(s))]),
        );
        sess.log_prediction(HashMap::from([("long", long.as_str())]), vec![f, x]);
        sess.log_prediction(
            Record(&Applicant {
                name: s.to_owned(),
                income: f,
            }),
            n,
        );
        sess.log_ground_truth(f, x, ["seg"]);
    }
    agent.flush(Duration::from_secs(30)).unwrap();
    agent.shutdown(Duration::from_secs(30)).unwrap();

    let mut files = 0;
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name() == modelwatch::HASH_KEY_FILE {
            continue; // stays in the folder; checked below
        }
        files += 1;
        blobs.push((
            e.path().display().to_string(),
            std::fs::read(e.path()).unwrap(),
        ));
    }
    blobs.extend(
        sink.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| ("memory sink".to_owned(), b.clone())),
    );
    assert!(files >= 1, "the folder sink wrote nothing");
    for (what, blob) in &blobs {
        let s = modelwatch::WindowSummary::decode(blob).unwrap();
        assert!(s.predictions() > 0);
        assert!(
            blob.windows(20).any(|w| w == b"CONTROL-visible-7731"),
            "control not found in {what}"
        );
        assert_no_canary(blob, what);
    }
    // The folder's hash key never leaves: neither its text nor its bytes are in a summary.
    let hex = std::fs::read_to_string(dir.join(modelwatch::HASH_KEY_FILE)).unwrap();
    let hex = hex.trim();
    let bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    for (what, blob) in &blobs {
        for needle in [hex.as_bytes(), &bytes[..8], &bytes[8..]] {
            assert!(
                !blob.windows(needle.len()).any(|w| w == needle),
                "the hash key is in {what}"
            );
        }
    }
    // The planted values were seen, only as statistics.
    let merged = sink.merged();
    assert_eq!(merged.feature("user").unwrap().distinct(), 3);
    // In one record of three; the other two lack it: missing there.
    let canary_f = merged.feature("canary_f").unwrap();
    assert_eq!((canary_f.count(), canary_f.missing()), (6_000, 4_000));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Personal data planted in every field that leaves as text. Each must be replaced by a
/// token: neither it nor any 8-byte piece of it may reach a sink.
const PII: [&str; 6] = [
    "alice.canary@example.com",
    "bob.canary@example.net",
    "+31 6 87654321",
    "4111-1111-1111-1111",
    "carol.canary@example.org",
    "NL91ABNA0417164300",
];
/// Looks personal, but allowed: must ship as given (proves the scan can find text).
const ALLOWED: &str = "support@allowed-desk.io";

#[derive(serde::Serialize)]
struct ByUser {
    by_user: HashMap<String, f64>,
}

fn assert_no_pii(blob: &[u8], what: &str) {
    for s in PII {
        for piece in std::iter::once(s.as_bytes()).chain(s.as_bytes().windows(8)) {
            assert!(
                !blob.windows(piece.len()).any(|w| w == piece),
                "{:?} of {s:?} found in {what}",
                String::from_utf8_lossy(piece)
            );
        }
    }
}

/// Every blob a sink received: the folder's files and the memory sink's bytes.
fn received(dir: &std::path::Path, sink: &common::MemorySink) -> Vec<(String, Vec<u8>)> {
    let mut blobs: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != modelwatch::HASH_KEY_FILE)
        .map(|e| {
            let p = e.path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    assert!(!blobs.is_empty(), "the folder sink wrote nothing");
    blobs.extend(
        sink.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| ("memory sink".to_owned(), b.clone())),
    );
    blobs
}

#[test]
fn personal_text_in_keys_labels_segments_tags_and_metadata_never_leaves() {
    let dir = common::temp_dir("privacy-text");
    let sink = common::MemorySink::default();
    let agent = Agent::start(
        Config::new("k")
            .data_dir(&dir)
            .sink(sink.clone())
            .allow_text([ALLOWED]),
    )
    .unwrap();
    let sess = agent.session("privacy-text");
    sess.log_metadata("contact", ALLOWED);
    sess.log_metadata(PII[4], "owner");
    sess.log_metadata("account", PII[5]);
    // Enough of everything that k-anonymity holds nothing back: only the guard acts.
    for i in 0..50 {
        let spend = HashMap::from([(PII[0].to_owned(), f64::from(i)), ("bob".to_owned(), 1.0)]);
        sess.log_prediction(Record(&ByUser { by_user: spend }), PII[1]);
        let label = if i % 2 == 0 { PII[1] } else { "legit" };
        sess.log_ground_truth(label, PII[1], [PII[2], "web"]);
        sess.log_exception(
            &format!("callback to {} failed", PII[2]),
            [(PII[4], PII[3]), ("stage", "notify")],
        );
    }
    agent.shutdown(Duration::from_secs(30)).unwrap();

    let blobs = received(&dir, &sink);
    for (what, blob) in &blobs {
        assert_no_pii(blob, what);
        assert!(
            blob.windows(ALLOWED.len()).any(|w| w == ALLOWED.as_bytes()),
            "the allowed text is not in {what}: the scan could not fail"
        );
    }
    // Replaced, not dropped: the tokens stay one column, one class, one segment.
    let s = sink.merged();
    let tokens = |names: Vec<&str>| {
        names
            .into_iter()
            .filter(|n| n.contains(modelwatch::TEXT_TOKEN_PREFIX))
            .count()
    };
    assert_eq!(tokens(s.features().map(|(n, _)| n).collect()), 1);
    assert_eq!(s.feature("by_user.bob").unwrap().count(), 50);
    let segment = s
        .ground_truth_segments()
        .find(|(n, _)| n.starts_with(modelwatch::TEXT_TOKEN_PREFIX))
        .unwrap()
        .1;
    assert_eq!(segment.count(), 50);
    assert_eq!(segment.accuracy(), Some(0.5));
    assert_eq!(tokens(segment.classes().collect()), 1);
    let e = &s.exceptions()[0];
    assert_eq!(e.count(), 50);
    assert!(e.message().starts_with(modelwatch::TEXT_TOKEN_PREFIX));
    assert_eq!(
        tokens(
            e.tags()
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()])
                .collect()
        ),
        2
    );
    assert!(s.privacy().texts_replaced > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A column of k - 1 canary numbers and strings, a segment of k - 1 canary labels and a
/// rare exception with a canary tag, sealed by a flush and then at shutdown. Returns what
/// the sinks received and the summaries, in order.
fn small_window(k: u64, tag: &str) -> (Vec<(String, Vec<u8>)>, Vec<modelwatch::WindowSummary>) {
    let dir = common::temp_dir(tag);
    let sink = common::MemorySink::default();
    let agent = Agent::start(
        Config::new("k")
            .data_dir(&dir)
            .sink(sink.clone())
            .min_values_per_window(k),
    )
    .unwrap();
    let sess = agent.session("small");
    let numbers: Vec<f64> = CANARY_FLOATS
        .iter()
        .copied()
        .chain(CANARY_INTS.iter().map(|&i| i as f64))
        .collect();
    for i in 0..9 {
        let x = numbers[i % numbers.len()];
        let s = CANARY_STRINGS[i % 3];
        sess.log_prediction([("salary", Value::from(x)), ("user", Value::from(s))], x);
        sess.log_ground_truth(x, 0.5, ["vip"]);
    }
    // One value alone in its column: its mean would be the canary itself.
    sess.log_prediction([("lonely", CANARY_FLOATS[0])], 0.5);
    sess.log_exception("rare", [("user", CANARY_STRINGS[1])]);
    agent.flush(Duration::from_secs(30)).unwrap();
    agent.shutdown(Duration::from_secs(30)).unwrap();
    let blobs = received(&dir, &sink);
    let _ = std::fs::remove_dir_all(&dir);
    (blobs, sink.summaries())
}

#[test]
fn a_window_of_k_minus_one_values_reveals_no_canary_in_any_field() {
    let (blobs, summaries) = small_window(10, "privacy-small");
    for (what, blob) in &blobs {
        assert_no_canary(blob, what);
    }
    assert_eq!(
        summaries.len(),
        2,
        "the flush, then the remainder at shutdown"
    );
    let (first, last) = (&summaries[0], &summaries[1]);
    for name in ["salary", "user", "lonely"] {
        for s in [first, last] {
            let f = s.feature(name).unwrap();
            assert_eq!(
                (f.mean(), f.variance(), f.sum(), f.min(), f.max()),
                (None, None, None, None, None),
                "{name}"
            );
            for q in [0.0, 0.5, 0.99, 1.0] {
                assert_eq!(f.quantile(q), None, "{name}");
                assert_eq!(f.length_quantile(q), None, "{name}");
            }
            assert!(
                f.exponential_buckets(false).is_empty() && f.exponential_buckets(true).is_empty()
            );
            assert_eq!((f.numbers(), f.distinct(), f.zeros()), (0, 0, 0), "{name}");
            assert_eq!(f.category_profile(), None, "{name}");
        }
        // Held back by the flush, shipped as counts at shutdown: nothing lost. Each
        // column counts all 10 records (those without it as missing), and still has
        // fewer than k = 10 values.
        let expected = 10;
        assert_eq!(first.feature(name).unwrap().withheld(), expected);
        let f = last.feature(name).unwrap();
        assert_eq!(
            (f.count(), f.unsketched(), f.carried()),
            (expected, expected, expected)
        );
    }
    for s in [first, last] {
        for gt in [
            s.ground_truth("vip").unwrap(),
            s.ground_truth_overall().unwrap(),
        ] {
            assert_eq!((gt.mse(), gt.mae(), gt.r2()), (None, None, None));
        }
    }
    assert_eq!(first.exceptions()[0].tags(), &[]);
}

#[test]
fn with_k_of_one_the_same_scan_finds_the_lonely_value() {
    // The control for the test above: k = 1 ships the window whole, and the scan must then
    // find a canary (the mean of one value is the value), or it could never fail.
    let (blobs, _) = small_window(1, "privacy-small-control");
    let found: Vec<String> = blobs
        .iter()
        .flat_map(|(_, blob)| common::canaries_in(blob))
        .collect();
    assert!(
        found.iter().any(|n| n.starts_with("f64")),
        "k = 1 shipped single values' moments and the scan did not see them: {found:?}"
    );
}
