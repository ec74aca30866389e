//! `lab_network()`: a small network of our own to watch `ping` and
//! `traceroute` cross routers (lessons 1.1–1.3) without the internet — a
//! client, routers r1…rN (three unless told), a server, each a network
//! namespace, joined in a line by veth pairs:
//!
//! ```text
//! client 10.91.1.1 — 10.91.1.2 r1 10.91.2.1 — 10.91.2.2 r2 10.91.3.1 —
//!     10.91.3.2 r3 10.91.4.1 — 10.91.4.2 server
//! ```
//!
//! and the same over IPv6 on fd91:LINK::/64. The namespaces are held only
//! by file descriptors in the [`Lab`] handle: closing it, dropping it, or
//! the process dying however it dies ends them, and the kernel removes
//! their interfaces with them. Nothing is added to netsh's own namespace.
//!
//! - `build.rs` — the namespaces, veth pairs, addresses, routes (rtnetlink)
//! - `mod.rs` — the handle and its Rhai side; `.run(f)` enters the client

mod build;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::sched::{CloneFlags, setns};
use rhai::plugin::*;
use rhai::{Array, Map};

use crate::error::{Error, Result};

/// The options `lab_network` knows.
const KNOWN: &[&str] = &["routers"];
/// Routers between the client and the server unless told.
const DEFAULT_ROUTERS: u64 = 3;
/// At most this many routers (link numbers stay one byte, and a lab is a
/// lesson, not a load test).
const MAX_ROUTERS: u64 = 8;

/// The Rhai module of this capability.
pub fn module(docs: crate::registry::Docs) -> Module {
    let mut module = crate::registry::functions(exported_manifest!(api), docs);
    module.set_custom_type::<Lab>("Lab");
    module
}

/// A built lab; clones share it. The namespaces live as long as the
/// descriptors here (and any thread standing in one of them).
#[derive(Clone)]
pub struct Lab(Arc<Inner>);

struct Inner {
    routers: usize,
    /// Client, r1…rN, server; `None` once closed.
    nodes: Mutex<Option<Vec<OwnedFd>>>,
}

impl Lab {
    fn new(options: &Map) -> Result<Lab> {
        let o = crate::net::options::Options::new(options, KNOWN)?;
        let routers = o
            .count_in("routers", 1, MAX_ROUTERS)?
            .unwrap_or(DEFAULT_ROUTERS) as usize;
        crate::permit::lab()?;
        let nodes = build::build(routers)?;
        Ok(Lab(Arc::new(Inner {
            routers,
            nodes: Mutex::new(Some(nodes)),
        })))
    }

    fn count(&self) -> usize {
        self.0.routers + 2
    }

    /// The last link's number: the server's.
    fn last_link(&self) -> usize {
        self.0.routers + 1
    }

    fn is_open(&self) -> bool {
        self.0.nodes.lock().is_ok_and(|n| n.is_some())
    }

    fn close(&self) {
        if let Ok(mut nodes) = self.0.nodes.lock() {
            nodes.take();
        }
    }

    /// A descriptor of the client's namespace of its own (a close while
    /// the closure runs cannot pull it away).
    fn client(&self) -> Result<OwnedFd> {
        let nodes = self
            .0
            .nodes
            .lock()
            .map_err(|_| Error::Protocol("the lab's state was poisoned".into()))?;
        let Some(client) = nodes.as_ref().and_then(|n| n.first()) else {
            return Err(Error::Closed("the lab is closed".into()));
        };
        client
            .try_clone()
            .map_err(|e| Error::io("holding the client's namespace", None, e))
    }

    /// `#{hop, addr, name, what}` for each router then the server, as the
    /// client sees them (each router's side facing the client).
    fn hops(&self, v6: bool) -> Array {
        let count = self.count();
        (1..count)
            .map(|i| {
                let addr = if v6 {
                    build::v6(i, 2).to_string()
                } else {
                    build::v4(i, 2).to_string()
                };
                let name = build::node_name(i, count);
                let what = if i + 1 == count {
                    "the server, the destination".to_string()
                } else {
                    let next = build::node_name(i + 1, count);
                    let onward = if v6 {
                        build::v6(i + 1, 1).to_string()
                    } else {
                        build::v4(i + 1, 1).to_string()
                    };
                    let prev = build::node_name(i - 1, count);
                    format!("router {name}: {addr} faces {prev}, {onward} faces {next}")
                };
                let mut m = Map::new();
                m.insert("hop".into(), Dynamic::from_int(i as i64));
                m.insert("addr".into(), addr.into());
                m.insert("name".into(), name.into());
                m.insert("what".into(), what.into());
                m.into()
            })
            .collect()
    }

