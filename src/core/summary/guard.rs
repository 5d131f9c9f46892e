//! The guard on verbatim text: names, class labels, segments, metadata and exception text
//! ship as given, so text that looks like personal data (an e-mail address, a phone number,
//! a long run of digits such as a card or account number) is replaced by a keyed token
//! before a summary leaves, and counted.
//!
//! It runs over a sealed summary, not where the text is logged: the window's lookups (the
//! column index, class ids, the segment and exception maps) keep keying by the text as
//! logged, so the logging path neither scans nor hashes anything new, and every text field
//! is covered in one place. The scanners are hand-written (no regex dependency) and
//! linear in the text.

use super::WindowSummary;
use crate::core::sketch::keyed_hash::HashKey;
use std::collections::{BTreeMap, HashSet};

/// The prefix of a replaced text: `pii:` and 8 hex digits.
pub const TEXT_TOKEN_PREFIX: &str = "pii:";

/// Digits in one run (groups joined by single separators) that make it personal: a
/// 9-digit run is an account, card, phone or national id number far more often than a
/// name's version or a date (8 digits: `2024-01-15` passes).
const RUN_DIGITS: usize = 9;
/// Digits after a `+` that make an international phone number (`+31 6 1234 5678`).
const PLUS_DIGITS: usize = 7;

/// Whether `text` holds something that looks like personal data: an e-mail address
/// (`local@domain.tld`), a run of at least 9 digits, possibly grouped by single spaces,
/// dashes, dots or parentheses (phone numbers with an area code, card numbers whatever
/// their grouping, account and id numbers, IPv4 addresses with 9 digits or more), or a
/// `+` followed by at least 7 such digits.
pub(crate) fn looks_personal(text: &str) -> bool {
    let b = text.as_bytes();
    has_email(b) || has_long_number(b)
}

fn has_email(b: &[u8]) -> bool {
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'@' && i > 0 && local(b[i - 1]) && is_domain(&b[i + 1..]))
}

/// Whether `d` starts with a domain: labels of letters, digits and dashes joined by single
/// dots, at least two, the last of at least two letters.
fn is_domain(d: &[u8]) -> bool {
    let end = d
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'-' || c == b'.'))
        .unwrap_or(d.len());
    let d = &d[..end];
    let d = d.strip_suffix(b".").unwrap_or(d);
    let mut labels = d.split(|&c| c == b'.');
    let Some(first) = labels.next() else {
        return false;
    };
    let mut last = first;
    let mut count = 1;
    for l in labels {
        if l.is_empty() {
            return false;
        }
        last = l;
        count += 1;
    }
    !first.is_empty() && count >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

fn has_long_number(b: &[u8]) -> bool {
    let separator = |c: u8| matches!(c, b' ' | b'-' | b'.' | b'(' | b')');
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let plus = b[..i]
            .iter()
            .rev()
            .take_while(|&&c| c == b'(' || c == b' ')
            .count();
        let plus = i > plus && b[i - plus - 1] == b'+';
        let (mut digits, mut j) = (0, i);
        loop {
            while j < b.len() && b[j].is_ascii_digit() {
                digits += 1;
                j += 1;
            }
            // One separator between groups, or two where a parenthesis meets a space.
            let gap = b[j..].iter().take(2).take_while(|&&c| separator(c)).count();
            if gap > 0 && b.get(j + gap).is_some_and(u8::is_ascii_digit) {
                j += gap;
            } else {
                break;
            }
        }
        if digits >= RUN_DIGITS || (plus && digits >= PLUS_DIGITS) {
            return true;
        }
        i = j;
    }
    false
}

/// The token that replaces `text`: [`TEXT_TOKEN_PREFIX`] and 32 bits of its keyed hash in hex.
/// The same text maps to the same token under one key (it stays countable and mergeable);
/// without the key it cannot be reversed or tested. Its 8 hex digits never make a run the
/// guard would catch again.
fn token(text: &str, key: &HashKey) -> String {
    // Domain-separated from string values, which hash their bytes alone: a token must not
    // be the hash that a value with the same text enters the sketches with.
    let h = key.hash_str(&format!("\u{0}modelwatch/text\u{0}{text}"));
    format!("{TEXT_TOKEN_PREFIX}{:08x}", h as u32)
}

/// Replaces, in a sealed summary, every text that [`looks_personal`] and is not in
/// `allowed` by its keyed token, and counts the replacements in
/// [`PrivacyCounts::texts_replaced`](super::PrivacyCounts::texts_replaced): feature and
/// output names, plain category names, segment names, class labels (segments and overall), exception messages,
/// tag keys and values, metadata keys and values. Two texts whose tokens coincide (or a
/// token equal to a name) merge as one name would.
pub(crate) fn guard_text(s: &mut WindowSummary, key: &HashKey, allowed: &HashSet<String>) {
    let mut replaced = 0u64;
    let mut fix = |t: &mut String| {
        if looks_personal(t) && !allowed.contains(t.as_str()) {
            *t = token(t, key);
            replaced += 1;
        }
    };
    for columns in [&mut s.features, &mut s.outputs] {
        rename_keys(columns, &mut fix, |into, from| into.0.merge(&from.0));
        for c in columns.values_mut() {
            rename_keys(&mut c.0.plain, &mut fix, |into, from| {
                *into = into.saturating_add(from)
            });
        }
    }
    rename_keys(&mut s.ground_truth, &mut fix, |into, from| {
        into.merge(&from, super::MERGE_MAX_CLASSES)
    });
    for gt in s
        .ground_truth
        .values_mut()
        .chain(&mut s.ground_truth_overall)
    {
        gt.classes_mut().iter_mut().for_each(&mut fix);
    }
    for e in &mut s.exceptions {
        fix(&mut e.message);
        for (k, v) in &mut e.tags {
            fix(k);
            fix(v);
        }
    }
    rename_keys(&mut s.metadata, &mut fix, |_, _| {});
    s.metadata.values_mut().for_each(&mut fix);
    s.privacy.texts_replaced = s.privacy.texts_replaced.saturating_add(replaced);
}

