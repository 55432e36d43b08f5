//! Duplicate keys across a whole table, in bounded memory.
//!
//! Every valid record's key is collected; when the buffer fills, a thread
//! of its own spills it while the next keys fill another buffer. A spill
//! splits each key in two: what a message about it needs (file, line,
//! byte and text: its payload) is appended to one payload file in
//! arrival order, and a 24-byte slot (the key's hash and where its
//! payload is) goes into a run, sorted. Only slots are sorted, written
//! and merged; a payload is read back only for a key that turns out to
//! repeat. At the end the sorted runs are merged and equal hashes side
//! by side are the duplicates (the merge split over threads by ranges of
//! the hash, each thread reading its range of every run). Memory stays
//! at three buffers (the one filling, the one being spilled and the
//! slots to sort) whatever the number of records; disk holds about 50
//! bytes a record. Hashes are 128-bit (xxh3), so a false match is not a
//! practical concern (about 10⁻²⁵ for ten million keys).
//!
//! Exports are usually ordered by their key. While every key arrives
//! greater than the one before (by [`KeyOrder`]), no key can repeat:
//! slots are then spilled as they come, unsorted, and `finish` has
//! nothing to merge. Should a later key break the order, those runs are
//! sorted (oldest first) at the next spill or at the end, then merged
//! like any other.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use super::worker::{KeyEntry, KeyOrder};
use crate::schema::DuplicatePolicy;

/// Entries held in memory before a run is spilled (about 4.5 MiB).
pub const RUN_ENTRIES: usize = 64 * 1024;

/// Runs merged at once: as many files open, and 64 KiB of buffer each.
const FAN_IN: usize = 32;

/// Fewer keys than this stay in memory when a table's input is finished
/// (a spill file would cost more than the memory).
const SEAL_MIN: usize = 4096;

/// Longest payload on disk: the file, line and byte as varints (at most
/// 5, 10 and 10 bytes), and the key text with its length.
const MAX_PAYLOAD_BYTES: usize = 5 + 10 + 10 + 1 + 31;

/// A slot on disk: the hash's two words and the payload's position,
/// little-endian.
const SLOT_BYTES: usize = 24;

/// Hash ranges (by the hash's top byte) a run notes the start of, for
/// splitting the final merge.
const MARKS: usize = 256;

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

/// A key as runs hold it: its hash, and where its payload is (so also
/// its arrival order: payloads are appended as keys arrive). Slots sort
/// by hash, then by arrival.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    hash: [u64; 2],
    pos: u64,
}

impl Slot {
    /// The hash range (of [`MARKS`]) the slot falls in: its top byte.
    fn range(&self) -> usize {
        (self.hash[0] >> 56) as usize
    }

    fn to_bytes(self) -> [u8; SLOT_BYTES] {
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

/// Collects keys and finds duplicates.
pub struct KeyIndex {
    /// Keys not yet spilled.
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
    /// Whether every key so far was greater than the one before it.
    ascending: bool,
    /// The canonical bytes of the last key, while `ascending`.
    last: Vec<u8>,
}

/// Spilled keys: their payloads, their sorted runs, and the room to make
/// them.
struct Store {
    /// The runs, oldest first: `fan_in` runs of one level are merged
    /// into one of the next, so however many keys arrive, no more than
    /// `fan_in` runs a level are open and each slot is rewritten once a
    /// level.
    runs: Vec<Run>,
    /// Slots spilled while the keys were ascending, in arrival order.
    unsorted: Vec<File>,
    fan_in: usize,
    /// The payloads of every spilled key, in arrival order (written in
    /// batches by [`slots_of`]).
    payloads: Option<File>,
    /// Bytes written to `payloads`.
    payload_len: u64,
    /// The slots of a spill.
    slots: Vec<Slot>,
    /// Room for [`sort`].
    room: SortRoom,
    /// The buffer of the last spill, emptied, for the next keys.
    free: Vec<KeyEntry>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::new(RUN_ENTRIES)
    }
}

/// Sorted slots on disk.
struct Run {
    /// Its merge level (see [`Store::runs`]).
    level: u32,
    file: File,
    /// `marks[b]`: where the first slot whose hash's top byte is at
    /// least `b` starts, in bytes; `marks[MARKS]` is the run's length.
    marks: Vec<u64>,
}

impl Run {
    /// A run of `slots` at level 0, in their order.
    fn of(slots: &[Slot]) -> io::Result<Run> {
        Run::write(0, |w| slots.iter().try_for_each(|&s| w.write(s)))
    }

