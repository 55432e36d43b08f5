//! Typed conversion of one field's bytes: trimming, null sentinels,
//! numbers (implied decimals, overpunch), dates and times in declared
//! formats, text in a declared encoding, and the per-field checks
//! (required, range, pattern, allowed values).
//!
//! Everything here takes `&[u8]` and returns a [`Value`] borrowing either
//! the input or a caller's scratch buffer; nothing allocates per value on
//! the common path, and nothing knows of files, threads or PostgreSQL.

mod datetime;
mod number;
mod quick;
mod show;
mod simd;
pub(crate) mod swar;
mod text;

pub use datetime::{
    DateFormat, DateKind, USECS_PER_DAY, civil, days, days_in_month, is_leap,
};
pub use number::{
    Decimal, Fraction, Sign, decimal, float8, integer, push_integer,
};
pub use quick::{DateShape, Quick};
pub use show::{EXCERPT_CHARS, excerpt, excerpt_text, render_raw};
pub use text::{
    Encoding, TextOptions, char_len, decode as decode_text, plain_ascii,
    truncate_chars,
};

use std::fmt;

use crate::reject::Reason;

/// A decoded field value.
///
/// Dates, times and timestamps use PostgreSQL's own units so they can be
/// written to binary COPY as they are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `smallint`, `int` or `bigint` (already range-checked for the type).
    Int(i64),
    /// `numeric`, at the field's declared scale.
    Numeric(Decimal),
    /// `float8`.
    Float(f64),
    /// `date`: days since 2000-01-01.
    Date(i32),
    /// `timestamp`: microseconds since 2000-01-01 00:00:00.
    Timestamp(i64),
    /// `time`: microseconds since midnight.
    Time(i64),
    /// Text, `varchar(n)` or `char(n)`, as UTF-8.
    Text(&'a str),
}

impl fmt::Display for Value<'_> {
    /// PostgreSQL's text form of the value (`2024-02-29`, `12.50`,
    /// `true`); NULL shows as `NULL`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn clock(f: &mut fmt::Formatter<'_>, us: i64) -> fmt::Result {
            let s = us / 1_000_000;
            write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)?;
            let frac = us % 1_000_000;
            if frac != 0 {
                let t = format!("{frac:06}");
                write!(f, ".{}", t.trim_end_matches('0'))?;
            }
            Ok(())
        }
        match *self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if b { "true" } else { "false" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Numeric(d) => write!(f, "{d}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Date(d) => {
                let (y, m, dd) = civil(d);
                write!(f, "{y:04}-{m:02}-{dd:02}")
            }
            Value::Timestamp(t) => {
                let (y, m, dd) = civil(t.div_euclid(USECS_PER_DAY) as i32);
                write!(f, "{y:04}-{m:02}-{dd:02} ")?;
                clock(f, t.rem_euclid(USECS_PER_DAY))
            }
            Value::Time(t) => clock(f, t),
            Value::Text(s) => f.write_str(s),
        }
    }
}

/// The trimmed values that mean NULL, with a mask of their lengths so
/// that most values are told apart by length alone, without a loop over
/// the sentinels (measured: the loop was a quarter of `decode`'s time),
/// and short sentinels as words, so that a value of a sentinel's length
/// (a date against `00/00/0000`) is compared in two word compares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nulls {
    values: Vec<Box<[u8]>>,
    /// Bit `min(len, 63)` is set for each value's length.
    lens: u64,
    /// Each sentinel of at most 16 bytes: its length and
    /// [`swar::sixteen`] words (`None` for the empty value).
    short: Vec<(usize, Option<(u64, u64)>)>,
}

impl Nulls {
    /// Sentinels from a list.
    pub fn new(values: Vec<Box<[u8]>>) -> Nulls {
        let mut n = Nulls::default();
        for v in values {
            n.push(v);
        }
        n
    }

    /// Adds a sentinel.
    pub fn push(&mut self, v: Box<[u8]>) {
        self.lens |= Nulls::bit(v.len());
        if v.len() <= 16 {
            self.short.push((v.len(), swar::sixteen(&v)));
        }
        self.values.push(v);
    }

    /// Removes every sentinel (no value means NULL).
    pub fn clear(&mut self) {
        self.values.clear();
        self.short.clear();
        self.lens = 0;
    }

