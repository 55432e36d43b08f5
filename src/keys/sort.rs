//! The sort of a spill's slots: buckets by the hash's top bits, then each
//! bucket in place ([`sort`]), in room kept from one spill to the next
//! ([`SortRoom`]).

use super::slot::Slot;

/// Room for [`sort`], kept from one sort to the next so that a spill
/// neither allocates nor copies the buffer first.
#[derive(Default)]
pub(super) struct SortRoom {
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
pub(super) fn sort(buf: &mut Vec<Slot>, room: &mut SortRoom) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
