//! TOML schema and dataset files to checked [`Layout`]s and a [`Dataset`].
//!
//! Loading never stops at the first problem: every error in every file is
//! collected with its file, line and field, so `fwload schema check`
//! shows them all at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::checks::{RawControl, RawReconcile};
use super::version::RawVariant;
use super::{
    ArchiveSpec, Dataset, Delimited, DuplicatePolicy, Field, Filter, Fixed,
    Format, GenerateHints, Layout, Longer, OrphanPolicy, Quoting, Reference,
    SchemaError, SchemaErrors, Shorter, Terminator, Version,
};
use crate::decode::{
    self, Bound, DateFormat, DateKind, Decoder, Encoding, FieldType, Fraction,
    Overflow, Sign, Trim,
};

/// Name of the dataset file in a schema directory.
pub const DATASET_FILE: &str = "dataset.toml";

/// Column names reserved for fwload's own bookkeeping in staging tables.
pub const RESERVED_PREFIX: &str = "_fw";

/// Layouts and the optional dataset loaded from schema files.
#[derive(Clone, Debug)]
pub struct SchemaSet {
    /// Layouts in load order.
    pub layouts: Vec<Layout>,
    /// The dataset, when a `dataset.toml` was loaded.
    pub dataset: Option<Dataset>,
    /// sha256 (hex) over every loaded file's name and contents, in name
    /// order: identifies the exact schema a run used.
    pub hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    name: Option<Spanned<String>>,
    table: Option<Spanned<String>>,
    description: Option<String>,
    members: Spanned<Vec<String>>,
    format: Spanned<String>,
    encoding: Option<Spanned<String>>,
    key: Option<Spanned<Vec<String>>>,
    duplicates: Option<Spanned<String>>,
    skip_blank: Option<bool>,
    delimiter: Option<Spanned<String>>,
    quoting: Option<Spanned<String>>,
    header: Option<Spanned<bool>>,
    terminator: Option<Spanned<String>>,
    record_length: Option<Spanned<i64>>,
    longer: Option<Spanned<String>>,
    shorter: Option<Spanned<String>>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    field: String,
    #[serde(default)]
    keep: Vec<String>,
    #[serde(default)]
    drop: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    header: Option<String>,
    description: Option<String>,
    start: Option<i64>,
    width: Option<i64>,
    end: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    trim: Option<String>,
    collapse_spaces: Option<bool>,
    upper: Option<bool>,
    null: Option<Vec<String>>,
    required: Option<bool>,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    pattern: Option<String>,
    allowed: Option<Vec<String>>,
    overflow: Option<String>,
    format: Option<String>,
    implied_decimals: Option<i64>,
    sign: Option<String>,
    #[serde(rename = "true")]
    true_values: Option<Vec<String>>,
    #[serde(rename = "false")]
    false_values: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: Spanned<String>,
    description: Option<String>,
    load_order: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    archive: Vec<Spanned<RawArchive>>,
    #[serde(default)]
    reference: Vec<Spanned<RawReference>>,
    generate: Option<Spanned<RawGenerate>>,
    control: Option<Spanned<RawControl>>,
    #[serde(default)]
    reconcile: Vec<Spanned<RawReconcile>>,
    years: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenerate {
    main: Option<String>,
    #[serde(default)]
    rows: BTreeMap<String, f64>,
    #[serde(default)]
    per_parent: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    name: String,
    url: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    layouts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference {
    from: String,
    columns: Vec<String>,
    to: String,
    to_columns: Option<Vec<String>>,
    on_orphan: Option<String>,
}

/// Collects errors for one file, turning byte spans into line numbers.
pub(super) struct Errs<'a> {
    path: &'a Path,
    text: &'a str,
    out: &'a mut Vec<SchemaError>,
}

impl Errs<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

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
}

fn ident_ok(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 63
}

impl SchemaSet {
    /// The dataset's references between layouts (none without a dataset).
    pub fn references(&self) -> &[super::Reference] {
        self.dataset.as_ref().map_or(&[], |d| &d.references)
    }

