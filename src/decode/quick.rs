//! Validity without a value: for a caller that only needs to know that a
//! field is valid (validation), a test much cheaper than decoding that
//! accepts the common spellings of valid values (`830725.82`, `2025`,
//! `07/26/1966`, a short plain-ASCII text) and leaves everything else to
//! [`Decoder::decode`], which also names the reason for a reject. A
//! [`Quick`] never accepts a value that decoding rejects.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::simd;
use super::{
    Decoder, FieldType, Fraction, Overflow, Sign, Trim, plain_ascii, swar,
};

/// A field's quick validity test; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quick {
    /// No shortcut: decode the value.
    Decode,
    /// Always valid.
    Valid,
    /// Valid when the raw value is shorter than this many bytes.
    Shorter(usize),
    /// Valid when the raw value is shorter than this many bytes, all of
    /// them 0x01-0x7F (text, on a record that has other bytes).
    Ascii(usize),
    /// Valid when the trimmed value is 1 to `max` ASCII digits, or empty
    /// when `empty` (the empty value is NULL).
    Digits {
        /// Spaces to strip first.
        trim: Trim,
        /// Most digits (at most 16).
        max: u8,
        /// Whether the empty value is valid.
        empty: bool,
    },
    /// Valid when the trimmed value is digits with at most one `.`, at
    /// most `int` before it and `frac` after it, 16 bytes at most; or
    /// empty when `empty`.
    Decimal {
        /// Spaces to strip first.
        trim: Trim,
        /// Most integer digits.
        int: u8,
        /// Most fraction digits.
        frac: u8,
        /// Whether the empty value is valid.
        empty: bool,
    },
    /// Valid when the trimmed value is a real calendar date with every
    /// number of the format at full width; or empty when `empty`.
    Date {
        /// Spaces to strip first.
        trim: Trim,
        /// Where the numbers and literals sit.
        shape: DateShape,
        /// Whether the empty value is valid.
        empty: bool,
    },
}

impl Quick {
    /// The test for `d`; `plain` when every value it will see holds only
    /// bytes 0x01-0x7F, which no text check can fault unless the field is
    /// required, has a pattern or allowed values, or is longer than its
    /// `varchar(n)`/`char(n)` (trimming and collapsing only shorten a
    /// value, and ASCII has a byte per character). Without `plain`, each
    /// text value is looked at for such bytes ([`Quick::Ascii`]).
    pub fn of(d: &Decoder, plain: bool) -> Quick {
        if d.required
            || d.pattern.is_some()
            || d.allowed.is_some()
            || d.min.is_some()
            || d.max.is_some()
        {
            return Quick::Decode;
        }
        let trim = d.trim;
        let empty = d.nulls.matches(b"");
        let digits =
            |max: u16| Quick::Digits { trim, max: max.min(16) as u8, empty };
        // Overpunched numbers end in a sign letter; they always decode.
        let signs = d.sign != Sign::Overpunch;
        // Text of bytes 0x01-0x7F is valid up to its length limit.
        let text = |limit: Option<u32>| match (limit, plain) {
            (None, true) => Quick::Valid,
            (Some(n), true) => Quick::Shorter(n as usize + 1),
            (None, false) => Quick::Ascii(usize::MAX),
            (Some(n), false) => Quick::Ascii(n as usize + 1),
        };
        match d.ty {
            FieldType::Text => text(None),
            FieldType::Varchar(n) | FieldType::Char(n) => match d.overflow {
                Overflow::Truncate => text(None),
                Overflow::Reject => text(Some(n)),
            },
            FieldType::Smallint if signs => digits(4),
            FieldType::Int if signs => digits(9),
            FieldType::Bigint if signs => digits(18),
            FieldType::Numeric(Some((p, s))) if signs => match d.fraction {
                Fraction::Literal => Quick::Decimal {
                    trim,
                    int: (p - s).min(16) as u8,
                    frac: s.min(16) as u8,
                    empty,
                },
                // Fewer places than the scale pad with zeros; more must
                // be zeros, which only decoding tells.
                Fraction::Implied(places) if places <= s => {
                    digits(p - s + places)
                }
                Fraction::Implied(_) => Quick::Decode,
            },
            FieldType::Date => match d.format.as_ref().and_then(|f| f.shape())
            {
                Some(shape) => Quick::Date { trim, shape, empty },
                None => Quick::Decode,
            },
            _ => Quick::Decode,
        }
    }

