//! Integers, exact decimals and floats from ASCII digits, with the sign
//! conventions of fixed-width exports (leading, trailing, COBOL overpunch).

use super::swar;
use crate::reject::Reason;

/// Where a number's sign is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sign {
    /// An optional `+` or `-` before the digits (the default).
    #[default]
    Leading,
    /// An optional `+` or `-` after the digits (`123-`).
    Trailing,
    /// COBOL overpunch: the last digit carries the sign (`{`=+0, `A`..`I`
    /// =+1..+9, `}`=-0, `J`..`R`=-1..-9); a plain last digit is positive.
    Overpunch,
    /// No sign at all: digits only.
    #[serde(rename = "none")]
    Unsigned,
}

impl Sign {
    /// The spelling used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Sign::Leading => "leading",
            Sign::Trailing => "trailing",
            Sign::Overpunch => "overpunch",
            Sign::Unsigned => "none",
        }
    }
}

/// An exact decimal: `mantissa × 10^-scale`.
///
/// Holds up to 38 significant digits, which covers every `numeric(p,s)` a
/// schema may declare (`p` ≤ 38).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: i128,
    /// Digits after the decimal point.
    pub scale: u16,
}

impl Decimal {
    /// Largest precision a [`Decimal`] holds.
    pub const MAX_PRECISION: u16 = 38;

    /// Writes the value in PostgreSQL's text form (`-12.50`).
    pub fn write_text(&self, out: &mut Vec<u8>) {
        // The digits start past the sign.
        let start = out.len() + usize::from(self.mantissa < 0);
        push_integer(out, self.mantissa);
        let (len, scale) = (out.len() - start, self.scale as usize);
        if scale == 0 {
            return;
        }
        if len <= scale {
            let zeros = std::iter::repeat_n(b'0', scale - len);
            out.splice(start..start, b"0.".iter().copied().chain(zeros));
        } else {
            out.insert(out.len() - scale, b'.');
        }
    }
}

/// Appends `v` in decimal, with a `-` when negative and no padding (a
/// record's key text is written this way, where `write!` cost 6% of
/// validating a table keyed by integers).
pub fn push_integer(out: &mut Vec<u8>, v: i128) {
    if v < 0 {
        out.push(b'-');
    }
    let mut buf = [0u8; 39];
    let mut at = buf.len();
    let mut rest = v.unsigned_abs();
    // Wide division only for digits beyond a u64.
    while rest > u64::MAX as u128 {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut r = rest as u64;
    loop {
        at -= 1;
        buf[at] = b'0' + (r % 10) as u8;
        r /= 10;
        if r == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = Vec::new();
        self.write_text(&mut buf);
        f.write_str(std::str::from_utf8(&buf).unwrap_or("?"))
    }
}

/// Powers of ten that fit a u128 (10^0 ..= 10^38).
const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// 10^n, or `None` beyond 10^38.
#[inline]
fn pow10(n: u32) -> Option<u128> {
    POW10.get(n as usize).copied()
}

/// Splits the sign off `raw` according to `sign`, returning
/// `(negative, digits, overpunched_last_digit)`.
///
/// With overpunch the last byte is decoded to its digit and returned
/// separately, since it cannot be sliced out of `raw`.
fn split_sign(
    raw: &[u8],
    sign: Sign,
) -> Result<(bool, &[u8], Option<u8>), Reason> {
    match sign {
        Sign::Leading => match raw.first() {
            Some(b'-') => Ok((true, &raw[1..], None)),
            Some(b'+') => Ok((false, &raw[1..], None)),
            _ => Ok((false, raw, None)),
        },
        Sign::Trailing => match raw.last() {
            Some(b'-') => Ok((true, &raw[..raw.len() - 1], None)),
            Some(b'+') => Ok((false, &raw[..raw.len() - 1], None)),
            _ => Ok((false, raw, None)),
        },
        Sign::Unsigned => Ok((false, raw, None)),
        Sign::Overpunch => {
            let Some((&last, head)) = raw.split_last() else {
                return Ok((false, raw, None));
            };
            let (neg, digit) = match last {
                b'0'..=b'9' => (false, last - b'0'),
                b'{' => (false, 0),
                b'A'..=b'I' => (false, last - b'A' + 1),
                b'}' => (true, 0),
                b'J'..=b'R' => (true, last - b'J' + 1),
                _ => return Err(Reason::InvalidOverpunch(last)),
            };
            Ok((neg, head, Some(digit)))
        }
    }
}

/// Accumulates ASCII digits into a `u128`, rejecting anything else.
#[inline]
fn digits_u128(
    digits: &[u8],
    mut acc: u128,
    limit: u128,
) -> Result<u128, Reason> {
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(Reason::InvalidDigit(b));
        }
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(d as u128))
            .filter(|&a| a <= limit)
            .ok_or(Reason::Overflow)?;
    }
    Ok(acc)
}

