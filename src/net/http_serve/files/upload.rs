//! Uploads into a served folder (`upload: true`): `PUT /name` with the
//! bytes as the body (`curl -T`), and `POST` of the listing page's
//! `multipart/form-data` form (`curl -F`, a browser). Every name goes
//! through `serve_files`'s rules (`transfer::protocol::safe_name`), every
//! file is written to its `.part` name beside the target, synced, then
//! renamed into place atomically without replacing anything (an existing
//! name is 409): a reader never sees half a file, and a cut upload leaves
//! no file under the real name.

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

/// Why an upload failed, as the status it answers with.
struct Failed(StatusCode, String);

impl Failed {
    fn response(self) -> Response<Body> {
        text(self.0, self.1)
    }
}

/// Answers a PUT or POST.
pub async fn answer<B>(folder: &Folder, req: Request<B>, rest: &str) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
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
        let (dir, name) = match path::upload_target(&folder.root, &segs, folder.follow_links) {
            Ok(target) => target,
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
    let dir = match path::resolve(&folder.root, &segs, folder.follow_links) {
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
    let back = req.uri().path().to_string();
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
                        .map_err(|r| Failed(StatusCode::BAD_REQUEST, format!("{}\n", r.message)));
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
    match pump_body(body, &mut open).await {
        Ok(()) => open.finish().await,
        Err(e) => {
            open.abandon().await;
            Err(e)
        }
    }
}

/// Writes a request body into an open part file.
async fn pump_body<B>(body: &mut B, open: &mut Open) -> Result<(), Failed>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failed(
                StatusCode::BAD_REQUEST,
                format!("the upload was cut: {e}\n"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            open.write(&data).await?;
        }
    }
    Ok(())
}

/// A part file being written.
struct Open {
    part: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    file: tokio::fs::File,
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
        let Open {
            part,
            target,
            dir,
            file,
        } = self;
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

    /// A cut or refused upload: its part file goes.
    async fn abandon(self) {
        let part = self.part;
        drop(self.file);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(part)).await;
    }
}
