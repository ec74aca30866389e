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
//! the other core. Putting a finished download in place (the rename, a
//! part the server says is already whole) is in `download/place.rs`.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use futures_util::StreamExt;
use reqwest::{StatusCode, Url, header};
use sha2::{Digest, Sha256};

use super::client::{self, explain};
use super::follow::{self, Hop};
use super::names::{name_from_response, name_from_url};
use super::part::{Part, part_path};
use super::request::Request;
use super::stream::{Decoder, MAX_PIECE_OUTPUT, pump};
use super::strict;
use crate::error::{Error, Result};
use crate::net::{
    helpers::file_error,
    progress::{self, Progress, Report},
    transfer::disk::{self, CHUNK},
};

mod place;

use place::{exists, finish, finish_complete, sink};

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

impl Dest {
    fn path(&self) -> &Path {
        match self {
            Dest::File(path) | Dest::Folder(path) | Dest::Stream(path) => path,
        }
    }
}

/// Downloads `request` to `path`, reporting progress from this thread.
pub fn download(request: Request, path: &Path, how: How, report: Report<'_>) -> Result<Downloaded> {
    let dest = classify(path)?;
    let progress = Arc::new(Progress::default());
    let work = run(request, dest, how, progress.clone());
    progress::watch(work, &progress, report, Downloaded::rate, |done, err| {
        Error::Script {
            kind: err.kind(),
            message: format!(
                "{} was saved in full ({} bytes), but {err}",
                done.path.display(),
                done.bytes
            ),
        }
    })
}

fn classify(path: &Path) -> Result<Dest> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(Dest::Folder(path.to_path_buf())),
        Ok(meta) if meta.is_file() => Ok(Dest::File(path.to_path_buf())),
        Ok(_) => Ok(Dest::Stream(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // `dir/` names a folder, even one that is not there.
            if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
                return Err(Error::NotFound(format!(
                    "the folder {shown} does not exist"
                )));
            }
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

async fn run(
    request: Request,
    dest: Dest,
    how: How,
    progress: Arc<Progress>,
) -> Result<Downloaded> {
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
        let offset = if validator.as_deref() == Some("never") {
            0
        } else {
            offset
        };
        let mut extra = header::HeaderMap::new();
        if offset > 0 {
            let range = format!("bytes={offset}-");
            extra.insert(
                header::RANGE,
                header::HeaderValue::from_str(&range)
                    .map_err(|e| Error::Protocol(e.to_string()))?,
            );
            extra.insert(
                header::ACCEPT_ENCODING,
                header::HeaderValue::from_static("identity"),
            );
            // A validator that a header cannot carry is not sent: the
            // server then answers 200 and the download starts over.
            if let Some((_, value)) = validator.as_deref().and_then(|v| v.split_once(':'))
                && let Ok(value) = header::HeaderValue::from_str(value)
            {
                extra.insert(header::IF_RANGE, value);
            }
        } else if decode && !asked_encoding {
            extra.insert(
                header::ACCEPT_ENCODING,
                header::HeaderValue::from_static("gzip, br, deflate"),
            );
        }
        let (response, hop) = follow::send(&client, &request, extra).await?;
        let url = response.url().clone();
        let status = response.status();
        let fail = |source: Error| hop.fail(source);
        if status == StatusCode::PARTIAL_CONTENT && offset == 0 {
            return Err(fail(Error::Protocol(
                "the server sent part of the file (206) to a request for all of it".into(),
            )));
        }

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
                return save(
                    response,
                    &hop,
                    Some(part),
                    &dest,
                    0,
                    decode,
                    how.hash,
                    limits,
                    &progress,
                    started,
                )
                .await;
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
                return save(
                    response, &hop, part, &dest, offset, decode, how.hash, limits, &progress,
                    started,
                )
                .await;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                let total = content_range(&response).and_then(|r| r.2);
                if total == Some(offset)
                    && let Some(part) = part
                {
                    return finish_complete(
                        part, &dest, &url, status, how.hash, &progress, started,
                    )
                    .await;
                }
                // The part is longer than the resource: it cannot be ours.
                fresh = true;
                continue;
            }
            s if s.is_success() => {
                return save(
                    response, &hop, part, &dest, 0, decode, how.hash, limits, &progress, started,
                )
                .await;
            }
            s => {
                // A redirect that reaches here was not followed (turned
                // off, or to a scheme fetch does not follow): say where to.
                let to = response
                    .headers()
                    .get(header::LOCATION)
                    .filter(|_| s.is_redirection())
                    .map(|l| {
                        let l = crate::error::printable(&String::from_utf8_lossy(l.as_bytes()));
                        format!(" (a redirect to '{l}', not followed)")
                    })
                    .unwrap_or_default();
                return Err(fail(Error::Protocol(format!(
                    "the server answered {} {}{to}; nothing was saved",
                    s.as_u16(),
                    s.canonical_reason().unwrap_or_default()
                ))));
            }
        }
    }
    Err(Error::Fetch {
        url: strict::shown(&request.url),
        source: Box::new(Error::Protocol(
            "the server's answers to range requests kept changing; giving up".into(),
        )),
    })
}

