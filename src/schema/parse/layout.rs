//! A layout file: framing, members, fields, key, duplicates, filters and
//! versions.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::field::{RawField, parse_field};
use crate::decode::Encoding;
use crate::schema::errs::{Errs, ident_ok};
use crate::schema::version::{self, RawVariant};
use crate::schema::{
    Delimited, DuplicatePolicy, Field, Filter, Fixed, Format, Layout, Longer,
    Quoting, SchemaError, Shorter, Terminator, Version,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    name: Option<Spanned<String>>,
    table: Option<Spanned<String>>,
    description: Option<String>,
    members: Spanned<Vec<String>>,
    format: Spanned<FormatKind>,
    encoding: Option<Spanned<EncodingName>>,
    key: Option<Spanned<Vec<String>>>,
    duplicates: Option<Spanned<DuplicatePolicy>>,
    skip_blank: Option<bool>,
    delimiter: Option<Spanned<String>>,
    quoting: Option<Spanned<Quoting>>,
    header: Option<Spanned<bool>>,
    terminator: Option<Spanned<Terminator>>,
    record_length: Option<Spanned<i64>>,
    longer: Option<Spanned<Longer>>,
    shorter: Option<Spanned<Shorter>>,
    #[serde(default)]
    filter: Vec<Spanned<RawFilter>>,
    #[serde(default)]
    field: Vec<Spanned<RawField>>,
    version: Option<Spanned<String>>,
    #[serde(default)]
    export_versions: Vec<String>,
    #[serde(default)]
    variant: Vec<Spanned<RawVariant>>,
}

/// The layout's `format`.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FormatKind {
    Fixed,
    Delimited,
}

/// An encoding by any of its spellings, in any case
/// ([`Encoding::from_name`]).
#[derive(Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct EncodingName(Encoding);

impl TryFrom<String> for EncodingName {
    type Error = String;

