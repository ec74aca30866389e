//! What an upload sends and reports: its options, the file opened and
//! settled (size, name, a folder or FIFO refused) before any connection is
//! made, and the figures of a finished upload.

use std::{fs::File, os::unix::fs::OpenOptionsExt, path::Path, time::Duration};

use super::super::{disk, protocol};
use crate::error::{Error, Result};

/// How a sender behaves; built from the Rhai options map.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub raw: bool,
    /// Offer to continue an interrupted upload (framed mode).
    pub resume: bool,
    /// The longest any single wait may take (connect, a reply, a write).
    pub timeout: Duration,
    /// The name to send instead of the file's own.
    pub name: Option<String>,
    /// Bytes per second at most, like curl's `--limit-rate`.
    pub rate_limit: Option<u64>,
    /// Use `sendfile(2)` in raw mode.
    pub zero_copy: bool,
    /// Compute the SHA-256 in raw mode (framed mode always does); off by default.
    pub hash: bool,
    /// Raw mode: send the file from this byte on (like `dd skip=`).
    pub offset: u64,
    /// Raw mode: send at most this many bytes (like `dd count=`).
    pub length: Option<u64>,
    /// Connect with TLS (a connection given to `send_file` is as it is).
    pub tls: Option<crate::net::tls::ClientTls>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            raw: false,
            resume: true,
            timeout: Duration::from_secs(30),
            name: None,
            rate_limit: None,
            zero_copy: true,
            // Raw mode is nc's job: bytes only, at full speed. Hashing on the
            // side costs a core, which on a 2-core machine is 30% of the rate.
            hash: false,
            offset: 0,
            length: None,
            tls: None,
        }
    }
}

/// What a finished upload reports.
#[derive(Debug, Clone)]
pub struct Sent {
    pub name: String,
    /// The file's size.
    pub bytes: u64,
    /// The bytes of file data put on the wire this time.
    pub sent: u64,
    /// Where the body started (non-zero when an earlier upload was resumed).
    pub resumed_from: u64,
    /// `None` in raw mode with `hash: false`.
    pub sha256: Option<[u8; 32]>,
    pub seconds: f64,
    /// True when the receiver confirmed the same SHA-256 (framed mode).
    pub verified: bool,
}

/// The file an upload sends: open, its size known, its name checked.
#[derive(Debug)]
pub struct Source {
    pub(super) file: File,
    pub(super) size: u64,
    pub(super) name: String,
}

impl Source {
    /// Opens `path` and settles everything about it before any connection
    /// is made: a missing file or an unusable name must not cost the
    /// receiver a refused upload. A file whose size the kernel does not
    /// know (`/proc`, `/sys`) is read ahead, so what is sent is exactly
    /// what a read returns.
    pub fn open(path: &Path, options: &SendOptions) -> Result<Source> {
        crate::permit::read(path)?;
        let shown = crate::net::helpers::quoted(path);
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
        // refused below); regular files ignore the flag.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| crate::net::helpers::file_error("reading", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| crate::net::helpers::file_error("reading", path, e))?;
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "{shown} is a folder; send_file sends one file (send each file in it)"
            )));
        }
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{shown} is not a regular file, so its size is unknown"
            )));
        }
        let (file, size) = if disk::size_is_unreliable(&file, meta.len()) {
            disk::snapshot(&mut file)
                .map_err(|e| crate::net::helpers::file_error("reading", path, e))?
                .ok_or_else(|| {
                    Error::TooBig(format!(
                        "{shown} does not report its size (a /proc or /sys file?) and holds more than {} MiB; copy it to a regular file and send that",
                        disk::MAX_SNAPSHOT >> 20
                    ))
                })?
        } else {
            (file, meta.len())
        };
        if !options.raw && (options.offset > 0 || options.length.is_some()) {
            return Err(Error::invalid(
                "'offset' and 'length' send part of a file, which only raw mode can (add raw: true)",
            ));
        }
        if options.offset > size {
            return Err(Error::invalid(format!(
                "offset {} is past the end of {shown} ({size} bytes)",
                options.offset
            )));
        }
        let name = match &options.name {
            Some(name) => name.clone(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Error::invalid(format!("{shown} has no file name")))?,
        };
        // Raw mode sends no name; framed mode checks it here too, since a
        // clear local error beats a refusal.
        let name = if options.raw {
            name
        } else {
            protocol::safe_name(name.as_bytes())
                .map_err(|r| Error::invalid(format!("cannot send as '{name}': {}", r.message)))?
        };
        Ok(Source { file, size, name })
    }
}
