//! Values for one field: what a real export would hold there, chosen from
//! the field's type, constraints and name (owner names, street addresses,
//! cities, codes, money, years, dates), with the quirks the parser must
//! handle (latin-1 letters, stray quotes, double spaces, padded keys,
//! `0000` years, empty optional fields).

use super::rng::Rng;
use crate::decode::{
    Bound, Decimal, Encoding, FieldType, Fraction, USECS_PER_DAY, days,
};
use crate::schema::{Format, Layout, Quoting};

/// A generated value, as the parser must decode it.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    /// NULL (written as the field's first null sentinel).
    Null,
    /// boolean
    Bool(bool),
    /// smallint, int, bigint
    Int(i64),
    /// numeric
    Numeric(Decimal),
    /// float8
    Float(f64),
    /// date: days since 2000-01-01
    Date(i32),
    /// timestamp: µs since 2000-01-01
    Timestamp(i64),
    /// time: µs since midnight
    Time(i64),
    /// text
    Text(String),
}

impl Datum {
    /// The value as the decoder returns it.
    pub fn as_value(&self) -> crate::decode::Value<'_> {
        use crate::decode::Value;
        match self {
            Datum::Null => Value::Null,
            Datum::Bool(b) => Value::Bool(*b),
            Datum::Int(i) => Value::Int(*i),
            Datum::Numeric(d) => Value::Numeric(*d),
            Datum::Float(f) => Value::Float(*f),
            Datum::Date(d) => Value::Date(*d),
            Datum::Timestamp(t) => Value::Timestamp(*t),
            Datum::Time(t) => Value::Time(*t),
            Datum::Text(s) => Value::Text(s),
        }
    }
}

/// What a field holds, guessed from its name and type.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owner or person/company name.
    Name,
    /// Street address.
    Street,
    /// City.
    City,
    /// US state.
    State,
    /// ZIP code (5 digits, or 4 for a `zip4`).
    Zip,
    /// Country.
    Country,
    /// Free text.
    Words,
    /// A short code.
    Code,
    /// A year (1900…the data year).
    Year,
    /// The data's own year (tax year, roll year).
    TaxYear,
    /// Money.
    Money,
    /// Areas, lengths, units.
    Measure,
    /// A percentage or share.
    Percent,
    /// Anything else.
    Generic,
}

fn role_of(name: &str, ty: FieldType) -> Role {
    let n = name.to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    let text = ty.is_text();
    let int =
        matches!(ty, FieldType::Smallint | FieldType::Int | FieldType::Bigint);
    if int
        && (n == "yr"
            || n == "tax_year"
            || n == "yr_roll"
            || n == "roll_yr"
            || n == "clerk_yr"
            || n == "prop_val_yr"
            || n == "appraisal_year"
            || n == "year")
    {
        return Role::TaxYear;
    }
    if (int || text)
        && (has("yr") || has("year") || has("erected"))
        && !has("pct")
    {
        return if int { Role::Year } else { Role::Code };
    }
    if text {
        if has("name") || has("mailto") || has("owner") || n == "aka" {
            return Role::Name;
        }
        if has("city") {
            return Role::City;
        }
        if has("state") && !has("status") {
            return Role::State;
        }
        if has("zip") {
            return Role::Zip;
        }
        if has("country") {
            return Role::Country;
        }
        if has("addr")
            || n == "str"
            || has("street")
            || n.starts_with("site_") && !has("num")
        {
            return Role::Street;
        }
        if has("dscr")
            || has("desc")
            || has("note")
            || has("lgl")
            || has("legal")
            || has("remark")
            || has("comment")
        {
            return Role::Words;
        }
        return Role::Code;
    }
    if has("pct") || has("percent") || has("rate") {
        return Role::Percent;
    }
    if has("val")
        || has("amt")
        || has("price")
        || has("cost")
        || has("rcn")
        || has("adj")
        || has("tax")
    {
        return Role::Money;
    }
    if has("ar")
        || has("area")
        || has("sq")
        || has("size")
        || has("acre")
        || has("length")
        || has("width")
        || has("units")
        || has("quantity")
        || has("perimeter")
    {
        return Role::Measure;
    }
    Role::Generic
}

