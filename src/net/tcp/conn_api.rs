//! The `Conn` methods as Rhai functions: send, the reads (each also with a
//! per-call timeout, as `ms` or `#{timeout: ms}`), half-close, close, and
//! what a connection knows about itself. Apart from `listen`/`connect`
//! because a connection's API is most of the capability.

use rhai::plugin::*;
use rhai::{Blob, Map};

use super::Conn;
use crate::error::{Error, Result};

/// The Rhai functions of [`Conn`].
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// A byte count from a script: 0 or more.
fn byte_count(n: i64) -> Result<usize> {
    usize::try_from(n)
        .map_err(|_| Error::invalid(format!("the byte count must be 0 or more, not {n}")))
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail, wrong_type};
    use crate::net::options::{timeout as wait_limit, wait_option};

    /// Sends a string (its UTF-8 bytes); returns the number of bytes sent.
    ///
    /// ```rhai
    /// c.send("GET / HTTP/1.0\r\n\r\n");
    /// ```
    ///
    /// Fails when: the connection is closed or was shut down for sending, or
    /// the peer reset it.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_str(c: &mut Conn, data: &str) -> ScriptResult<i64> {
        c.send(data.as_bytes())
            .map(|n| n as i64)
            .map_err(fail("send"))
    }

    /// Sends the bytes of a blob; returns the number of bytes sent.
    ///
    /// ```rhai
    /// c.send(read_blob("photo.jpg"));
    /// ```
    ///
    /// Fails when: the connection is closed or was shut down for sending, or
    /// the peer reset it.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_blob(c: &mut Conn, data: Blob) -> ScriptResult<i64> {
        c.send(&data).map(|n| n as i64).map_err(fail("send"))
    }

    /// Catches `send` with something that is neither a string nor a blob.
    ///
    /// ```rhai
    /// c.send(`${42}`)   // numbers must become text first
    /// ```
    ///
    /// Fails when: always: the data is not a string or a blob.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_wrong_type(_c: &mut Conn, data: Dynamic) -> ScriptResult<i64> {
        Err(fail("send")(wrong_type("a string or a blob", &data)))
    }

    /// Sends a string followed by `"\n"`; returns the bytes sent.
    ///
    /// ```rhai
    /// c.send_line("hello");
    /// ```
    ///
    /// Fails when: the connection is closed or was shut down for sending, or
    /// the peer reset it.
    #[rhai_fn(return_raw, pure)]
    pub fn send_line(c: &mut Conn, line: &str) -> ScriptResult<i64> {
        let mut data = Vec::with_capacity(line.len() + 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        c.send(&data).map(|n| n as i64).map_err(fail("send_line"))
    }

    /// Whatever arrives next, as a string (as much as has arrived, at least
    /// one byte); `""` when the peer has closed its side.
    ///
    /// ```rhai
    /// let reply = c.recv();
    /// if reply == "" { print("the peer closed") }
    /// ```
    ///
    /// Fails when: the data is not UTF-8 text (use `read`), the read timeout
    /// passes, the connection is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv(c: &mut Conn) -> ScriptResult<String> {
        c.recv().map_err(fail("recv"))
    }

    /// The next line, without its `"\n"` or `"\r\n"`; `()` at end of stream
    /// (so an empty line `""` and the end are told apart). A last line
    /// without a newline is returned as it is.
    ///
    /// ```rhai
    /// loop { let line = c.recv_line(); if line == () { break } print(line) }
    /// ```
    ///
    /// Fails when: the line is not UTF-8 text (its bytes are consumed), it is
    /// longer than 1 MiB, the read timeout passes, the connection is closed
    /// or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv_line(c: &mut Conn) -> ScriptResult<Dynamic> {
        c.recv_line()
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_line"))
    }

    /// The text before `delim`, which is consumed and not returned; at end of
    /// stream without the delimiter, what arrived; `()` if nothing did.
    ///
    /// ```rhai
    /// let headers = c.recv_until("\r\n\r\n");
    /// ```
    ///
    /// Fails when: `delim` is empty, the text is not UTF-8, more than 1 MiB
    /// arrives without the delimiter, the read timeout passes, the connection
    /// is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv_until(c: &mut Conn, delim: &str) -> ScriptResult<Dynamic> {
        c.recv_until(delim)
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_until"))
    }

    /// Exactly `n` bytes as a blob, or fewer if the peer closes first (an
    /// empty blob at end of stream).
    ///
    /// ```rhai
    /// let header = c.read(4);
    /// ```
    ///
    /// Fails when: `n` is negative, the read timeout passes, the connection
    /// is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn read(c: &mut Conn, n: i64) -> ScriptResult<Blob> {
        byte_count(n).and_then(|n| c.read(n)).map_err(fail("read"))
    }

    /// Every byte until the peer closes its side, as a blob.
    ///
    /// ```rhai
    /// c.shutdown(); let reply = c.read_all();
    /// ```
    ///
    /// Fails when: the read timeout passes (between two chunks), the
    /// connection is closed or reset, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn read_all(c: &mut Conn) -> ScriptResult<Blob> {
        c.read_all().map_err(fail("read_all"))
    }

    /// Half-close: sends FIN so the peer reads end of stream; this side can
    /// still read the peer's answer. Calling it again does nothing.
    ///
    /// ```rhai
    /// c.send("request"); c.shutdown(); print(c.recv());
    /// ```
    ///
    /// Fails when: the connection is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn shutdown(c: &mut Conn) -> ScriptResult<()> {
        c.shutdown().map_err(fail("shutdown"))
    }

    /// Closes the connection both ways; a read or send blocked in another
    /// task returns with an error. Closing twice does nothing.
    ///
    /// ```rhai
    /// c.close();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn close_conn(c: &mut Conn) {
        c.close();
    }

    /// Whether `close()` was called on this connection.
    ///
    /// ```rhai
    /// c.closed   // false
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "closed", pure)]
    pub fn conn_closed(c: &mut Conn) -> bool {
        c.is_closed()
    }

    /// What a TLS connection agreed on: `version` ("TLSv1.3"), `cipher`,
    /// `alpn`, `sni`, and the peer's certificate: `peer_subject`,
    /// `peer_issuer`, `peer_not_before`, `peer_not_after`, `peer_names`
    /// (its DNS names and IPs), `peer_fingerprint` (SHA-256). `()` for a
    /// plain connection; peer fields are `()` when the peer sent no
    /// certificate (a client, usually).
    ///
    /// ```rhai
    /// let t = c.tls_info(); print(`${t.version} ${t.cipher}, valid until ${t.peer_not_after}`);
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure)]
    pub fn tls_info(c: &mut Conn) -> Dynamic {
        c.tls()
            .map_or(Dynamic::UNIT, |s| crate::net::tls::info_map(s).into())
    }

    /// The kernel's view of the connection (Linux TCP_INFO): `state`
    /// (ESTABLISHED, FIN_WAIT2, CLOSE_WAIT…), `rtt_us`, `rttvar_us`,
    /// `retransmits`, `total_retrans`, `snd_cwnd`, `unacked`, bytes and
    /// segment counters, `local`, `peer`.
    ///
    /// ```rhai
    /// let i = c.info(); print(`${i.state} rtt ${i.rtt_us} µs`);
    /// ```
    ///
    /// Fails when: the connection is closed, or is a Unix socket (which has
    /// no TCP state).
    #[rhai_fn(return_raw, pure)]
    pub fn info(c: &mut Conn) -> ScriptResult<Map> {
        c.info().map_err(fail("info"))
    }

    /// The timeout in milliseconds of reads, and of sends the peer takes no
    /// data for; 0 means they wait as long as it takes (Ctrl-C still stops
    /// them).
    ///
    /// ```rhai
    /// c.timeout   // 0
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "timeout", pure)]
    pub fn get_timeout(c: &mut Conn) -> i64 {
        c.timeout().map_or(0, |d| d.as_millis() as i64)
    }

    /// Sets the timeout in milliseconds (0 = none) of every read, and of a
    /// send while the peer takes no data. A read that times out fails with a
    /// message saying so, and the connection stays usable (a send that times
    /// out says how much of its data went out).
    ///
    /// ```rhai
    /// c.timeout = 2000;
    /// ```
    ///
    /// Fails when: `ms` is negative.
    #[rhai_fn(set = "timeout", return_raw)]
    pub fn set_timeout_property(c: &mut Conn, ms: i64) -> ScriptResult<()> {
        set_timeout(c, ms)
    }

    /// Catches `c.timeout = 1.5` and other values that are not whole
    /// milliseconds, to say what the property takes.
    ///
    /// ```rhai
    /// c.timeout = 1500;   // 1.5 s
    /// ```
    ///
    /// Fails when: always: the value is not a whole number of milliseconds.
    #[rhai_fn(set = "timeout", return_raw)]
    pub fn set_timeout_wrong_type(_c: &mut Conn, ms: Dynamic) -> ScriptResult<()> {
        let hint = ms.as_float().map_or(String::new(), |f| {
            format!(" ({f} s is {})", (f * 1000.0).round())
        });
        let err = wrong_type("a whole number of milliseconds", &ms);
        Err(fail("set_timeout")(Error::invalid(format!("{err}{hint}"))))
    }

    /// Sets the read timeout in milliseconds (0 = none), like `c.timeout = ms`.
    ///
    /// ```rhai
    /// c.set_timeout(2000);
    /// ```
    ///
    /// Fails when: `ms` is negative.
    #[rhai_fn(return_raw)]
    pub fn set_timeout(c: &mut Conn, ms: i64) -> ScriptResult<()> {
        let timeout = wait_limit(ms).map_err(fail("set_timeout"))?;
        c.set_timeout(timeout);
        Ok(())
    }

    /// The local end of a connection, as `"ip:port"`; for a Unix socket its
    /// path, or `"unix:(pid N)"` for an unnamed end (N is its process).
    ///
    /// ```rhai
    /// c.local
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "local", pure)]
    pub fn local(c: &mut Conn) -> String {
        c.local().to_string()
    }

    /// The remote end of a connection, as `"ip:port"`; for a Unix socket its
    /// path, or `"unix:(pid N)"` for an unnamed end (N is its process).
    ///
    /// ```rhai
    /// c.peer
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "peer", pure)]
    pub fn peer(c: &mut Conn) -> String {
        c.peer().to_string()
    }

    /// How a connection prints: `Conn(127.0.0.1:50000 → 127.0.0.1:9000)`.
    ///
    /// ```rhai
    /// print(c)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn conn_to_string(c: &mut Conn) -> String {
        format!("{c:?}")
    }

    // Per-call timeouts: `ms` (0 = no limit) or `#{timeout: ms}`, in place
    // of `c.timeout` for this one call.

    /// `recv()` waiting at most `ms` milliseconds (0: no limit), whatever
    /// `c.timeout` says.
    ///
    /// ```rhai
    /// let reply = c.recv(500);
    /// ```
    ///
    /// Fails when: `ms` is negative, nothing arrives in time (the connection
    /// stays usable), or as `recv()`.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_ms(c: &mut Conn, ms: i64) -> ScriptResult<String> {
        wait_limit(ms)
            .and_then(|t| c.recv_within(t))
            .map_err(fail("recv"))
    }

    /// `recv()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let reply = c.recv(#{timeout: 500});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, nothing arrives in
    /// time, or as `recv()`.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_options(c: &mut Conn, options: Map) -> ScriptResult<String> {
        wait_option(&options, c.timeout())
            .and_then(|t| c.recv_within(t))
            .map_err(fail("recv"))
    }

    /// `recv_line()` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let line = c.recv_line(500);
    /// ```
    ///
    /// Fails when: `ms` is negative, no whole line arrives in time (what did
    /// arrive is kept for the next read), or as `recv_line()`.
    #[rhai_fn(return_raw, pure, name = "recv_line")]
    pub fn recv_line_ms(c: &mut Conn, ms: i64) -> ScriptResult<Dynamic> {
        wait_limit(ms)
            .and_then(|t| c.recv_line_within(t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_line"))
    }

    /// `recv_line()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let line = c.recv_line(#{timeout: 500});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, no whole line
    /// arrives in time, or as `recv_line()`.
    #[rhai_fn(return_raw, pure, name = "recv_line")]
    pub fn recv_line_options(c: &mut Conn, options: Map) -> ScriptResult<Dynamic> {
        wait_option(&options, c.timeout())
            .and_then(|t| c.recv_line_within(t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_line"))
    }

    /// `recv_until(delim)` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let headers = c.recv_until("\r\n\r\n", 2000);
    /// ```
    ///
    /// Fails when: `ms` is negative, the delimiter does not arrive in time
    /// (what did is kept for the next read), or as `recv_until(delim)`.
    #[rhai_fn(return_raw, pure, name = "recv_until")]
    pub fn recv_until_ms(c: &mut Conn, delim: &str, ms: i64) -> ScriptResult<Dynamic> {
        wait_limit(ms)
            .and_then(|t| c.recv_until_within(delim, t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_until"))
    }

    /// `recv_until(delim)` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let headers = c.recv_until("\r\n\r\n", #{timeout: 2000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the delimiter does
    /// not arrive in time, or as `recv_until(delim)`.
    #[rhai_fn(return_raw, pure, name = "recv_until")]
    pub fn recv_until_options(c: &mut Conn, delim: &str, options: Map) -> ScriptResult<Dynamic> {
        wait_option(&options, c.timeout())
            .and_then(|t| c.recv_until_within(delim, t))
            .map(|l| l.map_or(Dynamic::UNIT, Dynamic::from))
            .map_err(fail("recv_until"))
    }

    /// `read(n)` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let header = c.read(4, 1000);
    /// ```
    ///
    /// Fails when: `n` or `ms` is negative, the `n` bytes do not arrive in
    /// time (those that did are kept for the next read), or as `read(n)`.
    #[rhai_fn(return_raw, pure, name = "read")]
    pub fn read_ms(c: &mut Conn, n: i64, ms: i64) -> ScriptResult<Blob> {
        byte_count(n)
            .and_then(|n| c.read_within(n, wait_limit(ms)?))
            .map_err(fail("read"))
    }

    /// `read(n)` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let header = c.read(4, #{timeout: 1000});
    /// ```
    ///
    /// Fails when: `n` is negative, an option is unknown or not a number, the
    /// bytes do not arrive in time, or as `read(n)`.
    #[rhai_fn(return_raw, pure, name = "read")]
    pub fn read_options(c: &mut Conn, n: i64, options: Map) -> ScriptResult<Blob> {
        byte_count(n)
            .and_then(|n| c.read_within(n, wait_option(&options, c.timeout())?))
            .map_err(fail("read"))
    }

    /// `read_all()` with at most `ms` milliseconds between two chunks (0: no
    /// limit).
    ///
    /// ```rhai
    /// c.shutdown(); let reply = c.read_all(5000);
    /// ```
    ///
    /// Fails when: `ms` is negative, the peer sends nothing for that long
    /// without closing, or as `read_all()`.
    #[rhai_fn(return_raw, pure, name = "read_all")]
    pub fn read_all_ms(c: &mut Conn, ms: i64) -> ScriptResult<Blob> {
        wait_limit(ms)
            .and_then(|t| c.read_all_within(t))
            .map_err(fail("read_all"))
    }

    /// `read_all()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let reply = c.read_all(#{timeout: 5000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the peer sends
    /// nothing for that long without closing, or as `read_all()`.
    #[rhai_fn(return_raw, pure, name = "read_all")]
    pub fn read_all_options(c: &mut Conn, options: Map) -> ScriptResult<Blob> {
        wait_option(&options, c.timeout())
            .and_then(|t| c.read_all_within(t))
            .map_err(fail("read_all"))
    }
}