    /// [`Quick::kind`] of [`Quick::Decode`].
    pub const KIND_DECODE: u8 = 0;
    /// [`Quick::kind`] of [`Quick::Valid`].
    pub const KIND_VALID: u8 = 1;
    /// [`Quick::kind`] of [`Quick::Shorter`].
    pub const KIND_SHORTER: u8 = 2;
    /// [`Quick::kind`] of [`Quick::Digits`].
    pub const KIND_DIGITS: u8 = 3;
    /// [`Quick::kind`] of [`Quick::Decimal`].
    pub const KIND_DECIMAL: u8 = 4;
    /// [`Quick::kind`] of [`Quick::Date`].
    pub const KIND_DATE: u8 = 5;
    /// [`Quick::kind`] of [`Quick::Ascii`].
    pub const KIND_ASCII: u8 = 6;

    /// The kind of test, as a small number: for grouping tests of a kind.
    pub fn kind(&self) -> u8 {
        match self {
            Quick::Decode => Quick::KIND_DECODE,
            Quick::Valid => Quick::KIND_VALID,
            Quick::Shorter(_) => Quick::KIND_SHORTER,
            Quick::Digits { .. } => Quick::KIND_DIGITS,
            Quick::Decimal { .. } => Quick::KIND_DECIMAL,
            Quick::Date { .. } => Quick::KIND_DATE,
            Quick::Ascii(_) => Quick::KIND_ASCII,
        }
    }

    /// Whether `buf[span]` is certainly valid. `false` means only that
    /// the value must be decoded to know. The bytes of `buf` before the
    /// value may be read (never used): passing the whole record spares
    /// a branch on the value's length.
    #[inline(always)]
    pub fn accepts(&self, buf: &[u8], span: Range<usize>) -> bool {
        match self.kind() {
            Quick::KIND_DECODE => false,
            Quick::KIND_VALID => true,
            k => self.accepts_as(k, buf, span),
        }
    }

    /// As [`Quick::accepts`] for a test known to be of kind `kind` (a
    /// constant where this is inlined, so that a loop over tests of one
    /// kind compiles to that kind's test alone); `false` for a test of
    /// another kind.
    #[inline(always)]
    pub fn accepts_as(
        &self,
        kind: u8,
        buf: &[u8],
        span: Range<usize>,
    ) -> bool {
        let (trim, empty) = match (kind, *self) {
            (Quick::KIND_SHORTER, Quick::Shorter(n)) => return span.len() < n,
            (Quick::KIND_ASCII, Quick::Ascii(n)) => {
                return span.len() < n && plain_ascii(&buf[span]);
            }
            (Quick::KIND_DIGITS, Quick::Digits { trim, empty, .. })
            | (Quick::KIND_DECIMAL, Quick::Decimal { trim, empty, .. })
            | (Quick::KIND_DATE, Quick::Date { trim, empty, .. }) => {
                (trim, empty)
            }
            _ => return false,
        };
        let v = trim.span(&buf[span.clone()]);
        let (start, end) = (span.start + v.start, span.start + v.end);
        let n = end - start;
        if n == 0 {
            return empty;
        }
        // A number with 16 bytes of the record ending where it ends: one
        // vector load and two compares.
        #[cfg(target_arch = "x86_64")]
        if end >= 16 && n <= 16 {
            let w = buf[end - 16..end].try_into().expect("16 bytes");
            match (kind, *self) {
                (Quick::KIND_DIGITS, Quick::Digits { max, .. }) => {
                    return number_in(w, n, max, 0, false);
                }
                (Quick::KIND_DECIMAL, Quick::Decimal { int, frac, .. }) => {
                    return number_in(w, n, int, frac, true);
                }
                _ => {}
            }
        }
        let Some((head, tail)) = swar::sixteen_in(buf, start, end) else {
            return false;
        };
        match (kind, *self) {
            (Quick::KIND_DIGITS, Quick::Digits { max, .. }) => {
                n <= max as usize && swar::digits_only(head, tail)
            }
            (Quick::KIND_DECIMAL, Quick::Decimal { int, frac, .. }) => {
                decimal(head, tail, n, int, frac)
            }
            (Quick::KIND_DATE, Quick::Date { shape, .. }) => {
                shape.accepts(head, tail, n)
            }
            _ => false,
        }
    }
}