    /// A run of the slots `fill` writes, in order, at `level`.
    fn write(
        level: u32,
        fill: impl FnOnce(&mut RunWriter) -> io::Result<()>,
    ) -> io::Result<Run> {
        let mut w = RunWriter {
            w: BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?),
            pos: 0,
            marks: Vec::with_capacity(MARKS + 1),
        };
        fill(&mut w)?;
        let RunWriter { w, pos, mut marks } = w;
        let mut file = into_file(w)?;
        marks.resize(MARKS + 1, pos);
        file.seek(SeekFrom::Start(0))?;
        Ok(Run { level, file, marks })
    }
}

/// Writes the slots of a run in hash order, noting its marks.
struct RunWriter {
    w: BufWriter<File>,
    pos: u64,
    marks: Vec<u64>,
}

impl RunWriter {
    fn write(&mut self, slot: Slot) -> io::Result<()> {
        let top = slot.range();
        if self.marks.len() <= top {
            self.marks.resize(top + 1, self.pos);
        }
        self.w.write_all(&slot.to_bytes())?;
        self.pos += SLOT_BYTES as u64;
        Ok(())
    }
}

/// Room for [`sort`], kept from one sort to the next so that a spill
/// neither allocates nor copies the buffer first.
#[derive(Default)]
struct SortRoom {
    /// Where the slots are scattered; swapped with the buffer sorted.
    spare: Vec<Slot>,
    /// One count, then one write position, per bucket.
    next: Vec<u32>,
}

/// Most bits of the hash that pick a bucket in [`sort`].
const BUCKET_BITS: u32 = 16;

