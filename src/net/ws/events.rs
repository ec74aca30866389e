//! The event shape of a WebSocket route: one task per connection on the
//! server's runtime reads the socket, calls the script's handlers right
//! there when a message is whole, and writes what they sent when they
//! return, all in one flush.
//!
//! One task does it all, as `serve`'s event shape does for TCP: a message
//! costs no hand-off between tasks or threads, and a connection waiting
//! for its peer holds no thread. Handlers may not wait for the network
//! (`ws.send` only queues; `ws.close` queues the close frame, and this
//! task then waits up to 5 s for the peer's). A send while a handler runs
//! wakes nothing (this task writes it when the handler returns); a send
//! from elsewhere at other times (a task holding the handle) wakes this
//! task through a channel.

use std::sync::Arc;

use futures_util::{StreamExt, stream::SplitStream};
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};

use super::socket::{Arrival, DEFAULT_CLOSE_WAIT, Sorted, Stream, WebSocket};
use crate::runtime::CancellationToken;

/// What a route does with a connection's events. Each returns whether the
/// connection goes on (a handler that threw has queued a close).
pub trait Events: Send + Sync + 'static {
    fn open(&self, ws: &WebSocket) -> bool;
    fn message(&self, ws: &WebSocket, message: Arrival) -> bool;
    fn close(&self, ws: &WebSocket);
}

/// One connection, from `open` to `close`.
pub async fn run(
    ws: WebSocket,
    mut reader: SplitStream<Stream>,
    mut queued: mpsc::UnboundedReceiver<Message>,
    events: Arc<dyn Events>,
    token: CancellationToken,
) {
    // Set once a close frame of ours is written: the peer then has this
    // long to answer it.
    let mut closing: Option<Instant> = None;
    let mut going = {
        let _handling = ws.handling(&mut queued);
        events.open(&ws)
    };
    // The close code a protocol failure of the peer's is answered with.
    let mut failed = None;
    loop {
        match ws.write_queued(&mut queued).await {
            Ok(true) if closing.is_none() => closing = Some(Instant::now() + DEFAULT_CLOSE_WAIT),
            Ok(_) => {}
            Err(_) => break,
        }
        if !going && closing.is_none() {
            // A handler failed without a close written: close for it.
            let _ = ws.close(1011, "the handler failed", DEFAULT_CLOSE_WAIT);
            continue;
        }
        let deadline = async move {
            match closing {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = token.cancelled(), if closing.is_none() => {
                let frame = CloseFrame { code: 1001.into(), reason: "the server is stopping".into() };
                let _ = ws.send(Message::Close(Some(frame)));
            }
            _ = deadline => break,
            // Sends from elsewhere: written at the top of the loop.
            Some(message) = queued.recv() => {
                let closes = matches!(message, Message::Close(_));
                if ws.write_one(message).await.is_err() {
                    break;
                }
                if closes && closing.is_none() {
                    closing = Some(Instant::now() + DEFAULT_CLOSE_WAIT);
                }
            }
            next = reader.next() => match next {
                None => break,
                Some(next) => match ws.sort(next) {
                    Sorted::Data(message) if going && closing.is_none() => {
                        let _handling = ws.handling(&mut queued);
                        going = events.message(&ws, message);
                    }
                    Sorted::Data(_) | Sorted::Control => {}
                    Sorted::Failed(code) => {
                        failed = code;
                        break;
                    }
                },
            },
        }
    }
    match failed {
        Some(code) => ws.fail(reader, code).await,
        None => ws.finish().await,
    }
    events.close(&ws);
}
