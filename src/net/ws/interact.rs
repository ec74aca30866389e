//! `ws.interact()`: a WebSocket joined to the terminal, as websocat does:
//! each line typed (or piped in) is sent as a text message, each message
//! received is printed on a line of its own.
//!
//! The same two-thread shape as a `Conn`'s `interact` (`net::interact`,
//! whose comment says why stdin is read only after `poll`): this thread
//! reads stdin and sends, a helper thread receives and prints, and a pipe
//! the helper holds wakes this thread when the connection ends. The end of
//! stdin (Ctrl-D) closes the WebSocket with 1000 and waits for the peer's
//! close; the peer's close returns; Ctrl-C returns with the WebSocket open.

use std::{
    io::{IsTerminal, Write},
    os::fd::{AsFd, OwnedFd},
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
};
use tokio_tungstenite::tungstenite::Message;

use super::socket::{Arrival, DEFAULT_CLOSE_WAIT, WebSocket};
use crate::console;
use crate::error::{Error, Result};
use crate::net::interact::{TerminalText, claim_stdin};
use crate::runtime;

/// Joins `ws` to stdin and stdout until either side ends (or Ctrl-C).
pub fn interact(ws: &WebSocket) -> Result<()> {
    if ws.is_ended() {
        return Err(ws.closed_error());
    }
    let _stdin = claim_stdin()?;
    if std::io::stdin().is_terminal() {
        let leave = if console::is_interactive() {
            "Ctrl-C returns to the prompt (the WebSocket stays open)"
        } else {
            "Ctrl-C quits"
        };
        console::note(&format!(
            "connected to {}: each line you type is sent as a message; Ctrl-D closes; {leave}",
            ws.about().url
        ));
    }
    let (wake, hang_up) =
        nix::unistd::pipe().map_err(|e| Error::io("creating a pipe", None, e.into()))?;
    let receiving = runtime::cancel_token().child_token();
    let printer = {
        let ws = ws.clone();
        let escape = std::io::stdout().is_terminal();
        runtime::spawn_rhai_thread("netsh-ws-interact", receiving.clone(), move || {
            let outcome = print_arrivals(&ws, escape);
            drop(hang_up);
            outcome
        })?
    };
    let sent = send_lines(ws, &wake);
    // After a clean end the printer drains what is queued and ends by
    // itself (the reading task has stopped); after a failure it might
    // wait on a connection still open.
    if sent.is_err() {
        receiving.cancel();
    }
    let received = printer
        .join()
        .unwrap_or_else(|p| Err(crate::error::thread_failed("the receiving thread", &*p)));
    if runtime::is_cancelled() {
        return Err(Error::Interrupted);
    }
    sent?;
    match received {
        Err(Error::Interrupted) => Ok(()),
        other => other,
    }
}

/// Sends each whole line of stdin as a text message (without its newline);
/// at the end of stdin, sends what is left and closes.
fn send_lines(ws: &WebSocket, wake: &OwnedFd) -> Result<()> {
    let stdin = std::io::stdin();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("waiting for input", None, e.into())),
        }
        if fds[0].any().unwrap_or(true) {
            return Ok(());
        }
        if !fds[1].any().unwrap_or(false) {
            continue;
        }
        let n = match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => 0,
        };
        if n == 0 {
            if !pending.is_empty() {
                send_line(ws, &pending)?;
            }
            return ws.close(1000, "", DEFAULT_CLOSE_WAIT);
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            send_line(ws, line.strip_suffix(b"\r").unwrap_or(line))?;
        }
    }
}

/// A line as a text message, or a binary one when it is not UTF-8.
fn send_line(ws: &WebSocket, line: &[u8]) -> Result<()> {
    match std::str::from_utf8(line) {
        Ok(text) => ws.send(Message::text(text)),
        Err(_) => ws.send(Message::binary(line.to_vec())),
    }
}

/// Prints each message on its own line until the connection ends.
fn print_arrivals(ws: &WebSocket, escape: bool) -> Result<()> {
    loop {
        let Some(arrival) = ws.recv(None)? else {
            return Ok(());
        };
        let bytes = match arrival {
            Arrival::Text(text) => text.into_bytes(),
            Arrival::Binary(bytes) => bytes,
        };
        let mut out = std::io::stdout().lock();
        let written = if escape {
            let mut shown = TerminalText::default();
            let mut text = shown.render(&bytes);
            text.push_str(&shown.finish());
            text.push('\n');
            out.write_all(text.as_bytes())
        } else {
            out.write_all(&bytes).and_then(|()| out.write_all(b"\n"))
        };
        if written.and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
}