/// Sorts `buf` using `room`. The hashes are uniform, so a counting pass
/// on their top bits spreads the slots over up to 65,536 buckets of a
/// few slots each, which are then sorted in place: two passes over the slots
/// instead of a comparison sort's many moves (measured: the comparison
/// sort was most of the time the validation of a keyed table spent on
/// its keys). Two stable passes of 256 buckets each measured slower
/// (`key_index` in benches/pipeline.rs, three alternations: 42.5 against
/// 38.3 ms).
fn sort(buf: &mut Vec<Slot>, room: &mut SortRoom) {
    let n = buf.len();
    if n < 1024 || n > u32::MAX as usize {
        buf.sort_unstable();
        return;
    }
    // One or two slots a bucket (the last 22,320 keys of the benches'
    // real_acct.txt, merged from memory: 0.85 ms by comparison, 0.35 ms
    // so).
    let bits = n.ilog2().min(BUCKET_BITS);
    let bucket = |s: &Slot| (s.hash[0] >> (64 - bits)) as usize;
    let next = &mut room.next;
    next.clear();
    next.resize(1 << bits, 0);
    for s in buf.iter() {
        next[bucket(s)] += 1;
    }
    // Counts become where each bucket starts.
    let mut at = 0;
    for c in next.iter_mut() {
        (*c, at) = (at, at + *c);
    }
    // Every slot is written below; the slots there before (the last
    // sort's, or these copies) are only placeholders.
    let spare = &mut room.spare;
    spare.truncate(n);
    if spare.len() < n {
        spare.extend_from_slice(&buf[spare.len()..]);
    }
    for s in buf.iter() {
        let b = bucket(s);
        spare[next[b] as usize] = *s;
        next[b] += 1;
    }
    // Each bucket now ends where the next begins.
    let mut start = 0;
    for &end in next.iter() {
        let end = end as usize;
        if end - start > 1 {
            spare[start..end].sort_unstable();
        }
        start = end;
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
                unsorted: Vec::new(),
                fan_in: fan_in.max(2),
                payloads: None,
                payload_len: 0,
                slots: Vec::new(),
                room: SortRoom::default(),
                free: Vec::new(),
            }),
            spilling: None,
            run_entries: run_entries.max(1),
            parts: rayon::current_num_threads().clamp(1, MAX_PARTS),
            total: 0,
            ascending: true,
            last: Vec::new(),
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

    /// Adds keys (in input order), ordered as `order` says.
    ///
    /// # Errors
    /// Writing a spill file failed.
    pub fn push(
        &mut self,
        keys: &[KeyEntry],
        order: &KeyOrder,
    ) -> io::Result<()> {
        if self.ascending && !keys.is_empty() {
            self.ascending = order.ascending
                && (self.total == 0 || self.last < order.first);
            self.last.clear();
            if self.ascending {
                self.last.extend_from_slice(&order.last);
            }
        }
        let mut rest = keys;
        while !rest.is_empty() {
            if self.buf.len() >= self.run_entries {
                self.spill(true)?;
            }
            let room = self.run_entries - self.buf.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            rest = later;
        }
        self.total += keys.len() as u64;
        Ok(())
    }

    /// Moves the keys held in memory to disk, so a table whose input is
    /// finished keeps no memory until [`KeyIndex::finish`]. A caller
    /// reading several tables seals one when the next starts (so the
    /// spill overlaps that table's reading) and leaves the last unsealed:
    /// its keys are merged from memory.
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

    /// Hands the keys in `buf` to a thread that spills them (and merges
    /// full levels); `buf` goes on with the previous spill's emptied
    /// buffer. `keep_room`: whether the store keeps its buffers for later
    /// spills.
    fn spill(&mut self, keep_room: bool) -> io::Result<()> {
        self.settle()?;
        let mut store = self.store.take().expect("settled");
        let keys =
            std::mem::replace(&mut self.buf, std::mem::take(&mut store.free));
        let ascending = self.ascending;
        let job = std::thread::Builder::new()
            .name("fwload-keys".into())
            .spawn(move || store.add_run(keys, keep_room, ascending))?;
        self.spilling = Some(job);
        Ok(())
    }

    /// The duplicates under `policy`, by their keys' hashes (the same
    /// order from one run to the next, however many threads). `First` and
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
        if self.ascending {
            return Ok(());
        }
        let store = self.store.as_mut().expect("settled");
        store.sort_unsorted()?;
        // The keys not spilled are sorted here and merged from memory;
        // their entries stay as they are, at positions past the spilled
        // payloads (one a key, in arrival order).
        let base = store.payload_len;
        let mut held: Vec<Slot> = (base..)
            .zip(&self.buf)
            .map(|(pos, e)| Slot { hash: e.hash, pos })
            .collect();
        sort(&mut held, &mut store.room);
        store.free_room();
        let runs = std::mem::take(&mut store.runs);
        let file = store.payloads.take();
        let tail = std::mem::take(&mut self.buf);
        let payloads = Payloads { file, len: base, tail };
        #[cfg(unix)]
        if self.parts > 1 && !runs.is_empty() {
            return merge_parts(
                &runs, &held, &payloads, self.parts, policy, each,
            );
        }
        let mut sources: Vec<Source<'_, File>> = runs
            .into_iter()
            .map(|r| Source::Run(SlotReader::new(r.file)))
            .collect();
        sources.push(Source::Memory(&held));
        report_duplicates(sources, &payloads, policy, each)
    }
}

/// The file a writer wrote, flushed.
fn into_file(w: BufWriter<File>) -> io::Result<File> {
    w.into_inner().map_err(|e| e.into_error())
}