    /// Loads schemas from `paths`: each a directory (every `*.toml` in it,
    /// `dataset.toml` as the dataset) or a single layout file.
    ///
    /// # Errors
    /// Every problem found, each naming its file, line and field.
    pub fn load(paths: &[PathBuf]) -> Result<SchemaSet, SchemaErrors> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut errors = Vec::new();
        for p in paths {
            if p.is_dir() {
                match std::fs::read_dir(p) {
                    Ok(rd) => {
                        let mut v: Vec<PathBuf> = rd
                            .filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|f| {
                                f.extension().is_some_and(|x| x == "toml")
                            })
                            .collect();
                        v.sort();
                        if v.is_empty() {
                            errors.push(SchemaError {
                                path: p.clone(),
                                line: None,
                                field: None,
                                message:
                                    "directory holds no *.toml schema files"
                                        .into(),
                            });
                        }
                        files.extend(v);
                    }
                    Err(e) => errors.push(SchemaError {
                        path: p.clone(),
                        line: None,
                        field: None,
                        message: format!("cannot read directory: {e}"),
                    }),
                }
            } else {
                files.push(p.clone());
            }
        }
        let mut texts = Vec::new();
        for f in &files {
            match std::fs::read_to_string(f) {
                Ok(t) => texts.push((f.clone(), t)),
                Err(e) => errors.push(SchemaError {
                    path: f.clone(),
                    line: None,
                    field: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        let mut hasher = Sha256::new();
        let mut sorted: Vec<&(PathBuf, String)> = texts.iter().collect();
        sorted.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
        for (p, t) in sorted {
            hasher.update(
                p.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            hasher.update([0]);
            hasher.update(t.as_bytes());
            hasher.update([0]);
        }
        let hash = hex(&hasher.finalize());
        let mut layouts = Vec::new();
        let mut dataset_raw = None;
        for (path, text) in &texts {
            if path.file_name().is_some_and(|n| n == DATASET_FILE) {
                dataset_raw = Some((path.clone(), text.clone()));
                continue;
            }
            if let Some(l) = Self::parse_layout(path, text, &mut errors) {
                layouts.push(l);
            }
        }
        if layouts.is_empty() && errors.is_empty() {
            errors.push(SchemaError {
                path: paths.first().cloned().unwrap_or_default(),
                line: None,
                field: None,
                message: "no layouts found".into(),
            });
        }
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        let mut tables: HashMap<String, PathBuf> = HashMap::new();
        for l in &layouts {
            if let Some(prev) = seen.insert(l.name.clone(), l.path.clone()) {
                errors.push(SchemaError {
                    path: l.path.clone(),
                    line: None,
                    field: None,
                    message: format!(
                        "layout name '{}' is also used by {}",
                        l.name,
                        prev.display()
                    ),
                });
            }
            if let Some(prev) = tables.insert(l.table.clone(), l.path.clone())
            {
                errors.push(SchemaError {
                    path: l.path.clone(),
                    line: None,
                    field: None,
                    message: format!(
                        "table '{}' is also the target of {}",
                        l.table,
                        prev.display()
                    ),
                });
            }
        }
        let dataset = dataset_raw.and_then(|(p, t)| {
            Self::parse_dataset(&p, &t, &layouts, &mut errors)
        });
        if !errors.is_empty() {
            return Err(SchemaErrors(errors));
        }
        let order = load_order(&layouts, dataset.as_ref());
        let mut by_name: HashMap<String, Layout> =
            layouts.into_iter().map(|l| (l.name.clone(), l)).collect();
        let layouts = order.iter().filter_map(|n| by_name.remove(n)).collect();
        Ok(SchemaSet { layouts, dataset, hash })
    }

    /// Loads one layout from TOML text (`path` is used in messages).
    ///
    /// # Errors
    /// Every problem found.
    pub fn layout_from_str(
        path: &Path,
        text: &str,
    ) -> Result<Layout, SchemaErrors> {
        let mut errors = Vec::new();
        match Self::parse_layout(path, text, &mut errors) {
            Some(l) if errors.is_empty() => Ok(l),
            _ => Err(SchemaErrors(errors)),
        }
    }

    /// The layout named `name`.
    pub fn layout(&self, name: &str) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.name == name)
    }

    /// The layouts whose globs match `member`.
    pub fn matching(&self, member: &str) -> Vec<&Layout> {
        self.layouts.iter().filter(|l| l.matches(member)).collect()
    }

    fn parse_layout(
        path: &Path,
        text: &str,
        out: &mut Vec<SchemaError>,
    ) -> Option<Layout> {
        let mut e = Errs { path, text, out };
        let raw: RawLayout = match toml::from_str(text) {
            Ok(r) => r,
            Err(err) => {
                let span = err.span();
                e.at(span.as_ref(), None, err.message().to_owned());
                return None;
            }
        };
        let before = e.out.len();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name =
            raw.name.as_ref().map(|n| n.get_ref().clone()).unwrap_or(stem);
        if !ident_ok(&name) {
            let span = raw.name.as_ref().map(|n| n.span());
            e.at(span.as_ref(), None, format!("layout name '{name}' must be a plain identifier (letters, digits, _)"));
        }
        let table = raw
            .table
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| name.clone());
        if !table.split('.').all(ident_ok) || table.split('.').count() > 2 {
            let span = raw.table.as_ref().map(|n| n.span());
            e.at(span.as_ref(), None, format!("table name '{table}' must be an identifier or schema.identifier"));
        }
        let members = raw.members.get_ref().clone();
        let mut gb = globset::GlobSetBuilder::new();
        if members.is_empty() {
            e.at(
                Some(&raw.members.span()),
                None,
                "members lists no globs: the layout would read nothing",
            );
        }
        for m in &members {
            match globset::GlobBuilder::new(&m.to_ascii_lowercase())
                .literal_separator(false)
                .build()
            {
                Ok(g) => {
                    gb.add(g);
                }
                Err(err) => e.at(
                    Some(&raw.members.span()),
                    None,
                    format!("bad member glob {m:?}: {err}"),
                ),
            }
        }
        let matcher = gb.build().unwrap_or_else(|_| globset::GlobSet::empty());
        let encoding = match &raw.encoding {
            None => Encoding::Utf8,
            Some(s) => Encoding::from_name(s.get_ref()).unwrap_or_else(|| {
                e.at(
                    Some(&s.span()),
                    None,
                    format!(
                        "unknown encoding {:?} (utf-8, latin-1, windows-1252)",
                        s.get_ref()
                    ),
                );
                Encoding::Utf8
            }),
        };
        let terminator = match &raw.terminator {
            None => Terminator::Any,
            Some(s) => match s.get_ref().as_str() {
                "any" => Terminator::Any,
                "lf" => Terminator::Lf,
                "crlf" => Terminator::Crlf,
                "none" => Terminator::None,
                other => {
                    e.at(Some(&s.span()), None, format!("unknown terminator {other:?} (any, lf, crlf, none)"));
                    Terminator::Any
                }
            },
        };
        let fixed = match raw.format.get_ref().as_str() {
            "fixed" => true,
            "delimited" => false,
            other => {
                e.at(
                    Some(&raw.format.span()),
                    None,
                    format!("unknown format {other:?} (fixed, delimited)"),
                );
                return None;
            }
        };
        let only = |e: &mut Errs,
                    opt: Option<Range<usize>>,
                    key: &str,
                    want_fixed: bool| {
            if let Some(span) = opt
                && want_fixed != fixed
            {
                let kind = if want_fixed { "fixed" } else { "delimited" };
                e.at(
                    Some(&span),
                    None,
                    format!("'{key}' applies only to format = \"{kind}\""),
                );
            }
        };
        only(
            &mut e,
            raw.delimiter.as_ref().map(Spanned::span),
            "delimiter",
            false,
        );
        only(
            &mut e,
            raw.quoting.as_ref().map(Spanned::span),
            "quoting",
            false,
        );
        only(&mut e, raw.header.as_ref().map(Spanned::span), "header", false);
        only(
            &mut e,
            raw.record_length.as_ref().map(Spanned::span),
            "record_length",
            true,
        );
        only(&mut e, raw.longer.as_ref().map(Spanned::span), "longer", true);
        only(&mut e, raw.shorter.as_ref().map(Spanned::span), "shorter", true);
        let format = if fixed {
            let record_length = match &raw.record_length {
                Some(r) if *r.get_ref() >= 1 => *r.get_ref() as usize,
                Some(r) => {
                    e.at(
                        Some(&r.span()),
                        None,
                        "record_length must be at least 1",
                    );
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
            let longer = match raw
                .longer
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("ignore", _)) => Longer::Ignore,
                Some(("reject", _)) => Longer::Reject,
                Some((o, sp)) => {
                    e.at(
                        Some(&sp),
                        None,
                        format!(
                            "unknown longer policy {o:?} (ignore, reject)"
                        ),
                    );
                    Longer::Ignore
                }
            };
            let shorter = match raw
                .shorter
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("reject", _)) => Shorter::Reject,
                Some(("pad", _)) => Shorter::Pad,
                Some((o, sp)) => {
                    e.at(
                        Some(&sp),
                        None,
                        format!("unknown shorter policy {o:?} (reject, pad)"),
                    );
                    Shorter::Reject
                }
            };
            Format::Fixed(Fixed { record_length, terminator, longer, shorter })
        } else {
            if terminator == Terminator::None {
                let sp = raw.terminator.as_ref().map(Spanned::span);
                e.at(
                    sp.as_ref(),
                    None,
                    "terminator = \"none\" applies only to fixed layouts",
                );
            }
            let delimiter = match &raw.delimiter {
                None => b'\t',
                Some(d) => {
                    let v = d.get_ref();
                    if v.len() == 1
                        && v.as_bytes()[0] != b'\n'
                        && v.as_bytes()[0] != b'\r'
                        && v.as_bytes()[0] != b'"'
                    {
                        v.as_bytes()[0]
                    } else {
                        e.at(Some(&d.span()), None, format!("delimiter {v:?} must be one ASCII byte other than CR, LF and \""));
                        b'\t'
                    }
                }
            };
            let quoting = match raw
                .quoting
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("none", _)) => Quoting::None,
                Some(("standard", _)) => Quoting::Standard,
                Some((o, sp)) => {
                    e.at(
                        Some(&sp),
                        None,
                        format!("unknown quoting {o:?} (none, standard)"),
                    );
                    Quoting::None
                }
            };
            let header = raw.header.as_ref().is_some_and(|h| *h.get_ref());
            Format::Delimited(Delimited {
                delimiter,
                quoting,
                header,
                terminator,
            })
        };
        let mut fields: Vec<Field> = Vec::new();
        let mut names = HashSet::new();
        for rf in &raw.field {
            let span = rf.span();
            let f = rf.get_ref();
            if !names.insert(f.name.clone()) {
                e.at(Some(&span), Some(&f.name), "field name is used twice");
            }
            if let Some(field) =
                parse_field(&mut e, &span, f, &format, encoding)
            {
                fields.push(field);
            }
        }
        if raw.field.is_empty() {
            e.at(None, None, "layout has no [[field]] entries");
        }
        if let Format::Fixed(fx) = &format {
            check_spans(&mut e, &fields, fx.record_length);
        }
        let key_span = raw.key.as_ref().map(Spanned::span);
        let mut key = Vec::new();
        for k in
            raw.key.as_ref().map(|k| k.get_ref().clone()).unwrap_or_default()
        {
            match fields.iter().position(|f| f.name == k) {
                Some(i) if key.contains(&i) => e.at(
                    key_span.as_ref(),
                    None,
                    format!("key names '{k}' twice"),
                ),
                Some(i) => key.push(i),
                None => e.at(
                    key_span.as_ref(),
                    None,
                    format!("key column '{k}' is not a field of the layout"),
                ),
            }
        }
        // A key column can never be NULL.
        for &i in &key {
            fields[i].decoder.required = true;
        }
        let duplicates = match raw
            .duplicates
            .as_ref()
            .map(|s| (s.get_ref().as_str(), s.span()))
        {
            None | Some(("reject", _)) => DuplicatePolicy::Reject,
            Some(("first", _)) => DuplicatePolicy::First,
            Some(("last", _)) => DuplicatePolicy::Last,
            Some((o, sp)) => {
                e.at(
                    Some(&sp),
                    None,
                    format!(
                        "unknown duplicates policy {o:?} (reject, first, last)"
                    ),
                );
                DuplicatePolicy::Reject
            }
        };
        if raw.duplicates.is_some() && key.is_empty() {
            let sp = raw.duplicates.as_ref().map(Spanned::span);
            e.at(
                sp.as_ref(),
                None,
                "duplicates policy given but the layout has no key",
            );
        }
        let mut filters = Vec::new();
        for rf in &raw.filter {
            let f = rf.get_ref();
            match fields.iter().position(|x| x.name == f.field) {
                Some(i) => {
                    if f.keep.is_empty() && f.drop.is_empty() {
                        e.at(
                            Some(&rf.span()),
                            None,
                            "filter needs keep or drop values",
                        );
                    }
                    let b = |v: &[String]| {
                        v.iter().map(|s| s.as_bytes().into()).collect()
                    };
                    filters.push(Filter {
                        field: i,
                        keep: b(&f.keep),
                        drop: b(&f.drop),
                    });
                }
                None => e.at(
                    Some(&rf.span()),
                    None,
                    format!(
                        "filter field '{}' is not a field of the layout",
                        f.field
                    ),
                ),
            }
        }
        let versions = layout_versions(&mut e, &raw, &fields, &format);
        if e.out.len() > before {
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

    fn parse_dataset(
        path: &Path,
        text: &str,
        layouts: &[Layout],
        out: &mut Vec<SchemaError>,
    ) -> Option<Dataset> {
        let mut e = Errs { path, text, out };
        let raw: RawDataset = match toml::from_str(text) {
            Ok(r) => r,
            Err(err) => {
                let span = err.span();
                e.at(span.as_ref(), None, err.message().to_owned());
                return None;
            }
        };
        let before = e.out.len();
        let names: HashSet<&str> =
            layouts.iter().map(|l| l.name.as_str()).collect();
        if !ident_ok(raw.name.get_ref()) {
            e.at(
                Some(&raw.name.span()),
                None,
                "dataset name must be a plain identifier",
            );
        }
        let mut archives = Vec::new();
        for a in &raw.archive {
            let r = a.get_ref();
            for l in &r.layouts {
                if !names.contains(l.as_str()) {
                    e.at(
                        Some(&a.span()),
                        None,
                        format!(
                            "archive '{}' names unknown layout '{l}'",
                            r.name
                        ),
                    );
                }
            }
            if let Some(h) = &r.sha256
                && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                e.at(
                    Some(&a.span()),
                    None,
                    format!(
                        "archive '{}': sha256 must be 64 hex digits",
                        r.name
                    ),
                );
            }
            archives.push(ArchiveSpec {
                name: r.name.clone(),
                url: r.url.clone(),
                sha256: r.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                layouts: r.layouts.clone(),
            });
        }
        let mut references = Vec::new();
        let mut spans = Vec::new();
        for rr in &raw.reference {
            let r = rr.get_ref();
            let sp = rr.span();
            let find = |n: &str| layouts.iter().find(|l| l.name == n);
            let (Some(from), Some(to)) = (find(&r.from), find(&r.to)) else {
                e.at(
                    Some(&sp),
                    None,
                    format!("reference {} → {}: unknown layout", r.from, r.to),
                );
                continue;
            };
            let to_columns =
                r.to_columns.clone().unwrap_or_else(|| r.columns.clone());
            if r.columns.is_empty() || r.columns.len() != to_columns.len() {
                e.at(Some(&sp), None, "reference needs as many columns as to_columns, at least one");
            }
            for c in &r.columns {
                if from.field_index(c).is_none() {
                    e.at(
                        Some(&sp),
                        None,
                        format!(
                            "reference column '{}.{c}' is not a field",
                            r.from
                        ),
                    );
                }
            }
            for c in &to_columns {
                if to.field_index(c).is_none() {
                    e.at(
                        Some(&sp),
                        None,
                        format!(
                            "referenced column '{}.{c}' is not a field",
                            r.to
                        ),
                    );
                }
            }
            let on_orphan = match r.on_orphan.as_deref() {
                None | Some("reject") => OrphanPolicy::Reject,
                Some("keep") => OrphanPolicy::Keep,
                Some("fail") => OrphanPolicy::Fail,
                Some(o) => {
                    e.at(
                        Some(&sp),
                        None,
                        format!(
                            "unknown on_orphan {o:?} (keep, reject, fail)"
                        ),
                    );
                    OrphanPolicy::Reject
                }
            };
            references.push(Reference {
                from: r.from.clone(),
                columns: r.columns.clone(),
                to: r.to.clone(),
                to_columns,
                on_orphan,
            });
            spans.push(sp);
        }
        for (cycle, closing) in reference_cycles(&references) {
            e.at(
                Some(&spans[closing]),
                None,
                format!(
                    "references form a cycle: {}; a table is loaded after the tables it references, so no order loads these (a table may reference itself)",
                    cycle.join(" → ")
                ),
            );
        }
        let load_order = match &raw.load_order {
            Some(o) => {
                let v = o.get_ref().clone();
                for n in &v {
                    if !names.contains(n.as_str()) {
                        e.at(
                            Some(&o.span()),
                            None,
                            format!("load_order names unknown layout '{n}'"),
                        );
                    }
                }
                for r in &references {
                    let pos = |n: &str| v.iter().position(|x| x == n);
                    if let (Some(a), Some(b)) = (pos(&r.from), pos(&r.to))
                        && a < b
                    {
                        e.at(
                            Some(&o.span()),
                            None,
                            format!("load_order puts '{}' before '{}', which it references", r.from, r.to),
                        );
                    }
                }
                v
            }
            None => Vec::new(),
        };
        let mut generate = GenerateHints::default();
        if let Some(g) = &raw.generate {
            let sp = g.span();
            let g = g.get_ref();
            for n in
                g.main.iter().chain(g.rows.keys()).chain(g.per_parent.keys())
            {
                if !names.contains(n.as_str()) {
                    e.at(
                        Some(&sp),
                        None,
                        format!("generate names unknown layout '{n}'"),
                    );
                }
            }
            for (n, v) in g.rows.iter().chain(g.per_parent.iter()) {
                if !(v.is_finite() && *v >= 0.0) {
                    e.at(
                        Some(&sp),
                        None,
                        format!("generate.{n}: {v} is not a share ≥ 0"),
                    );
                }
            }
            generate = GenerateHints {
                main: g.main.clone(),
                rows: g.rows.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                per_parent: g
                    .per_parent
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            };
        }
        let control =
            super::checks::control(&mut e, raw.control.as_ref(), layouts);
        let reconcile =
            super::checks::reconciles(&mut e, &raw.reconcile, layouts);
        let years = super::checks::years(&mut e, raw.years.as_ref(), layouts);
        if e.out.len() > before {
            return None;
        }
        Some(Dataset {
            generate,
            control,
            reconcile,
            years,
            name: raw.name.into_inner(),
            description: raw.description,
            archives,
            load_order,
            references,
            path: path.to_owned(),
        })
    }
}

