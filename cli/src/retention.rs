//! How long the store keeps each resolution (`collect --retain 1m=7d,1h=90d,1d=5y`).

use crate::store::Resolution;
use jiff::Span;

/// How long each resolution is kept; `None`: forever.
#[derive(Clone, Debug)]
pub struct Retention {
    keep: Vec<(Resolution, Option<Span>)>,
}

/// The default, as `--retain` spells it.
pub const DEFAULT: &str = "1m=7d,1h=90d,1d=5y";

impl Default for Retention {
    fn default() -> Self {
        Retention::parse_over(Vec::new(), DEFAULT).expect("the default parses")
    }
}

impl Retention {
    /// Parses `RES=SPAN,...` (RES: `1m`, `1h`, `1d`; SPAN: `7d`, `90d`, `5y`, or `forever`);
    /// a resolution left out keeps its default.
    pub fn parse(text: &str) -> Result<Retention, String> {
        Retention::parse_over(Retention::default().keep, text)
    }

    fn parse_over(
        mut keep: Vec<(Resolution, Option<Span>)>,
        text: &str,
    ) -> Result<Retention, String> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, span) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: write RES=SPAN, for example 1h=90d"))?;
            let resolution = Resolution::from_name(name.trim())
                .ok_or_else(|| format!("{name:?}: the resolutions are 1m, 1h and 1d"))?;
            let span = match span.trim() {
                "forever" => None,
                s => Some(crate::time::parse_span(s)?),
            };
            keep.retain(|(r, _)| *r != resolution);
            keep.push((resolution, span));
        }
        keep.sort_by_key(|(r, _)| *r);
        Ok(Retention { keep })
    }

    /// Per resolution kept for a limited time, the start before which it is deleted at
    /// `now_ms`.
    pub fn cutoffs(&self, now_ms: i64) -> Result<Vec<(Resolution, i64)>, String> {
        self.keep
            .iter()
            .filter_map(|(r, span)| span.map(|s| crate::time::before(now_ms, s).map(|t| (*r, t))))
            .collect()
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .keep
            .iter()
            .map(|(r, s)| match s {
                Some(s) => format!("{}={s:#}", r.name()),
                None => format!("{}=forever", r.name()),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse;

    #[test]
    fn parses_overrides_and_counts_back() {
        let now = parse("2026-03-31T12:00:00Z").unwrap();
        let r = Retention::default();
        assert_eq!(
            r.cutoffs(now).unwrap(),
            vec![
                (Resolution::Window, parse("2026-03-24T12:00:00Z").unwrap()),
                (Resolution::Hour, parse("2025-12-31T12:00:00Z").unwrap()),
                (Resolution::Day, parse("2021-03-31T12:00:00Z").unwrap()),
            ]
        );
        let r = Retention::parse("1m=2d, 1d=forever").unwrap();
        assert_eq!(r.to_string(), "1m=2d,1h=90d,1d=forever");
        assert_eq!(r.cutoffs(now).unwrap().len(), 2);
        assert!(Retention::parse("2m=7d").is_err());
        assert!(Retention::parse("1m").is_err());
        assert!(Retention::parse("1m=-1d").is_err());
    }
}