/// Parses a whole number that must lie in `min..=max`.
///
/// `raw` is already trimmed. Leading zeros are allowed (`0000123`).
///
/// # Errors
/// A reject [`Reason`]: empty, a non-digit, or a value out of range.
#[inline]
pub fn integer(
    raw: &[u8],
    sign: Sign,
    min: i64,
    max: i64,
) -> Result<i64, Reason> {
    let (neg, digits, last) = split_sign(raw, sign)?;
    if digits.is_empty() && last.is_none() {
        return Err(Reason::NoDigits);
    }
    // Fast path: up to 18 digits cannot overflow a u64.
    let limit = if neg { min.unsigned_abs() } else { max as u64 };
    let mut acc: u64 = 0;
    if let (None, Some(v)) = (last, swar::digits(digits)) {
        // Up to 16 valid digits, word at a time.
        acc = v;
    } else if digits.len() <= 18 {
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return Err(Reason::InvalidDigit(b));
            }
            acc = acc * 10 + d as u64;
        }
        if let Some(d) = last {
            acc = acc
                .checked_mul(10)
                .and_then(|a| a.checked_add(d as u64))
                .ok_or(Reason::Overflow)?;
        }
    } else {
        let mut wide = digits_u128(digits, 0, u64::MAX as u128)?;
        if let Some(d) = last {
            wide = wide * 10 + d as u128;
        }
        acc = u64::try_from(wide).map_err(|_| Reason::Overflow)?;
    }
    if acc > limit {
        return Err(Reason::Overflow);
    }
    Ok(if neg { (acc as i64).wrapping_neg() } else { acc as i64 })
}

/// How a decimal's fraction is written in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fraction {
    /// The digits carry this many implied places and no point
    /// (`00000005739000` with 4 is 573.9000).
    Implied(u16),
    /// A literal `.` separates the fraction, if any (`00001800.000000`).
    Literal,
}

/// Parses an exact decimal and brings it to `scale` places.
///
/// Fewer source places are padded with zeros; extra places are accepted
/// only when they are zeros (`1.2400` into scale 2), since rounding would
/// change the data. At most `precision` digits in all (`precision` ≤ 38).
///
/// # Errors
/// A reject [`Reason`]: no digits, a stray byte, a second point, nonzero
/// digits beyond `scale`, or more than `precision - scale` integer digits.
pub fn decimal(
    raw: &[u8],
    sign: Sign,
    fraction: Fraction,
    precision: u16,
    scale: Option<u16>,
) -> Result<Decimal, Reason> {
    let (neg, body, last) = split_sign(raw, sign)?;
    let literal = fraction == Fraction::Literal;
    // One pass over the digits; up to 18 of them (plus an overpunched
    // one) fit a u64, longer values take the u128 path.
    let acc: u128;
    let mut src_scale: u16 = 0;
    if body.len() <= 18 {
        // Valid values of up to 16 bytes take the word-at-a-time path;
        // anything else (and every reject) the byte loop.
        let fast = match (last, literal) {
            (None, false) => swar::digits(body).map(|a| (a, 0)),
            (None, true) => swar::point_decimal(body),
            _ => None,
        };
        let a = match fast {
            Some((a, places)) => {
                src_scale = places;
                a
            }
            None => {
                let mut a: u64 = 0;
                let mut digits = 0;
                let mut point = false;
                for &b in body {
                    let d = b.wrapping_sub(b'0');
                    if d <= 9 {
                        a = a * 10 + d as u64;
                        digits += 1;
                        src_scale += point as u16;
                    } else if b == b'.' && literal && !point {
                        point = true;
                    } else {
                        return Err(Reason::InvalidDigit(b));
                    }
                }
                if digits == 0 && last.is_none() {
                    return Err(Reason::NoDigits);
                }
                if let Some(d) = last {
                    a = a * 10 + d as u64;
                    src_scale += point as u16;
                }
                a
            }
        };
        if let Fraction::Implied(places) = fraction {
            src_scale = places;
        }
        // At most 19 digits: the common case stays in u64 arithmetic
        // (measured: the u128 rescaling and limit tests took a third of
        // this function's time on HCAD values).
        if let Some(m) = rescale_u64(a, src_scale, precision, scale) {
            let (m, target) = m?;
            let m = m as i128;
            return Ok(Decimal {
                mantissa: if neg { -m } else { m },
                scale: target,
            });
        }
        acc = a as u128;
    } else {
        (acc, src_scale) = digits_u128_point(body, last, literal)?;
    }
    if let Fraction::Implied(places) = fraction {
        src_scale = places;
    }
    rescale_u128(neg, acc, src_scale, precision, scale)
}