fn parse_field(
    e: &mut Errs,
    span: &Range<usize>,
    f: &RawField,
    format: &Format,
    enc: Encoding,
) -> Option<Field> {
    let before = e.out.len();
    let name = f.name.as_str();
    let mut err = |msg: String| e.at(Some(span), Some(name), msg);
    if !ident_ok(name) {
        err("field name must be a plain identifier (letters, digits, _; at most 63 bytes)".into());
    }
    if name.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
        err(format!(
            "field names starting with '{RESERVED_PREFIX}' are reserved"
        ));
    }
    let ty = match FieldType::parse(&f.ty) {
        Ok(t) => t,
        Err(m) => {
            err(m);
            return None;
        }
    };
    let mut d = Decoder::new(ty);
    d.text.encoding = enc;
    let is_num = matches!(
        ty,
        FieldType::Smallint
            | FieldType::Int
            | FieldType::Bigint
            | FieldType::Numeric(_)
            | FieldType::Float8
    );
    let not_for = |what: &str, ok: bool, err: &mut dyn FnMut(String)| {
        if !ok {
            err(format!("'{what}' does not apply to type {}", ty.sql()));
        }
    };
    // Framing: a span for fixed layouts, none for delimited ones.
    let span_keys = [f.start, f.width, f.end, f.from, f.to];
    let field_span = match format {
        Format::Delimited(_) => {
            if span_keys.iter().any(Option::is_some) {
                err("start/width/end/from/to apply only to fixed layouts"
                    .into());
            }
            None
        }
        Format::Fixed(_) => {
            let r = match (f.start, f.width, f.end, f.from, f.to) {
                (Some(s), Some(w), None, None, None) => Some((s, s + w)),
                (Some(s), None, Some(en), None, None) => Some((s, en)),
                (None, None, None, Some(a), Some(b)) => Some((a - 1, b)),
                (None, Some(w), None, Some(a), None) => {
                    Some((a - 1, a - 1 + w))
                }
                _ => None,
            };
            match r {
                Some((s, en)) if s >= 0 && en > s => {
                    Some(s as usize..en as usize)
                }
                Some((s, en)) => {
                    err(format!("field range {s}..{en} is empty or negative"));
                    None
                }
                None => {
                    err("a fixed field needs start + width, start + end (exclusive), or from + to (1-based, inclusive)"
                        .into());
                    None
                }
            }
        }
    };
    if let Some(t) = &f.trim {
        match Trim::from_name(t) {
            Some(t) => d.trim = t,
            None => {
                err(format!("unknown trim {t:?} (both, left, right, none)"))
            }
        }
    }
    if let Some(c) = f.collapse_spaces {
        not_for("collapse_spaces", ty.is_text(), &mut err);
        d.text.collapse_spaces = c;
    }
    if let Some(u) = f.upper {
        not_for("upper", ty.is_text(), &mut err);
        d.text.upper = u;
    }
    if let Some(n) = &f.null {
        d.nulls = crate::decode::Nulls::new(
            n.iter().map(|s| s.trim_matches(' ').as_bytes().into()).collect(),
        );
    }
    d.required = f.required.unwrap_or(false);
    if let Some(o) = &f.overflow {
        not_for(
            "overflow",
            matches!(ty, FieldType::Varchar(_) | FieldType::Char(_)),
            &mut err,
        );
        match o.as_str() {
            "reject" => d.overflow = Overflow::Reject,
            "truncate" => d.overflow = Overflow::Truncate,
            other => {
                err(format!("unknown overflow {other:?} (reject, truncate)"))
            }
        }
    }
    if let Some(s) = &f.sign {
        not_for("sign", is_num, &mut err);
        match Sign::from_name(s) {
            Some(s) => d.sign = s,
            None => err(format!(
                "unknown sign {s:?} (leading, trailing, overpunch, none)"
            )),
        }
    }
    if let Some(n) = f.implied_decimals {
        not_for(
            "implied_decimals",
            matches!(ty, FieldType::Numeric(_)),
            &mut err,
        );
        if !(0..=38).contains(&n) {
            err("implied_decimals must be 0 to 38".into());
        } else {
            d.fraction = Fraction::Implied(n as u16);
        }
    }
    let kind = match ty {
        FieldType::Date => Some(DateKind::Date),
        FieldType::Time => Some(DateKind::Time),
        FieldType::Timestamp => Some(DateKind::Timestamp),
        _ => None,
    };
    if let Some(fmt) = &f.format {
        match kind {
            Some(k) => match DateFormat::new(fmt, k) {
                Ok(df) => d.format = Some(df),
                Err(m) => err(m),
            },
            None => {
                err(format!("'format' does not apply to type {}", ty.sql()))
            }
        }
    }
    if let Some(t) = &f.true_values {
        not_for("true", ty == FieldType::Boolean, &mut err);
        d.true_values = t.iter().map(|s| s.as_bytes().into()).collect();
    }
    if let Some(t) = &f.false_values {
        not_for("false", ty == FieldType::Boolean, &mut err);
        d.false_values = t.iter().map(|s| s.as_bytes().into()).collect();
    }
    if ty == FieldType::Boolean
        && d.true_values.iter().any(|t| d.false_values.contains(t))
    {
        err("a spelling is both true and false".into());
    }
    for (which, v) in [("min", &f.min), ("max", &f.max)] {
        let Some(v) = v else { continue };
        match bound(ty, &d, v) {
            Ok(b) => {
                if which == "min" {
                    d.min = Some(b)
                } else {
                    d.max = Some(b)
                }
            }
            Err(m) => err(format!("{which}: {m}")),
        }
    }
    if let (Some(Bound::Exact(a)), Some(Bound::Exact(b))) = (d.min, d.max)
        && a > b
    {
        err("min is larger than max".into());
    }
    if let Some(p) = &f.pattern {
        match regex::bytes::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => d.pattern = Some(r),
            Err(m) => err(format!("bad pattern: {m}")),
        }
    }
    if let Some(a) = &f.allowed {
        if a.is_empty() {
            err("allowed lists no values".into());
        }
        d.allowed = Some(a.iter().map(|s| s.as_bytes().into()).collect());
    }
    if e.out.len() > before {
        return None;
    }
    Some(Field {
        name: f.name.clone(),
        header: f.header.clone().unwrap_or_else(|| f.name.clone()),
        span: field_span,
        decoder: d,
        description: f.description.clone(),
        line: e.line(span),
    })
}

