//! The block scan of [`super::DelimitedRecords`]: bit masks of the
//! delimiters, LFs and odd bytes of each 64-byte block, from vector
//! compares, and the prefetch that keeps the blocks coming. All of the
//! record stage's `unsafe` is here: the vector loads, the SSE2 compares
//! (baseline x86-64, but the language still asks for `unsafe` outside a
//! `#[target_feature]` function), the prefetch, and the one call into
//! the AVX2 scan after the CPU was checked. The AVX2 kernel itself is a
//! safe `#[target_feature]` function. The portable kernel is compiled on
//! every target in tests, and each fast kernel is tested against it.
#![allow(unsafe_code)]

/// Bytes per block: one bit of a `u64` mask each.
pub(super) const BLOCK: usize = 64;

/// How far ahead of a block the scan asks for memory: reading a file
/// mapped from the page cache, the hardware's own prefetching stops at
/// each 4 KiB page, and the scan stalled on half of its blocks' loads.
const AHEAD: usize = 2048;

/// Asks the CPU to bring the cache line of `p` in. A hint: it never
/// faults, whatever the address, so `p` may be past the end of the
/// bytes it points into.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of every x86-64 target; a prefetch reads
    // nothing the program sees and does not fault on any address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// What a scan does with each block's masks.
pub(super) trait Blocks {
    /// Takes the masks of the block at byte `at` of the chunk: bit i of
    /// the first set when byte i is the delimiter or LF, of the second
    /// when it is LF, of the third when it is 0x00 or >= 0x80 (bits
    /// past the end of the window clear).
    fn block(&mut self, at: usize, masks: (u64, u64, u64));
}

/// Scans `window`, which starts at byte `base` of the chunk, block by
/// block into `out`, with the fastest kernel this CPU has.
#[inline]
pub(super) fn scan(
    out: &mut impl Blocks,
    window: &[u8],
    base: usize,
    delim: u8,
) {
    #[cfg(target_arch = "x86_64")]
    if has_v3() {
        // SAFETY: the CPU has every feature `scan_v3` is compiled for
        // (checked just above; the answers are cached by std).
        unsafe {
            return scan_v3(out, window, base, delim);
        }
    }
    scan_baseline(out, window, base, delim);
}

/// Whether the CPU has every feature [`scan_v3`] is compiled for.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_v3() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("bmi1")
        && is_x86_feature_detected!("bmi2")
        && is_x86_feature_detected!("lzcnt")
        && is_x86_feature_detected!("popcnt")
}

/// The scan for any CPU of the target ([`block_masks`]).
#[inline(always)]
fn scan_baseline(out: &mut impl Blocks, window: &[u8], base: usize, d: u8) {
    scan_with(out, window, base, d, block_masks);
}

/// [`scan_baseline`] compiled for x86-64 CPUs with AVX2, BMI and
/// POPCNT (x86-64-v3, 2013 on), where counting and finding bits are
/// single instructions (the baseline x86-64 build spends a few on
/// each, and the windowed scan gains nothing there), and a block's
/// masks take two 32-byte compares of each kind instead of four
/// 16-byte ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
fn scan_v3(out: &mut impl Blocks, window: &[u8], base: usize, d: u8) {
    scan_with(out, window, base, d, |b, d| block_masks_avx2(b, d));
}

/// Scans `window` with `masks`, a block's masks as [`block_masks`]
/// gives them.
#[inline(always)]
fn scan_with(
    out: &mut impl Blocks,
    window: &[u8],
    base: usize,
    delim: u8,
    masks: impl Fn(&[u8; BLOCK], u8) -> (u64, u64, u64),
) {
    let mut blocks = window.chunks_exact(BLOCK);
    for (k, block) in blocks.by_ref().enumerate() {
        prefetch(block.as_ptr().wrapping_add(AHEAD));
        let block = block.try_into().expect("64 bytes");
        out.block(base + k * BLOCK, masks(block, delim));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // Past the end: zeros, whose bits are cleared.
        let mut pad = [0u8; BLOCK];
        pad[..rest.len()].copy_from_slice(rest);
        let valid = (1u64 << rest.len()) - 1;
        let (hits, lfs, odd) = masks(&pad, delim);
        let at = base + window.len() - rest.len();
        out.block(at, (hits & valid, lfs & valid, odd & valid));
    }
}

/// The masks of [`Blocks::block`] for one block (SSE2, part of the
/// x86-64 baseline: 16-byte compares).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_masks(block: &[u8; BLOCK], delim: u8) -> (u64, u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128,
    };
    let (mut hits, mut lfs, mut odd) = (0u64, 0u64, 0u64);
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86-64 target, so the intrinsics
        // are available; `part` is exactly 16 readable bytes and the load
        // is unaligned.
        let (h, l, o) = unsafe {
            let x = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
            let lf = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\n' as i8));
            let d = _mm_cmpeq_epi8(x, _mm_set1_epi8(delim as i8));
            // The sign bit of each byte >= 0x80, or of the all-ones NUL
            // compare.
            let o = _mm_or_si128(x, _mm_cmpeq_epi8(x, _mm_setzero_si128()));
            (
                _mm_movemask_epi8(_mm_or_si128(lf, d)) as u32 as u64,
                _mm_movemask_epi8(lf) as u32 as u64,
                _mm_movemask_epi8(o) as u32 as u64,
            )
        };
        hits |= h << (16 * k);
        lfs |= l << (16 * k);
        odd |= o << (16 * k);
    }
    (hits, lfs, odd)
}

