//! The decode stage's vector kernel and all of its `unsafe`: the SSE2
//! compares that find a number's digits and points (baseline x86-64,
//! but the language still asks for `unsafe` outside a
//! `#[target_feature]` function), and taking scanned ASCII as `&str`
//! without checking it again. The portable kernel is compiled on every
//! target in tests, and the fast one is tested against it.
#![allow(unsafe_code)]

/// An ASCII slice as `&str` without validating it again.
#[inline]
pub(super) fn ascii_str(raw: &[u8]) -> &str {
    debug_assert!(raw.is_ascii());
    // SAFETY: the caller scanned every byte and found none ≥ 0x80, and
    // ASCII is valid UTF-8. Measured: `str::from_utf8` on these short
    // values was 7% of validation time (benches/decode.rs).
    unsafe { std::str::from_utf8_unchecked(raw) }
}

/// Bit j set in the first mask when byte j of `w` is an ASCII digit, in
/// the second when it is `.` (SSE2, part of the x86-64 baseline: one
/// vector load and two compares).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn digits_and_points(w: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
        _mm_movemask_epi8, _mm_set1_epi8, _mm_sub_epi8,
    };
    // SAFETY: SSE2 is part of every x86-64 target, so the intrinsics are
    // available; `w` is 16 readable bytes and the load is unaligned.
    unsafe {
        let x = _mm_loadu_si128(w.as_ptr().cast::<__m128i>());
        // A digit is a byte at most 9 above '0'.
        let d = _mm_sub_epi8(x, _mm_set1_epi8(b'0' as i8));
        let digit = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
        let point = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'.' as i8));
        (_mm_movemask_epi8(digit) as u32, _mm_movemask_epi8(point) as u32)
    }
}

/// [`digits_and_points`] a byte at a time: the reference the fast kernel
/// is tested against.
#[cfg(test)]
fn digits_and_points_portable(w: &[u8; 16]) -> (u32, u32) {
    let mask = |f: fn(&u8) -> bool| {
        w.iter().enumerate().fold(0, |m, (j, b)| m | (f(b) as u32) << j)
    };
    (mask(u8::is_ascii_digit), mask(|&b| b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn digits_and_points_are_the_portable_ones() {
        // Every byte value at every place, among digits and points.
        for b in 0..=255u8 {
            for j in 0..16 {
                for fill in [b'0', b'9', b'.', b'/'] {
                    let mut w = [fill; 16];
                    w[j] = b;
                    let want = digits_and_points_portable(&w);
                    assert_eq!(digits_and_points(&w), want, "{w:?}");
                }
            }
        }
    }

    #[test]
    fn ascii_str_is_the_checked_str() {
        for v in [&b""[..], b"abc", b"\x01\x7F 12.5"] {
            assert_eq!(ascii_str(v), std::str::from_utf8(v).unwrap());
        }
    }
}
