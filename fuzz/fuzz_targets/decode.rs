//! Typed decoding of one field, and writing a value back.
//!
//! A one-field layout is built from TOML (delimited, or fixed with the
//! field's width) with a type and options picked by the input: implied
//! decimals, sign conventions, date/time formats, encodings, space
//! collapsing and upper case, null sentinels, truncation, boolean
//! spellings, ranges and patterns. Arbitrary bytes go through the field's
//! `Decoder`; decoding must never panic, and when it succeeds, writing the
//! value with `generate::format_value` and decoding those bytes must give
//! the same value again (decode → encode → parse returns the value).
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use fwload::decode::{Quick, Value, plain_ascii};
use fwload::generate::{Datum, format_value};
use fwload::schema::{Layout, SchemaSet};

#[derive(Arbitrary, Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Ty {
    Text,
    Varchar(u8),
    Char(u8),
    Smallint,
    Int,
    Bigint,
    Numeric,
    /// `numeric(p,s)` from two bytes.
    NumericPs(u8, u8),
    Float8,
    Boolean,
    Date,
    Timestamp,
    Time,
}

/// Everything that shapes the field; each byte picks from a short menu.
#[derive(Arbitrary, Clone, Debug, Hash, PartialEq, Eq)]
struct Opts {
    ty: Ty,
    /// A fixed layout with a field `1 + n % 24` bytes wide; else delimited.
    width: Option<u8>,
    encoding: u8,
    trim: u8,
    collapse: bool,
    upper: bool,
    null: u8,
    required: bool,
    truncate: bool,
    sign: u8,
    implied: Option<u8>,
    format: u8,
    bools: u8,
    range: u8,
    check: u8,
}

const DATE_FORMATS: &[&str] = &[
    "YYYY-MM-DD",
    "MM/DD/YYYY",
    "YYYYMMDD",
    "DD.MM.YYYY",
    "MMDDYYYY",
    "YYYY/MM/DD",
    "DD-MM-YYYY",
];
const TIMESTAMP_FORMATS: &[&str] = &[
    "YYYY-MM-DD HH:MI:SS",
    "MM/DD/YYYY HH:MI:SS",
    "YYYYMMDDHHMISS",
    "YYYY-MM-DDTHH:MI:SS.ffffff",
    "YYYYMMDD",
    "MM/DD/YYYY HH24:MI",
    "YYYY-MM-DD HH:MI:SS.fff",
];
const TIME_FORMATS: &[&str] = &[
    "HH:MI:SS",
    "HHMMSSff",
    "HH:MI",
    "HH24MISS",
    "HH:MI:SS.ffffff",
    "HHMM",
    "HH.MI.SS.f",
];

/// `numeric(p,s)` from two bytes: `1 <= p <= 38`, `s <= p`.
fn precision_scale(p: u8, s: u8) -> (u8, u8) {
    let p = 1 + p % 38;
    (p, s % (p + 1))
}

fn type_name(ty: Ty) -> String {
    match ty {
        Ty::Text => "text".into(),
        Ty::Varchar(n) => format!("varchar({})", 1 + n % 16),
        Ty::Char(n) => format!("char({})", 1 + n % 16),
        Ty::Smallint => "smallint".into(),
        Ty::Int => "int".into(),
        Ty::Bigint => "bigint".into(),
        Ty::Numeric => "numeric".into(),
        Ty::NumericPs(p, s) => {
            let (p, s) = precision_scale(p, s);
            format!("numeric({p},{s})")
        }
        Ty::Float8 => "float8".into(),
        Ty::Boolean => "boolean".into(),
        Ty::Date => "date".into(),
        Ty::Timestamp => "timestamp".into(),
        Ty::Time => "time".into(),
    }
}

