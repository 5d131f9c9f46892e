//! The privacy contract: no logged string and no exact logged number appears in anything
//! a sink receives. Canaries are planted in features and outputs; every file the folder
//! sink writes is scanned for every byte encoding of them.

mod common;

use modelwatch::{Agent, Config, Outputs, Record, Value};
use std::collections::HashMap;
use std::time::Duration;

const CANARY_STRINGS: [&str; 3] = ["CANARY-7f3a9b", "zq-secret-user-0042", "Ünïcødé-🔑-canary"];
const CANARY_FLOATS: [f64; 4] = [31337.1337, -98765.4321, 0.000123456789, 6.02214076e23];
const CANARY_INTS: [i64; 2] = [424_242_424_242, -7_777_777];

fn needles() -> Vec<(String, Vec<u8>)> {
    let mut n: Vec<(String, Vec<u8>)> = Vec::new();
    for s in CANARY_STRINGS {
        n.push((format!("string {s:?}"), s.as_bytes().to_vec()));
        // Also any 8-byte window of it, in case it was cut.
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

#[derive(serde::Serialize)]
struct Applicant {
    name: String,
    income: f64,
}

#[test]
fn no_canary_reaches_any_file_the_sink_writes() {
    let dir = common::temp_dir("privacy");
    let sink = common::MemorySink::default();
    let agent = Agent::start(
        Config::new("k")
            .data_dir(&dir)
            .sink(sink.clone())
            .debug_mode(true),
    )
    .unwrap();
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
        for (needle_name, needle) in needles() {
            assert!(
                !blob.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{needle_name} found in {what}"
            );
        }
    }
    // The planted values were seen, only as statistics.
    let merged = sink.merged();
    assert_eq!(merged.feature("user").unwrap().distinct(), 3);
    assert_eq!(merged.feature("canary_f").unwrap().count(), 2_000);
    let _ = std::fs::remove_dir_all(&dir);
}
