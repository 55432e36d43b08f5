//! One `[[field]]` of a layout: its framing, type, conversions and checks.

use std::ops::Range;

use serde::Deserialize;

use crate::decode::{
    self, Bound, DateFormat, DateKind, Decoder, Encoding, FieldType, Fraction,
    Nulls, Overflow, Sign, Trim,
};
use crate::schema::errs::{Errs, ident_ok};
use crate::schema::{Field, Format};

/// Column names reserved for fwload's own bookkeeping in staging tables.
pub(super) const RESERVED_PREFIX: &str = "_fw";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    pub(super) name: String,
    #[serde(rename = "type")]
    ty: String,
    header: Option<String>,
    description: Option<String>,
    start: Option<i64>,
    width: Option<i64>,
    end: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    trim: Option<Trim>,
    collapse_spaces: Option<bool>,
    upper: Option<bool>,
    null: Option<Vec<String>>,
    required: Option<bool>,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    pattern: Option<String>,
    allowed: Option<Vec<String>>,
    overflow: Option<Overflow>,
    format: Option<String>,
    implied_decimals: Option<i64>,
    sign: Option<Sign>,
    #[serde(rename = "true")]
    true_values: Option<Vec<String>>,
    #[serde(rename = "false")]
    false_values: Option<Vec<String>>,
}

/// Problems of one field: each at the field's line, naming it.
struct FieldErrs<'e, 'a> {
    e: &'e mut Errs<'a>,
    span: &'e Range<usize>,
    name: &'e str,
}

impl FieldErrs<'_, '_> {
    fn push(&mut self, msg: impl Into<String>) {
        self.e.at(Some(self.span), Some(self.name), msg);
    }

    /// Reports `key` given for a type it does not apply to (`!applies`).
    fn not_for(&mut self, key: &str, ty: FieldType, applies: bool) {
        if !applies {
            self.push(format!("'{key}' does not apply to type {}", ty.sql()));
        }
    }
}

