//! The error of the agent boundary: starting, configuring, flushing, shutting down.

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
    /// Some summaries could not be delivered to a sink (they are counted in `Agent::stats`).
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
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: message.into(),
            source: Some(source),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
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
}
