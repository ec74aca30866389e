//! What a server tells the person at the REPL: connections coming and
//! going, handler errors — at most [`PER_SECOND`] lines a second, then one
//! line counting the rest, so 2,000 clients do not bury the prompt under
//! 4,000 lines. `quiet: true` keeps the comings and goings to itself; errors
//! are always reported (in scripts too, where there are no announcements).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::console;

/// Lines per second before the rest are counted instead of printed.
const PER_SECOND: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);

pub struct Announcer {
    /// `serve 9000`, the prefix of every line.
    label: String,
    quiet: bool,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    printed: u32,
    suppressed: u64,
    flush_scheduled: bool,
}

impl Announcer {
    pub fn new(label: String, quiet: bool) -> Announcer {
        Announcer {
            label,
            quiet,
            window: Mutex::new(Window {
                started: Instant::now(),
                printed: 0,
                suppressed: 0,
                flush_scheduled: false,
            }),
        }
    }

    /// A connection came or went, the server started or stopped: shown only
    /// to a person at the REPL, and not at all with `quiet: true`.
    pub fn event(self: &Arc<Self>, text: &str) {
        if !self.quiet && console::is_interactive() {
            self.say(text, console::line);
        }
    }

    /// Something failed: always shown, on stderr outside the REPL.
    pub fn error(self: &Arc<Self>, text: &str) {
        self.say(text, console::alert);
    }

    fn say(self: &Arc<Self>, text: &str, print: fn(&str)) {
        let Ok(mut window) = self.window.lock() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(window.started) >= WINDOW {
            let missed = std::mem::take(&mut window.suppressed);
            window.started = now;
            window.printed = 0;
            if missed > 0 {
                self.summary(missed);
            }
        }
        if window.printed < PER_SECOND {
            window.printed += 1;
            drop(window);
            print(&format!("{}: {text}", self.label));
            return;
        }
        window.suppressed += 1;
        if !window.flush_scheduled {
            window.flush_scheduled = true;
            let at = window.started + WINDOW;
            let me = self.clone();
            crate::runtime::handle().spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                me.flush();
            });
        }
    }

    /// Prints the count of what the last window held back.
    fn flush(&self) {
        let missed = match self.window.lock() {
            Ok(mut window) => {
                window.flush_scheduled = false;
                std::mem::take(&mut window.suppressed)
            }
            Err(_) => return,
        };
        if missed > 0 {
            self.summary(missed);
        }
    }

    fn summary(&self, missed: u64) {
        let hint = if self.quiet {
            ""
        } else {
            " (the option quiet: true hides connection events)"
        };
        // Outside the REPL only errors are said, so the count is of errors.
        let print = if console::is_interactive() {
            console::line
        } else {
            console::alert
        };
        print(&format!(
            "{}: … and {missed} more in the last second{hint}",
            self.label
        ));
    }
}