/// `Content-Range: bytes START-END/TOTAL` (or `*/TOTAL`) as numbers.
fn content_range(response: &reqwest::Response) -> Option<(u64, u64, Option<u64>)> {
    let value = response
        .headers()
        .get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
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
    hop: &Hop,
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
        (Some(name), true) => Some(Decoder::for_encoding(name, usize::MAX, MAX_PIECE_OUTPUT).ok_or_else(|| {
            hop.fail(Error::Protocol(format!(
                "the body is {name}-encoded, which netsh cannot decode; pass #{{decode: false}} to save it as sent"
            )))
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
    let fail = |source: Error| hop.fail(source);

    if let Some(part) = &part
        && offset == 0
    {
        // Cut first, then record the new validator: a crash in between
        // must never pair old bytes with a new validator.
        part.file
            .set_len(0)
            .map_err(|e| file_error("writing", &part.part, e))?;
        part.set_validator(&validator_of(&response, decoded));
    }
    let (file, shown) = sink(part.as_ref(), dest)?;

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
    let stream_hop = hop.clone();
    let stream = response
        .bytes_stream()
        .map(move |chunk| chunk.map_err(|e| explain(&e, &stream_hop, limits)));
    let seekable = part.is_some();
    let (written, hasher) = pump(
        stream, decoder, file, hasher, offset, seekable, progress, &shown,
    )
    .await
    .map_err(|e| match (e, &part) {
        // Say how far it got and that the bytes are kept.
        (Error::Fetch { url, source }, Some(_)) => {
            let done = progress.done.load(Ordering::Relaxed);
            let of = expected.map(|t| format!(" of {t}")).unwrap_or_default();
            Error::Fetch {
                url,
                source: Box::new(Error::Script {
                    kind: source.kind(),
                    message: format!("{source} (after {done}{of} bytes, kept in {shown})"),
                }),
            }
        }
        (e, _) => e,
    })?;
    if let Some(total) = expected
        && written != total
    {
        return Err(fail(Error::Protocol(format!(
            "the body ended at byte {written} of {total}; fetch again to resume"
        ))));
    }
    let path = finish(part, dest).await?;
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
    if let (Some(part), Dest::Folder(_)) = (&part, &dest)
        && part.target.exists()
    {
        return Err(exists(&part.target));
    }
    let (file, written_to) = sink(part.as_ref(), &dest)?;
    let reading = shown.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(input, CHUNK)
        .map(move |chunk| chunk.map_err(|e| file_error("reading", &reading, e)));
    let seekable = part.is_some();
    let (written, hasher) = pump(
        stream,
        None,
        file,
        hash.then(Sha256::new),
        0,
        seekable,
        &progress,
        &written_to,
    )
    .await?;
    let path = finish(part, &dest).await?;
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
