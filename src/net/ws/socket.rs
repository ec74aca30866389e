//! The WebSocket handle, the same for `ws_connect`'s client and a server
//! route's `|ws| …`: `send`, `recv`, `ping`, `close`.
//!
//! A task on the shared runtime reads the socket for the whole life of the
//! connection, so control frames are answered whether or not the script is
//! in `recv` (tungstenite queues the pong or the close reply on reading a
//! ping or close and writes it on its next read, which this loop makes at
//! once). Data messages, already reassembled from their fragments, wait in
//! a short queue for `recv`; when the script does not read, the queue
//! fills, the task stops reading and TCP's window pushes back on the peer.
//! Sends are written by the calling thread itself (`runtime::block_on` on
//! the sink), so a send returns once the kernel has the frame and a failure
//! is the send's own error; only an event handler, which must not block,
//! queues its sends instead (`outbox`), written when it returns.
//!
//! A route's closure on plain TCP has its connection on a runtime of its
//! own (`runtime::Own`) instead, which every wait on the handle drives:
//! the waiting thread is the one the kernel wakes, with no hand-off from
//! the server's workers (when nobody waits, a keeper drives it, so pings
//! are still answered). A protocol failure of the peer's (a message too big, a bad
//! frame) is answered with its close code (RFC 6455 §7.4.1) before the
//! connection goes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, oneshot},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::error::{Error, Result};
use crate::runtime::{self, CancellationToken};

/// What a WebSocket runs over: TCP, TLS over TCP, or hyper's upgraded
/// connection on the server side.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A WebSocket over any of those.
pub type Stream = WebSocketStream<Box<dyn Io>>;

/// How many received messages wait for `recv` before reading pauses.
const QUEUE: usize = 64;

/// How long `close()` waits for the peer's close frame, and `ping()` for
/// its pong, unless told otherwise.
pub const DEFAULT_CLOSE_WAIT: Duration = Duration::from_secs(5);
pub const DEFAULT_PING_WAIT: Duration = Duration::from_secs(10);

/// The close code that says the connection ended without a close frame
/// (RFC 6455 §7.1.5; never sent on the wire).
const ABNORMAL: u16 = 1006;
/// The code a close frame without a status stands for (§7.1.5).
const NO_STATUS: u16 = 1005;

/// How much tungstenite reads at a time. Its default, 128 KiB, is zeroed
/// before every read (`FrameCodec::read_in` resizes the buffer with
/// zeros), including the read that finds nothing: with 100 connections
/// echoing small messages, 39% of the server's time went to that memset.
const READ_CHUNK: usize = 16 * 1024;

/// tungstenite's settings for a WebSocket taking messages of up to `max`
/// bytes.
pub fn config(max: usize) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// A received data message.
#[derive(Debug)]
pub enum Arrival {
    Text(String),
    Binary(Vec<u8>),
}

/// How the connection ended, once it has.
#[derive(Default)]
struct Ending {
    code: Option<u16>,
    reason: String,
    /// A protocol failure (a bad frame, a message over the size limit)
    /// that the next `recv` reports once.
    failure: Option<Error>,
}

/// What the reading task and the handle share.
struct Shared {
    ending: Mutex<Ending>,
    /// Who waits for a pong (`ping()`).
    pong: Mutex<Option<oneshot::Sender<()>>>,
    /// Cancelled when the reading task ends: the peer closed, or failed.
    ended: CancellationToken,
    /// Cancelled when the reading task is done with the socket (after a
    /// failure, once the peer has had its time to close).
    done: CancellationToken,
}

/// The writing half, shared by the handle and the reading task (which
/// takes it to answer a protocol failure with a close frame).
type Sink = Arc<tokio::sync::Mutex<Option<SplitSink<Stream, Message>>>>;

struct Inner {
    sink: Sink,
    arrivals: tokio::sync::Mutex<mpsc::Receiver<Arrival>>,
    shared: Arc<Shared>,
    /// Ends the reading task when the last copy of the handle goes.
    stop: CancellationToken,
    /// The event shape's sends, written in order by the connection's task.
    outbox: Mutex<Option<Outbox>>,
    about: About,
    /// The connection's own runtime, when the thread waiting on it drives
    /// it ([`WebSocket::start_own`]); dropped last, after the halves.
    own: Option<runtime::Own>,
}

