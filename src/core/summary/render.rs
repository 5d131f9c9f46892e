//! The readable form of a summary: what debug mode prints and `modelwatch inspect` shows.
//!
//! Names, labels, metadata and exception text ship as their senders wrote them. Printed
//! raw, an escape sequence would set the terminal's title or clear the screen, and a
//! newline would forge a line of the table; so every such string goes through
//! [`escape_text`].

use super::{FeatureSummary, WindowSummary};
use std::borrow::Cow;
use std::fmt::{self, Display, Write};

/// Whether a character must not reach a terminal as is: control characters (C0, DEL, C1),
/// and the invisible ones that reorder or hide text (bidirectional overrides and isolates,
/// zero-width characters, the byte-order mark).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` made safe for a terminal: control characters (C0, DEL, C1) and the invisible
/// characters that reorder or hide text (bidirectional overrides and isolates, zero-width
/// characters, the byte-order mark) escaped as `\n`, `\r`, `\t`, `\x1b` (below U+0100) or
/// `\u{202e}` (above); borrowed when nothing needs escaping. The `Display` of
/// [`WindowSummary`] escapes every string of the summary with it.
///
/// ```
/// use modelwatch::escape_text;
/// assert_eq!(escape_text("plain é"), "plain é");
/// assert_eq!(
///     escape_text("a\u{1b}[2J\nFAKE\u{202e}"),
///     "a\\x1b[2J\\nFAKE\\u{202e}"
/// );
/// ```
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A duration in seconds, in the unit that reads best, with three significant digits:
/// `957ns`, `12.5µs`, `3.20ms`, `1.50s`. What debug mode, `inspect`, the report and the
/// incidents print.
///
/// ```
/// assert_eq!(modelwatch::format_duration(9.574e-7), "957ns");
/// assert_eq!(modelwatch::format_duration(0.0053), "5.30ms");
/// ```
pub fn format_duration(seconds: f64) -> String {
    duration(Some(seconds))
}

/// [`format_duration`], or `-` for none.
pub(crate) fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let (value, unit) = match s.abs() {
        x if x >= 1.0 => (s, "s"),
        x if x >= 1e-3 => (s * 1e3, "ms"),
        x if x >= 1e-6 => (s * 1e6, "µs"),
        _ => (s * 1e9, "ns"),
    };
    let digits = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{unit}")
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 1e6 || x.abs() < 1e-3 => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into(),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn types(f: &FeatureSummary) -> String {
    let mut t = String::new();
    for (n, name) in [
        (f.floats(), "float"),
        (f.ints(), "int"),
        (f.strings(), "str"),
        (f.bools(), "bool"),
    ] {
        if n > 0 {
            let _ = write!(t, "{}{name}:{n}", if t.is_empty() { "" } else { " " });
        }
    }
    if f.vectors() > 0 {
        // A vector's numbers are its norms: say so, and its dimension.
        let dims = match f.vector_dimensions() {
            Some((lo, hi)) if lo == hi => format!("dim {hi}"),
            Some((lo, hi)) => format!("dim {lo}..{hi}"),
            None => "non-finite".into(),
        };
        let sep = if t.is_empty() { "" } else { " " };
        let _ = write!(
            t,
            "{sep}vector:{} ({dims}; stats are L2 norms)",
            f.vectors()
        );
    }
    held(&mut t, f.withheld(), f.carried(), f.unsketched());
    if t.is_empty() {
        t.push('-');
    }
    t
}

/// What k-anonymity held back, carried in or stripped, appended to a row when nonzero.
fn held(t: &mut String, withheld: u64, carried: u64, unsketched: u64) {
    for (n, name) in [
        (withheld, "withheld"),
        (carried, "carried"),
        (unsketched, "unsketched"),
    ] {
        if n > 0 {
            let _ = write!(t, "{}{name}:{n}", if t.is_empty() { "" } else { " " });
        }
    }
}

