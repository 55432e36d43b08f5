//! Values back to source bytes: the inverse of `decode`, field by field,
//! in the layout's framing (padded fixed-width columns, delimited fields)
//! and encoding.

use super::value::Datum;
use crate::decode::{Decimal, Encoding, Fraction, Sign, Trim};
use crate::schema::{Field, Format, Layout, Quoting, Terminator};

/// Writes text in `enc`.
///
/// # Errors
/// A character the encoding cannot represent.
pub fn encode_text(
    s: &str,
    enc: Encoding,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if enc == Encoding::Utf8 || s.is_ascii() {
        out.extend_from_slice(s.as_bytes());
        return Ok(());
    }
    for c in s.chars() {
        out.push(enc.encode_char(c).ok_or_else(|| {
            format!("{c:?} cannot be written in {}", enc.as_str())
        })?);
    }
    Ok(())
}

fn overpunch(neg: bool, d: u8) -> u8 {
    match (neg, d) {
        (false, 0) => b'{',
        (false, d) => b'A' + d - 1,
        (true, 0) => b'}',
        (true, d) => b'J' + d - 1,
    }
}

/// Writes `digits` (ASCII, no sign) with the sign convention, zero-padded
/// on the left to `width` bytes when given.
fn signed(
    neg: bool,
    digits: &[u8],
    sign: Sign,
    width: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let sign_bytes = match sign {
        Sign::Leading | Sign::Trailing => neg as usize,
        Sign::Overpunch | Sign::Unsigned => 0,
    };
    if neg && sign == Sign::Unsigned {
        return Err("negative value in an unsigned field".into());
    }
    let pad = width.map_or(0, |w| w.saturating_sub(digits.len() + sign_bytes));
    if width.is_some_and(|w| digits.len() + sign_bytes > w) {
        return Err(format!(
            "{} digits do not fit {} bytes",
            digits.len(),
            width.unwrap_or(0)
        ));
    }
    if neg && sign == Sign::Leading {
        out.push(b'-');
    }
    out.extend(std::iter::repeat_n(b'0', pad));
    match sign {
        Sign::Overpunch => {
            let (last, head) = digits.split_last().ok_or("no digits")?;
            out.extend_from_slice(head);
            out.push(overpunch(neg, last - b'0'));
        }
        _ => out.extend_from_slice(digits),
    }
    if neg && sign == Sign::Trailing {
        out.push(b'-');
    }
    Ok(())
}

fn decimal_text(
    d: &Decimal,
    fraction: Fraction,
    width: Option<usize>,
    sign: Sign,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let neg = d.mantissa < 0;
    let abs = d.mantissa.unsigned_abs();
    match fraction {
        Fraction::Implied(k) => {
            let digits = if k >= d.scale {
                abs * 10u128.pow((k - d.scale) as u32)
            } else {
                let div = 10u128.pow((d.scale - k) as u32);
                if !abs.is_multiple_of(div) {
                    return Err(format!(
                        "{d} has more places than the {k} implied ones"
                    ));
                }
                abs / div
            };
            signed(neg, digits.to_string().as_bytes(), sign, width, out)
        }
        Fraction::Literal => {
            let mut text = Vec::new();
            Decimal { mantissa: abs as i128, scale: d.scale }
                .write_text(&mut text);
            if let Some(w) = width {
                // Zero-pad the integer part ("00001800.000000").
                let sign_bytes = (neg
                    && matches!(sign, Sign::Leading | Sign::Trailing))
                    as usize;
                let pad = w.saturating_sub(text.len() + sign_bytes);
                let mut padded = vec![b'0'; pad];
                padded.extend_from_slice(&text);
                text = padded;
            }
            if sign == Sign::Overpunch {
                let (last, head) = text.split_last().ok_or("no digits")?;
                out.extend_from_slice(head);
                out.push(overpunch(neg, last - b'0'));
                return Ok(());
            }
            signed(neg, &text, sign, None, out)
        }
    }
}

