//! [`MiMalloc`]: mimalloc as Rust's global allocator, asking for an aligned block only when a
//! plain one would not do.
//!
//! The `mimalloc` crate's allocator passes every request to `mi_malloc_aligned`. mimalloc 3 takes
//! its fast path there only for blocks up to 1 KiB whose free list happens to start aligned; any
//! larger block (a boxed request future is ~2.5 KiB) goes through its generic aligned path, which
//! over-allocates and adjusts. Most requests need no more alignment than every mimalloc block has,
//! so [`MiMalloc`] sends those to plain `mi_malloc`, as std's `System` allocator does with
//! `malloc`. Measured with `tests/load/callgrind-sync.sh`: 21.3k -> 20.8k instructions per
//! proxied request.
//!
//! When is a plain block aligned enough? Every mimalloc block is aligned to its size class, and on
//! 64-bit targets every size class above one word is a multiple of 16 bytes (mimalloc rounds small
//! sizes to two words, and the first block of a page starts 16-aligned). So a request whose
//! alignment is at most [`PLAIN_ALIGN`] and divides its size (true of every Rust type's layout) is
//! served aligned by `mi_malloc`. The tests check this for a grid of sizes and alignments.

use libmimalloc_sys as ffi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The largest alignment a plain mimalloc block is guaranteed to have (`MI_MAX_ALIGN_SIZE`),
/// given a size that is a multiple of it.
pub const PLAIN_ALIGN: usize = 16;

/// mimalloc as a global allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct MiMalloc;

/// Whether a plain `mi_malloc` block of `size` bytes is aligned to `align`.
#[inline]
fn plain_is_aligned(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && size.is_multiple_of(align)
}

// SAFETY: every method hands the request to mimalloc, which returns null or a block of at least
// the requested size; a block asked for with plain `mi_malloc`/`mi_zalloc`/`mi_realloc` is
// aligned to the layout's alignment (see the crate documentation and the tests), and any other
// is asked for with the alignment. `mi_free` and `mi_realloc*` accept blocks from any of them.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain_is_aligned(size, align) {
            // SAFETY: mimalloc's malloc may be called with any size.
            unsafe { ffi::mi_malloc(size).cast() }
        } else {
            // SAFETY: `align` is a power of two, as every `Layout`'s is.
            unsafe { ffi::mi_malloc_aligned(size, align).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain_is_aligned(size, align) {
            // SAFETY: as in `alloc`.
            unsafe { ffi::mi_zalloc(size).cast() }
        } else {
            // SAFETY: as in `alloc`.
            unsafe { ffi::mi_zalloc_aligned(size, align).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, so mimalloc's.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if plain_is_aligned(new_size, align) {
            // SAFETY: `ptr` is a mimalloc block (the caller's contract); the new block is plain.
            unsafe { ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: as above, with the layout's power-of-two alignment.
            unsafe { ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around every small size class and a few large ones, with every alignment that
    /// divides them, up to 4 KiB.
    fn layouts() -> impl Iterator<Item = Layout> {
        let sizes = (1..=512usize).chain([1000, 1024, 2456, 4096, 10_000, 65_536, 1 << 20]);
        sizes.flat_map(|size| {
            (0..=12)
                .map(|shift| 1usize << shift)
                .filter(move |align| size.is_multiple_of(*align) || *align <= 8)
                .map(move |align| Layout::from_size_align(size, align).expect("valid layout"))
        })
    }

    fn assert_usable(ptr: *mut u8, layout: Layout) {
        assert!(!ptr.is_null(), "{layout:?}: null");
        assert_eq!(
            ptr as usize % layout.align(),
            0,
            "{layout:?}: misaligned {ptr:p}"
        );
    }

    #[test]
    fn every_block_is_aligned_and_writable() {
        let a = MiMalloc;
        for layout in layouts() {
            // Several at once, so that blocks further into a page are checked too.
            let blocks: Vec<*mut u8> = (0..8)
                .map(|i| {
                    // SAFETY: the layout's size is non-zero.
                    let ptr = unsafe { a.alloc(layout) };
                    assert_usable(ptr, layout);
                    // SAFETY: the block has `layout.size()` writable bytes.
                    unsafe { ptr.write_bytes(i, layout.size()) };
                    ptr
                })
                .collect();
            for (i, ptr) in blocks.into_iter().enumerate() {
                // SAFETY: the block was written in full above and is still live.
                let last = unsafe { *ptr.add(layout.size() - 1) };
                assert_eq!(usize::from(last), i, "{layout:?}: blocks overlap");
                // SAFETY: allocated above with this layout.
                unsafe { a.dealloc(ptr, layout) };
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_and_aligned() {
        let a = MiMalloc;
        for layout in layouts().filter(|l| l.size() <= 65_536) {
            // SAFETY: the layout's size is non-zero.
            let ptr = unsafe { a.alloc_zeroed(layout) };
            assert_usable(ptr, layout);
            // SAFETY: the block has `layout.size()` initialised bytes.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            assert!(bytes.iter().all(|&b| b == 0), "{layout:?}: not zeroed");
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(ptr, layout) };
        }
    }

    #[test]
    fn realloc_keeps_the_contents_and_the_alignment() {
        let a = MiMalloc;
        for align in [1, 8, 16, 32, 64, 4096] {
            let mut layout = Layout::from_size_align(align.max(8), align).expect("valid layout");
            // SAFETY: the layout's size is non-zero.
            let mut ptr = unsafe { a.alloc(layout) };
            assert_usable(ptr, layout);
            // SAFETY: the block has `layout.size()` writable bytes.
            unsafe { ptr.write_bytes(0xA5, layout.size()) };
            for new_size in [24, 100, 1024, 3000, 70_000, 40, align] {
                let new_size = new_size.max(align);
                let kept = layout.size().min(new_size);
                // SAFETY: `ptr` was allocated with `layout`; `new_size` is non-zero.
                ptr = unsafe { a.realloc(ptr, layout, new_size) };
                layout = Layout::from_size_align(new_size, align).expect("valid layout");
                assert_usable(ptr, layout);
                // SAFETY: the first `kept` bytes were written before and carried over.
                let bytes = unsafe { std::slice::from_raw_parts(ptr, kept) };
                assert!(
                    bytes.iter().all(|&b| b == 0xA5),
                    "{layout:?}: contents lost"
                );
                // SAFETY: the block has `new_size` writable bytes.
                unsafe { ptr.write_bytes(0xA5, new_size) };
            }
            // SAFETY: the current block and its layout.
            unsafe { a.dealloc(ptr, layout) };
        }
    }

    #[test]
    fn the_plain_path_is_taken_only_when_it_is_aligned() {
        assert!(plain_is_aligned(2456, 8));
        assert!(plain_is_aligned(48, 16));
        assert!(plain_is_aligned(8, 8));
        assert!(
            !plain_is_aligned(24, 16),
            "a 24-byte class is only 8-aligned"
        );
        assert!(!plain_is_aligned(64, 32));
        assert!(!plain_is_aligned(4096, 4096));
    }
}