/// Appends the payloads of `keys` to `out` and their slots to `slots`,
/// `base` being where `out` starts among all payloads; returns where the
/// payloads end. The payloads are encoded into a buffer written 64 KiB
/// at a time (a write of each key's 25 bytes cost a call to copy them).
fn slots_of(
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

impl Store {
    /// Gives back the sort buffers: no more keys will come.
    fn free_room(&mut self) {
        self.room = SortRoom::default();
        self.slots = Vec::new();
        self.free = Vec::new();
    }

    /// Spills `keys`: their payloads, then their slots as a run, and
    /// gives the emptied buffer to the next keys when `keep_room`. Slots
    /// of an `ascending` index are written as they come (to
    /// [`Store::unsorted`]); others are sorted into a new run after the
    /// unsorted runs are, and full levels merged.
    fn add_run(
        mut self,
        mut keys: Vec<KeyEntry>,
        keep_room: bool,
        ascending: bool,
    ) -> io::Result<Store> {
        let out = match &mut self.payloads {
            Some(f) => f,
            None => self.payloads.insert(tempfile::tempfile()?),
        };
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        self.payload_len = slots_of(&keys, self.payload_len, out, &mut slots)?;
        if ascending {
            self.unsorted.push(Run::of(&slots)?.file);
        } else {
            self.sort_unsorted()?;
            self.add_sorted(&mut slots)?;
        }
        if keep_room {
            keys.clear();
            self.free = keys;
            self.slots = slots;
        } else {
            drop(keys);
            self.free_room();
        }
        Ok(self)
    }

    /// Sorts the runs spilled while the keys were ascending, oldest
    /// first (the merge takes runs in input order).
    fn sort_unsorted(&mut self) -> io::Result<()> {
        let mut slots = Vec::new();
        for file in std::mem::take(&mut self.unsorted) {
            slots.clear();
            let mut r = SlotReader::new(file);
            while let Some(s) = r.next()? {
                slots.push(s);
            }
            self.add_sorted(&mut slots)?;
        }
        Ok(())
    }

    /// Sorts `slots` into a new run and merges full levels.
    fn add_sorted(&mut self, slots: &mut Vec<Slot>) -> io::Result<()> {
        sort(slots, &mut self.room);
        self.runs.push(Run::of(slots)?);
        // Merge full levels, lowest first.
        loop {
            let n = self.runs.len();
            if n < self.fan_in {
                return Ok(());
            }
            let level = self.runs[n - 1].level;
            if self.runs[n - self.fan_in..].iter().any(|r| r.level != level) {
                return Ok(());
            }
            let group: Vec<Source<'_, File>> = self
                .runs
                .drain(n - self.fan_in..)
                .map(|r| Source::Run(SlotReader::new(r.file)))
                .collect();
            let run =
                Run::write(level + 1, |w| merge(group, &mut |s| w.write(s)))?;
            self.runs.push(run);
        }
    }
}

/// Where the entries of a finished index are: the spilled ones'
/// payloads in a file, the last ones in memory. (Read by position: a
/// mapping of the file would keep every page a repeat touched resident,
/// so memory would grow with the repeats.)
struct Payloads {
    /// Payloads at positions `[0, len)`.
    file: Option<File>,
    len: u64,
    /// The entries not spilled: entry `i` at position `len + i`.
    tail: Vec<KeyEntry>,
}

impl Payloads {
    /// The entry of `slot`, read back.
    fn entry(&self, slot: Slot) -> io::Result<KeyEntry> {
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
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(buf)
    }
}

/// Merges sorted slots and reports the duplicates under `policy`.
fn report_duplicates<R: Read>(
    runs: Vec<Source<'_, R>>,
    payloads: &Payloads,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    let mut group = Group::new(policy, payloads);
    merge(runs, &mut |s| group.visit(s, each))?;
    group.end(each)
}

/// The final merge split over `parts` threads by ranges of the hash's
/// first word: equal keys have equal hashes, so each part finds its
/// duplicates alone. Every part reads its range of every run by position
/// on a thread of its own; the calling thread reports what they find,
/// part by part (a part waits when [`PART_QUEUE`] of its duplicates are
/// unreported, so memory stays bounded however many there are).
#[cfg(unix)]
fn merge_parts(
    runs: &[Run],
    held: &[Slot],
    payloads: &Payloads,
    parts: usize,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    // Part p takes the hashes whose top byte is in [cut(p), cut(p + 1)).
    let cut = |p: usize| p * MARKS / parts;
    let slices = |p: usize| -> Vec<Source<'_, RunSlice<'_>>> {
        let (lo, hi) = (cut(p), cut(p + 1));
        let mut s: Vec<_> = runs
            .iter()
            .map(|r| {
                Source::Run(SlotReader::new(RunSlice {
                    file: &r.file,
                    pos: r.marks[lo],
                    end: r.marks[hi],
                }))
            })
            .collect();
        let (a, b) = (
            held.partition_point(|s| s.range() < lo),
            held.partition_point(|s| s.range() < hi),
        );
        s.push(Source::Memory(&held[a..b]));
        s
    };
    std::thread::scope(|sc| {
        let (parts, found): (Vec<_>, Vec<_>) = (0..parts)
            .map(|p| {
                let (tx, rx) = crossbeam_channel::bounded(PART_QUEUE);
                let runs = slices(p);
                let part = sc.spawn(move || {
                    let mut send = |d: Duplicate| {
                        tx.send(d).map_err(|_| {
                            io::Error::other("duplicate report stopped")
                        })
                    };
                    report_duplicates(runs, payloads, policy, &mut send)
                });
                (part, rx)
            })
            .collect();
        // This thread reports what the parts find, a part after the
        // other, so that the duplicates come in the same order from one
        // run to the next (by hash, then arrival); a later part waits
        // only once it found more than its queue holds.
        let mut reported = Ok(());
        'parts: for rx in &found {
            for d in rx {
                reported = each(d);
                if reported.is_err() {
                    break 'parts;
                }
            }
        }
        // On an error the parts stop at their next report.
        drop(found);
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

/// Bytes `[pos, end)` of a run, read by position so that several threads
/// can read one file.
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

/// Slots of one key hash, seen in arrival order: under `first` and
/// `reject` each after the first is a duplicate at once; under `last`
/// every slot but the latest is, known only when the key ends, so they
/// wait — on disk past a few thousand, so one key repeated millions of
/// times (a wrong key in a schema) does not grow memory. A key seen once
/// (nearly every key) costs one comparison and one copy; payloads are
/// read only for keys that repeat.
struct Group<'p> {
    policy: DuplicatePolicy,
    payloads: &'p Payloads,
    /// The first slot of the current key, once there is one.
    head: Option<Slot>,
    /// Its entry, once read.
    head_entry: Option<KeyEntry>,
    /// Under `last`, once the current key repeats: its latest slot.
    latest: Option<Slot>,
    held: Vec<Slot>,
    spilled: Option<BufWriter<File>>,
}

/// Slots of one key held in memory under `last` before spilling.
const GROUP_HELD: usize = 4096;

impl<'p> Group<'p> {
    fn new(policy: DuplicatePolicy, payloads: &'p Payloads) -> Group<'p> {
        Group {
            policy,
            payloads,
            head: None,
            head_entry: None,
            latest: None,
            held: Vec::new(),
            spilled: None,
        }
    }

    #[inline]
    fn visit(
        &mut self,
        slot: Slot,
        each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
    ) -> io::Result<()> {
        let head = match self.head {
            Some(head) if head.hash == slot.hash => head,
            _ => {
                if self.latest.is_some() {
                    self.end(each)?;
                }
                self.head = Some(slot);
                self.head_entry = None;
                return Ok(());
            }
        };
        if self.policy != DuplicatePolicy::Last {
            let kept = match self.head_entry {
                Some(e) => e,
                None => *self.head_entry.insert(self.payloads.entry(head)?),
            };
            let entry = self.payloads.entry(slot)?;
            return each(Duplicate { entry, kept });
        }
        let before = self.latest.replace(slot).unwrap_or(head);
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
                w.write_all(&h.to_bytes())?;
            }
        }
        Ok(())
    }

    /// The key is complete: the slots waiting under `last` are
    /// duplicates of the latest.
    fn end(
        &mut self,
        each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(latest) = self.latest.take() else { return Ok(()) };
        let kept = self.payloads.entry(latest)?;
        if let Some(w) = self.spilled.take() {
            let mut f = into_file(w)?;
            f.seek(SeekFrom::Start(0))?;
            let mut r = SlotReader::new(f);
            while let Some(s) = r.next()? {
                each(Duplicate { entry: self.payloads.entry(s)?, kept })?;
            }
        }
        for s in std::mem::take(&mut self.held) {
            each(Duplicate { entry: self.payloads.entry(s)?, kept })?;
        }
        Ok(())
    }
}

/// Sorted slots: a run being read back, or sorted slots in memory.
enum Source<'a, R> {
    Run(SlotReader<R>),
    Memory(&'a [Slot]),
}

impl<R: Read> Source<'_, R> {
    /// The next slot, `None` once the source is exhausted.
    fn next(&mut self) -> io::Result<Option<Slot>> {
        match self {
            Source::Run(r) => r.next(),
            Source::Memory(m) => Ok(m.split_first().map(|(s, rest)| {
                *m = rest;
                *s
            })),
        }
    }
}

