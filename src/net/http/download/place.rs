//! The end of a download: where its bytes go (the part file, or a pipe or
//! device written straight into), and the part renamed to its final name
//! once whole, never over a file found in a folder.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::Instant,
};

use reqwest::{StatusCode, Url};
use sha2::Digest;

use super::{Dest, Downloaded};
use crate::error::{Error, Result};
use crate::net::{helpers::file_error, http::part::Part, progress::Progress, transfer::disk};

/// Where the bytes are written, and its name for messages: the part (a
/// handle of its own for the writer thread), or else the pipe or device.
pub(super) fn sink(part: Option<&Part>, dest: &Dest) -> Result<(File, String)> {
    if let Some(part) = part {
        let shown = part.part.display().to_string();
        let file = part
            .file
            .try_clone()
            .map_err(|e| file_error("opening", &shown, e))?;
        return Ok((file, shown));
    }
    let path = dest.path();
    let shown = path.display().to_string();
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| file_error("opening", &shown, e))?;
    Ok((file, shown))
}

/// The path of the finished download: the part renamed into place, or the
/// pipe or device it went straight into.
pub(super) async fn finish(part: Option<Part>, dest: &Dest) -> Result<PathBuf> {
    match part {
        Some(part) => place(part, dest).await,
        None => Ok(dest.path().to_path_buf()),
    }
}

/// Renames a finished part to its final name (replacing a file given by
/// path; never one found in a folder) and drops the resume record.
pub(super) async fn place(part: Part, dest: &Dest) -> Result<PathBuf> {
    part.clear_validator();
    let overwrite = !matches!(dest, Dest::Folder(_));
    let (from, to) = (part.part.clone(), part.target.clone());
    let moved = to.clone();
    let renamed =
        tokio::task::spawn_blocking(move || disk::rename_into_place(&from, &moved, overwrite))
            .await
            .map_err(|e| Error::Protocol(format!("renaming failed: {e}")))?;
    drop(part);
    match renamed {
        Ok(()) => Ok(to),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists(&to)),
        Err(e) => Err(file_error("renaming into", to, e)),
    }
}

pub(super) fn exists(path: &Path) -> Error {
    Error::Exists(format!(
        "{} already exists (give its path to replace it)",
        path.display()
    ))
}

/// A part that the server says is already whole (416 with its length).
pub(super) async fn finish_complete(
    part: Part,
    dest: &Dest,
    url: &Url,
    status: StatusCode,
    hash: bool,
    progress: &Progress,
    started: Instant,
) -> Result<Downloaded> {
    let len = part.len;
    progress.total.store(len, Ordering::Relaxed);
    progress.done.store(len, Ordering::Relaxed);
    progress.resumed_from.store(len, Ordering::Relaxed);
    let shown = part.part.display().to_string();
    let sha256 = if hash {
        let mut reader = part
            .file
            .try_clone()
            .map_err(|e| file_error("reading", &shown, e))?;
        let (hasher, _) = tokio::task::spawn_blocking(move || disk::hash_prefix(&mut reader, len))
            .await
            .map_err(|e| Error::Protocol(format!("hashing failed: {e}")))?
            .map_err(|e| file_error("reading", &shown, e))?;
        Some(hasher.finalize().into())
    } else {
        None
    };
    let path = place(part, dest).await?;
    Ok(Downloaded {
        path,
        url: url.to_string(),
        bytes: len,
        status: status.as_u16(),
        seconds: started.elapsed().as_secs_f64(),
        resumed_from: len,
        sha256,
    })
}
