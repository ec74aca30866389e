//! The `.part` file a download is written to until complete: locked
//! against a second writer, and carrying in an extended attribute the
//! validator (ETag or Last-Modified) that makes resuming it safe.

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::error::{Error, Result};
use crate::net::{
    helpers::{file_error, quoted},
    transfer::disk,
};

/// The extended attribute holding the validator of a part file's response.
const VALIDATOR_XATTR: &str = "user.netsh.validator";
/// How long to wait for a part file another download (say, one just
/// interrupted, whose writer is still finishing) holds locked.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// A locked `.part` file and the final path it becomes.
pub(super) struct Part {
    pub file: File,
    pub part: PathBuf,
    pub target: PathBuf,
    /// Its length when opened: what a resume would start from.
    pub len: u64,
}

/// `PATH.part`, where a download of PATH is written until complete.
pub(super) fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

impl Part {
    /// Opens (or creates) the part file of `target` and locks it. A part
    /// file that is a symbolic link, has other hard links or is not a
    /// regular file is refused: writing through it would change a file
    /// elsewhere (a link planted in a shared folder such as /tmp).
    pub async fn open(target: PathBuf) -> Result<Part> {
        let part = part_path(&target);
        let shown = quoted(&part);
        let deadline = Instant::now() + LOCK_WAIT;
        let busy = || Error::InUse(format!("another download is writing {shown}"));
        loop {
            let file = open_part(&part)?;
            let meta = file
                .metadata()
                .map_err(|e| file_error("reading", &part, e))?;
            if !meta.is_file() {
                return Err(refused(&shown, "is not a regular file"));
            }
            if meta.nlink() > 1 {
                return Err(refused(&shown, "has other hard links"));
            }
            while !disk::try_lock(&file).map_err(|e| file_error("locking", &part, e))? {
                if Instant::now() > deadline {
                    return Err(busy());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The lock may have been won on a part file another download
            // has just renamed into place: this descriptor is then that
            // finished file, not the part. Open the part afresh.
            let still_the_part = std::fs::symlink_metadata(&part)
                .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
            if still_the_part {
                return Ok(Part {
                    file,
                    part,
                    target,
                    len: meta.len(),
                });
            }
            if Instant::now() > deadline {
                return Err(busy());
            }
        }
    }

    pub fn validator(&self) -> Option<String> {
        let mut buf = vec![0u8; 1024];
        let n = rustix::fs::fgetxattr(&self.file, VALIDATOR_XATTR, &mut buf).ok()?;
        String::from_utf8(buf[..n].to_vec()).ok()
    }

    /// Records how this part may be resumed. A filesystem without extended
    /// attributes just loses the guard: a resume is then a plain Range.
    pub fn set_validator(&self, value: &str) {
        let _ = rustix::fs::fsetxattr(
            &self.file,
            VALIDATOR_XATTR,
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        );
    }

    pub fn clear_validator(&self) {
        let _ = rustix::fs::fremovexattr(&self.file, VALIDATOR_XATTR);
    }
}

/// Opens the part file without following a symbolic link at its name, and
/// without blocking on a FIFO put there.
fn open_part(part: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(part)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused(&quoted(part), "is a symbolic link"),
            Some(libc::EISDIR) => refused(&quoted(part), "is a folder"),
            Some(libc::ENXIO) => refused(&quoted(part), "is not a regular file"),
            _ => file_error("opening", part, e),
        })
}

/// A part file this download will not write through.
fn refused(shown: &str, what: &str) -> Error {
    Error::Permission(format!(
        "the part file {shown} {what}; refusing to write through it (remove it to download afresh)"
    ))
}

/// An empty part is of no use to a later resume: one left by a failed
/// request (a 404, a refused connection) is removed rather than left behind.
impl Drop for Part {
    fn drop(&mut self) {
        if self.file.metadata().is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}