/// Whether the last `n` (1 to 16) of the 16 bytes `w` are digits, at
/// most `int` of them, or (when `point`) digits with one point, at most
/// `int` before it and `frac` after, and a digit somewhere: what
/// [`decimal`] and [`swar::digits_only`] decide from two words, from the
/// masks of [`simd::digits_and_points`] (one SSE2 register).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn number_in(w: &[u8; 16], n: usize, int: u8, frac: u8, point: bool) -> bool {
    let (digits, points) = simd::digits_and_points(w);
    // Bit j for byte j; the value is bits 16 - n to 15.
    let value = 0xFFFF & !((1u32 << (16 - n)) - 1);
    let other = !digits & value;
    if other == 0 {
        return fits(n, None, int, frac);
    }
    // The one byte that is not a digit is a point, `after` digits from
    // the end.
    let after = 15 - other.trailing_zeros() as usize;
    point
        && other & (other - 1) == 0
        && other & points != 0
        && fits(n, Some(after), int, frac)
}

/// Whether `n` bytes of digits, with a point `after` digits from the end
/// when there is one, have at most `int` digits before the point and
/// `frac` after it, and a digit somewhere.
#[inline(always)]
fn fits(n: usize, after: Option<usize>, int: u8, frac: u8) -> bool {
    match after {
        None => n <= int as usize,
        Some(a) => n >= 2 && a <= frac as usize && n - 1 - a <= int as usize,
    }
}

/// Whether the `n` bytes in [`swar::sixteen`]'s words are digits with at
/// most one point, at most `int` digits before it and `frac` after, and a
/// digit somewhere.
#[inline]
fn decimal(head: u64, tail: u64, n: usize, int: u8, frac: u8) -> bool {
    let (ph, pt) = (swar::equal(head, b'.'), swar::equal(tail, b'.'));
    // Points turned into '0' (bit 7 of a flagged byte, moved to bit 0,
    // times the bits that differ), so that one test finds other bytes.
    let swap = (b'.' ^ b'0') as u64;
    let (h, t) = (head ^ ((ph >> 7) * swap), tail ^ ((pt >> 7) * swap));
    if !swar::digits_only(h, t) {
        return false;
    }
    // The value's last byte is byte 15 of the two words. (`x & (x - 1)`
    // is zero for at most one flag: no population count, which a build
    // for any x86-64 would emulate.)
    let one = |x: u64| x & x.wrapping_sub(1) == 0;
    let after = match (ph, pt) {
        (0, 0) => None,
        (_, 0) if one(ph) => Some(15 - ph.trailing_zeros() as usize / 8),
        (0, _) if one(pt) => Some(7 - pt.trailing_zeros() as usize / 8),
        _ => return false,
    };
    fits(n, after, int, frac)
}

/// A date format whose numbers are the year, month and day at fixed
/// offsets, with single-byte literals between them, at most 16 bytes:
/// what [`Quick::Date`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateShape {
    width: u8,
    /// Literal bytes in [`swar::sixteen`]'s words (0xFF per byte) and
    /// their values.
    lit_mask: (u64, u64),
    lit: (u64, u64),
    /// Offsets of the first digit of the year, month and day in the
    /// sixteen bytes of the words.
    year: u8,
    month: u8,
    day: u8,
}

impl DateShape {
    /// The shape of a date `width` bytes long with the year, month and day
    /// at these offsets and these literals; `None` when longer than 16.
    pub(super) fn new(
        width: usize,
        [year, month, day]: [usize; 3],
        literals: &[(u8, u8)],
    ) -> Option<DateShape> {
        if !(1..=16).contains(&width) {
            return None;
        }
        let pad = 16 - width;
        let (mut lit_mask, mut lit) = ([0u64; 2], [0u64; 2]);
        for &(at, c) in literals {
            let i = pad + at as usize;
            lit_mask[i / 8] |= 0xFF << (8 * (i % 8));
            lit[i / 8] |= (c as u64) << (8 * (i % 8));
        }
        let at = |x: usize| (pad + x) as u8;
        Some(DateShape {
            width: width as u8,
            lit_mask: (lit_mask[0], lit_mask[1]),
            lit: (lit[0], lit[1]),
            year: at(year),
            month: at(month),
            day: at(day),
        })
    }