/// Where the event shape's sends wait for the connection's task
/// (`super::events`), which writes them when its handler returns.
struct Outbox {
    /// Sends while no handler of the connection runs (from a task holding
    /// the handle): they wake the connection's task.
    elsewhere: mpsc::UnboundedSender<Message>,
    /// Sends while a handler runs, which the task writes as soon as the
    /// handler returns: no wake-up. (Waking the running task made tokio
    /// hand it to an idle worker, one more thread woken a message: 1.9
    /// context switches a message instead of 1, as `serve`'s `in_handler`.)
    here: Vec<Message>,
    /// A handler of this connection is running.
    handling: bool,
}

/// Marks a handler of the connection as running until dropped.
pub(super) struct Handling<'a>(&'a WebSocket);

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        if let Some(outbox) = lock(&self.0.0.outbox).as_mut() {
            outbox.handling = false;
        }
    }
}

impl Drop for Inner {
    /// The last handle gone with the connection still open: say "going
    /// away" (1001) rather than vanish, then let it go.
    fn drop(&mut self) {
        // Asked before the reading task is stopped, which marks the end.
        let open = !self.shared.ended.is_cancelled();
        self.stop.cancel();
        let sink = self.sink.try_lock().ok().and_then(|mut slot| slot.take());
        if let (true, Some(mut sink)) = (open, sink) {
            let away = async move {
                let frame = CloseFrame {
                    code: CloseCode::Away,
                    reason: "".into(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    sink.send(Message::Close(Some(frame))),
                )
                .await;
            };
            // A connection on its own runtime is written here, on that
            // runtime, which is about to go.
            if let Some(own) = &self.own {
                own.finish(away);
                return;
            }
            let tasks =
                tokio::runtime::Handle::try_current().unwrap_or_else(|_| runtime::handle().clone());
            tasks.spawn(away);
        }
    }
}

/// What a handle says about itself.
#[derive(Debug, Clone)]
pub struct About {
    /// The URL connected to, or the path a server route answered.
    pub url: String,
    /// The other end's address.
    pub peer: String,
    /// The subprotocol both sides agreed on.
    pub protocol: Option<String>,
}

/// An open (or closed) WebSocket; copies are the same connection.
#[derive(Clone)]
pub struct WebSocket(Arc<Inner>);

impl WebSocket {
    /// Takes over a WebSocket whose handshake is done and starts reading
    /// it on the shared runtime.
    pub fn start(stream: Stream, about: About) -> WebSocket {
        WebSocket::start_on(runtime::handle().clone(), stream, about)
    }

    /// [`WebSocket::start`], its tasks on `tasks` (a server's runtime,
    /// where its socket is registered).
    pub fn start_on(tasks: tokio::runtime::Handle, stream: Stream, about: About) -> WebSocket {
        WebSocket::start_with(tasks, stream, about, None)
    }

    /// [`WebSocket::start`] on the connection's own runtime (made by the
    /// caller, which registered the socket there): every wait on the
    /// handle drives it, so the thread waiting in `recv` is the one the
    /// kernel wakes; when nobody has waited for a while, the runtime's
    /// keeper does.
    pub fn start_own(own: runtime::Own, stream: Stream, about: About) -> Result<WebSocket> {
        let tasks = own.handle()?;
        Ok(WebSocket::start_with(tasks, stream, about, Some(own)))
    }

