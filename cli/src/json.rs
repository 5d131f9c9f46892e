//! Summaries as JSON for machines: the library's `modelwatch::json` (feature `json`), and
//! the escaping a terminal needs.

pub use modelwatch::json::{column, ground_truth, summary};
use serde_json::Value;

/// Pretty JSON safe for a terminal: serde_json escapes C0 controls, but DEL, C1 controls
/// (U+009B is a CSI on some terminals) and the bidi and zero-width characters pass as
/// they are; they are written as `\uXXXX` escapes, which JSON readers decode back.
pub fn to_terminal_text(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).expect("JSON values serialize");
    let mut out = String::with_capacity(text.len());
    let mut one = [0u8; 4];
    for c in text.chars() {
        let shown = &*c.encode_utf8(&mut one);
        if c == '\n'
            || matches!(
                modelwatch::escape_text(shown),
                std::borrow::Cow::Borrowed(_)
            )
        {
            out.push(c);
        } else {
            // Only inside strings: JSON's structure is ASCII.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_json_escapes_what_serde_json_leaves_and_still_parses() {
        let v = serde_json::json!({ "name": "a\u{9b}2J\u{202e}b\u{7f}\u{1b}", "n": [1, 2] });
        let text = super::to_terminal_text(&v);
        assert!(
            !text.contains(['\u{9b}', '\u{202e}', '\u{7f}', '\u{1b}']),
            "{text}"
        );
        assert!(
            text.contains("\\u009b") && text.contains("\\u202e"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