/// Renames the keys `fix` changes; an entry renamed onto an existing one is merged into it.
fn rename_keys<T>(
    map: &mut BTreeMap<String, T>,
    fix: &mut impl FnMut(&mut String),
    merge: impl Fn(&mut T, T),
) {
    let mut renamed = Vec::new();
    for name in map.keys() {
        let mut t = name.clone();
        fix(&mut t);
        if t != *name {
            renamed.push((name.clone(), t));
        }
    }
    for (old, new) in renamed {
        let value = map.remove(&old).expect("a key just listed");
        match map.get_mut(&new) {
            Some(x) => merge(x, value),
            None => {
                map.insert(new, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_caught() {
        for text in [
            "alice@example.com",
            "by_user.alice@example.com",
            "contact: bob.smith+tag@mail.example.co.uk, thanks",
            "ALICE@EXAMPLE.ORG.",
            "123456789",
            "user_4929123456789012",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004 (visa)",
            "(555) 123-4567",
            "555.123.4567",
            "+1 (555) 123-4567",
            "+31 6 12345678",
            "+44 20 7946 0958",
            "+3161234567",
            "NL91ABNA0417164300",
            "192.168.100.200",
            "deployed 2024-01-15 10:30",
        ] {
            assert!(looks_personal(text), "{text:?} passed");
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for text in [
            "amount",
            "address.country",
            "f12",
            "0",
            "model_version",
            "1.2.3",
            "v2024.1",
            "2024-01-15",
            "2024-01-15T10:30:00Z",
            "fraud",
            "@home",
            "user@localhost",
            "a@b.c",
            "x@1.23",
            "555-1234",
            "12345678",
            "+123456",
            "timeout after 30000 ms",
            "pii:01234567",
            "Ünïcødé-🔑",
            "",
            "@",
            "a@",
            "a@.com",
            "a@b..com",
        ] {
            assert!(!looks_personal(text), "{text:?} caught");
        }
    }

    #[test]
    fn every_text_field_is_guarded_and_allowed_texts_pass() {
        use crate::{Outputs, SummaryBuilder, Value};
        let key = [4; 16];
        let mail = "alice@example.com";
        let phone = "+31 6 12345678";
        let mut b = SummaryBuilder::new("d", 0, 60_000, key)
            .min_values_per_window(1)
            .allow_text(["support@example.com"]);
        b.log_prediction(
            [
                (format!("by_user.{mail}").as_str(), Value::from(1.0)),
                ("support@example.com", Value::from(2.0)),
                ("amount", Value::from(3.0)),
            ],
            Outputs([(phone, 0.5)]),
        );
        b.log_ground_truth(mail, "fraud", [phone]);
        b.log_exception(
            &format!("no user {mail}"),
            [(mail, phone), ("stage", "parse")],
        );
        b.log_metadata(mail, "1.0");
        b.log_metadata("owner", phone);
        let s = b.build();
        let hkey = HashKey::new(key);
        let t = |text: &str| token(text, &hkey);
        let features: Vec<&str> = s.features().map(|(n, _)| n).collect();
        let mut expected = vec!["amount", "support@example.com"];
        let by_user = t(&format!("by_user.{mail}"));
        expected.push(&by_user);
        expected.sort();
        assert_eq!(features, expected);
        assert_eq!(s.output(&t(phone)).unwrap().count(), 1);
        let seg = s.ground_truth(&t(phone)).unwrap();
        for gt in [seg, s.ground_truth_overall().unwrap()] {
            assert_eq!(
                gt.classes().collect::<Vec<_>>(),
                [t(mail).as_str(), "fraud"]
            );
            assert_eq!(gt.confusion(t(mail).as_str(), "fraud"), 1);
        }
        let e = &s.exceptions()[0];
        assert_eq!(e.message(), t(&format!("no user {mail}")));
        assert_eq!(
            e.tags(),
            [(t(mail), t(phone)), ("stage".into(), "parse".into())]
        );
        let metadata: Vec<(&str, &str)> = s
            .metadata()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut expected = [(t(mail), "1.0".to_owned()), ("owner".into(), t(phone))];
        expected.sort();
        let expected: Vec<(&str, &str)> = expected
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(metadata, expected);
        // by_user, the output, the segment, two classes (segment and overall), the
        // message, a tag key and value, a metadata key and value.
        assert_eq!(s.privacy().texts_replaced, 10);
    }

    #[test]
    fn tokens_are_keyed_stable_and_never_caught_again() {
        let (k1, k2) = (HashKey::new([1; 16]), HashKey::new([2; 16]));
        let t = token("alice@example.com", &k1);
        assert_eq!(t, token("alice@example.com", &k1));
        assert_ne!(t, token("alice@example.com", &k2));
        assert_ne!(t, token("bob@example.com", &k1));
        assert!(t.starts_with(TEXT_TOKEN_PREFIX) && t.len() == TEXT_TOKEN_PREFIX.len() + 8);
        assert!(!looks_personal(&t));
        // Not the hash the same text enters the sketches with as a value.
        assert_ne!(
            t,
            format!(
                "{TEXT_TOKEN_PREFIX}{:08x}",
                k1.hash_str("alice@example.com") as u32
            )
        );
    }
}