const SURNAMES: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "WALKER",
    "NGUYEN",
    "TRAN",
    "PATEL",
    "KIM",
    "OKAFOR",
    "SCHULTZ",
    "MUELLER",
    "OBRIEN",
    "VILLARREAL",
    "SALINAS",
];
const ACCENTED_SURNAMES: &[&str] =
    &["PEÑA", "MUÑOZ", "NÚÑEZ", "IBÁÑEZ", "CASTAÑEDA", "BELTRÉ", "ZÚÑIGA"];
const FIRST: &[&str] = &[
    "JAMES",
    "MARY",
    "ROBERT",
    "PATRICIA",
    "JOHN",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "DAVID",
    "ELIZABETH",
    "MARIA",
    "JOSE",
    "JUAN",
    "ANA",
    "LUIS",
    "CARLOS",
    "NORMAN",
    "LESLIE",
    "WEI",
    "MINH",
    "PRIYA",
    "DANIEL",
    "SARAH",
];
const ACCENTED_FIRST: &[&str] = &["JOSÉ", "ANDRÉ", "RENÉ", "INÉS", "RAMÓN"];
const COMPANY: &[&str] = &[
    "HOLDINGS LLC",
    "PROPERTIES LP",
    "INVESTMENTS INC",
    "FAMILY TRUST",
    "REALTY CO",
    "PARTNERS LTD",
    "DEVELOPMENT CORP",
    "CAPITAL GROUP",
];
const STREETS: &[&str] = &[
    "MAIN",
    "OAK",
    "ELM",
    "PINE",
    "CEDAR",
    "MAPLE",
    "WESTHEIMER",
    "BELLAIRE",
    "GESSNER",
    "RICHMOND",
    "KIRBY",
    "SHEPHERD",
    "BINGLE",
    "TELEPHONE",
    "ALMEDA",
    "FANNIN",
    "MONTROSE",
    "WASHINGTON",
    "MEMORIAL",
    "BISSONNET",
];
const SUFFIXES: &[&str] =
    &["ST", "DR", "RD", "LN", "AVE", "BLVD", "CT", "WAY", "PKWY", "CIR"];
const CITIES: &[&str] = &[
    "HOUSTON",
    "PASADENA",
    "KATY",
    "SPRING",
    "HUMBLE",
    "BAYTOWN",
    "TOMBALL",
    "CYPRESS",
    "BELLAIRE",
    "SUGAR LAND",
    "AUSTIN",
    "DALLAS",
    "SAN ANTONIO",
    "BRYAN",
    "COLLEGE STATION",
    "KAUFMAN",
];
const WORDS: &[&str] = &[
    "RESIDENTIAL",
    "SINGLE",
    "FAMILY",
    "LOT",
    "BLOCK",
    "TRACT",
    "ABST",
    "SEC",
    "RESERVE",
    "UNIT",
    "FRAME",
    "MASONRY",
    "GARAGE",
    "DETACHED",
    "POOL",
    "PATIO",
    "CONCRETE",
    "CARPORT",
    "STORAGE",
    "COMMERCIAL",
    "VACANT",
    "LAND",
    "IMPROVEMENT",
    "ACRES",
    "SUBDIVISION",
    "HEIGHTS",
    "PARK",
    "ESTATES",
    "VILLAGE",
    "GOOD",
    "AVERAGE",
];
const STATES: &[&str] =
    &["TX", "TX", "TX", "TX", "TX", "TX", "CA", "LA", "OK", "FL", "NY"];

/// How values of one field are generated.
#[derive(Clone, Debug)]
pub struct FieldGen {
    role: Role,
    ty: FieldType,
    /// Most characters a text value may have (type and fixed width).
    max_chars: usize,
    /// Most digits a number may have (fixed width, sign kept in mind).
    max_digits: u32,
    scale: u16,
    nullable: bool,
    year: i32,
    min: Option<Bound>,
    max: Option<Bound>,
    /// Smallest time step the date/time format can write, in µs.
    resolution: i64,
    accents: bool,
    allowed: Option<Vec<String>>,
}