    fn start_with(
        tasks: tokio::runtime::Handle,
        stream: Stream,
        about: About,
        own: Option<runtime::Own>,
    ) -> WebSocket {
        let (sink, reader) = stream.split();
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            ending: Mutex::new(Ending::default()),
            pong: Mutex::new(None),
            ended: CancellationToken::new(),
            done: CancellationToken::new(),
        });
        let stop = CancellationToken::new();
        let sink: Sink = Arc::new(tokio::sync::Mutex::new(Some(sink)));
        {
            let shared = shared.clone();
            let stop = stop.clone();
            let sink = sink.clone();
            tasks.spawn(async move {
                let mut reader = reader;
                let failed = tokio::select! {
                    _ = stop.cancelled() => None,
                    failed = read_loop(&mut reader, &tx, &shared) => failed,
                };
                // The close frame goes before the end is marked: a script
                // that ends as soon as `recv` fails still has it sent.
                let refused = match failed {
                    Some(code) => refuse(&sink, code).await,
                    None => None,
                };
                // How it ended is noted before `recv` can see the end.
                mark_ended(&shared);
                drop(tx);
                if let Some(sink) = refused {
                    drain(reader, sink).await;
                }
                shared.done.cancel();
            });
        }
        WebSocket(Arc::new(Inner {
            sink,
            arrivals: tokio::sync::Mutex::new(rx),
            shared,
            stop,
            outbox: Mutex::new(None),
            about,
            own,
        }))
    }

    /// Takes over a WebSocket for the event shape: `events` is called on
    /// `tasks` (the server's workers) for each message, in order, and what
    /// its handlers send is queued and written when they return
    /// (`super::events`). `token` is the server's: its end closes with 1001.
    pub fn start_events(
        tasks: tokio::runtime::Handle,
        stream: Stream,
        about: About,
        events: Arc<dyn super::events::Events>,
        token: CancellationToken,
    ) -> WebSocket {
        let (sink, reader) = stream.split();
        // No queue for recv: the messages go to the handlers.
        let (_, rx) = mpsc::channel(1);
        let (elsewhere, queued) = mpsc::unbounded_channel();
        let ws = WebSocket(Arc::new(Inner {
            sink: Arc::new(tokio::sync::Mutex::new(Some(sink))),
            arrivals: tokio::sync::Mutex::new(rx),
            shared: Arc::new(Shared {
                ending: Mutex::new(Ending::default()),
                pong: Mutex::new(None),
                ended: CancellationToken::new(),
                done: CancellationToken::new(),
            }),
            stop: CancellationToken::new(),
            outbox: Mutex::new(Some(Outbox {
                elsewhere,
                here: Vec::new(),
                handling: false,
            })),
            about,
            own: None,
        }));
        tasks.spawn(super::events::run(
            ws.clone(),
            reader,
            queued,
            events,
            token,
        ));
        ws
    }

    /// Writes what handlers queued, in order, then flushes once; whether a
    /// close frame was among them.
    pub(super) async fn write_queued(
        &self,
        queued: &mut mpsc::UnboundedReceiver<Message>,
    ) -> Result<bool> {
        let mut guard = self.0.sink.lock().await;
        let sink = guard.as_mut().ok_or_else(|| self.closed_error())?;
        let mut closing = false;
        let mut any = false;
        let here = lock(&self.0.outbox)
            .as_mut()
            .map(|outbox| std::mem::take(&mut outbox.here))
            .unwrap_or_default();
        let elsewhere = std::iter::from_fn(|| queued.try_recv().ok());
        for message in here.into_iter().chain(elsewhere) {
            closing |= matches!(message, Message::Close(_));
            any = true;
            sink.feed(message).await.map_err(|e| self.error(e))?;
        }
        if any {
            sink.flush().await.map_err(|e| self.error(e))?;
        }
        Ok(closing)
    }

    /// Marks a handler of this connection as running, so sends are held
    /// for the task running it (`Outbox::here`) until the mark is dropped.
    /// What other tasks queued before is moved ahead of them first: a
    /// sender's messages stay in the order it sent them.
    pub(super) fn handling(&self, queued: &mut mpsc::UnboundedReceiver<Message>) -> Handling<'_> {
        if let Some(outbox) = lock(&self.0.outbox).as_mut() {
            while let Ok(message) = queued.try_recv() {
                outbox.here.push(message);
            }
            outbox.handling = true;
        }
        Handling(self)
    }

    /// Writes one message (a send queued from outside a handler).
    pub(super) async fn write_one(&self, message: Message) -> Result<()> {
        self.write(message).await
    }

    /// Ends the connection: how it ended noted, both halves dropped.
    pub(super) async fn finish(&self) {
        mark_ended(&self.0.shared);
        self.0.stop.cancel();
        self.0.sink.lock().await.take();
    }

    /// Ends the connection after a protocol failure: how it ended noted,
    /// and the close frame with `code` (RFC 6455 §7.4.1) written by a task
    /// of its own, which then lets the peer answer before the socket goes.
    pub(super) async fn fail(&self, reader: SplitStream<Stream>, code: u16) {
        let refused = refuse(&self.0.sink, code).await;
        mark_ended(&self.0.shared);
        self.0.stop.cancel();
        if let Some(sink) = refused {
            tokio::spawn(drain(reader, sink));
        }
    }

    /// Notes what a message read says about the connection (a pong, the
    /// peer's close, a failure); the data message, if it is one.
    pub(super) fn sort(&self, next: tungstenite::Result<Message>) -> Sorted {
        sort(&self.0.shared, next)
    }

    pub fn about(&self) -> &About {
        &self.0.about
    }

    /// The close code, once the connection has ended (1006 when it ended
    /// without a close frame).
    pub fn close_code(&self) -> Option<u16> {
        lock(&self.0.shared.ending).code
    }

    pub fn close_reason(&self) -> Option<String> {
        let ending = lock(&self.0.shared.ending);
        ending.code.map(|_| ending.reason.clone())
    }

    pub fn is_ended(&self) -> bool {
        self.0.shared.ended.is_cancelled()
    }

    /// Sends a message: written before this returns, or, on the event
    /// shape, queued in order for the connection's task.
    pub fn send(&self, message: Message) -> Result<()> {
        if let Some(outbox) = lock(&self.0.outbox).as_mut() {
            if outbox.handling {
                outbox.here.push(message);
                return Ok(());
            }
            return outbox
                .elsewhere
                .send(message)
                .map_err(|_| self.closed_error());
        }
        let me = self.clone();
        self.wait(async move { me.write(message).await })
    }

    /// Waits for `fut` as every call on the handle does: on the
    /// connection's own runtime, driving it, or on the shared one.
    fn wait<T>(&self, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match &self.0.own {
            Some(own) => own.wait(fut),
            None => runtime::block_on(fut),
        }
    }

    /// On a connection's own runtime, after it has ended: lets the reading
    /// task finish (a failure's close handshake) before the handle goes.
    pub fn settle(&self) {
        if let Some(own) = &self.0.own {
            let done = self.0.shared.done.clone();
            let _ = own.wait(async move {
                let _ = tokio::time::timeout(REFUSE_WAIT + DRAIN_WAIT, done.cancelled()).await;
                Ok(())
            });
        }
    }

    async fn write(&self, message: Message) -> Result<()> {
        let mut guard = self.0.sink.lock().await;
        let sink = guard.as_mut().ok_or_else(|| self.closed_error())?;
        sink.send(message).await.map_err(|e| self.error(e))
    }

    /// The next data message; `None` once the connection has ended. A
    /// protocol failure is reported once, by the `recv` that meets it.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Option<Arrival>> {
        let me = self.clone();
        self.wait(async move { me.next_message(timeout).await })
    }

    /// [`WebSocket::recv`] for a task on the runtime.
    pub async fn next_message(&self, timeout: Option<Duration>) -> Result<Option<Arrival>> {
        let mut arrivals = self.0.arrivals.lock().await;
        let next = match timeout {
            Some(after) => {
                runtime::within(after, || "waiting for a WebSocket message".into(), async {
                    Ok(arrivals.recv().await)
                })
                .await?
            }
            None => arrivals.recv().await,
        };
        match next {
            Some(arrival) => Ok(Some(arrival)),
            None => match lock(&self.0.shared.ending).failure.take() {
                Some(failure) => Err(failure),
                None => Ok(None),
            },
        }
    }

    /// Sends a ping and waits for its pong; the round trip in milliseconds.
    pub fn ping(&self, wait: Duration) -> Result<f64> {
        let (tx, rx) = oneshot::channel();
        *lock(&self.0.shared.pong) = Some(tx);
        let started = Instant::now();
        self.send(Message::Ping(b"netsh".to_vec().into()))?;
        let me = self.clone();
        self.wait(async move {
            runtime::within(wait, || "waiting for the pong".into(), async {
                tokio::select! {
                    answered = rx => answered.map_err(|_| me.closed_error()),
                    _ = me.0.shared.ended.cancelled() => Err(me.closed_error()),
                }
            })
            .await
        })?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    }

    /// Sends a close frame (unless the connection has ended already), waits
    /// up to `wait` for the peer's, then lets the connection go.
    pub fn close(&self, code: u16, reason: &str, wait: Duration) -> Result<()> {
        let frame = close_frame(code, reason)?;
        if lock(&self.0.outbox).is_some() {
            return self.send(Message::Close(Some(frame)));
        }
        let me = self.clone();
        self.wait(async move {
            if !me.is_ended() {
                // A failure here means the connection is already gone,
                // which is what close asks for.
                let _ = me.write(Message::Close(Some(frame))).await;
            }
            me.finish_close(wait).await;
            Ok(())
        })
    }

    /// Waits for the reading task to see the end, then drops both halves.
    async fn finish_close(&self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.0.shared.ended.cancelled()).await;
        self.0.stop.cancel();
        self.0.sink.lock().await.take();
    }

    /// The error for using a connection that has ended.
    pub fn closed_error(&self) -> Error {
        let ending = lock(&self.0.shared.ending);
        let how = match ending.code {
            Some(code) if ending.reason.is_empty() => format!(" (close code {code})"),
            Some(code) => format!(" (close code {code}: {})", ending.reason),
            None => String::new(),
        };
        Error::Closed(format!(
            "the WebSocket to {} is closed{how}",
            self.0.about.peer
        ))
    }

    fn error(&self, err: tungstenite::Error) -> Error {
        match err {
            tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed
            | tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing) => {
                self.closed_error()
            }
            other => words(other, &self.0.about.peer),
        }
    }
}

