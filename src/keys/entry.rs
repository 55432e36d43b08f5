//! What is known of one key: where its record was ([`KeyEntry`]), the
//! order of a chunk's keys ([`KeyOrder`]) and a duplicate found
//! ([`Duplicate`]). Workers fill the first two; the index hands back the
//! third.

/// Where a key was seen, for duplicate detection.
#[derive(Clone, Copy, Debug)]
pub struct KeyEntry {
    /// 128-bit hash of the decoded key values.
    pub hash: [u64; 2],
    /// File number in the run (order of members read).
    pub file: u32,
    /// Line of the record.
    pub line: u64,
    /// Byte offset of the record.
    pub byte: u64,
    /// The key as text (first bytes), for messages.
    pub text: [u8; 31],
    /// Used length of `text`.
    pub text_len: u8,
}

impl KeyEntry {
    /// The key text for messages.
    pub fn text(&self) -> &[u8] {
        &self.text[..self.text_len as usize]
    }
}

/// The order of a chunk's keys, by their canonical bytes (see
/// [`key_bytes`](crate::pipeline::key_bytes)): keys that arrive in
/// strictly ascending order cannot repeat, which spares
/// [`KeyIndex`](super::KeyIndex) its sorting and merging. (Any strict
/// total order proves that; byte order is the one at hand, and it follows
/// the values' order for the usual keys: text, and integers and dates,
/// encoded big-endian.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyOrder {
    /// Whether each key is greater than the one before it. The default,
    /// `false`, claims nothing.
    pub ascending: bool,
    /// The canonical bytes of the first key (empty without keys).
    pub first: Vec<u8>,
    /// The canonical bytes of the last key (empty without keys).
    pub last: Vec<u8>,
}

/// A record whose key was seen before (or after, under `last`).
#[derive(Clone, Copy, Debug)]
pub struct Duplicate {
    /// The record that is not kept.
    pub entry: KeyEntry,
    /// The record that is kept.
    pub kept: KeyEntry,
}
