//! Text from a summary made safe for a terminal. Names, labels, metadata and exception
//! messages ship as their senders wrote them: printed raw, an escape sequence would set
//! the terminal's title or clear the screen, and a newline would forge a line of the
//! report. The library's table of a summary escapes every such string; any other string
//! the command prints from a summary, a file name or an error goes through [`sanitize`].

/// `s` with every control character and every invisible character that reorders or hides
/// text escaped: the library's escaping, so that the command's own lines and the table
/// escape alike.
pub use modelwatch::escape_text as sanitize;
