//! The file side of a transfer: reading and hashing, writing and hashing,
//! each on a blocking thread that streams fixed-size chunks through a small
//! channel, so memory stays constant however big the file is.
//!
//! Disk I/O and SHA-256 run on a blocking thread rather than on the tokio
//! workers: a slow disk must not stall other connections, and on a
//! two-core machine hashing on one core while the socket is driven from the
//! other is what keeps a framed upload close to raw speed.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    path::Path,
    sync::mpsc as std_mpsc,
};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// One chunk on its way between disk and socket. 256 KiB: large enough that
/// per-chunk overhead vanishes, small enough that a few in flight cost ~1 MB.
pub const CHUNK: usize = 256 * 1024;
/// Chunks queued between the disk thread and the socket.
pub const IN_FLIGHT: usize = 4;

/// The SHA-256 state after the first `len` bytes of `file`, and how many
/// bytes there really were (fewer than `len` if the file is shorter).
pub fn hash_prefix(file: &mut File, len: u64) -> io::Result<(Sha256, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok((hasher, done))
}

/// The digest of a hasher without consuming it.
pub fn digest_of(hasher: &Sha256) -> [u8; 32] {
    hasher.clone().finalize().into()
}

/// Is every byte zero? Such chunks become holes, so sparse files stay sparse
/// and a file of zeros costs no disk on the receiving side either.
fn is_all_zero(chunk: &[u8]) -> bool {
    // Eight bytes at a time: this runs over every byte received, and the
    // byte-wise loop is slow in debug builds.
    let words = chunk.chunks_exact(8);
    let tail = words.remainder();
    tail.iter().all(|&b| b == 0)
        && words
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([1; 8])))
            .all(|w| w == 0)
}

/// What the bytes written are hashed with: a SHA-256, or nothing at all
/// (`Option::None`) when the caller asked for no hash.
pub trait HashSink: Send + 'static {
    fn absorb(&mut self, data: &[u8]);
}

impl HashSink for Sha256 {
    fn absorb(&mut self, data: &[u8]) {
        Digest::update(self, data);
    }
}

impl HashSink for Option<Sha256> {
    fn absorb(&mut self, data: &[u8]) {
        if let Some(hasher) = self {
            Digest::update(hasher, data);
        }
    }
}

/// What the writer thread hands back: the file (to sync and rename, or to
/// keep for a resume), the hash of everything from offset 0, the position
/// reached, and the first error if writing failed.
pub struct Written<H = Sha256> {
    pub file: File,
    pub hasher: H,
    pub position: u64,
    pub error: Option<io::Error>,
}

/// Writes chunks from `chunks` into `file` from `position` on, hashing them
/// into `hasher`; returns when the channel closes or a write fails. Emptied
/// buffers go back through `spare` to be reused.
pub fn write_chunks<H: HashSink, C: AsRef<[u8]>>(
    file: File,
    hasher: H,
    position: u64,
    chunks: mpsc::Receiver<C>,
    spare: std_mpsc::Sender<C>,
) -> Written<H> {
    write_into(file, hasher, Some(position), chunks, spare)
}

/// Like [`write_chunks`] for a file that cannot seek or be cut (a pipe, a
/// terminal, `/dev/null`): the bytes are written in order as they come.
pub fn write_stream<H: HashSink, C: AsRef<[u8]>>(
    file: File,
    hasher: H,
    chunks: mpsc::Receiver<C>,
    spare: std_mpsc::Sender<C>,
) -> Written<H> {
    write_into(file, hasher, None, chunks, spare)
}

/// `start`: where a regular file is written from; `None` for a stream.
fn write_into<H: HashSink, C: AsRef<[u8]>>(
    mut file: File,
    mut hasher: H,
    start: Option<u64>,
    mut chunks: mpsc::Receiver<C>,
    spare: std_mpsc::Sender<C>,
) -> Written<H> {
    let seekable = start.is_some();
    let mut position = start.unwrap_or(0);
    // Everything from `position` on is written afresh. Cutting the file
    // there first matters: zero chunks become holes (seeks), and a hole over
    // bytes left by an earlier, different upload would keep those bytes.
    let mut error = if seekable {
        file.set_len(position)
            .and_then(|()| file.seek(SeekFrom::Start(position)))
            .err()
    } else {
        None
    };
    while error.is_none() {
        let Some(item) = chunks.blocking_recv() else {
            break;
        };
        let chunk = item.as_ref();
        hasher.absorb(chunk);
        let result = if seekable && is_all_zero(chunk) {
            file.seek(SeekFrom::Current(chunk.len() as i64)).map(|_| ())
        } else {
            file.write_all(chunk)
        };
        match result {
            Ok(()) => position += chunk.len() as u64,
            Err(e) => error = Some(e),
        }
        let _ = spare.send(item);
    }
    // Trailing holes are only seeks: give the file its real length, so a
    // resume sees exactly how many bytes arrived.
    if error.is_none() && seekable {
        match file.metadata() {
            Ok(meta) if meta.len() < position => error = file.set_len(position).err(),
            Ok(_) => {}
            Err(e) => error = Some(e),
        }
    }
    Written {
        file,
        hasher,
        position,
        error,
    }
}

