//! WebSocket (RFC 6455) on tokio-tungstenite: `ws_connect(url[, opts])`
//! and the handle a script talks through, the same handle a server
//! route's `|ws| …` closure gets.
//!
//! - [`url`] — `ws://` and `wss://` URLs, read strictly.
//! - [`client`] — `ws_connect`: options, TCP or proxy, TLS, handshake.
//! - [`socket`] — the handle: a reading task per connection (control
//!   frames answered, fragments reassembled), sends, ping, close.
//! - `interact` — `ws.interact()`, websocat's terminal mode.
//! - [`events`] — the event shape's connection loop: handlers called
//!   where the message was read, their sends written when they return.
//! - [`server`] — `http_serve`'s WebSocket routes: the upgrade, then a
//!   closure per connection or the event handlers.

use std::time::Duration;

use rhai::plugin::*;
use rhai::{Blob, Map};
use tokio_tungstenite::tungstenite::Message;

use crate::error::{Error, Result};
use crate::net::options::{self, Options};

pub mod client;
pub mod events;
mod interact;
pub mod server;
pub mod socket;
pub mod url;

pub use server::ServerRoute;
pub use socket::{About, Arrival, WebSocket};
pub use url::WsUrl;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<WebSocket>("WebSocket");
}

/// `ws_connect(url, options)`: everything checked, then the connection.
pub fn connect(url: &str, options: &Map) -> Result<WebSocket> {
    let url = WsUrl::parse(url)?;
    let settings = client::Settings::read(&url, options)?;
    client::connect(&url, settings)
}

/// A received message as a Rhai value: text as a string, binary as a blob.
pub fn arrival_value(arrival: Option<Arrival>) -> Dynamic {
    match arrival {
        Some(Arrival::Text(text)) => Dynamic::from(text),
        Some(Arrival::Binary(bytes)) => Dynamic::from_blob(bytes),
        None => Dynamic::UNIT,
    }
}

/// `recv`'s and `ping`'s optional wait, by the one timeout rule.
fn wait(ms: i64) -> Result<Option<Duration>> {
    options::timeout(ms)
}

/// `close`'s options map: `timeout`, how long to wait for the peer's close.
fn close_wait(map: &Map) -> Result<Duration> {
    Ok(Options::new(map, &["timeout"])?
        .timeout("timeout")?
        .map_or(socket::DEFAULT_CLOSE_WAIT, |t| {
            t.unwrap_or(Duration::from_secs(24 * 3600))
        }))
}

fn close_code(code: i64) -> Result<u16> {
    u16::try_from(code).map_err(|_| {
        Error::invalid(format!(
            "{code} is not a close code (1000 normal, 3000–4999 for applications)"
        ))
    })
}