fn column_table(
    f: &mut fmt::Formatter<'_>,
    title: &str,
    rows: &mut dyn Iterator<Item = (&str, &FeatureSummary)>,
) -> fmt::Result {
    writeln!(
        f,
        "  {title:<24} {:>8} {:>8} {:>11} {:>11} {:>11} {:>11} {:>9}  types",
        "count", "missing", "mean", "p50", "p90", "p99", "distinct"
    )?;
    for (name, c) in rows {
        writeln!(
            f,
            "  {:<24} {:>8} {:>8} {:>11} {:>11} {:>11} {:>11} {:>9}  {}",
            escape_text(name),
            c.count(),
            pct(c.missing_rate()),
            num(c.mean()),
            num(c.quantile(0.5)),
            num(c.quantile(0.9)),
            num(c.quantile(0.99)),
            if c.numbers() > 0 || c.strings() > 0 {
                c.distinct().to_string()
            } else {
                "-".into()
            },
            types(c),
        )?;
    }
    Ok(())
}

impl Display for WindowSummary {
    /// A table a person reads at a glance: counts, missing %, p50/p90/p99, distinct,
    /// accuracy per segment, exceptions, latency and drops.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== {} | window {} +{}s{} | seq {} of {:016x} | {} predictions",
            escape_text(self.deployment()),
            self.window_start_utc(),
            self.window_length() / 1000,
            if self.is_partial() { " (partial)" } else { "" },
            self.sequence(),
            self.instance(),
            self.predictions()
        )?;
        if !self.metadata().is_empty() {
            let m: Vec<String> = self
                .metadata()
                .iter()
                .map(|(k, v)| format!("{}={}", escape_text(k), escape_text(v)))
                .collect();
            writeln!(f, "  metadata: {}", m.join(", "))?;
        }
        if self.features.is_empty() {
            writeln!(f, "  (no features)")?;
        } else {
            column_table(f, "feature", &mut self.features())?;
        }
        if !self.outputs.is_empty() {
            column_table(f, "output", &mut self.outputs())?;
        }
        let overall = self.ground_truth_overall().map(|g| ("(all)", g));
        for (seg, gt) in overall.into_iter().chain(self.ground_truth_segments()) {
            write!(
                f,
                "  ground truth {:<12} n={:<6}",
                escape_text(seg),
                gt.count()
            )?;
            if gt.kind() == Some(super::ground_truth::OutputKind::Regression) {
                write!(
                    f,
                    " mse={} mae={} r2={}",
                    num(gt.mse()),
                    num(gt.mae()),
                    num(gt.r2())
                )?;
            } else {
                write!(
                    f,
                    " accuracy={} macro-f1={}",
                    pct(gt.accuracy()),
                    num(gt.macro_f1())
                )?;
                if let Some(ece) = gt.expected_calibration_error() {
                    write!(f, " ece={}", num(Some(ece)))?;
                }
                for m in gt.class_metrics().take(8) {
                    write!(
                        f,
                        " | {}: p={} r={} f1={}",
                        escape_text(m.class),
                        num(m.precision),
                        num(m.recall),
                        num(m.f1)
                    )?;
                }
            }
            if gt.mismatched() > 0 {
                write!(f, " (mismatched {})", gt.mismatched())?;
            }
            let mut k = String::new();
            held(&mut k, gt.withheld(), gt.carried(), gt.unsketched());
            if !k.is_empty() {
                write!(f, " ({k})")?;
            }
            writeln!(f)?;
        }
        for e in self.exceptions() {
            let tags: Vec<String> = e
                .tags()
                .iter()
                .map(|(k, v)| format!("{}={}", escape_text(k), escape_text(v)))
                .collect();
            writeln!(
                f,
                "  exception x{}: {} {}",
                e.count(),
                escape_text(e.message()),
                tags.join(" ")
            )?;
        }
        if let Some(l) = self.latency() {
            writeln!(
                f,
                "  latency n={} p50={} p99={} max={}",
                l.count(),
                duration(l.quantile(0.5)),
                duration(l.quantile(0.99)),
                duration(l.max())
            )?;
        }
        for (name, n) in self.counters() {
            writeln!(f, "  counter {}: {n}", escape_text(name))?;
        }
        for (name, v) in self.values() {
            writeln!(
                f,
                "  value {}: n={} mean={} p50={} p99={} max={}",
                escape_text(name),
                v.count(),
                v.mean().map_or("-".into(), |x| format!("{x:.4}")),
                v.quantile(0.5).map_or("-".into(), |x| format!("{x:.4}")),
                v.quantile(0.99).map_or("-".into(), |x| format!("{x:.4}")),
                v.max().map_or("-".into(), |x| format!("{x:.4}")),
            )?;
        }
        let fb = self.feedback();
        if *fb != Default::default() {
            writeln!(
                f,
                "  feedback: matched {} | unknown key {} | expired {} | duplicate {} | evicted {} | replaced {}",
                fb.matched, fb.unknown_key, fb.expired, fb.duplicate, fb.evicted, fb.replaced
            )?;
        }
        let d = self.dropped();
        if d.total() > 0 {
            writeln!(f, "  dropped: {d:?}")?;
        }
        if !self.names_over_cap().is_empty() {
            let names: Vec<String> = self
                .names_over_cap()
                .iter()
                .map(|n| escape_text(n).into_owned())
                .collect();
            writeln!(f, "  over the feature cap: {}", names.join(", "))?;
        }
        if self.declared_features().next().is_some() {
            let declared: Vec<String> = self
                .declared_features()
                .map(|(n, t)| format!("{}:{t}", escape_text(n)))
                .collect();
            writeln!(f, "  declared: {}", declared.join(", "))?;
        }
        if *self.privacy() != Default::default() {
            writeln!(f, "  privacy: {:?}", self.privacy())?;
        }
        Ok(())
    }
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), as tables and reports show
/// window starts.
///
/// ```
/// assert_eq!(modelwatch::format_utc(1_795_000_000_000), "2026-11-18T11:06:40Z");
/// ```
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::escape_text;
    use std::borrow::Cow;

    #[test]
    fn durations_read_in_their_unit() {
        let d = |s: f64| super::duration(Some(s));
        assert_eq!(d(9.574e-7), "957ns");
        assert_eq!(d(1.25e-5), "12.5µs");
        assert_eq!(d(3.2e-3), "3.20ms");
        assert_eq!(d(1.5), "1.50s");
        assert_eq!(super::duration(None), "-");
    }

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert!(matches!(escape_text("plain name é"), Cow::Borrowed(_)));
        assert_eq!(
            escape_text(
                "a\u{1b}]0;title\u{7}\nFAKE LINE\r\t\u{7f}\u{9b}\u{200b}\u{202e}\u{2066}\u{feff}"
            ),
            "a\\x1b]0;title\\x07\\nFAKE LINE\\r\\t\\x7f\\x9b\\u{200b}\\u{202e}\\u{2066}\\u{feff}"
        );
    }

    #[test]
    fn the_table_escapes_every_shipped_string_and_keeps_its_layout() {
        let forged = "\nFAKE LINE: accuracy=100%";
        // One value per column: k-anonymity off, this test is about escaping.
        let mut b =
            crate::SummaryBuilder::new("svc\u{1b}[2J", 0, 60_000, [7; 16]).min_values_per_window(1);
        b.log_prediction(
            [(format!("x{forged}").as_str(), 1.0)],
            crate::Outputs([(format!("out{forged}\u{202e}").as_str(), 0.5)]),
        );
        b.log_ground_truth(
            format!("cat{forged}").as_str(),
            "dog",
            [format!("seg{forged}")],
        );
        b.log_exception(
            &format!("boom{forged}\u{1b}]0;pwned\u{7}"),
            [("k\t", "v\r")],
        );
        b.log_metadata(&format!("model{forged}"), "v\u{1b}[31m\u{9b}");
        let text = b.build().to_string();
        for bad in ['\u{1b}', '\u{7}', '\r', '\t', '\u{9b}', '\u{202e}'] {
            assert!(!text.contains(bad), "{bad:?} in {text}");
        }
        assert!(!text.lines().any(|l| l.starts_with("FAKE")), "{text}");
        for escaped in [
            "== svc\\x1b[2J |",
            "  x\\nFAKE",
            "  out\\nFAKE LINE: accuracy=100%\\u{202e}",
            "ground truth seg\\nFAKE",
            "| cat\\nFAKE",
            "boom\\nFAKE LINE: accuracy=100%\\x1b]0;pwned\\x07 k\\t=v\\r",
            "model\\nFAKE LINE: accuracy=100%=v\\x1b[31m\\x9b",
        ] {
            assert!(text.contains(escaped), "no {escaped:?} in {text}");
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
