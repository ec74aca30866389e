//! Pulling a span of a file into the page cache before `sendfile`
//! sends it, so a cold file's disk reads wait on the blocking pool and
//! not inside `sendfile` on a runtime worker; and asking the kernel
//! first whether there is anything to pull.
//!
//! A span already in the cache (a file read a moment ago, anything on
//! tmpfs) is not walked a second time: `cachestat(2)` (Linux 6.5)
//! counts its cached pages in one call on the worker, without reading
//! any. Walking an 8 MiB span that was all cached took a round trip to
//! the blocking pool and the walk itself while the socket sat idle,
//! since hyper asks for the next marker only once the last is sent.
//! Where the kernel cannot tell (older than 6.5: ENOSYS; on recent
//! ones, 6.18 here, a file the server neither owns nor may write: EPERM;
//! `mincore` is no way round it, since for such a file it claims every
//! page is cached), the span is warmed as before.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;

/// How much one warming read takes before it looks at its cancel flag.
pub(super) const PIECE: usize = 256 * 1024;

/// How a warming step ended.
pub(super) enum Warmed {
    /// Warmed, cut short, or failed in a way the socket's sendfile will
    /// report itself.
    Done,
    /// The file system does not do sendfile from this file.
    Refused,
}

/// Pulls `[at, at + len)` of `file` into the page cache: sendfile to
/// `/dev/null` reads the pages without copying them anywhere. It reads
/// [`PIECE`] at a time and stops between pieces once `cancel` is set.
/// Best effort: an error, or a file that ends early, leaves the rest to
/// the socket's sendfile, which reports it.
pub(super) fn warm(
    file: Arc<File>,
    at: u64,
    len: usize,
    cancel: Arc<AtomicBool>,
    warmed: [Arc<AtomicU64>; 2],
) -> tokio::task::JoinHandle<Warmed> {
    tokio::task::spawn_blocking(move || {
        let Some(null) = null() else {
            return Warmed::Done;
        };
        let Ok(mut from) = i64::try_from(at) else {
            return Warmed::Done;
        };
        let mut left = len;
        while left > 0 && !cancel.load(Ordering::Relaxed) {
            let piece = left.min(PIECE);
            match nix::sys::sendfile::sendfile(null.as_fd(), file.as_fd(), Some(&mut from), piece) {
                Ok(0) => return Warmed::Done,
                Ok(n) => {
                    for count in &warmed {
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    left = left.saturating_sub(n);
                }
                Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => return Warmed::Refused,
                Err(_) => return Warmed::Done,
            }
        }
        Warmed::Done
    })
}

/// `/dev/null`, open for writing once for the process.
fn null() -> Option<&'static File> {
    static NULL: OnceLock<Option<File>> = OnceLock::new();
    NULL.get_or_init(|| File::options().write(true).open("/dev/null").ok())
        .as_ref()
}

/// Whether the file system refuses sendfile from `file`, learnt by
/// sending its byte at `at` to `/dev/null`: a page cachestat just
/// found cached, so no disk is waited on. Any other failure is the
/// socket's sendfile's to report.
pub(super) fn refused(file: &File, at: u64) -> bool {
    let (Some(null), Ok(mut from)) = (null(), i64::try_from(at)) else {
        return false;
    };
    matches!(
        nix::sys::sendfile::sendfile(null.as_fd(), file.as_fd(), Some(&mut from), 1),
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}

/// `cachestat(2)`'s number: one for every architecture since Linux 5.1
/// unified the new calls' numbers (but alpha, which netsh does not build for).
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`: counts of pages.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `[at, at + len)` of `file` is in the page cache
/// now, so sendfile will not wait on the disk for it. `false` whenever
/// the kernel cannot say (see the module's note) or `len` is 0.
pub(super) fn cached(file: &File, at: u64, len: usize) -> bool {
    /// Set once the kernel has no cachestat: not asked again.
    static MISSING: AtomicBool = AtomicBool::new(false);
    let page = page_size();
    let Some(last) = at
        .checked_add(len as u64)
        .and_then(|end| end.checked_sub(1))
    else {
        return false;
    };
    if len == 0 || MISSING.load(Ordering::Relaxed) {
        return false;
    }
    let pages = last / page - at / page + 1;
    let range = CachestatRange {
        off: at,
        len: len as u64,
    };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes one `struct cachestat`
    // into `stat`; both live across the call and have the kernel's
    // layout (`repr(C)`, five and two u64s). The descriptor is open: the
    // borrowed `file` holds it. Flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        if Errno::last() == Errno::ENOSYS {
            MISSING.store(true, Ordering::Relaxed);
        }
        return false;
    }
    stat.nr_cache >= pages
}

/// The page size, which cachestat counts in.
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; -1 (unknown) is handled.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096)
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `len` bytes in a disk-backed folder (the test binary's,
    /// in the build's; a tmpfs `/tmp` keeps every page), written and synced.
    pub(in super::super) fn on_disk(len: usize) -> tempfile::NamedTempFile {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap();
        let mut file = tempfile::NamedTempFile::new_in(dir).unwrap();
        file.write_all(&vec![7; len]).unwrap();
        file.as_file().sync_all().unwrap();
        file
    }

    /// Drops the file's pages from the page cache (they are clean: synced).
    pub(in super::super) fn drop_cache(file: &File) {
        nix::fcntl::posix_fadvise(
            file.as_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
    }

    #[test]
    fn a_span_read_a_moment_ago_is_cached_and_a_dropped_one_is_not() {
        let file = on_disk(3 << 20);
        let f = File::open(file.path()).unwrap();
        // Just written: in the cache, odd edges and all.
        assert!(cached(&f, 0, 3 << 20));
        assert!(cached(&f, 1000, (2 << 20) + 5));
        drop_cache(&f);
        assert!(!cached(&f, 0, 3 << 20));
        // One page read back does not make the span cached; all of it does.
        // (Read without readahead, which would pull in more than a page.)
        nix::fcntl::posix_fadvise(
            f.as_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_RANDOM,
        )
        .unwrap();
        let mut one = [0; 1];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut one, 4096).unwrap();
        assert!(!cached(&f, 0, 3 << 20));
        assert!(cached(&f, 4096, 1));
        let mut all = vec![0; 3 << 20];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut all, 0).unwrap();
        assert!(cached(&f, 0, 3 << 20));
        // Nothing to send is never "cached".
        assert!(!cached(&f, 0, 0));
    }
}