    fn try_from(s: String) -> Result<EncodingName, String> {
        Encoding::from_name(&s).map(EncodingName).ok_or_else(|| {
            format!("unknown encoding {s:?} (utf-8, latin-1, windows-1252)")
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    field: String,
    #[serde(default)]
    keep: Vec<String>,
    #[serde(default)]
    drop: Vec<String>,
}

/// The value of an optional setting, its default when absent.
fn value<T: Copy + Default>(setting: Option<&Spanned<T>>) -> T {
    setting.map(|s| *s.get_ref()).unwrap_or_default()
}

/// Loads one layout from the TOML `text` of the file at `path`; `None`
/// after recording every problem found in `out`.
pub(in crate::schema) fn parse_layout(
    path: &Path,
    text: &str,
    out: &mut Vec<SchemaError>,
) -> Option<Layout> {
    let mut e = Errs::new(path, text, out);
    let raw: RawLayout = e.toml()?;
    let before = e.count();
    let (name, table) = names(&mut e, path, &raw);
    let (members, matcher) = members(&mut e, &raw.members);
    let encoding =
        raw.encoding.as_ref().map_or(Encoding::Utf8, |s| s.get_ref().0);
    let format = framing(&mut e, &raw);
    let mut fields = fields(&mut e, &raw.field, &format, encoding);
    let key = key(&mut e, raw.key.as_ref(), &mut fields);
    let duplicates = duplicates(&mut e, raw.duplicates.as_ref(), &key);
    let filters = filters(&mut e, &raw.filter, &fields);
    let versions = layout_versions(&mut e, &raw, &fields, &format);
    if e.count() > before {
        return None;
    }
    Some(Layout {
        name,
        table,
        description: raw.description,
        members,
        matcher,
        format,
        encoding,
        fields,
        key,
        duplicates,
        skip_blank: raw.skip_blank.unwrap_or(true),
        filters,
        versions,
        path: path.to_owned(),
    })
}

/// The layout's name (the file stem unless given) and its table's (the
/// layout's unless given).
fn names(e: &mut Errs, path: &Path, raw: &RawLayout) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = raw.name.as_ref().map(|n| n.get_ref().clone()).unwrap_or(stem);
    if !ident_ok(&name) {
        let span = raw.name.as_ref().map(|n| n.span());
        e.at(
            span.as_ref(),
            None,
            format!(
                "layout name '{name}' must be a plain identifier (letters, digits, _)"
            ),
        );
    }
    let table = raw
        .table
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| name.clone());
    if !table.split('.').all(ident_ok) || table.split('.').count() > 2 {
        let span = raw.table.as_ref().map(|n| n.span());
        e.at(
            span.as_ref(),
            None,
            format!(
                "table name '{table}' must be an identifier or schema.identifier"
            ),
        );
    }
    (name, table)
}

/// The member globs and their matcher (lower-cased: members match in any
/// case).
fn members(
    e: &mut Errs,
    raw: &Spanned<Vec<String>>,
) -> (Vec<String>, GlobSet) {
    let members = raw.get_ref().clone();
    let mut gb = GlobSetBuilder::new();
    if members.is_empty() {
        e.at(
            Some(&raw.span()),
            None,
            "members lists no globs: the layout would read nothing",
        );
    }
    for m in &members {
        match GlobBuilder::new(&m.to_ascii_lowercase())
            .literal_separator(false)
            .build()
        {
            Ok(g) => {
                gb.add(g);
            }
            Err(err) => e.at(
                Some(&raw.span()),
                None,
                format!("bad member glob {m:?}: {err}"),
            ),
        }
    }
    let matcher = gb.build().unwrap_or_else(|_| GlobSet::empty());
    (members, matcher)
}

/// The layout's framing, from `format` and the keys that go with it.
fn framing(e: &mut Errs, raw: &RawLayout) -> Format {
    let fixed = *raw.format.get_ref() == FormatKind::Fixed;
    framing_keys_apply(e, raw, fixed);
    let terminator = value(raw.terminator.as_ref());
    if fixed {
        Format::Fixed(fixed_framing(e, raw, terminator))
    } else {
        Format::Delimited(delimited_framing(e, raw, terminator))
    }
}

/// Reports framing keys given for the other format.
fn framing_keys_apply(e: &mut Errs, raw: &RawLayout, fixed: bool) {
    let keys = [
        (span_of(raw.delimiter.as_ref()), "delimiter", false),
        (span_of(raw.quoting.as_ref()), "quoting", false),
        (span_of(raw.header.as_ref()), "header", false),
        (span_of(raw.record_length.as_ref()), "record_length", true),
        (span_of(raw.longer.as_ref()), "longer", true),
        (span_of(raw.shorter.as_ref()), "shorter", true),
    ];
    for (span, key, want_fixed) in keys {
        if let Some(span) = span
            && want_fixed != fixed
        {
            let kind = if want_fixed { "fixed" } else { "delimited" };
            e.at(
                Some(&span),
                None,
                format!("'{key}' applies only to format = \"{kind}\""),
            );
        }
    }
}

fn fixed_framing(
    e: &mut Errs,
    raw: &RawLayout,
    terminator: Terminator,
) -> Fixed {
    let record_length = match &raw.record_length {
        Some(r) if *r.get_ref() >= 1 => *r.get_ref() as usize,
        Some(r) => {
            e.at(Some(&r.span()), None, "record_length must be at least 1");
            1
        }
        None => {
            e.at(
                Some(&raw.format.span()),
                None,
                "a fixed layout needs record_length",
            );
            1
        }
    };
    Fixed {
        record_length,
        terminator,
        longer: value(raw.longer.as_ref()),
        shorter: value(raw.shorter.as_ref()),
    }
}

fn delimited_framing(
    e: &mut Errs,
    raw: &RawLayout,
    terminator: Terminator,
) -> Delimited {
    if terminator == Terminator::None {
        let sp = raw.terminator.as_ref().map(Spanned::span);
        e.at(
            sp.as_ref(),
            None,
            "terminator = \"none\" applies only to fixed layouts",
        );
    }
    Delimited {
        delimiter: delimiter(e, raw.delimiter.as_ref()),
        quoting: value(raw.quoting.as_ref()),
        header: raw.header.as_ref().is_some_and(|h| *h.get_ref()),
        terminator,
    }
}

/// The field separator: one ASCII byte, a tab unless given.
fn delimiter(e: &mut Errs, raw: Option<&Spanned<String>>) -> u8 {
    let Some(d) = raw else { return b'\t' };
    match d.get_ref().as_bytes() {
        &[b] if b.is_ascii() && !matches!(b, b'\n' | b'\r' | b'"') => b,
        _ => {
            e.at(
                Some(&d.span()),
                None,
                format!(
                    "delimiter {:?} must be one ASCII byte other than CR, LF and \"",
                    d.get_ref()
                ),
            );
            b'\t'
        }
    }
}

/// The layout's fields, each checked; for a fixed layout, their spans
/// checked against each other and the record.
fn fields(
    e: &mut Errs,
    raw: &[Spanned<RawField>],
    format: &Format,
    encoding: Encoding,
) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let mut names = HashSet::new();
    for rf in raw {
        let span = rf.span();
        let f = rf.get_ref();
        if !names.insert(f.name.clone()) {
            e.at(Some(&span), Some(&f.name), "field name is used twice");
        }
        if let Some(field) = parse_field(e, &span, f, format, encoding) {
            fields.push(field);
        }
    }
    if raw.is_empty() {
        e.at(None, None, "layout has no [[field]] entries");
    }
    if let Format::Fixed(fx) = format {
        check_spans(e, &fields, fx.record_length);
    }
    fields
}

