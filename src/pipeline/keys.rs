//! Duplicate keys across a whole table, in bounded memory.
//!
//! Every valid record's key hash is collected; when the buffer fills, a
//! thread of its own sorts it and spills it to an anonymous temporary file
//! while the next keys fill another buffer. At the end the sorted runs are
//! merged and equal hashes side by side are the duplicates (the merge
//! split over threads by ranges of the hash, each thread reading its range
//! of every run). Memory stays at three buffers (the one filling, the one
//! being spilled and the room to sort it) whatever the number of records;
//! disk holds about 40 bytes a record. Hashes are 128-bit (xxh3), so a
//! false match is not a practical concern (about 10⁻²⁵ for ten million
//! keys).
//!
//! Exports are usually ordered by their key. While every key arrives
//! greater than the one before (by [`KeyOrder`]), no key can repeat:
//! runs are then spilled as they come, unsorted, and `finish` has nothing
//! to merge. Should a later key break the order, those runs are sorted
//! (oldest first) at the next spill or at the end, then merged like any
//! other.

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

/// Longest entry on disk: the hash, the file, line and byte as varints
/// (at most 5, 10 and 10 bytes), and the key text with its length.
const MAX_ENTRY_BYTES: usize = 16 + 5 + 10 + 10 + 1 + 31;

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
    /// Whether every key so far was greater than the one before it.
    ascending: bool,
    /// The canonical bytes of the last key, while `ascending`.
    last: Vec<u8>,
}

/// Sorted runs on disk and the room to make them.
struct Store {
    /// The runs, oldest first: `fan_in` runs of one level are merged
    /// into one of the next, so however many keys arrive, no more than
    /// `fan_in` runs a level are open and each key is rewritten once a
    /// level.
    runs: Vec<Run>,
    /// Runs spilled while the keys were ascending, in arrival order.
    unsorted: Vec<File>,
    fan_in: usize,
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

fn order(e: &KeyEntry) -> (u64, u64, u32, u64) {
    (e.hash[0], e.hash[1], e.file, e.line)
}

/// A sorted run on disk.
struct Run {
    /// Its merge level (see [`Store::runs`]).
    level: u32,
    file: File,
    /// `marks[b]`: where the first entry whose hash's top byte is at
    /// least `b` starts, in bytes; `marks[MARKS]` is the run's length.
    marks: Vec<u64>,
}

impl Run {
    /// A run of `keys` at level 0, in their order.
    fn of(keys: &[KeyEntry]) -> io::Result<Run> {
        Run::write(0, |w| {
            keys.iter().try_for_each(|e| w.write(Item::Entry(e)))
        })
    }

    /// A run of the entries `fill` writes, in order, at `level`.
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
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        marks.resize(MARKS + 1, pos);
        file.seek(SeekFrom::Start(0))?;
        Ok(Run { level, file, marks })
    }
}

/// Writes the entries of a run in hash order, noting its marks.
struct RunWriter {
    w: BufWriter<File>,
    pos: u64,
    marks: Vec<u64>,
}

impl RunWriter {
    fn write(&mut self, item: Item<'_>) -> io::Result<()> {
        let top = item.range();
        if self.marks.len() <= top {
            self.marks.resize(top + 1, self.pos);
        }
        let n = match item {
            Item::Raw(b) => {
                self.w.write_all(b)?;
                b.len()
            }
            Item::Entry(e) => write_entry(&mut self.w, e)?,
        };
        self.pos += n as u64;
        Ok(())
    }
}

/// Room for [`sort`], kept from one sort to the next so that a spill
/// neither allocates nor copies the buffer first.
#[derive(Default)]
struct SortRoom {
    /// Where the entries are scattered; swapped with the buffer sorted.
    spare: Vec<KeyEntry>,
    /// One count, then one write position, per bucket.
    next: Vec<u32>,
}

/// Bits of the hash that pick a bucket in [`sort`].
const BUCKET_BITS: u32 = 16;

