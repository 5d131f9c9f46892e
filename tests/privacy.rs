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
    assert_eq!(merged.feature("canary_f").unwrap().count(), 2_000);
    let _ = std::fs::remove_dir_all(&dir);
}
