//! The rejects file: one CSV row per rejected record, with its position,
//! field, raw value and reason.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::decode::Encoding;
use crate::pipeline::Reject;
use crate::schema::Layout;

/// The rejects file's header row.
pub const HEADER: &str =
    "input,member,line,byte,layout,field,reason_code,reason,raw";

/// Writes rejects as CSV (RFC 4180 quoting, UTF-8).
pub struct RejectWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    rows: u64,
}

impl RejectWriter {
    /// Creates (or truncates) `path` and writes the header row.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(path: &Path) -> io::Result<RejectWriter> {
        RejectWriter::new(Box::new(File::create(path)?))
    }

    /// Writes to any writer.
    ///
    /// # Errors
    /// Writing the header failed.
    pub fn new(w: Box<dyn Write + Send>) -> io::Result<RejectWriter> {
        let mut out = BufWriter::new(w);
        writeln!(out, "{HEADER}")?;
        Ok(RejectWriter { out, rows: 0 })
    }

    /// Writes one reject of `layout`.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write(&mut self, r: &Reject, layout: &Layout) -> io::Result<()> {
        let field = r
            .field
            .map(|i| layout.fields[i as usize].name.as_str())
            .unwrap_or("");
        let mut raw = render_raw(&r.raw, layout.encoding);
        if r.raw_truncated {
            raw.push_str("…[truncated]");
        }
        let cells = [
            csv(&r.input),
            csv(&r.member),
            r.line.to_string(),
            r.byte.to_string(),
            csv(&layout.name),
            csv(field),
            r.reason.code().to_owned(),
            csv(&r.reason.to_string()),
            csv(&raw),
        ];
        writeln!(self.out, "{}", cells.join(","))?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the file.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        Ok(self.rows)
    }
}

/// Quotes a CSV cell when it needs it.
pub fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Raw bytes as text in `enc`; bytes the encoding cannot show (and control
/// characters) are written as `\xNN`, so nothing is hidden.
pub fn render_raw(raw: &[u8], enc: Encoding) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b < 0x80 {
            if b == b'\\' {
                out.push_str("\\\\");
            } else if b < 0x20 && b != b'\t' || b == 0x7f {
                out.push_str(&format!("\\x{b:02x}"));
            } else {
                out.push(b as char);
            }
            i += 1;
            continue;
        }
        match enc {
            Encoding::Utf8 => {
                let len = match b {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => 0,
                };
                match (len > 0)
                    .then(|| raw.get(i..i + len))
                    .flatten()
                    .and_then(|s| std::str::from_utf8(s).ok())
                {
                    Some(s) => {
                        out.push_str(s);
                        i += len;
                    }
                    None => {
                        out.push_str(&format!("\\x{b:02x}"));
                        i += 1;
                    }
                }
            }
            _ => {
                let mut scratch = Vec::new();
                let opts = crate::decode::TextOptions {
                    encoding: enc,
                    ..Default::default()
                };
                match crate::decode::decode_text(
                    &raw[i..i + 1],
                    opts,
                    &mut scratch,
                ) {
                    Ok(s) => out.push_str(s),
                    Err(_) => out.push_str(&format!("\\x{b:02x}")),
                }
                i += 1;
            }
        }
    }
    out
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
        assert_eq!(csv("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