/// Merges sorted sources, calling `each` for every slot in order (by
/// hash, then arrival).
///
/// A tournament of losers picks the next slot: each node of a binary
/// tree over the sources holds the source that lost the match there, so
/// moving the winner on replays only its path to the root, one
/// comparison a level (a binary heap takes two).
fn merge<R: Read>(
    mut sources: Vec<Source<'_, R>>,
    each: &mut dyn FnMut(Slot) -> io::Result<()>,
) -> io::Result<()> {
    let size = sources.len().next_power_of_two();
    // A source's rank, from the slot it is at: exhausted sources (and
    // the leaves past the last source) last, then by slot.
    let rank = |head: Option<Slot>| match head {
        Some(slot) => (false, slot),
        None => (true, Slot::default()),
    };
    let mut ranks = Vec::with_capacity(size);
    for i in 0..size {
        let head = match sources.get_mut(i) {
            Some(s) => s.next()?,
            None => None,
        };
        ranks.push(rank(head));
    }
    // losers[node] for nodes 1..size (node n has children 2n and 2n + 1,
    // leaves are size..2 * size); losers[0] is the overall winner.
    let mut losers = vec![0usize; size];
    let mut winners = vec![0usize; 2 * size];
    for (i, w) in winners[size..].iter_mut().enumerate() {
        *w = i;
    }
    for node in (1..size).rev() {
        let (a, b) = (winners[2 * node], winners[2 * node + 1]);
        let (w, l) = if ranks[a] <= ranks[b] { (a, b) } else { (b, a) };
        (winners[node], losers[node]) = (w, l);
    }
    losers[0] = if size == 1 { 0 } else { winners[1] };
    loop {
        let w = losers[0];
        let (false, slot) = ranks[w] else { return Ok(()) };
        each(slot)?;
        ranks[w] = rank(sources[w].next()?);
        let mut winner = w;
        let mut node = (w + size) / 2;
        while node > 0 {
            if ranks[losers[node]] < ranks[winner] {
                std::mem::swap(&mut losers[node], &mut winner);
            }
            node /= 2;
        }
        losers[0] = winner;
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

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "corrupt key spill file")
}

