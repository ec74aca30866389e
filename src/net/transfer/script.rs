//! `send_file`, `recv_file` and `serve_files` as Rhai functions, one per
//! overload, and the maps their results become.

use std::path::Path;

use rhai::Map;
use rhai::plugin::*;

use super::server::{FileServer, serve};
use super::settings::{recv_options, send_options, serve_options};
use super::{ReceiveOptions, Received, Sent, receive_once, receive_over, send_over, send_to};
use crate::error::{Error, Result};
use crate::net::{
    addr, progress,
    tcp::{self, Conn, Listener},
};

/// The Rhai functions of this capability but `FileServer`'s.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
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

#[export_module(manifest)]
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
}