/// Sorts `buf` by [`order`], using `room`. The hashes are uniform, so a
/// counting pass on their top bits spreads the entries over 65,536
/// buckets of a few entries each, which are then sorted in place: two
/// passes over the entries instead of a comparison sort's many moves of
/// 72-byte entries (measured: the comparison sort was most of the time
/// the validation of a keyed table spent on its keys). Two stable passes
/// of 256 buckets each measured slower (`key_index` in
/// benches/pipeline.rs, three alternations: 42.5 against 38.3 ms).
fn sort(buf: &mut Vec<KeyEntry>, room: &mut SortRoom) {
    let n = buf.len();
    if n < 1 << BUCKET_BITS || n > u32::MAX as usize {
        buf.sort_unstable_by_key(order);
        return;
    }
    let bucket = |e: &KeyEntry| (e.hash[0] >> (64 - BUCKET_BITS)) as usize;
    let next = &mut room.next;
    next.clear();
    next.resize(1 << BUCKET_BITS, 0);
    for e in buf.iter() {
        next[bucket(e)] += 1;
    }
    // Counts become where each bucket starts.
    let mut at = 0;
    for c in next.iter_mut() {
        (*c, at) = (at, at + *c);
    }
    // Every slot is written below; the entries there before (the last
    // sort's, or these copies) are only placeholders.
    let spare = &mut room.spare;
    spare.truncate(n);
    if spare.len() < n {
        spare.extend_from_slice(&buf[spare.len()..]);
    }
    for e in buf.iter() {
        let b = bucket(e);
        spare[next[b] as usize] = *e;
        next[b] += 1;
    }
    // Each bucket now ends where the next begins.
    let mut start = 0;
    for &end in next.iter() {
        let end = end as usize;
        if end - start > 1 {
            spare[start..end].sort_unstable_by_key(order);
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

    /// Moves the keys held in memory to a sorted run on disk, so a table
    /// whose input is finished keeps no memory until [`KeyIndex::finish`].
    /// A caller reading several tables seals one when the next starts
    /// (so the spill overlaps that table's reading) and leaves the last
    /// unsealed: its keys are merged from memory.
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
        let ascending = self.ascending;
        let job = std::thread::Builder::new()
            .name("fwload-keys".into())
            .spawn(move || store.add_run(keys, keep_room, ascending))?;
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
        if self.ascending {
            return Ok(());
        }
        let store = self.store.as_mut().expect("settled");
        store.sort_unsorted()?;
        // The keys not in a run are sorted here and merged from memory
        // (writing them out only to read them back would cost more).
        sort(&mut self.buf, &mut store.room);
        store.free_room();
        let runs = std::mem::take(&mut store.runs);
        let held = &self.buf[..];
        #[cfg(unix)]
        if self.parts > 1 && !runs.is_empty() {
            return merge_parts(&runs, held, self.parts, policy, each);
        }
        let mut sources: Vec<Source<'_, File>> = runs
            .into_iter()
            .map(|r| Source::Run(RunReader::new(r.file)))
            .collect();
        sources.push(Source::Memory(held));
        report_duplicates(sources, policy, each)
    }
}

impl Store {
    /// Gives back the sort buffers: no more keys will come.
    fn free_room(&mut self) {
        self.room = SortRoom::default();
        self.free = Vec::new();
    }

    /// Adds `keys` as a run and gives the emptied buffer to the next keys
    /// when `keep_room`. Keys of an `ascending` index are written as they
    /// come (to [`Store::unsorted`]); others are sorted into a new run
    /// after the unsorted runs are, and full levels merged.
    fn add_run(
        mut self,
        mut keys: Vec<KeyEntry>,
        keep_room: bool,
        ascending: bool,
    ) -> io::Result<Store> {
        if ascending {
            self.unsorted.push(Run::of(&keys)?.file);
        } else {
            self.sort_unsorted()?;
            self.add_sorted(&mut keys)?;
        }
        if keep_room {
            keys.clear();
            self.free = keys;
        } else {
            drop(keys);
            self.free_room();
        }
        Ok(self)
    }

    /// Sorts the runs spilled while the keys were ascending, oldest
    /// first (the merge takes runs in input order).
    fn sort_unsorted(&mut self) -> io::Result<()> {
        for file in std::mem::take(&mut self.unsorted) {
            let mut keys = std::mem::take(&mut self.free);
            let mut r = RunReader::new(file);
            while let Some(e) = r.next()? {
                keys.push(e);
            }
            self.add_sorted(&mut keys)?;
            keys.clear();
            self.free = keys;
        }
        Ok(())
    }

    /// Sorts `keys` into a new run and merges full levels.
    fn add_sorted(&mut self, keys: &mut Vec<KeyEntry>) -> io::Result<()> {
        sort(keys, &mut self.room);
        self.runs.push(Run::of(keys)?);
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
                .map(|r| Source::Run(RunReader::new(r.file)))
                .collect();
            let run = Run::write(level + 1, |w| {
                merge(group, &mut |item| w.write(item))
            })?;
            self.runs.push(run);
        }
    }
}

