//! The closure shape of `serve`: one OS thread per connection, running the
//! script's closure with a [`Conn`], as a thread-per-connection server does.
//!
//! Rhai cannot pause a closure part-way, so a closure that blocks needs a
//! thread for its whole life. An idle connection costs that thread (its
//! stack is reserved, and mostly untouched, so not resident) and two
//! descriptors; the connection's reads and sends wait on the thread itself
//! (see `tcp::conn`), so a message costs one wake-up, as in the baseline.

use std::{net::SocketAddr, sync::Arc};

use rhai::Dynamic;
use tokio::net::TcpStream;

use super::{Active, Server, ServerState, Settings};
use crate::error::{Result, describe};
use crate::net::tcp::Conn;
use crate::runtime::{self, closure::Callback};

/// Binds `bind` and serves each connection with `handler` on its own thread.
pub fn start(bind: SocketAddr, settings: &Settings, handler: Callback) -> Result<Server> {
    Server::start(
        bind,
        settings,
        runtime::child_token(),
        None,
        move |state, stream, active| {
            if let Err(e) = start_connection(state, stream, &handler, active) {
                state.announce.error(&e.to_string());
            }
        },
    )
}

/// Starts the thread that serves one connection.
fn start_connection(
    state: &Arc<ServerState>,
    stream: TcpStream,
    handler: &Callback,
    active: Active,
) -> Result<()> {
    let conn = Conn::new(stream)?;
    let peer = conn.peer();
    let token = state.token.child_token();
    let handler = handler.clone();
    let handler_conn = conn.clone();
    let started =
        runtime::spawn_rhai_thread(format!("netsh-conn-{peer}"), token.clone(), move || {
            let announce = active.state.announce.clone();
            announce.event(&format!("{peer} connected"));
            let result = handler.call(vec![Dynamic::from(handler_conn.clone())]);
            // The peer sees end of stream when the closure is done with it.
            handler_conn.close();
            match result {
                Err(_) if token.is_cancelled() => {}
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
