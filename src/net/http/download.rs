//! `fetch(url, path)`: a response streamed to a file, as dependable as curl
//! and wget for a big download.
//!
//! - The bytes go to `PATH.part`, renamed to `PATH` only when complete, so a
//!   failed download never leaves a truncated file under the final name.
//! - An existing `.part` is resumed with `Range`, guarded by `If-Range` with
//!   the validator (ETag, else Last-Modified) of the response that started
//!   it, kept in the part file's `user.netsh.validator` extended attribute.
//!   A server that ignores the range, or a resource that changed, answers
//!   200 with the whole body: the part is cut and written afresh. A 416
//!   whose `Content-Range` total equals the part's length means the part
//!   was already complete (curl's pitfall): it is finished, not failed.
//! - A path that is an existing pipe, terminal or device (`/dev/null`) is
//!   written straight into: no `.part`, no rename.
//! - A folder gets the name from `Content-Disposition` or the URL, checked
//!   with the upload name rules; a hostile name falls back to the URL's.
//!
//! - A gzip, deflate or brotli body is decoded here rather than by reqwest,
//!   so the headers still say it was encoded: such a part is marked as not
//!   resumable, since ranges count encoded bytes. `decode: false` saves the
//!   body as sent (and then asks for no compression).
//!
//! The socket is read on the runtime; writing and SHA-256 run on a blocking
//! thread ([`disk::write_chunks`]), so hashing costs no extra pass and uses
//! the other core.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use futures_util::{Stream, StreamExt};
use reqwest::{StatusCode, Url, header};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::client::{self, explain};
use super::request::Request;
use crate::error::{Error, Result};
use crate::net::{
    helpers::file_error,
    progress::{self, Progress, Report},
    transfer::{
        disk::{self, CHUNK, IN_FLIGHT},
        protocol,
    },
};

/// The extended attribute holding the validator of a part file's response.
const VALIDATOR_XATTR: &str = "user.netsh.validator";
/// How long to wait for a part file another download (say, one just
/// interrupted, whose writer is still finishing) holds locked.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// What a finished download reports.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub path: PathBuf,
    pub url: String,
    /// The size of the file (resumed prefix included).
    pub bytes: u64,
    pub status: u16,
    pub seconds: f64,
    pub resumed_from: u64,
    /// `None` when asked not to hash (`hash: false`).
    pub sha256: Option<[u8; 32]>,
}

impl Downloaded {
    /// Bytes per second moved this time (a resumed prefix left out).
    pub fn rate(&self) -> f64 {
        (self.bytes - self.resumed_from) as f64 / self.seconds.max(1e-6)
    }
}

/// The download options that are not about the request.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// Continue an existing `.part`.
    pub resume: bool,
    /// Compute the SHA-256 while streaming.
    pub hash: bool,
}

/// Where the bytes are going.
enum Dest {
    /// A file path (existing or not): via `.part`, then renamed.
    File(PathBuf),
    /// A folder: the name comes from the response.
    Folder(PathBuf),
    /// A pipe, terminal or device: written straight into.
    Stream(PathBuf),
}

/// Downloads `request` to `path`, reporting progress from this thread.
pub fn download(
    request: Request,
    path: &Path,
    how: How,
    report: Report<'_>,
) -> Result<Downloaded> {
    let dest = classify(path)?;
    let progress = Arc::new(Progress::default());
    let work = run(request, dest, how, progress.clone());
    progress::watch(work, &progress, report, Downloaded::rate)
}

fn classify(path: &Path) -> Result<Dest> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(Dest::Folder(path.to_path_buf())),
        Ok(meta) if meta.is_file() => Ok(Dest::File(path.to_path_buf())),
        Ok(_) => Ok(Dest::Stream(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !parent.is_dir() {
                return Err(Error::NotFound(format!(
                    "{shown}: the folder {} does not exist",
                    parent.display()
                )));
            }
            Ok(Dest::File(path.to_path_buf()))
        }
        Err(e) => Err(file_error("checking", &shown, e)),
    }
}

/// A locked `.part` file and the final path it becomes.
struct Part {
    file: File,
    part: PathBuf,
    target: PathBuf,
    len: u64,
}

