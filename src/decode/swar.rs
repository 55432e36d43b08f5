//! Word-at-a-time byte tests and digit parsing (SWAR: SIMD within a
//! register). Every test here is exact per byte, with no carry from one
//! byte into the next, and short values are read with two overlapping
//! loads rather than copied byte by byte.

/// 0x01 in every byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// Bit 7 of every byte.
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;
/// Bits 0 to 6 of every byte.
pub(crate) const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
/// `'0'` in every byte.
pub(crate) const ZEROS: u64 = ONES * b'0' as u64;

/// Bit 7 of each byte of `x` that is zero.
#[inline]
pub(crate) fn zero(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x) & HIGH
}

/// Bit 7 of each byte of `x` equal to `b`.
#[inline]
pub(crate) fn equal(x: u64, b: u8) -> u64 {
    zero(x ^ (ONES * b as u64))
}

/// A value of 1 to 7 bytes as one word, left-aligned (byte `j` of `raw`
/// at byte `j` of the word), the unused bytes `fill`.
#[inline]
pub(crate) fn left_word(raw: &[u8], fill: u8) -> u64 {
    let n = raw.len();
    debug_assert!((1..8).contains(&n));
    let x = if n >= 4 {
        let lo = u32::from_le_bytes(raw[..4].try_into().expect("4"));
        let hi = u32::from_le_bytes(raw[n - 4..].try_into().expect("4"));
        lo as u64 | (hi as u64) << (8 * (n - 4))
    } else if n >= 2 {
        let lo = u16::from_le_bytes(raw[..2].try_into().expect("2"));
        let hi = u16::from_le_bytes(raw[n - 2..].try_into().expect("2"));
        lo as u64 | (hi as u64) << (8 * (n - 2))
    } else {
        raw[0] as u64
    };
    x | ((ONES * fill as u64) & (u64::MAX << (8 * n)))
}

/// A value of 1 to 8 bytes as one word, right-aligned (byte `j` of `raw`
/// at byte `8 - len + j`), the bytes before it `'0'`: the layout
/// [`eight_digits`] reads, where leading zeros change nothing.
#[inline(always)]
fn right_word(raw: &[u8]) -> u64 {
    let n = raw.len();
    debug_assert!((1..=8).contains(&n));
    let pad = 8 * (8 - n);
    let x = if n >= 4 {
        let lo = u32::from_le_bytes(raw[..4].try_into().expect("4"));
        let hi = u32::from_le_bytes(raw[n - 4..].try_into().expect("4"));
        (lo as u64) << pad | (hi as u64) << 32
    } else if n >= 2 {
        let lo = u16::from_le_bytes(raw[..2].try_into().expect("2"));
        let hi = u16::from_le_bytes(raw[n - 2..].try_into().expect("2"));
        (lo as u64) << pad | (hi as u64) << 48
    } else {
        (raw[0] as u64) << 56
    };
    x | (ZEROS & ((1u64 << pad) - 1))
}

/// Nonzero when a byte of `x` is not an ASCII digit.
#[inline(always)]
fn non_digits(x: u64) -> u64 {
    // A byte below '0' sets bit 7 of the difference, one above '9' bit 7
    // of the sum; a borrow or carry only ever leaves a byte already
    // flagged, so a clean result means eight digits.
    (x.wrapping_add(ONES * 0x46) | x.wrapping_sub(ZEROS)) & HIGH
}

/// Whether both words hold only ASCII digits.
#[inline(always)]
pub(crate) fn digits_only(head: u64, tail: u64) -> bool {
    non_digits(head) | non_digits(tail) == 0
}

/// The number written by eight ASCII digits (the first, most significant,
/// in the lowest byte), or `None` when a byte is not a digit.
#[inline(always)]
fn eight_digits(x: u64) -> Option<u64> {
    if non_digits(x) != 0 {
        return None;
    }
    // Pairs, then quads, then the whole: each step multiplies the higher
    // digit group by a power of ten and adds the lower one in every lane.
    let v = x - ZEROS;
    let v = v * 10 + (v >> 8);
    // The high halves of the products wrap away by design.
    const LANES: u64 = 0x0000_00FF_0000_00FF;
    let even = (v & LANES).wrapping_mul(100 + (1_000_000 << 32));
    let odd = ((v >> 16) & LANES).wrapping_mul(1 + (10_000 << 32));
    let v = even.wrapping_add(odd) >> 32;
    Some(v)
}

