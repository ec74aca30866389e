//! `c.interact()`: joins a connection to the terminal, or to stdin and
//! stdout, the way `nc host port` does: what is typed (or piped in) is sent,
//! what arrives is printed as it arrives.
//!
//! Two directions, two threads. This thread reads stdin and sends; a helper
//! thread receives and prints. Reading stdin must never outlive the call: a
//! thread left blocked in `read(0)` after Ctrl-C would swallow the next
//! line typed at the REPL prompt. So stdin is only read after `poll(2)` says
//! it is ready, and the same `poll` watches a pipe whose write end the
//! receiving thread holds: when that thread ends (the peer closed, an
//! error, or Ctrl-C cancelled it) the pipe reports hang-up and this thread
//! stops at once. Nothing is left reading stdin when `interact` returns.
//!
//! On a terminal the line discipline does the editing: a line is sent when
//! Enter is pressed, Ctrl-D at the start of a line is end of input (the
//! connection is half-closed, like `nc -N`, and printing goes on until the
//! peer closes), and Ctrl-C reaches the REPL's handler, which cancels this
//! call and leaves the connection open. Bytes that would upset the
//! terminal (control characters, invalid UTF-8) are shown escaped; to a
//! pipe or file they are written exactly as received.

use std::{
    io::{IsTerminal, Write},
    os::fd::{AsFd, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
};
use rhai::plugin::*;

use crate::console;
use crate::error::{Error, Result};
use crate::net::tcp::Conn;
use crate::runtime;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// Set while a connection holds stdin: two at once would split what is typed.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Frees stdin for the next `interact`, however this one ends.
pub struct StdinGuard;

/// Takes stdin for one interactive session (a `Conn`'s or a WebSocket's),
/// or says who holds it.
pub fn claim_stdin() -> Result<StdinGuard> {
    if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(Error::InUse(
            "stdin is already joined to another connection by interact()".into(),
        ));
    }
    Ok(StdinGuard)
}

impl Drop for StdinGuard {
    fn drop(&mut self) {
        STDIN_TAKEN.store(false, Ordering::SeqCst);
    }
}

/// Joins `conn` to stdin and stdout until the peer closes (or Ctrl-C).
pub fn interact(conn: &Conn) -> Result<()> {
    if conn.is_closed() {
        return Err(conn.closed_error());
    }
    let _stdin = claim_stdin()?;
    let terminal_in = std::io::stdin().is_terminal();
    if terminal_in {
        let leave = if console::is_interactive() {
            "Ctrl-C returns to the prompt (the connection stays open)"
        } else {
            "Ctrl-C quits"
        };
        console::note(&format!(
            "connected to {}: lines you type are sent; Ctrl-D ends sending; {leave}",
            conn.peer()
        ));
    }
    let (wake, hang_up) =
        nix::unistd::pipe().map_err(|e| Error::io("creating a pipe", None, e.into()))?;
    // A child of this call's token: Ctrl-C (or `.stop()`) cancels both.
    let receiving = runtime::cancel_token().child_token();
    let printer = {
        let conn = conn.clone();
        let escape = std::io::stdout().is_terminal();
        runtime::spawn_rhai_thread("netsh-interact", receiving.clone(), move || {
            let outcome = print_arrivals(&conn, escape);
            drop(hang_up); // wakes the poll below
            outcome
        })?
    };
    let sent = send_input(conn, &wake);
    receiving.cancel();
    let received = printer
        .join()
        .unwrap_or_else(|p| Err(crate::error::thread_failed("the receiving thread", &*p)));
    if runtime::is_cancelled() {
        return Err(Error::Interrupted);
    }
    sent?;
    match received {
        // Cancelled above because sending ended the session first.
        Err(Error::Interrupted) => Ok(()),
        other => other,
    }
}

/// Sends what stdin gives until the receiving side ends (its pipe hangs
/// up); at the end of stdin, half-closes and keeps waiting.
fn send_input(conn: &Conn, wake: &OwnedFd) -> Result<()> {
    let stdin = std::io::stdin();
    let mut reading = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        if reading {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("waiting for input", None, e.into())),
        }
        if fds[0].any().unwrap_or(true) {
            return Ok(());
        }
        if !reading || !fds[1].any().unwrap_or(false) {
            continue;
        }
        match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(0) => {
                // End of input: Ctrl-D on a terminal, the end of a pipe or file.
                reading = false;
                conn.shutdown()?;
            }
            Ok(n) => {
                conn.send(&buf[..n])?;
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            // stdin closed or unreadable: as good as its end.
            Err(_) => {
                reading = false;
                conn.shutdown()?;
            }
        }
    }
}

