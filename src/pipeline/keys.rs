//! Duplicate keys across a whole table, in bounded memory.
//!
//! Every valid record's key hash is collected; when the buffer fills, a
//! thread of its own sorts it and spills it to an anonymous temporary file
//! while the next keys fill another buffer. At the end the sorted runs are
//! merged and equal hashes side by side are the duplicates (the merge
//! split over threads by ranges of the hash, each thread reading its range
//! of every run). Memory stays at three buffers (the one filling, the one
//! being spilled and the room to sort it) whatever the number of records;
//! disk holds 68 bytes a record. Hashes are 128-bit (xxh3), so a
//! false match is not a practical concern (about 10⁻²⁵ for ten million
//! keys).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use super::worker::KeyEntry;
use crate::schema::DuplicatePolicy;

/// Entries held in memory before a run is spilled (about 4.5 MiB).
pub const RUN_ENTRIES: usize = 64 * 1024;

/// Runs merged at once: as many files open, and 64 KiB of buffer each.
const FAN_IN: usize = 32;

/// Fewer keys than this stay in memory when a table's input is finished
/// (a spill file would cost more than the memory).
const SEAL_MIN: usize = 4096;

const ENTRY_BYTES: usize = 8 + 8 + 4 + 8 + 8 + 1 + 31;

/// Most threads the final merge is split over.
const MAX_PARTS: usize = 16;

/// Duplicates a part of the final merge may have found before the thread
/// that reports them takes them.
const PART_QUEUE: usize = 1024;

/// A record whose key was seen before (or after, under `last`).
#[derive(Clone, Copy, Debug)]
pub struct Duplicate {
    /// The record that is not kept.
    pub entry: KeyEntry,
    /// The record that is kept.
    pub kept: KeyEntry,
}

/// Collects keys and finds duplicates.
pub struct KeyIndex {
    /// Keys not yet in a run.
    buf: Vec<KeyEntry>,
    /// The runs, when no spill is under way (`None` only after a spill
    /// failed).
    store: Option<Store>,
    /// A spill under way on a thread of its own, which gives the store
    /// back when done: the keys that arrive meanwhile fill `buf`.
    spilling: Option<std::thread::JoinHandle<io::Result<Store>>>,
    run_entries: usize,
    /// Threads the final merge is split over (by ranges of the hash; read
    /// by positioned reads, so on unix only).
    #[cfg_attr(not(unix), allow(dead_code))]
    parts: usize,
    total: u64,
}

/// Sorted runs on disk and the room to make them.
struct Store {
    /// Runs with their level: `fan_in` runs of one level are merged into
    /// one of the next, so however many keys arrive, no more than
    /// `fan_in` runs a level are open and each key is rewritten once a
    /// level.
    runs: Vec<(u32, File)>,
    fan_in: usize,
    /// Room for [`sort`].
    spare: Vec<KeyEntry>,
    /// The buffer of the last spill, emptied, for the next keys.
    free: Vec<KeyEntry>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::new(RUN_ENTRIES)
    }
}

fn order(e: &KeyEntry) -> (u64, u64, u32, u64) {
    (e.hash[0], e.hash[1], e.file, e.line)
}

/// Bits of the hash that pick a bucket in [`sort`].
const BUCKET_BITS: u32 = 16;