/// Checks and builds the field `f` defined at `span` of a layout framed
/// by `format` whose text is in `enc`; `None` after recording its
/// problems.
pub(super) fn parse_field(
    e: &mut Errs,
    span: &Range<usize>,
    f: &RawField,
    format: &Format,
    enc: Encoding,
) -> Option<Field> {
    let before = e.count();
    let mut err = FieldErrs { e: &mut *e, span, name: &f.name };
    check_name(&mut err, &f.name);
    let ty = match FieldType::parse(&f.ty) {
        Ok(t) => t,
        Err(m) => {
            err.push(m);
            return None;
        }
    };
    let mut d = Decoder::new(ty);
    d.text.encoding = enc;
    let field_span = field_span(&mut err, f, format);
    text_options(&mut err, f, &mut d);
    number_options(&mut err, f, &mut d);
    date_format(&mut err, f, &mut d);
    boolean_spellings(&mut err, f, &mut d);
    bounds(&mut err, f, &mut d);
    value_checks(&mut err, f, &mut d);
    if e.count() > before {
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

fn check_name(err: &mut FieldErrs, name: &str) {
    if !ident_ok(name) {
        err.push(
            "field name must be a plain identifier (letters, digits, _; at most 63 bytes)",
        );
    }
    if name.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
        err.push(format!(
            "field names starting with '{RESERVED_PREFIX}' are reserved"
        ));
    }
}

/// The field's byte range: given for a fixed layout, none for a
/// delimited one.
fn field_span(
    err: &mut FieldErrs,
    f: &RawField,
    format: &Format,
) -> Option<Range<usize>> {
    if let Format::Delimited(_) = format {
        let keys = [f.start, f.width, f.end, f.from, f.to];
        if keys.iter().any(Option::is_some) {
            err.push("start/width/end/from/to apply only to fixed layouts");
        }
        return None;
    }
    let r = match (f.start, f.width, f.end, f.from, f.to) {
        (Some(s), Some(w), None, None, None) => Some((s, s + w)),
        (Some(s), None, Some(en), None, None) => Some((s, en)),
        (None, None, None, Some(a), Some(b)) => Some((a - 1, b)),
        (None, Some(w), None, Some(a), None) => Some((a - 1, a - 1 + w)),
        _ => None,
    };
    match r {
        Some((s, en)) if s >= 0 && en > s => Some(s as usize..en as usize),
        Some((s, en)) => {
            err.push(format!("field range {s}..{en} is empty or negative"));
            None
        }
        None => {
            err.push(
                "a fixed field needs start + width, start + end (exclusive), or from + to (1-based, inclusive)",
            );
            None
        }
    }
}

/// Trimming, text conversions, NULL spellings, required and overflow.
fn text_options(err: &mut FieldErrs, f: &RawField, d: &mut Decoder) {
    let ty = d.ty;
    if let Some(t) = f.trim {
        d.trim = t;
    }
    if let Some(c) = f.collapse_spaces {
        err.not_for("collapse_spaces", ty, ty.is_text());
        d.text.collapse_spaces = c;
    }
    if let Some(u) = f.upper {
        err.not_for("upper", ty, ty.is_text());
        d.text.upper = u;
    }
    if let Some(n) = &f.null {
        d.nulls = Nulls::new(
            n.iter().map(|s| s.trim_matches(' ').as_bytes().into()).collect(),
        );
    }
    d.required = f.required.unwrap_or(false);
    if let Some(o) = f.overflow {
        let sized = matches!(ty, FieldType::Varchar(_) | FieldType::Char(_));
        err.not_for("overflow", ty, sized);
        d.overflow = o;
    }
}

/// The sign convention and implied decimals of numbers.
fn number_options(err: &mut FieldErrs, f: &RawField, d: &mut Decoder) {
    let ty = d.ty;
    if let Some(s) = f.sign {
        let is_num = matches!(
            ty,
            FieldType::Smallint
                | FieldType::Int
                | FieldType::Bigint
                | FieldType::Numeric(_)
                | FieldType::Float8
        );
        err.not_for("sign", ty, is_num);
        d.sign = s;
    }
    if let Some(n) = f.implied_decimals {
        let numeric = matches!(ty, FieldType::Numeric(_));
        err.not_for("implied_decimals", ty, numeric);
        if !(0..=38).contains(&n) {
            err.push("implied_decimals must be 0 to 38");
        } else {
            d.fraction = Fraction::Implied(n as u16);
        }
    }
}

/// The source format of dates, times and timestamps.
fn date_format(err: &mut FieldErrs, f: &RawField, d: &mut Decoder) {
    let Some(fmt) = &f.format else { return };
    let kind = match d.ty {
        FieldType::Date => DateKind::Date,
        FieldType::Time => DateKind::Time,
        FieldType::Timestamp => DateKind::Timestamp,
        ty => return err.not_for("format", ty, false),
    };
    match DateFormat::new(fmt, kind) {
        Ok(df) => d.format = Some(df),
        Err(m) => err.push(m),
    }
}

/// The spellings of true and false.
fn boolean_spellings(err: &mut FieldErrs, f: &RawField, d: &mut Decoder) {
    let ty = d.ty;
    let bytes = |v: &[String]| v.iter().map(|s| s.as_bytes().into()).collect();
    if let Some(t) = &f.true_values {
        err.not_for("true", ty, ty == FieldType::Boolean);
        d.true_values = bytes(t);
    }
    if let Some(t) = &f.false_values {
        err.not_for("false", ty, ty == FieldType::Boolean);
        d.false_values = bytes(t);
    }
    if ty == FieldType::Boolean
        && d.true_values.iter().any(|t| d.false_values.contains(t))
    {
        err.push("a spelling is both true and false");
    }
}

/// `min` and `max`, in the field's own units.
fn bounds(err: &mut FieldErrs, f: &RawField, d: &mut Decoder) {
    for (which, v) in [("min", &f.min), ("max", &f.max)] {
        let Some(v) = v else { continue };
        match bound(d.ty, v) {
            Ok(b) if which == "min" => d.min = Some(b),
            Ok(b) => d.max = Some(b),
            Err(m) => err.push(format!("{which}: {m}")),
        }
    }
    if let (Some(Bound::Exact(a)), Some(Bound::Exact(b))) = (d.min, d.max)
        && a > b
    {
        err.push("min is larger than max");
    }
}

/// `pattern` and `allowed`.
fn value_checks(err: &mut FieldErrs, f: &RawField, d: &mut Decoder) {
    if let Some(p) = &f.pattern {
        match regex::bytes::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => d.pattern = Some(r),
            Err(m) => err.push(format!("bad pattern: {m}")),
        }
    }
    if let Some(a) = &f.allowed {
        if a.is_empty() {
            err.push("allowed lists no values");
        }
        d.allowed = Some(a.iter().map(|s| s.as_bytes().into()).collect());
    }
}

/// Converts a TOML min/max into the units of a field of type `ty`.
fn bound(ty: FieldType, v: &toml::Value) -> Result<Bound, String> {
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
        _ => Err(format!("min/max do not apply to type {}", ty.sql())),
    }
}