/// The layout's TOML: only options that apply to the type are written.
fn layout_toml(o: &Opts) -> String {
    let enc = ["utf-8", "latin-1", "windows-1252"][o.encoding as usize % 3];
    let mut s = format!("members = [\"x.txt\"]\nencoding = \"{enc}\"\n");
    match o.width {
        Some(w) => s.push_str(&format!(
            "format = \"fixed\"\nrecord_length = {}\n",
            1 + w % 24
        )),
        None => s.push_str("format = \"delimited\"\n"),
    }
    s.push_str(&format!(
        "\n[[field]]\nname = \"v\"\ntype = \"{}\"\n",
        type_name(o.ty)
    ));
    if let Some(w) = o.width {
        s.push_str(&format!("start = 0\nwidth = {}\n", 1 + w % 24));
    }
    let mut kv = |k: &str, v: &str| s.push_str(&format!("{k} = {v}\n"));
    kv(
        "trim",
        ["\"both\"", "\"left\"", "\"right\"", "\"none\""][o.trim as usize % 4],
    );
    match o.null % 8 {
        0 => {}
        1 => kv("null", "[]"),
        2 => kv("null", "[\"\", \"0\"]"),
        3 => kv("null", "[\"N/A\"]"),
        4 => kv("null", "[\"00000000\", \"\"]"),
        5 => kv("null", "[\"NULL\", \"null\"]"),
        6 => kv("null", "[\" \"]"),
        _ => kv("null", "[\"0000\"]"),
    }
    if o.required {
        kv("required", "true");
    }
    let text = matches!(o.ty, Ty::Text | Ty::Varchar(_) | Ty::Char(_));
    let numeric = matches!(o.ty, Ty::Numeric | Ty::NumericPs(..));
    let number = numeric
        || matches!(o.ty, Ty::Smallint | Ty::Int | Ty::Bigint | Ty::Float8);
    if text {
        kv("collapse_spaces", if o.collapse { "true" } else { "false" });
        kv("upper", if o.upper { "true" } else { "false" });
        if matches!(o.ty, Ty::Varchar(_) | Ty::Char(_)) {
            kv(
                "overflow",
                if o.truncate { "\"truncate\"" } else { "\"reject\"" },
            );
        }
        match o.check % 5 {
            0 => {}
            1 => kv("pattern", "\"[A-Z0-9 ]*\""),
            2 => kv("pattern", "\"(?s).*\""),
            3 => kv("pattern", "\"[^a-z]+\""),
            _ => kv("allowed", "[\"A\", \"B\", \"AB\", \"ÑA\"]"),
        }
    }
    if number {
        let sign =
            ["\"leading\"", "\"trailing\"", "\"overpunch\"", "\"none\""];
        kv("sign", sign[o.sign as usize % 4]);
    }
    if numeric && let Some(n) = o.implied {
        kv("implied_decimals", &(n % 39).to_string());
    }
    let formats = match o.ty {
        Ty::Date => Some(DATE_FORMATS),
        Ty::Timestamp => Some(TIMESTAMP_FORMATS),
        Ty::Time => Some(TIME_FORMATS),
        _ => None,
    };
    if let Some(f) = formats {
        kv("format", &format!("\"{}\"", f[o.format as usize % f.len()]));
    }
    if o.ty == Ty::Boolean {
        let (t, f) = match o.bools % 5 {
            0 => ("[\"Y\"]", "[\"N\"]"),
            1 => ("[\"1\", \"T\"]", "[\"0\", \"F\"]"),
            2 => ("[\"TRUE\"]", "[\"FALSE\", \"\"]"),
            3 => ("[\"X\"]", "[\" \"]"),
            _ => ("[\"yes\", \"Y\"]", "[\"no\"]"),
        };
        kv("true", t);
        kv("false", f);
    }
    let (min, max) = match o.ty {
        Ty::Smallint | Ty::Int | Ty::Bigint => ("0", "100000"),
        Ty::Numeric | Ty::Float8 => ("-1e6", "1e6"),
        Ty::NumericPs(..) => ("\"0\"", "\"0\""),
        Ty::Date => ("\"1900-01-01\"", "\"2099-12-31\""),
        Ty::Timestamp => {
            ("\"1990-01-01 00:00:00\"", "\"2030-06-30 12:00:00\"")
        }
        Ty::Time => ("\"06:00:00\"", "\"18:30:00\""),
        _ => ("", ""),
    };
    if !min.is_empty() {
        match o.range % 4 {
            1 => kv("min", min),
            2 => kv("max", max),
            3 => {
                kv("min", min);
                kv("max", max);
            }
            _ => {}
        }
    }
    s
}

thread_local! {
    static LAYOUTS: RefCell<HashMap<Opts, Rc<Layout>>> =
        RefCell::new(HashMap::new());
}

fn layout(o: &Opts) -> Rc<Layout> {
    LAYOUTS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() > 4096 {
            m.clear();
        }
        m.entry(o.clone())
            .or_insert_with(|| {
                let text = layout_toml(o);
                match SchemaSet::layout_from_str(Path::new("v.toml"), &text) {
                    Ok(l) => Rc::new(l),
                    Err(e) => {
                        panic!("harness wrote a bad layout:\n{text}\n{e}")
                    }
                }
            })
            .clone()
    })
}

fn datum(v: Value<'_>) -> Datum {
    match v {
        Value::Null => Datum::Null,
        Value::Bool(b) => Datum::Bool(b),
        Value::Int(i) => Datum::Int(i),
        Value::Numeric(d) => Datum::Numeric(d),
        Value::Float(x) => Datum::Float(x),
        Value::Date(d) => Datum::Date(d),
        Value::Timestamp(t) => Datum::Timestamp(t),
        Value::Time(t) => Datum::Time(t),
        Value::Text(s) => Datum::Text(s.to_owned()),
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    opts: Opts,
    raw: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let layout = layout(&input.opts);
    let field = &layout.fields[0];
    let d = &field.decoder;
    // A fixed field is never longer than its width.
    let raw = match &field.span {
        Some(s) => &input.raw[..input.raw.len().min(s.end - s.start)],
        None => &input.raw[..],
    };
    let mut scratch = Vec::new();
    let decoded = d.decode(raw, &mut scratch);
    // What the quick validity test accepts, decoding accepts: the field
    // alone, and the input's last bytes with the bytes before them in
    // reach; for records of any bytes and of plain ASCII only.
    let n = raw.len().min(input.raw.len());
    let cases = [
        (raw, 0..raw.len()),
        (&input.raw[..], input.raw.len() - n..input.raw.len()),
    ];
    for (buf, span) in cases {
        let v = &buf[span.clone()];
        for plain in [false, plain_ascii(v)] {
            let q = Quick::of(d, plain);
            if q.accepts(buf, span.clone()) {
                let mut s = Vec::new();
                assert!(
                    d.decode(v, &mut s).is_ok(),
                    "{q:?} accepts {:?}, decoding rejects it",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }
    let value = match decoded {
        Ok(v) => v,
        Err(_) => return,
    };
    let _ = value.to_string();
    let value = datum(value);
    let mut out = Vec::new();
    if format_value(&layout, field, &value, &mut out).is_err() {
        // The value cannot be written in this field (too wide for the
        // width, or a character the encoding lacks).
        return;
    }
    let mut scratch2 = Vec::new();
    let again = d.decode(&out, &mut scratch2).map(datum);
    assert_eq!(
        again,
        Ok(value),
        "{:?} decoded, written as {:?}, decoded again",
        String::from_utf8_lossy(raw),
        String::from_utf8_lossy(&out)
    );
});
