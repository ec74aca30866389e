//! Scripts that can fail a CI job: `exit(n)` ends the script with process
//! status `n`, `assert(cond, "message")` and `expect_eq(actual, expected)`
//! stop it with `FILE:LINE:COL: assert: message`.
//!
//! `exit` uses Rhai's own way out ([`EvalAltResult::Exit`]), which Rhai
//! turns into the value of the whole evaluation. A script whose last value
//! is `3` must not exit with status 3, so `exit` also notes the status for
//! the thread that called it, and the shell asks [`take_exit_request`]
//! after each evaluation: a noted status ends the script, however the
//! evaluation ended. That matters because a closure called by a native
//! function (`map`, `filter`, `for_each`, a progress closure…) hands its
//! `Exit` back wrapped in the caller's error, which `try` can catch; so
//! from the moment `exit` is called the engine's progress hook
//! ([`exit_requested`]) stops every further step, and nothing after it runs,
//! a `catch` block included. Only a closure on a thread of its own (a
//! `task`, a server's handler) cannot end the script: there `exit` fails
//! with an error that says so, at its line and column.

use std::cell::Cell;

use rhai::plugin::*;

thread_local! {
    static EXIT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Forgets any earlier `exit` on this thread (before an evaluation starts).
pub fn clear_exit_request() {
    EXIT.with(|e| e.set(None));
}

/// The status `exit(n)` asked for on this thread during the last
/// evaluation, if it was called: the script ends with it, whether the
/// evaluation then returned a value or an error (the unwinding `exit`
/// caused).
pub fn take_exit_request() -> Option<u8> {
    EXIT.with(Cell::take)
}

/// Has `exit` been called on this thread in the evaluation under way? The
/// engine's progress hook stops the evaluation when it has. A thread-local
/// read, cheap enough for every operation.
pub fn exit_requested() -> bool {
    EXIT.with(Cell::get).is_some()
}

/// The Rhai module with `exit`, `assert` and `expect_eq`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// What `help()` says about `args`, which is a constant, not a function.
pub const ARGS_DOC: &str = "The script's arguments, an array of strings: `netsh x.rhai a b` gives `[\"a\", \"b\"]`; with `-e`, the words after the code. Empty in the REPL.\n\n```rhai\nlet host = if args.is_empty() { \"localhost\" } else { args[0] };\n```\n\nFails when: never (it is a constant).";

#[export_module(manifest)]
mod api {
    use crate::error::{Error, ScriptResult, fail};
    use crate::net::tcp::wrong_type;

    /// Ends the script now with process status `n` (0–255); in the REPL,
    /// leaves the REPL with that status. No `try` catches it, and it works
    /// from any function or closure the script calls (`map`, `filter`,
    /// `sort`, `f.call()`…). A `task` or `serve` closure runs on a thread of
    /// its own and cannot end the script: there `exit` fails that closure.
    ///
    /// ```rhai
    /// if !ok { exit(3) }
    /// ```
    ///
    /// Fails when: `n` is not between 0 and 255, or it is called in a
    /// `task` or a server's closure.
    #[rhai_fn(return_raw, volatile)]
    pub fn exit(n: i64) -> ScriptResult<()> {
        let status = u8::try_from(n)
            .map_err(|_| Error::invalid(format!("the status must be 0–255, not {n}")))
            .map_err(fail("exit"))?;
        if crate::runtime::in_background() {
            return Err(fail("exit")(Error::invalid(
                "cannot end the script from a task or a server's closure, which runs on a \
                 thread of its own; return or throw from the closure instead",
            )));
        }
        EXIT.with(|e| e.set(Some(status)));
        Err(EvalAltResult::Exit(Dynamic::from_int(n), Position::NONE).into())
    }

    /// Ends the script now with status 0 (success).
    ///
    /// ```rhai
    /// exit()
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "exit", return_raw, volatile)]
    pub fn exit_ok() -> ScriptResult<()> {
        exit(0)
    }

    /// Catches `exit` given something other than a whole number.
    ///
    /// ```rhai
    /// exit(1)   // not exit("failed")
    /// ```
    ///
    /// Fails when: always: the status is not a whole number.
    #[rhai_fn(name = "exit", return_raw, volatile)]
    pub fn exit_wrong_type(n: Dynamic) -> ScriptResult<()> {
        Err(fail("exit")(wrong_type("a whole number 0–255", &n)))
    }

    /// Stops the script with `assert: message` (and its file, line and
    /// column) unless `condition` is true.
    ///
    /// ```rhai
    /// assert(c.recv_line() == "+OK", "the server did not greet us");
    /// ```
    ///
    /// Fails when: `condition` is false, or is not true/false.
    #[rhai_fn(name = "assert", return_raw)]
    pub fn assert_message(condition: Dynamic, message: Dynamic) -> ScriptResult<()> {
        let holds = condition
            .as_bool()
            .map_err(|_| wrong_type("true or false as the condition", &condition))
            .map_err(fail("assert"))?;
        if holds {
            Ok(())
        } else {
            Err(fail("assert")(Error::Assertion(message.to_string())))
        }
    }

    /// Stops the script with `assert: assertion failed` unless `condition` is true.
    ///
    /// ```rhai
    /// assert(resolve("localhost").len() > 0);
    /// ```
    ///
    /// Fails when: `condition` is false, or is not true/false.
    #[rhai_fn(name = "assert", return_raw)]
    pub fn assert_bare(condition: Dynamic) -> ScriptResult<()> {
        assert_message(condition, Dynamic::from("assertion failed"))
    }

    /// Stops the script unless `actual == expected`, showing both:
    /// `expect_eq: got 4, expected 3`.
    ///
    /// ```rhai
    /// expect_eq(c.recv_line(), "hello");
    /// ```
    ///
    /// Fails when: the values differ (values of different types always do,
    /// except whole and decimal numbers).
    #[rhai_fn(return_raw)]
    pub fn expect_eq(
        ctx: NativeCallContext,
        actual: Dynamic,
        expected: Dynamic,
    ) -> ScriptResult<()> {
        if super::equal(&ctx, &actual, &expected) {
            return Ok(());
        }
        let show = |v: &Dynamic| crate::shell::display::literal(ctx.engine(), v);
        Err(fail("expect_eq")(Error::Assertion(format!(
            "got {}, expected {}",
            show(&actual),
            show(&expected)
        ))))
    }
}

/// `a == b` as Rhai's `==` has it; for types without `==` (a `Conn`), the
/// same type printing the same.
fn equal(ctx: &NativeCallContext, a: &Dynamic, b: &Dynamic) -> bool {
    match ctx.call_native_fn::<bool>("==", (a.clone(), b.clone())) {
        Ok(same) => same,
        Err(_) => {
            a.type_name() == b.type_name()
                && crate::shell::display::literal(ctx.engine(), a)
                    == crate::shell::display::literal(ctx.engine(), b)
        }
    }
}
