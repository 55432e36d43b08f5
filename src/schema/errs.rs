//! Problems of one schema file, collected with their line.
//!
//! Parsing a file never stops at the first problem it can check: each is
//! pushed here with the byte span it concerns, turned into a line number
//! of the file, so that `fwload schema check` lists them all.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::SchemaError;

/// Collects errors for one file, turning byte spans into line numbers.
pub(super) struct Errs<'a> {
    /// The file.
    pub(super) path: &'a Path,
    text: &'a str,
    /// Every problem found so far (of this file and the ones before it).
    pub(super) out: &'a mut Vec<SchemaError>,
}

impl<'a> Errs<'a> {
    /// Errors of the file at `path`, whose contents are `text`.
    pub(super) fn new(
        path: &'a Path,
        text: &'a str,
        out: &'a mut Vec<SchemaError>,
    ) -> Errs<'a> {
        Errs { path, text, out }
    }

    /// The line (from 1) where `span` (bytes from 0) starts.
    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// Records `msg` at `span`'s line (no line without a span), about
    /// `field` when given.
    pub(super) fn at(
        &mut self,
        span: Option<&Range<usize>>,
        field: Option<&str>,
        msg: impl Into<String>,
    ) {
        let line = span.map(|s| self.line(s));
        self.out.push(SchemaError {
            path: self.path.to_owned(),
            line,
            field: field.map(str::to_owned),
            message: msg.into(),
        });
    }

    /// The number of errors so far, to tell later whether a step found
    /// any.
    pub(super) fn count(&self) -> usize {
        self.out.len()
    }

    /// The file's text as `T`; `None` after recording the problem (bad
    /// TOML syntax, an unknown or missing key, a value of the wrong type
    /// or not one of a setting's spellings) at its line.
    pub(super) fn toml<T: DeserializeOwned>(&mut self) -> Option<T> {
        match toml::from_str(self.text) {
            Ok(raw) => Some(raw),
            Err(err) => {
                self.at(err.span().as_ref(), None, err.message().to_owned());
                None
            }
        }
    }
}

/// Whether `s` is a plain SQL identifier: a letter or `_`, then letters,
/// digits and `_`, at most 63 bytes.
pub(super) fn ident_ok(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 63
}
