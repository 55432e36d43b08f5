//! Text: declared encoding to UTF-8, inner-space collapsing, upper case.
//!
//! ASCII input is passed through as a borrowed slice; only a value with a
//! byte ≥ 0x80 (in latin-1 or windows-1252), a double space to collapse
//! or a lower-case letter to raise is copied into the caller's scratch.

use super::{simd, swar};
use crate::reject::Reason;

/// A source file's character encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8; invalid sequences are rejects.
    #[default]
    Utf8,
    /// ISO-8859-1. Bytes 0x80–0x9F are C1 control codes that never occur
    /// in real text, so they are rejects (declare `windows-1252` for files
    /// that use them as punctuation).
    Latin1,
    /// Windows code page 1252: latin-1 plus punctuation in 0x80–0x9F; the
    /// five undefined bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are rejects.
    Windows1252,
}

impl Encoding {
    /// The spelling used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "latin-1",
            Encoding::Windows1252 => "windows-1252",
        }
    }

    /// Parses a schema spelling (`utf-8`, `latin-1`/`iso-8859-1`,
    /// `windows-1252`/`cp1252`), case-insensitive.
    pub fn from_name(s: &str) -> Option<Encoding> {
        Some(match s.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Encoding::Utf8,
            "latin-1" | "latin1" | "iso-8859-1" => Encoding::Latin1,
            "windows-1252" | "cp1252" => Encoding::Windows1252,
            _ => return None,
        })
    }

    /// The Unicode scalar for byte `b` ≥ 0x80, or `None` when the byte
    /// is not valid text in this single-byte encoding.
    fn high_byte(self, b: u8) -> Option<char> {
        match self {
            Encoding::Latin1 if b >= 0xA0 => Some(b as char),
            Encoding::Windows1252 if b >= 0xA0 => Some(b as char),
            Encoding::Windows1252 => {
                let c = CP1252_80_9F[(b - 0x80) as usize];
                (c != 0)
                    .then(|| char::from_u32(c as u32).unwrap_or('\u{fffd}'))
            }
            _ => None,
        }
    }

    /// The byte for `c` in this single-byte encoding, if it has one
    /// (used by the generator to write source files).
    pub fn encode_char(self, c: char) -> Option<u8> {
        let u = c as u32;
        if u < 0x80 {
            return Some(u as u8);
        }
        match self {
            Encoding::Utf8 => None,
            Encoding::Latin1 => (0xA0..=0xFF).contains(&u).then_some(u as u8),
            Encoding::Windows1252 => {
                if (0xA0..=0xFF).contains(&u) {
                    return Some(u as u8);
                }
                CP1252_80_9F
                    .iter()
                    .position(|&x| x != 0 && x as u32 == u)
                    .map(|i| 0x80 + i as u8)
            }
        }
    }
}

/// Windows-1252 bytes 0x80–0x9F as Unicode; 0 marks an undefined byte.
const CP1252_80_9F: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030,
    0x0160, 0x2039, 0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D,
    0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E,
    0x0178,
];

/// How a text value is turned into its stored form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// The source encoding.
    pub encoding: Encoding,
    /// Replace each run of spaces inside the value by one space.
    pub collapse_spaces: bool,
    /// Convert to upper case.
    pub upper: bool,
}

