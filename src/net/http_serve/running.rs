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
//! A call shorter than a tick is never looked at: each worker thread has
//! a slot of its own ([`Running::run`]), and a call is the slot's lock
//! taken twice and a token handed to the thread. Every call's token is a
//! child of the server's, so `stop()` reaches them all at once.
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
    cell::RefCell,
    os::fd::RawFd,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
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

/// The call running on one worker thread, if any.
struct Call {
    conn: Arc<Conn>,
    started: Instant,
    why: u8,
    /// The other workers were woken for it.
    nudged: bool,
}

/// One worker thread's place in [`Running`], made at its first call and
/// used for every call after: a call costs two uncontended locks of its
/// slot and a token handed to the thread, not a token made, a map entry
/// and a map lock shared by every worker.
struct Slot {
    /// The server (`Running`) it belongs to, by address.
    owner: usize,
    call: Mutex<Option<Call>>,
    /// The token this thread's calls run under: a child of the server's,
    /// so `stop()` cancels it with no sweep. Kept from call to call, and
    /// replaced only after the watchdog cancelled it.
    token: Mutex<CancellationToken>,
}

thread_local! {
    /// This thread's slot (a worker serves one server).
    static SLOT: RefCell<Option<Arc<Slot>>> = const { RefCell::new(None) };
}

/// The calls of one server.
pub struct Running {
    /// Every worker thread's slot; a thread's ends with it.
    slots: Mutex<Vec<Weak<Slot>>>,
    /// The server's token, parent of every call's.
    server: CancellationToken,
    timeout: Option<Duration>,
}

impl Running {
    pub fn new(timeout: Option<Duration>, server: CancellationToken) -> Arc<Running> {
        Arc::new(Running {
            slots: Mutex::new(Vec::new()),
            server,
            timeout,
        })
    }

    /// Watches the calls until the server's token is cancelled, from
    /// netsh's I/O runtime; `workers` is the server's runtime, nudged when
    /// a call computes long.
    pub fn watch(self: &Arc<Running>, workers: tokio::runtime::Handle) {
        let running = Arc::downgrade(self);
        let server = self.server.clone();
        runtime::handle().spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // stop(): every call's token is a child of the server's,
                // cancelled with it; nothing left to watch.
                tokio::select! {
                    _ = server.cancelled() => break,
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

    /// One look at every call older than a tick; whether one of them is
    /// newly long (the workers are to be nudged).
    fn look(&self) -> bool {
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(mut slots) => {
                slots.retain(|slot| slot.strong_count() > 0);
                slots.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => return false,
        };
        let now = Instant::now();
        let mut nudge = false;
        for slot in slots {
            let Ok(mut call) = slot.call.lock() else {
                continue;
            };
            let Some(call) = call.as_mut() else {
                continue;
            };
            let ran = now.saturating_duration_since(call.started);
            if ran < TICK || call.why != RUNNING {
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
            call.why = why;
            if let Ok(token) = slot.token.lock() {
                token.cancel();
            }
        }
        nudge
    }

    /// This thread's slot, made (and listed) at its first call; a fresh
    /// one should a call already be running on it.
    fn slot(&self) -> Arc<Slot> {
        let owner = self as *const Running as usize;
        let mine = SLOT.with(|s| {
            s.borrow()
                .as_ref()
                .filter(|slot| slot.owner == owner)
                .cloned()
        });
        if let Some(slot) = mine
            && slot.call.lock().is_ok_and(|call| call.is_none())
        {
            return slot;
        }
        let slot = Arc::new(Slot {
            owner,
            call: Mutex::new(None),
            token: Mutex::new(self.server.child_token()),
        });
        if let Ok(mut slots) = self.slots.lock() {
            slots.push(Arc::downgrade(&slot));
        }
        SLOT.with(|s| {
            let mut s = s.borrow_mut();
            if s.as_ref().is_none_or(|old| old.owner != owner) {
                *s = Some(slot.clone());
            }
        });
        slot
    }

    /// Runs `call` (a handler) on this thread under its slot's token,
    /// watched; says why it was stopped, if the watchdog stopped it.
    pub fn run<R>(&self, conn: &Arc<Conn>, call: impl FnOnce() -> R) -> (R, Option<Stopped>) {
        let slot = self.slot();
        let token = slot
            .token
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|_| self.server.child_token());
        if let Ok(mut running) = slot.call.lock() {
            *running = Some(Call {
                conn: conn.clone(),
                started: Instant::now(),
                why: RUNNING,
                nudged: false,
            });
        }
        let outer = runtime::replace_cancel_token(token);
        let mut restore = Restore {
            running: self,
            slot,
            outer: Some(outer),
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

/// Ends a call: clears its slot, gives the worker its own token back, and
/// replaces the slot's token if the watchdog cancelled it; even if the
/// handler panics.
struct Restore<'a> {
    running: &'a Running,
    slot: Arc<Slot>,
    outer: Option<CancellationToken>,
    why: u8,
}

impl Restore<'_> {
    /// Ends the call now; why it was stopped.
    fn finish(&mut self) -> u8 {
        let Some(outer) = self.outer.take() else {
            return self.why;
        };
        if let Ok(mut call) = self.slot.call.lock()
            && let Some(call) = call.take()
        {
            self.why = call.why;
        }
        // The call's token (a clone of the slot's) is dropped here.
        drop(runtime::replace_cancel_token(outer));
        if self.why != RUNNING
            && let Ok(mut token) = self.slot.token.lock()
        {
            *token = self.running.server.child_token();
        }
        self.why
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}