/// `PATH.part`, where a download of PATH is written until complete.
fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

impl Part {
    async fn open(target: PathBuf) -> Result<Part> {
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
                return Err(Error::InUse(format!(
                    "another download is writing {shown}"
                )));
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

    fn validator(&self) -> Option<String> {
        let mut buf = vec![0u8; 1024];
        let n = rustix::fs::fgetxattr(&self.file, VALIDATOR_XATTR, &mut buf).ok()?;
        String::from_utf8(buf[..n].to_vec()).ok()
    }

    /// Records how this part may be resumed. A filesystem without extended
    /// attributes just loses the guard: a resume is then a plain Range.
    fn set_validator(&self, value: &str) {
        let _ = rustix::fs::fsetxattr(
            &self.file,
            VALIDATOR_XATTR,
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        );
    }

    fn clear_validator(&self) {
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

/// The validator to record for a fresh response: how it may be resumed.
fn validator_of(response: &reqwest::Response, decoded: bool) -> String {
    if decoded {
        // The part holds decoded bytes; ranges count encoded ones.
        return "never".into();
    }
    let headers = response.headers();
    let get = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match (get(header::ETAG), get(header::LAST_MODIFIED)) {
        (Some(etag), _) if !etag.starts_with("W/") => format!("etag:{etag}"),
        (_, Some(date)) => format!("date:{date}"),
        // Only a weak ETag: If-Range cannot use it, and a blind resume
        // could splice two versions.
        (Some(_), None) => "never".into(),
        (None, None) => "blind".into(),
    }
}

async fn run(request: Request, dest: Dest, how: How, progress: Arc<Progress>) -> Result<Downloaded> {
    let started = Instant::now();
    if request.url.scheme() == "file" {
        return copy_file_url(&request.url, dest, how.hash, progress, started).await;
    }
    // Downloads decode compressed bodies themselves (see `Decoder`), so the
    // headers say what was sent and a part knows whether it can resume.
    let decode = request.client.decode;
    let client = client::client(&client::ClientKey {
        decode: false,
        ..request.client.clone()
    })?;
    let asked_encoding = request.headers.contains_key(header::ACCEPT_ENCODING);
    let limits = request.limits();
    // In a folder, the URL's name is the first guess; the response may
    // name the file otherwise, and then the part of that name is used.
    let mut target = match &dest {
        Dest::File(path) => Some(path.clone()),
        Dest::Folder(dir) => Some(dir.join(name_from_url(&request.url)?)),
        Dest::Stream(_) => None,
    };
    let mut fresh = false;
    for _ in 0..4 {
        // In a folder, a part is only opened early when one exists to
        // resume; otherwise it waits for the name the response gives.
        let mut part = match (&dest, &target) {
            (Dest::Folder(_), Some(path)) if !part_path(path).exists() => None,
            (_, Some(path)) => Some(Part::open(path.clone()).await?),
            (_, None) => None,
        };
        let offset = match &part {
            Some(p) if how.resume && !fresh && p.len > 0 => p.len,
            _ => 0,
        };
        let validator = part.as_ref().and_then(Part::validator);
        let offset = if validator.as_deref() == Some("never") { 0 } else { offset };
        let mut builder = request.builder(&client);
        if offset > 0 {
            builder = builder
                .header(header::RANGE, format!("bytes={offset}-"))
                .header(header::ACCEPT_ENCODING, "identity");
            if let Some((_, value)) = validator.as_deref().and_then(|v| v.split_once(':')) {
                builder = builder.header(header::IF_RANGE, value);
            }
        } else if decode && !asked_encoding {
            builder = builder.header(header::ACCEPT_ENCODING, "gzip, br, deflate");
        }
        let response = builder
            .send()
            .await
            .map_err(|e| explain(&e, &request.url, limits))?;
        let url = response.url().clone();
        let status = response.status();
        let fail = |source: Error| Error::Fetch {
            url: url.to_string(),
            source: Box::new(source),
        };

        if let Dest::Folder(dir) = &dest
            && status.is_success()
        {
            let named = dir.join(name_from_response(&response, &url)?);
            if Some(&named) != target.as_ref() {
                target = Some(named.clone());
                if offset > 0 {
                    // That range was for another file's part: ask again.
                    continue;
                }
                part = None;
            }
            if part.is_none() {
                let part = Part::open(named).await?;
                return save(response, Some(part), &dest, 0, decode, how.hash, limits, &progress, started).await;
            }
        }

        match status {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let range = content_range(&response);
                let encoded = response.headers().contains_key(header::CONTENT_ENCODING);
                if range.map(|r| r.0) != Some(offset) || encoded {
                    // Not the range we asked for: start over cleanly.
                    fresh = true;
                    continue;
                }
                return save(response, part, &dest, offset, decode, how.hash, limits, &progress, started).await;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                let total = content_range(&response).and_then(|r| r.2);
                if total == Some(offset)
                    && let Some(part) = part
                {
                    return finish_complete(part, &dest, &url, status, how.hash, &progress, started).await;
                }
                // The part is longer than the resource: it cannot be ours.
                fresh = true;
                continue;
            }
            s if s.is_success() => {
                return save(response, part, &dest, 0, decode, how.hash, limits, &progress, started).await;
            }
            s => {
                return Err(fail(Error::Protocol(format!(
                    "the server answered {} {}; nothing was saved",
                    s.as_u16(),
                    s.canonical_reason().unwrap_or_default()
                ))));
            }
        }
    }
    Err(Error::Fetch {
        url: request.url.to_string(),
        source: Box::new(Error::Protocol(
            "the server's answers to range requests kept changing; giving up".into(),
        )),
    })
}

/// `Content-Range: bytes START-END/TOTAL` (or `*/TOTAL`) as numbers.
fn content_range(response: &reqwest::Response) -> Option<(u64, u64, Option<u64>)> {
    let value = response.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    if range.trim() == "*" {
        return Some((u64::MAX, u64::MAX, total));
    }
    let (start, end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total))
}

/// Streams the body of `response` into the part (from `offset`) or
/// straight into a stream destination, then puts the file in place.
#[allow(clippy::too_many_arguments)]
async fn save(
    response: reqwest::Response,
    part: Option<Part>,
    dest: &Dest,
    offset: u64,
    decode: bool,
    hash: bool,
    limits: client::Limits,
    progress: &Progress,
    started: Instant,
) -> Result<Downloaded> {
    let url = response.url().clone();
    let status = response.status().as_u16();
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "identity");
    let decoder = match (&encoding, decode) {
        (Some(name), true) => Some(Decoder::for_encoding(name).ok_or_else(|| Error::Fetch {
            url: url.to_string(),
            source: Box::new(Error::Protocol(format!(
                "the body is {name}-encoded, which netsh cannot decode; pass #{{decode: false}} to save it as sent"
            ))),
        })?),
        _ => None,
    };
    let decoded = decoder.is_some();
    let expected = if decoded {
        None
    } else if offset > 0 {
        content_range(&response).and_then(|r| r.2)
    } else {
        response.content_length()
    };
    progress.resumed_from.store(offset, Ordering::Relaxed);
    progress.done.store(offset, Ordering::Relaxed);
    match expected {
        Some(total) => progress.total.store(total, Ordering::Relaxed),
        None => progress.total_unknown.store(true, Ordering::Relaxed),
    }
    let fail = |source: Error| Error::Fetch {
        url: url.to_string(),
        source: Box::new(source),
    };