/// Converts a TOML min/max into the field's own units.
fn bound(
    ty: FieldType,
    d: &Decoder,
    v: &toml::Value,
) -> Result<Bound, String> {
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return Err("must be a number or a string".into()),
    };
    let parse_dt = |fmt: &str, k: DateKind| {
        DateFormat::new(fmt, k).expect("built-in format")
    };
    match ty {
        FieldType::Smallint | FieldType::Int | FieldType::Bigint => {
            decode::integer(text.as_bytes(), Sign::Leading, i64::MIN, i64::MAX)
                .map(|i| Bound::Exact(i as i128))
                .map_err(|r| format!("{text:?}: {r}"))
        }
        FieldType::Numeric(Some((p, s))) => decode::decimal(
            text.as_bytes(),
            Sign::Leading,
            Fraction::Literal,
            p.max(s + 1),
            Some(s),
        )
        .map(|x| Bound::Exact(x.mantissa))
        .map_err(|r| format!("{text:?}: {r}")),
        FieldType::Numeric(None) | FieldType::Float8 => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Bound::Float)
            .ok_or_else(|| format!("{text:?} is not a finite number")),
        FieldType::Date => parse_dt("YYYY-MM-DD", DateKind::Date)
            .date(text.as_bytes())
            .map(|x| Bound::Exact(x as i128))
            .map_err(|r| format!("{text:?}: {r} (write dates as YYYY-MM-DD)")),
        FieldType::Timestamp => parse_dt(
            "YYYY-MM-DD HH:MI:SS",
            DateKind::Timestamp,
        )
        .timestamp(text.as_bytes())
        .map(|x| Bound::Exact(x as i128))
        .map_err(|r| {
            format!("{text:?}: {r} (write timestamps as YYYY-MM-DD HH:MI:SS)")
        }),
        FieldType::Time => parse_dt("HH:MI:SS", DateKind::Time)
            .time(text.as_bytes())
            .map(|x| Bound::Exact(x as i128))
            .map_err(|r| format!("{text:?}: {r} (write times as HH:MI:SS)")),
        _ => {
            let _ = d;
            Err(format!("min/max do not apply to type {}", ty.sql()))
        }
    }
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
    match super::version::versions(
        fields,
        fx,
        (own.get_ref(), &raw.export_versions),
        &variants,
    ) {
        Ok(v) => v,
        Err(msgs) => {
            for m in msgs {
                e.at(Some(&span), None, m);
            }
            Vec::new()
        }
    }
}