/// Writes one value as the field's source text (unpadded for delimited
/// layouts; numbers zero-padded to the field width for fixed ones).
///
/// # Errors
/// A value the field cannot represent (too wide, wrong sign, encoding).
pub fn format_value(
    layout: &Layout,
    f: &Field,
    v: &Datum,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let start = out.len();
    format_raw(layout, f, v, out)?;
    let d = &f.decoder;
    let reads_null =
        |t: &[u8]| d.nulls.iter().any(|n| **n == *d.trim.apply(t));
    if *v == Datum::Null || !reads_null(&out[start..]) {
        return Ok(());
    }
    // The text is also a null marker (0 written `0` where `0` means NULL):
    // a number can take a leading zero; anything else cannot be written.
    let numeric =
        matches!(v, Datum::Int(_) | Datum::Numeric(_) | Datum::Float(_));
    let fits =
        f.span.as_ref().is_none_or(|s| s.end - s.start > out.len() - start);
    if numeric && fits && out.get(start).is_some_and(u8::is_ascii_digit) {
        out.insert(start, b'0');
        if !reads_null(&out[start..]) {
            return Ok(());
        }
    }
    out.truncate(start);
    Err(format!("field {}: the value would read back as NULL", f.name))
}

/// [`format_value`] without the null-marker check.
fn format_raw(
    layout: &Layout,
    f: &Field,
    v: &Datum,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let d = &f.decoder;
    let width = f.span.as_ref().map(|s| s.end - s.start);
    match v {
        Datum::Null => {
            let n = d
                .nulls
                .first()
                .ok_or_else(|| format!("field {} cannot be NULL", f.name))?;
            out.extend_from_slice(n);
            Ok(())
        }
        Datum::Text(s) => encode_text(s, layout.encoding, out),
        Datum::Int(i) => {
            let digits = i.unsigned_abs().to_string();
            signed(*i < 0, digits.as_bytes(), d.sign, width, out)
        }
        Datum::Numeric(x) => decimal_text(x, d.fraction, width, d.sign, out),
        Datum::Float(x) => {
            // Rust writes floats without an exponent, so the text ends in a
            // digit (which overpunch can carry the sign in).
            let s = format!("{}", x.abs());
            if d.sign == Sign::Overpunch {
                let (last, head) =
                    s.as_bytes().split_last().ok_or("no digits")?;
                out.extend_from_slice(head);
                out.push(overpunch(*x < 0.0, last - b'0'));
                return Ok(());
            }
            signed(*x < 0.0, s.as_bytes(), d.sign, None, out)
        }
        Datum::Bool(b) => {
            let spell = if *b {
                d.true_values.first()
            } else {
                d.false_values.first()
            };
            out.extend_from_slice(spell.ok_or("no boolean spelling")?);
            Ok(())
        }
        Datum::Date(days) => {
            d.format
                .as_ref()
                .ok_or("date without format")?
                .write(*days, 0, out);
            Ok(())
        }
        Datum::Timestamp(t) => {
            let days = t.div_euclid(crate::decode::USECS_PER_DAY) as i32;
            let us = t.rem_euclid(crate::decode::USECS_PER_DAY);
            d.format
                .as_ref()
                .ok_or("timestamp without format")?
                .write(days, us, out);
            Ok(())
        }
        Datum::Time(t) => {
            d.format.as_ref().ok_or("time without format")?.write(0, *t, out);
            Ok(())
        }
    }
}

/// The terminator written after each record.
pub fn terminator_bytes(layout: &Layout) -> &'static [u8] {
    let t = match &layout.format {
        Format::Fixed(f) => f.terminator,
        Format::Delimited(d) => d.terminator,
    };
    match t {
        Terminator::Lf => b"\n",
        Terminator::Crlf | Terminator::Any => b"\r\n",
        Terminator::None => b"",
    }
}

/// The header row of a delimited layout with a header (with terminator).
pub fn header_row(layout: &Layout) -> Option<Vec<u8>> {
    let Format::Delimited(dl) = &layout.format else { return None };
    if !dl.header {
        return None;
    }
    let mut out = Vec::new();
    for (i, f) in layout.fields.iter().enumerate() {
        if i > 0 {
            out.push(dl.delimiter);
        }
        out.extend_from_slice(f.header.as_bytes());
    }
    out.extend_from_slice(terminator_bytes(layout));
    Some(out)
}

