//! Concurrency for scripts: `task(|| …)` runs a closure on a thread of its
//! own, `serve(port, |conn| …)` runs one per accepted connection.
//!
//! Rhai is synchronous, so concurrency here means OS threads, each running
//! Rhai code under its own cancellation token (see [`runtime`]): `.stop()`
//! cancels that token, which ends the blocking call the thread is in and,
//! through `on_progress`, any Rhai loop. Ctrl-C at the REPL cancels only the
//! foreground token, so servers and tasks the user left running survive it.
//!
//! `serve` accepts on the tokio runtime (no Rhai code runs there) and starts
//! one OS thread per connection. An idle connection costs a thread whose
//! stack is mostly untouched (so not resident), a 16 KiB read buffer and
//! two descriptors; [`RHAI_THREAD_STACK`] is sized for Rhai's full call
//! depth (64), which a test checks.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rhai::plugin::*;
use rhai::{AST, EvalAltResult, FnPtr};
use tokio::{net::TcpListener, sync::watch};

use crate::console;
use crate::error::{Error, Result};
use crate::net::{addr, tcp::Conn};
use crate::runtime::{self, CancellationToken};
use crate::shell::{Session, describe};

/// The stack of each thread that runs a closure. Rhai evaluates recursively,
/// so this bounds the script's call depth: the engine allows 64 nested
/// calls, and a test checks that reaching that limit is a Rhai error, not a
/// stack overflow. Measured: a call level with a loop in it takes about
/// 16 KiB of stack in debug builds and more in release builds, where
/// inlining makes frames larger (512 KiB overflowed at depth 62 in both).
/// Untouched stack pages cost no memory, so this is reserved address space,
/// not RSS: the 1,000-connection benchmark shows the real cost.
pub const RHAI_THREAD_STACK: usize = 2 * 1024 * 1024;

/// The Rhai module of this capability.
pub fn module() -> Module {
    let mut module = exported_module!(api);
    module.set_custom_type::<Task>("Task");
    module.set_custom_type::<Server>("Server");
    module
}

/// Starts an OS thread that runs Rhai code under `token`.
fn spawn_rhai_thread(
    name: String,
    token: CancellationToken,
    work: impl FnOnce() + Send + 'static,
) -> Result<()> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(RHAI_THREAD_STACK)
        .spawn(move || {
            runtime::set_cancel_token(token);
            work()
        })
        .map(drop)
        .map_err(|e| Error::io("starting a thread", None, e))
}

/// How a task ended.
#[derive(Clone)]
enum Outcome {
    Value(Dynamic),
    Failed(String),
    Stopped,
}

/// A closure running on its own thread.
#[derive(Clone)]
pub struct Task(Arc<TaskState>);

struct TaskState {
    token: CancellationToken,
    outcome: std::sync::Mutex<Option<Outcome>>,
    /// Flips to `true` once `outcome` is set; `join` waits on it.
    finished: watch::Sender<bool>,
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

/// Marks the task finished even if its thread dies without saying how,
/// so `join()` can never wait forever.
struct FinishGuard(Arc<TaskState>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.finish(Outcome::Failed(
            "its thread ended unexpectedly (a bug in netsh)".into(),
        ));
    }
}

impl Task {
    /// Runs `closure` on a new thread.
    pub fn start(closure: Callback) -> Result<Task> {
        let token = CancellationToken::new();
        let state = Arc::new(TaskState {
            token: token.clone(),
            outcome: std::sync::Mutex::new(None),
            finished: watch::Sender::new(false),
        });
        let task_state = state.clone();
        spawn_rhai_thread("netsh-task".into(), token.clone(), move || {
            let guard = FinishGuard(task_state);
            let outcome = match closure.call(Vec::new()) {
                // A value that made it out before stop() is still the result.
                Ok(value) => Outcome::Value(value),
                Err(_) if token.is_cancelled() => Outcome::Stopped,
                Err(err) => Outcome::Failed(describe(&err, closure.source())),
            };
            guard.0.finish(outcome);
        })?;
        Ok(Task(state))
    }

    pub fn is_done(&self) -> bool {
        *self.0.finished.borrow()
    }

    /// Cancels the task: its blocking call and its Rhai loop stop.
    pub fn stop(&self) {
        self.0.token.cancel();
    }

    /// Waits for the task (at most `timeout`) and returns its result.
    pub fn join(&self, timeout: Option<Duration>) -> Result<Dynamic> {
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
            Some(Outcome::Failed(message)) => Err(Error::TaskFailed(message)),
            Some(Outcome::Stopped) => Err(Error::Closed("the task was stopped with stop()".into())),
            None => Err(Error::TaskFailed("it ended without a result".into())),
        }
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_done() { "done" } else { "running" };
        write!(f, "Task({state})")
    }
}

