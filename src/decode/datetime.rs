//! Dates, times and timestamps in declared formats (`MM/DD/YYYY`,
//! `YYYYMMDD`, `HHMMSSff`, …), as PostgreSQL counts them: days or
//! microseconds since 2000-01-01.

use crate::reject::Reason;

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds in a day.
pub const USECS_PER_DAY: i64 = 86_400_000_000;

/// One element of a compiled [`DateFormat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// Fraction of a second with this many digits (1..=6).
    Fraction(u8),
    Literal(u8),
}

impl Tok {
    fn width(self) -> usize {
        match self {
            Tok::Year => 4,
            Tok::Fraction(n) => n as usize,
            Tok::Literal(_) => 1,
            _ => 2,
        }
    }
}

/// A compiled date/time layout such as `MM/DD/YYYY` or `HHMMSSff`.
///
/// Tokens: `YYYY` year, `MM` month (minutes when it follows `HH`), `DD`
/// day, `HH` or `HH24` hour, `MI` minutes, `SS` seconds, `f`…`ffffff`
/// fraction digits; any other byte is a literal. A number set off by
/// literals may have fewer digits (`1/5/2024` reads under `MM/DD/YYYY`);
/// packed digits must be full width (`YYYYMMDD`); the year is always four
/// digits.
#[derive(Clone, Debug)]
pub struct DateFormat {
    toks: Vec<Tok>,
    text: String,
    /// Length of a value with every number at full width.
    width: usize,
    /// At full width: (offset, digits, part, fraction multiplier) of each
    /// number.
    numbers: Vec<NumberAt>,
    /// At full width: (offset, byte) of each literal.
    literals: Vec<LiteralAt>,
}

/// A number of a full-width value: (offset, digits, part, fraction
/// multiplier).
type NumberAt = (u8, u8, u8, u32);

/// A literal of a full-width value: (offset, byte).
type LiteralAt = (u8, u8);

impl PartialEq for DateFormat {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Which parts a value of a kind must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateKind {
    /// Year, month and day.
    Date,
    /// Hour and minute, optional seconds and fraction.
    Time,
    /// A date with an optional time of day.
    Timestamp,
}

impl DateFormat {
    /// Compiles `text` for values of `kind`.
    ///
    /// # Errors
    /// A message when the format misses a part the kind needs, repeats a
    /// part, or has more than six fraction digits.
    pub fn new(text: &str, kind: DateKind) -> Result<DateFormat, String> {
        let toks = tokens(text)?;
        check_parts(text, &toks, kind)?;
        let width = toks.iter().map(|t| t.width()).sum();
        let (numbers, literals) = full_width_offsets(&toks);
        Ok(DateFormat {
            toks,
            text: text.to_owned(),
            width,
            numbers,
            literals,
        })
    }

    /// The format as written in the schema.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the year, month and day sit in a full-width value, for a
    /// format with no other number and at most 16 bytes wide.
    pub fn shape(&self) -> Option<super::DateShape> {
        let mut at = [usize::MAX; 3];
        for &(offset, _, slot, _) in &self.numbers {
            *at.get_mut(slot as usize)? = offset as usize;
        }
        if at.contains(&usize::MAX) {
            return None;
        }
        super::DateShape::new(self.width, at, &self.literals)
    }

    /// Reads the parts of `raw`: `[year, month, day, hour, minute, second,
    /// microsecond]`, missing parts zero.
    fn parts(&self, raw: &[u8]) -> Result<[u32; 7], Reason> {
        if raw.len() == self.width
            && let Some(p) = self.full_width_parts(raw)
        {
            return Ok(p);
        }
        self.parts_flexible(raw)
    }

    /// The common case: every number at full width, so every token sits
    /// at a known offset. `None` sends the value to the general parser.
    #[inline]
    fn full_width_parts(&self, raw: &[u8]) -> Option<[u32; 7]> {
        for &(at, c) in &self.literals {
            if raw[at as usize] != c {
                return None;
            }
        }
        let mut p = [0u32; 7];
        for &(at, w, slot, mul) in &self.numbers {
            let mut v = 0u32;
            for &b in &raw[at as usize..(at + w) as usize] {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                v = v * 10 + d as u32;
            }
            p[slot as usize] = v * mul;
        }
        Some(p)
    }