/// Writes a whole record (with terminator) from per-field source bytes
/// (`spans` index `raw`, one per field).
///
/// For fixed layouts text is left-aligned and space-padded, numbers are
/// already zero-padded; gaps between fields are spaces. For delimited
/// layouts with standard quoting a field holding the delimiter, a quote
/// or a line break is quoted.
///
/// # Errors
/// A field wider than its span.
pub fn write_record(
    layout: &Layout,
    raw: &[u8],
    spans: &[(usize, usize)],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match &layout.format {
        Format::Fixed(fx) => {
            let start = out.len();
            out.resize(start + fx.record_length, b' ');
            for (f, &(a, b)) in layout.fields.iter().zip(spans) {
                let raw = &raw[a..b];
                // A field this version of the layout does not have.
                let Some(span) = f.span.clone() else {
                    if raw.is_empty() {
                        continue;
                    }
                    return Err("fixed field without span".into());
                };
                let w = span.end - span.start;
                if raw.len() > w {
                    return Err(format!(
                        "field {}: {} bytes do not fit {w}",
                        f.name,
                        raw.len()
                    ));
                }
                // Left-aligned, except where only leading spaces are
                // trimmed: the padding must then come first.
                let at = if f.decoder.trim == Trim::Left {
                    span.end - raw.len()
                } else {
                    span.start
                };
                out[start + at..start + at + raw.len()].copy_from_slice(raw);
            }
        }
        Format::Delimited(dl) => {
            for (i, &(a, b)) in spans.iter().enumerate() {
                let raw = &raw[a..b];
                if i > 0 {
                    out.push(dl.delimiter);
                }
                let needs_quotes = dl.quoting == Quoting::Standard
                    && raw.iter().any(|&b| {
                        b == dl.delimiter
                            || b == b'"'
                            || b == b'\n'
                            || b == b'\r'
                    });
                if needs_quotes {
                    out.push(b'"');
                    for &b in raw {
                        if b == b'"' {
                            out.push(b'"');
                        }
                        out.push(b);
                    }
                    out.push(b'"');
                } else {
                    if raw.iter().any(|&b| b == dl.delimiter || b == b'\n') {
                        return Err(format!(
                            "field {}: value holds the delimiter or a line break",
                            layout.fields[i].name
                        ));
                    }
                    out.extend_from_slice(raw);
                }
            }
        }
    }
    out.extend_from_slice(terminator_bytes(layout));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaSet;
    use std::path::Path;

    fn field(extra: &str) -> Layout {
        let t = format!(
            "members = [\"x\"]\nformat = \"delimited\"\n[[field]]\nname = \"a\"\n{extra}\n"
        );
        SchemaSet::layout_from_str(Path::new("t.toml"), &t).unwrap()
    }

    /// Writes `v`, decodes it again, and returns the decoded text.
    fn round_trip(l: &Layout, v: &Datum) -> Result<String, String> {
        let mut raw = Vec::new();
        format_value(l, &l.fields[0], v, &mut raw)?;
        let mut scratch = Vec::new();
        l.fields[0]
            .decoder
            .decode(&raw, &mut scratch)
            .map(|v| v.to_string())
            .map_err(|r| r.to_string())
    }

    // The cases below were found by fuzz/fuzz_targets/decode.rs.

    #[test]
    fn negative_overpunch_floats() {
        let l = field("type = \"float8\"\nsign = \"overpunch\"");
        assert_eq!(round_trip(&l, &Datum::Float(-4.0)), Ok("-4".into()));
        assert_eq!(round_trip(&l, &Datum::Float(-1.5)), Ok("-1.5".into()));
        assert_eq!(round_trip(&l, &Datum::Float(2.25)), Ok("2.25".into()));
    }

    #[test]
    fn values_that_read_as_null() {
        let l = field("type = \"float8\"\nnull = [\"\", \"0\"]");
        assert_eq!(round_trip(&l, &Datum::Float(0.0)), Ok("0".into()));
        let t = field("type = \"text\"\nnull = [\"\", \"N/A\"]");
        assert!(round_trip(&t, &Datum::Text("N/A".into())).is_err());
        assert_eq!(round_trip(&t, &Datum::Null), Ok("NULL".into()));
    }

    #[test]
    fn truncated_text_is_trimmed_again() {
        let l = field(
            "type = \"varchar(1)\"\noverflow = \"truncate\"\ntrim = \"right\"\nnull = []",
        );
        let mut s = Vec::new();
        assert_eq!(
            l.fields[0].decoder.decode(b" n", &mut s).map(|v| v.to_string()),
            Ok(String::new())
        );
        assert_eq!(
            round_trip(&l, &Datum::Text(String::new())),
            Ok(String::new())
        );
    }
}