    #[inline]
    fn bit(len: usize) -> u64 {
        1 << len.min(63)
    }

    /// Whether `v` is one of the sentinels.
    #[inline]
    pub fn matches(&self, v: &[u8]) -> bool {
        if self.lens & Nulls::bit(v.len()) == 0 {
            return false;
        }
        if v.len() <= 16 {
            let w = swar::sixteen(v);
            self.short.iter().any(|&(n, s)| n == v.len() && s == w)
        } else {
            self.values.iter().any(|n| **n == *v)
        }
    }
}

impl std::ops::Deref for Nulls {
    type Target = [Box<[u8]>];
    fn deref(&self) -> &[Box<[u8]>] {
        &self.values
    }
}

/// Which sides of a value to strip spaces from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trim {
    /// Both sides (the default).
    #[default]
    Both,
    /// Leading spaces only.
    Left,
    /// Trailing spaces only.
    Right,
    /// Keep the value as it is.
    None,
}

impl Trim {
    /// The spelling used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Trim::Both => "both",
            Trim::Left => "left",
            Trim::Right => "right",
            Trim::None => "none",
        }
    }

    /// Strips spaces from text as declared.
    pub fn apply_str(self, s: &str) -> &str {
        match self {
            Trim::Both => s.trim_matches(' '),
            Trim::Left => s.trim_start_matches(' '),
            Trim::Right => s.trim_end_matches(' '),
            Trim::None => s,
        }
    }

    /// Strips spaces from `raw` as declared.
    #[inline]
    pub fn apply(self, raw: &[u8]) -> &[u8] {
        &raw[self.span(raw)]
    }

    /// Where `raw` is left once its spaces are stripped as declared.
    #[inline]
    pub fn span(self, raw: &[u8]) -> std::ops::Range<usize> {
        // Most values have no space at either end: nothing to look for
        // (the loops below cost 3-4% of validating the benches'
        // real_acct.txt, 27 numbers and dates a record).
        if let [first, .., last] = raw
            && *first != b' '
            && *last != b' '
        {
            return 0..raw.len();
        }
        let (mut s, mut e) = (0, raw.len());
        if matches!(self, Trim::Both | Trim::Left) {
            while s < e && raw[s] == b' ' {
                s += 1;
            }
        }
        if matches!(self, Trim::Both | Trim::Right) {
            while e > s && raw[e - 1] == b' ' {
                e -= 1;
            }
        }
        s..e
    }
}

/// A field's declared SQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// `text`.
    Text,
    /// `varchar(n)`.
    Varchar(u32),
    /// `char(n)` (blank-padded by PostgreSQL).
    Char(u32),
    /// `smallint`.
    Smallint,
    /// `int`.
    Int,
    /// `bigint`.
    Bigint,
    /// `numeric(p,s)`; `None` is unconstrained `numeric`.
    Numeric(Option<(u16, u16)>),
    /// `float8`.
    Float8,
    /// `boolean`.
    Boolean,
    /// `date`.
    Date,
    /// `timestamp` (without time zone).
    Timestamp,
    /// `time` (without time zone).
    Time,
}

