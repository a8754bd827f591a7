//! Size classes: plain data in, plain data out.
//!
//! Classes are multiples of 8 bytes: every 8 bytes up to 128, then eight classes per doubling
//! (144, 160, ... 256, 288, ... 32 KiB). For a request of `s` bytes the class `c` satisfies
//! `c - s < c / 8` (at most 12.5 % of the block is waste) whenever `s > 64`; below that the
//! 8-byte spacing (the minimum alignment every block keeps) bounds the waste to under 8 bytes.
//! `every_size_wastes_at_most_an_eighth` checks this for every size from 1 byte to 32 KiB.
//!
//! Classes up to [`SMALL_SLAB_CLASS_MAX_BYTES`] live in 64 KiB slabs, larger ones in 512 KiB
//! slabs, so every slab holds at least 16 blocks and the tail a slab cannot use stays under
//! 1/16 of it. Requests above [`CLASS_MAX_BYTES`] (or with alignment above a page) are *large*:
//! they go straight to the page source.

/// Number of size classes.
pub const NUM_CLASSES: usize = 80;
/// The largest size served from slabs.
pub const CLASS_MAX_BYTES: usize = 32 * 1024;
/// The largest alignment a size class can honour (slabs start on page boundaries).
pub const CLASS_ALIGN_MAX_BYTES: usize = 4096;
/// Classes up to this size use small (64 KiB) slabs; larger ones use medium (512 KiB) slabs.
pub const SMALL_SLAB_CLASS_MAX_BYTES: usize = 4096;
/// Most objects a magazine can hold.
pub const MAGAZINE_CAPACITY_MAX: usize = 64;
/// A magazine of class `c` holds about this many bytes (within [2, 64] objects).
pub const MAGAZINE_TARGET_BYTES: usize = 64 * 1024;

const fn compute_sizes() -> [u32; NUM_CLASSES] {
    let mut out = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < 16 {
        out[i] = ((i + 1) * 8) as u32;
        i += 1;
    }
    let mut base = 128usize;
    while i < NUM_CLASSES {
        let step = base / 8;
        let mut j = 1;
        while j <= 8 {
            out[i] = (base + j * step) as u32;
            i += 1;
            j += 1;
        }
        base *= 2;
    }
    out
}

/// Bytes of each class, increasing.
pub const CLASS_BYTES: [u32; NUM_CLASSES] = compute_sizes();

const fn compute_caps() -> [u32; NUM_CLASSES] {
    let mut out = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        let mut cap = MAGAZINE_TARGET_BYTES / CLASS_BYTES[i] as usize;
        if cap > MAGAZINE_CAPACITY_MAX {
            cap = MAGAZINE_CAPACITY_MAX;
        }
        if cap < 2 {
            cap = 2;
        }
        out[i] = cap as u32;
        i += 1;
    }
    out
}

/// Objects a full magazine of each class holds.
pub const MAGAZINE_CAPACITY: [u32; NUM_CLASSES] = compute_caps();

/// Sizes up to this are looked up in [`SMALL_LOOKUP`] (one load).
const LOOKUP_MAX_BYTES: usize = 1024;

const fn compute_lookup() -> [u8; LOOKUP_MAX_BYTES / 8 + 1] {
    let mut out = [0u8; LOOKUP_MAX_BYTES / 8 + 1];
    let mut k = 0;
    while k < out.len() {
        let size = if k == 0 { 1 } else { k * 8 };
        out[k] = class_by_arithmetic(size) as u8;
        k += 1;
    }
    out
}

/// `SMALL_LOOKUP[(size + 7) / 8]` is the class of `size` for `size <= 1024`. A `const` so each
/// user crate indexes its own read-only copy without a GOT indirection.
const SMALL_LOOKUP: [u8; LOOKUP_MAX_BYTES / 8 + 1] = compute_lookup();

/// The class of `size <= 1024` bytes with alignment at most 8: one table load.
#[inline(always)]
pub fn small_class(size: usize) -> Option<usize> {
    if size <= LOOKUP_MAX_BYTES {
        Some(SMALL_LOOKUP[(size + 7) >> 3] as usize)
    } else {
        None
    }
}

