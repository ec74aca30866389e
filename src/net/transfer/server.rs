//! `serve_files`: a receiver in the background that takes uploads on a
//! port, many at a time, through the admission [`Gate`], until stopped; and
//! the `FileServer` handle a script watches it with.

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
use tokio::{io::BufReader, sync::watch};

use super::gate::{self, Gate};
use super::protocol::{self, Refusal};
use super::settings::upload_count;
use super::{ReceiveOptions, Received, ready_dir, received_map, receiver, remove_abandoned_parts};
use crate::error::{Error, Result};
use crate::net::tcp::{self, Listener};
use crate::runtime::{self, CancellationToken};

/// The Rhai functions of [`FileServer`].
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// The most uploads `serve_files` may be told to receive at once.
pub const MAX_UPLOADS_LIMIT: usize = 4096;

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
    // `arrival` is kept until the connection closes: it counts towards its
    // address's limit for as long as it is open, the wait after a refusal
    // included.
    let (refusal, _arrival) = match arrival {
        Err(refusal) => (refusal, None),
        Ok(arrival) => {
            let mut record = |received: &Received| state.record(received);
            let admit = async || {
                gate.admit(&arrival, options.idle_timeout)
                    .await
                    .map(|slot| Box::new(slot) as receiver::Admission)
            };
            let refusal = tokio::select! {
                _ = state.stop.cancelled() => return,
                _ = arrival.evicted.cancelled() => Refusal::new(
                    protocol::Code::Busy,
                    "too many connections were waiting here without sending an upload; this one waited longest and was closed; try again",
                ),
                outcome = receiver::receive_untold(&mut read, &mut write, &peer, &state.dir, &options, admit, &mut record) => {
                    match outcome {
                        Ok(_) => {
                            state.confirmed.send_modify(|n| *n += 1);
                            return;
                        }
                        Err(refusal) => refusal,
                    }
                }
            };
            // Refused: no longer waiting for a place, so not one that a
            // newcomer's arrival should evict.
            arrival.settle();
            (refusal, Some(arrival))
        }
    };
    // Tell the sender why if there is leave to wait for it to read the
    // reply, else just close.
    state.refusal(&receiver::refused_upload(&peer, &refusal));
    if let Some(_draining) = gate.draining() {
        tokio::select! {
            _ = state.stop.cancelled() => {}
            _ = receiver::tell_sender(&mut read, &mut write, &refusal) => {}
        }
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

#[export_module(manifest)]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail};

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