    /// Whether the `n` bytes in [`swar::sixteen`]'s words are a date of
    /// this shape that exists.
    #[inline]
    fn accepts(&self, head: u64, tail: u64, n: usize) -> bool {
        if n != self.width as usize {
            return false;
        }
        let (mh, mt) = self.lit_mask;
        if head & mh != self.lit.0 || tail & mt != self.lit.1 {
            return false;
        }
        // Literals turned into '0', then every byte must be a digit.
        let zeros = swar::ZEROS;
        let (h, t) =
            ((head & !mh) | (zeros & mh), (tail & !mt) | (zeros & mt));
        if !swar::digits_only(h, t) {
            return false;
        }
        let (h, t) = (h - zeros, t - zeros);
        let at = |i: u8| -> u32 {
            let w = if i < 8 { h } else { t };
            (w >> (8 * (i % 8)) & 0xFF) as u32
        };
        let two = |i: u8| at(i) * 10 + at(i + 1);
        let y = two(self.year) * 100 + two(self.year + 2);
        let (m, d) = (two(self.month), two(self.day));
        // Every month has 28 days: its length is looked up only for a
        // later day.
        y != 0
            && (1..=12).contains(&m)
            && ((1..=28).contains(&d)
                || d > 28 && d <= super::datetime::days_in_month(y, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DateFormat, DateKind, Value};

    impl Quick {
        fn ok(&self, v: &[u8]) -> bool {
            // Behind bytes the test must not take for the value's.
            let mut buf = b"9.9/9.9/9.9/9.9/9.9/".to_vec();
            buf.extend_from_slice(v);
            let whole = self.accepts(&buf, buf.len() - v.len()..buf.len());
            assert_eq!(whole, self.accepts(v, 0..v.len()), "{v:?}");
            whole
        }
    }

    fn decoder(ty: &str) -> Decoder {
        Decoder::new(FieldType::parse(ty).expect("type"))
    }

    #[test]
    fn common_values_are_accepted() {
        let num = Quick::of(&decoder("numeric(15,2)"), false);
        for v in ["830725.82", "0.5", "12", "1234567890123.45", "", "7."] {
            assert!(num.ok(v.as_bytes()), "{v}");
        }
        for v in ["12345678901234", "1.234", "1.2.3", ".", "-1", "1e5", "a"] {
            assert!(!num.ok(v.as_bytes()), "{v}");
        }
        let small = Quick::of(&decoder("smallint"), false);
        assert!(small.ok(b"2025") && small.ok(b" 7 "));
        assert!(!small.ok(b"12345") && !small.ok(b"+1"));
        let mut date = decoder("date");
        date.format = DateFormat::new("MM/DD/YYYY", DateKind::Date).ok();
        let date = Quick::of(&date, false);
        for v in ["07/26/1966", "02/29/2024", "12/31/9999", ""] {
            assert!(date.ok(v.as_bytes()), "{v}");
        }
        for v in ["02/29/2023", "13/01/2000", "00/10/2000", "01/00/2000"] {
            assert!(!date.ok(v.as_bytes()), "{v}");
        }
        for v in ["01/01/0000", "1/5/2024", "01-01-2000", "01/01/20x0"] {
            assert!(!date.ok(v.as_bytes()), "{v}");
        }
    }

    /// Decoders of every kind a quick test exists for, with the options
    /// that change what is valid.
    fn decoders() -> Vec<Decoder> {
        let mut out = Vec::new();
        for ty in [
            "smallint",
            "int",
            "bigint",
            "numeric(15,2)",
            "numeric(5,0)",
            "numeric(4,4)",
            "numeric(18,6)",
            "numeric(38,20)",
            "date",
            "varchar(3)",
            "char(2)",
            "text",
        ] {
            for (trim, sign) in [
                (Trim::Both, Sign::Leading),
                (Trim::None, Sign::Trailing),
                (Trim::Left, Sign::Unsigned),
                (Trim::Right, Sign::Overpunch),
            ] {
                let mut d = decoder(ty);
                d.trim = trim;
                d.sign = sign;
                out.push(d.clone());
                d.fraction = Fraction::Implied(2);
                d.nulls = crate::decode::Nulls::new(vec![b"0000"[..].into()]);
                out.push(d);
            }
        }
        for f in ["MM/DD/YYYY", "YYYYMMDD", "DD.MM.YYYY", "YYYY-MM-DD"] {
            let mut d = decoder("date");
            d.format = DateFormat::new(f, DateKind::Date).ok();
            out.push(d);
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000,
            ..Default::default()
        })]

        /// Whatever a quick test accepts, decoding accepts (the tests
        /// for plain records only on values of bytes 0x01-0x7F).
        #[test]
        fn never_accepts_what_decoding_rejects(
            v in "[0-9./ +-]{0,18}|[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}|[0-9]{8}\
                  |[a-c \u{0}\u{e9}\u{7f}]{0,6}",
        ) {
            let mut scratch = Vec::new();
            for d in decoders() {
                for plain in [false, plain_ascii(v.as_bytes())] {
                    let q = Quick::of(&d, plain);
                    if q.ok(v.as_bytes()) {
                        proptest::prop_assert!(
                            d.decode(v.as_bytes(), &mut scratch).is_ok(),
                            "{q:?} accepts {v:?}, which {:?} rejects",
                            d.ty
                        );
                    }
                }
                // A value taken as its trimmed bytes is what decoding
                // gives.
                if let Some(t) = d.plain_text(v.as_bytes()) {
                    let decoded = d.decode(v.as_bytes(), &mut scratch);
                    proptest::prop_assert_eq!(decoded, Ok(Value::Text(t)));
                }
            }
        }
    }

