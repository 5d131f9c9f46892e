//! Incidents as a report leads with them: grouped by kind, most severe first, open before
//! closed; as text, JSON and HTML.

use crate::text::sanitize;
use modelwatch::{format_utc, Incident, IncidentKind};
use serde_json::{json, Value};
use std::fmt::Write;

/// The incidents in the order a reader should act on them: open before closed, then by
/// kind (model quality first, then data, then operations: [`modelwatch::IncidentKind`]'s
/// order), then by peak score, largest first.
pub fn ranked(incidents: &[Incident]) -> Vec<&Incident> {
    let mut v: Vec<&Incident> = incidents.iter().collect();
    v.sort_by(|a, b| {
        (!a.is_open(), a.kind)
            .cmp(&(!b.is_open(), b.kind))
            .then(b.peak_score.total_cmp(&a.peak_score))
    });
    v
}

/// When, in words: "open since T (last seen T)" or "T to T".
fn span(i: &Incident) -> String {
    match i.closed_ms {
        None => format!(
            "open since {} (last seen {})",
            format_utc(i.opened_ms),
            format_utc(i.last_seen_ms)
        ),
        Some(c) => format!("{} to {}", format_utc(i.opened_ms), format_utc(c)),
    }
}

/// The peak score, if the incident has one: a constraint has none (its windows failed it
/// or not).
fn peak(i: &Incident) -> Option<f64> {
    (i.kind != IncidentKind::ConstraintViolation).then_some(i.peak_score)
}

/// Text: one heading per kind, one line per incident.
pub fn text(incidents: &[Incident]) -> String {
    let mut t = String::new();
    if incidents.is_empty() {
        let _ = writeln!(t, "No incidents against the baseline.");
        return t;
    }
    let open = incidents.iter().filter(|i| i.is_open()).count();
    let _ = writeln!(
        t,
        "{} incident(s), {open} open, most severe first:",
        incidents.len()
    );
    let mut heading = None;
    for i in ranked(incidents) {
        let h = (i.is_open(), i.kind);
        if heading != Some(h) {
            let state = if i.is_open() { "open" } else { "closed" };
            let _ = writeln!(t, "  {} ({state}):", i.kind);
            heading = Some(h);
        }
        let peak = match peak(i) {
            Some(p) => format!(", peak {p:.1} standard errors"),
            None => String::new(),
        };
        let _ = writeln!(
            t,
            "    {}: {}; {} window(s) with evidence{peak}",
            sanitize(&i.subject),
            span(i),
            i.windows,
        );
        let _ = writeln!(t, "      {}", sanitize(&i.text));
    }
    t
}

/// JSON: kind, subject, opened, closed or null, peak, text, per incident, ranked.
pub fn json(incidents: &[Incident]) -> Value {
    ranked(incidents)
        .into_iter()
        .map(|i| {
            json!({
                "kind": i.kind.name(),
                "subject": i.subject,
                "opened_ms": i.opened_ms,
                "opened_utc": format_utc(i.opened_ms),
                "last_seen_ms": i.last_seen_ms,
                "closed_ms": i.closed_ms,
                "closed_utc": i.closed_ms.map(format_utc),
                "peak_score": i.peak_score,
                "peak_value": i.peak_value,
                "baseline_value": i.baseline_value,
                "baseline": i.baseline,
                "windows": i.windows,
                "text": i.text,
            })
        })
        .collect()
}

/// HTML: a table per kind, escaped by `esc`.
pub fn html(incidents: &[Incident], esc: impl Fn(&str) -> String) -> String {
    let mut h = String::new();
    if incidents.is_empty() {
        h.push_str("<p class=\"ok\">No incidents against the baseline.</p>\n");
        return h;
    }
    h.push_str("<table class=\"incidents\"><tr><th>kind</th><th>subject</th><th>when</th><th>peak</th><th>what</th></tr>\n");
    for i in ranked(incidents) {
        let class = if i.is_open() { "open" } else { "closed" };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.kind,
            esc(&i.subject),
            esc(&span(i)),
            peak(i).map_or_else(String::new, |p| format!("{p:.1}")),
            esc(&i.text)
        );
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::{Baseline, IncidentKind, Monitor, SummaryBuilder};

    /// Incidents from a real monitor: `a` loses values (missing rate) from window 10 on,
    /// `b` from window 20 to 30 only.
    fn incidents() -> Vec<Incident> {
        let mut m = Monitor::new(Baseline::FirstWindows(3));
        for minute in 0..60 {
            let mut s = SummaryBuilder::new("d", minute * 60_000, 60_000, [3; 16]);
            for i in 0..300 {
                let a = (minute < 10 || i % 3 != 0).then_some(i as i64);
                let b = (!(20..30).contains(&minute) || i % 2 != 0).then_some(i as i64);
                s.log_prediction([("a", a), ("b", b)], 0.5);
            }
            m.observe(&s.build());
        }
        m.incidents().to_vec()
    }

    #[test]
    fn open_incidents_come_first_and_each_is_one_line_group() {
        let all = incidents();
        assert_eq!(all.len(), 2, "{all:#?}");
        let r = ranked(&all);
        assert_eq!((r[0].subject.as_str(), r[0].is_open()), ("a", true));
        assert_eq!((r[1].subject.as_str(), r[1].is_open()), ("b", false));
        let t = text(&all);
        assert!(t.starts_with("2 incident(s), 1 open"), "{t}");
        assert!(
            t.contains("  missing_rate (open):\n    a: open since 1970-01-01T00:10:00Z"),
            "{t}"
        );
        assert!(
            t.contains("  missing_rate (closed):\n    b: 1970-01-01T00:20:00Z to"),
            "{t}"
        );
        let j = json(&all);
        assert_eq!(j[0]["kind"], "missing_rate");
        assert_eq!(j[0]["closed_ms"], Value::Null);
        assert!(j[1]["closed_ms"].as_i64().unwrap() >= 30 * 60_000);
        assert!(all.iter().all(|i| i.kind == IncidentKind::MissingRate));
        let h = html(&all, |s| s.replace('<', "&lt;"));
        assert_eq!(h.matches("<tr class=").count(), 2);
    }
}
