//! PostgreSQL binary `COPY` encoding, written straight from decoded
//! values into a caller's buffer.
//!
//! The stream is a header (signature `PGCOPY\n\xff\r\n\0`, flags,
//! extension length), then per row an `i16` field count and per field an
//! `i32` length (−1 for NULL) followed by the big-endian payload, then an
//! `i16` −1 trailer. Each encoder is a free function named after the type
//! it writes. Nothing here knows of files, threads or connections.

mod sink;

pub use sink::RowSink;

use sha2::{Digest, Sha256};

use crate::decode::{Decimal, FieldType, Value};

/// The binary COPY signature and header (no OIDs, no extension).
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The end-of-data marker.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Appends the header.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(HEADER);
}

/// Appends the trailer.
pub fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(TRAILER);
}

/// Appends a NULL field.
#[inline]
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

#[inline]
fn fixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends an `int2`.
#[inline]
pub fn int2(out: &mut Vec<u8>, v: i16) {
    fixed(out, &v.to_be_bytes());
}

/// Appends an `int4`.
#[inline]
pub fn int4(out: &mut Vec<u8>, v: i32) {
    fixed(out, &v.to_be_bytes());
}

/// Appends an `int8`.
#[inline]
pub fn int8(out: &mut Vec<u8>, v: i64) {
    fixed(out, &v.to_be_bytes());
}

/// Appends a `float8`.
#[inline]
pub fn float8(out: &mut Vec<u8>, v: f64) {
    fixed(out, &v.to_bits().to_be_bytes());
}

/// Appends a `bool`.
#[inline]
pub fn bool(out: &mut Vec<u8>, v: bool) {
    fixed(out, &[v as u8]);
}

/// Appends a `date`: days since 2000-01-01.
#[inline]
pub fn date(out: &mut Vec<u8>, days: i32) {
    fixed(out, &days.to_be_bytes());
}

/// Appends a `timestamp`: microseconds since 2000-01-01 00:00:00.
#[inline]
pub fn timestamp(out: &mut Vec<u8>, usecs: i64) {
    fixed(out, &usecs.to_be_bytes());
}

/// Appends a `time`: microseconds since midnight.
#[inline]
pub fn time(out: &mut Vec<u8>, usecs: i64) {
    fixed(out, &usecs.to_be_bytes());
}

/// Appends `text` (also `varchar` and `bpchar`): the UTF-8 bytes.
#[inline]
pub fn text(out: &mut Vec<u8>, s: &str) {
    fixed(out, s.as_bytes());
}

