//! Errors of the wire boundary: decoding untrusted bytes and merging summaries.

use std::fmt;

/// What went wrong reading or merging a [`WindowSummary`](crate::WindowSummary).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SummaryErrorKind {
    /// The bytes are not a MessagePack summary (truncated, wrong types, foreign data).
    Malformed,
    /// Written by a newer, incompatible schema.
    UnsupportedVersion(u32),
    /// Larger than [`MAX_SUMMARY_BYTES`](crate::MAX_SUMMARY_BYTES).
    TooLarge,
    /// A sketch payload failed validation.
    BadSketch,
    /// The two summaries cannot be merged (different deployments).
    Incompatible,
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
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for SummaryError {}

/// A sketch validation failure, carried through serde as a custom error message.
#[derive(Debug)]
pub(crate) struct WireError(pub(crate) String);

pub(crate) type WireResult<T> = Result<T, WireError>;

/// Prefix that marks a serde error as a sketch validation failure.
pub(crate) const SKETCH_ERROR_PREFIX: &str = "sketch: ";

impl WireError {
    pub(crate) fn sketch(sketch: &str, why: &str) -> Self {
        WireError(format!("{SKETCH_ERROR_PREFIX}{sketch}: {why}"))
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
