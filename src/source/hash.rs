//! sha256 computed while reading, never in a second pass.

use std::io::{self, Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};

use crate::digest::sha256_hex;

/// Hashes every byte read through it, in order, and counts them.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: Sha256::new(), count: 0 }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads what is left (so the hash covers the whole stream) and returns
    /// `(sha256 hex, total bytes)`.
    ///
    /// # Errors
    /// A read error of the rest of the stream.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((sha256_hex(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes a seekable input (a zip archive) exactly once, front to back,
/// whatever order its reader visits it in.
///
/// Bytes are hashed as they are read when the read continues where the
/// hash stands; a read further on first hashes the gap (member headers,
/// skipped members); a read behind the hash (the central directory, read
/// first) is not hashed again. [`HashingSeeker::finish`] hashes the tail.
pub struct HashingSeeker<R> {
    inner: R,
    /// `None` when the caller knows the input's hash already.
    hasher: Option<Sha256>,
    /// Everything before this offset is hashed.
    hashed: u64,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> HashingSeeker<R> {
    /// Wraps `inner`, whose length is `len`.
    pub fn new(inner: R, len: u64) -> HashingSeeker<R> {
        HashingSeeker {
            inner,
            hasher: Some(Sha256::new()),
            hashed: 0,
            pos: 0,
            len,
        }
    }

    /// Wraps `inner` without hashing it (the caller has the input's hash
    /// from elsewhere): reads pass straight through, nothing skipped is
    /// read, and [`HashingSeeker::finish`] returns an empty string.
    pub fn unhashed(inner: R, len: u64) -> HashingSeeker<R> {
        HashingSeeker { hasher: None, ..HashingSeeker::new(inner, len) }
    }

    fn hash_gap(&mut self, to: u64) -> io::Result<()> {
        if to <= self.hashed || self.hasher.is_none() {
            return Ok(());
        }
        let back = self.pos;
        self.inner.seek(SeekFrom::Start(self.hashed))?;
        let mut buf = vec![0u8; 64 * 1024];
        while self.hashed < to {
            let want = ((to - self.hashed) as usize).min(buf.len());
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive shorter than its length",
                ));
            }
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
            self.hashed += n as u64;
        }
        self.inner.seek(SeekFrom::Start(back))?;
        Ok(())
    }

    /// Hashes what was never read and returns the sha256 (hex) of the
    /// whole input.
    ///
    /// # Errors
    /// A read error.
    pub fn finish(mut self) -> io::Result<String> {
        let len = self.len;
        self.hash_gap(len)?;
        Ok(self.hasher.map(sha256_hex).unwrap_or_default())
    }
}

impl<R: Read + Seek> Read for HashingSeeker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos > self.hashed {
            self.hash_gap(self.pos)?;
        }
        let n = self.inner.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        if start <= self.hashed
            && end > self.hashed
            && let Some(h) = &mut self.hasher
        {
            let from = (self.hashed - start) as usize;
            h.update(&buf[from..n]);
            self.hashed = end;
        }
        self.pos = end;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for HashingSeeker<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn unhashed_seeker_reads_the_same_bytes_and_hashes_none() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let mut h = HashingSeeker::unhashed(
            Cursor::new(data.clone()),
            data.len() as u64,
        );
        let mut buf = vec![0u8; 100];
        h.seek(SeekFrom::Start(40_000)).unwrap();
        h.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[40_000..40_100]);
        h.seek(SeekFrom::Start(7)).unwrap();
        h.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[7..107]);
        assert_eq!(h.finish().unwrap(), "");
    }

    #[test]
    fn seeker_hashes_whole_input_once() {
        let data: Vec<u8> =
            (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let want = sha256_hex(Sha256::new_with_prefix(&data));
        let mut h =
            HashingSeeker::new(Cursor::new(data.clone()), data.len() as u64);
        let mut buf = vec![0u8; 1000];
        h.seek(SeekFrom::Start(150_000)).unwrap();
        h.read_exact(&mut buf).unwrap();
        h.seek(SeekFrom::Start(10)).unwrap();
        h.read_exact(&mut buf).unwrap();
        h.seek(SeekFrom::Start(70_000)).unwrap();
        h.read_exact(&mut buf[..10]).unwrap();
        h.seek(SeekFrom::Start(5)).unwrap();
        h.read_exact(&mut buf).unwrap();
        assert_eq!(h.finish().unwrap(), want);
        let mut r = HashingReader::new(Cursor::new(data.clone()));
        r.read_exact(&mut buf).unwrap();
        assert_eq!(r.finish().unwrap(), (want, data.len() as u64));
    }
}
