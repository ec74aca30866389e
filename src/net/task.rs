//! Background work for scripts: `task(|| …)` runs a closure on a thread of
//! its own; `jobs()` lists what runs in the background (tasks, servers, file
//! servers), `stop_all()` stops it, `wait()` waits for it.
//!
//! Rhai is synchronous and cannot pause an evaluation part-way, so a task is
//! an OS thread running Rhai under its own cancellation token (see
//! [`runtime`]): `.stop()` cancels that token, which ends the blocking call
//! the thread is in and, through `on_progress`, any Rhai loop; tasks and
//! servers the task started run under child tokens and stop with it. Ctrl-C
//! at the REPL cancels only the foreground, so background work survives it
//! and stays listed in `jobs()`.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use rhai::plugin::*;
use rhai::{Array, FnPtr};
use tokio::sync::watch;

use crate::console;
use crate::error::{Error, Kind, Result};
use crate::runtime::{
    self, CancellationToken,
    closure::Callback,
    jobs::{self, Job},
};

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Task>("Task");
}

/// How a task ended.
#[derive(Clone)]
enum Outcome {
    Value(Dynamic),
    /// The kind of the closure's error, and where and why it failed.
    Failed(Kind, String),
    Stopped,
}

/// A closure running on its own thread.
#[derive(Clone)]
pub struct Task(Arc<TaskState>);

struct TaskState {
    id: u64,
    token: CancellationToken,
    outcome: Mutex<Option<Outcome>>,
    /// Flips to `true` once `outcome` is set; `join` waits on it.
    finished: watch::Sender<bool>,
    /// How many `join()` calls are waiting: a failure they will report is
    /// not announced as well.
    joiners: AtomicUsize,
}

impl TaskState {
    fn finish(&self, outcome: Outcome) {
        if let Ok(mut slot) = self.outcome.lock()
            && slot.is_none()
        {
            *slot = Some(outcome);
        }
        self.finished.send_replace(true);
    }
}

/// Counts a waiting `join()` for as long as it waits.
struct Joining<'a>(&'a AtomicUsize);

impl<'a> Joining<'a> {
    fn new(joiners: &'a AtomicUsize) -> Self {
        joiners.fetch_add(1, Ordering::SeqCst);
        Joining(joiners)
    }
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks the task finished even if its thread dies without saying how,
/// so `join()` can never wait forever.
struct FinishGuard(Arc<TaskState>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.finish(Outcome::Failed(
            Kind::Io,
            "its thread ended unexpectedly (a bug in netsh)".into(),
        ));
    }
}

impl Task {
    /// Runs `closure` on a new thread, listed in `jobs()` until it ends.
    pub fn start(closure: Callback) -> Result<Task> {
        let token = runtime::child_token();
        let state = Arc::new(TaskState {
            id: jobs::next_id(),
            token: token.clone(),
            outcome: Mutex::new(None),
            finished: watch::Sender::new(false),
            joiners: AtomicUsize::new(0),
        });
        // Listed before it runs, so jobs() lists it before what it starts.
        let task = Task(state.clone());
        jobs::add(Arc::new(task.clone()));
        let task_state = state.clone();
        let spawned = runtime::spawn_rhai_thread(
            format!("netsh-task-{}", state.id),
            token.clone(),
            move || {
                let guard = FinishGuard(task_state);
                let outcome = match closure.call(Vec::new()) {
                    // A value that made it out before stop() is still the result.
                    Ok(value) => Outcome::Value(value),
                    Err(_) if token.is_cancelled() => Outcome::Stopped,
                    Err(err) => Outcome::Failed(
                        crate::error::kind_of(&err),
                        crate::error::describe(&err, closure.source()),
                    ),
                };
                // At the REPL, a failure nobody is waiting for is said, as a
                // shell says a background job exited; a script learns it
                // from join().
                if let Outcome::Failed(_, message) = &outcome
                    && console::is_interactive()
                    && guard.0.joiners.load(Ordering::SeqCst) == 0
                {
                    // The message may quote a peer's bytes; `line` is raw.
                    let message = crate::console::terminal_text(message);
                    console::line(&format!("task #{} failed: {message}", guard.0.id));
                }
                guard.0.finish(outcome);
            },
        );
        if let Err(e) = spawned {
            state.finish(Outcome::Stopped);
            return Err(e);
        }
        Ok(task)
    }

    pub fn is_done(&self) -> bool {
        *self.0.finished.borrow()
    }

    /// Cancels the task: its blocking call and its Rhai loops stop, and so
    /// does the work it started.
    pub fn stop(&self) {
        self.0.token.cancel();
    }

    /// Waits for the task (at most `timeout`) and returns its result.
    pub fn join(&self, timeout: Option<Duration>) -> Result<Dynamic> {
        let _joining = Joining::new(&self.0.joiners);
        let mut finished = self.0.finished.subscribe();
        runtime::block_on(async move {
            let wait = async {
                // The sender lives in `self`, so this cannot see it dropped.
                let _ = finished.wait_for(|done| *done).await;
                Ok(())
            };
            match timeout {
                Some(after) => {
                    runtime::within(
                        after,
                        || "waiting for the task to finish (it is still running)".into(),
                        wait,
                    )
                    .await
                }
                None => wait.await,
            }
        })?;
        let outcome = self.0.outcome.lock().ok().and_then(|o| o.clone());
        match outcome {
            Some(Outcome::Value(value)) => Ok(value),
            Some(Outcome::Failed(kind, message)) => Err(Error::TaskFailed { kind, message }),
            Some(Outcome::Stopped) => Err(Error::Closed("the task was stopped with stop()".into())),
            None => Err(Error::TaskFailed {
                kind: Kind::Io,
                message: "it ended without a result".into(),
            }),
        }
    }

