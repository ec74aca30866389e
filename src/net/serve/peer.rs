//! The connection an event handler is given: `c.send…` appends to a buffer
//! the server writes out after the handler returns (so a handler never
//! waits), `c.state` holds what the script keeps per connection, and the
//! methods that would wait say to use the closure shape instead.

use std::{
    net::SocketAddr,
    os::fd::AsFd,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use rhai::plugin::*;
use rhai::{Blob, Map};
use tokio::sync::Notify;

use super::events::Socket;

use crate::error::{Error, Result};

/// The most a connection may have waiting to be sent: a peer that does not
/// read must not grow the server's memory without bound.
pub const MAX_UNSENT: usize = 16 * 1024 * 1024;

/// The Rhai functions of [`EventConn`].
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<EventConn>("EventConn");
}

/// One connection of an event-shape server.
#[derive(Clone)]
pub struct EventConn(Arc<PeerState>);

struct PeerState {
    local: SocketAddr,
    peer: SocketAddr,
    /// What handlers sent, not yet written to the socket.
    unsent: Mutex<Vec<u8>>,
    /// Wakes the connection's task to write `unsent` (a send from a task,
    /// outside any handler) or to close.
    wake: Notify,
    /// Set while this connection's handler runs: its sends are written when
    /// it returns, with no wake-up needed.
    in_handler: AtomicBool,
    /// `close()` was called: write what is buffered, then close.
    closing: AtomicBool,
    state: Mutex<Dynamic>,
    /// The socket, for `info()`: the connection's task owns it, so it
    /// closes when the connection ends (a script holding `c` keeps no
    /// descriptor open, and a server holds one per connection).
    socket: Weak<Socket>,
}

impl EventConn {
    pub fn new(stream: &Arc<Socket>) -> Result<EventConn> {
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        let local = stream
            .get_ref()
            .local_addr()
            .map_err(|e| Error::io("reading the local address", None, e))?;
        let peer = stream
            .get_ref()
            .peer_addr()
            .map_err(|e| Error::io("reading the peer address", None, e))?;
        Ok(EventConn(Arc::new(PeerState {
            local: canonical(local),
            peer: canonical(peer),
            unsent: Mutex::new(Vec::new()),
            wake: Notify::new(),
            in_handler: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            state: Mutex::new(Dynamic::UNIT),
            socket: Arc::downgrade(stream),
        })))
    }

    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// Buffers `data` for the connection's task to write.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        if self.is_closing() {
            return Err(Error::Closed(format!(
                "the connection to {} is closed",
                self.0.peer
            )));
        }
        let mut unsent = self
            .0
            .unsent
            .lock()
            .map_err(|_| Error::invalid("the connection's buffer is unavailable"))?;
        if unsent.len() + data.len() > MAX_UNSENT {
            return Err(Error::TooBig(format!(
                "{} is not reading: {} KiB wait to be sent already (at most {} MiB may wait)",
                self.0.peer,
                unsent.len() / 1024,
                MAX_UNSENT >> 20
            )));
        }
        let in_handler = self.0.in_handler.load(Ordering::Relaxed);
        // In a handler, with nothing queued ahead, write at once when the
        // socket takes it (as asyncio's transport.write does): the task is
        // busy running this handler, so no write of its own can interleave.
        let done = if in_handler && unsent.is_empty() {
            self.write_now(data)
        } else {
            0
        };
        unsent.extend_from_slice(&data[done..]);
        drop(unsent);
        if !in_handler {
            self.0.wake.notify_one();
        }
        Ok(data.len())
    }

    /// Writes what the socket takes without waiting; 0 when it takes
    /// nothing (or is gone: the task then finds out for itself).
    fn write_now(&self, data: &[u8]) -> usize {
        let Some(stream) = self.0.socket.upgrade() else {
            return 0;
        };
        let mut done = 0;
        while done < data.len() {
            // The socket is non-blocking: a full buffer says so at once
            // (and what is left waits in `unsent`).
            match std::io::Write::write(&mut stream.get_ref(), &data[done..]) {
                Ok(n) if n > 0 => done += n,
                _ => break,
            }
        }
        done
    }

    /// Takes what waits to be sent (empty when nothing does).
    pub fn take_unsent(&self) -> Vec<u8> {
        self.0
            .unsent
            .lock()
            .map(|mut unsent| std::mem::take(&mut *unsent))
            .unwrap_or_default()
    }

    /// Asks for the connection to be closed once its buffer is written.
    pub fn close(&self) {
        self.0.closing.store(true, Ordering::Relaxed);
        if !self.0.in_handler.load(Ordering::Relaxed) {
            self.0.wake.notify_one();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::Relaxed)
    }

    /// Resolves when a send or close from outside a handler needs the
    /// connection's task.
    pub async fn woken(&self) {
        self.0.wake.notified().await;
    }

    /// Runs `f` as this connection's handler: sends inside it are written
    /// when it returns.
    pub fn in_handler<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.in_handler.store(true, Ordering::Relaxed);
        let result = f();
        self.0.in_handler.store(false, Ordering::Relaxed);
        result
    }
}

impl std::fmt::Debug for EventConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventConn({} → {})", self.0.local, self.0.peer)
    }
}

