//! Versions of a fixed-width layout: the same fields at other offsets.
//!
//! Exports grow between versions (PACS `APPRAISAL_ENTITY_INFO.TXT` was
//! 2,614 bytes, then 2,645 and 2,750) and fields move. A layout names the
//! version its fields describe (`version = "8.0.30"`) and may add others
//! (`[[variant]]`: a record length, the fields that sit elsewhere, the
//! fields the version does not have). Each member is read with one
//! version, picked by the export version its dataset's control record
//! states, or by the length of its first record; a member that fits no
//! version is an error, never a silent mis-slice.

use std::collections::HashSet;
use std::ops::Range;

use super::{Field, Fixed, Format, Layout};

/// One version of a fixed-width layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// The version's name (`8.0.30`).
    pub name: String,
    /// Its record length in bytes, without terminator.
    pub record_length: usize,
    /// Export versions (as a control record states them) that are this
    /// version.
    pub export_versions: Vec<String>,
    /// Each field's byte range in this version (start from 0, end
    /// exclusive), in field order; `None` for a field the version does
    /// not have (it loads as NULL).
    pub spans: Vec<Option<Range<usize>>>,
}

/// Why a member was read with the version it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picked {
    /// Index in [`Layout::versions`].
    pub index: usize,
    /// The version's name.
    pub name: String,
    /// How it was picked, for the report and `inspect`.
    pub why: String,
}

impl std::fmt::Display for Picked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (by {})", self.name, self.why)
    }
}

impl Layout {
    /// The layout as version `v` reads records: same fields and key, the
    /// version's offsets and record length, no versions of its own.
    pub fn with_version(&self, v: &Version) -> Layout {
        let mut l = self.clone();
        for (f, span) in l.fields.iter_mut().zip(&v.spans) {
            f.span = span.clone();
        }
        if let Format::Fixed(fx) = &mut l.format {
            fx.record_length = v.record_length;
        }
        l.versions = Vec::new();
        l
    }

