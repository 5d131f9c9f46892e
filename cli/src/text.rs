//! Text from a summary made safe for a terminal. Names, labels, metadata and exception
//! messages ship as their senders wrote them: printed raw, an escape sequence would set
//! the terminal's title or clear the screen, and a newline would forge a line of the
//! report. Every string the command prints from a summary goes through [`sanitize`].

use modelwatch::WindowSummary;
use std::borrow::Cow;
use std::fmt::Write;

/// Whether a character must not reach a terminal as is: control characters (C0, DEL, C1),
/// and the invisible ones that reorder or hide text (bidirectional overrides and isolates,
/// zero-width characters, the byte-order mark).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `s` with every unsafe character escaped: `\n`, `\r`, `\t`, `\x1b` (below U+0100),
/// `\u{202e}` (above); borrowed when nothing needs escaping.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The readable table of a summary (the library's `Display`), with every string of the
/// summary sanitized first. The summary's strings are rewritten in its encoded form and
/// decoded again, so that the table keeps its layout and no field, present or future, is
/// missed. Should that copy not decode (escapes can push a huge summary over the size
/// limit), the whole table is escaped instead: one long line, but never raw text.
pub fn render(s: &WindowSummary) -> String {
    match sanitized_copy(s) {
        Some(Some(copy)) => copy.to_string(),
        Some(None) => s.to_string(),
        None => sanitize(&s.to_string()).into_owned(),
    }
}

/// `Some(None)` when nothing needed escaping, `Some(Some(copy))` with the escaped copy,
/// `None` when it could not be made.
fn sanitized_copy(s: &WindowSummary) -> Option<Option<WindowSummary>> {
    let bytes = s.encode();
    let mut value = rmpv::decode::read_value(&mut bytes.as_slice()).ok()?;
    if !sanitize_value(&mut value) {
        return Some(None);
    }
    let mut out = Vec::with_capacity(bytes.len());
    rmpv::encode::write_value(&mut out, &value).ok()?;
    WindowSummary::decode(&out).ok().map(Some)
}

/// Escapes every string (map keys included) in place; whether any changed.
fn sanitize_value(v: &mut rmpv::Value) -> bool {
    match v {
        rmpv::Value::String(s) => match s.as_str().map(sanitize) {
            Some(Cow::Owned(clean)) => {
                *v = rmpv::Value::from(clean);
                true
            }
            _ => false,
        },
        rmpv::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, x| sanitize_value(x) | changed),
        rmpv::Value::Map(pairs) => pairs.iter_mut().fold(false, |changed, (k, x)| {
            sanitize_value(k) | sanitize_value(x) | changed
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert!(matches!(sanitize("plain name é"), Cow::Borrowed(_)));
        assert_eq!(
            sanitize("a\u{1b}]0;title\u{7}\nFAKE LINE\r\t\u{9b}\u{202e}"),
            "a\\x1b]0;title\\x07\\nFAKE LINE\\r\\t\\x9b\\u{202e}"
        );
    }

    #[test]
    fn render_escapes_names_and_keeps_the_layout() {
        let mut b = modelwatch::SummaryBuilder::new("svc\u{1b}[2J", 0, 60_000);
        b.log_prediction([("x\nFAKE LINE: accuracy=100%", 1.0)], 0.5);
        b.log_exception("boom\u{1b}]0;pwned\u{7}", [("k", "v\r")]);
        b.log_metadata("model\n", "v\u{1b}[31m");
        let text = render(&b.build());
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("FAKE LINE")), "{text}");
        assert!(
            text.contains("svc\\x1b[2J") && text.contains("x\\nFAKE LINE"),
            "{text}"
        );
        assert!(text.starts_with("== "), "{text}");
    }
}
