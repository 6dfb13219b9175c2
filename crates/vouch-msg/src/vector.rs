//! A sixteen-byte search for the line ends of the header section (RFC 3261 §7.3).
//!
//! SSE2 is part of every x86-64 CPU, so no run-time detection is needed, and `safe_arch` gives
//! it without `unsafe` here; other targets use `memchr`. Header lines are mostly 20–80 bytes,
//! where a general vector search (`memchr`) spends more on its per-call set-up than on the
//! search: this one parses the benchmark INVITE about 5 % faster (BENCHMARKS.md §1).

/// The index of the first `x` or `y` in `b`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(crate) fn find_either(b: &[u8], x: u8, y: u8) -> Option<usize> {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let xs = set_splat_i8_m128i(x as i8);
    let ys = set_splat_i8_m128i(y as i8);
    let mut blocks = b.chunks_exact(16);
    let mut at = 0;
    for block in &mut blocks {
        let v = load_unaligned_m128i(block.try_into().ok()?);
        let hits = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, xs) | cmp_eq_mask_i8_m128i(v, ys));
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize);
        }
        at += 16;
    }
    // The last line of a header section is followed by the empty line and mostly a body, so
    // this short tail is rarely searched.
    memchr::memchr2(x, y, blocks.remainder()).map(|k| at + k)
}

/// The index of the first `x` or `y` in `b`.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
pub(crate) fn find_either(b: &[u8], x: u8, y: u8) -> Option<usize> {
    memchr::memchr2(x, y, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every position, for lengths around the block size.
    #[test]
    fn finds_the_first_of_either_byte() {
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 64] {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'x'; len];
                    b[at] = c;
                    b.push(b'\n');
                    let want = b.iter().position(|&x| x == b'\r' || x == b'\n');
                    assert_eq!(
                        find_either(&b, b'\r', b'\n'),
                        want,
                        "len {len} at {at} {c:#04x}"
                    );
                    b.pop();
                    let want = b.iter().position(|&x| x == b'\r' || x == b'\n');
                    assert_eq!(
                        find_either(&b, b'\r', b'\n'),
                        want,
                        "len {len} at {at} {c:#04x}"
                    );
                }
            }
        }
        assert_eq!(find_either(b"", b' ', b'\t'), None);
        assert_eq!(find_either(&[b'a'; 40], b' ', b'\t'), None);
    }
}