    /// Picks the version that reads a member whose first record is
    /// `first_len` bytes long (`None`: an empty member), given the export
    /// version its control record states.
    ///
    /// # Errors
    /// The member fits no version, or several fit and nothing tells them
    /// apart; the message names the lengths and versions known.
    pub fn pick_version(
        &self,
        first_len: Option<usize>,
        export: Option<&str>,
    ) -> Result<Picked, String> {
        let picked = |index: usize, why: String| Picked {
            index,
            name: self.versions[index].name.clone(),
            why,
        };
        let Some(len) = first_len else {
            return Ok(picked(0, "empty member: the layout's own".into()));
        };
        let by_len: Vec<usize> = (0..self.versions.len())
            .filter(|&i| self.versions[i].record_length == len)
            .collect();
        let declared = export.and_then(|x| {
            let i = self
                .versions
                .iter()
                .position(|v| v.export_versions.iter().any(|e| e == x))?;
            Some((x, i))
        });
        if let Some((x, i)) = declared {
            let v = &self.versions[i];
            if v.record_length != len {
                return Err(format!(
                    "the export's control record states export version {x}, which is version {} of layout {} with {}-byte records, but the first record here is {len} bytes",
                    v.name, self.name, v.record_length
                ));
            }
            return Ok(picked(
                i,
                format!("export version {x}, records of {len} bytes"),
            ));
        }
        match by_len.as_slice() {
            [i] => Ok(picked(*i, format!("record length {len}"))),
            [] => Err(format!(
                "records of {len} bytes fit no known version of layout {} ({}){}; add a [[variant]] for this version to the layout",
                self.name,
                self.known_versions(),
                export
                    .map(|x| format!(
                        "; the control record states export version {x}"
                    ))
                    .unwrap_or_default()
            )),
            several => Err(format!(
                "records of {len} bytes fit versions {} of layout {}, and no control record's export version tells them apart",
                several
                    .iter()
                    .map(|&i| self.versions[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                self.name
            )),
        }
    }

    /// The known versions, for messages: `8.0.30: 2,750 bytes, …`.
    pub fn known_versions(&self) -> String {
        self.versions
            .iter()
            .map(|v| format!("{}: {} bytes", v.name, v.record_length))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A `[[variant]]` of a layout file, as written.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVariant {
    pub version: String,
    pub record_length: i64,
    #[serde(default)]
    pub export_versions: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub field: Vec<RawMoved>,
}

/// A field at other offsets in a variant (1-based, inclusive).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMoved {
    pub name: String,
    pub from: i64,
    pub to: i64,
}

/// Builds a layout's versions: its own first (`name`, `export_versions`),
/// then each variant. A variant's field is where the layout has it unless
/// moved or absent; a field wholly past a shorter variant's end is absent
/// by itself. Problems are returned as messages.
pub(super) fn versions(
    fields: &[Field],
    fixed: &Fixed,
    own: (&str, &[String]),
    variants: &[RawVariant],
) -> Result<Vec<Version>, Vec<String>> {
    let mut errs = Vec::new();
    let mut out = vec![Version {
        name: own.0.to_owned(),
        record_length: fixed.record_length,
        export_versions: own.1.to_vec(),
        spans: fields.iter().map(|f| f.span.clone()).collect(),
    }];
    for rv in variants {
        if let Some(v) = variant(fields, rv, &mut errs) {
            out.push(v);
        }
    }
    check_distinct(&out, &mut errs);
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// Variant `rv` of a layout with `fields` as a version, its problems
/// added to `errs`; none when its record length is not positive.
fn variant(
    fields: &[Field],
    rv: &RawVariant,
    errs: &mut Vec<String>,
) -> Option<Version> {
    let at = format!("variant {:?}", rv.version);
    if rv.record_length < 1 {
        errs.push(format!("{at}: record_length must be at least 1"));
        return None;
    }
    let len = rv.record_length as usize;
    let spans = variant_spans(fields, rv, &at, len, errs);
    check_spans(fields, &spans, &at, errs);
    Some(Version {
        name: rv.version.clone(),
        record_length: len,
        export_versions: rv.export_versions.clone(),
        spans,
    })
}

/// Each field's span in variant `rv` (named `at` in messages) of
/// `len`-byte records: moved, absent, or where the layout has it (absent
/// when wholly past the end).
fn variant_spans(
    fields: &[Field],
    rv: &RawVariant,
    at: &str,
    len: usize,
    errs: &mut Vec<String>,
) -> Vec<Option<Range<usize>>> {
    let mut spans: Vec<Option<Range<usize>>> =
        fields.iter().map(|f| f.span.clone()).collect();
    let index = |name: &str, errs: &mut Vec<String>| {
        let i = fields.iter().position(|f| f.name == name);
        if i.is_none() {
            errs.push(format!("{at}: '{name}' is not a field of the layout"));
        }
        i
    };
    let mut moved = HashSet::new();
    for m in &rv.field {
        let Some(i) = index(&m.name, errs) else { continue };
        if m.from < 1 || m.to < m.from {
            errs.push(format!(
                "{at}: field '{}' needs 1 <= from <= to",
                m.name
            ));
            continue;
        }
        spans[i] = Some(m.from as usize - 1..m.to as usize);
        moved.insert(i);
    }
    for name in &rv.absent {
        let Some(i) = index(name, errs) else { continue };
        if moved.contains(&i) {
            errs.push(format!(
                "{at}: field '{name}' is both moved and absent"
            ));
        }
        spans[i] = None;
    }
    for (i, s) in spans.iter_mut().enumerate() {
        let Some(r) = s.clone() else { continue };
        if r.start >= len && !moved.contains(&i) {
            *s = None;
        } else if r.end > len {
            errs.push(format!(
                "{at}: field '{}' (bytes {}-{}) is cut by the record end at {len}; move it or list it as absent",
                fields[i].name,
                r.start + 1,
                r.end
            ));
        }
    }
    spans
}

/// Adds to `errs` a variant's required fields it lacks and its fields
/// that overlap.
fn check_spans(
    fields: &[Field],
    spans: &[Option<Range<usize>>],
    at: &str,
    errs: &mut Vec<String>,
) {
    for (i, s) in spans.iter().enumerate() {
        if s.is_none() && fields[i].decoder.required {
            errs.push(format!(
                "{at}: field '{}' is required (or a key) and cannot be absent",
                fields[i].name
            ));
        }
    }
    let mut sorted: Vec<(Range<usize>, &str)> = spans
        .iter()
        .zip(fields)
        .filter_map(|(s, f)| Some((s.clone()?, f.name.as_str())))
        .collect();
    sorted.sort_by_key(|(r, _)| (r.start, r.end));
    for w in sorted.windows(2) {
        if w[1].0.start < w[0].0.end {
            errs.push(format!(
                "{at}: fields '{}' and '{}' overlap",
                w[0].1, w[1].1
            ));
        }
    }
}

/// Adds to `errs` versions that share a name or an export version, or a
/// record length with no export versions to tell them apart.
fn check_distinct(out: &[Version], errs: &mut Vec<String>) {
    for (i, v) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.name == v.name) {
            errs.push(format!("version {:?} is named twice", v.name));
        }
        for x in &v.export_versions {
            if out[..i].iter().any(|o| o.export_versions.contains(x)) {
                errs.push(format!(
                    "export version {x:?} is claimed by two versions"
                ));
            }
        }
        let same: Vec<&Version> = out[..i]
            .iter()
            .filter(|o| o.record_length == v.record_length)
            .collect();
        if !same.is_empty()
            && (v.export_versions.is_empty()
                || same.iter().any(|o| o.export_versions.is_empty()))
        {
            errs.push(format!(
                "versions {:?} and {:?} have the same record length {}: give both export_versions so a control record tells them apart",
                same[0].name, v.name, v.record_length
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::schema::SchemaSet;

    const BASE: &str = r#"members = ["x"]
format = "fixed"
record_length = 10
version = "new"
export_versions = ["2.0"]
key = ["id"]
[[field]]
name = "id"
type = "int"
from = 1
to = 3
[[field]]
name = "name"
type = "text"
from = 4
to = 7
[[field]]
name = "tail"
type = "text"
from = 8
to = 10
"#;

    fn layout(extra: &str) -> Result<crate::schema::Layout, String> {
        SchemaSet::layout_from_str(
            Path::new("t.toml"),
            &format!("{BASE}{extra}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn variants_move_fields_and_drop_those_past_their_end() {
        let l = layout(
            r#"[[variant]]
version = "old"
record_length = 7
export_versions = ["1.0"]
[[variant.field]]
name = "name"
from = 1
to = 4
[[variant.field]]
name = "id"
from = 5
to = 7
"#,
        )
        .unwrap();
        assert_eq!(l.versions.len(), 2);
        let old = &l.versions[1];
        assert_eq!(old.spans, vec![Some(4..7), Some(0..4), None]);
        let as_old = l.with_version(old);
        assert!(as_old.versions.is_empty());
        assert_eq!(as_old.fields[0].span, Some(4..7));
        assert_eq!(as_old.fields[2].span, None);
        match &as_old.format {
            crate::schema::Format::Fixed(f) => assert_eq!(f.record_length, 7),
            _ => unreachable!(),
        }
        // By length, by export version, and the errors.
        assert_eq!(l.pick_version(Some(7), None).unwrap().name, "old");
        assert_eq!(l.pick_version(Some(10), None).unwrap().name, "new");
        assert_eq!(l.pick_version(Some(10), Some("2.0")).unwrap().index, 0);
        assert_eq!(l.pick_version(None, None).unwrap().index, 0);
        let e = l.pick_version(Some(12), None).unwrap_err();
        assert!(
            e.contains("12 bytes")
                && e.contains("new: 10 bytes")
                && e.contains("old: 7 bytes"),
            "{e}"
        );
        let e = l.pick_version(Some(10), Some("1.0")).unwrap_err();
        assert!(
            e.contains("export version 1.0") && e.contains("7-byte"),
            "{e}"
        );
        // An export version no layout version claims: by length.
        assert_eq!(l.pick_version(Some(7), Some("9.9")).unwrap().name, "old");
    }

    #[test]
    fn bad_variants_are_schema_errors() {
        let cut = layout("[[variant]]\nversion = \"v\"\nrecord_length = 9\n")
            .unwrap_err();
        assert!(cut.contains("'tail' (bytes 8-10) is cut"), "{cut}");
        let key = layout(
            "[[variant]]\nversion = \"v\"\nrecord_length = 10\nexport_versions = [\"3\"]\nabsent = [\"id\"]\n",
        )
        .unwrap_err();
        assert!(key.contains("'id' is required"), "{key}");
        let same =
            layout("[[variant]]\nversion = \"v\"\nrecord_length = 10\n")
                .unwrap_err();
        assert!(same.contains("same record length 10"), "{same}");
        let overlap = layout(
            "[[variant]]\nversion = \"v\"\nrecord_length = 11\n[[variant.field]]\nname = \"name\"\nfrom = 2\nto = 5\n",
        )
        .unwrap_err();
        assert!(overlap.contains("overlap"), "{overlap}");
        let unknown = layout(
            "[[variant]]\nversion = \"v\"\nrecord_length = 11\nabsent = [\"nope\"]\n",
        )
        .unwrap_err();
        assert!(unknown.contains("'nope' is not a field"), "{unknown}");
        let no_own = SchemaSet::layout_from_str(
            Path::new("t.toml"),
            &format!(
                "{}[[variant]]\nversion = \"v\"\nrecord_length = 11\n",
                BASE.replace("version = \"new\"\n", "")
                    .replace("export_versions = [\"2.0\"]\n", "")
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(no_own.contains("the layout's own version"), "{no_own}");
    }
}