/// The class of `size` bytes (1 ..= CLASS_MAX_BYTES) by arithmetic.
const fn class_by_arithmetic(size: usize) -> usize {
    if size <= 128 {
        let s = if size == 0 { 1 } else { size };
        return s.div_ceil(8) - 1;
    }
    // size in (base, 2*base] with base = 2^k >= 128.
    let k = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    let base = 1usize << k;
    let step = base / 8;
    let j = (size - base).div_ceil(step); // 1..=8
    16 + (k - 7) * 8 + j - 1
}

/// The class for a request of `size` bytes aligned to `align` (a power of two), or `None` when
/// it is large (bigger than [`CLASS_MAX_BYTES`] once aligned, or `align` above a page).
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= 8 {
        if size <= LOOKUP_MAX_BYTES {
            return Some(SMALL_LOOKUP[(size + 7) >> 3] as usize);
        }
        if size <= CLASS_MAX_BYTES {
            return Some(class_by_arithmetic(size));
        }
        return None;
    }
    class_for_aligned(size, align)
}

#[cold]
fn class_for_aligned(size: usize, align: usize) -> Option<usize> {
    if align > CLASS_ALIGN_MAX_BYTES || size > CLASS_MAX_BYTES {
        return None;
    }
    // Blocks sit at slab_start + i * class and slabs start on page boundaries, so a class that
    // is a multiple of `align` aligns every block. Powers of two are classes, so the scan ends
    // within 8 steps.
    let mut c = class_by_arithmetic(size.max(align));
    while c < NUM_CLASSES {
        if CLASS_BYTES[c] as usize % align == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// Bytes of class `c`.
#[inline]
pub fn class_bytes(c: usize) -> usize {
    CLASS_BYTES[c] as usize
}

/// Whether class `c` uses small (64 KiB) slabs.
#[inline]
pub fn uses_small_slabs(c: usize) -> bool {
    class_bytes(c) <= SMALL_SLAB_CLASS_MAX_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_increase_and_end_at_32k() {
        for w in CLASS_BYTES.windows(2) {
            assert!(w[0] < w[1], "{} then {}", w[0], w[1]);
        }
        assert_eq!(CLASS_BYTES[0], 8);
        assert_eq!(CLASS_BYTES[NUM_CLASSES - 1] as usize, CLASS_MAX_BYTES);
        assert!(CLASS_BYTES.iter().all(|&c| c % 8 == 0));
    }

    #[test]
    fn every_size_wastes_at_most_an_eighth() {
        for size in 1..=CLASS_MAX_BYTES {
            let c = class_for(size, 1).expect("small size has a class");
            let bytes = class_bytes(c);
            assert!(bytes >= size, "size {size} got class {bytes}");
            if c > 0 {
                assert!(
                    class_bytes(c - 1) < size,
                    "size {size} skipped class {}",
                    c - 1
                );
            }
            let waste = bytes - size;
            if size > 64 {
                assert!(
                    waste * 8 <= bytes,
                    "size {size} in class {bytes}: waste {waste}"
                );
            } else {
                assert!(waste < 8, "size {size} in class {bytes}: waste {waste}");
            }
            assert_eq!(
                c,
                class_by_arithmetic(size),
                "lookup table disagrees at {size}"
            );
        }
        assert_eq!(class_for(CLASS_MAX_BYTES + 1, 1), None);
        assert_eq!(class_for(0, 1), Some(0));
    }

    #[test]
    fn aligned_classes_honour_alignment() {
        let mut align = 16;
        while align <= CLASS_ALIGN_MAX_BYTES {
            for size in (1..=CLASS_MAX_BYTES).step_by(7) {
                if let Some(c) = class_for(size, align) {
                    assert_eq!(class_bytes(c) % align, 0, "size {size} align {align}");
                    assert!(class_bytes(c) >= size);
                } else {
                    assert!(size.next_multiple_of(align) > CLASS_MAX_BYTES);
                }
            }
            align *= 2;
        }
        assert_eq!(class_for(8, 8192), None);
    }

    #[test]
    fn magazines_hold_two_to_sixty_four() {
        for &cap in &MAGAZINE_CAPACITY {
            let cap = cap as usize;
            assert!((2..=MAGAZINE_CAPACITY_MAX).contains(&cap));
        }
    }
}
