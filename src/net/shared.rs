//! State shared between tasks, on purpose: `share(v)`, one value many
//! threads read and change, and `channel()`, a queue that hands values from
//! one thread to another.
//!
//! Closures given to `task` and `serve` capture copies, so no script written
//! the obvious way shares a variable by accident (which, with Rhai's locked
//! shared variables, meant deadlocks). When tasks really must share, these
//! two types say so in the code, and their operations are short and never
//! hold a lock while waiting.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use rhai::FnPtr;
use rhai::plugin::*;

use crate::error::{Error, Result, fail};

type ScriptResultOf<T> = crate::error::ScriptResult<T>;
use crate::runtime::{self, closure::detached};

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Shared>("Shared");
    module.set_custom_type::<Channel>("Channel");
}

/// One value that every copy of the handle sees and changes.
#[derive(Clone)]
pub struct Shared(Arc<SharedState>);

struct SharedState {
    value: Mutex<Dynamic>,
    /// The thread inside `update(|v| …)`, which holds `value` meanwhile: its
    /// closure touching the same value would wait for itself forever.
    updater: Mutex<Option<ThreadId>>,
}

impl Shared {
    fn new(value: Dynamic) -> Shared {
        Shared(Arc::new(SharedState {
            value: Mutex::new(value),
            updater: Mutex::new(None),
        }))
    }

    fn lock(&self) -> Result<MutexGuard<'_, Dynamic>> {
        let me = std::thread::current().id();
        if self.0.updater.lock().is_ok_and(|u| *u == Some(me)) {
            return Err(Error::invalid(
                "this shared value is being changed by update(|v| …) on this thread: \
                 inside the closure, use its parameter instead",
            ));
        }
        self.0
            .value
            .lock()
            .map_err(|_| Error::invalid("the shared value was lost when a thread failed"))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Dynamic) -> Result<T>) -> Result<T> {
        f(&mut *self.lock()?)
    }

    /// Replaces the value with what `f` makes of it, holding the value (and
    /// marking this thread as its updater) meanwhile.
    fn update(
        &self,
        f: impl FnOnce(Dynamic) -> ScriptResultOf<Dynamic>,
    ) -> ScriptResultOf<Dynamic> {
        let mut value = self.lock().map_err(fail("update"))?;
        let _updating = Updating::mark(&self.0.updater);
        let new = f(value.clone())?;
        *value = detached(&new);
        Ok(new)
    }

    fn get(&self) -> Result<Dynamic> {
        self.with(|v| Ok(v.clone()))
    }

    fn set(&self, value: &Dynamic) -> Result<()> {
        let value = detached(value);
        self.with(|v| {
            *v = value;
            Ok(())
        })
    }

    /// Adds `n` to a number, appends to a string or an array; returns the
    /// new value. One step, so two tasks adding at once lose nothing.
    fn add(&self, n: &Dynamic) -> Result<Dynamic> {
        let n = detached(n);
        self.with(|v| {
            let sum = if let (Ok(a), Ok(b)) = (v.as_int(), n.as_int()) {
                a.checked_add(b)
                    .map(Dynamic::from)
                    .ok_or_else(|| Error::invalid(format!("{a} + {b} overflows")))?
            } else if let (Ok(a), Ok(b)) = (v.as_float(), n.as_float()) {
                (a + b).into()
            } else if let (Ok(a), Ok(b)) = (v.as_float(), n.as_int()) {
                (a + b as f64).into()
            } else if let (Ok(a), Ok(b)) = (v.as_int(), n.as_float()) {
                (a as f64 + b).into()
            } else if v.is_string() {
                format!("{v}{n}").into()
            } else if let Some(mut array) = v.clone().try_cast::<rhai::Array>() {
                array.push(n);
                array.into()
            } else {
                return Err(Error::invalid(format!(
                    "cannot add {} to a shared {}; use update(|v| …)",
                    n.type_name(),
                    v.type_name()
                )));
            };
            *v = sum.clone();
            Ok(sum)
        })
    }
}

/// Marks the current thread as a value's updater until dropped.
struct Updating<'a>(&'a Mutex<Option<ThreadId>>);

impl<'a> Updating<'a> {
    fn mark(slot: &'a Mutex<Option<ThreadId>>) -> Self {
        if let Ok(mut u) = slot.lock() {
            *u = Some(std::thread::current().id());
        }
        Updating(slot)
    }
}

impl Drop for Updating<'_> {
    fn drop(&mut self) {
        if let Ok(mut u) = self.0.lock() {
            *u = None;
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.value.try_lock() {
            Ok(v) => write!(f, "share({v:?})"),
            Err(_) => write!(f, "share(…)"),
        }
    }
}

