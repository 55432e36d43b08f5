//! The sha256 of a member held whole in memory, computed beside the
//! pipeline.
//!
//! A streamed member is hashed by the consumer as its chunks come back in
//! order. A mapped member's bytes are all there from the start, so its
//! hash need not wait for chunks to be processed and put in order: a
//! thread of its own walks the bytes from the first while the workers
//! process chunks. sha256 is one sequential pass (about 1.5 GB/s with the
//! CPU's SHA instructions), the longest single strand of work in a run on
//! a plain file; beside the pipeline it starts at once and never waits
//! for a chunk.
//!
//! The [`Window`] keeps the hasher and the reader within `lead` bytes of
//! each other, so that only a bounded stretch of the mapping is resident
//! (touched by one and not yet passed by the other), and gives back each
//! page of the mapping once both the hasher and the consumer have passed
//! it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::source::MappedFile;

/// Where the hasher, the reader and the consumer are in one member.
pub(super) struct Window {
    state: Mutex<State>,
    moved: Condvar,
    /// How far the hasher and the reader may run ahead of each other.
    lead: u64,
    map: Option<Arc<MappedFile>>,
}

#[derive(Default)]
struct State {
    /// Bytes hashed, cut into chunks, and consumed in order, from 0.
    hashed: u64,
    cut: u64,
    consumed: u64,
    /// The mapping is given back before this.
    released: u64,
    /// Nobody waits any more: the pipeline stopped early.
    stopped: bool,
}