    fn parts_flexible(&self, raw: &[u8]) -> Result<[u32; 7], Reason> {
        let mut p = [0u32; 7];

        let mut pos = 0;
        for (k, &tok) in self.toks.iter().enumerate() {
            if let Tok::Literal(c) = tok {
                if raw.get(pos) != Some(&c) {
                    return Err(Reason::DateLayout);
                }
                pos += 1;
                continue;
            }
            let width = tok.width();
            // A number may be short only when a literal separates it from
            // its neighbours (`1/5/2024`); packed digits are fixed width.
            let lit = |t: Option<&Tok>| matches!(t, Some(Tok::Literal(_)));
            let next = self.toks.get(k + 1);
            let prev = k.checked_sub(1).and_then(|p| self.toks.get(p));
            let flexible = !matches!(tok, Tok::Year)
                && (lit(next)
                    || (next.is_none() && (prev.is_none() || lit(prev))));
            let mut n = 0;
            let mut v: u32 = 0;
            while n < width {
                match raw.get(pos + n) {
                    Some(c) if c.is_ascii_digit() => {
                        v = v * 10 + (c - b'0') as u32;
                        n += 1;
                    }
                    _ => break,
                }
            }
            if n == 0 || (n < width && !flexible) {
                return Err(Reason::DateLayout);
            }
            pos += n;
            let slot = match tok {
                Tok::Year => 0,
                Tok::Month => 1,
                Tok::Day => 2,
                Tok::Hour => 3,
                Tok::Minute => 4,
                Tok::Second => 5,
                Tok::Fraction(_) => {
                    v *= 10u32.pow(6 - n as u32);
                    6
                }
                Tok::Literal(_) => unreachable!(),
            };
            p[slot] = v;
        }
        if pos != raw.len() {
            return Err(Reason::DateLayout);
        }
        Ok(p)
    }

    /// Parses a date: days since 2000-01-01.
    ///
    /// # Errors
    /// [`Reason::DateLayout`] when `raw` does not follow the format,
    /// [`Reason::ImpossibleDate`] for a day that does not exist
    /// (`02/30/2024`, year 0).
    pub fn date(&self, raw: &[u8]) -> Result<i32, Reason> {
        let p = self.parts(raw)?;
        days(p[0], p[1], p[2])
    }

    /// Parses a time of day: microseconds since midnight.
    ///
    /// # Errors
    /// [`Reason::DateLayout`] or [`Reason::ImpossibleTime`].
    pub fn time(&self, raw: &[u8]) -> Result<i64, Reason> {
        let p = self.parts(raw)?;
        usecs(p[3], p[4], p[5], p[6])
    }

    /// Parses a timestamp: microseconds since 2000-01-01 00:00:00.
    ///
    /// # Errors
    /// As [`DateFormat::date`] and [`DateFormat::time`].
    pub fn timestamp(&self, raw: &[u8]) -> Result<i64, Reason> {
        let p = self.parts(raw)?;
        let d = days(p[0], p[1], p[2])? as i64;
        Ok(d * USECS_PER_DAY + usecs(p[3], p[4], p[5], p[6])?)
    }

    /// Writes a value in this format: `days` since 2000-01-01 and
    /// `usecs` since midnight (either may be zero when unused).
    pub fn write(&self, days: i32, usecs: i64, out: &mut Vec<u8>) {
        let (y, m, d) = civil(days);
        let secs = usecs / 1_000_000;
        let clock = [
            (secs / 3600) as u32,
            (secs / 60 % 60) as u32,
            (secs % 60) as u32,
        ];
        self.write_parts(
            [y.max(0) as u32, m, d],
            clock,
            (usecs % 1_000_000) as u32,
            out,
        );
    }

    /// Writes the given parts as they are, checked or not (so test data
    /// can hold impossible dates such as February 30).
    pub fn write_parts(
        &self,
        ymd: [u32; 3],
        hms: [u32; 3],
        usecs: u32,
        out: &mut Vec<u8>,
    ) {
        for &tok in &self.toks {
            let (v, w) = match tok {
                Tok::Literal(c) => {
                    out.push(c);
                    continue;
                }
                Tok::Year => (ymd[0], 4),
                Tok::Month => (ymd[1], 2),
                Tok::Day => (ymd[2], 2),
                Tok::Hour => (hms[0], 2),
                Tok::Minute => (hms[1], 2),
                Tok::Second => (hms[2], 2),
                Tok::Fraction(n) => {
                    (usecs / 10u32.pow(6 - n as u32), n as usize)
                }
            };
            write_padded(v, w, out);
        }
    }

    /// Whether the format has a day of the month.
    pub fn has_day(&self) -> bool {
        self.toks.contains(&Tok::Day) && self.toks.contains(&Tok::Month)
    }

    /// The smallest unit this format can express, in microseconds
    /// (a format without seconds can only express whole minutes).
    pub fn resolution_usecs(&self) -> i64 {
        let mut res = USECS_PER_DAY;
        for t in &self.toks {
            let r = match t {
                Tok::Hour => 3_600_000_000,
                Tok::Minute => 60_000_000,
                Tok::Second => 1_000_000,
                Tok::Fraction(n) => 10i64.pow(6 - *n as u32),
                _ => continue,
            };
            res = res.min(r);
        }
        res
    }
}

/// The tokens of format `text`, each part at most once.
fn tokens(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let (tok, len) = token_at(text, i, &toks)?;
        if !matches!(tok, Tok::Literal(_)) && toks.contains(&tok) {
            return Err(format!("format {text:?}: repeats a part"));
        }
        toks.push(tok);
        i += len;
    }
    Ok(toks)
}