impl FieldType {
    /// Parses a schema spelling (`varchar(13)`, `numeric(14,2)`, `int`,
    /// `integer`, `int4`, `float8`, `double precision`, …).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(s: &str) -> Result<FieldType, String> {
        let t = s.trim().to_ascii_lowercase();
        let (base, args) = match t.find('(') {
            Some(i) => {
                let Some(inner) = t[i + 1..].strip_suffix(')') else {
                    return Err(format!("type {s:?}: missing ')'"));
                };
                (t[..i].trim(), Some(inner))
            }
            None => (t.as_str(), None),
        };
        let nums = |args: &str| -> Result<Vec<u32>, String> {
            args.split(',')
                .map(|a| {
                    a.trim().parse::<u32>().map_err(|_| {
                        format!("type {s:?}: {a:?} is not a whole number")
                    })
                })
                .collect()
        };
        let ty = match (base, args) {
            ("text", None) => FieldType::Text,
            ("varchar" | "character varying", Some(a)) => {
                match nums(a)?.as_slice() {
                    [n] if *n >= 1 => FieldType::Varchar(*n),
                    _ => {
                        return Err(format!(
                            "type {s:?}: varchar takes one length ≥ 1"
                        ));
                    }
                }
            }
            ("char" | "character", Some(a)) => match nums(a)?.as_slice() {
                [n] if *n >= 1 => FieldType::Char(*n),
                _ => {
                    return Err(format!(
                        "type {s:?}: char takes one length ≥ 1"
                    ));
                }
            },
            ("char" | "character", None) => FieldType::Char(1),
            ("smallint" | "int2", None) => FieldType::Smallint,
            ("int" | "integer" | "int4", None) => FieldType::Int,
            ("bigint" | "int8", None) => FieldType::Bigint,
            ("numeric" | "decimal", None) => FieldType::Numeric(None),
            ("numeric" | "decimal", Some(a)) => {
                let v = nums(a)?;
                let (p, sc) = match v.as_slice() {
                    [p] => (*p, 0),
                    [p, sc] => (*p, *sc),
                    _ => {
                        return Err(format!(
                            "type {s:?}: numeric takes (precision) or (precision, scale)"
                        ));
                    }
                };
                if p == 0 || p > Decimal::MAX_PRECISION as u32 {
                    return Err(format!(
                        "type {s:?}: precision must be 1 to {}",
                        Decimal::MAX_PRECISION
                    ));
                }
                if sc > p {
                    return Err(format!(
                        "type {s:?}: scale is larger than precision"
                    ));
                }
                FieldType::Numeric(Some((p as u16, sc as u16)))
            }
            ("float8" | "double precision" | "float", None) => {
                FieldType::Float8
            }
            ("boolean" | "bool", None) => FieldType::Boolean,
            ("date", None) => FieldType::Date,
            ("timestamp" | "timestamp without time zone", None) => {
                FieldType::Timestamp
            }
            ("time" | "time without time zone", None) => FieldType::Time,
            _ => return Err(format!("unknown type {s:?}")),
        };
        Ok(ty)
    }

    /// The PostgreSQL spelling, as used in DDL (`varchar(13)`).
    pub fn sql(&self) -> String {
        match self {
            FieldType::Text => "text".into(),
            FieldType::Varchar(n) => format!("varchar({n})"),
            FieldType::Char(n) => format!("char({n})"),
            FieldType::Smallint => "smallint".into(),
            FieldType::Int => "integer".into(),
            FieldType::Bigint => "bigint".into(),
            FieldType::Numeric(None) => "numeric".into(),
            FieldType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            FieldType::Float8 => "double precision".into(),
            FieldType::Boolean => "boolean".into(),
            FieldType::Date => "date".into(),
            FieldType::Timestamp => "timestamp without time zone".into(),
            FieldType::Time => "time without time zone".into(),
        }
    }

    /// The name PostgreSQL's `format_type` gives the column's type, for
    /// comparing an existing table with the schema.
    pub fn pg_format_type(&self) -> String {
        match self {
            FieldType::Varchar(n) => format!("character varying({n})"),
            FieldType::Char(n) => format!("character({n})"),
            other => other.sql(),
        }
    }

    /// Whether values are text.
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            FieldType::Text | FieldType::Varchar(_) | FieldType::Char(_)
        )
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// What to do with text longer than `varchar(n)`/`char(n)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Reject the record (the default).
    #[default]
    Reject,
    /// Keep the first `n` characters.
    Truncate,
}

/// A range bound, compared in the field's own units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// Integers, numeric mantissas at the field's scale, days, microseconds.
    Exact(i128),
    /// Floats and unconstrained numerics.
    Float(f64),
}