/// The error of a method that would wait, called on an event connection.
fn would_wait(method: &str) -> Error {
    Error::invalid(format!(
        "an event handler does not call {method}(): it is called with each line (on_line) or \
         chunk (on_data) as it arrives; for code that reads when it wants, use the closure \
         shape serve(port, |c| {{ … }})"
    ))
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// Sends a string from an event handler: it is buffered and written
    /// after the handler returns, so this never waits. Returns its size.
    ///
    /// ```rhai
    /// serve(9000, #{on_line: |c, line| c.send(line + "\n")});
    /// ```
    ///
    /// Fails when: the connection was closed, or the peer is not reading
    /// and 16 MiB already wait to be sent.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_str(c: &mut EventConn, data: &str) -> ScriptResult<i64> {
        c.send(data.as_bytes())
            .map(|n| n as i64)
            .map_err(fail("send"))
    }

    /// Sends the bytes of a blob from an event handler (buffered).
    ///
    /// ```rhai
    /// serve(9000, #{on_data: |c, bytes| c.send(bytes)});
    /// ```
    ///
    /// Fails when: the connection was closed, or the peer is not reading
    /// and 16 MiB already wait to be sent.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_blob(c: &mut EventConn, data: Blob) -> ScriptResult<i64> {
        c.send(&data).map(|n| n as i64).map_err(fail("send"))
    }

    /// Sends a string and `"\n"` from an event handler (buffered).
    ///
    /// ```rhai
    /// serve(9000, #{on_line: |c, line| c.send_line(line)});
    /// ```
    ///
    /// Fails when: the connection was closed, or the peer is not reading
    /// and 16 MiB already wait to be sent.
    #[rhai_fn(return_raw, pure)]
    pub fn send_line(c: &mut EventConn, line: &str) -> ScriptResult<i64> {
        let mut data = Vec::with_capacity(line.len() + 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        c.send(&data).map(|n| n as i64).map_err(fail("send_line"))
    }

    /// Closes the connection once what was sent is written; no handler is
    /// called for data that arrives after it (`on_close` still is).
    ///
    /// ```rhai
    /// serve(9000, #{on_line: |c, line| if line == "quit" { c.close() }});
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn close(c: &mut EventConn) {
        c.close();
    }

    /// Whether `close()` was called on this connection.
    ///
    /// ```rhai
    /// c.closed
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "closed", pure)]
    pub fn closed(c: &mut EventConn) -> bool {
        c.is_closing()
    }

    /// What the script keeps for this connection (`()` at first); any value.
    ///
    /// ```rhai
    /// serve(9000, #{on_open: |c| c.state = #{lines: 0}, on_line: |c, l| c.state.lines += 1});
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "state", pure)]
    pub fn get_state(c: &mut EventConn) -> Dynamic {
        c.0.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Replaces what the script keeps for this connection.
    ///
    /// ```rhai
    /// c.state = 0;
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(set = "state")]
    pub fn set_state(c: &mut EventConn, value: Dynamic) {
        if let Ok(mut state) = c.0.state.lock() {
            *state = crate::runtime::closure::detached(&value);
        }
    }

    /// The remote end of the connection, as `"ip:port"`.
    ///
    /// ```rhai
    /// c.peer
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "peer", pure)]
    pub fn peer(c: &mut EventConn) -> String {
        c.0.peer.to_string()
    }

    /// The local end of the connection, as `"ip:port"`.
    ///
    /// ```rhai
    /// c.local
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "local", pure)]
    pub fn local(c: &mut EventConn) -> String {
        c.0.local.to_string()
    }

    /// The kernel's view of the connection (TCP_INFO), as `Conn.info()`.
    ///
    /// ```rhai
    /// serve(9000, #{on_open: |c| print(c.info().rtt_us)});
    /// ```
    ///
    /// Fails when: the socket is gone.
    #[rhai_fn(return_raw, pure)]
    pub fn info(c: &mut EventConn) -> ScriptResult<Map> {
        let socket = c.0.socket.upgrade().ok_or_else(|| {
            fail("info")(Error::Closed(format!(
                "the connection to {} is closed",
                c.0.peer
            )))
        })?;
        crate::net::tcp::info_map(socket.get_ref().as_fd(), c.0.local, c.0.peer)
            .map_err(fail("info"))
    }

    /// Refused in an event handler: lines come to `on_line` as they arrive.
    ///
    /// ```rhai
    /// serve(9000, #{on_line: |c, line| print(line)});
    /// ```
    ///
    /// Fails when: always (use the closure shape to read when you want).
    #[rhai_fn(return_raw, pure)]
    pub fn recv_line(_c: &mut EventConn) -> ScriptResult<()> {
        Err(fail("recv_line")(would_wait("recv_line")))
    }

    /// Refused in an event handler: data comes to `on_data` as it arrives.
    ///
    /// ```rhai
    /// serve(9000, #{on_data: |c, bytes| print(bytes.len())});
    /// ```
    ///
    /// Fails when: always (use the closure shape to read when you want).
    #[rhai_fn(return_raw, pure)]
    pub fn recv(_c: &mut EventConn) -> ScriptResult<()> {
        Err(fail("recv")(would_wait("recv")))
    }

    /// Refused in an event handler: data comes to `on_data` as it arrives.
    ///
    /// ```rhai
    /// serve(9000, #{on_data: |c, bytes| print(bytes.len())});
    /// ```
    ///
    /// Fails when: always (use the closure shape to read when you want).
    #[rhai_fn(return_raw, pure)]
    pub fn read(_c: &mut EventConn, _n: i64) -> ScriptResult<()> {
        Err(fail("read")(would_wait("read")))
    }

    /// How an event connection prints: `EventConn(127.0.0.1:9000 → 127.0.0.1:50312)`.
    ///
    /// ```rhai
    /// print(c)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(c: &mut EventConn) -> String {
        format!("{c:?}")
    }
}
