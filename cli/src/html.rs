//! `report --html`: one self-contained page (inline SVG and CSS, no scripts, no network):
//! incidents on top, missing rates, accuracy, volume and latency over time, and each
//! feature's distribution in the baseline and in the analysed windows.

use crate::report::{in_incident, Report, Window};
use modelwatch::{format_utc, FeatureSummary};
use std::fmt::Write;

const W: f64 = 560.0;
const H: f64 = 180.0;
const PAD: f64 = 40.0;
const BASE: &str = "#7f8c8d";
const CURRENT: &str = "#2e86de";
const ALERT: &str = "#e74c3c";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-2) {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}

/// A line chart of series of (x, y) points, with the y range and marks at alert x values.
/// A chart series: label, colour, points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn line_chart(title: &str, series: &[Series<'_>], alerts: &[f64]) -> String {
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    if pts.is_empty() {
        return String::new();
    }
    let (x0, x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (y0, y1) = if y1 - y0 < 1e-12 {
        (y0 - 0.5, y1 + 0.5)
    } else {
        (y0, y1)
    };
    let sx = |x: f64| PAD + (x - x0) / (x1 - x0).max(1e-12) * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD / 2.0 - (y - y0) / (y1 - y0) * (H - PAD);
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    let _ = write!(
        s,
        "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ccc\"/>",
        H - PAD / 2.0,
        W - PAD,
        H - PAD / 2.0
    );
    let _ = write!(s, "<text x=\"2\" y=\"{}\" class=\"ax\">{}</text><text x=\"2\" y=\"{}\" class=\"ax\">{}</text>", sy(y1) + 4.0, fmt(y1), sy(y0), fmt(y0));
    for &a in alerts {
        let _ = write!(s, "<line x1=\"{0}\" y1=\"4\" x2=\"{0}\" y2=\"{1}\" stroke=\"{ALERT}\" stroke-dasharray=\"3 3\"/>", sx(a), H - PAD / 2.0);
    }
    // The legend runs along the top, left to right, above the plotted area.
    let mut legend_x = PAD;
    for (label, color, points) in series {
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for &(x, y) in points {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>",
                sx(x),
                sy(y)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{legend_x:.0}\" y=\"10\" fill=\"{color}\" class=\"ax\">■ {}</text>",
            esc(label)
        );
        legend_x += 16.0 + 6.0 * label.chars().count() as f64;
    }
    s.push_str("</svg></figure>");
    s
}

/// Baseline vs current quantile curves of a numeric feature, or top category shares.
fn distribution(name: &str, base: &FeatureSummary, cur: &FeatureSummary) -> String {
    if base.numbers() > 0 && cur.numbers() > 0 {
        let curve = |f: &FeatureSummary| -> Vec<(f64, f64)> {
            (1..100)
                .filter_map(|i| {
                    f.quantile(f64::from(i) / 100.0)
                        .map(|v| (v, f64::from(i) / 100.0))
                })
                .collect()
        };
        return line_chart(
            &format!("{name}: cumulative distribution (x: value, y: quantile)"),
            &[
                ("baseline", BASE, curve(base)),
                ("analysed windows", CURRENT, curve(cur)),
            ],
            &[],
        );
    }
    let (Some(b), Some(c)) = (base.category_profile(), cur.category_profile()) else {
        return String::new();
    };
    let (tb, tc) = (
        b.iter().map(|&x| x as f64).sum::<f64>().max(1.0),
        c.iter().map(|&x| x as f64).sum::<f64>().max(1.0),
    );
    let mut order: Vec<usize> = (0..b.len()).filter(|&i| b[i] > 0 || c[i] > 0).collect();
    order.sort_by(|&i, &j| b[j].saturating_add(c[j]).cmp(&b[i].saturating_add(c[i])));
    order.truncate(12);
    let bar_w = (W - 2.0 * PAD) / order.len().max(1) as f64 / 2.2;
    let mut s = format!(
        "<figure><figcaption>{}: share per hashed category bucket (grey: baseline, blue: analysed; red: never in the baseline)</figcaption><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{} categories\">",
        esc(name),
        esc(name)
    );
    let max = order
        .iter()
        .map(|&i| (b[i] as f64 / tb).max(c[i] as f64 / tc))
        .fold(0.0, f64::max)
        .max(1e-9);
    for (k, &i) in order.iter().enumerate() {
        let x = PAD + k as f64 * bar_w * 2.2;
        for (j, (share, color)) in [
            (b[i] as f64 / tb, BASE),
            (c[i] as f64 / tc, if b[i] == 0 { ALERT } else { CURRENT }),
        ]
        .into_iter()
        .enumerate()
        {
            let h = share / max * (H - PAD);
            let _ = write!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" fill=\"{color}\"/>", x + j as f64 * bar_w, H - PAD / 2.0 - h);
        }
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" class=\"ax\">#{i}</text>",
            H - 4.0
        );
    }
    s.push_str("</svg></figure>");
    s
}

