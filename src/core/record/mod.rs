//! Records as they are logged: values, the traits that walk features and outputs, and the
//! serde flattening of structs. Depends on nothing else in the crate.

pub(crate) mod flatten;
pub(crate) mod segments;
pub(crate) mod value;

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let end = (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..end]
}
