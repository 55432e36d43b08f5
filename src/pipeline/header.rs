//! Header rows checked against the layout, with a drift report that says
//! which columns were renamed, are missing, were added or moved.

use std::collections::HashSet;
use std::fmt;

use crate::decode::{excerpt, excerpt_text};
use crate::record::{Fields, Slicer};
use crate::schema::Layout;

/// Most differences a drift report lists; the rest are counted.
const MAX_PROBLEMS: usize = 20;

/// How a header row differs from the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderDrift {
    /// Where: `input:member`.
    pub location: String,
    /// Header names the layout expects, in order.
    pub expected: Vec<String>,
    /// Header names found, in order.
    pub found: Vec<String>,
    /// One line per difference.
    pub problems: Vec<String>,
}

impl HeaderDrift {
    /// The same drift, located at `input:member`.
    pub fn at(mut self, input: &str, member: &str) -> HeaderDrift {
        self.location = format!("{input}:{}", excerpt_text(member));
        self
    }
}

impl fmt::Display for HeaderDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: line 1: header does not match the layout ({} columns expected, {} found):",
            self.location,
            self.expected.len(),
            self.found.len()
        )?;
        for p in self.problems.iter().take(MAX_PROBLEMS) {
            write!(f, "\n  {p}")?;
        }
        if self.problems.len() > MAX_PROBLEMS {
            write!(
                f,
                "\n  … and {} more differences",
                self.problems.len() - MAX_PROBLEMS
            )?;
        }
        Ok(())
    }
}

fn norm(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Compares a header row with the layout's header names (ignoring case
/// and surrounding spaces).
///
/// # Errors
/// The drift, when the names differ in any way.
pub fn check_header(
    layout: &Layout,
    header: &[u8],
) -> Result<(), HeaderDrift> {
    let expected: Vec<String> =
        layout.fields.iter().map(|f| f.header.clone()).collect();
    let raw = header_fields(layout, header);
    let found: Vec<String> = raw.iter().map(|r| latin1(r)).collect();
    // A name found is quoted as all input is, however long it is.
    let shown = |i: usize| excerpt(&raw[i], false, layout.encoding);
    let e: Vec<String> = expected.iter().map(|s| norm(s)).collect();
    let g: Vec<String> = found.iter().map(|s| norm(s)).collect();
    if e == g {
        return Ok(());
    }
    let eset: HashSet<&String> = e.iter().collect();
    let gset: HashSet<&String> = g.iter().collect();
    let mut problems = Vec::new();
    let missing: Vec<usize> =
        (0..e.len()).filter(|&i| !gset.contains(&e[i])).collect();
    let added: Vec<usize> =
        (0..g.len()).filter(|&i| !eset.contains(&g[i])).collect();
    let mut renamed = HashSet::new();
    for &i in &missing {
        // Same position, unknown name on both sides: a rename.
        if i < g.len() && added.contains(&i) {
            problems.push(format!(
                "column {}: renamed? expected '{}', found '{}'",
                i + 1,
                expected[i],
                shown(i)
            ));
            renamed.insert(i);
        }
    }
    for &i in missing.iter().filter(|i| !renamed.contains(i)) {
        problems.push(format!(
            "column {}: '{}' is missing",
            i + 1,
            expected[i]
        ));
    }
    for &i in added.iter().filter(|i| !renamed.contains(i)) {
        problems.push(format!(
            "column {}: '{}' is not in the layout (added)",
            i + 1,
            shown(i)
        ));
    }
    // Columns present on both sides but at another position.
    let common_e: Vec<&String> =
        e.iter().filter(|x| gset.contains(x)).collect();
    let common_g: Vec<&String> =
        g.iter().filter(|x| eset.contains(x)).collect();
    if common_e != common_g {
        for (i, name) in g.iter().enumerate() {
            if let Some(j) = e.iter().position(|x| x == name)
                && i != j
                && common_e.iter().position(|x| *x == name)
                    != common_g.iter().position(|x| *x == name)
            {
                problems.push(format!(
                    "column {}: '{}' moved (the layout has it at column {})",
                    i + 1,
                    shown(i),
                    j + 1
                ));
            }
        }
    }
    if problems.is_empty() {
        problems.push("names differ".into());
    }
    Err(HeaderDrift { location: String::new(), expected, found, problems })
}

/// Whether a header row looks like UTF-16 text read as bytes: at least
/// two characters, a NUL at every other byte and at no byte between
/// (ASCII names in either byte order; the row ends at the LF's first
/// byte, which leaves a NUL last in big-endian text).
pub fn looks_utf16(header: &[u8]) -> bool {
    let nul_at = |first: usize| {
        header.iter().skip(first).step_by(2).all(|&b| b == 0)
            && header.iter().skip(1 - first).step_by(2).all(|&b| b != 0)
    };
    header.len() >= 4 && (nul_at(0) || nul_at(1))
}

/// A header row's fields as bytes (unquoted).
fn header_fields(layout: &Layout, header: &[u8]) -> Vec<Vec<u8>> {
    let slicer = Slicer::new(layout);
    let mut fields = Fields::default();
    // A header with the wrong column count still splits; only the count
    // check fails, which is what the drift report explains.
    let _ = slicer.slice(header, &mut fields);
    (0..fields.len()).map(|i| fields.get(header, i).to_vec()).collect()
}

/// Bytes as latin-1 text: every byte one character, nothing lost.
fn latin1(raw: &[u8]) -> String {
    raw.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaSet;
    use std::path::Path;

    fn layout() -> Layout {
        let mut t = String::from(
            "members=[\"x\"]\nformat=\"delimited\"\nheader=true\n",
        );
        for n in ["acct", "yr", "mailto", "str_num"] {
            t.push_str(&format!("[[field]]\nname=\"{n}\"\ntype=\"text\"\n"));
        }
        SchemaSet::layout_from_str(Path::new("t.toml"), &t).unwrap()
    }

    fn drift(h: &str) -> Vec<String> {
        match check_header(&layout(), h.as_bytes()) {
            Ok(()) => vec![],
            Err(d) => d.problems,
        }
    }

    #[test]
    fn utf16_headers() {
        let le: Vec<u8> =
            "acct\tyr".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut be: Vec<u8> =
            "acct\tyr".encode_utf16().flat_map(u16::to_be_bytes).collect();
        // The row ends at the LF, after the NUL that opens it.
        be.push(0);
        assert!(looks_utf16(&le));
        assert!(looks_utf16(&be));
        assert!(!looks_utf16(b"acct\tyr"));
        assert!(!looks_utf16(&[0; 64]));
        assert!(!looks_utf16(b"a\0"));
        assert!(!looks_utf16(b"a\0b\0c\0\0\0"));
    }

    #[test]
    fn drift_report() {
        assert!(drift("acct\tYR\t mailto \tstr_num").is_empty());
        assert_eq!(
            drift("acct\tyear\tmailto\tstr_num"),
            vec!["column 2: renamed? expected 'yr', found 'year'"]
        );
        assert_eq!(
            drift("acct\tyr\tmailto"),
            vec!["column 4: 'str_num' is missing"]
        );
        assert_eq!(
            drift("acct\tyr\tmailto\tstr_num\textra"),
            vec!["column 5: 'extra' is not in the layout (added)"]
        );
        let moved = drift("acct\tmailto\tyr\tstr_num");
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert!(moved[0].contains("'mailto' moved"));
    }
}