    fn state_word(&self) -> &'static str {
        match self.0.outcome.lock().ok().and_then(|o| o.clone()) {
            None if self.0.token.is_cancelled() => "stopping",
            None => "running",
            Some(Outcome::Value(_)) => "done",
            Some(Outcome::Failed(..)) => "failed",
            Some(Outcome::Stopped) => "stopped",
        }
    }
}

impl Job for Task {
    fn stop(&self) {
        Task::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.finished.subscribe()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task #{} ({})", self.0.id, self.state_word())
    }
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};
    use crate::net::tcp::wrong_type;

    /// Runs a closure on its own thread and returns a `Task` at once;
    /// `.join()` waits for its result. The closure gets its own copies of
    /// the variables it captures (handles like `Conn` or `Listener` still
    /// refer to the same socket); to share changing values between tasks,
    /// use `share(v)` or `channel()`.
    ///
    /// ```rhai
    /// let t = task(|| { sleep(100); 42 });
    /// print(t.join());   // 42
    /// ```
    ///
    /// Fails when: the closure takes parameters, or the system cannot start
    /// another thread.
    #[rhai_fn(return_raw)]
    pub fn task(ctx: NativeCallContext, f: FnPtr) -> ScriptResult<Task> {
        Callback::new(&ctx, f, "the closure", &[])
            .and_then(Task::start)
            .map_err(fail("task"))
    }

    /// Catches `task` given something other than a closure.
    ///
    /// ```rhai
    /// task(|| print("hi"))   // not task(print("hi"))
    /// ```
    ///
    /// Fails when: always: the argument is not a closure.
    #[rhai_fn(return_raw, name = "task")]
    pub fn task_wrong_type(f: Dynamic) -> ScriptResult<Task> {
        Err(fail("task")(wrong_type("a closure like || { … }", &f)))
    }

    /// Waits for the task to finish and returns the closure's value. Ctrl-C
    /// ends the wait, not the task: it stays in `jobs()`.
    ///
    /// ```rhai
    /// let answer = t.join();
    /// ```
    ///
    /// Fails when: the closure failed (its error is re-raised, with where it
    /// happened), the task was stopped, or Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn join(t: &mut Task) -> ScriptResult<Dynamic> {
        t.join(None).map_err(fail("join"))
    }

    /// Waits at most `timeout_ms` milliseconds for the task's result (0: no
    /// limit).
    ///
    /// ```rhai
    /// let answer = t.join(5000);
    /// ```
    ///
    /// Fails when: `timeout_ms` is negative, the task is still running after
    /// `timeout_ms` (it keeps running), the closure failed, the task was
    /// stopped, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "join")]
    pub fn join_timeout(t: &mut Task, timeout_ms: i64) -> ScriptResult<Dynamic> {
        crate::net::options::timeout(timeout_ms)
            .and_then(|after| t.join(after))
            .map_err(fail("join"))
    }

    /// `join()` with options: `timeout` (milliseconds, 0: no limit).
    ///
    /// ```rhai
    /// let answer = t.join(#{timeout: 5000});
    /// ```
    ///
    /// Fails when: an option is unknown or not a number, the task is still
    /// running after the timeout, the closure failed, the task was stopped,
    /// or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "join")]
    pub fn join_options(t: &mut Task, options: rhai::Map) -> ScriptResult<Dynamic> {
        crate::net::options::wait_option(&options, None)
            .and_then(|after| t.join(after))
            .map_err(fail("join"))
    }

    /// Whether the task has finished (successfully or not).
    ///
    /// ```rhai
    /// while !t.done { sleep(10) }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "done", pure)]
    pub fn task_done(t: &mut Task) -> bool {
        t.is_done()
    }

    /// Stops the task: the blocking call it is in (accept, recv, sleep…),
    /// its loops, and the tasks and servers it started end; `.join()` then
    /// fails with "stopped".
    ///
    /// ```rhai
    /// let t = task(|| loop { sleep(1000) }); t.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn task_stop(t: &mut Task) {
        t.stop();
    }

    /// How a task prints: `Task #3 (running)`, `(done)`, `(failed)`, `(stopped)`.
    ///
    /// ```rhai
    /// print(t)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn task_to_string(t: &mut Task) -> String {
        format!("{t:?}")
    }

    /// What runs in the background, like a shell's `jobs`: the running
    /// tasks, servers and file servers, oldest first. Each has `.stop()`.
    ///
    /// ```rhai
    /// for j in jobs() { print(j) }
    /// jobs()[0].stop();
    /// ```
    ///
    /// Fails when: never.
    pub fn jobs() -> Array {
        jobs::running().iter().map(|job| job.handle()).collect()
    }

    /// Stops every task, server and file server, and waits a moment (at most
    /// a second) for them to end, so `jobs()` then lists none; returns how
    /// many ran.
    ///
    /// ```rhai
    /// stop_all()   // 2
    /// ```
    ///
    /// Fails when: never.
    pub fn stop_all() -> i64 {
        jobs::stop_all() as i64
    }

    /// Waits until every background task and server has ended (servers end
    /// when something calls their `.stop()`). A script's background work is
    /// stopped when the script ends, so a script that wants it to finish
    /// first calls `wait()`.
    ///
    /// ```rhai
    /// task(|| { sleep(200); print("done") });
    /// wait();
    /// ```
    ///
    /// Fails when: called from inside a task or a server's handler (it
    /// would wait for itself), or interrupted by Ctrl-C (the jobs keep
    /// running).
    #[rhai_fn(return_raw, name = "wait")]
    pub fn wait_all() -> ScriptResult<()> {
        jobs::wait_all().map_err(fail("wait"))
    }
}