impl FieldGen {
    /// Generator settings for field `i` of `layout`, for data of `year`.
    pub fn new(layout: &Layout, i: usize, year: i32) -> FieldGen {
        let f = &layout.fields[i];
        let d = &f.decoder;
        let width = f.span.as_ref().map(|s| s.end - s.start);
        let type_chars = match d.ty {
            FieldType::Varchar(n) | FieldType::Char(n) => n as usize,
            _ => 60,
        };
        let max_chars = width.map_or(type_chars, |w| w.min(type_chars));
        let type_digits: u32 = match d.ty {
            FieldType::Smallint => 4,
            FieldType::Int => 9,
            FieldType::Bigint => 18,
            FieldType::Numeric(Some((p, _))) => p as u32,
            FieldType::Numeric(None) => 18,
            FieldType::Float8 => 9,
            _ => 18,
        };
        let scale = match (d.ty, d.fraction) {
            (FieldType::Numeric(Some((_, s))), Fraction::Implied(k)) => {
                s.min(k)
            }
            (FieldType::Numeric(Some((_, s))), Fraction::Literal) => s,
            (FieldType::Numeric(None), Fraction::Implied(k)) => k,
            (FieldType::Numeric(None), Fraction::Literal) => 2,
            _ => 0,
        };
        // A fixed-width number must fit its bytes with any point and sign.
        let max_digits = match width {
            Some(w) => {
                let point =
                    matches!(d.fraction, Fraction::Literal) && scale > 0;
                let overhead = point as usize
                    + matches!(
                        d.sign,
                        crate::decode::Sign::Leading
                            | crate::decode::Sign::Trailing
                    ) as usize;
                type_digits.min(w.saturating_sub(overhead) as u32)
            }
            None => type_digits,
        };
        let key = layout.key.contains(&i);
        // A fixed-width UTF-8 field counts bytes; keep it ASCII.
        let accents =
            !(layout.is_fixed() && layout.encoding == Encoding::Utf8);
        FieldGen {
            role: role_of(&f.name, d.ty),
            ty: d.ty,
            max_chars,
            max_digits,
            scale,
            // A lone delimited field left empty would be a blank line.
            nullable: !d.required
                && !key
                && !d.nulls.is_empty()
                && (layout.fields.len() != 1 || layout.is_fixed()),

            year,
            min: d.min,
            max: d.max,
            resolution: d
                .format
                .as_ref()
                .map_or(1_000_000, |f| f.resolution_usecs())
                .max(1),
            accents,

            allowed: d.allowed.as_ref().map(|v| {
                v.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            }),
        }
    }

    /// Limits values to `keep` (minus `drop`): a filter must let generated
    /// records through.
    pub fn restrict(&mut self, keep: &[Box<[u8]>], drop: &[Box<[u8]>]) {
        let v: Vec<String> = keep
            .iter()
            .filter(|k| !drop.contains(k))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        if !v.is_empty() {
            self.allowed = Some(v);
            self.nullable = false;
        }
    }

    /// Most digits a number of this field may have.
    pub fn max_digits(&self) -> u32 {
        self.max_digits
    }

    /// The field's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// A value for a field that is not part of a key.
    pub fn value(&self, rng: &mut Rng) -> Datum {
        if self.nullable && rng.chance(0.04) {
            return Datum::Null;
        }
        self.non_null(rng)
    }

    /// A value that is never NULL.
    pub fn non_null(&self, rng: &mut Rng) -> Datum {
        if let Some(a) = &self.allowed {
            return self.parse_allowed(&a[rng.below(a.len() as u64) as usize]);
        }
        match self.ty {
            FieldType::Text | FieldType::Varchar(_) | FieldType::Char(_) => {
                Datum::Text(self.text(rng))
            }
            FieldType::Smallint | FieldType::Int | FieldType::Bigint => {
                Datum::Int(self.int(rng))
            }
            FieldType::Numeric(_) => Datum::Numeric(self.numeric(rng)),
            FieldType::Float8 => {
                let v = rng.range(0, 1_000_000) as f64 / 100.0;
                Datum::Float(self.clamp_f(v))
            }
            FieldType::Boolean => Datum::Bool(rng.chance(0.5)),
            FieldType::Date => Datum::Date(self.date(rng)),
            FieldType::Timestamp => {
                let d = self.date(rng) as i64;
                let us = self.clock(rng);
                Datum::Timestamp(self.bounded(d * USECS_PER_DAY + us))
            }
            FieldType::Time => Datum::Time(self.bounded(self.clock(rng))),
        }
    }