/// What one read gave.
pub enum Sorted {
    Data(Arrival),
    /// A control frame, already dealt with.
    Control,
    /// The connection failed; how is noted. The close code to tell the
    /// peer, when the failure is the peer's breaking the protocol (not
    /// the connection breaking).
    Failed(Option<u16>),
}

/// Reads until the connection ends, queueing data messages; the close
/// code to answer a protocol failure with, if that is how it ended.
async fn read_loop(
    reader: &mut SplitStream<Stream>,
    arrivals: &mpsc::Sender<Arrival>,
    shared: &Shared,
) -> Option<u16> {
    while let Some(next) = reader.next().await {
        match sort(shared, next) {
            Sorted::Data(arrival) => {
                if arrivals.send(arrival).await.is_err() {
                    return None;
                }
            }
            Sorted::Control => {}
            Sorted::Failed(code) => return code,
        }
    }
    None
}

/// How long the writing half may be busy (a send in progress) before a
/// failure gives up on telling the peer.
const REFUSE_WAIT: Duration = Duration::from_secs(1);
/// How long the peer has to close its end after our close frame.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// The close code RFC 6455 §7.4.1 gives a failure of the peer's: 1009 for
/// a message over the limit, 1007 for text that is not UTF-8, 1002 for a
/// frame that breaks the protocol. None when the connection itself broke
/// or the peer left: nobody is there to tell.
fn failure_code(err: &tungstenite::Error) -> Option<u16> {
    use tungstenite::{Error as E, error::ProtocolError as P};
    match err {
        E::Capacity(_) => Some(1009),
        E::Utf8(_) => Some(1007),
        E::Protocol(P::ResetWithoutClosingHandshake | P::ReceivedAfterClosing) => None,
        E::Protocol(_) => Some(1002),
        _ => None,
    }
}