/// Merges sorted entries and reports the duplicates under `policy`.
fn report_duplicates<R: Read>(
    runs: Vec<Source<'_, R>>,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    let mut group = Group::new(policy);
    merge(runs, &mut |item| group.visit(item, each))?;
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
    runs: &[Run],
    held: &[KeyEntry],
    parts: usize,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    // Part p takes the hashes whose top byte is in [cut(p), cut(p + 1)).
    let cut = |p: usize| p * MARKS / parts;
    let top = |e: &KeyEntry| Item::Entry(e).range();
    let slices = |p: usize| -> Vec<Source<'_, RunSlice<'_>>> {
        let (lo, hi) = (cut(p), cut(p + 1));
        let mut s: Vec<_> = runs
            .iter()
            .map(|r| {
                Source::Run(RunReader::new(RunSlice {
                    file: &r.file,
                    pos: r.marks[lo],
                    end: r.marks[hi],
                }))
            })
            .collect();
        let (a, b) = (
            held.partition_point(|e| top(e) < lo),
            held.partition_point(|e| top(e) < hi),
        );
        s.push(Source::Memory(&held[a..b]));
        s
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

/// Entries of one key hash, seen in (file, line) order: under `first` and
/// `reject` each after the first is a duplicate at once; under `last`
/// every entry but the latest is, known only when the key ends, so they
/// wait — on disk past a few thousand, so one key repeated millions of
/// times (a wrong key in a schema) does not grow memory. A key seen once
/// (nearly every key) costs one comparison and one copy.
struct Group {
    policy: DuplicatePolicy,
    /// The first entry of the current key, once there is one.
    head: Option<Head>,
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
        item: Item<'_>,
        each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
    ) -> io::Result<()> {
        let hash = item.hash();
        let head = match &self.head {
            Some(head) if head.hash == hash => head.entry()?,
            _ => {
                if self.latest.is_some() {
                    self.end(each)?;
                }
                return self
                    .head
                    .get_or_insert_with(Head::default)
                    .set(item, hash);
            }
        };
        let e = item.entry()?;
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
                write_entry(w, &h)?;
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
            let mut r = RunReader::new(f);
            while let Some(entry) = r.next()? {
                each(Duplicate { entry, kept })?;
            }
        }
        for entry in self.held.drain(..) {
            each(Duplicate { entry, kept })?;
        }
        Ok(())
    }
}

/// An entry as a merge passes it on: the bytes [`write_entry`] made of
/// it, as read back from a run, or the entry itself, from memory. Only
/// its hash is read unless it turns out to be a duplicate.
#[derive(Clone, Copy)]
enum Item<'a> {
    Raw(&'a [u8]),
    Entry(&'a KeyEntry),
}

impl Item<'_> {
    /// The hash as one number: its order is the entries' order.
    fn hash(self) -> u128 {
        let [a, b] = match self {
            Item::Raw(b) => raw_hash(b),
            Item::Entry(e) => e.hash,
        };
        (a as u128) << 64 | b as u128
    }

    /// The hash range (of [`MARKS`]) the entry falls in: its top byte.
    fn range(self) -> usize {
        (self.hash() >> 120) as usize
    }

    fn entry(self) -> io::Result<KeyEntry> {
        match self {
            Item::Raw(b) => decode_entry(b),
            Item::Entry(e) => Ok(*e),
        }
    }
}

/// A copy of the first entry of a key, as [`write_entry`] writes it;
/// decoded only if the key repeats.
struct Head {
    hash: u128,
    raw: [u8; MAX_ENTRY_BYTES],
    len: usize,
}

impl Default for Head {
    fn default() -> Head {
        Head { hash: 0, raw: [0; MAX_ENTRY_BYTES], len: 0 }
    }
}

impl Head {
    fn set(&mut self, item: Item<'_>, hash: u128) -> io::Result<()> {
        self.hash = hash;
        self.len = match item {
            Item::Raw(b) => {
                self.raw[..b.len()].copy_from_slice(b);
                b.len()
            }
            Item::Entry(e) => write_entry(&mut &mut self.raw[..], e)?,
        };
        Ok(())
    }

    fn entry(&self) -> io::Result<KeyEntry> {
        decode_entry(&self.raw[..self.len])
    }
}

/// Sorted entries: a run being read back, or sorted keys in memory.
enum Source<'a, R> {
    Run(RunReader<R>),
    Memory(&'a [KeyEntry]),
}

