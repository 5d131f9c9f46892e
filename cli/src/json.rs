//! Summaries as JSON for machines: counts, quantiles, distinct counts and derived metrics
//! (the sketches themselves stay binary).

use modelwatch::{FeatureSummary, GroundTruthSummary, WindowSummary};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub fn column(f: &FeatureSummary) -> Value {
    let q = |p: f64| f.quantile(p);
    json!({
        "count": f.count(),
        "missing": f.missing(),
        "missing_rate": f.missing_rate(),
        "types": { "bool": f.bools(), "int": f.ints(), "float": f.floats(), "string": f.strings() },
        "trues": f.trues(),
        "positive_infinities": f.positive_infinities(),
        "negative_infinities": f.negative_infinities(),
        "zeros": f.zeros(),
        "negatives": f.negatives(),
        "collapsed": f.collapsed(),
        "mean": f.mean(),
        "variance": f.variance(),
        "min": f.min(),
        "p01": q(0.01), "p10": q(0.1), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
        "max": f.max(),
        "distinct": f.distinct(),
        "truncated_strings": f.truncated_strings(),
        "withheld": f.withheld(),
        "carried": f.carried(),
        "unsketched": f.unsketched(),
    })
}

pub fn ground_truth(g: &GroundTruthSummary) -> Value {
    let classes: Map<String, Value> = g
        .class_metrics()
        .map(|m| {
            (
                m.class.to_owned(),
                json!({ "precision": m.precision, "recall": m.recall, "f1": m.f1 }),
            )
        })
        .collect();
    json!({
        "kind": g.kind(),
        "count": g.count(),
        "mismatched": g.mismatched(),
        "overflowed": g.overflowed(),
        "accuracy": g.accuracy(),
        "macro_f1": g.macro_f1(),
        "micro_f1": g.micro_f1(),
        "classes": classes,
        "expected_calibration_error": g.expected_calibration_error(),
        "mse": g.mse(), "mae": g.mae(), "rmse": g.rmse(), "r2": g.r2(),
        "withheld": g.withheld(), "carried": g.carried(), "unsketched": g.unsketched(),
    })
}

pub fn summary(s: &WindowSummary) -> Value {
    let columns = |it: &mut dyn Iterator<Item = (&str, &FeatureSummary)>| -> Map<String, Value> {
        it.map(|(n, f)| (n.to_owned(), column(f))).collect()
    };
    let segments: Map<String, Value> = s
        .ground_truth_segments()
        .map(|(n, g)| (n.to_owned(), ground_truth(g)))
        .collect();
    let exceptions: Vec<Value> = s
        .exceptions()
        .iter()
        .map(|e| json!({ "message": e.message(), "count": e.count(), "tags": e.tags() }))
        .collect();
    json!({
        "deployment": s.deployment(),
        "instance": format!("{:016x}", s.instance()),
        "sequence": s.sequence(),
        "window_start": s.window_start(),
        "window_start_utc": s.window_start_utc(),
        "window_length_ms": s.window_length(),
        "partial": s.is_partial(),
        "key_fingerprint": format!("{:08x}", s.key_fingerprint()),
        "merged_windows": s.merged_windows(),
        "predictions": s.predictions(),
        "metadata": s.metadata(),
        "features": columns(&mut s.features()),
        "outputs": columns(&mut s.outputs()),
        "ground_truth": segments,
        "ground_truth_overall": s.ground_truth_overall().map(ground_truth),
        "exceptions": exceptions,
        "latency_seconds": s.latency().map(column),
        "counters": s.counters().collect::<BTreeMap<_, _>>(),
        "values": s.values().map(|(n, v)| (n, column(v))).collect::<BTreeMap<_, _>>(),
        "dropped": serde_json::to_value(s.dropped()).unwrap_or_default(),
        "feedback": serde_json::to_value(s.feedback()).unwrap_or_default(),
        "privacy": serde_json::to_value(s.privacy()).unwrap_or_default(),
    })
}

/// Pretty JSON safe for a terminal: serde_json escapes C0 controls, but DEL, C1 controls
/// (U+009B is a CSI on some terminals) and the bidi and zero-width characters pass as
/// they are; they are written as `\uXXXX` escapes, which JSON readers decode back.
pub fn to_terminal_text(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).expect("JSON values serialize");
    let mut out = String::with_capacity(text.len());
    let mut one = [0u8; 4];
    for c in text.chars() {
        let shown = &*c.encode_utf8(&mut one);
        if c == '\n'
            || matches!(
                modelwatch::escape_text(shown),
                std::borrow::Cow::Borrowed(_)
            )
        {
            out.push(c);
        } else {
            // Only inside strings: JSON's structure is ASCII.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_json_escapes_what_serde_json_leaves_and_still_parses() {
        let v = serde_json::json!({ "name": "a\u{9b}2J\u{202e}b\u{7f}\u{1b}", "n": [1, 2] });
        let text = super::to_terminal_text(&v);
        assert!(
            !text.contains(['\u{9b}', '\u{202e}', '\u{7f}', '\u{1b}']),
            "{text}"
        );
        assert!(
            text.contains("\\u009b") && text.contains("\\u202e"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
