//! The TOML layout loader and its writer.
//!
//! The input is TOML text, or (after a leading 0xFF byte, which no UTF-8
//! text starts with) a structured description the harness writes out as a
//! layout file, so that most inputs get past the TOML parser and exercise
//! the checks behind it. `SchemaSet::layout_from_str` must never panic;
//! when it loads a layout, `Layout::to_toml` must give text that loads to
//! an equal layout and writes the same text again.
#![no_main]

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

use fwload::record::Slicer;
use fwload::schema::{SchemaSet, TableShape, create_table};
use fwload::split::Framing;

/// A TOML basic string holding `s`.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| q(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML float.
fn float(f: f64) -> String {
    if f.is_nan() {
        if f.is_sign_negative() { "-nan".into() } else { "nan".into() }
    } else {
        format!("{f:e}")
    }
}

/// A value for one key: mostly one of a few plausible ones, sometimes
/// anything.
#[derive(Arbitrary, Debug)]
struct Text {
    pick: u8,
    any: String,
}

impl Text {
    fn pick(&self, menu: &[&str]) -> String {
        if self.pick >= 224 {
            self.any.clone()
        } else {
            menu[self.pick as usize % menu.len()].to_owned()
        }
    }
}

/// A `min`/`max` value: mostly one that suits the type.
#[derive(Arbitrary, Debug)]
struct BoundSpec {
    pick: u8,
    int: i64,
    float: f64,
    any: String,
}

#[derive(Arbitrary, Debug)]
struct FieldSpec {
    /// Above 240: write every key given, whether or not it applies.
    wild: u8,
    name: Text,
    ty: Text,
    header: Option<String>,
    description: Option<String>,
    gap: u8,
    width: u8,
    from_to: bool,
    trim: Option<Text>,
    collapse: Option<bool>,
    upper: Option<bool>,
    null: Option<Vec<String>>,
    required: Option<bool>,
    min: Option<BoundSpec>,
    max: Option<BoundSpec>,
    pattern: Option<String>,
    allowed: Option<Vec<String>>,
    overflow: Option<Text>,
    format: Option<Text>,
    implied: Option<i8>,
    sign: Option<Text>,
    true_values: Option<Vec<String>>,
    false_values: Option<Vec<String>>,
}

#[derive(Arbitrary, Debug)]
struct FilterSpec {
    field: u8,
    keep: Vec<String>,
    drop: Vec<String>,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    /// Above 240: write keys of the other format too.
    wild: u8,
    name: Option<Text>,
    table: Option<Text>,
    description: Option<String>,
    members: Vec<Text>,
    fixed: bool,
    encoding: Option<Text>,
    delimiter: Option<Text>,
    quoting: Option<Text>,
    header: Option<bool>,
    terminator: Option<Text>,
    record_length: Option<i16>,
    longer: Option<Text>,
    shorter: Option<Text>,
    key: Vec<u8>,
    duplicates: Option<Text>,
    skip_blank: Option<bool>,
    filters: Vec<FilterSpec>,
    fields: Vec<FieldSpec>,
}

const TYPES: &[&str] = &[
    "text",
    "varchar(13)",
    "char(2)",
    "char",
    "smallint",
    "int",
    "integer",
    "int4",
    "bigint",
    "numeric(14,2)",
    "numeric(38,0)",
    "numeric",
    "decimal(5,5)",
    "float8",
    "double precision",
    "boolean",
    "date",
    "timestamp",
    "time",
];

fn kind(ty: &str) -> &'static str {
    let t = ty.trim().to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or("").trim().to_owned();
    match base.as_str() {
        "text" | "varchar" | "character varying" | "char" | "character" => {
            "text"
        }
        "smallint" | "int2" | "int" | "integer" | "int4" | "bigint"
        | "int8" => "int",
        "numeric" | "decimal" => "numeric",
        "float8" | "double precision" | "float" => "float",
        "boolean" | "bool" => "bool",
        "date" => "date",
        "timestamp" => "timestamp",
        "time" => "time",
        _ => "",
    }
}

