//! Uploads into a served folder (`upload: true`): `PUT /name` with the
//! bytes as the body (`curl -T`), and `POST` of the listing page's
//! `multipart/form-data` form (`curl -F`, a browser). Every name goes
//! through `serve_files`'s rules (`transfer::protocol::safe_name`), every
//! file is written to its `.part` name beside the target, synced, then
//! renamed into place atomically without replacing anything (an existing
//! name is 409): a reader never sees half a file, and a cut upload leaves
//! no file under the real name — nor its part file, which goes when the
//! upload is dropped (hyper drops the answer's future when the client
//! leaves, so no code after an `.await` would run).
//!
//! Writes are held to more than reads: names starting with `.` are refused
//! (unless `dotfiles`), links are never followed out of the folder (even
//! with `follow_links`), a request is at most `max_upload` bytes and a form
//! at most [`MAX_FORM_FILES`] files, and a browser's cross-site request
//! (`Origin` not this server's, or `Sec-Fetch-Site: cross-site`) is a 403:
//! any web page can make a browser POST a form here, but may not write.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::multipart::{self, Event};
use super::path::{self, Refused};
use super::{Folder, refused, text};
use crate::net::http_serve::body::Body;
use crate::net::transfer::disk;
use crate::net::transfer::protocol::{part_name, safe_name};

/// The most files one form may hold.
pub const MAX_FORM_FILES: usize = 1000;

/// Why an upload failed, as the status it answers with.
struct Failed(StatusCode, String);

impl Failed {
    fn response(self) -> Response<Body> {
        text(self.0, self.1)
    }
}

/// How much of a refused upload's body is read and dropped, and for how
/// long, so that the refusal reaches the client (see [`discard`]).
const LINGER_BYTES: u64 = 4 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Answers a PUT or POST.
pub async fn answer<B>(folder: &Folder, req: Request<B>, rest: &str) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // A client waiting for "100 Continue" has sent no body: asking for it
    // would only make it send what is refused.
    let waits = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, mut body) = req.into_parts();
    let response = decide(folder, Request::from_parts(parts, &mut body), rest).await;
    let refused = !response.status().is_success() && !response.status().is_redirection();
    if refused && !waits {
        discard(&mut body).await;
    }
    response
}

/// Reads and drops what is left of a refused upload's body, up to
/// [`LINGER_BYTES`] within [`LINGER_TIME`]. A server that answers a request
/// whose body it did not read must close the connection, and closing a
/// socket with unread bytes sends a reset, which can reach the client
/// before it has read the answer: curl then says "connection reset" instead
/// of showing the 409. Read to its end, the body leaves the connection open
/// and the answer arrives (the lingering close of Apache and nginx).
async fn discard<B>(body: &mut B)
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut left = LINGER_BYTES;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                if n > left {
                    return;
                }
                left -= n;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, read).await;
}

/// The answer to a PUT or POST, reading the body as far as it needs.
async fn decide<B>(folder: &Folder, req: Request<B>, rest: &str) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // HTTP/2 carries the host as `:authority`, not a Host header.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(http::uri::Authority::as_str));
    if let Some(why) = cross_site(req.headers(), host, folder.write_origin.as_deref()) {
        return text(StatusCode::FORBIDDEN, why);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > folder.max_upload) {
        return too_big(folder).response();
    }
    let segs = match path::segments(rest, folder.dotfiles) {
        Ok(segs) => segs,
        // A dotfile name is refused, not "missing", when writing.
        Err(Refused::Missing) => {
            return text(
                StatusCode::FORBIDDEN,
                "names starting with '.' are not accepted\n",
            );
        }
        Err(why) => return refused(&why),
    };
    if req.method() == Method::PUT {
        let (dir, name) = match path::upload_target(&folder.root, &segs, folder.dotfiles) {
            Ok(target) => target,
            Err(Refused::Missing) if hidden_name(&segs) => return dot_refused().response(),
            Err(why) => return refused(&why),
        };
        let mut body = req.into_body();
        return match store(folder, &dir, &name, &mut body).await {
            Ok(()) => {
                let mut response = text(StatusCode::CREATED, format!("saved {name}\n"));
                if let Ok(to) = HeaderValue::from_str(&format!(
                    "./{}",
                    super::listing::href_segment(name.as_bytes())
                )) {
                    response.headers_mut().insert(header::LOCATION, to);
                }
                response
            }
            Err(failed) => failed.response(),
        };
    }
    // Never through a link out of the folder, whatever `follow_links` says.
    let dir = match path::reach(&folder.root, &segs, false, folder.dotfiles) {
        Ok(dir) if dir.is_dir() => dir,
        Ok(_) => return text(StatusCode::METHOD_NOT_ALLOWED, "POST a form to a folder\n"),
        Err(why) => return refused(&why),
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = multipart::boundary(content_type) else {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST multipart/form-data (a form with a file)\n",
        );
    };
    let html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    // One leading slash only: `//host/x/` in a Location is another site.
    let back = format!("/{}", req.uri().path().trim_start_matches('/'));
    match form(folder, &dir, req.into_body(), &boundary).await {
        Ok(saved) if html => {
            // A browser goes back to the listing, which shows the new files.
            let mut response = text(
                StatusCode::SEE_OTHER,
                format!("saved {}\n", saved.join(", ")),
            );
            if let Ok(to) = HeaderValue::from_str(&back) {
                response.headers_mut().insert(header::LOCATION, to);
            }
            response
        }
        Ok(saved) if saved.is_empty() => text(StatusCode::BAD_REQUEST, "the form held no file\n"),
        Ok(saved) => text(StatusCode::CREATED, format!("saved {}\n", saved.join(", "))),
        Err(failed) => failed.response(),
    }
}

