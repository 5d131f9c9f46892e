//! Agent configuration.

use super::debug::DebugTo;
use super::sink::Sink;
use crate::core::sketch::keyed_hash::HashKey;
use crate::core::summary::anonymity::DEFAULT_MIN_VALUES_PER_WINDOW;
use crate::core::summary::DEFAULT_PLAIN_CATEGORY_MIN_COUNT;
use crate::core::window::Limits;
use crate::error::{Error, ErrorKind};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// How an [`Agent`](crate::Agent) runs. Every setter names its default.
///
/// ```
/// use modelwatch::Config;
/// use std::time::Duration;
/// let config = Config::new("api-key")
///     .data_dir("./modelwatch-data")
///     .window(Duration::from_secs(60))
///     .debug_mode(false);
/// # let _ = config;
/// ```
pub struct Config {
    pub(crate) api_key: String,
    data_dir: DataDir,
    pub(crate) window: Duration,
    pub(crate) debug_to: Option<DebugTo>,
    pub(crate) hash_key: Option<HashKey>,
    pub(crate) limits: Limits,
    pub(crate) min_values: u64,
    pub(crate) allowed_texts: HashSet<String>,
    pub(crate) plain_categories: HashSet<String>,
    pub(crate) plain_min: u64,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    pub(crate) join_capacity: usize,
    pub(crate) join_ttl: Duration,
    /// Collectors, in order of preference (`endpoint`, `endpoints`, [`ENDPOINTS_ENV`]).
    pub(crate) endpoints: Vec<String>,
    pub(crate) upload_interval: Option<Duration>,
    pub(crate) request_timeout: Duration,
    pub(crate) max_backlog_bytes: usize,
    pub(crate) exit_on_signal: bool,
    pub(crate) max_sessions: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"<redacted>")
            .field("data_dir", &self.data_dir)
            .field("window", &self.window)
            .field("debug_to", &self.debug_to)
            .field("limits", &self.limits)
            .field("min_values_per_window", &self.min_values)
            .field("allowed_texts", &self.allowed_texts.len())
            .field("plain_categories", &self.plain_categories)
            .field("plain_category_min_count", &self.plain_min)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

/// Whether and where the folder sink writes.
#[derive(Debug)]
enum DataDir {
    /// `DEFAULT_DATA_DIR` unless an endpoint is set.
    Default,
    At(PathBuf),
    Off,
}

/// Where summaries go when nothing else is configured.
pub const DEFAULT_DATA_DIR: &str = "./modelwatch-data";

/// The environment variable with a comma-separated list of collector URLs, used when no
/// endpoint is set in code ([`Config::endpoints`]), so that a deployment points its
/// servers at collectors without a code change.
pub const ENDPOINTS_ENV: &str = "MODELWATCH_ENDPOINTS";

