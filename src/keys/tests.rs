//! The index as a whole (in memory, spilled, merged over levels and
//! threads, ascending or not) against what it must find, and the payload
//! and slot files read back as written.

use std::io::{self, Read, Write};

use super::payload::{Payloads, slots_of};
use super::slot::{SLOT_BYTES, Slot, SlotReader};
use super::store::Run;
use super::*;
use crate::schema::DuplicatePolicy;

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
    let from_memory = Payloads { file: None, len: 7, tail: entries.into() };
    let memory_slots: Vec<Slot> =
        (7..).zip(&slots).map(|(pos, s)| Slot { pos, ..*s }).collect();
    let view =
        |e: &KeyEntry| (e.hash, e.file, e.line, e.byte, e.text().to_vec());
    let want: Vec<_> = entries.iter().map(view).collect();
    for (payloads, slots) in
        [(&from_memory, &memory_slots), (&from_file, &from_file_slots)]
    {
        let back: Vec<_> =
            slots.iter().map(|&s| view(&payloads.entry(s).unwrap())).collect();
        assert_eq!(back, want);
    }
    // A payload cut off, or a position past the entries, is an error.
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bytes[..bytes.len() - 1]).unwrap();
    let cut = Payloads { file: Some(file), len: len - 1, tail: vec![] };
    let past = Slot { pos: 7 + 5, ..slots[4] };
    for (payloads, slot) in [(&cut, from_file_slots[4]), (&from_memory, past)]
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
    let mut r = SlotReader::with_buffer(&raw[..], SLOT_BYTES + 7);
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

// The merge is split over threads on unix only.
#[cfg(unix)]
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
        assert!(one.len() > parts::PART_QUEUE * 2, "{}", one.len());
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
    let n = super::policy::GROUP_HELD as u64 * 2 + 10;
    let mut hashes = vec![9u64; n as usize];
    hashes.insert(0, 1);
    hashes.push(2);
    let last = dups_of(KeyIndex::new(1000), &hashes, DuplicatePolicy::Last);
    assert_eq!(last.len() as u64, n - 1);
    // Every line of key 9 but the latest, each kept by the latest.
    let expected: Vec<(u64, u64)> =
        (2..=n).map(|line| (line, n + 1)).collect();
    assert_eq!(last, expected);
    let first = dups_of(KeyIndex::new(1000), &hashes, DuplicatePolicy::First);
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
    let (ascending, d) =
        dups_in_order(KeyIndex::new(700), &keys, 333, DuplicatePolicy::Reject);
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