/// Reports fixed-width fields that overlap or reach past the record.
fn check_spans(e: &mut Errs, fields: &[Field], record_length: usize) {
    let mut spans: Vec<(usize, usize, &Field)> = fields
        .iter()
        .filter_map(|f| f.span.as_ref().map(|s| (s.start, s.end, f)))
        .collect();
    spans.sort_by_key(|s| (s.0, s.1));
    for w in spans.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.0 < a.1 {
            e.out.push(SchemaError {
                path: e.path.to_owned(),
                line: Some(b.2.line),
                field: Some(b.2.name.clone()),
                message: format!(
                    "bytes {}..{} overlap field '{}' (bytes {}..{}, line {})",
                    b.0, b.1, a.2.name, a.0, a.1, a.2.line
                ),
            });
        }
    }
    for (s, en, f) in spans {
        if en > record_length {
            e.out.push(SchemaError {
                path: e.path.to_owned(),
                line: Some(f.line),
                field: Some(f.name.clone()),
                message: format!("bytes {s}..{en} reach past the record length {record_length}"),
            });
        }
    }
}

/// The cycles among references between different layouts: each as the
/// layouts along it (the first again at the end) and the index of the
/// reference that closes it, found by a depth-first walk in name order.
/// A layout referencing itself is no cycle: its table is loaded, then its
/// rows are checked against it.
fn reference_cycles(refs: &[Reference]) -> Vec<(Vec<String>, usize)> {
    let mut edges: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, r) in refs.iter().enumerate().filter(|(_, r)| r.from != r.to) {
        edges.entry(&r.from).or_default().push((i, &r.to));
    }
    /// `path`: the layouts the walk is inside; `done`: those whose
    /// references are all walked.
    struct Walk<'a> {
        edges: BTreeMap<&'a str, Vec<(usize, &'a str)>>,
        path: Vec<&'a str>,
        done: HashSet<&'a str>,
        out: Vec<(Vec<String>, usize)>,
    }
    fn visit<'a>(w: &mut Walk<'a>, from: &'a str) {
        w.path.push(from);
        let next = w.edges.get(from).cloned().unwrap_or_default();
        for (i, to) in next {
            if let Some(at) = w.path.iter().position(|&p| p == to) {
                let mut cycle: Vec<String> =
                    w.path[at..].iter().map(|p| p.to_string()).collect();
                cycle.push(to.to_owned());
                w.out.push((cycle, i));
            } else if !w.done.contains(to) {
                visit(w, to);
            }
        }
        w.path.pop();
        w.done.insert(from);
    }
    let starts: Vec<&str> = edges.keys().copied().collect();
    let mut w = Walk {
        edges,
        path: Vec::new(),
        done: HashSet::new(),
        out: Vec::new(),
    };
    for s in starts {
        if !w.done.contains(s) {
            visit(&mut w, s);
        }
    }
    w.out
}

