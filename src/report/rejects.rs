//! The rejects file: one CSV row per rejected record, with its position,
//! field, raw value and reason.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::decode::render_raw;
use crate::reject::Reject;
use crate::schema::Layout;

/// The rejects file's header row.
pub(super) const HEADER: &str =
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
        let field =
            r.at.field
                .map(|i| layout.fields[i as usize].name.as_str())
                .unwrap_or("");
        let mut raw = render_raw(&r.raw, layout.encoding);
        if r.raw_truncated {
            raw.push_str("…[truncated]");
        }
        let cells = [
            csv(&r.at.input),
            csv(&r.at.member),
            r.at.line.to_string(),
            r.at.byte.to_string(),
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
pub(super) fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