/// Takes the writing half from the handle (its sends fail as closed from
/// then on) and tells the peer why the connection fails: a close frame
/// with `code`. The half, if the frame was written.
async fn refuse(sink: &Sink, code: u16) -> Option<SplitSink<Stream, Message>> {
    let mut sink = tokio::time::timeout(REFUSE_WAIT, sink.lock())
        .await
        .ok()
        .and_then(|mut slot| slot.take())?;
    let reason = match code {
        1009 => "message too big",
        1007 => "text that is not UTF-8",
        _ => "protocol error",
    };
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let sent = tokio::time::timeout(REFUSE_WAIT, sink.send(Message::Close(Some(frame)))).await;
    matches!(sent, Ok(Ok(()))).then_some(sink)
}

/// After [`refuse`]: ends our side of the stream and reads what is left
/// until the peer closes too (or [`DRAIN_WAIT`] passes). Closing with the
/// peer's bytes unread would make the kernel reset the connection, and a
/// reset can overtake the close frame. tungstenite cannot read on (it is
/// left part-way into the frame that failed), so the bytes are read raw
/// and dropped.
async fn drain(reader: SplitStream<Stream>, sink: SplitSink<Stream, Message>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = reader.reunite(sink) else {
        return;
    };
    let io = stream.get_mut();
    let _ = tokio::time::timeout(REFUSE_WAIT, io.shutdown()).await;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        let mut scrap = [0u8; 4096];
        while matches!(io.read(&mut scrap).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Notes pongs, the peer's close frame and failures; passes data on.
fn sort(shared: &Shared, next: tungstenite::Result<Message>) -> Sorted {
    match next {
        Ok(Message::Text(text)) => Sorted::Data(Arrival::Text(text.as_str().to_owned())),
        Ok(Message::Binary(bytes)) => Sorted::Data(Arrival::Binary(bytes.into())),
        // tungstenite answers it on the next read, which comes at once.
        Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => Sorted::Control,
        Ok(Message::Pong(_)) => {
            if let Some(waiter) = lock(&shared.pong).take() {
                let _ = waiter.send(());
            }
            Sorted::Control
        }
        Ok(Message::Close(frame)) => {
            let mut ending = lock(&shared.ending);
            match frame {
                Some(frame) => {
                    ending.code = Some(frame.code.into());
                    ending.reason = frame.reason.as_str().to_owned();
                }
                None => ending.code = Some(NO_STATUS),
            }
            Sorted::Control
        }
        Err(err) => {
            let code = failure_code(&err);
            let mut ending = lock(&shared.ending);
            if let tungstenite::Error::Io(e) = &err {
                ending.reason = format!("the connection failed: {e}");
            } else {
                let failure = words(err, "the peer");
                ending.reason = failure.to_string();
                ending.failure = Some(failure);
            }
            Sorted::Failed(code)
        }
    }
}

/// The end, noted: 1006 when no close frame came.
fn mark_ended(shared: &Shared) {
    let mut ending = lock(&shared.ending);
    if ending.code.is_none() {
        ending.code = Some(ABNORMAL);
        if ending.reason.is_empty() {
            ending.reason = "the connection ended without a close frame".into();
        }
    }
    drop(ending);
    shared.ended.cancel();
}

/// A close frame with a code a peer may send (1000–4999, not the ones
/// reserved for the end itself) and a reason of at most 123 bytes.
pub fn close_frame(code: u16, reason: &str) -> Result<CloseFrame> {
    let allowed = (1000..=4999).contains(&code) && CloseCode::from(code).is_allowed();
    if !allowed {
        return Err(Error::invalid(format!(
            "{code} is not a close code a WebSocket may send (1000 normal, 1001 going away, 1008 policy, 1011 error, 3000–4999 for applications; 1005, 1006 and 1015 are never sent)"
        )));
    }
    if reason.len() > 123 {
        return Err(Error::invalid(format!(
            "a close reason is at most 123 bytes (it must fit a control frame), not {}",
            reason.len()
        )));
    }
    Ok(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })
}

/// A tungstenite error in netsh's words and kinds.
pub fn words(err: tungstenite::Error, peer: &str) -> Error {
    use tungstenite::Error as E;
    match err {
        E::Io(e) => Error::io(format!("talking to {peer}"), None, e),
        E::Capacity(e) => Error::TooBig(format!("the message is too big: {e}")),
        E::Protocol(e) => Error::Protocol(format!("{peer} broke the WebSocket protocol: {e}")),
        E::Utf8(e) => Error::Protocol(format!("{peer} sent a text message that is not UTF-8: {e}")),
        E::AttackAttempt => Error::Protocol(format!("{peer} sent what looks like an attack")),
        E::Http(response) => {
            let status = response.status();
            Error::Protocol(format!(
                "{peer} answered {} {} instead of switching to WebSocket (101)",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ))
        }
        E::HttpFormat(e) => Error::invalid(format!("the request cannot be made: {e}")),
        E::Url(e) => Error::invalid(format!("{e}")),
        E::Tls(e) => Error::Protocol(format!("TLS failed: {e}")),
        E::WriteBufferFull(_) => Error::TooBig("the send buffer is full".into()),
        E::ConnectionClosed | E::AlreadyClosed => Error::Closed("the WebSocket is closed".into()),
    }
}

/// Locks a mutex whose holder cannot leave it half-changed.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
