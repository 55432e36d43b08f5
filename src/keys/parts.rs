//! The final merge split over threads by ranges of the hash
//! ([`merge_parts`]): each part reads its range of every run by position
//! ([`RunSlice`]) and finds its duplicates alone; the calling thread
//! reports them in one order. Positioned reads make this unix only.

use std::fs::File;
use std::io::{self, Read};

use super::entry::Duplicate;
use super::merge::Source;
use super::payload::Payloads;
use super::policy::report_duplicates;
use super::slot::{MARKS, Slot, SlotReader};
use super::store::Run;
use crate::schema::DuplicatePolicy;

/// Duplicates a part of the final merge may have found before the thread
/// that reports them takes them.
pub(super) const PART_QUEUE: usize = 1024;

/// The final merge split over `parts` threads by ranges of the hash's
/// first word: equal keys have equal hashes, so each part finds its
/// duplicates alone. Every part reads its range of every run by position
/// on a thread of its own; the calling thread reports what they find,
/// part by part (a part waits when [`PART_QUEUE`] of its duplicates are
/// unreported, so memory stays bounded however many there are).
pub(super) fn merge_parts(
    runs: &[Run],
    held: &[Slot],
    payloads: &Payloads,
    parts: usize,
    policy: DuplicatePolicy,
    each: &mut dyn FnMut(Duplicate) -> io::Result<()>,
) -> io::Result<()> {
    std::thread::scope(|sc| {
        let (parts, found): (Vec<_>, Vec<_>) = (0..parts)
            .map(|p| {
                let (tx, rx) = crossbeam_channel::bounded(PART_QUEUE);
                let runs = part_sources(runs, held, p, parts);
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

/// The sources of part `p` of `parts`: its range of every run, then its
/// range of the `held` slots. Part p takes the hashes whose top byte is
/// in [cut(p), cut(p + 1)).
fn part_sources<'a>(
    runs: &'a [Run],
    held: &'a [Slot],
    p: usize,
    parts: usize,
) -> Vec<Source<'a, RunSlice<'a>>> {
    let cut = |p: usize| p * MARKS / parts;
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
}

/// Bytes `[pos, end)` of a run, read by position so that several threads
/// can read one file.
struct RunSlice<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

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
