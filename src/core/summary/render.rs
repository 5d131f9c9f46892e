//! The readable form of a summary: what debug mode prints and `modelwatch inspect` shows.

use super::{FeatureSummary, WindowSummary};
use std::fmt::{self, Display, Write};

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
    if t.is_empty() {
        t.push('-');
    }
    t
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
            "  {name:<24} {:>8} {:>8} {:>11} {:>11} {:>11} {:>11} {:>9}  {}",
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
            self.deployment(),
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
                .map(|(k, v)| format!("{k}={v}"))
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
            write!(f, "  ground truth {seg:<12} n={:<6}", gt.count())?;
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
                        m.class,
                        num(m.precision),
                        num(m.recall),
                        num(m.f1)
                    )?;
                }
            }
            if gt.mismatched() > 0 {
                write!(f, " (mismatched {})", gt.mismatched())?;
            }
            writeln!(f)?;
        }
        for e in self.exceptions() {
            let tags: Vec<String> = e.tags().iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                f,
                "  exception x{}: {} {}",
                e.count(),
                e.message(),
                tags.join(" ")
            )?;
        }
        if let Some(l) = self.latency() {
            writeln!(
                f,
                "  latency n={} p50={}ms p99={}ms max={}ms",
                l.count(),
                num(l.quantile(0.5).map(|s| s * 1e3)),
                num(l.quantile(0.99).map(|s| s * 1e3)),
                num(l.max().map(|s| s * 1e3))
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
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