/// Reads `file` from `start` to `end`, hashing into `hasher` (if any), and
/// sends the chunks to `chunks`. Returns the finished hash state; stops early
/// (with `Ok`) if the receiving side hung up, since the socket error says more.
pub fn read_chunks(
    mut file: File,
    mut hasher: Option<Sha256>,
    start: u64,
    end: u64,
    chunks: mpsc::Sender<Vec<u8>>,
    spare: std_mpsc::Receiver<Vec<u8>>,
) -> io::Result<Option<Sha256>> {
    file.seek(SeekFrom::Start(start))?;
    let mut position = start;
    while position < end {
        let want = (end - position).min(CHUNK as u64) as usize;
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(want, 0);
        let mut filled = 0;
        while filled < want {
            let n = file.read(&mut buf[filled..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file shrank while it was being sent (ended at byte {})",
                        position + filled as u64
                    ),
                ));
            }
            filled += n;
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&buf);
        }
        position += want as u64;
        if chunks.blocking_send(buf).is_err() {
            break;
        }
    }
    Ok(hasher)
}

/// Hashes a whole file (raw mode with `sendfile`, where the bytes never
/// pass through this process otherwise).
pub fn hash_file(mut file: File) -> io::Result<[u8; 32]> {
    let (hasher, _) = hash_prefix(&mut file, u64::MAX)?;
    Ok(hasher.finalize().into())
}

/// Renames `from` to `to`, failing if `to` exists unless `overwrite`.
/// The existence check and the rename are one atomic step (`renameat2`
/// with `RENAME_NOREPLACE`), so two uploads racing for a name cannot both win.
pub fn rename_into_place(from: &Path, to: &Path, overwrite: bool) -> io::Result<()> {
    use nix::{
        errno::Errno,
        fcntl::{AT_FDCWD, RenameFlags, renameat2},
    };
    if overwrite {
        return std::fs::rename(from, to);
    }
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_NOREPLACE: check, then rename.
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                Err(io::ErrorKind::AlreadyExists.into())
            } else {
                std::fs::rename(from, to)
            }
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Flushes a folder's entry list, so a rename survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Takes an exclusive lock on an open part file, or says it is busy.
/// The lock (`flock`) belongs to the open file, so this also keeps two
/// uploads of one name apart inside the same process.
pub fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The most a file that does not report its size is read ahead to be sent.
pub const MAX_SNAPSHOT: u64 = 16 << 20;

/// Does the kernel's size for this file say nothing about its content?
/// True for an empty size (`/proc` files report 0 and hold text) and on the
/// pseudo-filesystems where every file reports a page whatever it holds.
pub fn size_is_unreliable(file: &File, len: u64) -> bool {
    use nix::sys::statfs::{
        CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC,
        TRACEFS_MAGIC, fstatfs,
    };
    len == 0
        || fstatfs(file).is_ok_and(|fs| {
            [
                PROC_SUPER_MAGIC,
                SYSFS_MAGIC,
                DEBUGFS_MAGIC,
                TRACEFS_MAGIC,
                CGROUP_SUPER_MAGIC,
                CGROUP2_SUPER_MAGIC,
            ]
            .contains(&fs.filesystem_type())
        })
}

/// Reads `file` to its end into an anonymous in-memory file, so it can be
/// sent as it is now, with a size. `None` when it holds more than
/// [`MAX_SNAPSHOT`] bytes.
pub fn snapshot(file: &mut File) -> io::Result<Option<(File, u64)>> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let mut bytes = Vec::new();
    file.take(MAX_SNAPSHOT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SNAPSHOT {
        return Ok(None);
    }
    let mut copy = File::from(memfd_create(c"netsh-send", MFdFlags::MFD_CLOEXEC)?);
    copy.write_all(&bytes)?;
    copy.seek(SeekFrom::Start(0))?;
    Ok(Some((copy, bytes.len() as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_all_zero(&[0; 1027]));
        let mut chunk = vec![0u8; 1027];
        chunk[1026] = 1;
        assert!(!is_all_zero(&chunk));
        chunk[1026] = 0;
        chunk[3] = 9;
        assert!(!is_all_zero(&chunk));
    }
}
