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
//!
//! This file holds the index ([`KeyIndex`]); the rest, each file using
//! only those listed before it: `entry.rs` what is known of a key
//! ([`KeyEntry`], [`KeyOrder`], [`Duplicate`]), `slot.rs` the slot and
//! its 24 bytes on disk, `payload.rs` the payload file, `sort.rs` the
//! sort of a spill's slots, `merge.rs` the k-way merge of sorted slots,
//! `store.rs` the runs and the spill, `policy.rs` what the duplicate
//! policy decides, `parts.rs` the final merge split over threads.

mod entry;
mod merge;
#[cfg(unix)]
mod parts;
mod payload;
mod policy;
mod slot;
mod sort;
mod store;
#[cfg(test)]
mod tests;

pub use entry::{Duplicate, KeyEntry, KeyOrder};

use std::fs::File;
use std::io;
use std::thread::JoinHandle;

use merge::Source;
use policy::report_duplicates;
use slot::SlotReader;
use store::Store;

use crate::schema::DuplicatePolicy;

/// Entries held in memory before a run is spilled (about 4.5 MiB).
pub const RUN_ENTRIES: usize = 64 * 1024;

/// Runs merged at once: as many files open, and 64 KiB of buffer each.
const FAN_IN: usize = 32;

/// Fewer keys than this stay in memory when a table's input is finished
/// (a spill file would cost more than the memory).
const SEAL_MIN: usize = 4096;

/// Most threads the final merge is split over.
const MAX_PARTS: usize = 16;

/// Collects keys and finds duplicates.
pub struct KeyIndex {
    /// Keys not yet spilled.
    buf: Vec<KeyEntry>,
    /// The runs, when no spill is under way (`None` only after a spill
    /// failed).
    store: Option<Store>,
    /// A spill under way on a thread of its own, which gives the store
    /// back when done: the keys that arrive meanwhile fill `buf`.
    spilling: Option<JoinHandle<io::Result<Store>>>,
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

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex::new(RUN_ENTRIES)
    }
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
            store: Some(Store::new(fan_in)),
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
        let keys = std::mem::replace(&mut self.buf, store.take_free());
        let job = store.spawn_run(keys, keep_room, self.ascending)?;
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
        // The keys not spilled are merged from memory.
        let tail = std::mem::take(&mut self.buf);
        let (runs, held, payloads) = store.finish(tail)?;
        #[cfg(unix)]
        if self.parts > 1 && !runs.is_empty() {
            return parts::merge_parts(
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
