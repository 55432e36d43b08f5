//! Payloads: what a message about a key needs (file, line, byte and
//! text), appended to one file in arrival order as keys are spilled
//! ([`slots_of`]) and read back by position only for a key that repeats
//! ([`Payloads`]).

use std::fs::File;
use std::io::{self, Write};

use super::entry::KeyEntry;
use super::slot::{Slot, corrupt};

/// Longest payload on disk: the file, line and byte as varints (at most
/// 5, 10 and 10 bytes), and the key text with its length.
const MAX_PAYLOAD_BYTES: usize = 5 + 10 + 10 + 1 + 31;

/// Appends the payloads of `keys` to `out` and their slots to `slots`,
/// `base` being where `out` starts among all payloads; returns where the
/// payloads end. The payloads are encoded into a buffer written 64 KiB
/// at a time (a write of each key's 25 bytes cost a call to copy them).
pub(super) fn slots_of(
    keys: &[KeyEntry],
    base: u64,
    out: &mut impl Write,
    slots: &mut Vec<Slot>,
) -> io::Result<u64> {
    const BATCH: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(BATCH + MAX_PAYLOAD_BYTES);
    let mut pos = base;
    for e in keys {
        slots.push(Slot { hash: e.hash, pos });
        pos += write_payload(&mut buf, e) as u64;
        if buf.len() >= BATCH {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    Ok(pos)
}

/// Where the entries of a finished index are: the spilled ones'
/// payloads in a file, the last ones in memory. (Read by position: a
/// mapping of the file would keep every page a repeat touched resident,
/// so memory would grow with the repeats.)
pub(super) struct Payloads {
    /// Payloads at positions `[0, len)`.
    pub(super) file: Option<File>,
    pub(super) len: u64,
    /// The entries not spilled: entry `i` at position `len + i`.
    pub(super) tail: Vec<KeyEntry>,
}

impl Payloads {
    /// The entry of `slot`, read back.
    pub(super) fn entry(&self, slot: Slot) -> io::Result<KeyEntry> {
        if slot.pos >= self.len {
            let at =
                usize::try_from(slot.pos - self.len).map_err(|_| corrupt())?;
            return self.tail.get(at).copied().ok_or_else(corrupt);
        }
        let mut b = [0u8; MAX_PAYLOAD_BYTES];
        let file = self.file.as_ref().ok_or_else(corrupt)?;
        let n = (self.len - slot.pos).min(b.len() as u64) as usize;
        read_exact_at(file, &mut b[..n], slot.pos)?;
        decode_payload(&b[..n], slot.hash)
    }
}

/// Fills `buf` from `file` at `pos` (elsewhere than on unix, by seeking
/// a handle of its own: the merge runs on one thread there).
fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, pos)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(buf)
    }
}

/// Appends the payload of `e` to `out`: its file, line and byte as
/// varints (seven bits a byte, low bits first) and its key text after
/// one byte of length, about 25 bytes for a 13-byte key. Returns the
/// bytes written.
fn write_payload(out: &mut Vec<u8>, e: &KeyEntry) -> usize {
    let start = out.len();
    out.resize(start + MAX_PAYLOAD_BYTES, 0);
    let b = &mut out[start..];
    let mut n = 0;
    for mut v in [e.file as u64, e.line, e.byte] {
        while v >= 0x80 {
            b[n] = v as u8 | 0x80;
            v >>= 7;
            n += 1;
        }
        b[n] = v as u8;
        n += 1;
    }
    let len = e.text_len as usize;
    b[n] = e.text_len;
    b[n + 1..n + 1 + len].copy_from_slice(&e.text[..len]);
    n += 1 + len;
    out.truncate(start + n);
    n
}

/// The entry of hash `hash` whose payload [`write_payload`] wrote at the
/// start of `b`.
fn decode_payload(b: &[u8], hash: [u64; 2]) -> io::Result<KeyEntry> {
    let mut at = 0;
    let mut numbers = [0u64; 3];
    for v in &mut numbers {
        for shift in (0..70).step_by(7) {
            let x = *b.get(at).ok_or_else(corrupt)?;
            at += 1;
            *v |=
                ((x & 0x7F) as u64).checked_shl(shift).ok_or_else(corrupt)?;
            if x < 0x80 {
                break;
            }
            if shift == 63 {
                return Err(corrupt());
            }
        }
    }
    let len = *b.get(at).ok_or_else(corrupt)? as usize;
    let text = b.get(at + 1..at + 1 + len).filter(|_| len <= 31);
    let text = text.ok_or_else(corrupt)?;
    let mut t = [0u8; 31];
    t[..len].copy_from_slice(text);
    let [file, line, byte] = numbers;
    Ok(KeyEntry {
        hash,
        file: u32::try_from(file).map_err(|_| corrupt())?,
        line,
        byte,
        text: t,
        text_len: len as u8,
    })
}
