//! What serde shapes become (the table in docs/features.md), against exact counts: missing
//! means missing, enums, vectors, maps, a declared schema, names over the cap.

use modelwatch::{
    Baseline, FeatureType, IncidentEvent, IncidentKind, Limits, Monitor, Record, SummaryBuilder,
    Value, WindowSummary,
};
use serde::Serialize;

mod common;
use std::collections::BTreeMap;

const KEY: [u8; 16] = [9; 16];

fn builder(start_ms: i64) -> SummaryBuilder {
    SummaryBuilder::new("features", start_ms, 60_000, KEY).min_values_per_window(1)
}

/// (count, missing) of a feature.
fn counts(s: &WindowSummary, name: &str) -> (u64, u64) {
    let f = s
        .feature(name)
        .unwrap_or_else(|| panic!("no feature {name}"));
    (f.count(), f.missing())
}

#[derive(Serialize)]
struct Device {
    os: &'static str,
    version: u32,
}

#[derive(Serialize)]
enum Payment {
    Cash,
    Card { bin: u32, country: &'static str },
    Wallet(&'static str),
}

#[derive(Serialize)]
struct Request {
    amount: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<u32>,
    email_domain: Option<&'static str>,
    device: Option<Device>,
    pay: Payment,
    embedding: Vec<f32>,
    tags: Vec<&'static str>,
    scores: BTreeMap<&'static str, f64>,
}

/// Row `i` of 300, with known shares of everything optional.
fn request(i: u32) -> Request {
    Request {
        amount: f64::from(i) + 0.5,
        age: (!i.is_multiple_of(3)).then_some(20 + i % 50),
        email_domain: (!i.is_multiple_of(5)).then_some("example.org"),
        device: (!i.is_multiple_of(4)).then_some(Device {
            os: if i.is_multiple_of(2) {
                "ios"
            } else {
                "android"
            },
            version: 10 + i % 7,
        }),
        pay: match i % 3 {
            0 => Payment::Cash,
            1 => Payment::Card {
                bin: 400_000 + i,
                country: "NL",
            },
            _ => Payment::Wallet("apple"),
        },
        embedding: vec![1.0, (i % 2) as f32, 2.0],
        tags: if i.is_multiple_of(10) {
            vec![]
        } else {
            vec!["new", "web"]
        },
        scores: if i.is_multiple_of(2) {
            BTreeMap::from([("risk", 0.25), ("velocity", 3.0)])
        } else {
            BTreeMap::from([("risk", 0.75)])
        },
    }
}

fn day_of_requests(n: u32) -> WindowSummary {
    let mut b = builder(0);
    for i in 0..n {
        b.log_prediction(Record(&request(i)), 0.5);
    }
    b.build()
}

#[test]
fn every_feature_accounts_for_every_prediction() {
    let n = 300;
    let s = day_of_requests(n);
    let n64 = u64::from(n);
    for (name, f) in s.features() {
        assert_eq!(
            f.count(),
            n64,
            "{name}: a record without it counts as missing"
        );
    }
    // skip_serializing_if: absent, not zero values.
    let skipped = (0..n).filter(|i| i % 3 == 0).count() as u64;
    assert_eq!(counts(&s, "age"), (n64, skipped));
    assert_eq!(s.feature("age").unwrap().ints(), n64 - skipped);
    // A None leaf.
    assert_eq!(counts(&s, "email_domain").1, 60);
    // A map key absent from half the records.
    assert_eq!(counts(&s, "scores.velocity"), (n64, 150));
    assert_eq!(counts(&s, "scores.risk"), (n64, 0));
}

#[test]
fn none_parents_make_their_fields_missing_not_a_feature() {
    let s = day_of_requests(300);
    assert!(s.feature("device").is_none(), "no fake `device` feature");
    assert_eq!(counts(&s, "device.os"), (300, 75));
    assert_eq!(counts(&s, "device.version"), (300, 75));
    assert_eq!(s.feature("device.os").unwrap().strings(), 225);
}

#[test]
fn an_enum_is_its_variant_as_a_category_and_the_variant_fields_under_it() {
    let s = day_of_requests(300);
    let pay = s.feature("pay").unwrap();
    assert_eq!((pay.count(), pay.strings(), pay.missing()), (300, 300, 0));
    assert_eq!(pay.distinct(), 3, "Cash, Card, Wallet");
    // Fields of a variant are missing in the records of the other variants.
    assert_eq!(counts(&s, "pay.Card.bin"), (300, 200));
    assert_eq!(s.feature("pay.Card.bin").unwrap().ints(), 100);
    assert_eq!(counts(&s, "pay.Card.country"), (300, 200));
    assert_eq!(counts(&s, "pay.Wallet"), (300, 200));
    assert!(
        s.feature("pay.Cash").is_none(),
        "a unit variant has no fields"
    );
}

#[test]
fn a_sequence_of_numbers_is_one_vector_feature() {
    let s = day_of_requests(300);
    let e = s.feature("embedding").unwrap();
    assert!(s.feature("embedding.0").is_none());
    assert_eq!((e.count(), e.vectors(), e.missing()), (300, 300, 0));
    assert_eq!(e.vector_dimensions(), Some((3, 3)));
    // Half are [1, 0, 2] (norm √5), half [1, 1, 2] (norm √6): exact mean, exact centroid.
    let mean = e.vector_mean().unwrap();
    assert_eq!(mean, vec![1.0, 0.5, 2.0]);
    let expected_norm = (5f64.sqrt() + 6f64.sqrt()) / 2.0;
    assert!((e.mean().unwrap() - expected_norm).abs() < 1e-9);
    let p90 = e.quantile(0.9).unwrap();
    assert!((p90 / 6f64.sqrt() - 1.0).abs() < modelwatch::RELATIVE_ERROR);
    // Strings stay positional; an empty sequence is a missing value of the sequence.
    assert_eq!(counts(&s, "tags.0"), (300, 30));
    assert_eq!(s.feature("tags.1").unwrap().strings(), 270);
    assert!(
        s.feature("tags").is_none(),
        "the empty lists' parent is dropped"
    );
}

#[test]
fn mixed_sequences_stay_positional_with_their_types() {
    #[derive(Serialize)]
    struct Row {
        pair: (u32, &'static str),
        arr: [f64; 4],
        nested: Vec<Vec<f32>>,
    }
    let mut b = builder(0);
    for i in 0..20u32 {
        b.log_prediction(
            Record(&Row {
                pair: (16_777_217 + i, "x"),
                arr: [0.0, 1.0, 0.0, f64::from(i)],
                nested: vec![vec![1.0, 2.0], vec![3.0]],
            }),
            0.5,
        );
    }
    let s = b.build();
    let first = s.feature("pair.0").unwrap();
    assert_eq!(first.ints(), 20, "a number before a string keeps its type");
    assert_eq!(
        first.mean(),
        Some(16_777_226.5),
        "and its precision (not f32)"
    );
    assert_eq!(s.feature("pair.1").unwrap().strings(), 20);
    assert_eq!(s.feature("arr").unwrap().vector_dimensions(), Some((4, 4)));
    assert_eq!(
        s.feature("nested.0").unwrap().vector_dimensions(),
        Some((2, 2))
    );
    assert_eq!(
        s.feature("nested.1").unwrap().vector_dimensions(),
        Some((1, 1))
    );
}

#[test]
fn vectors_with_non_finite_components_are_counted_not_sketched() {
    let mut b = builder(0);
    for v in [
        [1.0f32, 0.0],
        [f32::NAN, 1.0],
        [0.0, f32::INFINITY],
        [3.0, 4.0],
    ] {
        b.log_prediction([("emb", Value::from(&v[..]))], 0.5);
    }
    let s = b.build();
    let e = s.feature("emb").unwrap();
    assert_eq!((e.vectors(), e.numbers()), (4, 2));
    assert_eq!(e.vector_mean().unwrap(), vec![2.0, 2.0]);
    assert!((e.mean().unwrap() - 3.0).abs() < 1e-12, "norms 1 and 5");
}

#[test]
fn long_vectors_fold_into_the_capped_slots() {
    let d = 1000;
    let v: Vec<f32> = (0..d).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut b = builder(0);
    for _ in 0..10 {
        b.log_prediction([("emb", Value::from(&v[..]))], 0.5);
    }
    let s = b.build();
    let e = s.feature("emb").unwrap();
    assert_eq!(e.vector_dimensions(), Some((d, d)));
    assert_eq!(e.vector_mean().unwrap().len(), modelwatch::MAX_VECTOR_DIMS);
    let norm: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    assert!(
        (e.mean().unwrap() - norm).abs() < 1e-9,
        "norms use every component"
    );
}

#[test]
fn vector_summaries_merge_and_survive_the_wire() {
    let window = |start: i64, x: f32| {
        let mut b = builder(start);
        for _ in 0..10 {
            b.log_prediction([("emb", Value::from(vec![x, 1.0]))], 0.5);
        }
        b.build()
    };
    let mut a = window(0, 0.0);
    let b = WindowSummary::decode(&window(60_000, 2.0).encode()).unwrap();
    a.merge(&b).unwrap();
    let e = a.feature("emb").unwrap();
    assert_eq!(e.vector_mean().unwrap(), vec![1.0, 1.0]);
    assert_eq!(e.vectors(), 20);
}

#[test]
fn a_feature_missing_from_a_whole_merged_window_counts_as_missing() {
    let window = |start: i64, with_age: bool| {
        let mut b = builder(start);
        for i in 0..10 {
            if with_age {
                b.log_prediction([("x", Value::from(i)), ("age", Value::from(30))], 0.5);
            } else {
                b.log_prediction([("x", Value::from(i))], 0.5);
            }
        }
        b.build()
    };
    let mut a = window(0, true);
    a.merge(&window(60_000, false)).unwrap();
    assert_eq!(counts(&a, "age"), (20, 10));
    let mut b = window(0, false);
    b.merge(&window(60_000, true)).unwrap();
    assert_eq!(counts(&b, "age"), (20, 10));
}

#[test]
fn declared_features_are_present_and_typed_from_the_first_window() {
    let window = |start: i64, age: Value<'static>| {
        let mut b = builder(start).declare_features([
            ("amount", FeatureType::Float),
            ("age", FeatureType::Int),
            ("device.os", FeatureType::String),
        ]);
        for i in 0..100 {
            b.log_prediction([("amount", Value::from(i)), ("age", age.clone())], 0.5);
        }
        b.build()
    };
    let s = window(0, Value::from(41));
    // Never logged in the window, yet declared: 100 % missing.
    assert_eq!(counts(&s, "device.os"), (100, 100));
    assert_eq!(s.declared_type("age"), Some(FeatureType::Int));
    // Ages sent as strings from the very first window: a type incident, although these
    // windows are the baseline.
    let mut m = Monitor::new(Baseline::FirstWindows(3));
    let mut opened = Vec::new();
    for w in 0..3 {
        for e in m.observe(&window(w * 60_000, Value::from("41"))) {
            if let IncidentEvent::Opened(i) = e {
                opened.push((i.kind, i.subject.clone(), i.text.clone()));
            }
        }
    }
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].0, IncidentKind::TypeMismatch);
    assert_eq!(opened[0].1, "age");
    assert!(
        opened[0].2.contains("declared int, only 0.0% is int"),
        "{}",
        opened[0].2
    );
}