#[export_module(manifest)]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail, wrong_type};

    /// Opens a WebSocket to a `ws://` or `wss://` URL, like `websocat URL`.
    /// Options: `headers` (a map sent with the handshake), `protocols`
    /// (subprotocols to offer; the one the server took is `.protocol`),
    /// `tls` (for `wss://`: `#{ca: "ca.pem"}`, `#{pin: "…"}`,
    /// `#{insecure: true}`, `#{sni: "name"}`, as on `connect`), `proxy`
    /// (`"socks5://…"`, `"socks5h://…"`, `"http://…"`), `timeout` (ms for
    /// TCP, TLS and the handshake together; 10000 by default), `max_message`
    /// (bytes; 64 MiB by default).
    ///
    /// ```rhai
    /// let ws = ws_connect("ws://127.0.0.1:8765/chat", #{protocols: ["chat"]});
    /// ws.send("hello"); print(ws.recv());
    /// ```
    ///
    /// Fails when: the URL is not a strict `ws://`/`wss://` URL, an option is
    /// unknown or of the wrong type (all before anything is sent); the
    /// connection is refused or times out; TLS fails (an untrusted
    /// certificate); the server answers anything but `101 Switching
    /// Protocols`; permission is denied.
    #[rhai_fn(return_raw)]
    pub fn ws_connect(url: &str) -> ScriptResult<WebSocket> {
        super::connect(url, &Map::new()).map_err(fail("ws_connect"))
    }

    /// `ws_connect` with options (see `ws_connect(url)`).
    ///
    /// ```rhai
    /// let ws = ws_connect("wss://127.0.0.1:8443/", #{tls: #{ca: "cert.pem"}, headers: #{"x-token": "abc"}});
    /// ```
    ///
    /// Fails when: as `ws_connect(url)`; an option is unknown or of the
    /// wrong type; `tls` is given for a `ws://` URL.
    #[rhai_fn(return_raw, name = "ws_connect")]
    pub fn ws_connect_with(url: &str, options: Map) -> ScriptResult<WebSocket> {
        super::connect(url, &options).map_err(fail("ws_connect"))
    }

    /// Sends a text message.
    ///
    /// ```rhai
    /// ws.send("hello");
    /// ```
    ///
    /// Fails when: the WebSocket is closed (by either side), or the
    /// connection fails.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_text(ws: &mut WebSocket, text: &str) -> ScriptResult<()> {
        ws.send(Message::text(text)).map_err(fail("send"))
    }

    /// Sends a binary message.
    ///
    /// ```rhai
    /// ws.send(from_hex("00ff"));
    /// ```
    ///
    /// Fails when: the WebSocket is closed (by either side), or the
    /// connection fails.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_blob(ws: &mut WebSocket, data: Blob) -> ScriptResult<()> {
        ws.send(Message::binary(data)).map_err(fail("send"))
    }

    /// Refuses what is neither text nor a blob.
    ///
    /// ```rhai
    /// ws.send("text, or a blob")
    /// ```
    ///
    /// Fails when: always: the data is not a string or a blob.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn send_wrong_type(_ws: &mut WebSocket, data: Dynamic) -> ScriptResult<()> {
        Err(fail("send")(wrong_type("a string or a blob", &data)))
    }

    /// The next message: a string for a text message, a blob for a binary
    /// one (fragments already joined); `()` once the WebSocket has closed,
    /// and then `.close_code` and `.close_reason` say how. Waits without
    /// limit (Ctrl-C stops it).
    ///
    /// ```rhai
    /// let m = ws.recv();
    /// if m == () { print(`closed: ${ws.close_code}`) }
    /// ```
    ///
    /// Fails when: the peer broke the protocol (a bad frame, invalid UTF-8
    /// in a text message, a message over `max_message`), or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn recv(ws: &mut WebSocket) -> ScriptResult<Dynamic> {
        ws.recv(None).map(arrival_value).map_err(fail("recv"))
    }

    /// `recv()` waiting at most `ms` milliseconds (0: no limit).
    ///
    /// ```rhai
    /// let m = ws.recv(500);
    /// ```
    ///
    /// Fails when: nothing arrives within `ms` (kind `timeout`; the
    /// WebSocket stays open), `ms` is negative, the peer broke the
    /// protocol, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn recv_ms(ws: &mut WebSocket, ms: i64) -> ScriptResult<Dynamic> {
        wait(ms)
            .and_then(|limit| ws.recv(limit))
            .map(arrival_value)
            .map_err(fail("recv"))
    }

    /// Sends a ping and waits for the pong (up to 10 s); the round trip in
    /// milliseconds.
    ///
    /// ```rhai
    /// print(ws.ping());
    /// ```
    ///
    /// Fails when: no pong comes within 10 s, the WebSocket is closed, or
    /// Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn ping(ws: &mut WebSocket) -> ScriptResult<f64> {
        ws.ping(socket::DEFAULT_PING_WAIT).map_err(fail("ping"))
    }

    /// `ping()` waiting at most `ms` milliseconds for the pong.
    ///
    /// ```rhai
    /// print(ws.ping(500));
    /// ```
    ///
    /// Fails when: no pong comes within `ms`, `ms` is negative, the
    /// WebSocket is closed, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "ping")]
    pub fn ping_ms(ws: &mut WebSocket, ms: i64) -> ScriptResult<f64> {
        wait(ms)
            .and_then(|limit| ws.ping(limit.unwrap_or(Duration::from_secs(24 * 3600))))
            .map_err(fail("ping"))
    }

    /// Closes the WebSocket with code 1000 (normal): sends the close frame,
    /// waits up to 5 s for the peer's, then lets the connection go. Closing
    /// a closed WebSocket does nothing.
    ///
    /// ```rhai
    /// ws.close();
    /// ```
    ///
    /// Fails when: Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn close(ws: &mut WebSocket) -> ScriptResult<()> {
        ws.close(1000, "", socket::DEFAULT_CLOSE_WAIT)
            .map_err(fail("close"))
    }

    /// Closes with a close code (1000–4999; 3000–4999 are for applications).
    ///
    /// ```rhai
    /// ws.close(4000);
    /// ```
    ///
    /// Fails when: the code is one a WebSocket may not send (below 1000,
    /// 1005, 1006, 1015, above 4999), or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "close")]
    pub fn close_with_code(ws: &mut WebSocket, code: i64) -> ScriptResult<()> {
        close_code(code)
            .and_then(|code| ws.close(code, "", socket::DEFAULT_CLOSE_WAIT))
            .map_err(fail("close"))
    }

    /// Closes with a close code and a reason (at most 123 bytes).
    ///
    /// ```rhai
    /// ws.close(4001, "bye");
    /// ```
    ///
    /// Fails when: the code may not be sent, the reason is over 123 bytes,
    /// or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "close")]
    pub fn close_with_reason(ws: &mut WebSocket, code: i64, reason: &str) -> ScriptResult<()> {
        close_code(code)
            .and_then(|code| ws.close(code, reason, socket::DEFAULT_CLOSE_WAIT))
            .map_err(fail("close"))
    }

    /// Closes with a code, a reason and options: `timeout`, how long to wait
    /// for the peer's close frame (ms; 0: no limit).
    ///
    /// ```rhai
    /// ws.close(1001, "going away", #{timeout: 500});
    /// ```
    ///
    /// Fails when: the code may not be sent, the reason is over 123 bytes,
    /// an option is unknown, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "close")]
    pub fn close_with_options(
        ws: &mut WebSocket,
        code: i64,
        reason: &str,
        options: Map,
    ) -> ScriptResult<()> {
        close_code(code)
            .and_then(|code| Ok((code, close_wait(&options)?)))
            .and_then(|(code, limit)| ws.close(code, reason, limit))
            .map_err(fail("close"))
    }

    /// Joins the WebSocket to the terminal, like websocat: each line typed is
    /// sent as a text message, each message received is printed on a line
    /// (control characters escaped on a terminal). Ctrl-D closes (1000);
    /// the peer closing returns; Ctrl-C returns with the WebSocket open.
    /// With stdin a pipe, each of its lines is a message.
    ///
    /// ```rhai
    /// ws_connect("ws://127.0.0.1:8765/").interact()
    /// ```
    ///
    /// Fails when: the WebSocket is closed, another `interact()` holds
    /// stdin, the connection fails, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn interact(ws: &mut WebSocket) -> ScriptResult<()> {
        super::interact::interact(ws).map_err(fail("interact"))
    }

    /// The close code once the WebSocket has closed (1000 normal, 1006 when
    /// the connection ended without a close frame), else `()`.
    ///
    /// ```rhai
    /// ws.close_code
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "close_code", pure)]
    pub fn get_close_code(ws: &mut WebSocket) -> Dynamic {
        ws.close_code()
            .map_or(Dynamic::UNIT, |c| Dynamic::from(i64::from(c)))
    }

    /// The reason the peer gave with its close frame (`""` if none), once
    /// closed, else `()`.
    ///
    /// ```rhai
    /// ws.close_reason
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "close_reason", pure)]
    pub fn get_close_reason(ws: &mut WebSocket) -> Dynamic {
        ws.close_reason().map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// The subprotocol the two sides agreed on, or `()`.
    ///
    /// ```rhai
    /// ws.protocol
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "protocol", pure)]
    pub fn get_protocol(ws: &mut WebSocket) -> Dynamic {
        ws.about()
            .protocol
            .clone()
            .map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// The URL connected to (on a server, the path the client asked for).
    ///
    /// ```rhai
    /// ws.url
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "url", pure)]
    pub fn get_url(ws: &mut WebSocket) -> String {
        ws.about().url.clone()
    }

    /// The other end's address, `"ip:port"`.
    ///
    /// ```rhai
    /// ws.peer
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "peer", pure)]
    pub fn get_peer(ws: &mut WebSocket) -> String {
        ws.about().peer.clone()
    }

    /// How a WebSocket prints: `WebSocket(ws://127.0.0.1:8765/, open)`.
    ///
    /// ```rhai
    /// print(ws)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn ws_to_string(ws: &mut WebSocket) -> String {
        let state = match ws.close_code() {
            None => "open".to_string(),
            Some(code) => format!("closed {code}"),
        };
        format!("WebSocket({}, {state})", ws.about().url)
    }
}
