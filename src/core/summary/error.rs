//! Errors of the wire boundary: decoding untrusted bytes and merging summaries.

use std::fmt;

/// What went wrong reading or merging a [`WindowSummary`](crate::WindowSummary).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SummaryErrorKind {
    /// The bytes are not a MessagePack summary (truncated, wrong types, foreign data).
    Malformed,
    /// A schema this version cannot read: 1 (before the compact sketches, see
    /// `docs/wire-format.md`) or a newer, incompatible one.
    UnsupportedVersion(u32),
    /// Larger than [`MAX_SUMMARY_BYTES`](crate::MAX_SUMMARY_BYTES).
    TooLarge,
    /// A sketch payload failed validation.
    BadSketch,
    /// The two summaries cannot be merged (different deployments).
    Incompatible,
    /// Decoding would allocate more than the budget its size allows
    /// ([`DECODE_BUDGET_FACTOR`](crate::DECODE_BUDGET_FACTOR)): a forged summary.
    OverBudget,
    /// The two summaries were made with different hash keys: their distinct counts and
    /// category profiles live in different hash spaces and cannot be merged.
    KeyMismatch,
}

/// An error decoding, validating or merging a window summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryError {
    kind: SummaryErrorKind,
    detail: String,
}

impl SummaryError {
    pub(crate) fn new(kind: SummaryErrorKind, detail: impl Into<String>) -> Self {
        SummaryError {
            kind,
            detail: detail.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> &SummaryErrorKind {
        &self.kind
    }
}

impl fmt::Display for SummaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            SummaryErrorKind::Malformed => "malformed summary",
            SummaryErrorKind::UnsupportedVersion(_) => "unsupported summary version",
            SummaryErrorKind::TooLarge => "summary too large",
            SummaryErrorKind::BadSketch => "invalid sketch in summary",
            SummaryErrorKind::Incompatible => "summaries cannot be merged",
            SummaryErrorKind::OverBudget => "summary over its decode budget",
            SummaryErrorKind::KeyMismatch => "summaries made with different hash keys",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for SummaryError {}