/// A value of 1 to 16 bytes right-aligned in 16 bytes behind '0's, as
/// two words: bytes 0-7 (the most significant) and bytes 8-15; `None`
/// when `raw` is empty or longer. Two values of the same length have the
/// same words only when they are equal.
#[inline(always)]
pub(crate) fn sixteen(raw: &[u8]) -> Option<(u64, u64)> {
    let n = raw.len();
    match n {
        1..=8 => Some((ZEROS, right_word(raw))),
        9..=16 => Some((
            right_word(&raw[..n - 8]),
            u64::from_le_bytes(raw[n - 8..].try_into().expect("8")),
        )),
        _ => None,
    }
}

/// As [`sixteen`], for the value `buf[start..end]`: when at least 16
/// bytes end where the value ends, they are loaded at once and the bytes
/// before the value masked to '0', so that no branch depends on the
/// value's length.
#[inline(always)]
pub(crate) fn sixteen_in(
    buf: &[u8],
    start: usize,
    end: usize,
) -> Option<(u64, u64)> {
    let n = end - start;
    if end < 16 || n == 0 || n > 16 {
        return sixteen(&buf[start..end]);
    }
    let w = &buf[end - 16..end];
    let head = u64::from_le_bytes(w[..8].try_into().expect("8"));
    let tail = u64::from_le_bytes(w[8..].try_into().expect("8"));
    // The 16 - n bytes before the value: all of the head and some of the
    // tail, or some of the head.
    let k = (16 - n) as u32;
    let keep_head = u64::MAX.checked_shl(8 * k.min(8)).unwrap_or(0);
    let keep_tail = u64::MAX << (8 * k.saturating_sub(8));
    Some((
        (head & keep_head) | (ZEROS & !keep_head),
        (tail & keep_tail) | (ZEROS & !keep_tail),
    ))
}

/// The number the sixteen digits of [`sixteen`]'s words write.
#[inline(always)]
fn sixteen_digits((head, tail): (u64, u64)) -> Option<u64> {
    Some(eight_digits(head)? * 100_000_000 + eight_digits(tail)?)
}

/// The number written by 1 to 16 ASCII digits, or `None` when `raw` is
/// empty, longer, or holds a byte that is not a digit. No loop carries a
/// multiply from digit to digit.
#[inline(always)]
pub(crate) fn digits(raw: &[u8]) -> Option<u64> {
    sixteen_digits(sixteen(raw)?)
}

