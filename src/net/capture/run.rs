//! A capture in progress: the packet socket is opened and filtered on the
//! caller's thread *before* the closure runs (so its SYN cannot be missed),
//! a reader thread drains the ring while the closure runs on the caller's
//! thread (Rhai's own thread, so it sees the script's variables), and after
//! the closure returns the reader goes on until the traffic settles, so the
//! last ACKs of a close are in.
//!
//! Watching without a closure ends at `count`, `timeout` or Ctrl-C. In the
//! REPL, Ctrl-C cancels the command's token; in a script or `-e`, where
//! Ctrl-C would end netsh, [`SigintGuard`] turns it into "stop watching"
//! for as long as the watch lasts, so the packets seen are still returned.
//! Each watch notes how many SIGINTs had come when it started and ends when
//! another comes: a Ctrl-C belongs to the watches running then, never to a
//! later capture, and a capture around a closure never looks at it.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use tokio::sync::watch;

use super::{
    Options, filter,
    packet::{Decoder, Packet},
    pcap::PcapFile,
    socket::{PacketSocket, SNAPLEN},
};
use crate::console;
use crate::error::{Error, Result};
use crate::runtime;

/// After the closure returns, the capture ends once no packet has come for
/// this long (a delayed ACK may wait up to 200 ms on Linux)…
const SETTLE_QUIET: Duration = Duration::from_millis(250);
/// …or this long after the closure returned, whichever is first.
const SETTLE_MAX: Duration = Duration::from_secs(1);
/// How often the reader looks up from an empty ring to check for the end.
const TICK: Duration = Duration::from_millis(20);
/// A capture stops keeping packets past this many (about 200 MB), and says so.
const MAX_PACKETS: usize = 2_000_000;

/// What a capture saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub packets: Vec<Packet>,
    /// Packets the kernel's filter passed to the capture.
    pub seen: u64,
    /// Packets the kernel dropped because the ring was full.
    pub dropped: u64,
}

/// Flags the caller's thread sets for the reader.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    /// When the closure returned.
    settle_from: OnceLock<Instant>,
}

/// How a capture ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Around a closure: once the traffic settles after it returns.
    Closure,
    /// Watching: at `count`, `timeout` or Ctrl-C.
    Watch,
}

/// A capture whose reader thread is running.
pub struct Running {
    control: Arc<Control>,
    thread: Option<JoinHandle<Result<Summary>>>,
    done: watch::Receiver<bool>,
    /// Held while a watch runs outside the REPL: Ctrl-C ends the watch.
    _sigint: Option<SigintGuard>,
}

impl Running {
    /// Opens the filtered socket (and the pcap file) and starts reading.
    pub fn start(options: Options, mode: Mode) -> Result<Running> {
        let program = filter::program(&options.selector, SNAPLEN)?;
        let socket = PacketSocket::open(options.iface.as_ref(), &program)?;
        // Time 0 is when the socket is ready (a packet in the microseconds
        // between the two counts as 0).
        let start = SystemTime::now();
        let pcap = match &options.pcap {
            Some(path) => Some(PcapFile::create(path)?),
            None => None,
        };
        let control = Arc::new(Control::default());
        let (done_tx, done) = watch::channel(false);
        // Installed before the reader starts, so a Ctrl-C from now on ends
        // this watch, and none from before it does.
        let sigint = match mode {
            Mode::Watch => SigintGuard::install(),
            Mode::Closure => None,
        };
        let reader = Reader {
            socket,
            pcap,
            decoder: Decoder::new(start),
            control: control.clone(),
            count: options.count,
            deadline: options.timeout.map(|t| Instant::now() + t),
            live: options.live,
            sigints_before: sigint.as_ref().map(|guard| guard.seen_before),
        };
        let thread = std::thread::Builder::new()
            .name("netsh-capture".into())
            .spawn(move || {
                let _done = DoneGuard(done_tx);
                reader.run()
            })
            .map_err(|e| Error::io("starting the capture thread", None, e))?;
        Ok(Running {
            control,
            thread: Some(thread),
            done,
            _sigint: sigint,
        })
    }

    /// The closure has returned: read until the traffic settles, then end.
    pub fn settle(mut self) -> Result<Summary> {
        let _ = self.control.settle_from.set(Instant::now());
        self.join()
    }

