//! The `.part` file a download is written to until complete: locked
//! against a second writer, and carrying in an extended attribute the
//! validator (ETag or Last-Modified) that makes resuming it safe.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::error::{Error, Result};
use crate::net::{helpers::file_error, transfer::disk};

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
    pub async fn open(target: PathBuf) -> Result<Part> {
        let part = part_path(&target);
        let shown = part.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(|e| file_error("opening", &shown, e))?;
        let deadline = Instant::now() + LOCK_WAIT;
        while !disk::try_lock(&file).map_err(|e| file_error("locking", &shown, e))? {
            if Instant::now() > deadline {
                return Err(Error::InUse(format!("another download is writing {shown}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let len = file
            .metadata()
            .map_err(|e| file_error("reading", &shown, e))?
            .len();
        Ok(Part {
            file,
            part,
            target,
            len,
        })
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

/// An empty part is of no use to a later resume: one left by a failed
/// request (a 404, a refused connection) is removed rather than left behind.
impl Drop for Part {
    fn drop(&mut self) {
        if self.file.metadata().is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}