/// A queue between threads: `send` puts a value in, `recv` takes the oldest
/// out, waiting while it is empty. Every copy is the same queue.
#[derive(Clone)]
pub struct Channel {
    tx: async_channel::Sender<Dynamic>,
    rx: async_channel::Receiver<Dynamic>,
}

impl Channel {
    fn new(capacity: Option<usize>) -> Channel {
        let (tx, rx) = match capacity {
            Some(n) => async_channel::bounded(n),
            None => async_channel::unbounded(),
        };
        Channel { tx, rx }
    }

    /// Puts `value` in; with a capacity, waits while the queue is full.
    fn send(&self, value: &Dynamic) -> Result<()> {
        let value = detached(value);
        match self.tx.try_send(value) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(_)) => Err(closed()),
            Err(async_channel::TrySendError::Full(value)) => {
                runtime::block_on(async { self.tx.send(value).await.map_err(|_| closed()) })
            }
        }
    }

    /// The oldest value, waiting (at most `timeout`) for one; `None` when
    /// the channel is closed and empty, or the time is up.
    fn recv(&self, timeout: Option<Duration>) -> Result<Option<Dynamic>> {
        match self.rx.try_recv() {
            Ok(value) => return Ok(Some(value)),
            Err(async_channel::TryRecvError::Closed) => return Ok(None),
            Err(async_channel::TryRecvError::Empty) => {}
        }
        runtime::block_on(async {
            let next = async { Ok(self.rx.recv().await.ok()) };
            match timeout {
                Some(after) => Ok(tokio::time::timeout(after, next)
                    .await
                    .unwrap_or(Ok(None))?),
                None => next.await,
            }
        })
    }
}

fn closed() -> Error {
    Error::Closed("the channel is closed".into())
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.tx.is_closed() { ", closed" } else { "" };
        write!(f, "Channel({} waiting{state})", self.rx.len())
    }
}

#[export_module(manifest)]
mod api {
    use crate::error::ScriptResult;

    /// A value that tasks share on purpose: every copy of the handle sees
    /// the same value (named `share` because `shared` is a Rhai keyword). Read it with `.get()` (or `.value`), change it with
    /// `.set(v)`, `.add(n)` or `.update(|v| …)`.
    ///
    /// ```rhai
    /// let hits = share(0);
    /// let s = serve("127.0.0.1:0", |c| { hits.add(1); c.send_line("hi") });
    /// print(hits.get());
    /// ```
    ///
    /// Fails when: never.
    pub fn share(value: Dynamic) -> Shared {
        Shared::new(detached(&value))
    }

    /// The current value (a copy).
    ///
    /// ```rhai
    /// let n = share(1); n.get()   // 1
    /// ```
    ///
    /// Fails when: a thread failed while changing the value.
    #[rhai_fn(return_raw, pure)]
    pub fn get(s: &mut Shared) -> ScriptResult<Dynamic> {
        s.get().map_err(fail("get"))
    }

    /// The current value, as a property: `s.value`.
    ///
    /// ```rhai
    /// let n = share(1); n.value   // 1
    /// ```
    ///
    /// Fails when: a thread failed while changing the value.
    #[rhai_fn(get = "value", return_raw, pure)]
    pub fn get_value(s: &mut Shared) -> ScriptResult<Dynamic> {
        s.get().map_err(fail("value"))
    }

    /// Replaces the value.
    ///
    /// ```rhai
    /// let last = share(()); last.set("hello");
    /// ```
    ///
    /// Fails when: a thread failed while changing the value.
    #[rhai_fn(return_raw, pure)]
    pub fn set(s: &mut Shared, value: Dynamic) -> ScriptResult<()> {
        s.set(&value).map_err(fail("set"))
    }

    /// Replaces the value, as a property: `s.value = v`.
    ///
    /// ```rhai
    /// let last = share(()); last.value = "hello";
    /// ```
    ///
    /// Fails when: a thread failed while changing the value.
    #[rhai_fn(set = "value", return_raw)]
    pub fn set_value(s: &mut Shared, value: Dynamic) -> ScriptResult<()> {
        s.set(&value).map_err(fail("value"))
    }

    /// Adds a number (or appends to a string or an array) in one step, so
    /// tasks adding at the same time lose nothing; returns the new value.
    ///
    /// ```rhai
    /// let n = share(0); n.add(5)   // 5
    /// ```
    ///
    /// Fails when: the value cannot be added to (a map, say: use `update`),
    /// or an integer overflows.
    #[rhai_fn(return_raw, pure)]
    pub fn add(s: &mut Shared, n: Dynamic) -> ScriptResult<Dynamic> {
        s.add(&n).map_err(fail("add"))
    }

