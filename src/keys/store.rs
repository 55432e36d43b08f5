//! Spilled keys on disk: [`Store`] appends their payloads to one file and
//! writes their slots as sorted runs ([`Run`], by [`RunWriter`]), merging
//! full levels of runs as it goes; a spill runs on a thread of its own
//! while the next keys arrive.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::thread::JoinHandle;

use super::entry::KeyEntry;
use super::merge::{Source, merge};
use super::payload::{Payloads, slots_of};
use super::slot::{MARKS, SLOT_BYTES, Slot, SlotReader, into_file};
use super::sort::{SortRoom, sort};

/// Spilled keys: their payloads, their sorted runs, and the room to make
/// them.
pub(super) struct Store {
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

/// Sorted slots on disk.
pub(super) struct Run {
    /// Its merge level (see [`Store::runs`]).
    level: u32,
    pub(super) file: File,
    /// `marks[b]`: where the first slot whose hash's top byte is at
    /// least `b` starts, in bytes; `marks[MARKS]` is the run's length.
    pub(super) marks: Vec<u64>,
}

impl Run {
    /// A run of `slots` at level 0, in their order.
    pub(super) fn of(slots: &[Slot]) -> io::Result<Run> {
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

impl Store {
    /// An empty store merging `fan_in` runs at once (at least 2).
    pub(super) fn new(fan_in: usize) -> Store {
        Store {
            runs: Vec::new(),
            unsorted: Vec::new(),
            fan_in: fan_in.max(2),
            payloads: None,
            payload_len: 0,
            slots: Vec::new(),
            room: SortRoom::default(),
            free: Vec::new(),
        }
    }

    /// The emptied buffer of the last spill, for the next keys.
    pub(super) fn take_free(&mut self) -> Vec<KeyEntry> {
        std::mem::take(&mut self.free)
    }

    /// Spills `keys` (as [`Store::add_run`]) on a thread of its own,
    /// which gives the store back when done.
    ///
    /// # Errors
    /// The thread could not be started (the store is then lost).
    pub(super) fn spawn_run(
        self,
        keys: Vec<KeyEntry>,
        keep_room: bool,
        ascending: bool,
    ) -> io::Result<JoinHandle<io::Result<Store>>> {
        std::thread::Builder::new()
            .name("fwload-keys".into())
            .spawn(move || self.add_run(keys, keep_room, ascending))
    }

    /// Gives back the sort buffers: no more keys will come.
    pub(super) fn free_room(&mut self) {
        self.room = SortRoom::default();
        self.slots = Vec::new();
        self.free = Vec::new();
    }

    /// Ends the store for the final merge: sorts the unsorted runs and
    /// the slots of `tail` (the keys never spilled, whose entries stay
    /// as they are, at positions past the spilled payloads, one a key, in
    /// arrival order) and hands over the runs, those slots and where
    /// every entry is.
    ///
    /// # Errors
    /// Reading or writing a spill file failed.
    pub(super) fn finish(
        &mut self,
        tail: Vec<KeyEntry>,
    ) -> io::Result<(Vec<Run>, Vec<Slot>, Payloads)> {
        self.sort_unsorted()?;
        let base = self.payload_len;
        let mut held: Vec<Slot> = (base..)
            .zip(&tail)
            .map(|(pos, e)| Slot { hash: e.hash, pos })
            .collect();
        sort(&mut held, &mut self.room);
        self.free_room();
        let runs = std::mem::take(&mut self.runs);
        let file = self.payloads.take();
        Ok((runs, held, Payloads { file, len: base, tail }))
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