/// Appends a `numeric` in PostgreSQL's base-10000 form: `ndigits`,
/// `weight` (of the first digit, in base-10000 places), `sign`, `dscale`
/// (decimal places shown) and the digits, most significant first, with
/// no leading or trailing zero digits.
pub fn numeric(out: &mut Vec<u8>, d: &Decimal) {
    let scale = d.scale as u32;
    let mut m = d.mantissa.unsigned_abs();
    // Align the fraction to whole base-10000 digits.
    let pad = (4 - scale % 4) % 4;
    let frac_groups = ((scale + pad) / 4) as i32;
    let mut groups: [u16; 12] = [0; 12];
    let mut n = 0;
    if m != 0 {
        // The last group holds the final `4 - pad` digits, shifted left by
        // `pad` (multiplying the whole value could overflow 38 digits).
        let first = 10u128.pow(4 - pad);
        groups[0] = ((m % first) * 10u128.pow(pad)) as u16;
        m /= first;
        n = 1;
        while m > 0 {
            groups[n] = (m % 10_000) as u16;
            m /= 10_000;
            n += 1;
        }
    }

    // groups[0..n] is least significant first; drop trailing zeros.
    let mut low = 0;
    while low < n && groups[low] == 0 {
        low += 1;
    }
    let ndigits = n - low;
    let weight: i16 =
        if ndigits == 0 { 0 } else { (n as i32 - 1 - frac_groups) as i16 };
    let sign: u16 = if d.mantissa < 0 { 0x4000 } else { 0 };
    let len = 8 + 2 * ndigits;
    out.extend_from_slice(&(len as i32).to_be_bytes());
    out.extend_from_slice(&(ndigits as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(d.scale as i16).to_be_bytes());
    for g in groups[low..n].iter().rev() {
        out.extend_from_slice(&(*g as i16).to_be_bytes());
    }
}

/// Appends one value of a field of type `ty`.
#[inline]
pub fn value(out: &mut Vec<u8>, ty: FieldType, v: &Value<'_>) {
    match (*v, ty) {
        (Value::Null, _) => null(out),
        (Value::Int(i), FieldType::Smallint) => int2(out, i as i16),
        (Value::Int(i), FieldType::Int) => int4(out, i as i32),
        (Value::Int(i), _) => int8(out, i),
        (Value::Numeric(d), _) => numeric(out, &d),
        (Value::Float(f), _) => float8(out, f),
        (Value::Bool(b), _) => bool(out, b),
        (Value::Date(d), _) => date(out, d),
        (Value::Timestamp(t), _) => timestamp(out, t),
        (Value::Time(t), _) => time(out, t),
        (Value::Text(s), _) => text(out, s),
    }
}

/// Rows of one chunk as binary COPY data (no header or trailer), each row
/// starting with fwload's own columns `_fw_file int4`, `_fw_line int8` and
/// `_fw_reject bool` (true for the key of a rejected record).
#[derive(Debug, Default)]
pub struct CopyRows {
    /// The encoded rows.
    pub buf: Vec<u8>,
    row_start: usize,
    rejected: bool,
    /// Valid rows completed.
    pub rows: u64,
    /// Rejected records' keys completed.
    pub rejected_keys: u64,
    /// Leave rejected records' keys out (a table that becomes a new
    /// target has no rows a snapshot's deletes could remove).
    pub skip_rejected_keys: bool,
    /// End each row with `_fw_hash uuid`: the row's fingerprint, the
    /// first 16 bytes of the sha256 of its fields' binary encodings (so
    /// of its decoded values: equal values, equal fingerprint); NULL for
    /// a rejected record's key.
    pub fingerprint: bool,
    fields_start: usize,
}

impl CopyRows {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> CopyRows {
        CopyRows { buf: Vec::with_capacity(capacity), ..CopyRows::default() }
    }
}

impl CopyRows {
    fn begin(&mut self, file: u32, line: u64, nfields: usize, rejected: bool) {
        self.row_start = self.buf.len();
        self.rejected = rejected;
        let columns = nfields + 3 + usize::from(self.fingerprint);
        self.buf.extend_from_slice(&(columns as i16).to_be_bytes());
        int4(&mut self.buf, file as i32);
        int8(&mut self.buf, line as i64);
        bool(&mut self.buf, rejected);
        self.fields_start = self.buf.len();
    }

    /// Appends the fingerprint of the row's fields (see
    /// [`CopyRows::fingerprint`]).
    fn finish_fingerprint(&mut self) {
        if self.rejected {
            null(&mut self.buf);
            return;
        }
        let digest = Sha256::digest(&self.buf[self.fields_start..]);
        fixed(&mut self.buf, &digest[..16]);
    }
}

impl RowSink for CopyRows {
    fn reset(&mut self) -> bool {
        self.buf.clear();
        self.rows = 0;
        self.rejected_keys = 0;
        true
    }

    #[inline]
    fn start_row(&mut self, file: u32, line: u64, nfields: usize) {
        self.begin(file, line, nfields, false);
    }

    fn start_rejected_key(
        &mut self,
        file: u32,
        line: u64,
        nfields: usize,
    ) -> bool {
        if self.skip_rejected_keys {
            return false;
        }
        self.begin(file, line, nfields, true);
        true
    }

    #[inline]
    fn value(&mut self, ty: FieldType, v: &Value<'_>) {
        value(&mut self.buf, ty, v);
    }

    #[inline]
    fn end_row(&mut self) {
        if self.fingerprint {
            self.finish_fingerprint();
        }
        if self.rejected {
            self.rejected_keys += 1;
        } else {
            self.rows += 1;
        }
    }

    #[inline]
    fn abort_row(&mut self) {
        self.buf.truncate(self.row_start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(m: i128, s: u16) -> Vec<u8> {
        let mut out = Vec::new();
        numeric(&mut out, &Decimal { mantissa: m, scale: s });
        out
    }

    fn words(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn numeric_layout() {
        // 123.45: ndigits 2, weight 0, +, dscale 2, digits 123 4500.
        let mut want = (12i32).to_be_bytes().to_vec();
        want.extend(words(&[2, 0, 0, 2, 123, 4500]));
        assert_eq!(num(12345, 2), want);
        // 0 with scale 2: no digits.
        let mut want = (8i32).to_be_bytes().to_vec();
        want.extend(words(&[0, 0, 0, 2]));
        assert_eq!(num(0, 2), want);
        // -0.0001: weight -1, digit 1.
        let mut want = (10i32).to_be_bytes().to_vec();
        want.extend(words(&[1, -1, 0x4000, 4, 1]));
        assert_eq!(num(-1, 4), want);
        // 100000000: 1 0000 0000 → trailing zero digits dropped, weight 2.
        let mut want = (10i32).to_be_bytes().to_vec();
        want.extend(words(&[1, 2, 0, 0, 1]));
        assert_eq!(num(100_000_000, 0), want);
        // 38 nines fit.
        let big = 10i128.pow(38) - 1;
        assert_eq!(num(big, 0).len(), 4 + 8 + 2 * 10);
    }

    #[test]
    fn rows_abort_cleanly() {
        let mut r = CopyRows::default();
        r.start_row(0, 1, 1);
        r.value(FieldType::Int, &Value::Int(5));
        r.end_row();
        let len = r.buf.len();
        r.start_row(0, 2, 1);
        r.value(FieldType::Int, &Value::Int(6));
        r.abort_row();
        assert_eq!(r.buf.len(), len);
        assert_eq!(r.rows, 1);
        assert_eq!(&r.buf[..2], &4i16.to_be_bytes());
    }
}
