//! Where text goes: straight to stdout, or above the prompt while the REPL
//! waits for input.
//!
//! Background work (`serve`, `task`) prints while the user may be typing.
//! Writing to stdout then would tear the prompt; rustyline's external printer
//! redraws it instead. The REPL installs that printer here; everything that
//! prints (`print()` in Rhai, server events) goes through [`line`].

use std::{
    io::{IsTerminal, Write},
    sync::Mutex,
};

use rustyline::ExternalPrinter;

type Printer = Box<dyn ExternalPrinter + Send>;

static PRINTER: Mutex<Option<Printer>> = Mutex::new(None);

/// Sends later output through the REPL's printer (the REPL calls this once).
pub fn install_printer(printer: Printer) {
    if let Ok(mut slot) = PRINTER.lock() {
        *slot = Some(printer);
    }
}

/// Prints one line for the user, without garbling a prompt that is showing.
pub fn line(text: &str) {
    if let Ok(mut slot) = PRINTER.lock()
        && let Some(printer) = slot.as_mut()
        && printer.print(format!("{text}\n")).is_ok()
    {
        return;
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `netsh … | head`) is not worth a panic.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Reports something that failed in the background (a server's closure):
/// above the prompt in the REPL, where stdout and stderr are the same
/// terminal and the prompt must not tear; on stderr otherwise, so a
/// script's stdout holds only its data.
pub fn alert(text: &str) {
    if let Ok(mut slot) = PRINTER.lock()
        && let Some(printer) = slot.as_mut()
        && printer.print(format!("{text}\n")).is_ok()
    {
        return;
    }
    error(text);
}

/// Prints an error line to stderr, red when stderr is a colour terminal.
pub fn error(text: &str) {
    to_stderr(text, "31");
}

/// Prints a warning line to stderr (plugin problems and the like), yellow
/// on a colour terminal.
pub fn warn(text: &str) {
    to_stderr(text, "33");
}

/// Prints a side remark to stderr (dim on a colour terminal), so it never
/// mixes with data on stdout.
pub fn note(text: &str) {
    to_stderr(text, "2");
}

/// One line on stderr, in the colour `sgr` (an ANSI style number) when
/// stderr is a colour terminal.
fn to_stderr(text: &str, sgr: &str) {
    let mut err = std::io::stderr().lock();
    if color_enabled(&std::io::stderr()) {
        let _ = writeln!(err, "\x1b[{sgr}m{text}\x1b[0m");
    } else {
        let _ = writeln!(err, "{text}");
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set (no-color.org).
pub fn color_enabled(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether a person is at the REPL: background servers then announce
/// connections as they come and go; scripts stay quiet.
static INTERACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The REPL calls `set_interactive(true)` before reading its first line.
pub fn set_interactive(on: bool) {
    INTERACTIVE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Is the REPL running (rather than a script or `-e`)?
pub fn is_interactive() -> bool {
    INTERACTIVE.load(std::sync::atomic::Ordering::Relaxed)
}
