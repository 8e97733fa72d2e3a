//! The binaries' global allocator: mimalloc, asked for a plain block wherever a layout's
//! alignment needs nothing more (feature `mimalloc`; the library itself never sets a
//! global allocator, the `laminar` binary and the benches do).
//!
//! ```text
//!  layout.align() <= 8  ──▶ mi_malloc / mi_zalloc / mi_realloc   (the fast path)
//!  layout.align() >  8  ──▶ mi_malloc_aligned / …                 (Arrow's 64-byte buffers)
//! ```
//! The `mimalloc` crate's allocator sends every request to `mi_malloc_aligned`. In
//! mimalloc 3 that call serves a block whose size is not a power of two by over-allocating
//! through a slow generic path whenever its page's free list is momentarily empty, which
//! happens to every allocate-free-allocate loop: emitting one small window spent more of
//! its instructions in that path than in building the window (callgrind). Every mimalloc
//! block is aligned to 8 bytes (its sizes are multiples of 8, its pages aligned), so for
//! the layouts almost every Rust value has, `mi_malloc` already gives what was asked.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The alignment every mimalloc block has whatever its size.
const BLOCK_ALIGN: usize = 8;

/// mimalloc as a [`GlobalAlloc`] (`#[global_allocator] static A: Allocator = Allocator;`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Allocator;

// SAFETY: every method forwards to mimalloc, which returns blocks of at least the requested
// size (or null). A block from `mi_malloc` is aligned to `BLOCK_ALIGN`, so it is only used
// for layouts that ask no more; any other goes to mimalloc's aligned calls. `mi_free` frees
// blocks from either.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain allocation calls; the alignment is checked above each.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the `GlobalAlloc` contract).
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment, as `alloc` would have chosen it.
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_and_size_asked_for_and_keep_their_bytes_on_realloc() {
        let allocator = Allocator;
        for align in [1, 2, 4, 8, 16, 64, 4096] {
            for size in [1, 7, 8, 24, 104, 112, 1000, 70_000] {
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                // SAFETY: the layout is non-zero in size; every block is freed with it.
                unsafe {
                    let block = allocator.alloc(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "size {size}, align {align}");
                    block.write_bytes(0xAB, size);
                    let grown = allocator.realloc(block, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "realloc {size}, align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xAB));
                    let grown_layout =
                        Layout::from_size_align(size * 3, align).expect("valid layout");
                    allocator.dealloc(grown, grown_layout);
                    let zeroed = allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0);
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    allocator.dealloc(zeroed, layout);
                }
            }
        }
    }
}