/// [`decimal`]'s digits of a value longer than 18 bytes (a `.` splitting
/// them when `literal`) and an overpunched `last` digit as a u128, and
/// the places after the point. Out of line: inlined, it made the short
/// values' path a few percent slower (register pressure), while a call
/// costs the long values' path nothing measurable.
#[inline(never)]
fn digits_u128_point(
    body: &[u8],
    last: Option<u8>,
    literal: bool,
) -> Result<(u128, u16), Reason> {
    let point = memchr::memchr(b'.', body).filter(|_| literal);
    let (int_part, frac_part): (&[u8], &[u8]) = match point {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[]),
    };
    let acc = digits_u128(int_part, 0, u128::MAX)?;
    let mut acc = digits_u128(frac_part, acc, u128::MAX)?;
    let mut src_scale = frac_part.len() as u16;
    if let Some(d) = last {
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(d as u128))
            .ok_or(Reason::Overflow)?;
        if point.is_some() {
            src_scale += 1;
        }
    }
    Ok((acc, src_scale))
}

/// Brings `acc` (with `src_scale` places) to `scale` places (or keeps its
/// own) within `precision` digits and [`Decimal::MAX_PRECISION`], in u128
/// arithmetic: the decimal (negative when `neg`), or the reason.
#[inline]
fn rescale_u128(
    neg: bool,
    mut acc: u128,
    src_scale: u16,
    precision: u16,
    scale: Option<u16>,
) -> Result<Decimal, Reason> {
    let limit = POW10[Decimal::MAX_PRECISION as usize] - 1;
    let target = scale.unwrap_or(src_scale);
    // Rescale to the target number of places.
    if src_scale > target {
        let div =
            pow10((src_scale - target) as u32).ok_or(Reason::Overflow)?;
        if !acc.is_multiple_of(div) {
            return Err(Reason::TooManyDecimals { scale: target });
        }
        acc /= div;
    } else if src_scale < target {
        let mul =
            pow10((target - src_scale) as u32).ok_or(Reason::Overflow)?;
        acc = acc.checked_mul(mul).ok_or(Reason::Overflow)?;
    }
    if acc > limit {
        return Err(Reason::Overflow);
    }
    if precision > 0 {
        let max = pow10(precision as u32).unwrap_or(u128::MAX);
        if acc >= max {
            return Err(Reason::Overflow);
        }
    }
    let m = acc as i128;
    Ok(Decimal { mantissa: if neg { -m } else { m }, scale: target })
}

/// 10^n when it fits a u64 (n ≤ 19), from the same table.
#[inline]
fn pow10_u64(n: usize) -> Option<u64> {
    (n < 20).then(|| POW10[n] as u64)
}

/// Brings `a` (with `src_scale` places) to `scale` places (or keeps its
/// own) within `precision` digits, in u64 arithmetic: `None` when that
/// cannot decide (a precision or power of ten beyond u64), so the caller
/// takes the u128 path; otherwise the mantissa and scale, or the reason.
#[inline]
fn rescale_u64(
    a: u64,
    src_scale: u16,
    precision: u16,
    scale: Option<u16>,
) -> Option<Result<(u64, u16), Reason>> {
    let target = scale.unwrap_or(src_scale);
    let m = if src_scale > target {
        let div = pow10_u64((src_scale - target) as usize)?;
        if !a.is_multiple_of(div) {
            return Some(Err(Reason::TooManyDecimals { scale: target }));
        }
        a / div
    } else {
        let mul = pow10_u64((target - src_scale) as usize)?;
        a.checked_mul(mul)?
    };
    // A u64 has at most 20 digits: a precision of 20 or more (or none,
    // which means Decimal::MAX_PRECISION) always holds it.
    if precision > 0
        && let Some(max) = pow10_u64(precision as usize)
        && m >= max
    {
        return Some(Err(Reason::Overflow));
    }
    Some(Ok((m, target)))
}