/// Reads the form's body part by part, storing each file as it streams.
async fn form<B>(
    folder: &Folder,
    dir: &Path,
    mut body: B,
    boundary: &str,
) -> Result<Vec<String>, Failed>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut reader = multipart::Reader::new(boundary);
    let mut events = Vec::new();
    let mut total = 0u64;
    let mut saved = Vec::new();
    // The file being written now: its part path, final path, open handle.
    let mut current: Option<(Open, String)> = None;
    loop {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| {
            Failed(
                StatusCode::BAD_REQUEST,
                format!("the upload was cut: {e}\n"),
            )
        });
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => {
                if let Some((open, _)) = current.take() {
                    open.abandon().await;
                }
                return Err(e);
            }
        };
        total += data.len() as u64;
        if total > folder.max_upload {
            if let Some((open, _)) = current.take() {
                open.abandon().await;
            }
            return Err(too_big(folder));
        }
        if let Err(why) = reader.feed(&data, &mut events) {
            if let Some((open, _)) = current.take() {
                open.abandon().await;
            }
            return Err(Failed(StatusCode::BAD_REQUEST, format!("{why}\n")));
        }
        for event in events.drain(..) {
            let step = match event {
                Event::Start {
                    filename: Some(name),
                    ..
                } if !name.is_empty() => {
                    let name = safe_name(&name)
                        .map_err(|r| Failed(StatusCode::BAD_REQUEST, format!("{}\n", r.message)))
                        .and_then(|name| {
                            if name.starts_with('.') && !folder.dotfiles {
                                Err(dot_refused())
                            } else if saved.len() >= MAX_FORM_FILES {
                                Err(Failed(
                                    StatusCode::PAYLOAD_TOO_LARGE,
                                    format!("a form may hold at most {MAX_FORM_FILES} files\n"),
                                ))
                            } else {
                                Ok(name)
                            }
                        });
                    match name {
                        Ok(name) => Open::new(folder, dir, &name).await.map(|open| {
                            current = Some((open, name));
                        }),
                        Err(e) => Err(e),
                    }
                }
                Event::Start { .. } => Ok(()),
                Event::Data(bytes) => match current.as_mut() {
                    Some((open, _)) => open.write(&bytes).await,
                    None => Ok(()),
                },
                Event::End => match current.take() {
                    Some((open, name)) => open.finish().await.map(|()| saved.push(name)),
                    None => Ok(()),
                },
            };
            if let Err(failed) = step {
                if let Some((open, _)) = current.take() {
                    open.abandon().await;
                }
                return Err(failed);
            }
        }
    }
    if let Some((open, _)) = current.take() {
        open.abandon().await;
    }
    if !reader.finished() {
        return Err(Failed(
            StatusCode::BAD_REQUEST,
            "the form ended before its closing boundary\n".into(),
        ));
    }
    Ok(saved)
}

/// Stores one file named `name` in `dir`: a PUT's body.
async fn store<B>(folder: &Folder, dir: &Path, name: &str, body: &mut B) -> Result<(), Failed>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut open = Open::new(folder, dir, name).await?;
    match pump_body(body, &mut open, folder.max_upload).await {
        Ok(()) => open.finish().await,
        Err(e) => {
            open.abandon().await;
            Err(e)
        }
    }
}

/// Writes a request body into an open part file.
async fn pump_body<B>(body: &mut B, open: &mut Open, max: u64) -> Result<(), Failed>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failed(
                StatusCode::BAD_REQUEST,
                format!("the upload was cut: {e}\n"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > max {
                return Err(Failed(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the upload is over max_upload ({max} bytes)\n"),
                ));
            }
            open.write(&data).await?;
        }
    }
    Ok(())
}

fn too_big(folder: &Folder) -> Failed {
    Failed(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is over max_upload ({} bytes); the server's option max_upload allows more\n",
            folder.max_upload
        ),
    )
}

fn dot_refused() -> Failed {
    Failed(
        StatusCode::FORBIDDEN,
        "names starting with '.' are not accepted\n".into(),
    )
}

