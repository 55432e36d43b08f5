//! A dataset file: archives, references, load order, generator hints,
//! and the export-wide checks of [`checks`](crate::schema::checks).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::schema::checks::{self, RawCheck, RawControl, RawReconcile};
use crate::schema::errs::{Errs, ident_ok};
use crate::schema::{
    ArchiveSpec, Dataset, GenerateHints, HistoryColumns, Layout, OrphanPolicy,
    Period, PeriodFrom, Reference, SchemaError,
};

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
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
    years: Option<Spanned<BTreeMap<String, String>>>,
    period: Option<Spanned<RawPeriod>>,
    history: Option<Spanned<RawHistory>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    valid_from: Option<String>,
    valid_to: Option<String>,
    row_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeriod {
    column: String,
    from: PeriodFrom,
    field: Option<String>,
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
    on_orphan: Option<OrphanPolicy>,
}

/// Loads the dataset from the TOML `text` of the file at `path`, checked
/// against `layouts`; `None` after recording every problem found in
/// `out`.
pub(in crate::schema) fn parse_dataset(
    path: &Path,
    text: &str,
    layouts: &[Layout],
    out: &mut Vec<SchemaError>,
) -> Option<Dataset> {
    let mut e = Errs::new(path, text, out);
    let raw: RawDataset = e.toml()?;
    let before = e.count();
    let names: HashSet<&str> =
        layouts.iter().map(|l| l.name.as_str()).collect();
    if !ident_ok(raw.name.get_ref()) {
        e.at(
            Some(&raw.name.span()),
            None,
            "dataset name must be a plain identifier",
        );
    }
    let archives = archives(&mut e, &raw.archive, &names);
    let references = references(&mut e, &raw.reference, layouts);
    let load_order =
        load_order(&mut e, raw.load_order.as_ref(), &names, &references);
    let generate = generate(&mut e, raw.generate.as_ref(), &names);
    let control = checks::control(&mut e, raw.control.as_ref(), layouts);
    let reconcile = checks::reconciles(&mut e, &raw.reconcile, layouts);
    let checks = checks::checks(&mut e, &raw.check, layouts);
    let years = checks::years(&mut e, raw.years.as_ref(), layouts);
    let period = period(&mut e, raw.period.as_ref(), layouts, &archives);
    let history = history(&mut e, raw.history.as_ref(), layouts);
    if e.count() > before {
        return None;
    }
    Some(Dataset {
        generate,
        control,
        reconcile,
        checks,
        years,
        period,
        history,
        name: raw.name.into_inner(),
        description: raw.description,
        archives,
        load_order,
        references,
        path: path.to_owned(),
    })
}

fn archives(
    e: &mut Errs,
    raw: &[Spanned<RawArchive>],
    names: &HashSet<&str>,
) -> Vec<ArchiveSpec> {
    let mut archives = Vec::new();
    for a in raw {
        let r = a.get_ref();
        for l in r.layouts.iter().filter(|l| !names.contains(l.as_str())) {
            e.at(
                Some(&a.span()),
                None,
                format!("archive '{}' names unknown layout '{l}'", r.name),
            );
        }
        if let Some(h) = &r.sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            e.at(
                Some(&a.span()),
                None,
                format!("archive '{}': sha256 must be 64 hex digits", r.name),
            );
        }
        archives.push(ArchiveSpec {
            name: r.name.clone(),
            url: r.url.clone(),
            sha256: r.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
            layouts: r.layouts.clone(),
        });
    }
    archives
}

/// The `[period]`: a plain identifier that is no layout's field; from
/// the archive names only when one of them has a `{year}`.
fn period(
    e: &mut Errs,
    raw: Option<&Spanned<RawPeriod>>,
    layouts: &[Layout],
    archives: &[ArchiveSpec],
) -> Option<Period> {
    let p = raw?;
    let (sp, r) = (p.span(), p.get_ref());
    if !ident_ok(&r.column) {
        e.at(Some(&sp), None, "period column must be a plain identifier");
    }
    for l in layouts.iter().filter(|l| l.field_index(&r.column).is_some()) {
        e.at(
            Some(&sp),
            None,
            format!(
                "period column '{}' is also a field of layout '{}': fwload fills the period column itself, so name it otherwise (e.g. roll_year)",
                r.column, l.name
            ),
        );
    }
    if r.from == PeriodFrom::Archive
        && !archives.iter().any(|a| a.name.contains("{year}"))
    {
        e.at(
            Some(&sp),
            None,
            "period from = \"archive\" needs an archive whose name has {year}",
        );
    }
    match (&r.field, r.from) {
        (None, PeriodFrom::Field) => e.at(
            Some(&sp),
            None,
            "period from = \"field\" needs field = \"<the field that states the period>\"",
        ),
        (Some(f), PeriodFrom::Field) => {
            if !layouts.iter().any(|l| l.field_index(f).is_some()) {
                e.at(
                    Some(&sp),
                    None,
                    format!("period field '{f}' is a field of no layout"),
                );
            }
        }
        (Some(_), from) => e.at(
            Some(&sp),
            None,
            format!(
                "period field is only read with from = \"field\" (this period is from = \"{}\")",
                from.as_str()
            ),
        ),
        (None, _) => {}
    }
    Some(Period {
        column: r.column.clone(),
        from: r.from,
        field: r.field.clone(),
    })
}