/// The URLs of a comma-separated list, trimmed, empty items left out.
fn parse_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// A configuration with the given API key, sent to a collector by HTTP delivery (never
    /// used for the hash key, see [`hash_key`](Self::hash_key)).
    pub fn new(api_key: impl Into<String>) -> Self {
        Config {
            api_key: api_key.into(),
            data_dir: DataDir::Default,
            window: Duration::from_secs(60),
            debug_to: None,
            hash_key: None,
            limits: Limits::default(),
            min_values: DEFAULT_MIN_VALUES_PER_WINDOW,
            allowed_texts: HashSet::new(),
            plain_categories: HashSet::new(),
            plain_min: DEFAULT_PLAIN_CATEGORY_MIN_COUNT,
            shutdown_timeout: Duration::from_secs(5),
            sinks: Vec::new(),
            join_capacity: 100_000,
            join_ttl: Duration::from_secs(86_400),
            endpoints: Vec::new(),
            upload_interval: None,
            request_timeout: Duration::from_secs(10),
            max_backlog_bytes: 16 << 20,
            exit_on_signal: false,
            max_sessions: 256,
        }
    }

    /// Folder the folder sink writes one `.msgpack` file per window summary into.
    /// Default: `./modelwatch-data` when no [`endpoint`](Self::endpoint) is set, none when
    /// one is (set a folder explicitly to have both).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = DataDir::At(dir.into());
        self
    }

    /// Turns the local folder sink off (useful with a custom [`sink`](Self::sink)).
    /// Default: on, unless an endpoint is set.
    pub fn no_data_dir(mut self) -> Self {
        self.data_dir = DataDir::Off;
        self
    }

    /// The folder the folder sink writes to, if any.
    pub(crate) fn folder(&self) -> Option<PathBuf> {
        match &self.data_dir {
            DataDir::Default if self.endpoints.is_empty() => Some(PathBuf::from(DEFAULT_DATA_DIR)),
            DataDir::At(dir) => Some(dir.clone()),
            _ => None,
        }
    }

    /// Window length: tumbling windows aligned to UTC multiples of it. At least 1 s and a
    /// whole number of milliseconds. Default: 60 s.
    pub fn window(mut self, length: Duration) -> Self {
        self.window = length;
        self
    }

    /// Writes every summary as a readable table through the `log` crate, target
    /// `modelwatch::debug`, level info (see [`debug_to_stderr`](Self::debug_to_stderr) for
    /// standard error). Tables are written by a thread of their own and dropped, counted in
    /// [`Stats::debug_dropped`](crate::Stats::debug_dropped), when the logger does not keep
    /// up: debug mode never holds up summaries. Default: false.
    pub fn debug_mode(mut self, on: bool) -> Self {
        self.debug_to = on.then_some(DebugTo::Log);
        self
    }

    /// Debug mode with the tables written to standard error, outside any logger: for a
    /// quick look without a logger set up. A pipe nobody reads drops tables (counted), never
    /// summaries. Default: false.
    pub fn debug_to_stderr(mut self, on: bool) -> Self {
        self.debug_to = on.then_some(DebugTo::Stderr);
        self
    }

    /// The 128-bit secret key of the hash through which strings and numbers enter distinct
    /// counts and category profiles. Summaries merge only with summaries made with the same
    /// key, and whoever holds it can test guesses of values against them: keep it from the
    /// receiver of the summaries. Never shipped, never derived from the API key.
    ///
    /// When this is not called, the key is, in this order:
    /// - the environment variable [`HASH_KEY_ENV`](crate::HASH_KEY_ENV)
    ///   (`MODELWATCH_HASH_KEY`): 32 hex characters, e.g. from `openssl rand -hex 16`;
    /// - with an [`endpoint`](Self::endpoint): none, and [`Agent::start`](crate::Agent::start)
    ///   fails with [`ErrorKind::NoHashKey`](crate::ErrorKind::NoHashKey). The processes of
    ///   a deployment, on every host, must share a key the collector does not know: only
    ///   you can provide one;
    /// - with a data folder: a random key generated once and kept in the folder, in
    ///   [`HASH_KEY_FILE`](crate::HASH_KEY_FILE) (mode 0600 on Unix), used by every agent
    ///   writing to that folder, later ones included;
    /// - with custom [`sink`](Self::sink)s only: a random key of this process. Its summaries
    ///   then merge with each other but not with another process's or a restart's.
    ///
    /// ```
    /// let key: [u8; 16] = *b"from-a-secret-st"; // e.g. read from your secret store
    /// let config = modelwatch::Config::new("api-key")
    ///     .endpoint("http://collector:8080")
    ///     .hash_key(key);
    /// # let _ = config;
    /// ```
    pub fn hash_key(mut self, key: [u8; 16]) -> Self {
        self.hash_key = Some(HashKey::new(key));
        self
    }

    /// Deployments an agent keeps a session for, at most: each new deployment name takes a
    /// session for the agent's lifetime. Past the cap, [`Agent::session`](crate::Agent::session)
    /// for a new name returns an inert session that logs nothing; each such call is counted
    /// in [`Stats::sessions_over_cap`](crate::Stats::sessions_over_cap) and the first is
    /// logged as a warning. A session nothing was logged into for 10 windows releases the
    /// memory of its windows (counted in [`Stats::sessions_released`](crate::Stats::sessions_released))
    /// and keeps at most [`BYTES_PER_SESSION`](crate::BYTES_PER_SESSION) plus its name and
    /// metadata; its handles keep working. Default: 256.
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions;
        self
    }

    /// Caps that bound memory per window (see [`Limits`] for each default).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// k of k-anonymity: a feature or output with fewer than k values in a window (or
    /// fewer than k numbers, strings or booleans), and a ground-truth segment with fewer
    /// than k pairs, ship nothing of them but how many were held back
    /// ([`FeatureSummary::withheld`](crate::FeatureSummary::withheld)): a mean of one value
    /// is that value. They are carried to the same column of the session's next summary,
    /// merged there and counted as [`carried`](crate::FeatureSummary::carried); at shutdown
    /// a remainder under k ships its exact counts only
    /// ([`unsketched`](crate::FeatureSummary::unsketched)). Exceptions logged fewer than k
    /// times in a window ship without their tags. `docs/privacy.md` says what this covers.
    /// Default: [`DEFAULT_MIN_VALUES_PER_WINDOW`](crate::DEFAULT_MIN_VALUES_PER_WINDOW)
    /// (10); 1 ships every window whole.
    pub fn min_values_per_window(mut self, k: u64) -> Self {
        self.min_values = k;
        self
    }

    /// Texts that ship as given although they look like personal data. Names, class
    /// labels, segment names, metadata keys and values, exception messages and tag keys
    /// and values leave as text; one that holds an e-mail address, a run of 9 or more
    /// digits (phone, card, account numbers; groups joined by spaces, dashes, dots or
    /// parentheses count as one run) or a `+` and 7 or more digits is replaced by a keyed
    /// token, [`TEXT_TOKEN_PREFIX`](crate::TEXT_TOKEN_PREFIX) and 8 hex digits (the same
    /// text gives the same token under one hash key), and counted in
    /// [`PrivacyCounts::texts_replaced`](crate::PrivacyCounts::texts_replaced). List here,
    /// exactly as logged, the texts of that shape that are not personal (a support
    /// address, a build number); calls add up. `docs/privacy.md` lists what the guard
    /// catches and misses.
    ///
    /// ```
    /// let config = modelwatch::Config::new("api-key")
    ///     .allow_text(["support@example.com", "release 2024-01-15 10:30"]);
    /// # let _ = config;
    /// ```
    pub fn allow_text<S: Into<String>>(mut self, texts: impl IntoIterator<Item = S>) -> Self {
        self.allowed_texts.extend(texts.into_iter().map(Into::into));
        self
    }

    /// Features whose categories ship **by name**, not only hashed: a category of one of
    /// these features seen at least [`plain_category_min_count`](Self::plain_category_min_count)
    /// times in a window (default 10) travels as text with its count
    /// ([`FeatureSummary::categories`](crate::FeatureSummary::categories)), so that a report
    /// can say "country NL went from 5 % to 40 %"; rarer ones stay hashed. Names pass the
    /// text guard ([`allow_text`](Self::allow_text)) like every text. Opt in only for
    /// features whose values are not personal (country, device type, plan): what this
    /// reveals is in `docs/privacy.md`. Default: none; calls add up.
    ///
    /// ```
    /// let config = modelwatch::Config::new("api-key").plain_categories(["country", "device.os"]);
    /// # let _ = config;
    /// ```
    pub fn plain_categories<S: Into<String>>(
        mut self,
        features: impl IntoIterator<Item = S>,
    ) -> Self {
        self.plain_categories
            .extend(features.into_iter().map(Into::into));
        self
    }

    /// How many times a category must occur in a window to ship by name
    /// ([`plain_categories`](Self::plain_categories)). Default:
    /// [`DEFAULT_PLAIN_CATEGORY_MIN_COUNT`](crate::DEFAULT_PLAIN_CATEGORY_MIN_COUNT) (10);
    /// values below 1 count as 1.
    pub fn plain_category_min_count(mut self, k: u64) -> Self {
        self.plain_min = k.max(1);
        self
    }

    /// How long dropping the agent waits to seal and deliver the last window. Default: 5 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Keyed predictions waiting for [`Session::log_feedback`](crate::Session::log_feedback)
    /// per session, at most; past it the oldest unanswered ones are evicted and counted
    /// (answered ones leave at once). Each entry takes at most
    /// [`BYTES_PER_JOIN_ENTRY`](crate::BYTES_PER_JOIN_ENTRY) bytes plus a class name of up
    /// to `max_text_bytes` and its segment names
    /// ([`BYTES_PER_JOIN_SEGMENT`](crate::BYTES_PER_JOIN_SEGMENT) plus the name each).
    /// Default: 100,000.
    pub fn join_capacity(mut self, entries: usize) -> Self {
        self.join_capacity = entries;
        self
    }

    /// How long a keyed prediction waits for its feedback before it expires (counted).
    /// Default: 24 hours.
    pub fn join_ttl(mut self, ttl: Duration) -> Self {
        self.join_ttl = ttl;
        self
    }

    /// Sends every summary to a collector: `POST {url}/v1/windows` with a MessagePack body,
    /// `Authorization: Bearer <api key>` (see `docs/delivery.md`). `https` URLs need the
    /// crate feature `rustls` or `native-tls`. The folder sink stays on unless
    /// [`no_data_dir`](Self::no_data_dir). Default: none.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints = vec![url.into()];
        self
    }

    /// Several collectors (behind no load balancer, or in two zones), in order of
    /// preference: each summary goes to one of them, the first healthy one. A collector
    /// that fails (connection error, timeout, 5xx, 429) is set aside with its own
    /// exponential back-off and the next one is tried at once; the agent returns to the
    /// first as soon as its back-off has passed. A summary retried on another collector
    /// after a failure that happened after the first had stored it is stored once: the
    /// collectors' store deduplicates by (key, deployment, instance, sequence). Replaces
    /// [`endpoint`](Self::endpoint). Without either, the comma-separated list in the
    /// environment variable [`ENDPOINTS_ENV`] (`MODELWATCH_ENDPOINTS`) is used, when set.
    /// Default: none.
    ///
    /// ```
    /// let config = modelwatch::Config::new("api-key")
    ///     .hash_key(*b"a-16-byte-secret")
    ///     .endpoints(["http://collector-a:8080", "http://collector-b:8080"]);
    /// # let _ = config;
    /// ```
    pub fn endpoints<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.endpoints = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The collectors from [`ENDPOINTS_ENV`] when none is set in code.
    pub(crate) fn with_env_endpoints(mut self) -> Self {
        if self.endpoints.is_empty() {
            if let Ok(list) = std::env::var(ENDPOINTS_ENV) {
                self.endpoints = parse_endpoints(&list);
            }
        }
        self
    }

    /// How often waiting summaries are sent to the collector (retries follow their own
    /// backoff; `flush` and shutdown send at once). Default: the window length.
    pub fn upload_interval(mut self, interval: Duration) -> Self {
        self.upload_interval = Some(interval);
        self
    }

    /// The whole-request timeout of one HTTP attempt (connect, send, answer). Default: 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Bytes of encoded summaries kept while the collector is unreachable (in memory, and
    /// in the spool of the data folder when there is one), and again for each local sink
    /// that fails to store them; past it the oldest are dropped and counted, and the
    /// collector's count travels in the next summary. Default: 16 MiB.
    pub fn max_backlog_bytes(mut self, bytes: usize) -> Self {
        self.max_backlog_bytes = bytes;
        self
    }

    /// On SIGINT, SIGTERM or SIGHUP, when nothing else handles it: seal and deliver within
    /// the shutdown timeout, then end the process as the signal's default action does (a
    /// shell sees 128 + the signal's number). If the host installs its own handler later
    /// (tokio's `signal::ctrl_c`, a web framework's graceful shutdown), modelwatch only
    /// flushes on the signal and leaves the process to the host: it never exits in the
    /// middle of a host's shutdown. A signal ignored at start (`nohup`) stays ignored.
    /// Needs the crate feature `signals` and Unix; `start` fails if SIGINT or SIGTERM
    /// already has a handler: then call [`Agent::flush`](crate::Agent::flush) from it.
    /// `docs/delivery.md` lists the safe combinations. Default: false.
    pub fn exit_on_signal(mut self, on: bool) -> Self {
        self.exit_on_signal = on;
        self
    }

    /// Adds a sink that receives every summary (beside the folder sink, unless
    /// [`no_data_dir`](Self::no_data_dir)). Default: none.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::new(ErrorKind::InvalidConfig, m));
        if self.window < Duration::from_secs(1)
            || !self.window.subsec_nanos().is_multiple_of(1_000_000)
        {
            return bad(format!(
                "window must be at least 1 s in whole milliseconds, got {:?}",
                self.window
            ));
        }
        if self.window > Duration::from_secs(7 * 86_400) {
            return bad(format!(
                "window must be at most 7 days, got {:?}",
                self.window
            ));
        }
        for url in &self.endpoints {
            let https = url.starts_with("https://");
            if !https && !url.starts_with("http://") {
                return bad(format!(
                    "endpoint must start with http:// or https://, got {url:?}"
                ));
            }
            if https && !cfg!(any(feature = "rustls", feature = "native-tls")) {
                return bad(
                    "an https endpoint needs modelwatch's `rustls` or `native-tls` feature".into(),
                );
            }
            if self.api_key.is_empty() {
                return bad("an endpoint needs an API key (Config::new)".into());
            }
        }
        if self.request_timeout.is_zero() || self.upload_interval.is_some_and(|d| d.is_zero()) {
            return bad("request_timeout and upload_interval must be positive".into());
        }
        if self.folder().is_none() && self.sinks.is_empty() && self.endpoints.is_empty() {
            return bad("no sink: set data_dir, an endpoint or a sink".into());
        }
        let l = &self.limits;
        if self.join_capacity == 0 || self.join_ttl.is_zero() {
            return bad("join_capacity and join_ttl must be positive".into());
        }
        if self.max_sessions == 0 {
            return bad("max_sessions must be positive".into());
        }
        if l.max_features == 0 || l.max_outputs == 0 || l.max_name_bytes == 0 || l.max_classes == 0
        {
            return bad(format!("limits must be positive: {l:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_lists_are_split_on_commas_and_trimmed() {
        assert_eq!(
            super::parse_endpoints(" http://a:1 ,http://b:2,, "),
            ["http://a:1", "http://b:2"]
        );
        assert!(super::parse_endpoints(" , ").is_empty());
    }
}