    /// Changes the value with a closure, in one step (other tasks wait
    /// meanwhile, so keep it short); returns the new value.
    ///
    /// ```rhai
    /// let seen = share(#{}); seen.update(|m| { m.alice = true; m })
    /// ```
    ///
    /// Fails when: the closure fails.
    #[rhai_fn(return_raw, pure)]
    pub fn update(ctx: NativeCallContext, s: &mut Shared, f: FnPtr) -> ScriptResult<Dynamic> {
        // The closure gets copies, like every callback: its own `s` is then
        // a plain handle, and touching it says what is wrong.
        crate::runtime::closure::check_params(&ctx, &f, "update's closure", &["value"])
            .map_err(fail("update"))?;
        let f = crate::runtime::closure::detached_fn(f);
        s.update(|value| f.call_within_context::<Dynamic>(&ctx, (value,)))
    }

    /// How a shared value prints: `share(5)`.
    ///
    /// ```rhai
    /// print(share(5))
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn shared_to_string(s: &mut Shared) -> String {
        format!("{s:?}")
    }

    /// A queue between tasks, with no limit: `.send(v)` puts a value in,
    /// `.recv()` waits for the oldest and takes it out.
    ///
    /// ```rhai
    /// let ch = channel();
    /// task(|| { for i in 1..=3 { ch.send(i) } ch.close() });
    /// loop { let v = ch.recv(); if v == () { break } print(v) }
    /// ```
    ///
    /// Fails when: never.
    pub fn channel() -> Channel {
        Channel::new(None)
    }

    /// A queue that holds at most `capacity` values: `.send` waits while it
    /// is full, which slows a producer down to its consumer's pace.
    ///
    /// ```rhai
    /// let ch = channel(100);
    /// ```
    ///
    /// Fails when: `capacity` is less than 1.
    #[rhai_fn(name = "channel", return_raw)]
    pub fn channel_bounded(capacity: i64) -> ScriptResult<Channel> {
        usize::try_from(capacity)
            .ok()
            .filter(|&n| n >= 1)
            .map(|n| Channel::new(Some(n)))
            .ok_or_else(|| {
                fail("channel")(Error::invalid(format!(
                    "the capacity must be 1 or more, not {capacity}"
                )))
            })
    }

    /// Puts a value (a copy) into the channel; waits while a bounded one is full.
    ///
    /// ```rhai
    /// ch.send(#{from: "task 1", n: 42});
    /// ```
    ///
    /// Fails when: the channel is closed, or Ctrl-C while waiting.
    #[rhai_fn(return_raw, pure, name = "send")]
    pub fn channel_send(ch: &mut Channel, value: Dynamic) -> ScriptResult<()> {
        ch.send(&value).map_err(fail("send"))
    }

    /// Takes the oldest value out, waiting for one; `()` once the channel
    /// is closed and empty.
    ///
    /// ```rhai
    /// let v = ch.recv();
    /// ```
    ///
    /// Fails when: Ctrl-C (or the task is stopped) while waiting.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn channel_recv(ch: &mut Channel) -> ScriptResult<Dynamic> {
        ch.recv(None)
            .map(|v| v.unwrap_or(Dynamic::UNIT))
            .map_err(fail("recv"))
    }

    /// Takes the oldest value out, waiting at most `timeout_ms` (0: no
    /// limit); `()` if none came (or the channel is closed and empty).
    ///
    /// ```rhai
    /// let v = ch.recv(500);
    /// ```
    ///
    /// Fails when: `timeout_ms` is negative, or Ctrl-C while waiting.
    #[rhai_fn(return_raw, pure, name = "recv")]
    pub fn channel_recv_timeout(ch: &mut Channel, timeout_ms: i64) -> ScriptResult<Dynamic> {
        crate::net::options::timeout(timeout_ms)
            .and_then(|t| ch.recv(t))
            .map(|v| v.unwrap_or(Dynamic::UNIT))
            .map_err(fail("recv"))
    }

    /// Closes the channel: sends fail from now on; what is queued can still
    /// be received, then `recv()` gives `()`.
    ///
    /// ```rhai
    /// ch.close();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "close")]
    pub fn channel_close(ch: &mut Channel) {
        ch.tx.close();
    }

    /// How many values wait in the channel.
    ///
    /// ```rhai
    /// ch.len
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "len", pure)]
    pub fn channel_len(ch: &mut Channel) -> i64 {
        ch.rx.len() as i64
    }

    /// How a channel prints: `Channel(3 waiting)`.
    ///
    /// ```rhai
    /// print(ch)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn channel_to_string(ch: &mut Channel) -> String {
        format!("{ch:?}")
    }
}