impl<R: Read> Source<'_, R> {
    /// The entry the source is at, `None` once it is exhausted (or
    /// before [`Source::start`]).
    fn head(&self) -> Option<Item<'_>> {
        match self {
            Source::Run(r) => r.head().map(Item::Raw),
            Source::Memory(m) => m.first().map(Item::Entry),
        }
    }

    /// Reads the first entry.
    fn start(&mut self) -> io::Result<()> {
        match self {
            Source::Run(r) => r.load(),
            Source::Memory(_) => Ok(()),
        }
    }

    /// Moves past the entry the source is at (which must exist).
    fn advance(&mut self) -> io::Result<()> {
        match self {
            Source::Run(r) => r.advance(),
            Source::Memory(m) => {
                *m = &m[1..];
                Ok(())
            }
        }
    }
}

/// Merges sorted sources, calling `each` for every entry in key order;
/// entries of equal hashes come in the order of their sources.
///
/// A tournament of losers picks the next entry: each node of a binary
/// tree over the sources holds the source that lost the match there, so
/// moving the winner on replays only its path to the root, one
/// comparison a level (a binary heap takes two).
fn merge<R: Read>(
    mut sources: Vec<Source<'_, R>>,
    each: &mut dyn FnMut(Item<'_>) -> io::Result<()>,
) -> io::Result<()> {
    for s in &mut sources {
        s.start()?;
    }
    let size = sources.len().next_power_of_two();
    // A source's rank: exhausted sources last, then by hash, then by
    // source (sources are in input order).
    let rank = |sources: &[Source<'_, R>], i: usize| match sources
        .get(i)
        .and_then(|s| s.head())
    {
        Some(item) => (false, item.hash(), i),
        None => (true, 0, i),
    };
    let mut ranks: Vec<_> = (0..size).map(|i| rank(&sources, i)).collect();
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
        let Some(item) = sources.get(w).and_then(|s| s.head()) else {
            return Ok(());
        };
        each(item)?;
        sources[w].advance()?;
        ranks[w] = rank(&sources, w);
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

/// Writes `e` as its hash (two little-endian words), its file, line and
/// byte as varints (seven bits a byte, low bits first) and its key text
/// after one byte of length: about 40 bytes for a 13-byte key, where
/// the fixed-width record took 68. Returns the bytes written.
fn write_entry(w: &mut impl Write, e: &KeyEntry) -> io::Result<usize> {
    let mut b = [0u8; MAX_ENTRY_BYTES];
    b[0..8].copy_from_slice(&e.hash[0].to_le_bytes());
    b[8..16].copy_from_slice(&e.hash[1].to_le_bytes());
    let mut n = 16;
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
    w.write_all(&b[..n])?;
    Ok(n)
}

/// Where the parts of the entry [`write_entry`] wrote at the start of
/// `b` are: its file, line and byte, where its text starts and how long
/// it is; `None` when the bytes are not an entry (or are cut off).
fn parse_entry(b: &[u8]) -> Option<([u64; 3], usize, usize)> {
    let mut at = 16;
    let mut numbers = [0u64; 3];
    for v in &mut numbers {
        for shift in (0..70).step_by(7) {
            let x = *b.get(at)?;
            at += 1;
            *v |= ((x & 0x7F) as u64).checked_shl(shift)?;
            if x < 0x80 {
                break;
            }
            if shift == 63 {
                return None;
            }
        }
    }
    let len = *b.get(at)? as usize;
    (len <= 31 && at + 1 + len <= b.len()).then_some((numbers, at + 1, len))
}

/// The length of the entry at the start of `b`.
fn entry_len(b: &[u8]) -> io::Result<usize> {
    match parse_entry(b) {
        Some((_, text, len)) => Ok(text + len),
        None => Err(corrupt()),
    }
}

/// The entry [`write_entry`] wrote at the start of `b`.
fn decode_entry(b: &[u8]) -> io::Result<KeyEntry> {
    let ([file, line, byte], at, len) = parse_entry(b).ok_or_else(corrupt)?;
    let mut text = [0u8; 31];
    text[..len].copy_from_slice(&b[at..at + len]);
    Ok(KeyEntry {
        hash: raw_hash(b),
        file: u32::try_from(file).map_err(|_| corrupt())?,
        line,
        byte,
        text,
        text_len: len as u8,
    })
}

/// The hash of an entry [`write_entry`] wrote (whose length
/// [`parse_entry`] has checked).
fn raw_hash(b: &[u8]) -> [u64; 2] {
    [0, 8].map(|i| u64::from_le_bytes(b[i..i + 8].try_into().expect("8")))
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "corrupt key spill file")
}

/// Reads back the entries of a run (or of any [`write_entry`] output).
struct RunReader<R> {
    r: R,
    buf: Box<[u8]>,
    /// Where the current entry starts, and its length (0 at the end).
    pos: usize,
    len: usize,
    end: usize,
    eof: bool,
    started: bool,
}

impl<R: Read> RunReader<R> {
    /// A reader of `r`, which reads nothing before [`RunReader::load`]
    /// or [`RunReader::next`].
    fn new(r: R) -> RunReader<R> {
        RunReader {
            r,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            end: 0,
            eof: false,
            started: false,
        }
    }

    /// The bytes of the current entry, `None` at the end.
    fn head(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.buf[self.pos..self.pos + self.len])
    }

    /// Finds the entry at the read position.
    ///
    /// # Errors
    /// Reading failed, or the bytes are not an entry (a cut-off last one
    /// included).
    fn load(&mut self) -> io::Result<()> {
        self.started = true;
        if self.end - self.pos < MAX_ENTRY_BYTES && !self.eof {
            self.refill()?;
        }
        self.len = match self.pos == self.end {
            true => 0,
            false => entry_len(&self.buf[self.pos..self.end])?,
        };
        Ok(())
    }

    /// Moves to the next entry.
    ///
    /// # Errors
    /// As [`RunReader::load`].
    fn advance(&mut self) -> io::Result<()> {
        self.pos += self.len;
        self.load()
    }

    /// The next entry, decoded; `None` at the end.
    ///
    /// # Errors
    /// As [`RunReader::load`].
    fn next(&mut self) -> io::Result<Option<KeyEntry>> {
        if !self.started {
            self.load()?;
        }
        let Some(raw) = self.head() else { return Ok(None) };
        let e = decode_entry(raw)?;
        self.advance()?;
        Ok(Some(e))
    }

    /// Moves what is left to the front and reads until the buffer is
    /// full or the input ends.
    fn refill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < self.buf.len() {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
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
        let orders = |v: &[KeyEntry]| v.iter().map(order).collect::<Vec<_>>();
        // One room for sorts of several sizes, as spills use it: its
        // leftovers from a longer or shorter sort must not leak in.
        let mut room = SortRoom::default();
        for n in [200_000, 70_000, 150_000, 1000, 65_535, 65_536] {
            let mut part = keys[keys.len() - n..].to_vec();
            let mut want = part.clone();
            want.sort_by_key(order);
            sort(&mut part, &mut room);
            assert_eq!(orders(&part), orders(&want), "{n} entries");
        }
    }

    #[test]
    fn entries_come_back_as_written() {
        let mut e = k(u64::MAX, 1);
        (e.line, e.byte) = (u64::MAX, u64::MAX);
        e.hash[1] = 1 << 63;
        e.file = u32::MAX;
        e.text = [b'x'; 31];
        e.text_len = 31;
        let mut short = k(0, 0);
        short.text[..3].copy_from_slice(b"abc");
        short.text_len = 3;
        let mut bytes = Vec::new();
        for e in [e, short, k(5, 127), k(6, 128), k(7, 1 << 35)] {
            write_entry(&mut bytes, &e).unwrap();
        }
        // A reader buffer much shorter than the input crosses refills.
        let mut r = RunReader::new(&bytes[..]);
        r.buf = vec![0; MAX_ENTRY_BYTES + 3].into_boxed_slice();
        let mut back = Vec::new();
        while let Some(e) = r.next().unwrap() {
            back.push((e.hash, e.file, e.line, e.byte, e.text().to_vec()));
        }
        let want = vec![
            (
                [u64::MAX, 1 << 63],
                u32::MAX,
                u64::MAX,
                u64::MAX,
                vec![b'x'; 31],
            ),
            ([0, 0], 0, 0, 0, b"abc".to_vec()),
            ([5, 0], 0, 127, 1270, vec![]),
            ([6, 0], 0, 128, 1280, vec![]),
            ([7, 0], 0, 1 << 35, 10 << 35, vec![]),
        ];
        assert_eq!(back, want);
        // A cut-off last entry is an error, not an end.
        let mut r = RunReader::new(&bytes[..bytes.len() - 1]);
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
        let keys: Vec<KeyEntry> = hashes
            .iter()
            .enumerate()
            .map(|(i, &h)| k(h, i as u64 + 1))
            .collect();
        idx.push(&keys, &KeyOrder::default()).unwrap();
        found(idx, policy)
    }

    /// (line, kept line) of every duplicate `idx` finds, sorted.
    fn found(idx: KeyIndex, policy: DuplicatePolicy) -> Vec<(u64, u64)> {
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
