//! File upload (lesson 1.6): `send_file`, `recv_file` and `serve_files`.
//! This file is the facade the Rhai functions and other capabilities call:
//! send to an address or over a connection, receive once.
//!
//! Two modes. Framed (the default) never loses or corrupts a byte: a
//! versioned header, the bytes, an end-to-end SHA-256 the receiver checks,
//! and a confirmation sent only once the file is fsync'd under its final
//! name; an interrupted upload resumes after its prefix is verified. Raw
//! (`#{raw: true}`) is bytes then half-close, so it works with `nc`.
//!
//! - [`protocol`]: the wire format (`docs/PROTOCOL.md`) and name checks.
//! - [`sender`]: the sending side, `sendfile(2)` in raw mode.
//! - [`receiver`]: the receiving side, part files, resume.
//! - [`cidr`]: address blocks for `serve_files`'s allow-list.
//! - [`disk`]: streaming file I/O and hashing on blocking threads.
//! - [`gate`]: who may upload to `serve_files`, and how many at once.
//! - `server`: `serve_files`, a receiver in the background, and its handle.
//! - `settings`: the options maps, read and checked before anything waits.
//! - `script`: the Rhai functions, and the maps their results become.
//!
//! Everything async runs on the shared runtime; the Rhai functions here are
//! synchronous and reach it only through [`runtime::block_on`], so Ctrl-C
//! stops any transfer (a framed one resumes later).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rhai::plugin::*;

use crate::error::{Error, Result};
use crate::net::helpers::quoted;
use crate::net::{
    progress,
    tcp::{self, Conn, Listener},
};
use crate::runtime::{self};

pub mod cidr;
pub mod disk;
pub mod gate;
pub mod protocol;
pub mod receiver;
mod script;
pub mod sender;
mod server;
mod settings;

pub use crate::net::progress::Progress;
pub use cidr::Cidr;
pub use receiver::{ReceiveOptions, Received};
pub use script::{received_map, sent_map};
pub use sender::{SendOptions, Sent, Source};
pub use server::{FileServer, serve};

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    script::register_into(module, docs);
    server::register_into(module, docs);
    module.set_custom_type::<FileServer>("FileServer");
}

/// Uploads `path` to `dest` (connecting first, over TLS when the options
/// say so), reporting progress through `report` every quarter second from
/// the calling thread. The file and its name are checked before anything
/// is sent.
pub fn send_to(
    dest: impl Into<tcp::Dest>,
    path: &Path,
    options: SendOptions,
    report: ProgressReport<'_>,
) -> Result<Sent> {
    let source = Source::open(path, &options)?;
    let conn = tcp::connect_to(&dest.into(), options.timeout, options.tls.as_ref())?;
    send_source(conn, source, options, report, true)
}

pub use crate::net::progress::{Figures as ProgressFigures, Report as ProgressReport};

/// Uploads `path` over an open connection.
pub fn send_over(
    conn: Conn,
    path: &Path,
    options: SendOptions,
    report: ProgressReport<'_>,
    wait_close: bool,
) -> Result<Sent> {
    let source = Source::open(path, &options)?;
    send_source(conn, source, options, report, wait_close)
}

fn send_source(
    conn: Conn,
    source: Source,
    options: SendOptions,
    report: ProgressReport<'_>,
    wait_close: bool,
) -> Result<Sent> {
    let progress = Arc::new(Progress::default());
    let work = sender::send(conn, source, options, progress.clone(), wait_close);
    progress::watch(
        work,
        &progress,
        report,
        |sent: &Sent| sent.sent as f64 / sent.seconds.max(1e-6),
        after_the_upload,
    )
}

/// A progress callback that failed once the upload was complete: its error,
/// with what became of the file (the script must not send again what
/// arrived safely).
fn after_the_upload(sent: &Sent, err: Error) -> Error {
    let done = if sent.verified {
        "was stored and verified by the receiver"
    } else {
        "was sent in full"
    };
    Error::Script {
        kind: err.kind(),
        message: format!("'{}' {done} ({} bytes), but {err}", sent.name, sent.bytes),
    }
}

/// Receives one upload over an open connection.
pub fn receive_over(conn: Conn, dir: &Path, options: ReceiveOptions) -> Result<Received> {
    let dir = ready_dir(dir)?;
    remove_abandoned_parts(&dir, options.part_max_age, "recv_file");
    receive_on(conn, dir, options)
}

fn receive_on(conn: Conn, dir: PathBuf, options: ReceiveOptions) -> Result<Received> {
    runtime::block_on(async move {
        let mut io = conn.lock_io().await?;
        let (mut reader, writer) = io.halves(&conn)?;
        let mut on_stored = |_: &receiver::Received| {};
        // One upload at a time here: nothing to wait for.
        let admit = async || Ok(Box::new(()) as receiver::Admission);
        let receive = receiver::receive(
            &mut reader,
            writer,
            conn.peer(),
            &dir,
            &options,
            admit,
            &mut on_stored,
        );
        // `close()` from another task ends the upload, as it ends a blocked read.
        tokio::select! {
            biased;
            _ = conn.until_closed() => Err(conn.closed_error()),
            received = receive => received,
        }
    })
}

/// Accepts one connection on `listener` (within `accept_timeout`) and
/// receives one upload from it.
pub fn receive_once(
    listener: &Listener,
    dir: &Path,
    options: ReceiveOptions,
    accept_timeout: Option<Duration>,
) -> Result<Received> {
    let dir = ready_dir(dir)?;
    remove_abandoned_parts(&dir, options.part_max_age, "recv_file");
    let conn = listener.accept(accept_timeout)?;
    let result = receive_on(conn.clone(), dir, options);
    conn.close();
    result
}

/// The receiving folder, created if missing.
fn ready_dir(dir: &Path) -> Result<PathBuf> {
    crate::permit::write(dir)?;
    let shown = quoted(dir);
    if dir.as_os_str().is_empty() {
        return Err(Error::invalid(format!("{shown} is not a folder")));
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::net::helpers::file_error("creating", dir, e))?;
    }
    if !dir.is_dir() {
        return Err(Error::invalid(format!("{shown} is not a folder")));
    }
    Ok(dir.to_path_buf())
}

/// Removes the part files in `dir` of uploads abandoned longer than
/// `max_age` ago, saying so on stderr. Called once the receiver's port is
/// bound, so a receiver that cannot start removes nothing.
fn remove_abandoned_parts(dir: &Path, max_age: Option<Duration>, op: &str) {
    let Some(max_age) = max_age else {
        return;
    };
    for (part, age) in receiver::remove_abandoned_parts(dir, max_age) {
        crate::console::warn(&format!(
            "{op}: removed the part file of an upload abandoned {} days ago: {}",
            age.as_secs() / 86_400,
            quoted(&part)
        ));
    }
}