    /// `/proc/PID/fd/N` for each node's namespace, for `nsenter --net=…`.
    fn paths(&self) -> Map {
        use std::os::fd::AsRawFd;
        let mut m = Map::new();
        let count = self.count();
        if let Ok(nodes) = self.0.nodes.lock()
            && let Some(nodes) = nodes.as_ref()
        {
            for (i, fd) in nodes.iter().enumerate() {
                let path = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
                m.insert(build::node_name(i, count).into(), path.into());
            }
        }
        m
    }

    fn text(&self) -> String {
        let count = self.count();
        let mut line = format!("Lab({}", build::v4(1, 1));
        for i in 1..count {
            line += &format!(" — {} {}", build::v4(i, 2), build::node_name(i, count));
        }
        if !self.is_open() {
            line += ", closed";
        }
        line + ")"
    }
}

/// Enters the namespace `to` on this thread; the guard goes back to the
/// one the thread stood in, however the closure ends.
/// (`None` once it went back.)
struct Entered(Option<OwnedFd>);

impl Entered {
    fn enter(to: &OwnedFd) -> Result<Entered> {
        let back: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("noting this thread's network namespace", None, e))?
            .into();
        setns(to.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("entering the lab's client", None, e.into()))?;
        Ok(Entered(Some(back)))
    }

    fn leave(mut self) -> Result<()> {
        let Some(back) = self.0.take() else {
            return Ok(());
        };
        setns(back.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("leaving the lab's client", None, e.into()))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // Only still held when the closure unwound: going back is all we
        // can try, and a thread left in the lab would be worse than a message.
        if let Some(back) = self.0.take()
            && setns(back.as_fd(), CloneFlags::CLONE_NEWNET).is_err()
        {
            eprintln!("netsh: could not leave the lab's client namespace");
        }
    }
}