    #[test]
    fn numbers_and_dates_are_tested_alike_in_a_record_and_alone() {
        // `ok` tests each value behind 20 other bytes (a number's 16
        // bytes that end where it ends loaded at once) and alone (shorter
        // than 16: two words filled with '0's) and asserts the two agree;
        // here over every short spelling of digits, points and another
        // byte, and a point at every place of long ones.
        let tests: Vec<Quick> = ["smallint", "numeric(15,2)", "numeric(4,4)"]
            .iter()
            .map(|ty| Quick::of(&decoder(ty), true))
            .collect();
        let alphabet = b"05.a";
        for len in 1..=6u32 {
            for code in 0..4usize.pow(len) {
                let v: Vec<u8> = (0..len)
                    .map(|j| alphabet[code / 4usize.pow(j) % 4])
                    .collect();
                for q in &tests {
                    q.ok(&v);
                }
            }
        }
        for len in 2..=15 {
            for at in 0..len {
                let mut v = vec![b'7'; len];
                v[at] = b'.';
                for q in &tests {
                    q.ok(&v);
                }
            }
        }
        let num = Quick::of(&decoder("numeric(15,2)"), true);
        assert!(num.ok(b"1234567890123.45") && !num.ok(b"12345678901234.5"));
        // Dates, taken as two words either way.
        let dates: Vec<Quick> = ["MM/DD/YYYY", "YYYYMMDD"]
            .iter()
            .map(|f| {
                let mut d = decoder("date");
                d.format = DateFormat::new(f, DateKind::Date).ok();
                Quick::of(&d, true)
            })
            .collect();
        let mut valid = 0;
        for y in ["0000", "2023", "2024", "19x6"] {
            for m in 0..=13 {
                for d in 0..=32 {
                    let us = format!("{m:02}/{d:02}/{y}");
                    let iso = format!("{y}{m:02}{d:02}");
                    for (q, v) in dates.iter().zip([us, iso]) {
                        valid += q.ok(v.as_bytes()) as usize;
                    }
                }
            }
        }
        // 365 + 366 days, in each format.
        assert_eq!(valid, 2 * (365 + 366));
    }

    #[test]
    fn text_is_tested_by_record_or_by_field() {
        assert_eq!(Quick::of(&decoder("text"), true), Quick::Valid);
        assert_eq!(
            Quick::of(&decoder("text"), false),
            Quick::Ascii(usize::MAX)
        );
        let v6 = Quick::of(&decoder("varchar(5)"), false);
        assert_eq!(v6, Quick::Ascii(6));
        assert!(v6.ok(b"abcde") && v6.ok(b""));
        for v in [&b"abcdef"[..], b"ab\xE9", b"a\0b", "\u{e9}".as_bytes()] {
            assert!(!v6.ok(v), "{v:?}");
        }
        assert_eq!(Quick::of(&decoder("varchar(5)"), true), Quick::Shorter(6));
        let mut required = decoder("int");
        required.required = true;
        assert_eq!(Quick::of(&required, false), Quick::Decode);
    }
}
