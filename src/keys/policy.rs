//! What the duplicate policy decides: [`report_duplicates`] merges
//! sorted slots and, key by key ([`Group`]), reports each record that is
//! not kept beside the one that is.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use super::entry::{Duplicate, KeyEntry};
use super::merge::{Source, merge};
use super::payload::Payloads;
use super::slot::{Slot, SlotReader, into_file};
use crate::schema::DuplicatePolicy;

/// Slots of one key held in memory under `last` before spilling.
pub(super) const GROUP_HELD: usize = 4096;

/// Merges sorted slots and reports the duplicates under `policy`.
pub(super) fn report_duplicates<R: Read>(
    runs: Vec<Source<'_, R>>,
    payloads: &Payloads,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    let mut group = Group::new(policy, payloads);
    merge(runs, &mut |s| group.visit(s, each))?;
    group.end(each)
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
