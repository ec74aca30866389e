//! File upload (lesson 1.6): `send_file`, `recv_file` and `serve_files`.
//!
//! Two modes. Framed (the default) never loses or corrupts a byte: a
//! versioned header, the bytes, an end-to-end SHA-256 the receiver checks,
//! and a confirmation sent only once the file is fsync'd under its final
//! name; an interrupted upload resumes after its prefix is verified. Raw
//! (`#{raw: true}`) is bytes then half-close, so it works with `nc`.
//!
//! - [`protocol`]: the wire format (`docs/PROTOCOL.md`) and name checks.
//! - [`sender`]: the sending side, `sendfile(2)` in raw mode.
//! - [`receiver`]: the receiving side, part files, resume, CIDR allow-lists.
//! - [`disk`]: streaming file I/O and hashing on blocking threads.
//!
//! Everything async runs on the shared runtime; the Rhai functions here are
//! synchronous and reach it only through [`runtime::block_on`], so Ctrl-C
//! stops any transfer (a framed one resumes later).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rhai::plugin::*;
use rhai::{Array, Map};
use tokio::{io::BufReader, sync::watch};

use crate::error::{Error, Result};
use crate::net::helpers::quoted;
use crate::net::{
    addr,
    options::Options,
    progress,
    tcp::{self, Conn, Listener},
};
use crate::runtime::{self, CancellationToken};

pub mod disk;
pub mod gate;
pub mod protocol;
pub mod receiver;
pub mod sender;

pub use crate::net::progress::Progress;
use gate::Gate;
use protocol::Refusal;
pub use receiver::{Cidr, ReceiveOptions, Received};
pub use sender::{SendOptions, Sent, Source};