/// Everything needed to turn one field's bytes into a [`Value`]: the type
/// and the declared conversions and checks. Built by the schema loader.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// The SQL type.
    pub ty: FieldType,
    /// Spaces to strip.
    pub trim: Trim,
    /// Encoding, collapsing and case for text.
    pub text: TextOptions,
    /// Sign convention for numbers.
    pub sign: Sign,
    /// Fraction convention for `numeric`.
    pub fraction: Fraction,
    /// Date/time format for `date`, `time`, `timestamp`.
    pub format: Option<DateFormat>,
    /// Trimmed values that mean NULL.
    pub nulls: Nulls,
    /// NULL is a reject.
    pub required: bool,
    /// Over-length text policy.
    pub overflow: Overflow,
    /// Spellings of true (compared ignoring ASCII case).
    pub true_values: Vec<Box<[u8]>>,
    /// Spellings of false (compared ignoring ASCII case).
    pub false_values: Vec<Box<[u8]>>,
    /// Inclusive minimum.
    pub min: Option<Bound>,
    /// Inclusive maximum.
    pub max: Option<Bound>,
    /// The whole value (text after conversion, others trimmed) must match.
    pub pattern: Option<regex::bytes::Regex>,
    /// The value (as for `pattern`) must be one of these.
    pub allowed: Option<Vec<Box<[u8]>>>,
}

impl Decoder {
    /// A decoder for `ty` with every option at its default.
    pub fn new(ty: FieldType) -> Decoder {
        let format = match ty {
            FieldType::Date => {
                DateFormat::new("YYYY-MM-DD", DateKind::Date).ok()
            }
            FieldType::Timestamp => {
                DateFormat::new("YYYY-MM-DD HH:MI:SS", DateKind::Timestamp)
                    .ok()
            }
            FieldType::Time => {
                DateFormat::new("HH:MI:SS", DateKind::Time).ok()
            }
            _ => None,
        };
        let spell =
            |v: &[&str]| v.iter().map(|s| s.as_bytes().into()).collect();
        Decoder {
            ty,
            trim: Trim::Both,
            text: TextOptions::default(),
            sign: Sign::Leading,
            fraction: Fraction::Literal,
            format,
            nulls: Nulls::new(vec![Box::from(&b""[..])]),
            required: false,
            overflow: Overflow::Reject,
            true_values: spell(&["Y", "YES", "T", "TRUE", "1"]),
            false_values: spell(&["N", "NO", "F", "FALSE", "0"]),
            min: None,
            max: None,
            pattern: None,
            allowed: None,
        }
    }

