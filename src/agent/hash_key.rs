//! Where the hash key comes from. Never from the API key or a constant: a receiver holds
//! the API key and the code is public, so either would let it re-derive the key and test
//! guesses of values against the sketches (`docs/privacy.md`).

use super::config::Config;
use crate::core::sketch::keyed_hash::HashKey;
use crate::error::{Error, ErrorKind};
use std::io::{ErrorKind as IoKind, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that supplies the hash key when [`Config::hash_key`] is not
/// set: 32 hexadecimal characters (16 random bytes, e.g. from `openssl rand -hex 16`),
/// the same in every process whose summaries are to merge.
///
/// Only a full-entropy key is accepted, not a passphrase: a guessable key would let a
/// receiver hash candidate values again.
pub const HASH_KEY_ENV: &str = "MODELWATCH_HASH_KEY";

/// The file, in the data folder, that keeps the key generated for folder-only use.
pub const HASH_KEY_FILE: &str = ".hash-key";

/// The key an agent uses, by precedence: [`Config::hash_key`], then [`HASH_KEY_ENV`];
/// without either, an endpoint is an error, a data folder gets its own random key
/// (kept in [`HASH_KEY_FILE`]), and custom sinks alone get a random key of this process.
pub(crate) fn resolve(config: &Config) -> Result<HashKey, Error> {
    if let Some(key) = config.hash_key {
        return Ok(key);
    }
    if let Some(key) = from_env()? {
        return Ok(key);
    }
    if !config.endpoints.is_empty() {
        // The processes of a deployment, on any number of hosts, must share one key for
        // the collector to merge their summaries: only the operator can supply it.
        return Err(Error::new(
            ErrorKind::NoHashKey,
            format!(
                "an endpoint needs a hash key shared by the deployment's processes and \
                 unknown to the collector: set {HASH_KEY_ENV} to 32 hex characters (e.g. \
                 from `openssl rand -hex 16`) or call Config::hash_key. It is never derived \
                 from the API key, which the collector holds (see docs/privacy.md)"
            ),
        ));
    }
    match config.folder() {
        Some(dir) => folder_key(&dir),
        None => process_key(),
    }
}

fn from_env() -> Result<Option<HashKey>, Error> {
    let Some(value) = std::env::var_os(HASH_KEY_ENV) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    if value.trim().is_empty() {
        return Ok(None);
    }
    parse_hex(&value).map(Some).ok_or_else(|| {
        // The value is a secret: say what is wrong with it, never what it is.
        Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "{HASH_KEY_ENV} must be 32 hex characters (16 random bytes, e.g. from \
                 `openssl rand -hex 16`); it has {} characters",
                value.trim().chars().count()
            ),
        )
    })
}

/// 16 bytes from 32 hex characters, surrounding whitespace ignored.
fn parse_hex(text: &str) -> Option<HashKey> {
    let text = text.trim().as_bytes();
    // Digits only: `from_str_radix` would also take a sign ("+f"), a key with less entropy.
    if text.len() != 32 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(HashKey::new(bytes))
}

fn random_bytes() -> Result<[u8; 16], Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("the system gave no random bytes for the hash key: {e}"),
        )
    })?;
    Ok(bytes)
}

/// The key of a data folder: read from its key file, or generated and stored there once.
/// Every agent writing to the folder, in this process or another, later or at the same
/// time, ends up with the same key, so their summaries merge.
fn folder_key(dir: &Path) -> Result<HashKey, Error> {
    let path = dir.join(HASH_KEY_FILE);
    let cannot = |what: &str, e| {
        Error::io(
            format!(
                "cannot {what} the hash key file {} (or set {HASH_KEY_ENV} instead)",
                path.display()
            ),
            e,
        )
    };
    match read_key_file(&path) {
        Err(e) if e.kind() == IoKind::NotFound => {}
        read => return read.map_err(|e| cannot("read", e))?,
    }
    std::fs::create_dir_all(dir).map_err(|e| cannot("create the folder of", e))?;
    let bytes = random_bytes()?;
    // Written whole to a private temporary file, then linked to its name: the link fails
    // if another process got there first (then its key is read), and no process ever reads
    // a half-written key, as it could with a file created in place and then written.
    static TEMPORARY: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        "{HASH_KEY_FILE}.{}.{}.tmp",
        std::process::id(),
        TEMPORARY.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_private(&tmp, &bytes);
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(HashKey::new(bytes)),
        Err(e) if e.kind() == IoKind::AlreadyExists => {
            read_key_file(&path).map_err(|e| cannot("read", e))?
        }
        Err(e) => Err(cannot("create", e)),
    }
}

/// The key in a key file; a file that holds no key is an error that says how to recover.
fn read_key_file(path: &Path) -> std::io::Result<Result<HashKey, Error>> {
    let text = std::fs::read_to_string(path)?;
    Ok(parse_hex(&text).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "the hash key file {} does not hold 32 hex characters: restore it, or \
                 delete it to start a new key (summaries made with the old key will not \
                 merge with new ones)",
                path.display()
            ),
        )
    }))
}

/// Creates `path` readable by its owner only, with the key as hex and a newline.
fn write_private(path: &Path, key: &[u8; 16]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    file.write_all(format!("{hex}\n").as_bytes())?;
    file.sync_all()
}

/// A random key generated once per process, for agents with custom sinks only: their
/// summaries merge with each other's, never with another process's.
fn process_key() -> Result<HashKey, Error> {
    static KEY: OnceLock<HashKey> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(*key);
    }
    let generated = HashKey::new(random_bytes()?);
    // A racing thread may have set it first: everyone uses the one that won.
    let key = *KEY.get_or_init(|| generated);
    log::info!(
        target: "modelwatch::agent",
        "modelwatch: no hash key and no data folder: summaries use a random key of this \
         process and merge only with this process's; set {HASH_KEY_ENV} or \
         Config::hash_key to merge them across processes and restarts"
    );
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_parse_and_anything_else_is_refused() {
        let key = parse_hex(" 000102030405060708090a0b0c0d0E0F\n").unwrap();
        assert_eq!(
            key,
            HashKey::new([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
        );
        for bad in ["", "00", &"0".repeat(31), &"0".repeat(33), &"g".repeat(32)] {
            assert!(parse_hex(bad).is_none(), "{bad:?}");
        }
        // Multi-byte characters must not be split into "pairs".
        assert!(parse_hex(&"é".repeat(16)).is_none());
    }
}
