//! What every stage reports about records: why one was rejected
//! ([`Reason`]), where ([`Position`]), the reject itself ([`Reject`]) and
//! the record counts ([`Counts`]). A leaf: the stages that produce these
//! (record, decode, pipeline, load) and those that show them (report, cli)
//! all depend on it, and it on none of them. (A position is displayed by
//! `decode::show`, which knows how to quote a member's name.)

use std::fmt;
use std::sync::Arc;

/// Where in the input a record or field is: what rejects and errors carry,
/// so a message, the rejects file and the JSON report point at the same
/// place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The input path.
    pub input: Arc<str>,
    /// The member of the input.
    pub member: Arc<str>,
    /// Line of the record, from 1.
    pub line: u64,
    /// Byte offset of the record (record-level) or field (field-level)
    /// in the member, from 0.
    pub byte: u64,
    /// Field index, for a field-level position.
    pub field: Option<u16>,
}

/// Why a record or field was rejected. Cheap to copy; no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A required field is empty or a null sentinel.
    Required,
    /// A number field holds no digits.
    NoDigits,
    /// A byte that is not a digit where one is expected.
    InvalidDigit(u8),
    /// An overpunch sign byte that is not `{}A-R` or a digit.
    InvalidOverpunch(u8),
    /// A number too large for the field's type or precision.
    Overflow,
    /// Nonzero digits beyond the field's scale (rounding would change data).
    TooManyDecimals {
        /// The field's scale.
        scale: u16,
    },
    /// Not a float.
    InvalidFloat,
    /// Not one of the declared true/false spellings.
    InvalidBoolean,
    /// Does not follow the declared date/time format.
    DateLayout,
    /// A calendar date that does not exist (`02/30/2024`).
    ImpossibleDate,
    /// A time of day that does not exist (`25:00`).
    ImpossibleTime,
    /// A byte that is not valid in the declared encoding.
    InvalidEncoding {
        /// Offset of the byte in the value, from 0.
        offset: u32,
    },
    /// A 0x00 byte, which PostgreSQL text cannot hold.
    NulByte,
    /// Text longer than `varchar(n)`/`char(n)` with overflow = reject.
    TooLong {
        /// Length in characters.
        len: u32,
        /// The declared maximum.
        max: u32,
    },
    /// Below the declared minimum.
    BelowMin,
    /// Above the declared maximum.
    AboveMax,
    /// Does not match the declared pattern.
    PatternMismatch,
    /// Not one of the declared allowed values.
    NotAllowed,
    /// A fixed-width record shorter than the layout (shorter = reject).
    RecordTooShort {
        /// Record length in bytes, without terminator.
        len: u32,
        /// The layout's record length.
        expected: u32,
    },
    /// A fixed-width record longer than the layout (longer = reject).
    RecordTooLong {
        /// Record length in bytes, without terminator.
        len: u32,
        /// The layout's record length.
        expected: u32,
    },
    /// A delimited record with the wrong number of fields.
    FieldCount {
        /// Fields found.
        found: u32,
        /// Fields the layout has.
        expected: u32,
    },
    /// A quoted field that never closes before the end of the member.
    UnterminatedQuote,
    /// Bytes after a closing quote, or a quote inside an unquoted field.
    StrayQuote,
    /// The record's line terminator is not the declared one.
    WrongTerminator,
    /// A reference to another table finds no row there (a load's
    /// `on_orphan = "reject"`).
    Orphan,
    /// Another record earlier in the input has the same key.
    DuplicateKey {
        /// Line of the first record with this key (1-based).
        first_line: u64,
    },
}