/// Parses a float (`1.5`, `-2e3`, `nan` is refused).
///
/// # Errors
/// [`Reason::InvalidFloat`] when Rust's float grammar does not accept the
/// value or the result is not finite.
pub fn float8(raw: &[u8], sign: Sign) -> Result<f64, Reason> {
    let (neg, body, last) = split_sign(raw, sign)?;
    let s = std::str::from_utf8(body).map_err(|_| Reason::InvalidFloat)?;
    if s.is_empty() && last.is_none() {
        return Err(Reason::NoDigits);
    }
    if s.bytes().any(|b| {
        !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    }) {
        return Err(Reason::InvalidFloat);
    }
    let mut v: f64 = if s.is_empty() {
        0.0
    } else {
        s.parse().map_err(|_| Reason::InvalidFloat)?
    };
    if let Some(d) = last {
        // Overpunch: the sign digit is the last digit of the mantissa.
        let text = format!("{s}{d}");
        v = text.parse().map_err(|_| Reason::InvalidFloat)?;
    }
    if !v.is_finite() {
        return Err(Reason::InvalidFloat);
    }
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(
        s: &str,
        f: Fraction,
        p: u16,
        sc: Option<u16>,
    ) -> Result<String, Reason> {
        decimal(s.as_bytes(), Sign::Leading, f, p, sc).map(|d| d.to_string())
    }

    #[test]
    fn values_longer_than_18_bytes() {
        let lit = Fraction::Literal;
        assert_eq!(
            dec("12345678901234567.891", lit, 38, Some(3)),
            Ok("12345678901234567.891".into())
        );
        assert_eq!(
            dec("12345678901234567.8910", lit, 38, Some(3)),
            Ok("12345678901234567.891".into())
        );
        assert_eq!(
            dec("1234567890123456.78X91", lit, 38, Some(5)),
            Err(Reason::InvalidDigit(b'X'))
        );
        assert_eq!(
            dec("12345678901234567891", Fraction::Implied(6), 20, Some(6)),
            Ok("12345678901234.567891".into())
        );
    }

    #[test]
    fn integers() {
        assert_eq!(
            integer(
                b"0000123",
                Sign::Leading,
                i32::MIN as i64,
                i32::MAX as i64
            ),
            Ok(123)
        );
        assert_eq!(integer(b"-42", Sign::Leading, -100, 100), Ok(-42));
        assert_eq!(integer(b"+42", Sign::Leading, -100, 100), Ok(42));
        assert_eq!(integer(b"42-", Sign::Trailing, -100, 100), Ok(-42));
        assert_eq!(
            integer(b"32768", Sign::Leading, -32768, 32767),
            Err(Reason::Overflow)
        );
        assert_eq!(
            integer(b"-32768", Sign::Leading, -32768, 32767),
            Ok(-32768)
        );
        assert_eq!(
            integer(b"00O12", Sign::Leading, 0, 1000),
            Err(Reason::InvalidDigit(b'O'))
        );
        assert_eq!(integer(b"-", Sign::Leading, -1, 1), Err(Reason::NoDigits));
        assert_eq!(
            integer(b"9223372036854775807", Sign::Leading, i64::MIN, i64::MAX),
            Ok(i64::MAX)
        );
        assert_eq!(
            integer(
                b"-9223372036854775808",
                Sign::Leading,
                i64::MIN,
                i64::MAX
            ),
            Ok(i64::MIN)
        );
        assert_eq!(
            integer(b"9223372036854775808", Sign::Leading, i64::MIN, i64::MAX),
            Err(Reason::Overflow)
        );
        assert_eq!(
            integer(
                b"000000000000000000000000000000000001",
                Sign::Leading,
                i64::MIN,
                i64::MAX
            ),
            Ok(1)
        );
        assert_eq!(
            integer(
                b"99999999999999999999999",
                Sign::Leading,
                i64::MIN,
                i64::MAX
            ),
            Err(Reason::Overflow)
        );
        assert_eq!(
            integer(b"-5", Sign::Unsigned, 0, 10),
            Err(Reason::InvalidDigit(b'-'))
        );
    }

    #[test]
    fn overpunch() {
        let r = |s: &str| {
            integer(s.as_bytes(), Sign::Overpunch, i64::MIN, i64::MAX)
        };
        assert_eq!(r("12{"), Ok(120));
        assert_eq!(r("12A"), Ok(121));
        assert_eq!(r("12I"), Ok(129));
        assert_eq!(r("12}"), Ok(-120));
        assert_eq!(r("12J"), Ok(-121));
        assert_eq!(r("12R"), Ok(-129));
        assert_eq!(r("125"), Ok(125));
        assert_eq!(r("12S"), Err(Reason::InvalidOverpunch(b'S')));
        let d = decimal(
            b"0001234}",
            Sign::Overpunch,
            Fraction::Implied(2),
            10,
            Some(2),
        )
        .unwrap();
        assert_eq!(d.to_string(), "-123.40");
    }

    #[test]
    fn text_of_decimals_and_digits() {
        let text = |mantissa: i128, scale: u16| {
            let mut out = b"x".to_vec();
            Decimal { mantissa, scale }.write_text(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(0, 0), "x0");
        assert_eq!(text(5, 2), "x0.05");
        assert_eq!(text(-5, 1), "x-0.5");
        assert_eq!(text(1250, 2), "x12.50");
        assert_eq!(text(-7, 0), "x-7");
        assert_eq!(text(0, 3), "x0.000");
        let max = 10i128.pow(38) - 1;
        assert_eq!(text(-max, 38), format!("x-0.{max}"));
        let wide = u64::MAX as i128;
        for n in
            [0, 9, 10, -10, wide, wide + 1, -wide - 1, i128::MIN, i128::MAX]
        {
            let mut out = Vec::new();
            push_integer(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(
            dec("00000005739000", Fraction::Implied(4), 14, Some(4)),
            Ok("573.9000".into())
        );
        assert_eq!(
            dec("105024", Fraction::Implied(4), 10, Some(4)),
            Ok("10.5024".into())
        );
        assert_eq!(
            dec("00001800.000000", Fraction::Literal, 15, Some(6)),
            Ok("1800.000000".into())
        );
        assert_eq!(
            dec("1.2400", Fraction::Literal, 10, Some(2)),
            Ok("1.24".into())
        );
        assert_eq!(
            dec("1.2450", Fraction::Literal, 10, Some(2)),
            Err(Reason::TooManyDecimals { scale: 2 })
        );
        assert_eq!(
            dec("12.5", Fraction::Literal, 10, Some(2)),
            Ok("12.50".into())
        );
        assert_eq!(
            dec("-0.5", Fraction::Literal, 10, Some(2)),
            Ok("-0.50".into())
        );
        assert_eq!(
            dec(".5", Fraction::Literal, 10, Some(2)),
            Ok("0.50".into())
        );
        assert_eq!(
            dec("5.", Fraction::Literal, 10, Some(2)),
            Ok("5.00".into())
        );
        assert_eq!(
            dec("1.2.3", Fraction::Literal, 10, Some(2)),
            Err(Reason::InvalidDigit(b'.'))
        );
        assert_eq!(
            dec("123456", Fraction::Literal, 6, Some(2)),
            Err(Reason::Overflow)
        );
        assert_eq!(
            dec("9999.99", Fraction::Literal, 6, Some(2)),
            Ok("9999.99".into())
        );
        assert_eq!(
            dec("0.620000", Fraction::Literal, 0, None),
            Ok("0.620000".into())
        );
        assert_eq!(
            dec(
                "9999999999999999999999999999",
                Fraction::Literal,
                28,
                Some(0)
            ),
            Ok("9999999999999999999999999999".into())
        );
        assert_eq!(
            dec(
                "99999999999999999999999999999999999999999",
                Fraction::Literal,
                38,
                Some(0)
            ),
            Err(Reason::Overflow)
        );
        assert_eq!(
            dec("", Fraction::Literal, 10, Some(2)),
            Err(Reason::NoDigits)
        );
        assert_eq!(
            dec("1,000", Fraction::Literal, 10, Some(2)),
            Err(Reason::InvalidDigit(b','))
        );
    }

    #[test]
    fn floats() {
        assert_eq!(float8(b"1.5", Sign::Leading), Ok(1.5));
        assert_eq!(float8(b"-2e3", Sign::Leading), Ok(-2000.0));
        assert_eq!(float8(b"nan", Sign::Leading), Err(Reason::InvalidFloat));
        assert_eq!(float8(b"1e999", Sign::Leading), Err(Reason::InvalidFloat));
    }
}
