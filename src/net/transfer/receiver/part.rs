//! Where an upload is written: its part file `.NAME.netsh-part`, opened,
//! locked and checked (no symlinks, no hard links, no special files) before
//! a byte is written, and renamed to the final name only once verified and
//! only if the part file's name still leads to the file written; an empty
//! part file an upload made is removed when the upload fails; and the sweep
//! of part files abandoned long ago.

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use super::super::{
    disk,
    protocol::{self, Code, Refusal},
};
use crate::error::os_words;

/// Where one upload goes: its final path and its part file.
#[derive(Debug, Clone)]
pub(super) struct Target {
    name: String,
    dir: PathBuf,
    pub(super) path: PathBuf,
    pub(super) part: PathBuf,
}

impl Target {
    pub(super) fn new(dir: &Path, name: &str) -> Target {
        Target {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            path: dir.join(name),
            part: dir.join(protocol::part_name(name)),
        }
    }

    /// Checks the final name, then opens and locks the part file; returns
    /// it with the number of bytes it holds, and the [`Held`] that keeps it
    /// locked. Nothing is cut or hashed here: that waits until the sender
    /// says how it begins.
    pub(super) fn prepare(
        &self,
        overwrite: bool,
    ) -> std::result::Result<(File, Held, u64), Refusal> {
        let name = &self.name;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Refusal::new(
                    Code::BadName,
                    format!("'{name}' is a symbolic link here; refusing to write through it"),
                ));
            }
            Ok(meta) if meta.is_dir() => {
                return Err(Refusal::new(
                    Code::BadName,
                    format!("'{name}' is a folder here"),
                ));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(Refusal::new(
                    Code::BadName,
                    format!("'{name}' exists here and is not a regular file"),
                ));
            }
            Ok(_) if !overwrite => {
                return Err(Refusal::new(
                    Code::Exists,
                    format!("'{name}' already exists and this receiver does not overwrite files"),
                ));
            }
            // Replaced, not written through, but another name would still
            // show the old file: refuse rather than half-replace.
            Ok(meta) if meta.nlink() > 1 => {
                return Err(hard_linked(&format!("'{name}'")));
            }
            _ => {}
        }
        let not_a_part_file = |what: &str| {
            Refusal::new(
                Code::BadName,
                format!("the part file of '{name}' is {what} here; refusing to use it"),
            )
        };
        // A folder, pipe or device at the part file's name is refused
        // before opening it (opening a device can have effects of its own)
        // and again after (it may have been swapped in between).
        if let Ok(meta) = std::fs::symlink_metadata(&self.part)
            && let Some(what) = not_regular(&meta)
        {
            return Err(not_a_part_file(what));
        }
        let (file, created) = self.open_part().map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refusal::new(
                Code::BadName,
                format!("the part file of '{name}' is a symbolic link; refusing"),
            ),
            Some(libc::EISDIR) => not_a_part_file("a folder"),
            Some(libc::ENXIO) => not_a_part_file("a socket or device"),
            _ => storage_error(name, e),
        })?;
        let meta = file.metadata().map_err(|e| storage_error(name, e))?;
        if let Some(what) = not_regular(&meta) {
            return Err(not_a_part_file(what));
        }
        match disk::try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refusal::new(
                    Code::Busy,
                    format!("another upload of '{name}' is in progress"),
                ));
            }
            Err(e) => return Err(storage_error(name, e)),
        }
        // From here on the lock is ours, and so is the cleanup (see `Held`).
        let held = Held {
            part: self.part.clone(),
            lock: file.try_clone().map_err(|e| storage_error(name, e))?,
            id: (meta.dev(), meta.ino()),
            remove_if_empty: created,
        };
        // The lock may have been won on a part file another upload renamed
        // into place (or removed) a moment ago: then this descriptor is not
        // the part file, and writing to it would damage the finished file.
        if !held.is_at_part_path() {
            return Err(Refusal::new(
                Code::Busy,
                format!("another upload of '{name}' just finished; send again to retry"),
            ));
        }
        // A hard link planted at the part file's name would have this
        // upload write into (and resume from) a file elsewhere.
        if meta.nlink() > 1 {
            return Err(hard_linked(&format!("the part file of '{name}'")));
        }
        Ok((file, held, meta.len()))
    }

    /// Opens the part file, creating it if missing; says whether this call
    /// created it (only then may a failed upload remove it unasked).
    ///
    /// O_NOFOLLOW: a symlink planted at the part file's name must not
    /// redirect the write outside the folder. O_NONBLOCK: a FIFO swapped in
    /// must not block the open.
    fn open_part(&self) -> std::io::Result<(File, bool)> {
        let open = |create: bool| {
            let mut options = OpenOptions::new();
            options
                .read(true)
                .write(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
            if create {
                options.create_new(true);
            }
            options.open(&self.part)
        };
        // Created, or there already; a file removed between the two tries
        // (an upload that just finished) is simply created on the next round.
        let mut tries = 0;
        loop {
            match open(true) {
                Ok(file) => return Ok((file, true)),
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                Err(_) => {}
            }
            match open(false) {
                Ok(file) => return Ok((file, false)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// fsync, rename into place, fsync the folder; but only if the part
    /// file's name still leads to `file`, the file written and verified
    /// (someone with write access to the folder may have swapped another
    /// file or a symlink in), and only if the final name then does too.
    pub(super) fn finish(&self, file: File, overwrite: bool) -> std::result::Result<(), Refusal> {
        let name = &self.name;
        file.sync_all().map_err(|e| storage_error(name, e))?;
        let meta = file.metadata().map_err(|e| storage_error(name, e))?;
        let ours = (meta.dev(), meta.ino());
        let replaced = |what: &str| {
            Refusal::new(
                Code::Storage,
                format!(
                    "the part file of '{name}' was replaced while it was being received ({what}); nothing was stored and nothing removed"
                ),
            )
        };
        match std::fs::symlink_metadata(&self.part) {
            Ok(now) if (now.dev(), now.ino()) == ours => {}
            Ok(now) => return Err(replaced(&what_replaced(&now))),
            Err(_) => return Err(replaced("its name is gone")),
        }
        // The lock is kept until the rename is done, so no second upload
        // of this name can start writing the part file in between.
        match disk::rename_into_place(&self.part, &self.path, overwrite) {
            Ok(()) => {}
            // Kept: its bytes are verified, and resume at once should the
            // name be freed (the sender is told it exists).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Refusal::new(
                    Code::Exists,
                    format!(
                        "'{name}' appeared while it was being received; not overwritten (the bytes received are kept to resume)"
                    ),
                ));
            }
            Err(e) => return Err(storage_error(name, e)),
        }
        // A swap in the instant between the check and the rename moved
        // someone else's file to the final name: put it back where it was.
        let stored =
            std::fs::symlink_metadata(&self.path).is_ok_and(|now| (now.dev(), now.ino()) == ours);
        if !stored {
            let _ = disk::rename_into_place(&self.path, &self.part, false);
            return Err(replaced("at the moment it was renamed"));
        }
        drop(file);
        disk::sync_dir(&self.dir).map_err(|e| storage_error(name, e))
    }
}

/// What now stands at a part file's name instead of the file written.
fn what_replaced(now: &std::fs::Metadata) -> String {
    match not_regular(now) {
        Some(what) => format!("it is now {what}"),
        None => "it is now another file".to_string(),
    }
}

/// An upload's hold on its part file, from the header to the end of the
/// upload: a second descriptor of the open file, so the lock (`flock`
/// belongs to the open file, shared by duplicates) lasts however the
/// upload's own descriptor travels and ends.
///
/// Dropped after a failed upload, it removes the part file if it is empty
/// and this upload made it (or started writing it), so a sender that
/// leaves before sending a byte leaves nothing behind; and only while its
/// name still leads to this file, so nothing someone else put there is
/// removed.
pub(super) struct Held {
    part: PathBuf,
    lock: File,
    id: (u64, u64),
    remove_if_empty: bool,
}

impl Held {
    /// START has arrived: the upload now owns the part file's content, and
    /// an empty one it leaves is litter, whoever made it.
    pub(super) fn started(&mut self) {
        self.remove_if_empty = true;
    }

    /// Does the part file's name still lead to the file held?
    fn is_at_part_path(&self) -> bool {
        std::fs::symlink_metadata(&self.part).is_ok_and(|now| (now.dev(), now.ino()) == self.id)
    }

    /// Removes the part file (bad bytes, or a raw upload that failed),
    /// unless its name now leads elsewhere. Done under the lock, so no
    /// other upload can have opened it in between.
    pub(super) fn remove(&self) {
        if self.is_at_part_path() {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let empty = self.lock.metadata().is_ok_and(|meta| meta.len() == 0);
        if self.remove_if_empty && empty {
            self.remove();
        }
    }
}

/// What a file that is not a regular file is, in words (`None` for a
/// regular file).
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a folder")
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else if kind.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    }
}

