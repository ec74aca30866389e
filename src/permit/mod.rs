//! Permissions, like Deno's: the one place every capability asks before it
//! sends, accepts, reads, writes, reads the environment or captures.
//!
//! Rhai has no I/O of its own, so a check in each netsh function that does
//! I/O is a complete sandbox. Without a permission flag nothing is
//! enforced and every check is one relaxed atomic load ([`enforced`]). With
//! one (`--allow-net`, `--sandbox`…), the session's [`Grant`] decides, and
//! while a plugin's code runs, that plugin's own statement too (a
//! [`Context`], kept per thread and carried by closures to the threads that
//! call them: tasks, servers).
//!
//! A refusal is `Error::Permission` with the words of the issue:
//! `permission denied: 192.0.2.1:80 is not in --allow-net (run with
//! --allow-net=192.0.2.1:80 to allow it)`; `fail(op)` puts the function's
//! name before it. On a terminal the user may be asked first (`prompt.rs`).
//!
//! - `grant.rs` — the rules and how flags and statements read.
//! - `prompt.rs` — asking on the terminal: once, always, no.

use std::{
    cell::RefCell,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::error::{Error, Result};

mod grant;
mod prompt;

pub use grant::{Grant, List, canonical, parse_net};

/// Whether any permission flag was given: until then every check passes.
static ENFORCED: AtomicBool = AtomicBool::new(false);
/// Whether a refusal may ask the user first.
static PROMPT: AtomicBool = AtomicBool::new(false);
/// The session's grant (answers of "always" are added to it).
static SESSION: RwLock<Option<Grant>> = RwLock::new(None);

/// Turns enforcement on with `grant` (the flags, names resolved). `ask`:
/// a refusal asks on the terminal first.
pub fn enforce(mut grant: Grant, ask: bool) {
    grant.resolve_names();
    if let Ok(mut slot) = SESSION.write() {
        *slot = Some(grant);
    }
    PROMPT.store(ask, Ordering::Relaxed);
    ENFORCED.store(true, Ordering::Release);
}

/// Whether permissions are enforced in this process.
#[inline]
pub fn enforced() -> bool {
    ENFORCED.load(Ordering::Relaxed)
}

/// What the session holds now: everything when nothing is enforced.
pub fn session() -> Grant {
    if !enforced() {
        return Grant::all();
    }
    SESSION
        .read()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_else(Grant::none)
}

/// A plugin's own grant: its name and what its `//! permissions:` line
/// states. It only ever narrows the session's.
#[derive(Debug)]
pub struct Held {
    pub plugin: String,
    pub grant: Grant,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Held>>> = const { RefCell::new(None) };
}

/// The plugin whose code runs on this thread now, if any: captured by a
/// closure when it is made, and put back wherever it is called.
#[derive(Clone, Default)]
pub struct Context(Option<Arc<Held>>);

impl Context {
    /// This thread's context now.
    pub fn current() -> Context {
        if !enforced() {
            return Context(None);
        }
        Context(CURRENT.with(|c| c.borrow().clone()))
    }

    /// A plugin's context.
    pub fn plugin(held: Arc<Held>) -> Context {
        Context(Some(held))
    }

    /// The name of the plugin whose code this is, if any.
    pub fn plugin_name(&self) -> Option<String> {
        self.0.as_ref().map(|held| held.plugin.clone())
    }

    /// Runs `f` in this context, and puts the thread's own back after.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        if !enforced() {
            return f();
        }
        let before = CURRENT.with(|c| c.replace(self.0.clone()));
        struct Restore(Option<Arc<Held>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let back = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = back);
            }
        }
        let _restore = Restore(before);
        f()
    }

    /// Checks a resolved destination in this context (for work done on a
    /// runtime thread on behalf of a script thread: a fetch's hops).
    pub fn net_addrs(&self, spelled: &str, addrs: &[SocketAddr]) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        for addr in addrs {
            // The common case, granted, without building the question's
            // text (formatting an address is most of a check's cost).
            if self.allows_silently(|g| g.allows_addr(spelled, *addr, false)) {
                continue;
            }
            self.decide(
                Ask::Net(addr.to_string()),
                |g| g.allows_addr(spelled, *addr, false),
                |g| g.allow("net", Some(&rule_for(*addr)), Path::new("/")),
            )?;
        }
        Ok(())
    }

    /// Of the addresses a name resolved to, those this context may reach
    /// (asked about, or refused with, the first when none may).
    pub fn granted_addrs(&self, spelled: &str, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
        if !enforced() {
            return Ok(addrs.to_vec());
        }
        let granted: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|addr| self.allows_silently(|g| g.allows_addr(spelled, *addr, false)))
            .collect();
        if !granted.is_empty() || addrs.is_empty() {
            return Ok(granted);
        }
        self.net_addrs(spelled, &addrs[..1])?;
        Ok(addrs[..1].to_vec())
    }

    /// Whether the session and this context's plugin both allow, without
    /// asking anyone.
    fn allows_silently(&self, allowed: impl Fn(&Grant) -> bool) -> bool {
        let session = SESSION
            .read()
            .ok()
            .is_some_and(|g| g.as_ref().is_some_and(&allowed));
        session && self.0.as_ref().is_none_or(|held| allowed(&held.grant))
    }

    /// Checks every port of `ip` a scan would probe, as one question.
    pub fn net_ports(&self, spelled: &str, ip: IpAddr, ports: &[u16]) -> Result<()> {
        if !enforced() || ports.is_empty() {
            return Ok(());
        }
        let lo = ports.iter().copied().min().unwrap_or(0);
        let hi = ports.iter().copied().max().unwrap_or(0);
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let shown = if lo == hi {
            format!("{host}:{lo}")
        } else {
            format!("{host}:{lo}-{hi}")
        };
        self.decide(
            Ask::Net(shown.clone()),
            |g| {
                ports
                    .iter()
                    .all(|&p| g.allows_addr(spelled, SocketAddr::new(ip, p), false))
            },
            |g| g.allow("net", Some(&shown), Path::new("/")),
        )
    }

    /// A name looked up (`resolve`), or an address looked up backwards
    /// (`reverse`): a query that says the name to a DNS server, granted
    /// when some rule names it (or holds the address), whatever the port.
    pub fn lookup(&self, name: &str) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        let allowed = |g: &Grant| match name.parse::<IpAddr>() {
            Ok(ip) => g.allows_addr(name, SocketAddr::new(ip, 0), true),
            Err(_) => g.allows_name_any_port(name),
        };
        self.decide(Ask::Net(name.to_string()), allowed, |g| {
            g.allow("net", Some(name), Path::new("/"))
        })
    }

    /// Checks a destination spelled `host:port` before it is resolved: an
    /// address is decided here; a name passes only if some rule could
    /// grant it (its addresses decide in [`Context::net_addrs`]), or, with
    /// `resolved_elsewhere` (a proxy resolves it), only by its spelling.
    pub fn net(&self, host: &str, port: u16, resolved_elsewhere: bool) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.net_addrs(host, &[SocketAddr::new(ip, port)]);
        }
        let shown = format!("{host}:{port}");
        let allowed = |g: &Grant| {
            g.allows_name(host, port) || (!resolved_elsewhere && g.may_allow_port(port))
        };
        // A name resolved here is asked about once, by its address: a
        // question now and another for the address would ask twice.
        if !resolved_elsewhere && PROMPT.load(Ordering::Relaxed) {
            return if self.0.as_ref().is_none_or(|held| allowed(&held.grant)) {
                Ok(())
            } else {
                Err(Ask::Net(shown).refused(self.0.as_deref()))
            };
        }
        self.decide(Ask::Net(shown.clone()), allowed, |g| {
            g.allow("net", Some(&shown), Path::new("/"))
        })
    }

    /// Reading `path`: checked on its canonical form.
    pub fn read(&self, path: &Path) -> Result<()> {
        self.path(path, false)
    }

    /// Writing (creating, removing) `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.path(path, true)
    }

    /// Removing `path`: the entry itself (a link, not what it leads to),
    /// so its folder resolved and its own name after it.
    pub fn remove(&self, path: &Path) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        let path = absolute(path);
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => self.checked(canonical(parent).join(name), true),
            _ => self.path(&path, true),
        }
    }

    fn path(&self, path: &Path, write: bool) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        self.checked(canonical(&absolute(path)), write)
    }

    fn checked(&self, real: PathBuf, write: bool) -> Result<()> {
        let kind = if write { "write" } else { "read" };
        let shown = real.display().to_string();
        self.decide(
            if write {
                Ask::Write(shown.clone())
            } else {
                Ask::Read(shown.clone())
            },
            |g| Grant::allows_path(if write { &g.write } else { &g.read }, &real),
            |g| g.allow(kind, Some(&shown), Path::new("/")),
        )
    }

    /// Reading the environment variable `name`.
    pub fn env(&self, name: &str) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        self.decide(
            Ask::Env(name.to_string()),
            |g| g.allows_env(name),
            |g| g.allow("env", Some(name), Path::new("/")),
        )
    }

    /// Capturing the packets of `port` (needs `--allow-capture` and a net
    /// rule for that port; every port: the whole of `--allow-net`).
    pub fn capture(&self, port: Option<u16>) -> Result<()> {
        if !enforced() {
            return Ok(());
        }
        self.decide(
            Ask::Capture,
            |g| g.capture,
            |g| g.allow("capture", None, Path::new("/")),
        )?;
        let Some(port) = port else {
            return self.decide(
                Ask::Net("every port".to_string()),
                |g| matches!(g.net, List::All),
                |g| g.allow("net", None, Path::new("/")),
            );
        };
        let shown = format!("0.0.0.0/0:{port}");
        self.decide(
            Ask::Net(shown.clone()),
            |g| g.allows_port_anywhere(port),
            |g| g.allow("net", Some(&shown), Path::new("/")),
        )
    }

    /// The session's grant decides (asking the user when it may), then the
    /// plugin's, which is never asked about: its statement is its limit.
    fn decide(
        &self,
        ask: Ask,
        allowed: impl Fn(&Grant) -> bool,
        widen: impl Fn(&mut Grant) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let session_ok = SESSION
            .read()
            .ok()
            .is_some_and(|g| g.as_ref().is_some_and(&allowed));
        if !session_ok {
            // Only the main thread asks: a task or a server's handler
            // reading the terminal would fight the REPL's own prompt for it.
            let foreground = std::thread::current().name() == Some("main");
            let answer = if foreground && PROMPT.load(Ordering::Relaxed) {
                prompt::ask(&ask.question())
            } else {
                prompt::Answer::No
            };
            match answer {
                prompt::Answer::Once => {}
                prompt::Answer::Always => {
                    if let Ok(mut slot) = SESSION.write()
                        && let Some(grant) = slot.as_mut()
                    {
                        let _ = widen(grant);
                    }
                }
                prompt::Answer::No => return Err(ask.refused(None)),
            }
        }
        if let Some(held) = &self.0
            && !allowed(&held.grant)
        {
            return Err(ask.refused(Some(held)));
        }
        Ok(())
    }
}