/// Decodes `raw` (already trimmed) into UTF-8 text with `opts` applied.
///
/// Borrows `raw` when nothing changes; otherwise writes into `scratch`
/// (cleared first) and borrows that.
///
/// # Errors
/// [`Reason::NulByte`] for a 0x00 byte (PostgreSQL text cannot hold it);
/// [`Reason::InvalidEncoding`] with the byte's offset in the value when a
/// byte is not valid in the declared encoding.
#[inline]
pub fn decode<'a>(
    raw: &'a [u8],
    opts: TextOptions,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a str, Reason> {
    // Most values are short plain ASCII and leave here borrowed: one
    // word-at-a-time pass finds high and NUL bytes, double spaces and
    // lower-case letters together.
    let Scan { high, nul, double, lower } = scan(raw);
    if nul {
        return Err(Reason::NulByte);
    }
    let ascii = !high;
    let needs_collapse = opts.collapse_spaces && double;
    let needs_upper = opts.upper && (lower || high);
    let needs_transcode = high && opts.encoding != Encoding::Utf8;
    if !needs_collapse && !needs_upper && !needs_transcode {
        return if ascii {
            Ok(simd::ascii_str(raw))
        } else {
            std::str::from_utf8(raw).map_err(|e| invalid_utf8(raw, e))
        };
    }
    scratch.clear();
    if needs_transcode {
        for (i, &b) in raw.iter().enumerate() {
            if b < 0x80 {
                scratch.push(b);
            } else {
                let c = opts
                    .encoding
                    .high_byte(b)
                    .ok_or(Reason::InvalidEncoding { offset: i as u32 })?;
                let mut tmp = [0u8; 4];
                scratch.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
    } else {
        if !ascii {
            std::str::from_utf8(raw).map_err(|e| invalid_utf8(raw, e))?;
        }
        scratch.extend_from_slice(raw);
    }
    if needs_collapse {
        let mut w = 0;
        let mut prev_space = false;
        for r in 0..scratch.len() {
            let b = scratch[r];
            if b == b' ' && prev_space {
                continue;
            }
            prev_space = b == b' ';
            scratch[w] = b;
            w += 1;
        }
        scratch.truncate(w);
    }
    if needs_upper {
        if scratch.is_ascii() {
            scratch.make_ascii_uppercase();
        } else {
            // Rare: non-ASCII letters; case mapping may change the length.
            let up = std::str::from_utf8(scratch)
                .map(str::to_uppercase)
                .unwrap_or_default();
            scratch.clear();
            scratch.extend_from_slice(up.as_bytes());
        }
    }
    std::str::from_utf8(scratch).map_err(|e| Reason::InvalidEncoding {
        offset: e.valid_up_to() as u32,
    })
}

/// Whether `raw` holds only bytes 0x01 to 0x7F: text that is valid in
/// every supported encoding, decodes to itself and has no NUL. One pass
/// the compiler vectorizes, for a whole record at once.
#[inline]
pub fn plain_ascii(raw: &[u8]) -> bool {
    // A byte outside 1..=0x7F is at least 0x7F after subtracting 1.
    let outside = |acc: bool, b: &u8| acc | (b.wrapping_sub(1) >= 0x7F);
    !raw.chunks(64).any(|c| c.iter().fold(false, outside))
}

/// What one pass over a value found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scan {
    /// A byte ≥ 0x80.
    high: bool,
    /// A 0x00 byte.
    nul: bool,
    /// Two spaces in a row.
    double: bool,
    /// An ASCII lower-case letter (meaningful only without `high`).
    lower: bool,
}

/// Scans `raw` eight bytes at a time (SWAR: each test is exact per byte,
/// with no carry between bytes).
#[inline]
fn scan(raw: &[u8]) -> Scan {
    let mut acc = Swar::default();
    if raw.len() >= 8 {
        let mut words = raw.chunks_exact(8);
        for w in &mut words {
            acc.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        if !words.remainder().is_empty() {
            // The last eight bytes, overlapping bytes already seen: seeing
            // a byte twice changes no test, and every pair of neighbours
            // in them is a real pair.
            acc.carry = 0;
            let last = &raw[raw.len() - 8..];
            acc.word(u64::from_le_bytes(last.try_into().expect("8 bytes")));
        }
    } else if !raw.is_empty() {
        acc.word(swar::left_word(raw, b'A'));
    }
    Scan {
        high: acc.high & swar::HIGH != 0,
        nul: acc.nul != 0,
        double: acc.double != 0,
        lower: acc.lower & swar::HIGH != 0,
    }
}

/// The tests of [`scan`], accumulated over words.
#[derive(Default)]
struct Swar {
    high: u64,
    nul: u64,
    double: u64,
    lower: u64,
    /// Whether the previous word ended in a space (bit 7).
    carry: u64,
}

impl Swar {
    #[inline]
    fn word(&mut self, x: u64) {
        self.high |= x;
        self.nul |= swar::zero(x);
        let sp = swar::equal(x, b' ');
        self.double |= sp & ((sp << 8) | self.carry);
        self.carry = sp >> 56;
        // Bytes from `a` to `z`: adding 0x1F sets bit 7 from `a` up,
        // adding 0x05 sets it from `{` up (no carries below 0x80).
        let x = x & swar::LOW7;
        self.lower |= (x + swar::ONES * 0x1F) & !(x + swar::ONES * 0x05);
    }
}

fn invalid_utf8(_raw: &[u8], e: std::str::Utf8Error) -> Reason {
    Reason::InvalidEncoding { offset: e.valid_up_to() as u32 }
}

/// Number of characters in `s` (PostgreSQL measures `varchar(n)` in
/// characters, not bytes).
#[inline]
pub fn char_len(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.chars().count() }
}

/// The longest prefix of `s` with at most `n` characters.
pub fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(
        raw: &[u8],
        enc: Encoding,
        collapse: bool,
        upper: bool,
    ) -> Result<String, Reason> {
        let mut s = Vec::new();
        decode(
            raw,
            TextOptions { encoding: enc, collapse_spaces: collapse, upper },
            &mut s,
        )
        .map(str::to_owned)
    }

    #[test]
    fn encodings() {
        assert_eq!(
            d(b"PENA", Encoding::Latin1, false, false),
            Ok("PENA".into())
        );
        assert_eq!(
            d(b"PE\xd1A", Encoding::Latin1, false, false),
            Ok("PEÑA".into())
        );
        assert_eq!(
            d(b"PE\xd1A", Encoding::Windows1252, false, false),
            Ok("PEÑA".into())
        );
        assert_eq!(
            d(b"\x93A\x94", Encoding::Windows1252, false, false),
            Ok("\u{201c}A\u{201d}".into())
        );
        assert_eq!(
            d(b"A\x81", Encoding::Windows1252, false, false),
            Err(Reason::InvalidEncoding { offset: 1 })
        );
        assert_eq!(
            d(b"A\x93", Encoding::Latin1, false, false),
            Err(Reason::InvalidEncoding { offset: 1 })
        );
        assert_eq!(
            d(b"PE\xd1A", Encoding::Utf8, false, false),
            Err(Reason::InvalidEncoding { offset: 2 })
        );
        assert_eq!(
            d("PEÑA".as_bytes(), Encoding::Utf8, false, false),
            Ok("PEÑA".into())
        );
        assert_eq!(
            d(b"A\0B", Encoding::Utf8, false, false),
            Err(Reason::NulByte)
        );
    }

    #[test]
    fn transforms() {
        assert_eq!(
            d(b"MILLER NORMAN B  & LESLIE B", Encoding::Latin1, true, false),
            Ok("MILLER NORMAN B & LESLIE B".into())
        );
        assert_eq!(
            d(b"a   b  c", Encoding::Utf8, true, true),
            Ok("A B C".into())
        );
        assert_eq!(
            d(b"pe\xf1a", Encoding::Latin1, false, true),
            Ok("PEÑA".into())
        );
        assert_eq!(
            d(b"200 OAK \"AVE", Encoding::Latin1, true, true),
            Ok("200 OAK \"AVE".into())
        );
    }

    #[test]
    fn scan_agrees_with_bytewise_tests() {
        let naive = |r: &[u8]| Scan {
            high: r.iter().any(|&b| b >= 0x80),
            nul: r.contains(&0),
            double: r.windows(2).any(|w| w == b"  "),
            lower: r.iter().any(u8::is_ascii_lowercase),
        };
        let alphabet = b" \0aAzZ`{@[\x7f\x80\xff9";
        // Every string of up to 3 symbols, placed at each offset of a
        // 17-byte value so words and the padded tail are all crossed.
        let mut v = Vec::new();
        for n in 0..=3u32 {
            for code in 0..alphabet.len().pow(n) {
                let mut sym = Vec::new();
                let mut c = code;
                for _ in 0..n {
                    sym.push(alphabet[c % alphabet.len()]);
                    c /= alphabet.len();
                }
                for at in 0..=(17 - sym.len()) {
                    v.clear();
                    v.resize(17, b'Q');
                    v[at..at + sym.len()].copy_from_slice(&sym);
                    for len in [at + sym.len(), 17] {
                        let r = &v[..len];
                        let (got, want) = (scan(r), naive(r));
                        assert_eq!(
                            (got.high, got.nul, got.double),
                            (want.high, want.nul, want.double),
                            "{r:?}"
                        );
                        if !want.high {
                            assert_eq!(got.lower, want.lower, "{r:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn encode_char_inverts_decode() {
        for enc in [Encoding::Latin1, Encoding::Windows1252] {
            for b in 0x80..=0xFFu8 {
                if let Some(c) = enc.high_byte(b) {
                    assert_eq!(enc.encode_char(c), Some(b));
                }
            }
        }
        assert_eq!(truncate_chars("ÑAB", 2), "ÑA");
        assert_eq!(char_len("ÑAB"), 3);
    }
}