/// Indices of the key fields; a key field is required (never NULL).
fn key(
    e: &mut Errs,
    raw: Option<&Spanned<Vec<String>>>,
    fields: &mut [Field],
) -> Vec<usize> {
    let Some(raw) = raw else { return Vec::new() };
    let span = raw.span();
    let mut key = Vec::new();
    for k in raw.get_ref() {
        match fields.iter().position(|f| f.name == *k) {
            Some(i) if key.contains(&i) => {
                e.at(Some(&span), None, format!("key names '{k}' twice"))
            }
            Some(i) => key.push(i),
            None => e.at(
                Some(&span),
                None,
                format!("key column '{k}' is not a field of the layout"),
            ),
        }
    }
    for &i in &key {
        fields[i].decoder.required = true;
    }
    key
}

/// The duplicate-key policy, which needs a key.
fn duplicates(
    e: &mut Errs,
    raw: Option<&Spanned<DuplicatePolicy>>,
    key: &[usize],
) -> DuplicatePolicy {
    if let Some(d) = raw
        && key.is_empty()
    {
        e.at(
            Some(&d.span()),
            None,
            "duplicates policy given but the layout has no key",
        );
    }
    value(raw)
}

fn filters(
    e: &mut Errs,
    raw: &[Spanned<RawFilter>],
    fields: &[Field],
) -> Vec<Filter> {
    let mut filters = Vec::new();
    for rf in raw {
        let f = rf.get_ref();
        let Some(i) = fields.iter().position(|x| x.name == f.field) else {
            e.at(
                Some(&rf.span()),
                None,
                format!(
                    "filter field '{}' is not a field of the layout",
                    f.field
                ),
            );
            continue;
        };
        if f.keep.is_empty() && f.drop.is_empty() {
            e.at(Some(&rf.span()), None, "filter needs keep or drop values");
        }
        let b = |v: &[String]| v.iter().map(|s| s.as_bytes().into()).collect();
        filters.push(Filter { field: i, keep: b(&f.keep), drop: b(&f.drop) });
    }
    filters
}

/// A fixed layout's versions (none unless it names one or has variants).
fn layout_versions(
    e: &mut Errs,
    raw: &RawLayout,
    fields: &[Field],
    format: &Format,
) -> Vec<Version> {
    let span = raw
        .version
        .as_ref()
        .map(Spanned::span)
        .or_else(|| raw.variant.first().map(Spanned::span));
    let Some(span) = span else {
        if !raw.export_versions.is_empty() {
            e.at(None, None, "export_versions needs the layout's version");
        }
        return Vec::new();
    };
    let Format::Fixed(fx) = format else {
        e.at(Some(&span), None, "versions apply only to fixed layouts");
        return Vec::new();
    };
    if fx.terminator == Terminator::None {
        e.at(
            Some(&span),
            None,
            "versions need a record terminator (their records are told apart by length)",
        );
    }
    let Some(own) = raw.version.as_ref() else {
        e.at(
            Some(&span),
            None,
            "variants need the layout's own version = \"…\"",
        );
        return Vec::new();
    };
    let variants: Vec<RawVariant> =
        raw.variant.iter().map(|v| v.get_ref().clone()).collect();
    let own = (own.get_ref().as_str(), raw.export_versions.as_slice());
    version::versions(fields, fx, own, &variants).unwrap_or_else(|msgs| {
        for m in msgs {
            e.at(Some(&span), None, m);
        }
        Vec::new()
    })
}

/// Reports fixed-width fields that overlap or reach past the record.
fn check_spans(e: &mut Errs, fields: &[Field], record_length: usize) {
    let mut spans: Vec<(usize, usize, &Field)> = fields
        .iter()
        .filter_map(|f| f.span.as_ref().map(|s| (s.start, s.end, f)))
        .collect();
    spans.sort_by_key(|s| (s.0, s.1));
    let mut push = |f: &Field, message: String| {
        e.out.push(SchemaError {
            path: e.path.to_owned(),
            line: Some(f.line),
            field: Some(f.name.clone()),
            message,
        })
    };
    for w in spans.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.0 < a.1 {
            push(
                b.2,
                format!(
                    "bytes {}..{} overlap field '{}' (bytes {}..{}, line {})",
                    b.0, b.1, a.2.name, a.0, a.1, a.2.line
                ),
            );
        }
    }
    for (s, en, f) in spans {
        if en > record_length {
            push(
                f,
                format!(
                    "bytes {s}..{en} reach past the record length {record_length}"
                ),
            );
        }
    }
}

/// The byte span of an optional setting.
fn span_of<T>(s: Option<&Spanned<T>>) -> Option<Range<usize>> {
    s.map(Spanned::span)
}