/// The token at byte `i` of format `text`, after tokens `toks`, and its
/// length in bytes.
fn token_at(
    text: &str,
    i: usize,
    toks: &[Tok],
) -> Result<(Tok, usize), String> {
    let rest = &text.as_bytes()[i..];
    Ok(if rest.starts_with(b"YYYY") {
        (Tok::Year, 4)
    } else if rest.starts_with(b"HH24") {
        (Tok::Hour, 4)
    } else if rest.starts_with(b"HH") {
        (Tok::Hour, 2)
    } else if rest.starts_with(b"MI") {
        (Tok::Minute, 2)
    } else if rest.starts_with(b"MM") {
        let after_hour =
            toks.iter().rev().find(|t| !matches!(t, Tok::Literal(_)))
                == Some(&Tok::Hour);
        (if after_hour { Tok::Minute } else { Tok::Month }, 2)
    } else if rest.starts_with(b"DD") {
        (Tok::Day, 2)
    } else if rest.starts_with(b"SS") {
        (Tok::Second, 2)
    } else if rest[0] == b'f' || rest[0] == b'F' {
        let n = rest.iter().take_while(|&&c| c == b'f' || c == b'F').count();
        if n > 6 {
            return Err(format!(
                "format {text:?}: at most 6 fraction digits (f)"
            ));
        }
        (Tok::Fraction(n as u8), n)
    } else if rest.starts_with(b"YY") {
        return Err(format!(
            "format {text:?}: two-digit years (YY) are ambiguous; use YYYY"
        ));
    } else if rest[0].is_ascii_alphabetic() && rest[0] != b'T' {
        return Err(format!(
            "format {text:?}: unknown token at {:?}",
            &text[i..]
        ));
    } else {
        (Tok::Literal(rest[0]), 1)
    })
}

/// Checks that format `text`'s tokens have the parts a value of `kind`
/// needs, and seconds for a fraction.
fn check_parts(
    text: &str,
    toks: &[Tok],
    kind: DateKind,
) -> Result<(), String> {
    let has = |t: Tok| toks.contains(&t);
    let has_date = has(Tok::Year) && has(Tok::Month) && has(Tok::Day);
    let has_time = has(Tok::Hour) && has(Tok::Minute);
    let ok = match kind {
        DateKind::Date => has_date && !has(Tok::Hour),
        DateKind::Time => {
            has_time && !has(Tok::Year) && !has(Tok::Month) && !has(Tok::Day)
        }
        DateKind::Timestamp => has_date,
    };
    if !ok {
        let need = match kind {
            DateKind::Date => {
                "a date format needs YYYY, MM and DD and no time"
            }
            DateKind::Time => {
                "a time format needs HH and MI (or MM after HH) and no date"
            }
            DateKind::Timestamp => "a timestamp format needs YYYY, MM and DD",
        };
        return Err(format!("format {text:?}: {need}"));
    }
    if toks.iter().any(|t| matches!(t, Tok::Fraction(_))) && !has(Tok::Second)
    {
        return Err(format!(
            "format {text:?}: a fraction (f) needs seconds (SS)"
        ));
    }
    Ok(())
}

/// Where each number and literal of `toks` sits in a full-width value:
/// (offset, digits, part, fraction multiplier) of each number, (offset,
/// byte) of each literal.
fn full_width_offsets(toks: &[Tok]) -> (Vec<NumberAt>, Vec<LiteralAt>) {
    let (mut numbers, mut literals, mut at) = (Vec::new(), Vec::new(), 0u8);
    for &t in toks {
        let w = t.width() as u8;
        match t {
            Tok::Literal(c) => literals.push((at, c)),
            Tok::Year => numbers.push((at, w, 0, 1)),
            Tok::Month => numbers.push((at, w, 1, 1)),
            Tok::Day => numbers.push((at, w, 2, 1)),
            Tok::Hour => numbers.push((at, w, 3, 1)),
            Tok::Minute => numbers.push((at, w, 4, 1)),
            Tok::Second => numbers.push((at, w, 5, 1)),
            Tok::Fraction(n) => {
                numbers.push((at, w, 6, 10u32.pow(6 - n as u32)))
            }
        }
        at += w;
    }
    (numbers, literals)
}