/// Reads back the slots of a run.
struct SlotReader<R> {
    r: R,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl<R: Read> SlotReader<R> {
    fn new(r: R) -> SlotReader<R> {
        SlotReader {
            r,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }

    /// The next slot; `None` at the end.
    ///
    /// # Errors
    /// Reading failed, or the input ends inside a slot.
    fn next(&mut self) -> io::Result<Option<Slot>> {
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
        // Enough slots for the bucket path; hashes from a fixed sequence,
        // with runs of equal top bits, equal first words and whole
        // repeats (ordered by position).
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut slots = Vec::new();
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = match i % 7 {
                0 => x & 0xFFFF_0000_0000_00FF,
                1 => 42 << 48,
                _ => x,
            };
            slots.push(Slot { hash: [h, x % 3], pos: 200_000 - i });
        }
        // One room for sorts of several sizes, as spills use it: its
        // leftovers from a longer or shorter sort must not leak in.
        let mut room = SortRoom::default();
        for n in [200_000, 70_000, 150_000, 1000, 1024, 22_320, 65_535, 65_536]
        {
            let mut part = slots[slots.len() - n..].to_vec();
            let mut want = part.clone();
            want.sort();
            sort(&mut part, &mut room);
            assert_eq!(part, want, "{n} slots");
        }
    }

    #[test]
    fn payloads_and_slots_come_back_as_written() {
        let mut e = k(u64::MAX, 1);
        (e.line, e.byte) = (u64::MAX, u64::MAX);
        e.hash[1] = 1 << 63;
        e.file = u32::MAX;
        e.text = [b'x'; 31];
        e.text_len = 31;
        let mut short = k(0, 0);
        short.text[..3].copy_from_slice(b"abc");
        short.text_len = 3;
        let entries = [e, short, k(5, 127), k(6, 128), k(7, 1 << 35)];
        let (mut bytes, mut slots) = (Vec::new(), Vec::new());
        let end = slots_of(&entries, 1000, &mut bytes, &mut slots).unwrap();
        assert_eq!(end, 1000 + bytes.len() as u64);
        // Payloads read back from a file and from memory.
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let len = bytes.len() as u64;
        let from_file = Payloads { file: Some(file), len, tail: vec![] };
        // The file holds payloads from 0; these start at 1000.
        let mut from_file_slots = slots.clone();
        for s in &mut from_file_slots {
            s.pos -= 1000;
        }
        // Entries held in memory are at one position each, past the file.
        let from_memory =
            Payloads { file: None, len: 7, tail: entries.into() };
        let memory_slots: Vec<Slot> =
            (7..).zip(&slots).map(|(pos, s)| Slot { pos, ..*s }).collect();
        let view =
            |e: &KeyEntry| (e.hash, e.file, e.line, e.byte, e.text().to_vec());
        let want: Vec<_> = entries.iter().map(view).collect();
        for (payloads, slots) in
            [(&from_memory, &memory_slots), (&from_file, &from_file_slots)]
        {
            let back: Vec<_> = slots
                .iter()
                .map(|&s| view(&payloads.entry(s).unwrap()))
                .collect();
            assert_eq!(back, want);
        }
        // A payload cut off, or a position past the entries, is an error.
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes[..bytes.len() - 1]).unwrap();
        let cut = Payloads { file: Some(file), len: len - 1, tail: vec![] };
        let past = Slot { pos: 7 + 5, ..slots[4] };
        for (payloads, slot) in
            [(&cut, from_file_slots[4]), (&from_memory, past)]
        {
            assert_eq!(
                payloads.entry(slot).unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        }
        // Slots: a reader buffer much shorter than the run crosses
        // refills; a cut-off last slot is an error, not an end.
        let run = Run::of(&slots).unwrap();
        let mut raw = Vec::new();
        let mut f = run.file;
        f.read_to_end(&mut raw).unwrap();
        let mut r = SlotReader::new(&raw[..]);
        r.buf = vec![0; SLOT_BYTES + 7].into_boxed_slice();
        let mut back = Vec::new();
        while let Some(s) = r.next().unwrap() {
            back.push(s);
        }
        assert_eq!(back, slots);
        let mut r = SlotReader::new(&raw[..raw.len() - 1]);
        let mut got = Ok(None);
        for _ in 0..5 {
            got = r.next();
        }
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::InvalidData);
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
        idx.push(&keys_of(hashes), &KeyOrder::default()).unwrap();
        found(idx, policy)
    }