impl Window {
    /// A window of `lead` bytes over a member, releasing passed pages of
    /// `map` when there is one. Without `beside` (the member is hashed in
    /// order by the consumer) it starts as if hashed to the end: the
    /// reader never waits, and pages go as the consumer passes them.
    pub(super) fn new(
        map: Option<Arc<MappedFile>>,
        lead: usize,
        beside: bool,
    ) -> Window {
        let hashed = if beside { 0 } else { u64::MAX };
        Window {
            state: Mutex::new(State { hashed, ..State::default() }),
            moved: Condvar::new(),
            lead: lead.max(1) as u64,
            map,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters
        // inconsistent (each update is one store).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, g: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.moved.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// The reader has cut up to `at`: waits until the hasher is within
    /// `lead` of it (or the pipeline stopped).
    pub(super) fn cut_to(&self, at: u64) {
        let mut s = self.lock();
        s.cut = at;
        self.moved.notify_all();
        while !s.stopped && s.hashed.saturating_add(self.lead) < at {
            s = self.wait(s);
        }
    }

    /// The reader cut the whole member: the hasher may run to its end.
    pub(super) fn cut_all(&self) {
        self.lock().cut = u64::MAX;
        self.moved.notify_all();
    }

    /// The consumer is done with the bytes before `end`.
    pub(super) fn consumed_to(&self, end: u64) {
        let mut s = self.lock();
        s.consumed = end;
        self.release(&mut s);
    }

    /// The pipeline stopped early: nobody waits any more, and the hasher
    /// gives up.
    pub(super) fn stop(&self) {
        self.lock().stopped = true;
        self.moved.notify_all();
    }

    /// A guard that stops the window when dropped: held over the
    /// pipeline's scope, so that a panic there cannot leave the hasher
    /// waiting for a reader that is gone (the scope joins it).
    pub(super) fn stop_on_drop(&self) -> StopOnDrop<'_> {
        StopOnDrop(self)
    }

    /// Hashes `data` (the member) in pieces of `piece` bytes, keeping
    /// within the window; `None` when the pipeline stopped first.
    pub(super) fn hash(&self, data: &[u8], piece: usize) -> Option<String> {
        let mut hasher = Sha256::new();
        let mut at = 0usize;
        loop {
            {
                let mut s = self.lock();
                s.hashed = at as u64;
                self.release(&mut s);
                self.moved.notify_all();
                if at == data.len() {
                    break;
                }
                while !s.stopped && s.hashed >= s.cut.saturating_add(self.lead)
                {
                    s = self.wait(s);
                }
                if s.stopped {
                    return None;
                }
            }
            let end = data.len().min(at + piece.max(1));
            update_ahead(&mut hasher, &data[at..end]);
            at = end;
        }
        Some(crate::digest::sha256_hex(hasher))
    }

    /// Gives back the pages both the hasher and the consumer passed.
    fn release(&self, s: &mut State) {
        let to = s.hashed.min(s.consumed);
        if to > s.released {
            if let Some(m) = &self.map {
                let _ = m.release(s.released as usize..to as usize);
            }
            s.released = to;
        }
    }
}

/// Bytes hashed between requests for the memory ahead.
const STEP: usize = 1024;

/// Hashes `bytes` a step at a time, asking for the memory two steps
/// ahead before each (a mapped file's pages are not all in the cache:
/// without, the hash waited on its loads at the start of every page).
fn update_ahead(hasher: &mut Sha256, bytes: &[u8]) {
    for (k, step) in bytes.chunks(STEP).enumerate() {
        let ahead = bytes.as_ptr().wrapping_add((k + 2) * STEP);
        for line in (0..STEP).step_by(64) {
            crate::record::prefetch(ahead.wrapping_add(line));
        }
        hasher.update(step);
    }
}

/// See [`Window::stop_on_drop`].
pub(super) struct StopOnDrop<'w>(&'w Window);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on its own thread and fails the test when it has not
    /// finished within 60 s: a bug in the window's waits hangs instead of
    /// failing, and a hung test says nothing.
    fn within_a_minute<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(v) => v,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("hung: no result within 60 s")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                match t.join() {
                    Err(p) => std::panic::resume_unwind(p),
                    Ok(()) => unreachable!("the thread sends before it ends"),
                }
            }
        }
    }

    #[test]
    fn hashes_the_whole_member_within_the_window() {
        within_a_minute(|| {
            let data: Vec<u8> =
                (0..100_000u32).map(|i| (i % 251) as u8).collect();
            let w = Window::new(None, 4096, true);
            let digest = std::thread::scope(|sc| {
                let hasher = sc.spawn(|| w.hash(&data, 1000));
                let mut at = 0u64;
                while at < data.len() as u64 {
                    at = (at + 3000).min(data.len() as u64);
                    w.cut_to(at);
                    // The hasher is never more than the lead behind the reader,
                    // nor more than the lead ahead of it.
                    let s = w.lock();
                    assert!(
                        s.hashed + w.lead >= at,
                        "{} behind {at}",
                        s.hashed
                    );
                    assert!(s.hashed <= s.cut + w.lead + 1000);
                    drop(s);
                    w.consumed_to(at);
                }
                w.cut_all();
                hasher.join().expect("hasher")
            });
            let expected = crate::digest::sha256_hex({
                let mut h = Sha256::new();
                h.update(&data);
                h
            });
            assert_eq!(digest.as_deref(), Some(expected.as_str()));
            let s = w.lock();
            assert_eq!(
                (s.released, s.hashed),
                (data.len() as u64, s.consumed)
            );
        })
    }

    #[test]
    fn without_a_hasher_beside_the_reader_never_waits() {
        within_a_minute(|| {
            let w = Window::new(None, 4096, false);
            // Would wait forever if it waited for a hasher.
            w.cut_to(1 << 40);
            w.consumed_to(1 << 40);
            assert_eq!(w.lock().released, 1 << 40);
        })
    }

    #[test]
    fn a_stop_frees_the_hasher_and_the_reader() {
        within_a_minute(|| {
            let data = vec![b'x'; 1 << 20];
            let w = Window::new(None, 4096, true);
            let digest = std::thread::scope(|sc| {
                let hasher = sc.spawn(|| w.hash(&data, 1024));
                // The reader never cuts: the hasher waits at the lead until
                // the stop.
                while w.lock().hashed < w.lead {
                    std::thread::yield_now();
                }
                w.stop();
                // Past the stop the reader does not wait either.
                w.cut_to(data.len() as u64);
                hasher.join().expect("hasher")
            });
            assert_eq!(digest, None);
            assert!(w.lock().hashed <= w.lead + 1024);
        })
    }
}