/// Layout names in load order: the dataset's order when given, then the
/// rest with every referenced layout before the layouts referencing it
/// (a reference of a layout to itself orders nothing).
fn load_order(layouts: &[Layout], dataset: Option<&Dataset>) -> Vec<String> {
    let mut order: Vec<String> =
        dataset.map(|d| d.load_order.clone()).unwrap_or_default();
    let mut rest: BTreeMap<String, Vec<String>> = layouts
        .iter()
        .filter(|l| !order.contains(&l.name))
        .map(|l| {
            let deps = dataset
                .map(|d| {
                    d.references
                        .iter()
                        .filter(|r| r.from == l.name && r.to != l.name)
                        .map(|r| r.to.clone())
                        .collect()
                })
                .unwrap_or_default();
            (l.name.clone(), deps)
        })
        .collect();
    while !rest.is_empty() {
        let ready: Vec<String> = rest
            .iter()
            .filter(|(_, deps)| {
                deps.iter().all(|d| order.contains(d) || !rest.contains_key(d))
            })
            .map(|(n, _)| n.clone())
            .collect();
        // A reference cycle (which loading the dataset refused): keep
        // name order for what is left.
        let next = if ready.is_empty() {
            rest.keys().cloned().collect()
        } else {
            ready
        };
        for n in next {
            rest.remove(&n);
            order.push(n);
        }
    }
    order
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
