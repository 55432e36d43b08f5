//! Raw input bytes as messages and reject files show them: text in the
//! layout's encoding, with control characters and bytes the encoding
//! cannot show written `\xNN`, so nothing is hidden and nothing reaches a
//! terminal raw; in messages, cut short.

use std::fmt;

use super::text::{Encoding, TextOptions, decode};
use crate::reject::Position;

/// Most characters of input a message quotes ([`excerpt`]).
pub const EXCERPT_CHARS: usize = 120;

/// Raw bytes as text in `enc`; bytes the encoding cannot show, control
/// characters (C0, DEL, C1) and `\` itself are written as `\xNN` (`\\`),
/// so nothing is hidden.
pub fn render_raw(raw: &[u8], enc: Encoding) -> String {
    let mut out = String::with_capacity(raw.len());
    render(raw, enc, usize::MAX, &mut out);
    out
}

/// Input bytes as every error and reject message quotes them: rendered as
/// [`render_raw`] does, and past [`EXCERPT_CHARS`] characters cut (never
/// inside an escape) and followed by `… (N bytes)`, N being the value's
/// length. `more` says `raw` is only the start of a longer value (the
/// length is then "more than N").
pub fn excerpt(raw: &[u8], more: bool, enc: Encoding) -> String {
    let mut out = String::new();
    let used = render(raw, enc, EXCERPT_CHARS, &mut out);
    if used < raw.len() || more {
        let over = if more { "more than " } else { "" };
        out.push_str(&format!("… ({over}{} bytes)", raw.len()));
    }
    out
}

/// Text taken from input (a member's name) as messages quote it: as
/// [`excerpt`] quotes UTF-8 bytes.
pub fn excerpt_text(text: &str) -> String {
    excerpt(text.as_bytes(), false, Encoding::Utf8)
}

impl fmt::Display for Position {
    /// `input:member: line 12, byte 4012` (the member's name cut to an
    /// excerpt; the field, which needs the layout to be named, is left to
    /// the caller).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: line {}, byte {}",
            self.input,
            excerpt_text(&self.member),
            self.line,
            self.byte
        )
    }
}

/// Renders `raw` into `out`, stopping before the piece that would take
/// `out` past `max_chars` characters; returns the bytes rendered.
fn render(
    raw: &[u8],
    enc: Encoding,
    max_chars: usize,
    out: &mut String,
) -> usize {
    let mut chars = 0;
    let mut i = 0;
    while i < raw.len() {
        let before = out.len();
        let used = piece(&raw[i..], enc, out);
        chars += out[before..].chars().count();
        if chars > max_chars {
            out.truncate(before);
            break;
        }
        i += used;
    }
    i
}

/// Renders the character (or escaped byte) `raw` starts with; returns the
/// bytes it took.
fn piece(raw: &[u8], enc: Encoding, out: &mut String) -> usize {
    let escape = |bytes: &[u8], out: &mut String| {
        for b in bytes {
            out.push_str(&format!("\\x{b:02x}"));
        }
    };
    let b = raw[0];
    if b < 0x80 {
        if b == b'\\' {
            out.push_str("\\\\");
        } else if b < 0x20 && b != b'\t' || b == 0x7f {
            escape(&raw[..1], out);
        } else {
            out.push(b as char);
        }
        return 1;
    }
    let len = match enc {
        Encoding::Utf8 => match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 0,
        },
        _ => 1,
    };
    let opts = TextOptions { encoding: enc, ..Default::default() };
    let mut scratch = Vec::new();
    let text = match raw.get(..len) {
        Some(s) if len > 0 => decode(s, opts, &mut scratch).ok(),
        _ => None,
    };
    match text {
        Some(s) if !s.chars().any(char::is_control) => {
            out.push_str(s);
            len
        }
        Some(_) => {
            escape(&raw[..len], out);
            len
        }
        None => {
            escape(&raw[..1], out);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_rendering() {
        assert_eq!(render_raw(b"PE\xd1A", Encoding::Latin1), "PEÑA");
        assert_eq!(render_raw(b"A\x81B", Encoding::Windows1252), "A\\x81B");
        assert_eq!(render_raw(b"A\x00B\\", Encoding::Utf8), "A\\x00B\\\\");
        assert_eq!(render_raw("Ñ\u{20ac}".as_bytes(), Encoding::Utf8), "Ñ€");
        assert_eq!(render_raw(b"\xff", Encoding::Utf8), "\\xff");
        // A C1 control (NEL) is escaped in UTF-8 as in latin-1.
        assert_eq!(render_raw(b"a\xc2\x85", Encoding::Utf8), "a\\xc2\\x85");
        assert_eq!(render_raw(b"a\x85", Encoding::Latin1), "a\\x85");
    }

    #[test]
    fn excerpts_are_cut_between_pieces() {
        assert_eq!(excerpt(b"00O12", false, Encoding::Utf8), "00O12");
        let nul = excerpt(&[0; 1 << 20], false, Encoding::Utf8);
        assert_eq!(nul, format!("{}… (1048576 bytes)", "\\x00".repeat(30)));
        let long = excerpt(&[b'a'; 500], true, Encoding::Latin1);
        assert_eq!(
            long,
            format!("{}… (more than 500 bytes)", "a".repeat(EXCERPT_CHARS))
        );
        // An escape that would cross the limit is left out whole.
        let mut v = vec![b'a'; EXCERPT_CHARS - 2];
        v.push(0);
        let cut = excerpt(&v, false, Encoding::Utf8);
        assert!(cut.starts_with(&"a".repeat(EXCERPT_CHARS - 2)));
        assert!(cut.ends_with("… (119 bytes)"), "{cut}");
    }
}