/// The Rhai module of this capability.
pub fn module() -> Module {
    let mut module = exported_module!(api);
    module.set_custom_type::<FileServer>("FileServer");
    module
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

/// The most uploads `serve_files` may be told to receive at once.
const MAX_UPLOADS_LIMIT: usize = 4096;

/// A background receiver started by `serve_files`.
#[derive(Clone)]
pub struct FileServer(Arc<ServerState>);

struct ServerState {
    addr: SocketAddr,
    dir: PathBuf,
    stop: CancellationToken,
    listener: Listener,
    /// Uploads stored, counted before the sender is told, so a script that
    /// reads `.received` right after `send_file` returns sees its upload.
    received: AtomicU64,
    /// Uploads stored *and* confirmed to the sender. `wait` watches this
    /// one: a script that ends right after `wait(1)` must not cut off the
    /// confirmation its sender is waiting for.
    confirmed: watch::Sender<u64>,
    refused: AtomicU64,
    last: Mutex<Option<Received>>,
    last_error: Mutex<Option<String>>,
    log: bool,
    /// Flips to `true` when the accept loop has ended.
    ended: watch::Sender<bool>,
}

impl runtime::jobs::Job for FileServer {
    fn stop(&self) {
        FileServer::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.ended.subscribe()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl FileServer {
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    pub fn received(&self) -> u64 {
        self.0.received.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    pub fn last(&self) -> Option<Received> {
        self.0.last.lock().ok().and_then(|l| l.clone())
    }

    pub fn last_error(&self) -> Option<String> {
        self.0.last_error.lock().ok().and_then(|l| l.clone())
    }

    /// Stops accepting and abandons uploads in progress (their part files
    /// stay, so the senders can resume elsewhere or later).
    pub fn stop(&self) {
        self.0.stop.cancel();
        self.0.listener.close();
    }

    /// Waits until at least `count` uploads have arrived and been confirmed
    /// to their senders; returns how many have.
    pub fn wait(&self, count: u64, timeout: Option<Duration>) -> Result<u64> {
        let mut seen = self.0.confirmed.subscribe();
        let stop = self.0.stop.clone();
        runtime::block_on(async move {
            let wait = async {
                tokio::select! {
                    reached = seen.wait_for(|n| *n >= count) => reached.map(|n| *n).map_err(|_| Error::Closed("the file server is gone".into())),
                    _ = stop.cancelled() => Err(Error::Closed("the file server was stopped".into())),
                }
            };
            match timeout {
                Some(after) => {
                    runtime::within(after, || format!("waiting for {count} uploads"), wait).await
                }
                None => wait.await,
            }
        })
    }
}

impl std::fmt::Debug for FileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileServer({} → {}, {} received)",
            self.0.addr,
            self.0.dir.display(),
            self.received()
        )
    }
}

/// Starts a background receiver on `bind` writing into `dir`.
pub fn serve(
    bind: SocketAddr,
    dir: &Path,
    options: ReceiveOptions,
    log: bool,
) -> Result<FileServer> {
    let dir = ready_dir(dir)?;
    let listener = tcp::listen(bind)?;
    let addr = listener
        .addr()
        .ip()
        .ok_or_else(|| Error::invalid("serve_files listens on TCP only"))?;
    remove_abandoned_parts(&dir, options.part_max_age, "serve_files");
    let state = Arc::new(ServerState {
        addr,
        dir,
        // A child of the starting task's token: stopping the task stops it.
        stop: runtime::child_token(),
        listener: listener.clone(),
        received: AtomicU64::new(0),
        confirmed: watch::Sender::new(0),
        refused: AtomicU64::new(0),
        last: Mutex::new(None),
        last_error: Mutex::new(None),
        log,
        ended: watch::Sender::new(false),
    });
    let gate = Gate::new(&options);
    // At the REPL, say where uploads go, as `serve` does.
    if crate::console::is_interactive() {
        crate::console::line(&format!(
            "serve_files {}: listening on {}, saving into {}",
            state.addr.port(),
            state.addr,
            state.dir.display()
        ));
    }
    let options = Arc::new(options);
    let accepting = state.clone();
    runtime::handle().spawn(async move {
        let state = accepting;
        // Owned by this task, so the port is released as soon as it ends.
        let Some(tcp::ListenSocket::Tcp(socket)) =
            state.listener.state().socket.lock().await.take()
        else {
            state.ended.send_replace(true);
            return;
        };
        loop {
            // Every connection is accepted at once; the gate decides what
            // it may hold (see gate.rs), so the listen queue never fills
            // with connections nobody looks at.
            let accepted = tokio::select! {
                _ = state.stop.cancelled() => break,
                accepted = socket.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    // Judged here, in the order connections came.
                    let arrival = match gate::not_allowed(&options, peer.ip()) {
                        Some(refusal) => Err(refusal),
                        None => gate.arrive(peer.ip()),
                    };
                    let (state, options, gate) = (state.clone(), options.clone(), gate.clone());
                    tokio::spawn(serve_one(stream, peer, arrival, state, options, gate));
                }
                // Out of file descriptors and the like: pause, don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        drop(socket);
        state.ended.send_replace(true);
    });
    let server = FileServer(state);
    runtime::jobs::add(Arc::new(server.clone()));
    Ok(server)
}

/// Receives one upload on an accepted connection, or tells its sender why
/// not (`arrival` is the gate's answer for it).
async fn serve_one(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    arrival: std::result::Result<gate::Arrival, Refusal>,
    state: Arc<ServerState>,
    options: Arc<ReceiveOptions>,
    gate: Arc<Gate>,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let peer = tcp::Endpoint::Ip(peer);
    let refusal = match arrival {
        Err(refusal) => refusal,
        Ok(arrival) => {
            let mut record = |received: &Received| state.record(received);
            let admit = async || {
                gate.admit(&arrival, options.idle_timeout)
                    .await
                    .map(|slot| Box::new(slot) as receiver::Admission)
            };
            tokio::select! {
                _ = state.stop.cancelled() => return,
                _ = arrival.evicted.cancelled() => Refusal::new(
                    protocol::Code::Busy,
                    "too many connections were waiting here without sending an upload; this one waited longest and was closed; try again",
                ),
                outcome = receiver::receive(&mut read, &mut write, &peer, &state.dir, &options, admit, &mut record) => {
                    match outcome {
                        Ok(_) => state.confirmed.send_modify(|n| *n += 1),
                        Err(e) => state.refusal(&e),
                    }
                    return;
                }
            }
        }
    };
    // Refused before an upload began: tell the sender why if there is
    // leave to wait for it to read the reply, else just close.
    state.refusal(&receiver::refused_upload(&peer, &refusal));
    if let Some(_draining) = gate.draining() {
        receiver::tell_sender(&mut read, &mut write, &refusal).await;
    }
}

impl ServerState {
    /// Counts a stored upload (before its sender hears), logging it if asked.
    fn record(&self, received: &Received) {
        if self.log {
            let resumed = if received.resumed_from > 0 {
                format!(", resumed at byte {}", received.resumed_from)
            } else {
                String::new()
            };
            crate::console::line(&format!(
                "received {} ({} bytes, sha256 {}…{resumed}) from {} in {:.2} s",
                received.path.display(),
                received.bytes,
                &hex::encode(received.sha256)[..12],
                received.peer,
                received.seconds
            ));
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(received.clone());
        }
        self.received.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a refused or failed upload, logging it if asked.
    fn refusal(&self, e: &Error) {
        if self.log {
            crate::console::warn(&format!("serve_files: {e}"));
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e.to_string());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// A `Sent` as the map scripts see.
pub fn sent_map(sent: &Sent) -> Map {
    let mut map = Map::new();
    map.insert("name".into(), sent.name.clone().into());
    map.insert("bytes".into(), (sent.bytes as i64).into());
    map.insert("sent".into(), (sent.sent as i64).into());
    map.insert("resumed_from".into(), (sent.resumed_from as i64).into());
    map.insert(
        "sha256".into(),
        sent.sha256
            .map_or(Dynamic::UNIT, |sha| hex::encode(sha).into()),
    );
    map.insert("seconds".into(), sent.seconds.into());
    map.insert(
        "rate".into(),
        (sent.sent as f64 / sent.seconds.max(1e-6)).into(),
    );
    map.insert("verified".into(), sent.verified.into());
    map
}

/// A `Received` as the map scripts see.
pub fn received_map(received: &Received) -> Map {
    let mut map = Map::new();
    map.insert("path".into(), received.path.display().to_string().into());
    map.insert("name".into(), received.name.clone().into());
    map.insert("bytes".into(), (received.bytes as i64).into());
    map.insert("sha256".into(), hex::encode(received.sha256).into());
    map.insert("verified".into(), received.verified.into());
    map.insert("resumed_from".into(), (received.resumed_from as i64).into());
    map.insert("peer".into(), received.peer.to_string().into());
    map.insert("seconds".into(), received.seconds.into());
    map
}

const SEND_OPTIONS: &[&str] = &[
    "raw",
    "resume",
    "progress",
    "timeout",
    "name",
    "rate_limit",
    "zero_copy",
    "hash",
    "offset",
    "length",
    "tls",
];
const RECV_OPTIONS: &[&str] = &["raw", "name", "overwrite", "max_size", "timeout"];
const SERVE_OPTIONS: &[&str] = &[
    "max_size",
    "overwrite",
    "allow",
    "header_timeout",
    "idle_timeout",
    "log",
    "max_uploads",
    "max_per_ip",
    "min_rate",
    "part_max_age",
];

/// A timeout option by the one rule (0: no limit), as the `Duration` the
/// transfer code waits with.
fn wait_option(o: &Options, key: &str) -> Result<Option<Duration>> {
    Ok(o.timeout(key)?.map(|t| t.unwrap_or(Duration::MAX)))
}

fn send_options(map: &Map) -> Result<(SendOptions, progress::Wanted)> {
    let o = Options::new(map, SEND_OPTIONS)?;
    let defaults = SendOptions::default();
    Ok((
        SendOptions {
            raw: o.flag("raw", false)?,
            resume: o.flag("resume", defaults.resume)?,
            timeout: wait_option(&o, "timeout")?.unwrap_or(defaults.timeout),
            name: o.text("name")?,
            rate_limit: o.count("rate_limit")?,
            zero_copy: o.flag("zero_copy", defaults.zero_copy)?,
            hash: o.flag("hash", defaults.hash)?,
            offset: o.count("offset")?.unwrap_or(0),
            length: o.count("length")?,
            tls: match o.value("tls") {
                Some(tls) => crate::net::tls::ClientTls::from_option(tls)?,
                None => None,
            },
        },
        progress::Wanted::from_option(o.value("progress"))?,
    ))
}

/// Receive options and the accept timeout (`timeout` covers both).
fn recv_options(map: &Map) -> Result<(ReceiveOptions, Option<Duration>)> {
    let o = Options::new(map, RECV_OPTIONS)?;
    let raw = o.flag("raw", false)?;
    let name = match o.text("name")? {
        // Checked now, not once a sender has connected.
        Some(name) => Some(protocol::safe_name(name.as_bytes()).map_err(|r| {
            Error::invalid(format!(
                "option 'name': '{name}' cannot be used: {}",
                r.message
            ))
        })?),
        None => None,
    };
    if name.is_some() && !raw {
        return Err(Error::invalid(
            "option 'name' is for raw mode (raw: true); a framed upload carries its own name",
        ));
    }
    let mut options = ReceiveOptions {
        raw,
        name,
        overwrite: o.flag("overwrite", false)?,
        max_size: o.count("max_size")?,
        ..ReceiveOptions::default()
    };
    let timeout = wait_option(&o, "timeout")?;
    if let Some(t) = timeout {
        options.header_timeout = t;
        options.idle_timeout = t;
    }
    Ok((options, timeout.filter(|t| *t != Duration::MAX)))
}

fn serve_options(map: &Map) -> Result<(ReceiveOptions, bool)> {
    let o = Options::new(map, SERVE_OPTIONS)?;
    let defaults = ReceiveOptions::default();
    let limit = |key: &str, default: usize| -> Result<usize> {
        Ok(o.count_in(key, 1, MAX_UPLOADS_LIMIT as u64)?
            .map_or(default, |n| n as usize))
    };
    let allow = match o.value("allow") {
        None => Vec::new(),
        Some(v) if v.is_string() => vec![Cidr::parse(&v.to_string())?],
        Some(v) => match v.clone().try_cast::<Array>() {
            Some(list) => list
                .iter()
                .map(|item| Cidr::parse(&item.to_string()))
                .collect::<Result<_>>()?,
            None => {
                return Err(Options::bad(
                    "allow",
                    "an address block like \"10.0.0.0/8\" or an array of them",
                    v,
                ));
            }
        },
    };
    Ok((
        ReceiveOptions {
            raw: false,
            name: None,
            overwrite: o.flag("overwrite", false)?,
            max_size: o.count("max_size")?,
            header_timeout: wait_option(&o, "header_timeout")?.unwrap_or(defaults.header_timeout),
            idle_timeout: wait_option(&o, "idle_timeout")?.unwrap_or(defaults.idle_timeout),
            allow,
            max_uploads: limit("max_uploads", defaults.max_uploads)?,
            max_per_ip: limit("max_per_ip", defaults.max_per_ip)?,
            min_rate: match o.count("min_rate")? {
                None => defaults.min_rate,
                Some(0) => None,
                Some(rate) => Some(rate),
            },
            part_max_age: o
                .millis("part_max_age", "keeps them forever")?
                .unwrap_or(defaults.part_max_age),
        },
        o.flag("log", false)?,
    ))
}

/// The `count` of `wait(count)`: 0 or more.
fn upload_count(count: i64) -> Result<u64> {
    u64::try_from(count).map_err(|_| {
        Error::invalid(format!(
            "the count of uploads must be 0 or more, not {count}"
        ))
    })
}

/// Runs a send from a Rhai call: options, progress bar or callback, result map.
fn script_send(ctx: &NativeCallContext, to: Either<'_>, path: &str, map: &Map) -> Result<Map> {
    let (options, wanted) = send_options(map)?;
    let sent = progress::with_report(ctx, &wanted, |report| match to {
        Either::Target(text) => {
            let dest = tcp::parse_dest(text)?;
            send_to(dest, Path::new(path), options, report)
        }
        Either::Conn(conn) => {
            if options.tls.is_some() {
                return Err(Error::invalid(
                    "option 'tls' is for an address; a connection is TLS or not as it was opened",
                ));
            }
            send_over(conn, Path::new(path), options, report, false)
        }
    })?;
    Ok(sent_map(&sent))
}

enum Either<'a> {
    Target(&'a str),
    Conn(Conn),
}

#[export_module]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail};

    /// Uploads a file to a receiver at `"host:port"` and waits until it
    /// confirms the file is on disk with the same SHA-256. Returns
    /// `#{name, bytes, sent, resumed_from, sha256, seconds, rate, verified}`
    /// (`rate` in bytes per second). An interrupted upload sent again
    /// resumes where it stopped. A progress bar shows on a terminal.
    ///
    /// ```rhai
    /// let r = send_file("127.0.0.1:9000", "photo.jpg");
    /// print(`${r.bytes} bytes, sha256 ${r.sha256}`);
    /// ```
    ///
    /// Fails when: the address is malformed or has port 0, the file is
    /// missing or a folder (or does not report its size and holds more than
    /// 16 MiB), the receiver cannot be reached, it refuses (name, size
    /// limit, file exists, not allowed…), the checksums differ, or the
    /// connection breaks. All but the last four are found before connecting.
    #[rhai_fn(return_raw, name = "send_file")]
    pub fn send_file(ctx: NativeCallContext, addr: &str, path: &str) -> ScriptResult<Map> {
        super::script_send(&ctx, Either::Target(addr), path, &Map::new()).map_err(fail("send_file"))
    }

    /// Uploads a file with options: `raw` (plain bytes then half-close, for
    /// `nc -l`; a raw send that fails part-way resets the connection
    /// instead, so the receiver does not take the part as the file),
    /// `resume` (default true), `progress` (false, or a closure
    /// called with `#{bytes, total, percent, rate, eta}` four times a
    /// second and once at the end), `timeout` (ms per wait, default 30000,
    /// 0 for none),
    /// `name` (send under another name), `rate_limit` (bytes per second),
    /// `zero_copy` (raw mode's `sendfile`, default true), `hash` (raw mode:
    /// also compute the SHA-256 to compare with `sha256sum` at the other
    /// end; default false, which leaves `sha256` as `()` and the transfer
    /// as fast as nc), `offset` and `length` (raw mode: send only that part
    /// of the file, e.g. an HTTP range), `tls` (as `connect`'s: upload over
    /// TLS to a receiver listening with `listen(addr, #{tls: …})`; raw mode
    /// then reads and writes instead of `sendfile`, since every byte is
    /// encrypted). The address may be `"unix:/path"` too.
    ///
    /// ```rhai
    /// send_file("127.0.0.1:9000", "big.iso", #{progress: |p| print(`${p.percent.to_int()}%`)});
    /// send_file("127.0.0.1:9000", "notes.txt", #{raw: true});   // to `nc -l 9000 > notes.txt`
    /// send_file("127.0.0.1:9443", "notes.txt", #{tls: #{ca: "server.pem"}});
    /// ```
    ///
    /// Fails when: as `send_file(addr, path)`, or an option is unknown or
    /// has the wrong type, or the progress closure fails.
    #[rhai_fn(return_raw, name = "send_file")]
    pub fn send_file_with(
        ctx: NativeCallContext,
        addr: &str,
        path: &str,
        options: Map,
    ) -> ScriptResult<Map> {
        super::script_send(&ctx, Either::Target(addr), path, &options).map_err(fail("send_file"))
    }

    /// Uploads a file over a connection you opened with `connect`.
    /// In raw mode the connection is half-closed afterwards (you can
    /// still read the peer's answer).
    ///
    /// ```rhai
    /// let c = connect("127.0.0.1:9000");
    /// send_file(c, "report.pdf");
    /// ```
    ///
    /// Fails when: as `send_file(addr, path)`, or the connection is closed.
    #[rhai_fn(return_raw, name = "send_file")]
    pub fn send_file_conn(ctx: NativeCallContext, conn: Conn, path: &str) -> ScriptResult<Map> {
        super::script_send(&ctx, Either::Conn(conn), path, &Map::new()).map_err(fail("send_file"))
    }

    /// Uploads a file over an open connection, with the options of
    /// `send_file(addr, path, options)`.
    ///
    /// ```rhai
    /// let c = connect("127.0.0.1:9000");
    /// send_file(c, "log.txt", #{raw: true}); print(c.read_all());
    /// ```
    ///
    /// Fails when: as `send_file(addr, path, options)`, or the connection is closed.
    #[rhai_fn(return_raw, name = "send_file")]
    pub fn send_file_conn_with(
        ctx: NativeCallContext,
        conn: Conn,
        path: &str,
        options: Map,
    ) -> ScriptResult<Map> {
        super::script_send(&ctx, Either::Conn(conn), path, &options).map_err(fail("send_file"))
    }

    /// Waits for one upload on a listener and stores it in folder `dir`
    /// (created if missing). Returns `#{path, name, bytes, sha256, verified,
    /// resumed_from, peer, seconds}`. The file appears under its name only
    /// once complete and checked; names that would leave `dir` are refused.
    ///
    /// ```rhai
    /// let l = listen(9000);
    /// let r = recv_file(l, "incoming");
    /// print(`${r.path}: ${r.bytes} bytes, verified: ${r.verified}`);
    /// ```
    ///
    /// Fails when: the name is unsafe, the file exists, the checksums
    /// differ, the sender stops or stalls (30 s), or the upload is cut off
    /// (the part received is kept, and sending again resumes).
    #[rhai_fn(return_raw, name = "recv_file")]
    pub fn recv_file(l: &mut Listener, dir: &str) -> ScriptResult<Map> {
        super::receive_once(l, Path::new(dir), ReceiveOptions::default(), None)
            .map(|r| received_map(&r))
            .map_err(fail("recv_file"))
    }

    /// Receives one upload with options: `raw` (plain bytes until the
    /// sender closes, as `nc host 9000 < file` sends), `name` (the file name
    /// in raw mode), `overwrite` (default false), `max_size` (bytes),
    /// `timeout` (ms to wait for the sender, and for any stall; by default
    /// the wait for a connection is unlimited and a stall may last 30 s).
    ///
    /// ```rhai
    /// let r = recv_file(listen(9000), "in", #{raw: true, name: "f.bin"});
    /// ```
    ///
    /// Fails when: as `recv_file(listener, dir)`, or nobody connects within
    /// `timeout`, or a raw upload grows past `max_size` (nothing is kept).
    #[rhai_fn(return_raw, name = "recv_file")]
    pub fn recv_file_with(l: &mut Listener, dir: &str, options: Map) -> ScriptResult<Map> {
        super::recv_options(&options)
            .and_then(|(options, accept)| super::receive_once(l, Path::new(dir), options, accept))
            .map(|r| received_map(&r))
            .map_err(fail("recv_file"))
    }

    /// Receives one upload over a connection you accepted yourself.
    ///
    /// ```rhai
    /// let c = listen(9000).accept();
    /// recv_file(c, "incoming");
    /// ```
    ///
    /// Fails when: as `recv_file(listener, dir)`, or the connection is closed.
    #[rhai_fn(return_raw, name = "recv_file")]
    pub fn recv_file_conn(c: &mut Conn, dir: &str) -> ScriptResult<Map> {
        super::receive_over(c.clone(), Path::new(dir), ReceiveOptions::default())
            .map(|r| received_map(&r))
            .map_err(fail("recv_file"))
    }

    /// Receives one upload over an accepted connection, with the options of
    /// `recv_file(listener, dir, options)`.
    ///
    /// ```rhai
    /// let c = listen(9000).accept();
    /// recv_file(c, "in", #{raw: true, name: "dump.bin", max_size: 1_000_000});
    /// ```
    ///
    /// Fails when: as `recv_file(listener, dir, options)`.
    #[rhai_fn(return_raw, name = "recv_file")]
    pub fn recv_file_conn_with(c: &mut Conn, dir: &str, options: Map) -> ScriptResult<Map> {
        super::recv_options(&options)
            .and_then(|(options, _)| super::receive_over(c.clone(), Path::new(dir), options))
            .map(|r| received_map(&r))
            .map_err(fail("recv_file"))
    }

    /// Starts a background receiver on a port (every address) storing
    /// framed uploads into `dir`, many at a time. Returns a FileServer:
    /// `.port`, `.received`, `.refused`, `.last`, `.last_error`, `.wait(n)`,
    /// `.stop()`.
    ///
    /// ```rhai
    /// let s = serve_files(9000, "incoming");
    /// s.wait(1); print(s.last.path); s.stop();
    /// ```
    ///
    /// Fails when: the port is out of range or in use, or `dir` cannot be created.
    #[rhai_fn(return_raw, name = "serve_files")]
    pub fn serve_files(port: i64, dir: &str) -> ScriptResult<FileServer> {
        addr::port(port)
            .map(addr::any_addr)
            .and_then(|bind| super::serve(bind, Path::new(dir), ReceiveOptions::default(), false))
            .map_err(fail("serve_files"))
    }

    /// Starts a background receiver with options: `max_size` (bytes,
    /// checked before anything is written), `overwrite` (default false),
    /// `allow` (client address blocks, e.g. `["127.0.0.1", "10.0.0.0/8"]`,
    /// checked as soon as a client connects), `header_timeout` (ms, default
    /// 10000), `idle_timeout` (ms, default 30000), `log` (print a line per
    /// upload), `max_uploads` (how many are received at once, default 64;
    /// more wait their turn, at most `idle_timeout`), `max_per_ip` (how many
    /// of those one client address may have, default 8), `min_rate` (bytes
    /// per second a body must average, default 1024, 0 for none),
    /// `part_max_age` (ms; part files of uploads abandoned this long are
    /// removed when the receiver starts, default 7 days; 0 keeps them).
    ///
    /// ```rhai
    /// let s = serve_files(9000, "in", #{max_size: 100_000_000, allow: ["127.0.0.1/32"], log: true});
    /// ```
    ///
    /// Fails when: as `serve_files(port, dir)`, or an option is unknown or
    /// malformed.
    #[rhai_fn(return_raw, name = "serve_files")]
    pub fn serve_files_with(port: i64, dir: &str, options: Map) -> ScriptResult<FileServer> {
        addr::port(port)
            .map(addr::any_addr)
            .and_then(|bind| {
                let (options, log) = super::serve_options(&options)?;
                super::serve(bind, Path::new(dir), options, log)
            })
            .map_err(fail("serve_files"))
    }

    /// Starts a background receiver on one local address, like `"127.0.0.1:0"`.
    ///
    /// ```rhai
    /// let s = serve_files("127.0.0.1:0", "in"); print(s.port);
    /// ```
    ///
    /// Fails when: the address is malformed or in use, or `dir` cannot be created.
    #[rhai_fn(return_raw, name = "serve_files")]
    pub fn serve_files_addr(addr: &str, dir: &str) -> ScriptResult<FileServer> {
        addr::parse_bind(addr)
            .and_then(|bind| super::serve(bind, Path::new(dir), ReceiveOptions::default(), false))
            .map_err(fail("serve_files"))
    }

    /// Starts a background receiver on one local address, with the options
    /// of `serve_files(port, dir, options)`.
    ///
    /// ```rhai
    /// let s = serve_files("[::1]:9000", "in", #{overwrite: true});
    /// ```
    ///
    /// Fails when: as `serve_files(port, dir, options)`.
    #[rhai_fn(return_raw, name = "serve_files")]
    pub fn serve_files_addr_with(addr: &str, dir: &str, options: Map) -> ScriptResult<FileServer> {
        addr::parse_bind(addr)
            .and_then(|bind| {
                let (options, log) = super::serve_options(&options)?;
                super::serve(bind, Path::new(dir), options, log)
            })
            .map_err(fail("serve_files"))
    }

    /// The port a file server listens on.
    ///
    /// ```rhai
    /// serve_files(0, "in").port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn server_port(s: &mut FileServer) -> i64 {
        s.addr().port() as i64
    }

    /// The address a file server listens on, as `"ip:port"`.
    ///
    /// ```rhai
    /// serve_files("127.0.0.1:0", "in").addr
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn server_addr(s: &mut FileServer) -> String {
        s.addr().to_string()
    }

    /// How many uploads a file server has stored so far.
    ///
    /// ```rhai
    /// print(s.received)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "received", pure)]
    pub fn server_received(s: &mut FileServer) -> i64 {
        s.received() as i64
    }

    /// How many uploads a file server refused or lost (bad name, too big,
    /// exists, checksum mismatch, cut off, timed out…).
    ///
    /// ```rhai
    /// print(s.refused)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "refused", pure)]
    pub fn server_refused(s: &mut FileServer) -> i64 {
        s.refused() as i64
    }

    /// The last upload stored, as `recv_file` returns it, or `()` if none yet.
    ///
    /// ```rhai
    /// if s.last != () { print(s.last.path) }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "last", pure)]
    pub fn server_last(s: &mut FileServer) -> Dynamic {
        s.last()
            .map_or(Dynamic::UNIT, |r| Dynamic::from_map(received_map(&r)))
    }

    /// Why the last refused upload was refused, or `()`.
    ///
    /// ```rhai
    /// print(s.last_error)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "last_error", pure)]
    pub fn server_last_error(s: &mut FileServer) -> Dynamic {
        s.last_error().map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// Stops a file server; uploads in progress are abandoned (their part
    /// files stay, so they can be resumed).
    ///
    /// ```rhai
    /// s.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn server_stop(s: &mut FileServer) {
        s.stop();
    }

    /// Waits until `count` uploads in all have been stored and confirmed
    /// to their senders; returns the number. Ctrl-C stops the wait.
    ///
    /// ```rhai
    /// s.wait(3);
    /// ```
    ///
    /// Fails when: `count` is negative, the server is stopped, or the wait
    /// is interrupted.
    #[rhai_fn(return_raw, pure, name = "wait")]
    pub fn server_wait(s: &mut FileServer, count: i64) -> ScriptResult<i64> {
        super::upload_count(count)
            .and_then(|count| s.wait(count, None))
            .map(|n| n as i64)
            .map_err(fail("wait"))
    }

    /// Waits at most `timeout_ms` for `count` uploads in all (0: no limit).
    ///
    /// ```rhai
    /// s.wait(1, 5000);
    /// ```
    ///
    /// Fails when: `count` or `timeout_ms` is negative, they do not arrive
    /// in time, the server is stopped, or the wait is interrupted.
    #[rhai_fn(return_raw, pure, name = "wait")]
    pub fn server_wait_timeout(
        s: &mut FileServer,
        count: i64,
        timeout_ms: i64,
    ) -> ScriptResult<i64> {
        super::upload_count(count)
            .and_then(|count| s.wait(count, crate::net::options::timeout(timeout_ms)?))
            .map(|n| n as i64)
            .map_err(fail("wait"))
    }

    /// How a file server prints: `FileServer(0.0.0.0:9000 → in, 2 received)`.
    ///
    /// ```rhai
    /// print(s)
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn server_to_string(s: &mut FileServer) -> String {
        format!("{s:?}")
    }
}