/// A background server: accepts connections and runs a closure per connection.
#[derive(Clone)]
pub struct Server(Arc<ServerState>);

struct ServerState {
    addr: SocketAddr,
    /// How events and errors are prefixed: `serve 9000`.
    label: String,
    /// Cancelled by `stop()`; each connection's token is a child of it.
    token: CancellationToken,
    served: AtomicU64,
    active: AtomicU64,
    /// Flips to `true` when the accept loop has ended and the port is free.
    stopped: watch::Sender<bool>,
}

/// Counts a connection as active for as long as its thread runs.
struct ActiveGuard(Arc<ServerState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    /// Binds `bind` and serves each connection with `closure` on its own thread.
    pub fn start(bind: SocketAddr, closure: Callback) -> Result<Server> {
        raise_open_file_limit();
        let listener = runtime::block_on(async move { crate::net::tcp::bind_listener(bind) })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", None, e))?;
        let state = Arc::new(ServerState {
            addr,
            label: format!("serve {}", addr.port()),
            token: CancellationToken::new(),
            served: AtomicU64::new(0),
            active: AtomicU64::new(0),
            stopped: watch::Sender::new(false),
        });
        runtime::handle().spawn(accept_loop(state.clone(), listener, closure));
        if console::is_interactive() {
            console::line(&format!("{}: listening on {addr}", state.label));
        }
        Ok(Server(state))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    pub fn served(&self) -> u64 {
        self.0.served.load(Ordering::Relaxed)
    }

    pub fn active(&self) -> u64 {
        self.0.active.load(Ordering::Relaxed)
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.stopped.borrow()
    }

    /// Stops accepting and interrupts every running connection closure;
    /// waits (up to 2 s) until the listening port is free again. Closures
    /// finish on their own threads shortly after.
    pub fn stop(&self) {
        self.0.token.cancel();
        let mut stopped = self.0.stopped.subscribe();
        // Not `runtime::block_on`: `stop()` must work even on a thread whose
        // own token was cancelled (a handler stopping its own server).
        if tokio::runtime::Handle::try_current().is_err() {
            runtime::handle().block_on(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), stopped.wait_for(|done| *done))
                        .await;
            });
        }
    }

    /// Blocks until the server is stopped (by `stop()` from a connection
    /// closure or a task), or Ctrl-C.
    pub fn wait(&self) -> Result<()> {
        let mut stopped = self.0.stopped.subscribe();
        runtime::block_on(async move {
            let _ = stopped.wait_for(|done| *done).await;
            Ok(())
        })
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_stopped() {
            "stopped"
        } else {
            "running"
        };
        write!(
            f,
            "Server({}, {state}, {} served, {} active)",
            self.0.addr,
            self.served(),
            self.active()
        )
    }
}

/// Accepts until stopped; each connection gets a thread running `closure`.
async fn accept_loop(state: Arc<ServerState>, listener: TcpListener, closure: Callback) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = state.token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                state.served.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = start_connection(&state, stream, &closure) {
                    console::line(&format!("{}: {e}", state.label));
                }
            }
            Err(e) => {
                // Usually out of file descriptors: say so, and pause rather
                // than spin, since the pending connection stays queued.
                console::line(&format!(
                    "{}: {}",
                    state.label,
                    Error::io("accepting", None, e)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    state.stopped.send_replace(true);
    if console::is_interactive() {
        console::line(&format!("{}: stopped", state.label));
    }
}

/// Starts the thread that serves one connection.
fn start_connection(
    state: &Arc<ServerState>,
    stream: tokio::net::TcpStream,
    closure: &Callback,
) -> Result<()> {
    let conn = Conn::new(stream)?;
    let peer = conn.peer();
    state.active.fetch_add(1, Ordering::Relaxed);
    let active = ActiveGuard(state.clone());
    let token = state.token.child_token();
    let closure = closure.clone();
    let handler_conn = conn.clone();
    let started = spawn_rhai_thread(format!("netsh-conn-{peer}"), token.clone(), move || {
        let state = &active.0;
        if console::is_interactive() {
            console::line(&format!("{}: {peer} connected", state.label));
        }
        let result = closure.call(vec![Dynamic::from(handler_conn.clone())]);
        // The peer sees end of stream when the closure is done with it.
        handler_conn.close();
        match result {
            Err(_) if token.is_cancelled() => {}
            Err(err) => console::line(&format!(
                "{}: {peer}: {}",
                state.label,
                describe(&err, closure.source())
            )),
            Ok(_) if console::is_interactive() => {
                console::line(&format!("{}: {peer} closed", state.label));
            }
            Ok(_) => {}
        }
    });
    if started.is_err() {
        conn.close();
    }
    started
}

/// Lifts the soft limit on open files to the hard limit, once, so a server
/// can hold thousands of connections (the soft limit is often 1024).
fn raise_open_file_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    });
}