    /// Watches until `count`, `timeout` or Ctrl-C; Ctrl-C is not an error.
    pub fn watch(mut self) -> Result<Summary> {
        let mut done = self.done.clone();
        let waited = runtime::block_on(async move {
            let _ = done.wait_for(|finished| *finished).await;
            Ok(())
        });
        match waited {
            Ok(()) | Err(Error::Interrupted) => {}
            Err(other) => return Err(other),
        }
        self.control.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// The closure failed: stop at once, keep nothing.
    pub fn abandon(self) {
        drop(self);
    }

    fn join(&mut self) -> Result<Summary> {
        let thread = self
            .thread
            .take()
            .ok_or_else(|| Error::invalid("the capture has already ended"))?;
        let summary = thread
            .join()
            .map_err(|p| crate::error::thread_failed("the capture thread", &*p))??;
        if summary.dropped > 0 {
            console::warn(&format!(
                "capture: the kernel dropped {} of {} packets (the capture could not keep up)",
                summary.dropped,
                summary.seen + summary.dropped
            ));
        }
        Ok(summary)
    }
}

impl Drop for Running {
    /// However the capture ends, its thread ends with it.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.control.stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

/// Tells waiters the reader has ended, even if it panicked.
struct DoneGuard(watch::Sender<bool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// The reader thread's state.
struct Reader {
    socket: PacketSocket,
    pcap: Option<PcapFile>,
    decoder: Decoder,
    control: Arc<Control>,
    count: Option<usize>,
    deadline: Option<Instant>,
    live: bool,
    /// For a watch outside the REPL: the SIGINTs counted when it started
    /// (one more ends it).
    sigints_before: Option<u64>,
}

impl Reader {
    fn run(mut self) -> Result<Summary> {
        let mut packets = Vec::new();
        let mut last_packet = Instant::now();
        loop {
            let now = Instant::now();
            if self.control.stop.load(Ordering::Relaxed)
                || self
                    .sigints_before
                    .is_some_and(|before| SIGINTS.load(Ordering::Relaxed) != before)
                || self.deadline.is_some_and(|d| now >= d)
                || self.settled(now, last_packet)
            {
                break;
            }
            let wait = self
                .deadline
                .map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
            let Some(frame) = self.socket.next(wait)? else {
                continue;
            };
            last_packet = Instant::now();
            // The file holds everything the filter passed, even what is not
            // shown (a fragment, a header cut too short to read).
            if let Some(pcap) = self.pcap.as_mut() {
                pcap.write(frame.data, frame.wire_len, frame.time)?;
            }
            let Some(packet) = self.decoder.decode(frame.data, frame.wire_len, frame.time) else {
                continue;
            };
            drop(frame);
            if self.live {
                console::line(&packet.line());
            }
            packets.push(packet);
            if self.count.is_some_and(|n| packets.len() >= n) {
                break;
            }
            if packets.len() >= MAX_PACKETS {
                console::warn(&format!(
                    "capture: stopped after {MAX_PACKETS} packets; use `count` or a narrower filter"
                ));
                break;
            }
        }
        let (seen, dropped) = self.socket.statistics()?;
        if let Some(pcap) = self.pcap.take() {
            pcap.finish()?;
        }
        Ok(Summary {
            packets,
            seen,
            dropped,
        })
    }

    /// Whether the closure has returned and the traffic has gone quiet.
    fn settled(&self, now: Instant, last_packet: Instant) -> bool {
        let Some(&from) = self.control.settle_from.get() else {
            return false;
        };
        let quiet_since = from.max(last_packet);
        now.duration_since(quiet_since) >= SETTLE_QUIET || now.duration_since(from) >= SETTLE_MAX
    }
}

/// SIGINTs received while a watch held the handler, counted for ever: a
/// watch compares with the count at its start, so no flag has to be reset.
static SIGINTS: AtomicU64 = AtomicU64::new(0);

/// How many watches hold the handler, and the action to restore after the last.
static SIGINT_HOLDERS: Mutex<(usize, Option<SigAction>)> = Mutex::new((0, None));

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINTS.fetch_add(1, Ordering::Relaxed);
}

/// While alive (outside the REPL), Ctrl-C ends watches instead of netsh.
struct SigintGuard {
    /// The count of SIGINTs before this guard was installed.
    seen_before: u64,
}

impl SigintGuard {
    /// `None` in the REPL, whose own handler cancels the command's token,
    /// or when the handler cannot be installed (Ctrl-C then ends netsh).
    fn install() -> Option<SigintGuard> {
        if console::is_interactive() {
            return None;
        }
        let mut holders = SIGINT_HOLDERS.lock().ok()?;
        // Read before the handler is in place: every SIGINT it catches
        // comes after.
        let seen_before = SIGINTS.load(Ordering::Relaxed);
        if holders.0 == 0 {
            let action = SigAction::new(
                SigHandler::Handler(on_sigint),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            // SAFETY: the handler only adds to an atomic, which is
            // async-signal-safe; the previous action is restored on drop.
            let previous = unsafe { sigaction(Signal::SIGINT, &action) }.ok()?;
            holders.1 = Some(previous);
        }
        holders.0 += 1;
        Some(SigintGuard { seen_before })
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        if let Ok(mut holders) = SIGINT_HOLDERS.lock() {
            holders.0 -= 1;
            if holders.0 == 0
                && let Some(previous) = holders.1.take()
            {
                // SAFETY: puts back the action that was in place before.
                let _ = unsafe { sigaction(Signal::SIGINT, &previous) };
            }
        }
    }
}
