//! The heap the engine is about to fill, faulted in with one call.
//!
//! Building the engine (Rhai's standard library with its docs, then every
//! capability's functions) allocates about half a megabyte in thousands of
//! small pieces, all on the main thread's heap. The first write to each new
//! page of it is a page fault, and on this 2-vCPU VM a fault costs one to
//! four microseconds: ~150 of them, near a fifth of `netsh -e 1`.
//! `MADV_POPULATE_WRITE` (Linux 5.14) maps the same pages in one call for
//! a fraction of that.
//!
//! The heap is made to grow by asking glibc's malloc for [`PIECES`] blocks
//! of [`PIECE`] bytes, each under its mmap threshold, so each is carved
//! from the top of the heap, one after the other. The range from the first
//! to the last is populated, then all but the last are freed: they merge
//! into one free chunk the engine's allocations are then cut from. The
//! last is kept (not populated, so it costs address space, not memory)
//! until [`Populated`] is dropped: freed at once it would merge the rest
//! into the heap's top, and malloc would hand the populated pages back to
//! the kernel (it trims a top over 128 KiB).
//!
//! No malloc setting is changed: `mallopt` of a pad or threshold would
//! also switch off glibc's adaptive mmap threshold for the life of the
//! process (a 200 KB blob made in a loop was then an mmap and an munmap
//! each time, 5× slower). Anywhere but Linux with glibc this does nothing;
//! on a kernel without `MADV_POPULATE_WRITE` the pages fault in one by one
//! as before.

/// The size of each block: under glibc's smallest mmap threshold
/// (128 KiB), so it comes from the heap.
pub const PIECE: usize = 120 * 1024;

/// How many blocks: all but the last are populated, 600 KiB, about what
/// building the engine fills.
pub const PIECES: usize = 6;

/// Holds the last block until start-up is over.
pub struct Populated(#[allow(dead_code)] Vec<u8>);

/// Grows the heap by [`PIECES`] × [`PIECE`] and maps in all but the last
/// block. Call first thing in `main`, and keep what it returns while the
/// engine is built.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn populate() -> Populated {
    use std::hint::black_box;
    use std::ptr::NonNull;

    use nix::sys::mman::{MmapAdvise, madvise};

    // (black_box: an allocation nobody uses is otherwise optimised away.)
    let mut blocks: Vec<Vec<u8>> = (0..PIECES)
        .map(|_| black_box(Vec::with_capacity(PIECE)))
        .collect();
    let last = blocks.pop().unwrap_or_default();
    let first = blocks.first().map_or(0, |b| b.as_ptr() as usize);
    let end = last.as_ptr() as usize;
    let page = 4096;
    let from = first.next_multiple_of(page);
    let to = end & !(page - 1);
    // Carved one after the other, the blocks lie in order, each a little
    // over PIECE apart; anything else (a heap that was not contiguous) is
    // left to fault in as before.
    let expected = (PIECES - 1) * (PIECE + page);
    if let Some(addr) = NonNull::new(from as *mut libc::c_void)
        && first != 0
        && to > from
        && to - from <= expected
    {
        // SAFETY: [from, to) lies in the main heap, between two live
        // blocks malloc handed out, mapped read-write. Populating maps
        // pages as a write would but changes no byte, so whatever the range
        // holds is left as it was; a range not wholly mapped only fails
        // (ENOMEM), as does a kernel without MADV_POPULATE_WRITE (EINVAL).
        let _ = unsafe { madvise(addr, to - from, MmapAdvise::MADV_POPULATE_WRITE) };
    }
    drop(blocks);
    Populated(last)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn populate() -> Populated {
    Populated(Vec::new())
}
