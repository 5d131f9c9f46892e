//! Window summaries as JSON (crate feature `json`): counts, quantiles, distinct counts and
//! derived metrics, as `modelwatch inspect --json` prints them and the Python package's
//! `read_summary` returns them. The sketches themselves stay binary.
//!
//! ```
//! use modelwatch::{SummaryBuilder, Value};
//! let mut b = SummaryBuilder::new("m", 0, 60_000, [1; 16]);
//! for i in 0..10 {
//!     b.log_prediction([("x", Value::from(f64::from(i)))], 0.5);
//! }
//! let v = modelwatch::json::summary(&b.build());
//! assert_eq!(v["predictions"], 10);
//! assert_eq!(v["features"]["x"]["count"], 10);
//! ```

use crate::{FeatureSummary, GroundTruthSummary, WindowSummary};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One feature, output, latency or named value: counts, moments, quantiles, distinct count.
pub fn column(f: &FeatureSummary) -> Value {
    let q = |p: f64| f.quantile(p);
    json!({
        "count": f.count(),
        "missing": f.missing(),
        "missing_rate": f.missing_rate(),
        "types": {
            "bool": f.bools(), "int": f.ints(), "float": f.floats(), "string": f.strings(),
            "vector": f.vectors(),
        },
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
        // Vector features: their numbers above are the vectors' L2 norms.
        "vector_dimensions": f.vector_dimensions().map(|(lo, hi)| [lo, hi]),
        "vector_mean": f.vector_mean(),
        "categories": f.categories().collect::<BTreeMap<_, _>>(),
    })
}

/// One ground-truth summary (a segment or overall): counts and derived metrics.
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

/// A whole window summary, every field `modelwatch inspect --json` shows.
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
        "declared_features": s.declared_features().map(|(n, t)| (n, t.as_str())).collect::<BTreeMap<_, _>>(),
        "names_over_cap": s.names_over_cap(),
    })
}
