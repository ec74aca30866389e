//! The closure shape of `serve`: one OS thread per connection, running the
//! script's closure with a [`Conn`], as a thread-per-connection server does.
//!
//! Rhai cannot pause a closure part-way, so a closure that blocks needs a
//! thread for its whole life. An idle connection costs that thread (its
//! stack is reserved, and mostly untouched, so not resident) and the
//! socket's descriptor. The thread reads its connection with plain blocking `recv`s
//! ([`Conn::own_reads`]), so a message costs one wake-up and no `poll`, as
//! in the baseline; stopping the server shuts the reading side down to wake
//! them ([`Conn::wake_owner`]).

use std::sync::Arc;

use rhai::Dynamic;

use super::{Active, Server, ServerState, Settings};
use crate::error::{Error, Kind, Result, describe, kind_of};
use crate::net::tcp::{ACCEPT_HANDSHAKE_TIMEOUT, Bind, Conn};
use crate::runtime::{self, CancellationToken, closure::Callback};

/// Binds `bind` and serves each connection with `handler` on its own thread.
pub fn start(bind: &Bind, settings: &Settings, handler: Callback) -> Result<Server> {
    let tls = settings.tls.clone();
    Server::start(
        bind,
        settings,
        runtime::child_token(),
        None,
        move |state, stream, active| {
            let session = tls.as_ref().map(|tls| tls.session()).transpose();
            let conn = session.and_then(|session| {
                let stream = stream
                    .into_stream()
                    .map_err(|e| Error::io("taking over the socket", None, e))?;
                Conn::over(stream, session)
            });
            let started = match conn {
                Ok(conn) if conn.tls().is_some() => {
                    let handshake = handshake(state.clone(), conn, handler.clone(), active);
                    runtime::handle().spawn(handshake);
                    Ok(())
                }
                Ok(conn) => start_connection(state, conn, &handler, active),
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                state.announce.error(&e.to_string());
            }
        },
    )
}

/// A TLS connection's handshake, as a task on the runtime so a client that
/// stalls costs neither the accept loop nor a thread; the closure's thread
/// starts once it has finished.
async fn handshake(state: Arc<ServerState>, conn: Conn, handler: Callback, mut active: Active) {
    let result = tokio::select! {
        biased;
        _ = state.life.token().cancelled() => {
            conn.close();
            return;
        }
        result = conn.handshake_on_runtime(ACCEPT_HANDSHAKE_TIMEOUT) => result,
    };
    active.handshake.take();
    let started = result.and_then(|()| start_connection(&state, conn.clone(), &handler, active));
    if let Err(e) = started {
        conn.close();
        state.announce.error(&format!("{}: {e}", conn.peer()));
    }
}

/// Did this error come from the server being stopped (an interrupted wait,
/// or the connection stop() closed)?
fn stopped_by_it(err: &rhai::EvalAltResult) -> bool {
    matches!(kind_of(err), Kind::Interrupted | Kind::Closed)
}

/// Starts the thread that serves one connection (after its TLS handshake,
/// on a TLS server) with the closure.
fn start_connection(
    state: &Arc<ServerState>,
    conn: Conn,
    handler: &Callback,
    active: Active,
) -> Result<()> {
    let peer = conn.peer().clone();
    let token = state.life.token().child_token();
    let handler = handler.clone();
    let handler_conn = conn.clone();
    let started =
        runtime::spawn_rhai_thread(format!("netsh-conn-{peer}"), token.clone(), move || {
            let announce = active.state.announce.clone();
            // The peer sees end of stream when the closure is done with it
            // (even if it panicked).
            let closing = CloseOnDrop(handler_conn.clone());
            // The closure's reads sleep in `recv`, which no cancellation
            // reaches: stopping the server wakes them instead.
            match handler_conn.own_reads() {
                Ok(true) => {
                    let wake = wake_when_cancelled(token.clone(), handler_conn.clone());
                    runtime::handle().spawn(wake);
                }
                Ok(false) => {}
                Err(e) => return announce.error(&format!("{peer}: {e}")),
            }
            announce.event(&format!("{peer} connected"));
            let result = handler.call1(Dynamic::from(handler_conn.clone()));
            drop(closing);
            match result {
                // What stop() interrupted is no error to report; a failure
                // of the closure's own that came first still is.
                Err(err) if token.is_cancelled() && stopped_by_it(&err) => {}
                Err(err) => {
                    announce.error(&format!("{peer}: {}", describe(&err, handler.source())))
                }
                Ok(_) => announce.event(&format!("{peer} closed")),
            }
            drop(active);
        });
    if started.is_err() {
        conn.close();
    }
    started.map(drop)
}

/// Wakes `conn`'s owner when `token` is cancelled (the server stops); ends
/// when the connection closes first.
async fn wake_when_cancelled(token: CancellationToken, conn: Conn) {
    tokio::select! {
        _ = token.cancelled() => conn.wake_owner(),
        _ = conn.until_closed() => {}
    }
}

/// Closes the connection when dropped.
struct CloseOnDrop(Conn);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}