impl Reason {
    /// A stable short name for grouping and machine output
    /// (`invalid_number`, `impossible_date`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Required => "required",
            Reason::NoDigits
            | Reason::InvalidDigit(_)
            | Reason::InvalidOverpunch(_) => "invalid_number",
            Reason::InvalidFloat => "invalid_number",
            Reason::Overflow => "overflow",
            Reason::TooManyDecimals { .. } => "too_many_decimals",
            Reason::InvalidBoolean => "invalid_boolean",
            Reason::DateLayout => "date_format",
            Reason::ImpossibleDate => "impossible_date",
            Reason::ImpossibleTime => "impossible_time",
            Reason::InvalidEncoding { .. } | Reason::NulByte => "encoding",
            Reason::TooLong { .. } => "too_long",
            Reason::BelowMin | Reason::AboveMax => "range",
            Reason::PatternMismatch => "pattern",
            Reason::NotAllowed => "not_allowed",
            Reason::RecordTooShort { .. } | Reason::RecordTooLong { .. } => {
                "record_length"
            }
            Reason::FieldCount { .. } => "field_count",
            Reason::UnterminatedQuote | Reason::StrayQuote => "quote",
            Reason::WrongTerminator => "terminator",
            Reason::DuplicateKey { .. } => "duplicate_key",
            Reason::Orphan => "orphan",
        }
    }

    /// Whether the reason concerns the whole record rather than one field.
    pub fn is_record_level(&self) -> bool {
        matches!(
            self,
            Reason::RecordTooShort { .. }
                | Reason::RecordTooLong { .. }
                | Reason::FieldCount { .. }
                | Reason::UnterminatedQuote
                | Reason::StrayQuote
                | Reason::WrongTerminator
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Required => f.write_str("required value is missing"),
            Reason::NoDigits => f.write_str("no digits"),
            Reason::InvalidDigit(b) => {
                write!(f, "invalid digit {}", show_byte(*b))
            }
            Reason::InvalidOverpunch(b) => {
                write!(f, "invalid overpunch sign {}", show_byte(*b))
            }
            Reason::Overflow => {
                f.write_str("number out of range for the field's type")
            }
            Reason::TooManyDecimals { scale } => {
                write!(f, "nonzero digits beyond {scale} decimal places")
            }
            Reason::InvalidFloat => {
                f.write_str("not a finite floating-point number")
            }
            Reason::InvalidBoolean => {
                f.write_str("not a declared true/false spelling")
            }
            Reason::DateLayout => {
                f.write_str("does not match the declared format")
            }
            Reason::ImpossibleDate => f.write_str("impossible date"),
            Reason::ImpossibleTime => f.write_str("impossible time of day"),
            Reason::InvalidEncoding { offset } => {
                write!(
                    f,
                    "byte {offset} of the value is not valid in the declared encoding"
                )
            }
            Reason::NulByte => f.write_str("NUL byte in text"),
            Reason::TooLong { len, max } => {
                write!(f, "{len} characters, longer than {max}")
            }
            Reason::BelowMin => f.write_str("below the declared minimum"),
            Reason::AboveMax => f.write_str("above the declared maximum"),
            Reason::PatternMismatch => {
                f.write_str("does not match the declared pattern")
            }
            Reason::NotAllowed => f.write_str("not one of the allowed values"),
            Reason::RecordTooShort { len, expected } => {
                write!(
                    f,
                    "record is {len} bytes, shorter than the layout's {expected}"
                )
            }
            Reason::RecordTooLong { len, expected } => {
                write!(
                    f,
                    "record is {len} bytes, longer than the layout's {expected}"
                )
            }
            Reason::FieldCount { found, expected } => {
                write!(
                    f,
                    "record has {found} fields, the layout has {expected}"
                )
            }
            Reason::UnterminatedQuote => {
                f.write_str("quoted field is never closed")
            }
            Reason::StrayQuote => f.write_str("stray quote character"),
            Reason::WrongTerminator => {
                f.write_str("line terminator is not the declared one")
            }
            Reason::Orphan => {
                f.write_str("no row of the referenced table has this key")
            }
            Reason::DuplicateKey { first_line } => {
                write!(f, "duplicate key, first seen at line {first_line}")
            }
        }
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// Longest raw value kept with a reject (bytes); longer ones are cut and
/// marked, so a runaway record cannot flood the rejects.
pub const MAX_REJECT_RAW: usize = 64 * 1024;

/// Record counts. `read = valid + rejected + filtered` always holds.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Counts {
    /// Records read.
    pub read: u64,
    /// Records that passed every check.
    pub valid: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Records filtered: blank, by a filter rule, or dropped as a
    /// duplicate under the first/last policies.
    pub filtered: u64,
    /// Of `filtered`: blank records.
    pub blank: u64,
    /// Of `filtered`: records a filter rule left out.
    pub filtered_by_rule: u64,
    /// Of `filtered`: duplicates dropped by the first/last policies.
    pub deduplicated: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.read += o.read;
        self.valid += o.valid;
        self.rejected += o.rejected;
        self.filtered += o.filtered;
        self.blank += o.blank;
        self.filtered_by_rule += o.filtered_by_rule;
        self.deduplicated += o.deduplicated;
    }
}

impl Counts {
    /// Whether the counts add up.
    pub fn balanced(&self) -> bool {
        self.read == self.valid + self.rejected + self.filtered
            && self.filtered
                == self.blank + self.filtered_by_rule + self.deduplicated
    }
}

/// A rejected record: where, what and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    /// Where: the record (record-level) or field (field-level).
    pub at: Position,
    /// The raw bytes of the field, or of the record.
    pub raw: Box<[u8]>,
    /// Whether `raw` was cut at [`MAX_REJECT_RAW`].
    pub raw_truncated: bool,
    /// Why.
    pub reason: Reason,
}

impl Reject {
    /// A reject of `raw` at `at`, keeping at most [`MAX_REJECT_RAW`]
    /// bytes of it.
    pub fn new(at: Position, raw: &[u8], reason: Reason) -> Reject {
        let raw_truncated = raw.len() > MAX_REJECT_RAW;
        let raw = raw[..raw.len().min(MAX_REJECT_RAW)].into();
        Reject { at, raw, raw_truncated, reason }
    }
}