fn write_padded(v: u32, width: usize, out: &mut Vec<u8>) {
    let mut buf = [b'0'; 10];
    let mut x = v;
    let mut i = buf.len();
    while x > 0 {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    let digits = buf.len() - i;
    if digits < width {
        out.extend(std::iter::repeat_n(b'0', width - digits));
    }
    out.extend_from_slice(&buf[i..]);
}

/// Whether `y` is a Gregorian leap year.
pub fn is_leap(y: u32) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

/// Days in month `m` (1..=12) of year `y`.
pub fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 2000-01-01 of a checked calendar date.
///
/// # Errors
/// [`Reason::ImpossibleDate`] when the day does not exist.
pub fn days(y: u32, m: u32, d: u32) -> Result<i32, Reason> {
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(Reason::ImpossibleDate);
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok((era * 146_097 + doe - 719_468 - PG_EPOCH_DAYS) as i32)
}

/// The calendar date `(year, month, day)` of a day count since 2000-01-01.
pub fn civil(days: i32) -> (i32, u32, u32) {
    let z = days as i64 + PG_EPOCH_DAYS + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

fn usecs(h: u32, mi: u32, s: u32, us: u32) -> Result<i64, Reason> {
    if h > 23 || mi > 59 || s > 59 {
        return Err(Reason::ImpossibleTime);
    }
    Ok(((h as i64 * 60 + mi as i64) * 60 + s as i64) * 1_000_000 + us as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str, k: DateKind) -> DateFormat {
        DateFormat::new(s, k).unwrap()
    }

    #[test]
    fn dates() {
        let mdy = f("MM/DD/YYYY", DateKind::Date);
        assert_eq!(mdy.date(b"01/01/2000"), Ok(0));
        assert_eq!(mdy.date(b"12/31/1999"), Ok(-1));
        assert_eq!(mdy.date(b"1/5/2000"), Ok(4));
        assert_eq!(mdy.date(b"02/29/2024").map(civil), Ok((2024, 2, 29)));
        assert_eq!(mdy.date(b"02/30/2024"), Err(Reason::ImpossibleDate));
        assert_eq!(mdy.date(b"02/29/2023"), Err(Reason::ImpossibleDate));
        assert_eq!(mdy.date(b"02/29/1900"), Err(Reason::ImpossibleDate));
        assert_eq!(mdy.date(b"00/00/0000"), Err(Reason::ImpossibleDate));
        assert_eq!(mdy.date(b"13/01/2024"), Err(Reason::ImpossibleDate));
        assert_eq!(mdy.date(b"01/01/24"), Err(Reason::DateLayout));
        assert_eq!(mdy.date(b"2024-01-01"), Err(Reason::DateLayout));
        assert_eq!(mdy.date(b"01/01/2024x"), Err(Reason::DateLayout));
        let ymd = f("YYYYMMDD", DateKind::Date);
        assert_eq!(ymd.date(b"20240229").map(civil), Ok((2024, 2, 29)));
        assert_eq!(ymd.date(b"2024229"), Err(Reason::DateLayout));
        assert_eq!(ymd.date(b"18500101").map(civil), Ok((1850, 1, 1)));
        assert_eq!(ymd.date(b"99991231").map(civil), Ok((9999, 12, 31)));
    }

    #[test]
    fn civil_round_trip() {
        for d in (-730_000..2_900_000).step_by(997) {
            let (y, m, dd) = civil(d);
            assert_eq!(days(y as u32, m, dd), Ok(d), "{y}-{m}-{dd}");
        }
    }

    #[test]
    fn times() {
        let t = f("HHMMSSff", DateKind::Time);
        assert_eq!(
            t.time(b"13455912"),
            Ok(((13 * 60 + 45) * 60 + 59) * 1_000_000 + 120_000)
        );
        assert_eq!(t.time(b"24000000"), Err(Reason::ImpossibleTime));
        let t2 = f("HH:MI", DateKind::Time);
        assert_eq!(t2.time(b"9:05"), Ok((9 * 60 + 5) * 60_000_000));
        let ts = f("YYYY-MM-DD HH:MI:SS.ffffff", DateKind::Timestamp);
        assert_eq!(
            ts.timestamp(b"2000-01-02 00:00:01.000001"),
            Ok(USECS_PER_DAY + 1_000_001)
        );
        let mut out = Vec::new();
        ts.write(1, 1_000_001, &mut out);
        assert_eq!(out, b"2000-01-02 00:00:01.000001");
    }

    #[test]
    fn bad_formats() {
        assert!(DateFormat::new("YY/MM/DD", DateKind::Date).is_err());
        assert!(DateFormat::new("MM/DD", DateKind::Date).is_err());
        assert!(DateFormat::new("HHMMSSfffffff", DateKind::Time).is_err());
        assert!(DateFormat::new("YYYY-MM-DD HH:MI", DateKind::Date).is_err());
        assert!(DateFormat::new("QQ", DateKind::Time).is_err());
        assert!(DateFormat::new("MM/DD/YYYY/YYYY", DateKind::Date).is_err());
    }
}
