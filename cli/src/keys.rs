//! The API keys `modelwatch collect` accepts and the deployments each may write.
//!
//! A key file has one key per line: the key, then the deployments it may write as names
//! or globs (`*` any run of characters, `?` one character), optionally `id=NAME` to name
//! the key in the store and in logs. Blank lines and lines starting with `#` are skipped.
//!
//! ```text
//! # key                              deployments              id
//! 3f9c2a...e1                         fraud_* churn_model      id=team-risk
//! 77ab01...9c                         *
//! ```
//!
//! Keys are kept only as SHA-256 digests and compared in constant time against every key,
//! so neither the answer time nor a memory dump tells which key (or how much of one)
//! matched.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// One accepted key.
#[derive(Clone, Debug)]
pub struct Key {
    /// Not secret: names the key in the store (deduplication is per key) and in logs.
    id: String,
    digest: [u8; 32],
    /// Deployment names or globs this key may write.
    patterns: Vec<String>,
}

impl Key {
    /// A key that may write the deployments matching `patterns`; its id is `id`, or the
    /// first 8 hex digits of the key's SHA-256 when `None`.
    pub fn new(secret: &str, patterns: Vec<String>, id: Option<String>) -> Result<Key, String> {
        if secret.is_empty() {
            return Err("an empty API key".into());
        }
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let id = id.unwrap_or_else(|| digest[..4].iter().map(|b| format!("{b:02x}")).collect());
        Ok(Key {
            id,
            digest,
            patterns,
        })
    }

    /// A key that may write any deployment (`--api-key`, `MODELWATCH_API_KEY`).
    pub fn any_deployment(secret: &str) -> Result<Key, String> {
        Key::new(secret, vec!["*".into()], None)
    }

    /// The key's non-secret identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this key may write `deployment`.
    pub fn may_write(&self, deployment: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, deployment))
    }
}

/// Parses a key file (format in the module documentation); errors name the line.
pub fn parse_file(text: &str) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let secret = words.next().expect("a non-empty line has a word");
        let (ids, patterns): (Vec<&str>, Vec<&str>) = words.partition(|w| w.starts_with("id="));
        if patterns.is_empty() {
            // Never default to "any deployment": a line cut short must not widen access.
            return Err(format!(
                "line {}: a key needs the deployments it may write (names, globs, or *)",
                i + 1
            ));
        }
        if ids.len() > 1 {
            return Err(format!("line {}: more than one id=", i + 1));
        }
        let id = ids.first().map(|w| w["id=".len()..].to_owned());
        if id.as_deref() == Some("") {
            return Err(format!("line {}: an empty id=", i + 1));
        }
        let key = Key::new(secret, patterns.into_iter().map(String::from).collect(), id)
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

/// The keys a collector accepts.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    keys: Vec<Key>,
}

impl Keys {
    /// Checks that there is at least one key and that ids are unique (an id scopes
    /// deduplication, so two keys sharing one could pre-empt each other).
    pub fn new(keys: Vec<Key>) -> Result<Keys, String> {
        if keys.is_empty() {
            return Err(
                "no API key: pass --keys-file, set MODELWATCH_KEYS_FILE or MODELWATCH_API_KEY"
                    .into(),
            );
        }
        let mut ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two keys have the id {:?}", w[0]));
        }
        Ok(Keys { keys })
    }

    /// The key `presented` is, if any. Compares the digest with every key, without an early
    /// exit, so the time taken does not depend on which key matched or how much of it.
    pub fn authenticate(&self, presented: &str) -> Option<&Key> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // 1-based index of the match; 0 for none.
        let mut found = 0u32;
        for (i, k) in self.keys.iter().enumerate() {
            let hit = k.digest.ct_eq(&digest);
            found.conditional_assign(&(i as u32 + 1), hit);
        }
        found.checked_sub(1).and_then(|i| self.keys.get(i as usize))
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters and `?` one.
/// Linear in practice: one backtrack point (the last `*`), so at most
/// O(pattern × name) steps, never exponential.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last `*` take one more character and retry from there.
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("fraud_*", "fraud_detection"));
        assert!(!glob_match("fraud_*", "churn"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*_prod", "x_y_prod"));
        assert!(!glob_match("churn_model", "churn_model2"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn key_file_and_authentication() {
        let keys = parse_file("# comment\n\nk1 fraud_* churn_model id=risk\nk2 *\n").unwrap();
        assert_eq!(keys[0].id(), "risk");
        assert_eq!(keys[1].id().len(), 8);
        let keys = Keys::new(keys).unwrap();
        let k1 = keys.authenticate("k1").unwrap();
        assert!(k1.may_write("fraud_x") && k1.may_write("churn_model"));
        assert!(!k1.may_write("other"));
        assert_eq!(keys.authenticate("k2").unwrap().id(), keys.keys[1].id());
        assert!(keys.authenticate("k3").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(parse_file("lonely-key\n").is_err());
        assert!(Keys::new(parse_file("a * id=x\nb * id=x").unwrap()).is_err());
    }
}