/// Does the request name an upload starting with `.` (after the rules
/// `safe_name` applies)?
fn hidden_name(segs: &path::Segments) -> bool {
    segs.parts
        .last()
        .and_then(|last| safe_name(last).ok())
        .is_some_and(|name| name.starts_with('.'))
}

/// Why a browser's request comes from another site, if it does: its
/// `Origin` is not this server's (`host`, the one it was sent to) nor the one
/// `allowed` (`cors`'s; `*` for any), or, with no `Origin`, its
/// `Sec-Fetch-Site` says `cross-site`. Clients that are not browsers send
/// neither and are let through.
pub fn cross_site(
    headers: &http::HeaderMap,
    host: Option<&str>,
    allowed: Option<&str>,
) -> Option<String> {
    let refuse = |from: &str| {
        Some(format!(
            "uploads are not accepted from another site's page ({from}); the option cors: \"ORIGIN\" lets one in\n"
        ))
    };
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = get("origin") else {
        return match get("sec-fetch-site") {
            Some(site) if site.eq_ignore_ascii_case("cross-site") => {
                refuse("Sec-Fetch-Site: cross-site")
            }
            _ => None,
        };
    };
    let origin = origin.trim();
    if allowed.is_some_and(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return None;
    }
    let authority = origin
        .strip_prefix("http://")
        .map(|a| (a, ":80"))
        .or_else(|| origin.strip_prefix("https://").map(|a| (a, ":443")));
    let Some((authority, default_port)) = authority else {
        return refuse(&format!("Origin: {origin}"));
    };
    let host = host.unwrap_or("");
    let strip = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        a.strip_suffix(default_port)
            .map(str::to_string)
            .unwrap_or(a)
    };
    if host.is_empty() || strip(authority) != strip(host) {
        return refuse(&format!("Origin: {origin}"));
    }
    None
}

/// A part file being written. Dropped before it is finished (refused, or
/// the client went away mid-upload and hyper dropped the answer's future),
/// it removes its part file.
struct Open {
    part: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    file: tokio::fs::File,
    /// Renamed into place (or removed): nothing to clean up.
    settled: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        if !self.settled {
            // One unlink of a name in a folder already open: too short to
            // be worth a hand-off, and Drop cannot wait for one.
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

fn io_failed(doing: &str, e: std::io::Error) -> Failed {
    Failed(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{doing}: {}\n", crate::error::os_words(&e)),
    )
}

impl Open {
    async fn new(folder: &Folder, dir: &Path, name: &str) -> Result<Open, Failed> {
        let target = dir.join(name);
        let part = dir.join(part_name(name));
        if folder.permit.write(&target).is_err() || folder.permit.write(&part).is_err() {
            return Err(Failed(
                StatusCode::FORBIDDEN,
                "writing there is not permitted\n".into(),
            ));
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(Failed(
                StatusCode::CONFLICT,
                format!("{name} already exists\n"),
            ));
        }
        let (file, part) = tokio::task::spawn_blocking(move || -> Result<_, Failed> {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NOFOLLOW: a link planted under the part name is not written through.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&part)
                .map_err(|e| io_failed("opening the part file", e))?;
            if !disk::try_lock(&file).map_err(|e| io_failed("locking the part file", e))? {
                return Err(Failed(
                    StatusCode::CONFLICT,
                    "that file is being uploaded already\n".into(),
                ));
            }
            file.set_len(0)
                .map_err(|e| io_failed("emptying the part file", e))?;
            Ok((file, part))
        })
        .await
        .map_err(|_| {
            Failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the writer stopped\n".into(),
            )
        })??;
        Ok(Open {
            part,
            target,
            dir: dir.to_path_buf(),
            file: tokio::fs::File::from_std(file),
            settled: false,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| io_failed("writing", e))
    }

    /// Syncs, then renames into place without replacing anything.
    async fn finish(mut self) -> Result<(), Failed> {
        self.file
            .flush()
            .await
            .map_err(|e| io_failed("writing", e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| io_failed("syncing", e))?;
        let (part, target, dir) = (self.part.clone(), self.target.clone(), self.dir.clone());
        let file = self
            .file
            .try_clone()
            .await
            .map_err(|e| io_failed("renaming", e))?;
        // From here the blocking task renames (or removes) the part file,
        // even if this future is dropped.
        self.settled = true;
        drop(self);
        let result = tokio::task::spawn_blocking(move || {
            let renamed = disk::rename_into_place(&part, &target, false);
            if renamed.is_err() {
                let _ = std::fs::remove_file(&part);
            }
            drop(file);
            renamed.and_then(|()| disk::sync_dir(&dir))
        })
        .await
        .map_err(|_| {
            Failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the writer stopped\n".into(),
            )
        })?;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Failed(
                StatusCode::CONFLICT,
                "that name already exists\n".into(),
            )),
            Err(e) => Err(io_failed("renaming into place", e)),
        }
    }

    /// A cut or refused upload: its part file goes (by `Drop`).
    async fn abandon(self) {
        drop(self);
    }
}