#[export_module(manifest)]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail};
    use rhai::{FnPtr, NativeCallContext};

    /// Builds a lab of three routers between a client and a server. See
    /// `lab_network(options)`.
    ///
    /// ```rhai
    /// let lab = lab_network();
    /// lab.run(|lab| traceroute(lab.server, #{queries: 1})).map(|h| h.addr)
    /// ```
    ///
    /// Fails when: netsh is not root (kind `permission`); the kernel
    /// refuses a namespace, a veth pair, an address or a route.
    #[rhai_fn(name = "lab_network", return_raw)]
    pub fn lab_network_default() -> ScriptResult<Lab> {
        Lab::new(&Map::new()).map_err(fail("lab_network"))
    }

    /// Builds a small network of our own, as root: a client, `routers`
    /// routers (r1, r2…) and a server, each a network namespace, joined
    /// in a line by veth pairs, on 10.91.LINK.0/24 and fd91:LINK::/64
    /// (`.1`/`::1` on the client's side of each link), forwarding on in
    /// the routers and routes both ways. Returns a `Lab`: `.client` and
    /// `.server` (IPv4 addresses; `.client6`, `.server6`), `.hops`
    /// (`[#{hop, addr, name, what}]`, each router then the server, as a
    /// trace from the client meets them; `.hops6`), `.ns` (each node's
    /// namespace as `/proc/PID/fd/N`, for `nsenter --net=…`), `.run(|lab|
    /// …)` (the closure runs inside the client) and `.close()`. The lab is held by the handle alone: it is gone
    /// after `.close()`, when the last copy of the handle goes, or when
    /// netsh ends however it ends. Options: `routers` (3, 1–8).
    ///
    /// ```rhai
    /// let lab = lab_network(#{routers: 2});
    /// lab.hops.map(|h| h.addr);    // ["10.91.1.2", "10.91.2.2", "10.91.3.2"]
    /// lab.close();
    /// ```
    ///
    /// Fails when: an option is unknown, not a number, or `routers` is
    /// not 1–8; netsh is not root (kind `permission`, saying to run it
    /// with sudo); under permission flags, without the whole of
    /// `--allow-net`; the kernel refuses a namespace, a veth pair, an
    /// address or a route.
    #[rhai_fn(name = "lab_network", return_raw)]
    pub fn lab_network(options: Map) -> ScriptResult<Lab> {
        Lab::new(&options).map_err(fail("lab_network"))
    }

    /// Catches `lab_network` given something other than an options map.
    ///
    /// ```rhai
    /// lab_network(#{routers: 3})   // not lab_network(3)
    /// ```
    ///
    /// Fails when: always: the argument is not a map of options.
    #[rhai_fn(name = "lab_network", return_raw)]
    pub fn lab_network_wrong_type(options: Dynamic) -> ScriptResult<Lab> {
        Err(fail("lab_network")(crate::error::wrong_type(
            "a map of options like #{routers: 3}",
            &options,
        )))
    }

    /// Runs the closure with this thread inside the lab's client, and
    /// returns what it returns: `ping`, `traceroute`, `connect`… in it
    /// start from the client. The thread goes back to netsh's own network
    /// afterwards, even when the closure fails. A closure with one
    /// parameter gets the lab (`|lab| …`): use that, not a captured `lab`,
    /// which Rhai cannot hand over while this method holds it. Tasks and
    /// servers the closure starts run on other threads, outside the lab.
    ///
    /// ```rhai
    /// let lab = lab_network();
    /// lab.run(|lab| ping(lab.server, #{count: 3, interval: 200})).received   // 3
    /// ```
    ///
    /// Fails when: the lab is closed (kind `closed`); the closure fails
    /// (its error).
    #[rhai_fn(name = "run", return_raw)]
    pub fn run(ctx: NativeCallContext, lab: Lab, f: FnPtr) -> ScriptResult<Dynamic> {
        let client = lab.client().map_err(fail("run"))?;
        // Like every callback, the closure works on copies of what it
        // captured (the lab itself among them: a copy is the same lab).
        let f = crate::runtime::closure::detached_fn(f);
        // `|lab| …` gets the lab: a closure that captured it instead could
        // not be called while this method holds it (Rhai's data race).
        let takes_lab = crate::runtime::closure::check_params(&ctx, &f, "run", &["lab"]).is_ok()
            && crate::runtime::closure::check_params(&ctx, &f, "run", &[]).is_err();
        let entered = Entered::enter(&client).map_err(fail("run"))?;
        let result = if takes_lab {
            f.call_within_context::<Dynamic>(&ctx, (lab,))
        } else {
            f.call_within_context::<Dynamic>(&ctx, ())
        };
        entered.leave().map_err(fail("run"))?;
        result
    }

    /// Tears the lab down: its namespaces, and the veth pairs and routes
    /// in them, go with the descriptors. Closing twice is harmless.
    ///
    /// ```rhai
    /// lab.close()
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "close")]
    pub fn close(lab: &mut Lab) {
        lab.close();
    }

    /// The client's IPv4 address.
    ///
    /// ```rhai
    /// lab.client   // "10.91.1.1"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "client", pure)]
    pub fn client(_lab: &mut Lab) -> String {
        build::v4(1, 1).to_string()
    }

    /// The server's IPv4 address.
    ///
    /// ```rhai
    /// lab.server   // "10.91.4.2"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "server", pure)]
    pub fn server(lab: &mut Lab) -> String {
        build::v4(lab.last_link(), 2).to_string()
    }

    /// The client's IPv6 address.
    ///
    /// ```rhai
    /// lab.client6   // "fd91:1::1"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "client6", pure)]
    pub fn client6(_lab: &mut Lab) -> String {
        build::v6(1, 1).to_string()
    }

    /// The server's IPv6 address.
    ///
    /// ```rhai
    /// lab.server6   // "fd91:4::2"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "server6", pure)]
    pub fn server6(lab: &mut Lab) -> String {
        build::v6(lab.last_link(), 2).to_string()
    }

    /// Each hop from the client: `[#{hop, addr, name, what}]`, the routers
    /// (their side facing the client) then the server — what a trace
    /// from the client should meet, and what each one is.
    ///
    /// ```rhai
    /// for h in lab.hops { print(`${h.hop} ${h.addr} ${h.what}`) }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "hops", pure)]
    pub fn hops(lab: &mut Lab) -> Array {
        lab.hops(false)
    }

    /// `.hops` over IPv6.
    ///
    /// ```rhai
    /// lab.hops6.map(|h| h.addr)   // ["fd91:1::2", …]
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "hops6", pure)]
    pub fn hops6(lab: &mut Lab) -> Array {
        lab.hops(true)
    }

    /// How many routers lie between the client and the server.
    ///
    /// ```rhai
    /// lab.routers   // 3
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "routers", pure)]
    pub fn routers(lab: &mut Lab) -> i64 {
        lab.0.routers as i64
    }

    /// Each node's namespace as a path another program can enter while
    /// the lab is open (`nsenter --net=PATH tcpdump -ni to-r1`); empty
    /// once closed.
    ///
    /// ```rhai
    /// lab.ns.client   // "/proc/4242/fd/7"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "ns", pure)]
    pub fn ns(lab: &mut Lab) -> Map {
        lab.paths()
    }

    /// Whether the lab is still up (not closed).
    ///
    /// ```rhai
    /// lab.is_open   // true
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "is_open", pure)]
    pub fn is_open(lab: &mut Lab) -> bool {
        lab.is_open()
    }

    /// The lab's line of nodes, for printing.
    ///
    /// ```rhai
    /// print(lab)   // Lab(10.91.1.1 — 10.91.1.2 r1 — … — 10.91.4.2 server)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn lab_to_string(lab: &mut Lab) -> String {
        lab.text()
    }
}