/// What a check asks for, to say it in a refusal or a question.
enum Ask {
    Net(String),
    Read(String),
    Write(String),
    Env(String),
    Capture,
    /// Building a lab network: namespaces, veth pairs, routes.
    Lab,
}

impl Ask {
    fn flag(&self) -> (&'static str, Option<&str>) {
        match self {
            Ask::Net(what) => ("--allow-net", Some(what)),
            Ask::Read(what) => ("--allow-read", Some(what)),
            Ask::Write(what) => ("--allow-write", Some(what)),
            Ask::Env(what) => ("--allow-env", Some(what)),
            Ask::Capture => ("--allow-capture", None),
            Ask::Lab => ("--allow-net", None),
        }
    }

    fn question(&self) -> String {
        match self {
            Ask::Net(what) => format!("connect to {what}"),
            Ask::Read(what) => format!("read {what}"),
            Ask::Write(what) => format!("write {what}"),
            Ask::Env(what) => format!("read the environment variable {what}"),
            Ask::Capture => "capture packets".to_string(),
            Ask::Lab => "build a lab network (network namespaces)".to_string(),
        }
    }

    fn refused(&self, plugin: Option<&Held>) -> Error {
        let (flag, what) = self.flag();
        let subject = match (self, what) {
            (_, Some(what)) => what.to_string(),
            (Ask::Lab, None) => "building a lab network".to_string(),
            _ => "capturing packets".to_string(),
        };
        Error::Permission(match (plugin, what) {
            (Some(held), _) => format!(
                "permission denied: plugin {} may not use {subject}: its permissions are {}",
                held.plugin, held.grant
            ),
            (None, Some(what)) => format!(
                "permission denied: {what} is not in {flag} (run with {flag}={what} to allow it)"
            ),
            (None, None) => {
                format!("permission denied: {subject} needs {flag} (run with {flag} to allow it)")
            }
        })
    }
}

