//! `record("session.rhai")` … `record()`: turning a REPL session into the
//! script that does it again, and `show(v)`, which prints a value as the
//! REPL shows it (what a recorded script prints a shown value with).
//!
//! Only the REPL records: it marks its own thread with [`at_prompt`], and
//! tells this module how each input went ([`ran`], [`failed`]); the file
//! and what goes in it are [`super::recording`]'s. A recording lives on the
//! REPL's thread, so a `task` or a script cannot reach it. Inputs that call
//! `record` or `help` are left out ([`leave_out`]): they are about the
//! session, not part of what it did.

use std::{
    cell::{Cell, RefCell},
    path::{Path, PathBuf},
};

use rhai::Engine;
use rhai::plugin::*;

use super::recording::{Mode, Recording, is_lone_call};
use crate::{
    console,
    error::{Error, Result},
    net::helpers::quoted,
};

/// The REPL's thread: the `init.rhai` that ran first, and the recording.
struct Prompt {
    init: Option<PathBuf>,
    recording: Option<Recording>,
}

thread_local! {
    static PROMPT: RefCell<Option<Prompt>> = const { RefCell::new(None) };
    /// The function that asked for the input being run not to be recorded.
    static LEFT_OUT: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Marks this thread as the REPL's: `record` works here and nowhere else.
/// `init` is the `init.rhai` that runs before the first prompt, if any
/// (a recording's header says its definitions are not in the file).
pub fn at_prompt(init: Option<PathBuf>) {
    PROMPT.with(|p| {
        *p.borrow_mut() = Some(Prompt {
            init,
            recording: None,
        })
    });
}

/// Why `record` does nothing off the REPL's thread.
fn not_at_prompt() -> Error {
    Error::invalid(
        "only the REPL records (it writes what you type at the prompt); \
         a script, -e or a task has nothing to record",
    )
}

/// Starts recording to `path` (`netsh --record FILE`, `record(path)`).
pub fn start(path: &Path, mode: Mode) -> Result<()> {
    PROMPT.with(|p| {
        let mut prompt = p.borrow_mut();
        let Some(prompt) = prompt.as_mut() else {
            return Err(not_at_prompt());
        };
        if let Some(recording) = &prompt.recording {
            return Err(Error::invalid(format!(
                "already recording to {}; record() stops that first",
                quoted(recording.path())
            )));
        }
        let recording = Recording::open(path, mode, prompt.init.as_deref())?;
        console::note(&format!(
            "record: recording to {}; record() stops",
            quoted(path)
        ));
        prompt.recording = Some(recording);
        Ok(())
    })
}

/// Stops recording; what was written where, if a recording was running.
pub fn stop() -> Option<String> {
    PROMPT.with(|p| {
        let recording = p.borrow_mut().as_mut()?.recording.take()?;
        Some(recording.summary())
    })
}

/// `record()`: stops, or says why there is nothing to stop.
fn stop_asked() -> Result<String> {
    if PROMPT.with(|p| p.borrow().is_none()) {
        return Err(not_at_prompt());
    }
    stop()
        .ok_or_else(|| Error::invalid("nothing is being recorded; record(\"session.rhai\") starts"))
}

/// Called before each input runs: forgets what the last one left out.
pub fn begin_input() {
    LEFT_OUT.with(|l| l.set(None));
}

/// Asks that the input being run not be recorded, because it called
/// `name` (`help`, `record`).
pub fn leave_out(name: &'static str) {
    LEFT_OUT.with(|l| l.set(Some(name)));
}

/// Records an input that ran; `shown` is the value the REPL printed for
/// it, if it printed one.
pub fn ran(engine: &Engine, input: &str, shown: Option<&str>) {
    write(input, |r| r.ran(engine, input, shown));
}

/// Records an input that failed, with the error the REPL printed and the
/// variables it set before it failed (the REPL keeps them).
pub fn failed(input: &str, error: &str, set: &[String]) {
    let recording = write(input, |r| r.failed(input, error, set));
    if recording && !set.is_empty() {
        let it = if set.len() == 1 { "it" } else { "them" };
        console::note(&format!(
            "record: the file does not set {} (this input set {it}, then failed); \
             set {it} again on a line of its own if later lines use {it}",
            set.join(", ")
        ));
    }
}

/// Writes one entry, unless the input is left out; whether it was written.
/// A recording that cannot be written stops, saying so: it must not end
/// silently short.
fn write(input: &str, entry: impl FnOnce(&mut Recording) -> Result<()>) -> bool {
    let left_out = LEFT_OUT.with(Cell::take);
    PROMPT.with(|p| {
        let mut prompt = p.borrow_mut();
        let Some(slot) = prompt.as_mut().map(|p| &mut p.recording) else {
            return false;
        };
        if let Some(name) = left_out {
            // `let c = connect(…); record("s.rhai")` would lose `c`: say so.
            if (slot.is_some() || name == "record") && !is_lone_call(input, name) {
                console::note(&format!(
                    "record: this input calls {name}(), so it is not recorded; \
                     type the rest on a line of its own"
                ));
            }
            return false;
        }
        let Some(recording) = slot.as_mut() else {
            return false;
        };
        match entry(recording) {
            Ok(()) => true,
            Err(e) => {
                console::error(&format!("record: {e}; recording stopped"));
                if let Some(recording) = slot.take() {
                    console::note(&recording.summary());
                }
                false
            }
        }
    })
}

/// The Rhai module with `record` and `show`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

#[export_module(manifest)]
mod api {
    use super::{Mode, begin};
    use crate::error::{Error, ScriptResult, fail};
    use crate::net::options::Options;
    use rhai::Map;

    /// Starts writing what you type at the REPL to `path`, as a script
    /// that does it again. Each input that runs is written whole, in order
    /// (function definitions too), under a header saying when, in which
    /// folder and by which netsh; `netsh path` then prints what the
    /// session printed: a value the REPL showed is written as `show(…)`,
    /// and an input that failed as comments, itself and its
    /// `// error: …` (what it did before failing is not done again).
    /// Calls of `record` and `help`, and `exit`, are not written, nor are
    /// the announcements of servers above the prompt. Each input reaches
    /// the file as soon as it has run. An existing file is refused.
    /// `netsh --record FILE` records from the first line.
    ///
    /// ```rhai
    /// record("session.rhai")
    /// ```
    ///
    /// Fails when: not at the REPL prompt (a script, `-e` and tasks have
    /// nothing to record); already recording; `path` exists, is a folder,
    /// or lies in a folder that does not exist; the file cannot be written.
    #[rhai_fn(name = "record", return_raw, volatile)]
    pub fn record(path: &str) -> ScriptResult<()> {
        begin(path, Mode::New)
    }

    /// Starts recording to `path` (see `record(path)`), adding to the file
    /// with `#{append: true}` or replacing it with `#{overwrite: true}`.
    ///
    /// ```rhai
    /// record("session.rhai", #{append: true})
    /// ```
    ///
    /// Fails when: as `record(path)`; both options are true, or an option
    /// is unknown or not true/false.
    #[rhai_fn(name = "record", return_raw, volatile)]
    pub fn record_with(path: &str, options: Map) -> ScriptResult<()> {
        let o = Options::new(&options, &["append", "overwrite"]).map_err(fail("record"))?;
        let append = o.flag("append", false).map_err(fail("record"))?;
        let overwrite = o.flag("overwrite", false).map_err(fail("record"))?;
        let mode = match (append, overwrite) {
            (true, true) => {
                return Err(fail("record")(Error::invalid(
                    "append and overwrite cannot both be true",
                )));
            }
            (true, false) => Mode::Append,
            (false, true) => Mode::Overwrite,
            (false, false) => Mode::New,
        };
        begin(path, mode)
    }

    /// Records the REPL session as a script: `record(path)` starts,
    /// `record()` stops and says how many inputs it wrote, and where.
    ///
    /// ```rhai
    /// record()
    /// ```
    ///
    /// Fails when: nothing is being recorded; not at the REPL prompt.
    #[rhai_fn(name = "record", return_raw, volatile)]
    pub fn record_stop() -> ScriptResult<()> {
        super::leave_out("record");
        let summary = super::stop_asked().map_err(fail("record"))?;
        crate::console::note(&summary);
        Ok(())
    }

    /// Prints `value` as the REPL shows a result: strings as they are,
    /// maps and arrays laid out, `()` as nothing; on a terminal with
    /// control characters escaped, as the REPL does. A recorded session
    /// prints with it what the REPL showed.
    ///
    /// ```rhai
    /// show(resolve("localhost"))
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(volatile)]
    pub fn show(ctx: NativeCallContext, value: Dynamic) {
        if !value.is_unit() {
            crate::console::line(&crate::shell::display::for_stdout(ctx.engine(), &value));
        }
    }
}

/// `record(path, …)`: starts, and leaves this input out of the file.
fn begin(path: &str, mode: Mode) -> crate::error::ScriptResult<()> {
    leave_out("record");
    crate::permit::write(Path::new(path)).map_err(crate::error::fail("record"))?;
    start(Path::new(path), mode).map_err(|e| {
        crate::error::fail("record")(match e {
            Error::Exists(m) => Error::Exists(format!(
                "{m}; record(path, #{{append: true}}) adds to it, #{{overwrite: true}} replaces it"
            )),
            e => e,
        })
    })
}
