//! The k-way merge of sorted slots: [`merge`] takes [`Source`]s (runs
//! being read back, or slots in memory) and gives their slots in order.
//! Spills merge full levels of runs with it; the final merge reports
//! duplicates with it.

use std::io::{self, Read};

use super::slot::{Slot, SlotReader};

/// Sorted slots: a run being read back, or sorted slots in memory.
pub(super) enum Source<'a, R> {
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
pub(super) fn merge<R: Read>(
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