    let (file, shown) = match (&part, dest) {
        (Some(part), _) => {
            let file = part
                .file
                .try_clone()
                .map_err(|e| file_error("opening", &part.part.display().to_string(), e))?;
            if offset == 0 {
                // Cut first, then record the new validator: a crash in
                // between must never pair old bytes with a new validator.
                file.set_len(0)
                    .map_err(|e| file_error("writing", &part.part.display().to_string(), e))?;
                part.set_validator(&validator_of(&response, decoded));
            }
            (file, part.part.display().to_string())
        }
        (None, Dest::Stream(path)) => {
            let shown = path.display().to_string();
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| file_error("opening", &shown, e))?;
            (file, shown)
        }
        (None, _) => return Err(Error::invalid("a download to a file needs its part file")),
    };

    let hasher = if !hash {
        None
    } else if offset > 0 {
        let mut reader = file
            .try_clone()
            .map_err(|e| file_error("reading", &shown, e))?;
        let (hasher, read) =
            tokio::task::spawn_blocking(move || disk::hash_prefix(&mut reader, offset))
                .await
                .map_err(|e| Error::Protocol(format!("hashing failed: {e}")))?
                .map_err(|e| file_error("reading", &shown, e))?;
        if read != offset {
            return Err(Error::Protocol(format!(
                "{shown} shrank while it was being resumed"
            )));
        }
        Some(hasher)
    } else {
        Some(Sha256::new())
    };
    if let (Some(part), Dest::Folder(_)) = (&part, dest)
        && part.target.exists()
    {
        return Err(fail(exists(&part.target)));
    }
    let url_text = url.to_string();
    let stream = response
        .bytes_stream()
        .map(move |chunk| chunk.map_err(|e| explain(&e, &url, limits)));
    let seekable = part.is_some();
    let (written, hasher) =
        pump(stream, decoder, file, hasher, offset, seekable, progress, &shown).await?;
    if let Some(total) = expected
        && written != total
    {
        return Err(Error::Fetch {
            url: url_text,
            source: Box::new(Error::Protocol(format!(
                "the body ended at byte {written} of {total}; fetch again to resume"
            ))),
        });
    }
    let path = match (part, dest) {
        (Some(part), _) => place(part, dest).await?,
        (None, Dest::Stream(path) | Dest::File(path) | Dest::Folder(path)) => path.clone(),
    };
    Ok(Downloaded {
        path,
        url: url_text,
        bytes: written,
        status,
        seconds: started.elapsed().as_secs_f64(),
        resumed_from: offset,
        sha256: hasher.map(|h| h.finalize().into()),
    })
}