/// Calls a Rhai closure with these arguments.
type CallFn =
    dyn Fn(Vec<Dynamic>) -> std::result::Result<Dynamic, Box<EvalAltResult>> + Send + Sync;

/// A Rhai closure that any thread can call, with the name of the source
/// that defined it (for error messages).
#[derive(Clone)]
pub struct Callback {
    call: Arc<CallFn>,
    source: String,
}

impl Callback {
    fn call(&self, args: Vec<Dynamic>) -> std::result::Result<Dynamic, Box<EvalAltResult>> {
        (self.call)(args)
    }

    fn source(&self) -> &str {
        &self.source
    }
}

/// The closure behind a `FnPtr`, callable from another thread.
///
/// A closure must be called with the functions of the code that defined
/// it. For the script or REPL that is the session's AST; for a closure made
/// inside a plugin function (`echo::serve`), it is that plugin's module,
/// which is among the namespaces of the current call, so it is looked up
/// there and wrapped in an AST of its own.
fn closure_of(ctx: &NativeCallContext, f: FnPtr) -> Result<Callback> {
    let unavailable = || Error::invalid("closures cannot run in the background here");
    let session = Session::of(ctx).ok_or_else(unavailable)?;
    let engine = session.engine().ok_or_else(unavailable)?;
    let main_ast = session.ast();
    let name = f.fn_name().to_string();
    let in_main = main_ast.iter_functions().any(|def| def.name == name);
    let defining_module = (!in_main)
        .then(|| {
            ctx.iter_namespaces().find(|module| {
                // A closure's parameters are its captured variables plus
                // its own; the name is unique, so any count will do.
                (0..=32).any(|params| module.get_script_fn(&name, params).is_some())
            })
        })
        .flatten();
    let (ast, source) = match defining_module {
        Some(module) => {
            let source = module.id().unwrap_or("plugin").to_string();
            (Arc::new(AST::new_from_module(module.clone())), source)
        }
        None => {
            let source = main_ast.source().unwrap_or("script").to_string();
            (main_ast, source)
        }
    };
    Ok(Callback {
        source,
        call: Arc::new(move |args| f.call::<Dynamic>(&engine, &ast, args)),
    })
}

#[export_module]
mod api {
    use crate::error::{ScriptResult, fail};
    use crate::net::tcp::wrong_type;

    /// Runs a closure on its own thread and returns a `Task` at once.
    /// `.join()` waits for its result. Variables the closure captures are
    /// shared with it, and locked while it runs a method on them: to use a
    /// connection on both sides, give the task its own copy
    /// (`let mine = c; task(|| mine.recv())`).
    ///
    /// ```rhai
    /// let t = task(|| { sleep(100); 42 });
    /// print(t.join());   // 42
    /// ```
    ///
    /// Fails when: the system cannot start another thread.
    #[rhai_fn(return_raw)]
    pub fn task(ctx: NativeCallContext, f: FnPtr) -> ScriptResult<Task> {
        closure_of(&ctx, f)
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

    /// Waits for the task to finish and returns the closure's value.
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

    /// Waits at most `timeout_ms` milliseconds for the task's result.
    ///
    /// ```rhai
    /// let answer = t.join(5000);
    /// ```
    ///
    /// Fails when: the task is still running after `timeout_ms` (it keeps
    /// running), the closure failed, the task was stopped, or Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "join")]
    pub fn join_timeout(t: &mut Task, timeout_ms: i64) -> ScriptResult<Dynamic> {
        crate::net::helpers::millis(timeout_ms, "timeout")
            .and_then(|after| t.join(Some(after)))
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

    /// Stops the task: the blocking call it is in (accept, recv, sleep…)
    /// and its loops end; `.join()` then fails with "stopped".
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

    /// How a task prints: `Task(running)` or `Task(done)`.
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

    /// Serves a port in the background: accepts every connection and runs
    /// the closure with it on its own thread, so clients are served
    /// concurrently. The connection is closed when the closure returns. An
    /// error in one connection is printed and the server goes on.
    ///
    /// ```rhai
    /// let s = serve(9000, |c| { loop { let line = c.recv_line(); if line == () { break } c.send_line(line) } });
    /// ```
    ///
    /// Fails when: the port is out of range or already in use.
    #[rhai_fn(return_raw)]
    pub fn serve(ctx: NativeCallContext, port: i64, f: FnPtr) -> ScriptResult<Server> {
        addr::port(port)
            .map(addr::any_addr)
            .and_then(|bind| Server::start(bind, closure_of(&ctx, f)?))
            .map_err(fail("serve"))
    }

    /// Serves one local address, like `serve(port, closure)`.
    ///
    /// ```rhai
    /// let s = serve("127.0.0.1:0", |c| c.send_line("hello"));
    /// print(s.port);
    /// ```
    ///
    /// Fails when: the address is malformed or not local, or the port is in use.
    #[rhai_fn(return_raw, name = "serve")]
    pub fn serve_addr(ctx: NativeCallContext, bind: &str, f: FnPtr) -> ScriptResult<Server> {
        addr::parse_bind(bind)
            .and_then(|bind| Server::start(bind, closure_of(&ctx, f)?))
            .map_err(fail("serve"))
    }

    /// Catches `serve` with arguments of the wrong type.
    ///
    /// ```rhai
    /// serve(9000, |c| c.send_line("hi"))
    /// ```
    ///
    /// Fails when: always: it needs a port or address, then a closure.
    #[rhai_fn(return_raw, name = "serve")]
    pub fn serve_wrong_type(bind: Dynamic, f: Dynamic) -> ScriptResult<Server> {
        let err = if bind.is_int() || bind.is_string() {
            wrong_type("a closure like |conn| { … } as the second argument", &f)
        } else {
            wrong_type("a port number or an address like \"127.0.0.1:9000\"", &bind)
        };
        Err(fail("serve")(err))
    }

    /// The port the server listens on.
    ///
    /// ```rhai
    /// serve(0, |c| ()).port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn server_port(s: &mut Server) -> i64 {
        s.addr().port() as i64
    }

    /// The address the server listens on, as `"ip:port"`.
    ///
    /// ```rhai
    /// s.addr   // "[::]:9000"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn server_addr(s: &mut Server) -> String {
        s.addr().to_string()
    }