    fn parse_allowed(&self, s: &str) -> Datum {
        match self.ty {
            FieldType::Smallint | FieldType::Int | FieldType::Bigint => {
                Datum::Int(s.trim().parse().unwrap_or(0))
            }
            _ => Datum::Text(s.to_owned()),
        }
    }

    fn limit_i(&self) -> (i128, i128) {
        let cap = 10i128.pow(self.max_digits.min(38)) - 1;
        let (tmin, tmax) = match self.ty {
            FieldType::Smallint => (i16::MIN as i128, i16::MAX as i128),
            FieldType::Int => (i32::MIN as i128, i32::MAX as i128),
            FieldType::Bigint => (i64::MIN as i128, i64::MAX as i128),
            _ => (-cap, cap),
        };
        let mut lo = tmin.max(-cap);
        let mut hi = tmax.min(cap);
        if let Some(Bound::Exact(m)) = self.min {
            lo = lo.max(m);
        }
        if let Some(Bound::Exact(m)) = self.max {
            hi = hi.min(m);
        }
        (lo, hi)
    }

    /// A time of day the format can express (whole units of its
    /// resolution).
    fn clock(&self, rng: &mut Rng) -> i64 {
        let us = rng.range(0, USECS_PER_DAY - 1);
        us - us % self.resolution
    }

    /// Within the declared min/max only (dates and times).
    fn bounded(&self, v: i64) -> i64 {
        let mut v = v as i128;
        if let Some(Bound::Exact(m)) = self.min {
            v = v.max(m);
        }
        if let Some(Bound::Exact(m)) = self.max {
            v = v.min(m);
        }
        v as i64
    }

    fn clamp_f(&self, v: f64) -> f64 {
        let f = |x: Bound| match x {
            Bound::Float(f) => f,
            Bound::Exact(e) => e as f64,
        };
        let mut v = v;
        if let Some(m) = self.min {
            v = v.max(f(m));
        }
        if let Some(m) = self.max {
            v = v.min(f(m));
        }
        v
    }

    fn int(&self, rng: &mut Rng) -> i64 {
        let v = match self.role {
            Role::TaxYear => self.year as i64,
            Role::Year => rng.range(1900, self.year as i64),
            Role::Money => rng.range(0, 900_000),
            Role::Measure => rng.range(100, 5_000),
            Role::Percent => rng.range(0, 100),
            Role::Zip => rng.range(77_001, 77_599),
            _ => rng.range(0, 9_999),
        };
        let (lo, hi) = self.limit_i();
        let v = v as i128;
        if v < lo || v > hi {
            // Out of the declared range: pick inside it instead.
            let span = (hi - lo).min(1_000_000) as u64;
            (lo + rng.below(span.max(1)) as i128) as i64
        } else {
            v as i64
        }
    }

    fn numeric(&self, rng: &mut Rng) -> Decimal {
        let scale = self.scale;
        let whole = match self.role {
            Role::Money => rng.range(0, 2_000_000),
            Role::Measure => rng.range(0, 20_000),
            Role::Percent => rng.range(0, 1),
            Role::Year | Role::TaxYear => rng.range(1900, self.year as i64),
            _ => rng.range(0, 10_000),
        } as i128;
        let frac = if scale == 0 {
            0
        } else {
            rng.below(10u64.pow(scale.min(18) as u32)) as i128
        };
        let mut m = whole * 10i128.pow(scale as u32) + frac;
        // Fit the digits a fixed-width field or the precision allows.
        let int_digits = match self.ty {
            FieldType::Numeric(Some((p, s))) => (p - s) as u32,
            _ => 18,
        };
        let cap_int = 10i128
            .pow(int_digits.min(self.max_digits.saturating_sub(scale as u32)));
        let cap = cap_int * 10i128.pow(scale as u32) - 1;
        if m > cap {
            m %= cap + 1;
        }
        if let Some(Bound::Exact(lo)) = self.min {
            m = m.max(lo);
        }
        if let Some(Bound::Exact(hi)) = self.max {
            m = m.min(hi);
        }
        let field_scale = match self.ty {
            FieldType::Numeric(Some((_, s))) => s,
            _ => scale,
        };
        // Express at the field's scale (the decoder rescales to it).
        let m = m * 10i128.pow((field_scale.saturating_sub(scale)) as u32);
        Decimal { mantissa: m, scale: field_scale }
    }