/// Moves bytes from `stream` to `file` (from `offset`) through the writer
/// thread in [`CHUNK`]-sized buffers, decoding them first if asked; returns
/// the end position and the hash. Whatever arrived before an error is
/// written, so a resume starts after it.
#[allow(clippy::too_many_arguments)]
async fn pump(
    mut stream: impl Stream<Item = Result<bytes::Bytes>> + Unpin,
    mut decoder: Option<Decoder>,
    file: File,
    hasher: Option<Sha256>,
    offset: u64,
    seekable: bool,
    progress: &Progress,
    shown: &str,
) -> Result<(u64, Option<Sha256>)> {
    let (to_disk, chunks) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let (give_back, spare) = std_mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        if seekable {
            disk::write_chunks(file, hasher, offset, chunks, give_back)
        } else {
            disk::write_stream(file, hasher, chunks, give_back)
        }
    });
    let mut batch = Batch {
        buf: Vec::with_capacity(CHUNK),
        to_disk,
        spare,
        progress,
    };
    let mut failure = None;
    while let Some(item) = stream.next().await {
        let sent = match (item, decoder.as_mut()) {
            (Ok(bytes), None) => batch.push(&bytes).await,
            (Ok(bytes), Some(decoder)) => match decoder.feed(&bytes) {
                Ok(plain) => batch.push(&plain).await,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            },
            (Err(e), _) => {
                failure = Some(e);
                break;
            }
        };
        // A closed channel means the writer failed; it says why below.
        if !sent {
            break;
        }
    }
    if failure.is_none()
        && let Some(decoder) = decoder
    {
        match decoder.finish() {
            Ok(rest) => {
                batch.push(&rest).await;
            }
            Err(e) => failure = Some(e),
        }
    }
    batch.flush().await;
    let written = writer
        .await
        .map_err(|e| Error::Protocol(format!("the file writer failed: {e}")))?;
    if let Some(e) = written.error {
        return Err(file_error("writing", shown, e));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok((written.position, written.hasher)),
    }
}

/// Gathers bytes into [`CHUNK`]-sized buffers for the writer thread.
struct Batch<'a> {
    buf: Vec<u8>,
    to_disk: mpsc::Sender<Vec<u8>>,
    spare: std_mpsc::Receiver<Vec<u8>>,
    progress: &'a Progress,
}

