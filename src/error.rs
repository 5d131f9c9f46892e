//! The error of the agent boundary: starting, configuring, flushing, shutting down.

use std::collections::BTreeMap;
use std::fmt;

/// What kind of agent operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid (the message says which setting and why).
    InvalidConfig,
    /// The local folder could not be created or written.
    Io,
    /// `flush` or `shutdown` did not finish within its timeout.
    Timeout,
    /// `configure` was called while a global agent is running.
    AlreadyConfigured,
    /// The agent has shut down.
    NotRunning,
    /// Some summaries were not delivered: [`Error::undelivered`] says how many, and why.
    Delivery,
    /// An endpoint is set but no hash key: set [`Config::hash_key`](crate::Config::hash_key)
    /// or the environment variable [`HASH_KEY_ENV`](crate::HASH_KEY_ENV). The key is never
    /// derived from the API key, which the collector holds (`docs/privacy.md`).
    NoHashKey,
}

/// An error from [`Agent`](crate::Agent) or [`configure`](crate::configure).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<std::io::Error>,
    undelivered: Option<Undelivered>,
}

/// What a `flush` or `shutdown` could not deliver (an [`ErrorKind::Delivery`] error). A
/// flush counts from the previous flush, a shutdown over the agent's whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undelivered {
    /// Summaries still waiting for the collector at the deadline: kept in the backlog (a
    /// flush) or in the spool on disk when a data folder is set (a shutdown; the next agent
    /// started on that folder sends them), else lost.
    pub waiting_http: u64,
    /// Summaries a local or custom sink had not accepted by the deadline (kept in its
    /// backlog; lost at shutdown).
    pub waiting_local: u64,
    /// Summaries the collector refused (4xx other than 429), by status.
    pub rejected: BTreeMap<u16, u64>,
    /// Summaries dropped, oldest first, by a backlog or spool bound.
    pub dropped: u64,
}

impl Undelivered {
    /// Whether everything was delivered.
    pub fn is_empty(&self) -> bool {
        *self == Undelivered::default()
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.waiting_http > 0 {
            parts.push(format!("{} waiting for the collector", self.waiting_http));
        }
        if self.waiting_local > 0 {
            parts.push(format!("{} waiting for a local sink", self.waiting_local));
        }
        if !self.rejected.is_empty() {
            let by: Vec<String> = self
                .rejected
                .iter()
                .map(|(status, n)| format!("{n} with status {status}"))
                .collect();
            parts.push(format!("refused by the collector: {}", by.join(", ")));
        }
        if self.dropped > 0 {
            parts.push(format!("{} dropped by the backlog bound", self.dropped));
        }
        write!(f, "summaries not delivered: {}", parts.join("; "))
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
            undelivered: None,
        }
    }

    /// A flush or shutdown whose answer did not come in time (a request or a sink still
    /// under way), with what was waiting when the caller stopped waiting.
    pub(crate) fn timed_out(timeout: std::time::Duration, waiting: Undelivered) -> Self {
        Error {
            kind: ErrorKind::Timeout,
            message: format!(
                "not finished within {timeout:?} (a request or a sink was still under way); {}",
                if waiting.is_empty() {
                    "nothing waiting".to_owned()
                } else {
                    waiting.to_string()
                }
            ),
            source: None,
            undelivered: Some(waiting),
        }
    }

    pub(crate) fn undelivered_summaries(what: Undelivered) -> Self {
        Error {
            kind: ErrorKind::Delivery,
            message: what.to_string(),
            source: None,
            undelivered: Some(what),
        }
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: message.into(),
            source: Some(source),
            undelivered: None,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For an [`ErrorKind::Delivery`] error, what was not delivered; for an
    /// [`ErrorKind::Timeout`] of `flush` or `shutdown`, what was still waiting then.
    pub fn undelivered(&self) -> Option<&Undelivered> {
        self.undelivered.as_ref()
    }
}

/// The message alone: the I/O cause is [`source`](std::error::Error::source), so that
/// reporters that walk the chain (anyhow, eyre, `log`'s `{:#}`) print it once, not twice.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_the_source_and_not_repeated_in_the_message() {
        let cause = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Error::io("cannot create the data folder ./x", cause);
        assert_eq!(e.to_string(), "cannot create the data folder ./x");
        assert_eq!(e.source().unwrap().to_string(), "entity not found");
    }

    #[test]
    fn a_delivery_error_says_what_was_not_delivered() {
        let e = Error::undelivered_summaries(Undelivered {
            waiting_http: 2,
            rejected: [(401, 3), (413, 1)].into(),
            dropped: 4,
            ..Undelivered::default()
        });
        assert_eq!(e.kind(), ErrorKind::Delivery);
        assert_eq!(
            e.to_string(),
            "summaries not delivered: 2 waiting for the collector; refused by the collector: \
             3 with status 401, 1 with status 413; 4 dropped by the backlog bound"
        );
        assert_eq!(e.undelivered().unwrap().rejected[&401], 3);
    }
}