/// Sorts `buf` by [`order`], using `spare` as room. The hashes are
/// uniform, so a counting pass on their top bits spreads the entries over
/// 65,536 buckets of a few entries each, which are then sorted in place:
/// two passes over the entries instead of a comparison sort's many moves
/// of 72-byte entries (measured: the comparison sort was most of the
/// time the validation of a keyed table spent on its keys).
fn sort(buf: &mut Vec<KeyEntry>, spare: &mut Vec<KeyEntry>) {
    if buf.len() < 1 << BUCKET_BITS {
        buf.sort_unstable_by_key(order);
        return;
    }
    let bucket = |e: &KeyEntry| (e.hash[0] >> (64 - BUCKET_BITS)) as usize;
    let mut start = vec![0usize; (1 << BUCKET_BITS) + 1];
    for e in buf.iter() {
        start[bucket(e) + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    spare.clear();
    spare.extend_from_slice(buf);
    let mut next = start.clone();
    for e in buf.iter() {
        let b = bucket(e);
        spare[next[b]] = *e;
        next[b] += 1;
    }
    for w in start.windows(2) {
        if w[1] - w[0] > 1 {
            spare[w[0]..w[1]].sort_unstable_by_key(order);
        }
    }
    std::mem::swap(buf, spare);
}

impl KeyIndex {
    /// An index spilling every `run_entries` keys.
    pub fn new(run_entries: usize) -> KeyIndex {
        KeyIndex::with_fan_in(run_entries, FAN_IN)
    }

    /// An index spilling every `run_entries` keys and merging `fan_in`
    /// runs at once.
    pub fn with_fan_in(run_entries: usize, fan_in: usize) -> KeyIndex {
        KeyIndex {
            buf: Vec::new(),
            store: Some(Store {
                runs: Vec::new(),
                fan_in: fan_in.max(2),
                spare: Vec::new(),
                free: Vec::new(),
            }),
            spilling: None,
            run_entries: run_entries.max(1),
            parts: rayon::current_num_threads().clamp(1, MAX_PARTS),
            total: 0,
        }
    }

    /// Splits the final merge over `parts` threads.
    pub fn with_parts(mut self, parts: usize) -> KeyIndex {
        self.parts = parts.clamp(1, MAX_PARTS);
        self
    }

    /// Keys collected so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no key was collected.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds keys (in input order).
    ///
    /// # Errors
    /// Writing a spill file failed.
    pub fn push(&mut self, keys: &[KeyEntry]) -> io::Result<()> {
        for k in keys {
            if self.buf.len() >= self.run_entries {
                self.spill(true)?;
            }
            self.buf.push(*k);
        }
        self.total += keys.len() as u64;
        Ok(())
    }

    /// Moves the keys held in memory to a sorted run on disk, so a table
    /// whose input is finished keeps no memory until [`KeyIndex::finish`].
    ///
    /// # Errors
    /// Writing the spill file failed.
    pub fn seal(&mut self) -> io::Result<()> {
        if self.buf.len() > SEAL_MIN {
            self.spill(false)?;
            self.buf = Vec::new();
        } else {
            self.buf.shrink_to_fit();
            self.settle()?.free_room();
        }
        Ok(())
    }

    /// Waits for the spill under way, if any: the store.
    fn settle(&mut self) -> io::Result<&mut Store> {
        if let Some(job) = self.spilling.take() {
            let store = job.join().unwrap_or_else(|_| {
                Err(io::Error::other("the key spill thread panicked"))
            })?;
            self.store = Some(store);
        }
        self.store
            .as_mut()
            .ok_or_else(|| io::Error::other("an earlier key spill failed"))
    }

    /// Hands the keys in `buf` to a thread that sorts them into a run (and
    /// merges full levels); `buf` goes on with the previous spill's
    /// emptied buffer. `keep_room`: whether the store keeps its buffers
    /// for later spills.
    fn spill(&mut self, keep_room: bool) -> io::Result<()> {
        self.settle()?;
        let mut store = self.store.take().expect("settled");
        let keys =
            std::mem::replace(&mut self.buf, std::mem::take(&mut store.free));
        let job = std::thread::Builder::new()
            .name("fwload-keys".into())
            .spawn(move || store.add_run(keys, keep_room))?;
        self.spilling = Some(job);
        Ok(())
    }

    /// The duplicates under `policy`, in no particular order. `First` and
    /// `Reject` keep the earliest record of a key, `Last` the latest.
    ///
    /// # Errors
    /// Reading a spill file failed.
    pub fn finish(
        self,
        policy: DuplicatePolicy,
    ) -> io::Result<Vec<Duplicate>> {
        let mut out = Vec::new();
        self.for_each_duplicate(policy, &mut |d| {
            out.push(d);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `each` for every duplicate under `policy` (as
    /// [`KeyIndex::finish`], without collecting them: memory stays flat
    /// however many there are).
    ///
    /// # Errors
    /// Reading a spill file failed, or what `each` returns.
    pub fn for_each_duplicate(
        mut self,
        policy: DuplicatePolicy,
        each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
    ) -> io::Result<()> {
        self.settle()?;
        let store = self.store.as_mut().expect("settled");
        if store.runs.is_empty() {
            sort(&mut self.buf, &mut store.spare);
            let mut group = Group::new(policy);
            for e in std::mem::take(&mut self.buf) {
                group.visit(e, each)?;
            }
            return group.end(each);
        }
        if !self.buf.is_empty() {
            self.spill(false)?;
        }
        let store = self.settle()?;
        let runs: Vec<File> = std::mem::take(&mut store.runs)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        #[cfg(unix)]
        if self.parts > 1 {
            return merge_parts(&runs, self.parts, policy, each);
        }
        report_duplicates(runs, policy, each)
    }
}

impl Store {
    /// Gives back the sort buffers: no more keys will come.
    fn free_room(&mut self) {
        self.spare = Vec::new();
        self.free = Vec::new();
    }

    /// Sorts `keys` into a new run and merges full levels; the emptied
    /// buffer is kept for the next keys when `keep_room`.
    fn add_run(
        mut self,
        mut keys: Vec<KeyEntry>,
        keep_room: bool,
    ) -> io::Result<Store> {
        sort(&mut keys, &mut self.spare);
        let mut f = tempfile::tempfile()?;
        {
            let mut w = BufWriter::with_capacity(256 * 1024, &mut f);
            for e in &keys {
                w.write_all(&encode(e))?;
            }
            w.flush()?;
        }
        f.seek(SeekFrom::Start(0))?;
        self.runs.push((0, f));
        if keep_room {
            keys.clear();
            self.free = keys;
        } else {
            drop(keys);
            self.free_room();
        }
        // Merge full levels, lowest first.
        loop {
            let n = self.runs.len();
            if n < self.fan_in {
                return Ok(self);
            }
            let level = self.runs[n - 1].0;
            if self.runs[n - self.fan_in..].iter().any(|(l, _)| *l != level) {
                return Ok(self);
            }
            let group: Vec<File> =
                self.runs.drain(n - self.fan_in..).map(|(_, f)| f).collect();
            let mut out = tempfile::tempfile()?;
            {
                let mut w = BufWriter::with_capacity(256 * 1024, &mut out);
                merge(group, &mut |e| w.write_all(&encode(&e)))?;
                w.flush()?;
            }
            out.seek(SeekFrom::Start(0))?;
            self.runs.push((level + 1, out));
        }
    }
}

/// Merges sorted runs and reports the duplicates under `policy`.
fn report_duplicates<R: Read>(
    runs: Vec<R>,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    let mut group = Group::new(policy);
    merge(runs, &mut |e| group.visit(e, each))?;
    group.end(each)
}

/// The final merge split over `parts` threads by ranges of the hash's
/// first word: equal keys have equal hashes, so each part finds its
/// duplicates alone. Every part reads its range of every run by position
/// on a thread of its own; the calling thread reports what they find
/// (they wait when [`PART_QUEUE`] duplicates are unreported, so memory
/// stays bounded however many there are).
#[cfg(unix)]
fn merge_parts(
    runs: &[File],
    parts: usize,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    // bounds[r][p]: the first entry of run r in part p, and its length.
    let mut bounds = Vec::with_capacity(runs.len());
    for f in runs {
        let n = f.metadata()?.len() / ENTRY_BYTES as u64;
        let mut b = vec![0u64; parts + 1];
        for (p, at) in b.iter_mut().enumerate().skip(1) {
            *at = if p == parts {
                n
            } else {
                let split = ((p as u128) << 64) / parts as u128;
                first_at_or_after(f, n, split as u64)?
            };
        }
        bounds.push(b);
    }
    let slices = |p: usize| -> Vec<RunSlice<'_>> {
        runs.iter()
            .zip(&bounds)
            .map(|(file, b)| RunSlice {
                file,
                pos: b[p] * ENTRY_BYTES as u64,
                end: b[p + 1] * ENTRY_BYTES as u64,
            })
            .collect()
    };
    let (tx, rx) = crossbeam_channel::bounded::<Duplicate>(PART_QUEUE);
    std::thread::scope(|sc| {
        let parts: Vec<_> = (0..parts)
            .map(|p| {
                let (tx, runs) = (tx.clone(), slices(p));
                sc.spawn(move || {
                    let mut send = |d: Duplicate| {
                        tx.send(d).map_err(|_| {
                            io::Error::other("duplicate report stopped")
                        })
                    };
                    report_duplicates(runs, policy, &mut send)
                })
            })
            .collect();
        drop(tx);
        // This thread reports what the parts find, as they find it.
        let mut reported = Ok(());
        for d in &rx {
            reported = each(d);
            if reported.is_err() {
                break;
            }
        }
        // On an error the parts stop at their next report.
        drop(rx);
        let mut joined = Ok(());
        for h in parts {
            let r = h.join().expect("key merge thread panicked");
            if joined.is_ok() {
                joined = r;
            }
        }
        reported.and(joined)
    })
}

/// Entries `[pos, end)` (bytes) of a run, read by position so that
/// several threads can read one file.
#[cfg(unix)]
struct RunSlice<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

#[cfg(unix)]
impl Read for RunSlice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// The index of the first of a run's `n` entries whose hash's first word
/// is at least `split` (binary search, by position).
#[cfg(unix)]
fn first_at_or_after(f: &File, n: u64, split: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let (mut lo, mut hi) = (0u64, n);
    let mut word = [0u8; 8];
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        f.read_exact_at(&mut word, mid * ENTRY_BYTES as u64)?;
        if u64::from_le_bytes(word) < split {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Entries of one key hash, seen in (file, line) order: under `first` and
/// `reject` each after the first is a duplicate at once; under `last`
/// every entry but the latest is, known only when the key ends, so they
/// wait — on disk past a few thousand, so one key repeated millions of
/// times (a wrong key in a schema) does not grow memory. A key seen once
/// (nearly every key) costs one comparison and one copy.
struct Group {
    policy: DuplicatePolicy,
    /// The first entry of the current key.
    head: Option<KeyEntry>,
    /// Under `last`, once the current key repeats: its latest entry.
    latest: Option<KeyEntry>,
    held: Vec<KeyEntry>,
    spilled: Option<BufWriter<File>>,
}

/// Entries of one key held in memory under `last` before spilling.
const GROUP_HELD: usize = 4096;

impl Group {
    fn new(policy: DuplicatePolicy) -> Group {
        Group {
            policy,
            head: None,
            latest: None,
            held: Vec::new(),
            spilled: None,
        }
    }

    #[inline]
    fn visit(
        &mut self,
        e: KeyEntry,
        each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
    ) -> io::Result<()> {
        let head = match &self.head {
            Some(head) if head.hash == e.hash => *head,
            _ => {
                if self.latest.is_some() {
                    self.end(each)?;
                }
                self.head = Some(e);
                return Ok(());
            }
        };
        if self.policy != DuplicatePolicy::Last {
            return each(Duplicate { entry: e, kept: head });
        }
        let before = self.latest.replace(e).unwrap_or(head);
        self.held.push(before);
        if self.held.len() >= GROUP_HELD {
            let w = match &mut self.spilled {
                Some(w) => w,
                None => self.spilled.insert(BufWriter::with_capacity(
                    64 * 1024,
                    tempfile::tempfile()?,
                )),
            };
            for h in self.held.drain(..) {
                w.write_all(&encode(&h))?;
            }
        }
        Ok(())
    }

    /// The key is complete: the entries waiting under `last` are
    /// duplicates of the latest.
    fn end(
        &mut self,
        each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(kept) = self.latest.take() else { return Ok(()) };
        if let Some(w) = self.spilled.take() {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.seek(SeekFrom::Start(0))?;
            let mut r = BufReader::with_capacity(64 * 1024, f);
            while let Some(entry) = read_entry(&mut r)? {
                each(Duplicate { entry, kept })?;
            }
        }
        for entry in self.held.drain(..) {
            each(Duplicate { entry, kept })?;
        }
        Ok(())
    }
}

/// Merges sorted runs, calling `each` for every entry in key order.
fn merge<R: Read>(
    runs: Vec<R>,
    each: &mut dyn FnMut(KeyEntry) -> io::Result<()>,
) -> io::Result<()> {
    let mut readers: Vec<BufReader<R>> = runs
        .into_iter()
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .collect();
    // The heap holds each run's hash and index (runs are in input order,
    // so equal hashes leave in input order too); the entries wait beside
    // it. The smallest is replaced in place by its run's next entry: one
    // sift instead of a pop and a push.
    let hash = |e: &KeyEntry| (e.hash[0] as u128) << 64 | e.hash[1] as u128;
    let mut heads = Vec::with_capacity(readers.len());
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        let e = read_entry(r)?;
        if let Some(e) = &e {
            heap.push(Reverse((hash(e), i)));
        }
        heads.push(e);
    }
    while let Some(mut top) = heap.peek_mut() {
        let i = top.0.1;
        let next = read_entry(&mut readers[i])?;
        match &next {
            Some(n) => top.0.0 = hash(n),
            None => drop(PeekMut::pop(top)),
        }
        let e = std::mem::replace(&mut heads[i], next).expect("a head");
        each(e)?;
    }
    Ok(())
}

fn encode(e: &KeyEntry) -> [u8; ENTRY_BYTES] {
    let mut b = [0u8; ENTRY_BYTES];
    b[0..8].copy_from_slice(&e.hash[0].to_le_bytes());
    b[8..16].copy_from_slice(&e.hash[1].to_le_bytes());
    b[16..20].copy_from_slice(&e.file.to_le_bytes());
    b[20..28].copy_from_slice(&e.line.to_le_bytes());
    b[28..36].copy_from_slice(&e.byte.to_le_bytes());
    b[36] = e.text_len;
    b[37..68].copy_from_slice(&e.text);
    b
}

fn read_entry(r: &mut impl Read) -> io::Result<Option<KeyEntry>> {
    let mut b = [0u8; ENTRY_BYTES];
    match r.read_exact(&mut b) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let u64_at = |i: usize| {
        u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
    };
    let mut text = [0u8; 31];
    text.copy_from_slice(&b[37..68]);
    Ok(Some(KeyEntry {
        hash: [u64_at(0), u64_at(8)],
        file: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
        line: u64_at(20),
        byte: u64_at(28),
        text,
        text_len: b[36],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(h: u64, line: u64) -> KeyEntry {
        KeyEntry {
            hash: [h, 0],
            file: 0,
            line,
            byte: line * 10,
            text: [0; 31],
            text_len: 0,
        }
    }

    #[test]
    fn bucket_sort_matches_a_comparison_sort() {
        // Enough entries for the bucket path; hashes from a fixed
        // sequence, with runs of equal top bits, equal first words and
        // whole repeats (ordered by line).
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut keys = Vec::new();
        for line in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = match line % 7 {
                0 => x & 0xFFFF_0000_0000_00FF,
                1 => 42 << 48,
                _ => x,
            };
            let mut e = k(h, 200_000 - line);
            e.hash[1] = x % 3;
            keys.push(e);
        }
        let mut want = keys.clone();
        want.sort_by_key(order);
        let mut spare = Vec::new();
        sort(&mut keys, &mut spare);
        let orders = |v: &[KeyEntry]| v.iter().map(order).collect::<Vec<_>>();
        assert_eq!(orders(&keys), orders(&want));
    }

    fn dups(run: usize, policy: DuplicatePolicy) -> Vec<(u64, u64)> {
        dups_of(KeyIndex::new(run), &[5, 1, 5, 2, 3, 5, 2], policy)
    }

    /// (line, kept line) of every duplicate, sorted.
    fn dups_of(
        mut idx: KeyIndex,
        hashes: &[u64],
        policy: DuplicatePolicy,
    ) -> Vec<(u64, u64)> {
        let keys: Vec<KeyEntry> = hashes
            .iter()
            .enumerate()
            .map(|(i, &h)| k(h, i as u64 + 1))
            .collect();
        idx.push(&keys).unwrap();
        let mut d: Vec<(u64, u64)> = idx
            .finish(policy)
            .unwrap()
            .iter()
            .map(|d| (d.entry.line, d.kept.line))
            .collect();
        d.sort();
        d
    }

    #[test]
    fn in_memory_and_spilled_agree() {
        for run in [1, 2, 3, 100] {
            assert_eq!(
                dups(run, DuplicatePolicy::Reject),
                vec![(3, 1), (6, 1), (7, 4)],
                "run {run}"
            );
            assert_eq!(
                dups(run, DuplicatePolicy::Last),
                vec![(1, 6), (3, 6), (4, 7)],
                "run {run}"
            );
        }
    }

    #[test]
    fn merged_levels_agree_with_memory() {
        // 3,000 keys, every fifth repeating an earlier one: runs of 7
        // merged 3 at a time go through several levels.
        let hashes: Vec<u64> = (0..3000u64)
            .map(|i| if i % 5 == 4 { (i * 7919) % (i + 1) } else { i })
            .collect();
        for policy in [DuplicatePolicy::First, DuplicatePolicy::Last] {
            let memory = dups_of(KeyIndex::new(usize::MAX), &hashes, policy);
            let levels = dups_of(KeyIndex::with_fan_in(7, 3), &hashes, policy);
            assert!(memory.len() > 500, "{}", memory.len());
            assert_eq!(levels, memory, "{policy:?}");
        }
    }

    #[test]
    fn a_merge_split_over_threads_agrees_with_one_thread() {
        // Hashes spread over the whole range (so every part has work),
        // a third of them repeats: more duplicates than a part may hold
        // unreported, and groups on both sides of every split point.
        let hashes: Vec<u64> = (0..20_000u64)
            .map(|i| {
                let j = if i % 3 == 2 { i / 7 } else { i };
                j.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            })
            .collect();
        for policy in [
            DuplicatePolicy::Reject,
            DuplicatePolicy::First,
            DuplicatePolicy::Last,
        ] {
            let one =
                dups_of(KeyIndex::new(1500).with_parts(1), &hashes, policy);
            assert!(one.len() > PART_QUEUE * 2, "{}", one.len());
            for parts in [2, 3, 16] {
                let split = KeyIndex::new(1500).with_parts(parts);
                assert_eq!(
                    dups_of(split, &hashes, policy),
                    one,
                    "{policy:?}, {parts} parts"
                );
            }
        }
    }

    #[test]
    fn one_key_repeated_past_the_held_limit() {
        let n = GROUP_HELD as u64 * 2 + 10;
        let mut hashes = vec![9u64; n as usize];
        hashes.insert(0, 1);
        hashes.push(2);
        let last =
            dups_of(KeyIndex::new(1000), &hashes, DuplicatePolicy::Last);
        assert_eq!(last.len() as u64, n - 1);
        // Every line of key 9 but the latest, each kept by the latest.
        let expected: Vec<(u64, u64)> =
            (2..=n).map(|line| (line, n + 1)).collect();
        assert_eq!(last, expected);
        let first =
            dups_of(KeyIndex::new(1000), &hashes, DuplicatePolicy::First);
        let expected: Vec<(u64, u64)> =
            (3..=n + 1).map(|line| (line, 2)).collect();
        assert_eq!(first, expected);
    }
}