/// Prints what arrives until the peer closes (`Ok`) or reading fails.
fn print_arrivals(conn: &Conn, escape: bool) -> Result<()> {
    let mut text = TerminalText::default();
    loop {
        let bytes = conn.read_some(None)?;
        let mut out = std::io::stdout().lock();
        let written = if bytes.is_empty() {
            out.write_all(text.finish().as_bytes())
        } else if escape {
            out.write_all(text.render(&bytes).as_bytes())
        } else {
            out.write_all(&bytes)
        };
        // Whoever reads our stdout stopped (`| head`): nothing left to do.
        if written.and_then(|()| out.flush()).is_err() || bytes.is_empty() {
            return Ok(());
        }
    }
}

/// Received bytes made safe to show on a terminal: UTF-8 text as it is,
/// control characters other than newline, carriage return and tab as
/// `\x1b`, and bytes that are not UTF-8 as `\xff`. A character split
/// between two reads is held back until its other bytes come.
#[derive(Default)]
pub struct TerminalText {
    carry: Vec<u8>,
}

impl TerminalText {
    pub fn render(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.carry;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    push_shown(&mut out, text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    push_shown(&mut out, std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            for b in &bad[..n] {
                                out.push_str(&format!("\\x{b:02x}"));
                            }
                            rest = &bad[n..];
                        }
                        // The start of a character whose other bytes are
                        // still to come.
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        self.carry = rest.to_vec();
        out
    }

    /// What is held back, at the end of the stream: it will never be whole.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.carry)
            .iter()
            .map(|b| format!("\\x{b:02x}"))
            .collect()
    }
}

/// Escapes as the REPL's values and netsh's own messages are escaped
/// ([`crate::console::push_escaped`]), so one rule decides what a peer's
/// bytes may show.
fn push_shown(out: &mut String, text: &str) {
    crate::console::push_escaped(out, text);
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// Joins the connection to the terminal, like `nc host port`: each line
    /// typed is sent, what arrives is printed as it arrives (control
    /// characters and non-UTF-8 bytes escaped). Ctrl-D sends end of input
    /// (a half-close) and keeps printing until the peer closes; the peer
    /// closing returns; Ctrl-C returns to the prompt with the connection
    /// still open. With stdin not a terminal it pipes, like nc: stdin's
    /// bytes are sent, its end half-closes, and everything received goes
    /// to stdout exactly as it came. `listen(9000).accept().interact()` is
    /// `nc -l 9000`. Call it in the foreground: in a `task` it would compete
    /// with the prompt for what is typed.
    ///
    /// ```rhai
    /// connect("127.0.0.1:9000").interact()
    /// ```
    ///
    /// Fails when: the connection is closed or reset, another `interact()`
    /// holds stdin, or Ctrl-C (the connection stays open).
    #[rhai_fn(return_raw, pure)]
    pub fn interact(c: &mut Conn) -> ScriptResult<()> {
        super::interact(c).map_err(fail("interact"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text passes through; control bytes and invalid UTF-8 are escaped; a
    /// character split across reads comes out whole.
    #[test]
    fn terminal_text_is_safe_and_whole() {
        let mut t = TerminalText::default();
        assert_eq!(t.render(b"hi\r\n\tthere"), "hi\r\n\tthere");
        assert_eq!(t.render(b"\x1b[31mred\x07"), "\\x1b[31mred\\x07");
        assert_eq!(t.render(b"ok\xff\xfeok"), "ok\\xff\\xfeok");
        let arrow = "→".as_bytes();
        assert_eq!(t.render(&arrow[..1]), "");
        assert_eq!(t.render(&arrow[1..]), "→");
        assert_eq!(t.render("\u{9b}x".as_bytes()), "\\x9bx");
        assert_eq!(t.render(&arrow[..2]), "");
        assert_eq!(t.finish(), "\\xe2\\x86");
        assert_eq!(t.finish(), "");
    }
}