#[test]
fn a_baseline_feature_absent_from_windows_raises_missing_rate() {
    let window = |start: i64, device: bool| {
        let mut b = builder(start);
        for i in 0..200 {
            let r = request(i);
            let d = if device { r.device } else { None };
            b.log_prediction(Record(&Request { device: d, ..r }), 0.5);
        }
        b.build()
    };
    let mut m = Monitor::new(Baseline::FirstWindows(3));
    let mut opened = Vec::new();
    for w in 0..12 {
        for e in m.observe(&window(w * 60_000, w < 6)) {
            if let IncidentEvent::Opened(i) = e {
                opened.push((w, i.kind, i.subject.clone()));
            }
        }
    }
    let missing: Vec<_> = opened
        .iter()
        .filter(|o| o.1 == IncidentKind::MissingRate)
        .map(|o| o.2.as_str())
        .collect();
    assert_eq!(missing, ["device.os", "device.version"], "{opened:?}");
    assert!(opened.iter().all(|o| o.0 >= 6), "{opened:?}");
}

#[test]
fn names_over_the_cap_are_named() {
    let mut limits = Limits::default();
    limits.max_features = 4;
    let mut b = builder(0).limits(limits);
    let names: Vec<String> = (0..30).map(|i| format!("f{i:02}")).collect();
    for _ in 0..3 {
        let row: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        b.log_prediction(row, 0.5);
    }
    let s = b.build();
    assert_eq!(s.dropped().features_over_cap, 26 * 3);
    let expected: Vec<String> = names[4..4 + modelwatch::MAX_NAMED_DROPS].to_vec();
    assert_eq!(s.names_over_cap(), expected.as_slice());
    let table = s.to_string();
    assert!(table.contains("over the feature cap: f04, f05"), "{table}");
    let back = WindowSummary::decode(&s.encode()).unwrap();
    assert_eq!(back.names_over_cap(), s.names_over_cap());
}