/// The page of one or more deployments' reports.
pub fn page(reports: &[Report]) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>modelwatch report</title><style>\
         body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}\
         h1{font-size:22px}h2{font-size:18px;margin-top:28px}\
         .incidents td{text-align:left}.incidents tr.open td{background:#fdf0ef}\
         .incidents tr.open td:first-child{border-left:4px solid #e74c3c}\
         .ok{border-left:4px solid #27ae60;background:#eefaf1;padding:6px 10px}\
         figure{display:inline-block;margin:8px 16px 8px 0}figcaption{font-size:12px;color:#555}\
         .ax{font-size:10px;fill:#555}table{border-collapse:collapse;font-size:12px}\
         td,th{border-bottom:1px solid #eee;padding:2px 8px;text-align:right}</style></head><body>",
    );
    for r in reports {
        let _ = write!(
            s,
            "<h1>{}</h1><p>{} windows; baseline: {}.</p>",
            esc(&r.deployment),
            r.windows.len(),
            esc(&r.baseline_description)
        );
        let _ = write!(s, "<h2>Incidents</h2>");
        s.push_str(&crate::incidents::html(&r.incidents, esc));
        if let Some(v) = &r.violations {
            s.push_str(&crate::constraints::html(v, esc));
        }
        let x = |w: &Window| (w.start - r.windows[0].start) as f64 / 1000.0;
        let alerts: Vec<f64> = r
            .windows
            .iter()
            .filter(|w| in_incident(r, w.start))
            .map(x)
            .collect();
        let _ = write!(
            s,
            "<h2>Over time (x: seconds since {}; red: windows within an incident)</h2>",
            esc(&format_utc(r.windows[0].start))
        );
        let series = |f: &dyn Fn(&Window) -> Option<f64>| -> Vec<(f64, f64)> {
            r.windows
                .iter()
                .filter_map(|w| f(w).map(|v| (x(w), v)))
                .collect()
        };
        s.push_str(&line_chart(
            "predictions per window",
            &[(
                "predictions",
                CURRENT,
                series(&|w| Some(w.predictions as f64)),
            )],
            &alerts,
        ));
        s.push_str(&line_chart(
            "missing rate (all features)",
            &[("missing", CURRENT, series(&|w| w.missing_rate))],
            &alerts,
        ));
        let segs: Vec<String> = r
            .merged
            .ground_truth_segments()
            .map(|(n, _)| n.to_owned())
            .collect();
        let mut quality_series = vec![("all", BASE, series(&|w| w.overall.map(|q| q.1)))];
        let palette = [CURRENT, "#8e44ad", "#16a085", "#d35400", "#2c3e50"];
        for (k, seg) in segs.iter().take(palette.len()).enumerate() {
            quality_series.push((
                seg.as_str(),
                palette[k],
                series(&|w| w.segments.get(seg).map(|q| q.1)),
            ));
        }
        s.push_str(&line_chart(
            "accuracy (or MSE) per segment",
            &quality_series,
            &alerts,
        ));
        // The axis in the unit of the largest p99, so that its ticks read as numbers.
        let slowest = r
            .windows
            .iter()
            .filter_map(|w| w.latency.1)
            .fold(0.0, f64::max);
        let (scale, unit) = match slowest {
            x if x >= 1.0 => (1.0, "s"),
            x if x >= 1e-3 => (1e3, "ms"),
            x if x >= 1e-6 => (1e6, "µs"),
            _ => (1e9, "ns"),
        };
        s.push_str(&line_chart(
            &format!("latency p50 / p99 ({unit})"),
            &[
                ("p50", BASE, series(&|w| w.latency.0.map(|v| v * scale))),
                ("p99", CURRENT, series(&|w| w.latency.1.map(|v| v * scale))),
            ],
            &alerts,
        ));
        // Drift scores of the features that drifted most, over time.
        let mut peaks: Vec<(&String, f64)> = Vec::new();
        for w in &r.windows {
            for (name, &psi) in &w.drift {
                match peaks.iter_mut().find(|p| p.0 == name) {
                    Some(p) => p.1 = p.1.max(psi),
                    None => peaks.push((name, psi)),
                }
            }
        }
        peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
        let drift_series: Vec<_> = peaks
            .iter()
            .take(palette.len())
            .zip(palette)
            .map(|((name, _), colour)| {
                (
                    name.as_str(),
                    colour,
                    series(&|w| w.drift.get(*name).copied()),
                )
            })
            .collect();
        if !drift_series.is_empty() {
            s.push_str(&line_chart(
                "drift score (PSI) per feature, most drifted first",
                &drift_series,
                &alerts,
            ));
        }
        // The distributions the incidents are about, when there are any: the baseline
        // against the windows within incidents, not against the whole range.
        let compared = match (&r.incident_merged, &r.analysed_merged) {
            (Some(m), _) => Some((m, "windows within incidents")),
            (None, Some(m)) => Some((m, "analysed windows")),
            _ => None,
        };
        if let Some((current, what)) = compared {
            let _ = write!(s, "<h2>Distributions: baseline vs {what}</h2>");
            let columns = current
                .features()
                .map(|(n, f)| (n.to_owned(), f, r.baseline.feature(n)))
                .chain(
                    current
                        .outputs()
                        .map(|(n, f)| (format!("output {n}"), f, r.baseline.output(n))),
                );
            for (name, f, b) in columns {
                if let Some(b) = b {
                    s.push_str(&distribution(&name, b, f));
                }
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}
