//! A key as runs hold it, and its 24-byte form on disk: [`Slot`], written
//! by `Slot::to_bytes` and read back by [`SlotReader`].

use std::fs::File;
use std::io::{self, BufWriter, Read};

/// A slot on disk: the hash's two words and the payload's position,
/// little-endian.
pub(super) const SLOT_BYTES: usize = 24;

/// Hash ranges (by the hash's top byte) a run notes the start of, for
/// splitting the final merge.
pub(super) const MARKS: usize = 256;

/// A key as runs hold it: its hash, and where its payload is (so also
/// its arrival order: payloads are appended as keys arrive). Slots sort
/// by hash, then by arrival.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Slot {
    pub(super) hash: [u64; 2],
    pub(super) pos: u64,
}

impl Slot {
    /// The hash range (of [`MARKS`]) the slot falls in: its top byte.
    pub(super) fn range(&self) -> usize {
        (self.hash[0] >> 56) as usize
    }

    pub(super) fn to_bytes(self) -> [u8; SLOT_BYTES] {
        let mut b = [0u8; SLOT_BYTES];
        for (i, w) in [self.hash[0], self.hash[1], self.pos].iter().enumerate()
        {
            b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8; SLOT_BYTES]) -> Slot {
        let w = |i: usize| {
            u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8"))
        };
        Slot { hash: [w(0), w(1)], pos: w(2) }
    }
}

/// Reads back the slots of a run.
pub(super) struct SlotReader<R> {
    r: R,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl<R: Read> SlotReader<R> {
    pub(super) fn new(r: R) -> SlotReader<R> {
        SlotReader::with_buffer(r, 64 * 1024)
    }

    /// A reader buffering `len` bytes at a time (tests use a short
    /// buffer to cross refills).
    pub(super) fn with_buffer(r: R, len: usize) -> SlotReader<R> {
        SlotReader { r, buf: vec![0; len].into_boxed_slice(), pos: 0, end: 0 }
    }

    /// The next slot; `None` at the end.
    ///
    /// # Errors
    /// Reading failed, or the input ends inside a slot.
    pub(super) fn next(&mut self) -> io::Result<Option<Slot>> {
        if self.end - self.pos < SLOT_BYTES {
            self.refill()?;
            if self.end == self.pos {
                return Ok(None);
            }
            if self.end - self.pos < SLOT_BYTES {
                return Err(corrupt());
            }
        }
        let b = &self.buf[self.pos..self.pos + SLOT_BYTES];
        self.pos += SLOT_BYTES;
        Ok(Some(Slot::from_bytes(b.try_into().expect("slot"))))
    }

    /// Moves what is left to the front and reads until the buffer is
    /// full or the input ends.
    fn refill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < self.buf.len() {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The error of a spill file (slots or payloads) that does not read
/// back as written.
pub(super) fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "corrupt key spill file")
}

/// The file a writer wrote, flushed.
pub(super) fn into_file(w: BufWriter<File>) -> io::Result<File> {
    w.into_inner().map_err(|e| e.into_error())
}