    /// A key of each hash, on lines 1, 2, …
    fn keys_of(hashes: &[u64]) -> Vec<KeyEntry> {
        let lines = 1..;
        lines.zip(hashes).map(|(line, &h)| k(h, line)).collect()
    }

    /// (line, kept line) of every duplicate `idx` finds, sorted.
    fn found(idx: KeyIndex, policy: DuplicatePolicy) -> Vec<(u64, u64)> {
        let mut d = reported(idx, policy);
        d.sort();
        d
    }

    /// (line, kept line) of every duplicate `idx` finds, as reported.
    fn reported(idx: KeyIndex, policy: DuplicatePolicy) -> Vec<(u64, u64)> {
        let d = idx.finish(policy).unwrap();
        d.iter().map(|d| (d.entry.line, d.kept.line)).collect()
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
            let keys = keys_of(&hashes);
            let index = |parts: usize| {
                let mut idx = KeyIndex::new(1500).with_parts(parts);
                idx.push(&keys, &KeyOrder::default()).unwrap();
                idx
            };
            let one = reported(index(1), policy);
            assert!(one.len() > PART_QUEUE * 2, "{}", one.len());
            // The same duplicates in the same order, however many parts
            // found them (a report is the same from one run to the next).
            for parts in [2, 3, 16] {
                assert_eq!(
                    reported(index(parts), policy),
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

    /// Pushes keys (hash = key number, line = position + 1) in chunks of
    /// `chunk`, each with its order as a worker finds it; (line, kept
    /// line) of every duplicate, sorted.
    fn dups_in_order(
        mut idx: KeyIndex,
        keys: &[u64],
        chunk: usize,
        policy: DuplicatePolicy,
    ) -> (bool, Vec<(u64, u64)>) {
        let bytes = |k: u64| k.to_be_bytes().to_vec();
        for (c, part) in keys.chunks(chunk).enumerate() {
            let entries: Vec<KeyEntry> = part
                .iter()
                .enumerate()
                .map(|(i, &h)| k(h, (c * chunk + i) as u64 + 1))
                .collect();
            let order = KeyOrder {
                ascending: part.windows(2).all(|w| w[0] < w[1]),
                first: bytes(part[0]),
                last: bytes(part[part.len() - 1]),
            };
            idx.push(&entries, &order).unwrap();
        }
        (idx.ascending, found(idx, policy))
    }

    #[test]
    fn ascending_keys_need_no_merge() {
        let keys: Vec<u64> = (0..5000).map(|i| i * 3 + 1).collect();
        let (ascending, d) = dups_in_order(
            KeyIndex::new(700),
            &keys,
            333,
            DuplicatePolicy::Reject,
        );
        assert!(ascending);
        assert!(d.is_empty());
    }

    #[test]
    fn order_broken_late_finds_repeats_of_unsorted_runs() {
        let mut keys: Vec<u64> = (0..5000).collect();
        // Past several runs spilled unsorted: repeats of keys in the first
        // and last of them, and a key that is only out of order.
        keys.extend([4999, 17, 5001, 5000, 4200]);
        keys.extend(5002..6000);
        // Broken inside a chunk, which the chunk's order says.
        let split: Vec<u64> = (0..3000).chain([10, 2999]).collect();
        for policy in [
            DuplicatePolicy::Reject,
            DuplicatePolicy::First,
            DuplicatePolicy::Last,
        ] {
            let unknown = dups_of(KeyIndex::new(700), &keys, policy);
            assert_eq!(unknown.len(), 3, "{policy:?}");
            for (chunk, run) in [(333, 700), (5000, 700), (1, 64), (7, 5000)] {
                let (ascending, d) =
                    dups_in_order(KeyIndex::new(run), &keys, chunk, policy);
                assert!(!ascending);
                assert_eq!(d, unknown, "{policy:?}, chunk {chunk}, run {run}");
            }
            let (ascending, d) =
                dups_in_order(KeyIndex::new(500), &split, 3001, policy);
            assert!(!ascending);
            assert_eq!(d, dups_of(KeyIndex::new(500), &split, policy));
            assert_eq!(d.len(), 2);
        }
    }

    #[test]
    fn chunks_out_of_order_between_them_are_not_ascending() {
        // Each chunk ascending, the second starting below the first's end.
        let keys: Vec<u64> = (10..20).chain(15..25).collect();
        let (ascending, d) =
            dups_in_order(KeyIndex::new(8), &keys, 10, DuplicatePolicy::First);
        assert!(!ascending);
        let want: Vec<(u64, u64)> =
            (11..=15).map(|line| (line, line - 5)).collect();
        assert_eq!(d, want);
    }
}
