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
//! glibc's malloc grows the heap by what a request lacks plus `M_TOP_PAD`.
//! With the pad at [`AHEAD`], one growth leaves that much free at the top
//! of the heap; two pieces below the mmap threshold are enough to make it
//! grow; freed, they join the top again, which then starts where the first
//! of them did and is as long as `mallinfo2().keepcost` says. That range
//! is what gets populated. The pad stays: a smaller one would let the
//! first large `free` trim the populated pages away again.
//!
//! Anywhere but Linux with glibc this does nothing, and on a kernel
//! without `MADV_POPULATE_WRITE` the pages fault in one by one as before.

/// How much heap to have ready: what `netsh -e 1` grows its heap by,
/// rounded up.
pub const AHEAD: usize = 640 * 1024;

/// Makes the heap [`AHEAD`] bytes larger than it needs now and maps those
/// pages in. Call once, first thing in `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn populate() {
    use std::ptr::NonNull;

    use nix::sys::mman::{MmapAdvise, madvise};

    // Under glibc's default mmap threshold (128 KiB), so from the heap.
    const PIECE: usize = 120 * 1024;

    // SAFETY: mallopt changes a malloc tunable; nothing else runs yet.
    if unsafe { libc::mallopt(libc::M_TOP_PAD, AHEAD as libc::c_int) } != 1 {
        return;
    }
    // The first piece is carved from the start of the heap's free top;
    // the second, if the first fitted, makes the heap grow.
    // (black_box: an allocation nobody uses is otherwise optimised away.)
    let first = std::hint::black_box(Vec::<u8>::with_capacity(PIECE));
    let start = first.as_ptr() as usize;
    let second = std::hint::black_box(Vec::<u8>::with_capacity(PIECE));
    drop(second);
    drop(first);
    // SAFETY: mallinfo2 only reads malloc's counters.
    let top = unsafe { libc::mallinfo2() }.keepcost;
    let page = 4096;
    let from = start.next_multiple_of(page);
    let end = (start + top) & !(page - 1);
    let Some(addr) = NonNull::new(from as *mut libc::c_void) else {
        return;
    };
    if end <= from {
        return;
    }
    // SAFETY: [from, end) is the heap's free top chunk, mapped read-write
    // by malloc. Populating maps pages as a write would but changes no
    // byte, so even a range that held live data would be left as it was;
    // one past the heap's end only fails (ENOMEM). A failure (an older
    // kernel, a heap that was not contiguous) leaves the pages to fault in
    // as before.
    let _ = unsafe { madvise(addr, end - from, MmapAdvise::MADV_POPULATE_WRITE) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn populate() {}