/// The `--allow-net` entry that grants exactly `addr`.
fn rule_for(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    }
}

/// Relative paths are the starting folder's: netsh never changes folder.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Connecting to (or binding, or sending to) `host` at `port`, before it is
/// resolved, on this thread's context. See [`Context::net`].
#[inline]
pub fn net(host: &str, port: u16) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().net(host, port, false)
}

/// A name a proxy resolves: judged by its spelling alone.
#[inline]
pub fn net_by_name(host: &str, port: u16) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().net(host, port, true)
}

/// The addresses a target spelled `spelled` resolved to, each checked.
#[inline]
pub fn net_addrs(spelled: &str, addrs: &[SocketAddr]) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().net_addrs(spelled, addrs)
}

/// Every port of `ip` a scan probes. See [`Context::net_ports`].
pub fn net_ports(spelled: &str, ip: IpAddr, ports: &[u16]) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().net_ports(spelled, ip, ports)
}

/// Looking a name (or an address) up in DNS: `resolve`, `reverse`.
pub fn lookup(name: &str) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().lookup(name)
}

/// What only `--allow-net` without a list grants (an abstract Unix socket).
pub fn whole_net(what: &str) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().decide(
        Ask::Net(what.to_string()),
        |g| matches!(g.net, List::All),
        |g| g.allow("net", None, Path::new("/")),
    )
}

