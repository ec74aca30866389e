//! The handlers running now, watched from outside the server's runtime,
//! so that one that never returns cannot keep its worker for good.
//!
//! A handler runs inline on a worker ([`super::server`]): while it
//! computes, nothing else runs on that thread, not even the task of its
//! own connection, so neither hyper nor a timer of that runtime can see
//! that the client left (two `|req| { loop {} }` on a two-worker server
//! stopped it for good). Each call therefore runs under a token of its
//! own, set as the worker's cancellation token for the call: Rhai's
//! `on_progress` hook stops a loop, and every wait (`sleep`, `fetch`)
//! races it, exactly as Ctrl-C and `stop()` do. A watchdog on netsh's
//! I/O runtime (never the server's, whose workers may all be busy)
//! looks at the calls every [`TICK`] and cancels a call when
//!
//! - its client has gone: the connection's socket reports a hang-up
//!   (`POLLRDHUP`, which is also when hyper itself drops a request, as it
//!   does not keep half-closed connections), or its HTTP/2 connection's
//!   task has ended (`Conn::closed`; streams outlive it);
//! - it has run longer than `handler_timeout`.
//!
//! A call shorter than a tick is never looked at: registering it is a
//! lock, an insert and a remove.
//!
//! A call that computes for longer than a tick also gets the server's
//! other workers woken ([`Running::watch`]'s nudge): tokio lets the one
//! worker that parked last poll the sockets, and one that then runs a
//! long handler wakes nobody, so every other connection of the server
//! waited for that handler (measured: a request to a free route waited
//! 4.5 s behind a spinning one on a server of two workers). An empty task
//! spawned from outside wakes a parked worker, which then takes over the
//! sockets.

use std::{
    collections::HashMap,
    os::fd::RawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::runtime::{self, CancellationToken};

/// How often the watchdog looks: how late a gone client's handler stops,
/// and how long a computing handler may hold up its worker's sockets.
pub const TICK: Duration = Duration::from_millis(50);

/// Why a call was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The client closed its connection.
    ClientGone,
    /// The call ran past `handler_timeout`.
    TimedOut(Duration),
}

const RUNNING: u8 = 0;
const GONE: u8 = 1;
const TIMED_OUT: u8 = 2;

/// One connection, as the watchdog sees it.
pub struct Conn {
    /// The connection's TCP socket. Only polled, never read: while an
    /// HTTP/1.1 handler runs, its connection (and so this descriptor) is
    /// held by the very task running it. An HTTP/2 connection may end
    /// first, but it sets `closed` before its socket closes, so
    /// a number reused by a later socket is only ever polled for a call
    /// that is to stop anyway.
    fd: RawFd,
    /// Set when an HTTP/2 connection's task ends. (An HTTP/1.1 handler
    /// runs inside its connection's task, which cannot end first.) A flag,
    /// not a token: every idle connection carries it.
    closed: AtomicBool,
}

impl Conn {
    pub fn new(fd: RawFd) -> Arc<Conn> {
        Arc::new(Conn {
            fd,
            closed: AtomicBool::new(false),
        })
    }

    /// Whether the client has hung up (or the socket failed).
    fn hung_up(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return true;
        }
        let mut fds = [libc::pollfd {
            fd: self.fd,
            events: libc::POLLRDHUP,
            revents: 0,
        }];
        // SAFETY: one valid pollfd, zero timeout. The descriptor is open
        // for as long as a call of its connection is registered, or
        // `closed` says otherwise (see the field); poll only reads its
        // state (nix's `PollFlags` has no POLLRDHUP).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        ready > 0 && fds[0].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }
}

/// Sets an HTTP/2 connection's `Conn::closed` when dropped; kept by its
/// task so that the flag is set before the socket closes.
pub struct Closing(pub Arc<Conn>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

struct Call {
    conn: Arc<Conn>,
    token: CancellationToken,
    started: Instant,
    why: AtomicU8,
    /// The other workers were woken for it.
    nudged: bool,
}

/// The calls of one server.
pub struct Running {
    calls: Mutex<HashMap<u64, Call>>,
    next: AtomicU64,
    timeout: Option<Duration>,
}

impl Running {
    pub fn new(timeout: Option<Duration>) -> Arc<Running> {
        Arc::new(Running {
            calls: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            timeout,
        })
    }

    /// Watches the calls until `server` is cancelled, from netsh's I/O
    /// runtime; `workers` is the server's runtime, nudged when a call
    /// computes long.
    pub fn watch(self: &Arc<Running>, server: CancellationToken, workers: tokio::runtime::Handle) {
        let running = Arc::downgrade(self);
        runtime::handle().spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = server.cancelled() => {
                        // stop(): every call stops (their tokens are not
                        // the server's children, which would cost each
                        // call a lock on the server's token).
                        if let Some(running) = running.upgrade() {
                            running.stop_all();
                        }
                        break;
                    }
                    _ = tick.tick() => {}
                }
                let Some(running) = running.upgrade() else {
                    break;
                };
                if running.look() {
                    drop(workers.spawn(async {}));
                }
            }
        });
    }

    fn stop_all(&self) {
        if let Ok(calls) = self.calls.lock() {
            for call in calls.values() {
                call.token.cancel();
            }
        }
    }

    /// One look at every call older than a tick; whether one of them is
    /// newly long (the workers are to be nudged).
    fn look(&self) -> bool {
        let Ok(mut calls) = self.calls.lock() else {
            return false;
        };
        let now = Instant::now();
        let mut nudge = false;
        for call in calls.values_mut() {
            let ran = now.saturating_duration_since(call.started);
            if ran < TICK || call.token.is_cancelled() {
                continue;
            }
            nudge |= !call.nudged;
            call.nudged = true;
            let why = if self.timeout.is_some_and(|limit| ran >= limit) {
                TIMED_OUT
            } else if call.conn.hung_up() {
                GONE
            } else {
                continue;
            };
            call.why.store(why, Ordering::Relaxed);
            call.token.cancel();
        }
        nudge
    }

    /// Runs `call` (a handler) on this thread under a token of its own,
    /// watched; says why it was stopped, if the watchdog stopped it.
    pub fn run<R>(&self, conn: &Arc<Conn>, call: impl FnOnce() -> R) -> (R, Option<Stopped>) {
        let outer = runtime::cancel_token();
        let token = CancellationToken::new();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(
                id,
                Call {
                    conn: conn.clone(),
                    token: token.clone(),
                    started: Instant::now(),
                    why: AtomicU8::new(RUNNING),
                    nudged: false,
                },
            );
        }
        // After the insert: a stop() the watchdog's sweep missed is seen
        // here.
        if outer.is_cancelled() {
            token.cancel();
        }
        runtime::set_cancel_token(token);
        let mut restore = Restore {
            running: self,
            id,
            outer,
            why: RUNNING,
        };
        let result = call();
        let stopped = match restore.finish() {
            GONE => Some(Stopped::ClientGone),
            TIMED_OUT => self.timeout.map(Stopped::TimedOut),
            _ => None,
        };
        (result, stopped)
    }
}

/// Forgets a call and gives the worker its own token back, even if the
/// handler panics.
struct Restore<'a> {
    running: &'a Running,
    id: u64,
    outer: CancellationToken,
    why: u8,
}

impl Restore<'_> {
    /// Forgets the call now; why it was stopped.
    fn finish(&mut self) -> u8 {
        if let Ok(mut calls) = self.running.calls.lock()
            && let Some(call) = calls.remove(&self.id)
        {
            self.why = call.why.load(Ordering::Relaxed);
        }
        self.why
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.finish();
        runtime::set_cancel_token(self.outer.clone());
    }
}