    /// The value of `raw` when decoding would only trim it: text of bytes
    /// 0x01-0x7F, not NULL, within its length, without checks,
    /// collapsing or case. `None` means: decode it. (Cheaper than
    /// [`Decoder::decode`] for a value whose every check is known to pass
    /// but that is needed, such as a key.)
    #[inline]
    pub fn plain_text<'a>(&self, raw: &'a [u8]) -> Option<&'a str> {
        let limit = match self.ty {
            FieldType::Text => usize::MAX,
            FieldType::Varchar(n) | FieldType::Char(n) => n as usize,
            _ => return None,
        };
        if self.pattern.is_some()
            || self.allowed.is_some()
            || self.min.is_some()
            || self.max.is_some()
            || self.text.collapse_spaces
            || self.text.upper
        {
            return None;
        }
        let v = self.trim.apply(raw);
        let plain = v.len() <= limit && text::plain_ascii(v);
        (plain && !self.nulls.matches(v)).then(|| simd::ascii_str(v))
    }

    /// Decodes one field.
    ///
    /// `raw` is the field's bytes as sliced from the record; `scratch` is
    /// reused by the caller across fields and records.
    ///
    /// # Errors
    /// The [`Reason`] the value is rejected for.
    #[inline]
    pub fn decode<'a>(
        &self,
        raw: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<Value<'a>, Reason> {
        let v = self.trim.apply(raw);
        if self.nulls.matches(v) {
            return if self.required {
                Err(Reason::Required)
            } else {
                Ok(Value::Null)
            };
        }
        let value = match self.ty {
            FieldType::Text | FieldType::Varchar(_) | FieldType::Char(_) => {
                let s = text::decode(v, self.text, scratch)?;
                let s = match self.ty {
                    // No more bytes than the limit means no more
                    // characters: only longer values are counted.
                    FieldType::Varchar(n) | FieldType::Char(n)
                        if s.len() > n as usize =>
                    {
                        let len = char_len(s);
                        if len > n as usize {
                            match self.overflow {
                                Overflow::Reject => {
                                    return Err(Reason::TooLong {
                                        len: len as u32,
                                        max: n,
                                    });
                                }
                                // Cut, then trimmed again: the cut may end
                                // (or start) on a space the trim removes.
                                Overflow::Truncate => self
                                    .trim
                                    .apply_str(truncate_chars(s, n as usize)),
                            }
                        } else {
                            s
                        }
                    }
                    _ => s,
                };
                if self.allowed.is_some() || self.pattern.is_some() {
                    self.check_text(s.as_bytes())?;
                }
                return Ok(Value::Text(s));
            }
            FieldType::Smallint => Value::Int(integer(
                v,
                self.sign,
                i16::MIN as i64,
                i16::MAX as i64,
            )?),
            FieldType::Int => Value::Int(integer(
                v,
                self.sign,
                i32::MIN as i64,
                i32::MAX as i64,
            )?),
            FieldType::Bigint => {
                Value::Int(integer(v, self.sign, i64::MIN, i64::MAX)?)
            }
            FieldType::Numeric(ps) => {
                let (p, s) = match ps {
                    Some((p, s)) => (p, Some(s)),
                    None => (0, None),
                };
                Value::Numeric(decimal(v, self.sign, self.fraction, p, s)?)
            }
            FieldType::Float8 => Value::Float(float8(v, self.sign)?),
            FieldType::Boolean => {
                if self.true_values.iter().any(|t| t.eq_ignore_ascii_case(v)) {
                    Value::Bool(true)
                } else if self
                    .false_values
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(v))
                {
                    Value::Bool(false)
                } else {
                    return Err(Reason::InvalidBoolean);
                }
            }
            FieldType::Date => Value::Date(self.date_format().date(v)?),
            FieldType::Timestamp => {
                Value::Timestamp(self.date_format().timestamp(v)?)
            }
            FieldType::Time => Value::Time(self.date_format().time(v)?),
        };
        self.check_range(&value)?;
        if self.allowed.is_some() || self.pattern.is_some() {
            self.check_text(v)?;
        }
        Ok(value)
    }

    fn date_format(&self) -> &DateFormat {
        // The loader always sets a format for date/time types.
        self.format.as_ref().expect("date/time decoder without a format")
    }

    #[inline]
    #[cold]
    fn check_text(&self, v: &[u8]) -> Result<(), Reason> {
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| **a == *v)
        {
            return Err(Reason::NotAllowed);
        }
        if let Some(p) = &self.pattern
            && !p.is_match(v)
        {
            return Err(Reason::PatternMismatch);
        }
        Ok(())
    }

    #[inline]
    fn check_range(&self, v: &Value<'_>) -> Result<(), Reason> {
        if self.min.is_none() && self.max.is_none() {
            return Ok(());
        }
        let (exact, float) = match *v {
            Value::Int(i) => (Some(i as i128), i as f64),
            Value::Numeric(d) => (
                Some(d.mantissa),
                d.mantissa as f64 / 10f64.powi(d.scale as i32),
            ),
            Value::Float(f) => (None, f),
            Value::Date(d) => (Some(d as i128), d as f64),
            Value::Timestamp(t) | Value::Time(t) => {
                (Some(t as i128), t as f64)
            }
            _ => return Ok(()),
        };
        let below = |b: Bound| match (b, exact) {
            (Bound::Exact(m), Some(x)) => x < m,
            (Bound::Exact(m), None) => float < m as f64,
            (Bound::Float(m), _) => float < m,
        };
        let above = |b: Bound| match (b, exact) {
            (Bound::Exact(m), Some(x)) => x > m,
            (Bound::Exact(m), None) => float > m as f64,
            (Bound::Float(m), _) => float > m,
        };
        if self.min.is_some_and(below) {
            return Err(Reason::BelowMin);
        }
        if self.max.is_some_and(above) {
            return Err(Reason::AboveMax);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec<'a>(
        d: &Decoder,
        raw: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<Value<'a>, Reason> {
        d.decode(raw, scratch)
    }

    #[test]
    fn types_and_nulls() {
        let mut s = Vec::new();
        let mut d = Decoder::new(FieldType::Varchar(13));
        assert_eq!(
            dec(&d, b"1161530010003            ", &mut s),
            Ok(Value::Text("1161530010003"))
        );
        assert_eq!(dec(&d, b"   ", &mut s), Ok(Value::Null));
        d.required = true;
        assert_eq!(dec(&d, b"   ", &mut s), Err(Reason::Required));
        assert_eq!(
            dec(&d, b"11615300100031", &mut s),
            Err(Reason::TooLong { len: 14, max: 13 })
        );
        d.overflow = Overflow::Truncate;
        assert_eq!(
            dec(&d, b"11615300100031", &mut s),
            Ok(Value::Text("1161530010003"))
        );

        let mut y = Decoder::new(FieldType::Smallint);
        y.nulls.push(Box::from(&b"0000"[..]));
        assert_eq!(dec(&y, b"0000", &mut s), Ok(Value::Null));
        assert_eq!(dec(&y, b"1987", &mut s), Ok(Value::Int(1987)));
        assert_eq!(dec(&y, b"99999", &mut s), Err(Reason::Overflow));

        let mut b = Decoder::new(FieldType::Boolean);
        assert_eq!(dec(&b, b"y", &mut s), Ok(Value::Bool(true)));
        assert_eq!(dec(&b, b"0", &mut s), Ok(Value::Bool(false)));
        assert_eq!(dec(&b, b"maybe", &mut s), Err(Reason::InvalidBoolean));
        b.true_values = vec![Box::from(&b"X"[..])];
        assert_eq!(dec(&b, b"Y", &mut s), Err(Reason::InvalidBoolean));
    }

    #[test]
    fn checks() {
        let mut s = Vec::new();
        let mut d = Decoder::new(FieldType::Numeric(Some((14, 2))));
        d.fraction = Fraction::Implied(2);
        d.min = Some(Bound::Exact(0));
        d.max = Some(Bound::Exact(100_000));
        assert!(matches!(
            dec(&d, b"00000000012345", &mut s),
            Ok(Value::Numeric(_))
        ));
        assert_eq!(dec(&d, b"00000000100001", &mut s), Err(Reason::AboveMax));
        assert_eq!(dec(&d, b"-1", &mut s), Err(Reason::BelowMin));

        let mut t = Decoder::new(FieldType::Text);
        t.pattern = Some(regex::bytes::Regex::new("^(?:[0-9]{13})$").unwrap());
        assert_eq!(
            dec(&t, b"0660640130020", &mut s),
            Ok(Value::Text("0660640130020"))
        );
        assert_eq!(
            dec(&t, b"066064013002X", &mut s),
            Err(Reason::PatternMismatch)
        );
        let mut a = Decoder::new(FieldType::Char(2));
        a.allowed = Some(vec![Box::from(&b"TX"[..])]);
        assert_eq!(dec(&a, b"TX", &mut s), Ok(Value::Text("TX")));
        assert_eq!(dec(&a, b"OK", &mut s), Err(Reason::NotAllowed));

        let mut dt = Decoder::new(FieldType::Date);
        dt.format =
            Some(DateFormat::new("MM/DD/YYYY", DateKind::Date).unwrap());
        assert_eq!(
            dec(&dt, b"02/30/2024", &mut s),
            Err(Reason::ImpossibleDate)
        );
        assert_eq!(dec(&dt, b"01/01/2000", &mut s), Ok(Value::Date(0)));
    }

    #[test]
    fn field_types_parse() {
        assert_eq!(
            FieldType::parse("varchar(13)"),
            Ok(FieldType::Varchar(13))
        );
        assert_eq!(
            FieldType::parse("NUMERIC(14, 2)"),
            Ok(FieldType::Numeric(Some((14, 2))))
        );
        assert_eq!(FieldType::parse("int"), Ok(FieldType::Int));
        assert!(FieldType::parse("numbr(12,2)").is_err());
        assert!(FieldType::parse("numeric(2,3)").is_err());
        assert!(FieldType::parse("numeric(40,2)").is_err());
        assert!(FieldType::parse("varchar(0)").is_err());
        assert!(FieldType::parse("varchar(x)").is_err());
        for t in [
            "text",
            "varchar(5)",
            "char(2)",
            "smallint",
            "integer",
            "bigint",
            "numeric(10,2)",
            "numeric",
            "float8",
            "boolean",
            "date",
            "timestamp",
            "time",
        ] {
            let ty = FieldType::parse(t).unwrap();
            assert_eq!(FieldType::parse(&ty.sql()), Ok(ty));
        }
    }
}