/// A decimal of 1 to 16 bytes, digits with at most one `.` (`830725.82`,
/// `5.`, `.5`), as the number its digits write and how many of them follow
/// the point; `None` for anything else (no digits, a second point, any
/// other byte, longer). The bytes are read as two words, the point cut out
/// with shifts, and both words parsed as eight digits: no loop and no
/// branch on the digits.
#[inline]
pub(crate) fn point_decimal(raw: &[u8]) -> Option<(u64, u16)> {
    let (head, tail) = sixteen(raw)?;
    // Bytes below `k` of a word, and bytes above it.
    let below = |k: u32| (1u64 << (8 * k)) - 1;
    let above = |k: u32| (u64::MAX << (8 * k)) << 8;
    let in_tail = equal(tail, b'.');
    let in_head = equal(head, b'.');
    // Cutting the point out moves every byte before it up by one, a '0'
    // coming in at byte 0.
    let (head, tail, q) = if in_tail != 0 {
        let k = in_tail.trailing_zeros() / 8;
        let t = (tail & above(k)) | (tail & below(k)) << 8 | head >> 56;
        (head << 8 | b'0' as u64, t, 8 + k)
    } else if in_head != 0 {
        let k = in_head.trailing_zeros() / 8;
        let h = (head & above(k)) | (head & below(k)) << 8 | b'0' as u64;
        (h, tail, k)
    } else {
        return Some((sixteen_digits((head, tail))?, 0));
    };
    if raw.len() == 1 {
        // A lone point has no digits.
        return None;
    }
    Some((sixteen_digits((head, tail))?, 15 - q as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &[u8]) -> Option<u64> {
        if s.is_empty() || s.len() > 16 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(s.iter().fold(0, |a, &d| a * 10 + (d - b'0') as u64))
    }

    #[test]
    fn digits_match_a_plain_loop() {
        // Every length, digits from a fixed pseudo-random sequence, and
        // every position of every non-digit neighbour of '0' and '9'.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in 0..=17 {
            for _ in 0..200 {
                let s: Vec<u8> =
                    (0..n).map(|_| b'0' + (next() % 10) as u8).collect();
                assert_eq!(digits(&s), naive(&s), "{s:?}");
                for at in 0..n {
                    for bad in [0u8, b'/', b':', b'.', b' ', 0x80, 0xB9, 0xFF]
                    {
                        let mut t = s.clone();
                        t[at] = bad;
                        assert_eq!(digits(&t), None, "{t:?}");
                    }
                }
            }
        }
        assert_eq!(digits(b"9999999999999999"), Some(9_999_999_999_999_999));
        assert_eq!(digits(b"0000000000000001"), Some(1));
    }

    #[test]
    fn point_decimal_matches_a_byte_loop() {
        fn by_bytes(body: &[u8]) -> Option<(u64, u16)> {
            let (mut a, mut places, mut digits, mut point) = (0, 0, 0, false);
            if body.len() > 16 {
                return None;
            }
            for &b in body {
                if b.is_ascii_digit() {
                    a = a * 10 + (b - b'0') as u64;
                    digits += 1;
                    places += point as u16;
                } else if b == b'.' && !point {
                    point = true;
                } else {
                    return None;
                }
            }
            (digits > 0).then_some((a, places))
        }
        // Every placement of up to two points and one stray byte in
        // values of every length.
        for n in 0..=17usize {
            let base: Vec<u8> = (0..n).map(|i| b'1' + (i % 9) as u8).collect();
            let mut cases = vec![base.clone()];
            for p in 0..n {
                let mut one = base.clone();
                one[p] = b'.';
                cases.push(one.clone());
                for r in 0..n {
                    let mut two = one.clone();
                    two[r] = b'.';
                    cases.push(two);
                    let mut bad = one.clone();
                    bad[r] = if r == p { b'/' } else { b'x' };
                    cases.push(bad);
                }
            }
            for c in cases {
                assert_eq!(point_decimal(&c), by_bytes(&c), "{c:?}");
            }
        }
        assert_eq!(point_decimal(b"830725.82"), Some((83_072_582, 2)));
        assert_eq!(point_decimal(b"5."), Some((5, 0)));
        assert_eq!(point_decimal(b".5"), Some((5, 1)));
        assert_eq!(point_decimal(b"."), None);
        assert_eq!(
            point_decimal(b"1234567.89012345"),
            Some((123456789012345, 8))
        );
    }

    #[test]
    fn sixteen_in_matches_sixteen() {
        let buf: Vec<u8> = (0..40u8).map(|i| b'A' + i).collect();
        for start in 0..buf.len() {
            for end in start..=buf.len() {
                assert_eq!(
                    sixteen_in(&buf, start, end),
                    sixteen(&buf[start..end]),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn left_word_fills() {
        assert_eq!(left_word(b"ab", b'A').to_le_bytes(), *b"abAAAAAA");
        assert_eq!(left_word(b"abcde", b'A').to_le_bytes(), *b"abcdeAAA");
        assert_eq!(right_word(b"123").to_le_bytes(), *b"00000123");
        assert_eq!(right_word(b"12345").to_le_bytes(), *b"00012345");
    }
}