fn bound(b: &BoundSpec, kind: &str) -> String {
    match b.pick {
        0..160 => {
            let menu: &[&str] = match kind {
                "int" => &["0", "-5", "9999", "\"12\""],
                "numeric" => &["\"0.50\"", "0", "1e3", "\"-99.99\"", "-inf"],
                "float" => {
                    &["0.5", "-1e6", "\"inf\"", "\"1e-300\"", "nan", "-0.0"]
                }
                "date" => {
                    &["\"1900-01-01\"", "\"2099-12-31\"", "\"2024-02-29\""]
                }
                "timestamp" => {
                    &["\"1990-01-01 00:00:00\"", "\"2030-06-30 23:59:59\""]
                }
                "time" => &["\"06:00:00\"", "\"23:59:59\""],
                _ => &["0"],
            };
            menu[b.pick as usize % menu.len()].to_owned()
        }
        160..200 => b.int.to_string(),
        200..230 => float(b.float),
        _ => q(&b.any),
    }
}

fn write_spec(s: &Spec) -> String {
    let mut t = String::new();
    let mut kv = |k: &str, v: String| t.push_str(&format!("{k} = {v}\n"));
    if let Some(n) = &s.name {
        kv("name", q(&n.pick(&["real_acct", "appraisal_info", "x"])));
    }
    if let Some(n) = &s.table {
        kv("table", q(&n.pick(&["t", "hcad.real_acct", "a.b.c", "_x1"])));
    }
    if let Some(d) = &s.description {
        kv("description", q(d));
    }
    let members: Vec<String> = s
        .members
        .iter()
        .map(|m| {
            m.pick(&["real_acct.txt", "*_APPRAISAL_INFO.TXT", "{a,b}.txt"])
        })
        .collect();
    kv("members", list(&members));
    kv("format", q(if s.fixed { "fixed" } else { "delimited" }));
    if let Some(e) = &s.encoding {
        kv(
            "encoding",
            q(&e.pick(&["utf-8", "latin-1", "windows-1252", "CP1252"])),
        );
    }
    let wild = s.wild > 240;
    if !s.fixed || wild {
        if let Some(d) = &s.delimiter {
            kv("delimiter", q(&d.pick(&["\t", ",", "|", ";"])));
        }
        if let Some(v) = &s.quoting {
            kv("quoting", q(&v.pick(&["none", "standard"])));
        }
        if let Some(h) = s.header {
            kv("header", h.to_string());
        }
    }
    if let Some(v) = &s.terminator {
        kv("terminator", q(&v.pick(&["any", "lf", "crlf", "none"])));
    }
    let mut record_length = 0usize;
    if s.fixed || wild {
        if let Some(r) = s.record_length {
            kv("record_length", r.to_string());
            record_length = r.max(0) as usize;
        }
        if let Some(v) = &s.longer {
            kv("longer", q(&v.pick(&["ignore", "reject"])));
        }
        if let Some(v) = &s.shorter {
            kv("shorter", q(&v.pick(&["reject", "pad"])));
        }
    }
    let names: Vec<String> = s
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| f.name.pick(&[&format!("f{i}")]))
        .collect();
    if !s.key.is_empty() && !names.is_empty() {
        let k: Vec<String> = s
            .key
            .iter()
            .map(|&i| names[i as usize % names.len()].clone())
            .collect();
        kv("key", list(&k));
    }
    if let Some(v) = &s.duplicates {
        kv("duplicates", q(&v.pick(&["reject", "first", "last"])));
    }
    if let Some(b) = s.skip_blank {
        kv("skip_blank", b.to_string());
    }
    for f in &s.filters {
        t.push_str("\n[[filter]]\n");
        let name = if names.is_empty() {
            "nothing".to_owned()
        } else {
            names[f.field as usize % names.len()].clone()
        };
        t.push_str(&format!("field = {}\n", q(&name)));
        if !f.keep.is_empty() {
            t.push_str(&format!("keep = {}\n", list(&f.keep)));
        }
        if !f.drop.is_empty() {
            t.push_str(&format!("drop = {}\n", list(&f.drop)));
        }
    }
    let mut at = 0usize;
    for (f, name) in s.fields.iter().zip(&names) {
        t.push_str("\n[[field]]\n");
        let mut kv = |k: &str, v: String| t.push_str(&format!("{k} = {v}\n"));
        kv("name", q(name));
        let ty = f.ty.pick(TYPES);
        kv("type", q(&ty));
        let k = kind(&ty);
        let any = f.wild > 240;
        if let Some(h) = &f.header {
            kv("header", q(h));
        }
        if let Some(d) = &f.description {
            kv("description", q(d));
        }
        if s.fixed || any {
            // Back to back from the start, within the record if it has one.
            let start = at + f.gap as usize % 3;
            let mut end = start + 1 + f.width as usize % 12;
            if record_length > start && !any {
                end = end.min(record_length);
            }
            at = end;
            if f.from_to {
                kv("from", (start + 1).to_string());
                kv("to", end.to_string());
            } else {
                kv("start", start.to_string());
                kv("width", (end - start).to_string());
            }
        }
        if let Some(v) = &f.trim {
            kv("trim", q(&v.pick(&["both", "left", "right", "none"])));
        }
        if k == "text" || any {
            if let Some(b) = f.collapse {
                kv("collapse_spaces", b.to_string());
            }
            if let Some(b) = f.upper {
                kv("upper", b.to_string());
            }
            if let Some(v) = &f.overflow
                && (ty.starts_with("varchar") || ty.starts_with("char") || any)
            {
                kv("overflow", q(&v.pick(&["reject", "truncate"])));
            }
            if let Some(p) = &f.pattern {
                let p: String = p.chars().take(16).collect();
                kv("pattern", q(&p));
            }
            if let Some(a) = &f.allowed {
                kv("allowed", list(a));
            }
        }
        if let Some(n) = &f.null {
            kv("null", list(n));
        }
        if let Some(r) = f.required {
            kv("required", r.to_string());
        }
        if k != "text" && k != "bool" || any {
            if let Some(b) = &f.min {
                kv("min", bound(b, k));
            }
            if let Some(b) = &f.max {
                kv("max", bound(b, k));
            }
        }
        if (matches!(k, "int" | "numeric" | "float") || any)
            && let Some(v) = &f.sign
        {
            kv(
                "sign",
                q(&v.pick(&["leading", "trailing", "overpunch", "none"])),
            );
        }
        if (k == "numeric" || any)
            && let Some(n) = f.implied
        {
            kv("implied_decimals", n.to_string());
        }
        if (matches!(k, "date" | "timestamp" | "time") || any)
            && let Some(v) = &f.format
        {
            let menu: &[&str] = match k {
                "date" => &["MM/DD/YYYY", "YYYYMMDD", "YYYY-MM-DD"],
                "timestamp" => {
                    &["YYYY-MM-DD HH:MI:SS", "YYYYMMDDHHMISSff", "MM/DD/YYYY"]
                }
                _ => &["HHMMSSff", "HH:MI", "HH24:MI:SS.ffffff"],
            };
            kv("format", q(&v.pick(menu)));
        }
        if k == "bool" || any {
            if let Some(v) = &f.true_values {
                kv("true", list(v));
            }
            if let Some(v) = &f.false_values {
                kv("false", list(v));
            }
        }
    }
    t
}

fn check(text: &str) {
    let path = Path::new("fuzz.toml");
    let Ok(layout) = SchemaSet::layout_from_str(path, text) else { return };
    let _ = Framing::of(&layout);
    let _ = Slicer::new(&layout);
    let shape = TableShape { soft_delete: true, ..TableShape::default() };
    let _ = create_table(&layout, &layout.table, &shape);
    let written = layout.to_toml();
    let again = match SchemaSet::layout_from_str(path, &written) {
        Ok(l) => l,
        Err(e) => panic!("written layout does not load: {e}\n{written}"),
    };
    assert_eq!(again, layout, "reloaded layout differs\n{written}");
    assert_eq!(again.to_toml(), written, "writing is not stable");
}

fuzz_target!(|data: &[u8]| {
    if let Some((&0xff, rest)) = data.split_first() {
        let u = Unstructured::new(rest);
        if let Ok(spec) = Spec::arbitrary_take_rest(u) {
            check(&write_spec(&spec));
        }
    } else if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
});