    fn date(&self, rng: &mut Rng) -> i32 {
        let lo = days(1950, 1, 1).unwrap_or(0);
        let hi = days(self.year.max(1951) as u32, 12, 31).unwrap_or(0);
        let mut d = rng.range(lo as i64, hi as i64) as i32;
        if let Some(Bound::Exact(m)) = self.min {
            d = d.max(m as i32);
        }
        if let Some(Bound::Exact(m)) = self.max {
            d = d.min(m as i32);
        }
        d
    }

    fn text(&self, rng: &mut Rng) -> String {
        let mut s = String::new();
        match self.role {
            Role::Name => {
                if rng.chance(0.15) {
                    s.push_str(pick(rng, SURNAMES));
                    s.push(' ');
                    s.push_str(pick(rng, COMPANY));
                } else {
                    let accent = self.accents && rng.chance(0.03);
                    s.push_str(if accent {
                        pick(rng, ACCENTED_SURNAMES)
                    } else {
                        pick(rng, SURNAMES)
                    });
                    s.push(' ');
                    s.push_str(if accent && rng.chance(0.5) {
                        pick(rng, ACCENTED_FIRST)
                    } else {
                        pick(rng, FIRST)
                    });
                    if rng.chance(0.5) {
                        s.push(' ');
                        s.push((b'A' + rng.below(26) as u8) as char);
                    }
                    if rng.chance(0.2) {
                        s.push_str(" & ");
                        s.push_str(pick(rng, FIRST));
                    }
                }
            }
            Role::Street => {
                s.push_str(&rng.range(1, 19_999).to_string());
                s.push(' ');
                if rng.chance(0.2) {
                    s.push_str(
                        ["N ", "S ", "E ", "W "][rng.below(4) as usize],
                    );
                }
                s.push_str(pick(rng, STREETS));
                s.push(' ');
                s.push_str(pick(rng, SUFFIXES));
                if rng.chance(0.05) {
                    s.push_str(&format!(" APT {}", rng.range(1, 999)));
                }
            }
            Role::City => s.push_str(pick(rng, CITIES)),
            Role::State => s.push_str(pick(rng, STATES)),
            Role::Zip => {
                let digits = if self.max_chars == 4 {
                    4
                } else {
                    5.min(self.max_chars)
                };
                let v = if digits == 5 {
                    rng.range(77_001, 79_999)
                } else {
                    rng.range(0, 9_999)
                };
                s.push_str(&format!("{v:0digits$}"));
            }
            Role::Country => {
                s.push_str(if rng.chance(0.98) { "US" } else { "MX" })
            }
            Role::Words => {
                let n = rng.range(1, 4);
                for i in 0..n {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(pick(rng, WORDS));
                }
            }
            Role::Code => {
                let n = rng.range(1, 4) as usize;
                for _ in 0..n {
                    let c = rng.below(36) as u8;
                    s.push(if c < 10 {
                        (b'0' + c) as char
                    } else {
                        (b'A' + c - 10) as char
                    });
                }
            }
            _ => {
                s.push_str(pick(rng, WORDS));
            }
        }
        fit(&mut s, self.max_chars);
        s
    }

    /// Most characters a text value may hold.
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// Cuts `s` to at most `n` characters, dropping trailing spaces.
pub(super) fn fit(s: &mut String, n: usize) {
    if s.chars().count() > n {
        let cut = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
        s.truncate(cut);
    }
    while s.ends_with(' ') {
        s.pop();
    }
    if s.is_empty() && n > 0 {
        s.push('X');
    }
}

/// Whether the layout allows the stray-quote quirk (no quoting at all).
pub(super) fn quotes_are_plain(layout: &Layout) -> bool {
    match &layout.format {
        Format::Delimited(d) => d.quoting == Quoting::None,
        Format::Fixed(_) => true,
    }
}