/// The `[history]` column names: plain identifiers, distinct, none a
/// field of a layout.
fn history(
    e: &mut Errs,
    raw: Option<&Spanned<RawHistory>>,
    layouts: &[Layout],
) -> HistoryColumns {
    let mut h = HistoryColumns::default();
    let Some(r) = raw else { return h };
    let (sp, r) = (r.span(), r.get_ref());
    for (to, from) in [
        (&mut h.valid_from, &r.valid_from),
        (&mut h.valid_to, &r.valid_to),
        (&mut h.row_hash, &r.row_hash),
    ] {
        if let Some(name) = from {
            *to = name.clone();
        }
    }
    let names = [&h.valid_from, &h.valid_to, &h.row_hash];
    for (i, n) in names.iter().enumerate() {
        if !ident_ok(n) {
            e.at(
                Some(&sp),
                None,
                format!("history column '{n}' must be a plain identifier"),
            );
        }
        if names[..i].contains(n) {
            e.at(
                Some(&sp),
                None,
                format!("history column '{n}' is named twice"),
            );
        }
        for l in layouts.iter().filter(|l| l.field_index(n).is_some()) {
            e.at(
                Some(&sp),
                None,
                format!(
                    "history column '{n}' is also a field of layout '{}'",
                    l.name
                ),
            );
        }
    }
    h
}

/// The references, each checked against its layouts, and none in a
/// cycle.
fn references(
    e: &mut Errs,
    raw: &[Spanned<RawReference>],
    layouts: &[Layout],
) -> Vec<Reference> {
    let mut references = Vec::new();
    let mut spans = Vec::new();
    for rr in raw {
        let sp = rr.span();
        if let Some(r) = reference(e, &sp, rr.get_ref(), layouts) {
            references.push(r);
            spans.push(sp);
        }
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
    references
}

/// One reference, at `sp`; `None` when a layout it names is unknown.
fn reference(
    e: &mut Errs,
    sp: &Range<usize>,
    r: &RawReference,
    layouts: &[Layout],
) -> Option<Reference> {
    let find = |n: &str| layouts.iter().find(|l| l.name == n);
    let (Some(from), Some(to)) = (find(&r.from), find(&r.to)) else {
        e.at(
            Some(sp),
            None,
            format!("reference {} → {}: unknown layout", r.from, r.to),
        );
        return None;
    };
    let to_columns = r.to_columns.clone().unwrap_or_else(|| r.columns.clone());
    if r.columns.is_empty() || r.columns.len() != to_columns.len() {
        e.at(
            Some(sp),
            None,
            "reference needs as many columns as to_columns, at least one",
        );
    }
    for c in r.columns.iter().filter(|c| from.field_index(c).is_none()) {
        e.at(
            Some(sp),
            None,
            format!("reference column '{}.{c}' is not a field", r.from),
        );
    }
    for c in to_columns.iter().filter(|c| to.field_index(c).is_none()) {
        e.at(
            Some(sp),
            None,
            format!("referenced column '{}.{c}' is not a field", r.to),
        );
    }
    Some(Reference {
        from: r.from.clone(),
        columns: r.columns.clone(),
        to: r.to.clone(),
        to_columns,
        on_orphan: r.on_orphan.unwrap_or_default(),
    })
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

/// The declared load order (empty when not given): known layouts, none
/// before a layout it references.
fn load_order(
    e: &mut Errs,
    raw: Option<&Spanned<Vec<String>>>,
    names: &HashSet<&str>,
    references: &[Reference],
) -> Vec<String> {
    let Some(o) = raw else { return Vec::new() };
    let v = o.get_ref().clone();
    for n in v.iter().filter(|n| !names.contains(n.as_str())) {
        e.at(
            Some(&o.span()),
            None,
            format!("load_order names unknown layout '{n}'"),
        );
    }
    let pos = |n: &str| v.iter().position(|x| x == n);
    for r in references {
        if let (Some(a), Some(b)) = (pos(&r.from), pos(&r.to))
            && a < b
        {
            e.at(
                Some(&o.span()),
                None,
                format!(
                    "load_order puts '{}' before '{}', which it references",
                    r.from, r.to
                ),
            );
        }
    }
    v
}

/// The `[generate]` hints: known layouts, shares ≥ 0.
fn generate(
    e: &mut Errs,
    raw: Option<&Spanned<RawGenerate>>,
    names: &HashSet<&str>,
) -> GenerateHints {
    let Some(g) = raw else { return GenerateHints::default() };
    let sp = g.span();
    let g = g.get_ref();
    let named = g.main.iter().chain(g.rows.keys()).chain(g.per_parent.keys());
    for n in named.filter(|n| !names.contains(n.as_str())) {
        e.at(Some(&sp), None, format!("generate names unknown layout '{n}'"));
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
    let pairs = |m: &BTreeMap<String, f64>| {
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    };
    GenerateHints {
        main: g.main.clone(),
        rows: pairs(&g.rows),
        per_parent: pairs(&g.per_parent),
    }
}