#[test]
fn an_embedding_centroid_shift_opens_a_drift_incident() {
    // 64-dimensional embeddings around a fixed direction; from window 8 on, the centroid
    // turns by 0.3 radians (cosine distance 0.045) while the norms stay the same.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut m = Monitor::new(Baseline::FirstWindows(3));
    let mut opened = Vec::new();
    for w in 0..16i64 {
        let mut b = builder(w * 60_000);
        let turn: f64 = if w >= 8 { 0.3 } else { 0.0 };
        for _ in 0..300 {
            let v: Vec<f32> = (0..64)
                .map(|d| {
                    let base = if d < 32 { turn.cos() } else { turn.sin() };
                    (base + next()) as f32
                })
                .collect();
            b.log_prediction([("emb", Value::from(v))], 0.5);
        }
        for e in m.observe(&b.build()) {
            if let IncidentEvent::Opened(i) = e {
                opened.push((w, i.kind, i.text.clone()));
            }
        }
    }
    assert!(!opened.is_empty(), "the turn is seen");
    assert!(
        opened.iter().all(|o| o.0 >= 8),
        "no alarm before: {opened:?}"
    );
    assert!(
        opened
            .iter()
            .any(|o| o.1 == IncidentKind::Drift && o.2.contains("centroid")),
        "{opened:?}"
    );
}