impl Batch<'_> {
    /// Adds `data`; false once the writer has gone away.
    async fn push(&mut self, mut data: &[u8]) -> bool {
        self.progress
            .done
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        while !data.is_empty() {
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                let next = self
                    .spare
                    .try_recv()
                    .map(|mut b| {
                        b.clear();
                        b
                    })
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                if self
                    .to_disk
                    .send(std::mem::replace(&mut self.buf, next))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
        }
        true
    }

    /// Sends what is left and closes the channel.
    async fn flush(self) {
        if !self.buf.is_empty() {
            let _ = self.to_disk.send(self.buf).await;
        }
    }
}

/// A streaming decoder for a `Content-Encoding` (gzip, deflate, br).
enum Decoder {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    fn for_encoding(name: &str) -> Option<Decoder> {
        Some(match name {
            "gzip" | "x-gzip" => Decoder::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 64 * 1024))),
            _ => return None,
        })
    }

    /// Decodes `data`; returns what came out of it so far.
    fn feed(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        use std::io::Write;
        let (written, out) = match self {
            Decoder::Gzip(d) => (d.write_all(data), d.get_mut()),
            Decoder::Deflate(d) => (d.write_all(data), d.get_mut()),
            Decoder::Brotli(d) => (d.write_all(data), d.get_mut()),
        };
        written.map_err(Self::broken)?;
        Ok(std::mem::take(out))
    }

    /// The last decoded bytes, once the body has ended.
    fn finish(self) -> Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => d.finish(),
            Decoder::Deflate(d) => d.finish(),
            Decoder::Brotli(d) => d.into_inner().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "the brotli stream is incomplete")
            }),
        }
        .map_err(Self::broken)
    }

    fn broken(e: std::io::Error) -> Error {
        Error::Protocol(format!(
            "the compressed body could not be decoded: {e} (pass #{{decode: false}} to save it as sent)"
        ))
    }
}

/// Renames a finished part to its final name (replacing a file given by
/// path; never one found in a folder) and drops the resume record.
async fn place(part: Part, dest: &Dest) -> Result<PathBuf> {
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
        Err(e) => Err(file_error("renaming into", &to.display().to_string(), e)),
    }
}

fn exists(path: &Path) -> Error {
    Error::invalid(format!(
        "{} already exists (give its path to replace it)",
        path.display()
    ))
}

/// A part that the server says is already whole (416 with its length).
async fn finish_complete(
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
        let (hasher, _) =
            tokio::task::spawn_blocking(move || disk::hash_prefix(&mut reader, len))
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

/// A `file://` download: the same pipeline, reading a local file.
async fn copy_file_url(
    url: &Url,
    dest: Dest,
    hash: bool,
    progress: Arc<Progress>,
    started: Instant,
) -> Result<Downloaded> {
    let source = super::response::file_path(url)?;
    let shown = source.display().to_string();
    let input = tokio::fs::File::open(&source)
        .await
        .map_err(|e| file_error("reading", &shown, e))?;
    let meta = input
        .metadata()
        .await
        .map_err(|e| file_error("reading", &shown, e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{shown} is not a regular file (a folder, pipe or device)"
        )));
    }
    progress.total.store(meta.len(), Ordering::Relaxed);
    let part = match &dest {
        Dest::File(path) => Some(Part::open(path.clone()).await?),
        Dest::Folder(dir) => Some(Part::open(dir.join(name_from_url(url)?)).await?),
        Dest::Stream(_) => None,
    };
    let (file, written_to) = match (&part, &dest) {
        (Some(part), _) => {
            if matches!(dest, Dest::Folder(_)) && part.target.exists() {
                return Err(exists(&part.target));
            }
            let file = part
                .file
                .try_clone()
                .map_err(|e| file_error("opening", &part.part.display().to_string(), e))?;
            (file, part.part.display().to_string())
        }
        (None, Dest::Stream(path) | Dest::File(path) | Dest::Folder(path)) => {
            let shown = path.display().to_string();
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| file_error("opening", &shown, e))?;
            (file, shown)
        }
    };
    let reading = shown.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(input, CHUNK)
        .map(move |chunk| chunk.map_err(|e| file_error("reading", &reading, e)));
    let seekable = part.is_some();
    let (written, hasher) =
        pump(stream, None, file, hash.then(Sha256::new), 0, seekable, &progress, &written_to).await?;
    let path = match (part, &dest) {
        (Some(part), _) => place(part, &dest).await?,
        (None, Dest::Stream(path) | Dest::File(path) | Dest::Folder(path)) => path.clone(),
    };
    Ok(Downloaded {
        path,
        url: url.to_string(),
        bytes: written,
        status: 200,
        seconds: started.elapsed().as_secs_f64(),
        resumed_from: 0,
        sha256: hasher.map(|h| h.finalize().into()),
    })
}