    /// How many connections the server has accepted so far.
    ///
    /// ```rhai
    /// s.served
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "served", pure)]
    pub fn server_served(s: &mut Server) -> i64 {
        s.served() as i64
    }

    /// How many connections are being served right now.
    ///
    /// ```rhai
    /// s.active
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "active", pure)]
    pub fn server_active(s: &mut Server) -> i64 {
        s.active() as i64
    }

    /// Stops the server: no more connections are accepted, the running
    /// closures are interrupted, and the port is free when this returns.
    ///
    /// ```rhai
    /// s.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn server_stop(s: &mut Server) {
        s.stop();
    }

    /// Blocks until the server stops (a closure or a task calls `.stop()`),
    /// or Ctrl-C. Lets a script keep its server running.
    ///
    /// ```rhai
    /// serve(9000, |c| c.send_line("hi")).wait();
    /// ```
    ///
    /// Fails when: interrupted by Ctrl-C.
    #[rhai_fn(return_raw, pure)]
    pub fn wait(s: &mut Server) -> ScriptResult<()> {
        s.wait().map_err(fail("wait"))
    }

    /// How a server prints: `Server([::]:9000, running, 3 served, 1 active)`.
    ///
    /// ```rhai
    /// print(s)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn server_to_string(s: &mut Server) -> String {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use crate::shell::help::HelpIndex;

    /// Every function of the TCP, task and UDP capabilities documents an
    /// example and when it fails, since `help()` shows exactly that.
    #[test]
    fn every_function_says_when_it_fails() {
        let index = HelpIndex::build(&[]);
        let mut missing = Vec::new();
        for name in ["tcp", "task", "udp", "transfer", "http"] {
            let group = index.group(name).expect("the capability is registered");
            assert!(!group.entries.is_empty(), "{name} has no functions");
            for entry in &group.entries {
                if !entry.doc.contains("```rhai") || !entry.doc.contains("Fails when:") {
                    missing.push(entry.signature.clone());
                }
            }
        }
        assert!(
            missing.is_empty(),
            "without an example or 'Fails when:': {missing:?}"
        );
    }

    /// The examples in those docs are valid Rhai (they are what users copy).
    #[test]
    fn examples_parse() {
        let index = HelpIndex::build(&[]);
        let engine = rhai::Engine::new();
        let mut broken = Vec::new();
        for name in ["tcp", "task", "udp", "transfer", "http"] {
            for entry in &index.group(name).expect("registered").entries {
                let Some(start) = entry.doc.find("```rhai") else {
                    continue;
                };
                let code = &entry.doc[start + "```rhai".len()..];
                let code = &code[..code.find("```").unwrap_or(code.len())];
                if let Err(e) = engine.compile(code) {
                    broken.push(format!("{}: {e}", entry.signature));
                }
            }
        }
        assert!(broken.is_empty(), "examples that do not parse: {broken:#?}");
    }
}