/// Removes the part files in `dir` that nobody has written for `max_age`
/// and no upload holds (an upload in progress, here or in another process,
/// keeps its lock); returns each one removed with its age. Only names of
/// the forms this code makes ([`protocol::is_part_name`]), and only
/// regular files with no other hard links.
pub fn remove_abandoned_parts(dir: &Path, max_age: Duration) -> Vec<(PathBuf, Duration)> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let age_of = |meta: &std::fs::Metadata| meta.modified().ok().and_then(|m| m.elapsed().ok());
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(protocol::is_part_name)
        {
            continue;
        }
        let path = entry.path();
        let old_regular_file = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|meta| meta.is_file())
            .and_then(|meta| age_of(&meta))
            .is_some_and(|age| age >= max_age);
        if !old_regular_file {
            continue;
        }
        // O_NONBLOCK: a FIFO swapped in since the check must not block
        // the receiver's start; the opened file is checked again below.
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        let age = age_of(&meta).filter(|age| *age >= max_age);
        let same_file = std::fs::symlink_metadata(&path)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
        let Some(age) = age.filter(|_| meta.is_file() && meta.nlink() == 1 && same_file) else {
            continue;
        };
        // Removed while locked, so no upload can have opened it meanwhile.
        if disk::try_lock(&file).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
            removed.push((path, age));
        }
        drop(file);
    }
    removed
}

pub(super) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, Refusal> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Refusal::new(Code::Storage, format!("a disk task failed: {e}")))?
}

/// The refusal for a name whose file has other hard links: writing or
/// replacing it would reach a file outside the folder's control.
pub(super) fn hard_linked(what: &str) -> Refusal {
    Refusal::new(
        Code::BadName,
        format!("{what} has other hard links here; refusing to write through it"),
    )
}

pub(super) fn storage_error(name: &str, err: std::io::Error) -> Refusal {
    Refusal::new(
        Code::Storage,
        format!("cannot store '{name}': {}", os_words(&err)),
    )
}