/// A file name from the network, checked with the upload rules (no
/// folders, no `..`, no control characters) and never hidden: a leading
/// dot becomes `_`, so a server cannot plant `.bashrc`.
fn network_name(sent: &[u8]) -> std::result::Result<String, String> {
    let name = protocol::safe_name(sent).map_err(|r| r.message)?;
    Ok(match name.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => name,
    })
}

/// The file name a URL suggests: its last path segment, decoded
/// (`index.html` for a path ending in `/`, as wget does).
fn name_from_url(url: &Url) -> Result<String> {
    let last = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    if last.is_empty() {
        return Ok("index.html".into());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(last).collect();
    network_name(&decoded).map_err(|why| {
        Error::invalid(format!(
            "cannot name a file after '{url}': {why}; give a file path instead of a folder"
        ))
    })
}

/// The name a response gives its file: Content-Disposition's when it is
/// safe, otherwise the (final) URL's.
fn name_from_response(response: &reqwest::Response, url: &Url) -> Result<String> {
    let offered = response
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| disposition_name(v.as_bytes()));
    match offered.map(|name| network_name(&name)) {
        Some(Ok(name)) => Ok(name),
        _ => name_from_url(url),
    }
}

/// The file name in a Content-Disposition header (RFC 6266): `filename*`
/// (RFC 8187, UTF-8) over `filename`.
fn disposition_name(value: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(value);
    let mut plain = None;
    let mut extended = None;
    for param in split_params(&text).into_iter().skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let raw = raw.trim();
        if key == "filename*" {
            let mut pieces = raw.splitn(3, '\'');
            if let (Some(charset), Some(_lang), Some(encoded)) =
                (pieces.next(), pieces.next(), pieces.next())
                && charset.eq_ignore_ascii_case("utf-8")
            {
                extended = Some(percent_encoding::percent_decode_str(encoded).collect());
            }
        } else if key == "filename" {
            plain = Some(unquote(raw).into_bytes());
        }
    }
    extended.or(plain)
}

/// Splits at `;` outside double quotes.
fn split_params(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// A quoted-string's content (`"a\"b"` → `a"b`), or a token as it is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names() {
        let name = |v: &str| disposition_name(v.as_bytes()).map(|n| String::from_utf8_lossy(&n).into_owned());
        assert_eq!(name("attachment; filename=\"a b.txt\"").as_deref(), Some("a b.txt"));
        assert_eq!(name("attachment; filename=plain.bin").as_deref(), Some("plain.bin"));
        assert_eq!(
            name("attachment; filename=\"x.txt\"; filename*=UTF-8''caf%C3%A9.txt").as_deref(),
            Some("café.txt")
        );
        assert_eq!(name("attachment; filename=\"semi;colon\\\"q.txt\"").as_deref(), Some("semi;colon\"q.txt"));
        assert_eq!(name("inline"), None);
    }

    #[test]
    fn hostile_names_are_refused_and_dots_defused() {
        for bad in ["../../x", "/etc/passwd", "a\nb", "..", "x\u{1b}[2J"] {
            assert!(network_name(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(network_name(b".bashrc").unwrap(), "_bashrc");
        assert_eq!(network_name(b"dir/report.pdf").unwrap(), "report.pdf");
    }

    #[test]
    fn url_names() {
        let name = |u: &str| name_from_url(&Url::parse(u).unwrap());
        assert_eq!(name("http://h/a/b%20c.txt").unwrap(), "b c.txt");
        assert_eq!(name("http://h/").unwrap(), "index.html");
        assert_eq!(name("http://h/dir/").unwrap(), "index.html");
        assert!(name("http://h/..%2Fetc%2Fpasswd").is_err());
        assert!(name("http://h/x%00y").is_err());
    }
}