/// A window of 1,000 countries: `nl` of them NL, 9 LU, one e-mail address, the rest DE.
fn countries(start: i64, nl: usize) -> WindowSummary {
    let mut b = builder(start).plain_categories(["country"], 10);
    let rows: Vec<[(&str, Value<'_>); 2]> = (0..1000)
        .map(|i| {
            let country = match i {
                i if i < nl => "NL",
                i if i < nl + 9 => "LU",
                i if i == nl + 9 => "someone@example.com",
                _ => "DE",
            };
            [
                ("country", Value::from(country)),
                ("city", Value::from(country)),
            ]
        })
        .collect();
    // Half row by row, half as a batch: both count names.
    for r in &rows[..500] {
        b.log_prediction(r.clone(), 0.5);
    }
    b.log_prediction_batch(&rows[500..], &vec![0.5; 500]);
    b.build()
}

#[test]
fn plain_categories_ship_by_name_from_k_occurrences() {
    let s = countries(0, 50);
    let named: Vec<(&str, u64)> = s.feature("country").unwrap().categories().collect();
    // LU (9 < 10) and the lone e-mail address stay hashed only.
    assert_eq!(named, [("DE", 940), ("NL", 50)]);
    assert_eq!(
        s.feature("city").unwrap().categories().count(),
        0,
        "not opted in"
    );
    let back = WindowSummary::decode(&s.encode()).unwrap();
    assert!(back
        .feature("country")
        .unwrap()
        .categories()
        .eq(named.iter().copied()));
    let mut merged = s.clone();
    merged.merge(&countries(60_000, 400)).unwrap();
    let nl = merged
        .feature("country")
        .unwrap()
        .categories()
        .find(|c| c.0 == "NL");
    assert_eq!(nl, Some(("NL", 450)));
}

#[test]
fn a_personal_looking_plain_category_ships_as_a_token() {
    let mut b = builder(0).plain_categories(["contact"], 1);
    for _ in 0..20 {
        b.log_prediction([("contact", "someone@example.com")], 0.5);
    }
    let s = b.build();
    let named: Vec<(&str, u64)> = s.feature("contact").unwrap().categories().collect();
    assert_eq!(named.len(), 1);
    assert!(
        named[0].0.starts_with(modelwatch::TEXT_TOKEN_PREFIX),
        "{named:?}"
    );
    assert_eq!(s.privacy().texts_replaced, 1);
}

#[test]
fn a_drift_incident_names_the_category_that_moved() {
    let mut m = Monitor::new(Baseline::FirstWindows(3));
    let mut texts = Vec::new();
    for w in 0..10 {
        let nl = if w < 5 { 50 } else { 400 };
        for e in m.observe(&countries(w * 60_000, nl)) {
            if let IncidentEvent::Opened(i) = e {
                texts.push((w, i.subject.clone(), i.text.clone()));
            }
        }
    }
    let country: Vec<_> = texts.iter().filter(|t| t.1 == "country").collect();
    assert_eq!(country.len(), 1, "{texts:?}");
    assert!(country[0].0 >= 5);
    assert!(
        country[0].2.contains("NL went from 5.0% to 40.0%"),
        "{}",
        country[0].2
    );
}

#[test]
fn an_agent_ships_declared_features_plain_categories_and_remembered_segments() {
    let (agent, sink) = common::memory_agent_with(3600, |c| {
        c.plain_categories(["country"]).plain_category_min_count(3)
    });
    let sess = agent.session("agent");
    sess.declare_features([("country", FeatureType::String), ("age", FeatureType::Int)]);
    for i in 0..30u32 {
        let country = if i.is_multiple_of(3) { "NL" } else { "DE" };
        sess.log_prediction_keyed(
            &format!("k{i}"),
            [("country", country)],
            i % 2 == 0,
            ["web"],
        );
    }
    for i in 0..30 {
        sess.log_feedback(&format!("k{i}"), true, ());
    }
    agent.flush(std::time::Duration::from_secs(10)).unwrap();
    let s = sink.merged();
    let named: Vec<(&str, u64)> = s.feature("country").unwrap().categories().collect();
    assert_eq!(named, [("DE", 20), ("NL", 10)]);
    assert_eq!(counts(&s, "age"), (30, 30), "declared, never logged");
    let web = s.ground_truth("web").unwrap();
    assert_eq!((web.count(), web.accuracy()), (30, Some(0.5)));
    assert_eq!(s.feedback().matched, 30);
}