/// Building a lab network (`lab_network`): namespaces of netsh's own,
/// whatever addresses they hold, so only `--allow-net` without a list.
pub fn lab() -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().decide(
        Ask::Lab,
        |g| matches!(g.net, List::All),
        |g| g.allow("net", None, Path::new("/")),
    )
}

/// Of a name's addresses, those that may be reached. See
/// [`Context::granted_addrs`].
#[inline]
pub fn granted_addrs(spelled: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>> {
    if !enforced() {
        return Ok(addrs);
    }
    Context::current().granted_addrs(spelled, &addrs)
}

tokio::task_local! {
    /// The context of the request being sent on this runtime task: set by
    /// `fetch`'s hop loop around reqwest's send, read by its resolver.
    static SENDING: Context;
}

/// Runs `send` (reqwest's send of one hop) with `context` as the one its
/// resolver holds the addresses to ([`granted_again`]).
pub async fn sending<F: std::future::Future>(context: Context, send: F) -> F::Output {
    SENDING.scope(context, send).await
}

/// A name resolved a second time on a runtime thread (reqwest's resolver,
/// after the hop was checked): only the addresses the session and the
/// sending code's plugin grant at some port are kept, so reqwest never
/// falls back to one outside them. Nobody is asked: with a prompt, when
/// none is granted, the hop's own question was about the first address
/// (a "yes once" stands for it, and only for it); otherwise none left is a
/// refusal.
pub fn granted_again(spelled: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>> {
    if !enforced() {
        return Ok(addrs);
    }
    // Outside a hop's send (never expected) the session alone decides.
    let context = SENDING.try_with(Context::clone).unwrap_or_default();
    let first = addrs.first().copied();
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| context.allows_silently(|g| g.allows_addr(spelled, *a, true)))
        .collect();
    match (kept.is_empty(), first) {
        (true, Some(addr)) if PROMPT.load(Ordering::Relaxed) => Ok(vec![addr]),
        (true, Some(addr)) => Err(Ask::Net(addr.ip().to_string()).refused(context.0.as_deref())),
        _ => Ok(kept),
    }
}

/// Binding `addr` (listen, serve, udp_bind, serve_files).
#[inline]
pub fn bind(addr: SocketAddr) -> Result<()> {
    net_addrs(&addr.ip().to_string(), &[addr])
}

/// Reading `path` (a file, or a folder's entries).
#[inline]
pub fn read(path: &Path) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().read(path)
}

/// Writing, creating or removing `path`.
#[inline]
pub fn write(path: &Path) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().write(path)
}

/// Removing `path` itself (a link is removed, not what it leads to).
#[inline]
pub fn remove(path: &Path) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().remove(path)
}

/// Reading the environment variable `name`.
#[inline]
pub fn env(name: &str) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().env(name)
}

/// Capturing packets of `port` (`None`: every port).
#[inline]
pub fn capture(port: Option<u16>) -> Result<()> {
    if !enforced() {
        return Ok(());
    }
    Context::current().capture(port)
}