/// [`block_masks`] in 32-byte compares.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn block_masks_avx2(block: &[u8; BLOCK], delim: u8) -> (u64, u64, u64) {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
    };
    let (mut hits, mut lfs, mut odd) = (0u64, 0u64, 0u64);
    for (k, part) in block.chunks_exact(32).enumerate() {
        // SAFETY: `part` is exactly 32 readable bytes and the load is
        // unaligned (AVX2 itself is this function's to require).
        let x = unsafe { _mm256_loadu_si256(part.as_ptr().cast::<__m256i>()) };
        let lf = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(b'\n' as i8));
        let d = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(delim as i8));
        let zero = _mm256_cmpeq_epi8(x, _mm256_setzero_si256());
        let h = _mm256_movemask_epi8(_mm256_or_si256(lf, d)) as u32 as u64;
        let l = _mm256_movemask_epi8(lf) as u32 as u64;
        let o = _mm256_movemask_epi8(_mm256_or_si256(x, zero)) as u32 as u64;
        hits |= h << (32 * k);
        lfs |= l << (32 * k);
        odd |= o << (32 * k);
    }
    (hits, lfs, odd)
}

/// The portable kernel: the vector ones everywhere but x86-64.
#[cfg(not(target_arch = "x86_64"))]
use block_masks_portable as block_masks;

/// [`block_masks`] with word arithmetic: the kernel of targets without
/// one of their own, and the reference every fast kernel is tested
/// against.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn block_masks_portable(block: &[u8; BLOCK], delim: u8) -> (u64, u64, u64) {
    use crate::decode::swar::{HIGH, equal, zero};
    // Bit 7 of each byte to bit i of the result.
    let pack =
        |m: u64| (0..8).fold(0, |acc, i| acc | ((m >> (8 * i + 7)) & 1) << i);
    let (mut hits, mut lfs, mut odd) = (0u64, 0u64, 0u64);
    for (k, w) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let lf = equal(x, b'\n');
        hits |= pack(lf | equal(x, delim)) << (8 * k);
        lfs |= pack(lf) << (8 * k);
        odd |= pack((x & HIGH) | zero(x)) << (8 * k);
    }
    (hits, lfs, odd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a test may run the kernel that needs `feature`: when the
    /// CPU lacks it, the test fails, unless `FWLOAD_ALLOW_NO_SIMD` is set
    /// (then it says on stderr that the kernel went untested).
    #[cfg(target_arch = "x86_64")]
    fn can_run(has: bool, feature: &str) -> bool {
        if has {
            return true;
        }
        let msg = format!(
            "this CPU lacks {feature}: its kernel is untested here \
             (set FWLOAD_ALLOW_NO_SIMD=1 to pass anyway)"
        );
        assert!(std::env::var_os("FWLOAD_ALLOW_NO_SIMD").is_some(), "{msg}");
        eprintln!("WARNING: {msg}");
        false
    }

    /// Bytes drawn from the ones that matter (delimiters, LF, CR, NUL,
    /// DEL, 0x80, 0xFF), at every position.
    fn rough_bytes(len: usize, seed: u64) -> Vec<u8> {
        let alphabet = b"\t\n\r,|a \x00\x7F\x80\xFF";
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    fn blocks() -> Vec<[u8; BLOCK]> {
        let bytes = rough_bytes(20_000 * BLOCK, 0x9E37_79B9_7F4A_7C15);
        bytes.chunks_exact(BLOCK).map(|b| b.try_into().expect("64")).collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn narrow_block_masks_are_the_portable_ones() {
        for block in blocks() {
            for delim in [b'\t', b',', b'|'] {
                let want = block_masks_portable(&block, delim);
                assert_eq!(block_masks(&block, delim), want, "{block:?}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_block_masks_are_the_portable_ones() {
        if !can_run(is_x86_feature_detected!("avx2"), "AVX2") {
            return;
        }
        for block in blocks() {
            for delim in [b'\t', b',', b'|'] {
                // SAFETY: AVX2 checked above.
                let wide = unsafe { block_masks_avx2(&block, delim) };
                let want = block_masks_portable(&block, delim);
                assert_eq!(wide, want, "{block:?}");
            }
        }
    }

    /// Every block's position and masks, in order.
    #[derive(Default, Debug, PartialEq)]
    struct Taken(Vec<(usize, (u64, u64, u64))>);

    impl Blocks for Taken {
        fn block(&mut self, at: usize, masks: (u64, u64, u64)) {
            self.0.push((at, masks));
        }
    }

    /// Each scan (and the one chosen at run time) gives every block's
    /// masks as the portable kernel does, a partial last block too.
    #[test]
    fn scans_agree() {
        let data = rough_bytes(300 * BLOCK + 37, 7);
        for (from, to) in [(0, data.len()), (3, data.len() - 5), (64, 640)] {
            let window = &data[from..to];
            let run = |scan: fn(&mut Taken, &[u8], usize, u8)| {
                let mut taken = Taken::default();
                scan(&mut taken, window, from, b',');
                taken
            };
            let want = run(|t, w, b, d| {
                scan_with(t, w, b, d, block_masks_portable);
            });
            assert_eq!(want.0.len(), window.len().div_ceil(BLOCK));
            assert_eq!(run(scan), want);
            assert_eq!(run(scan_baseline), want);
            #[cfg(target_arch = "x86_64")]
            if can_run(has_v3(), "AVX2, BMI1, BMI2, LZCNT or POPCNT") {
                // SAFETY: `has_v3` checked the features `scan_v3` needs.
                let v3 = run(|t, w, b, d| unsafe { scan_v3(t, w, b, d) });
                assert_eq!(v3, want);
            }
        }
    }
}
