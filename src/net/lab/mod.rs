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
//! - `mod.rs` — the handle and its Rhai side; `.ping()` and `.traceroute()`
//!   probe from the client, on a thread of their own that alone enters it

mod build;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::sched::{CloneFlags, setns};
use rhai::plugin::*;
use rhai::{Array, Map};

use crate::error::{Error, Result, ScriptResult, fail};

/// The options `lab_network` knows.
const KNOWN: &[&str] = &["routers"];
/// Routers between the client and the server unless told.
const DEFAULT_ROUTERS: u64 = 3;
/// At most this many routers (link numbers stay one byte, and a lab is a
/// lesson, not a load test).
const MAX_ROUTERS: u64 = 8;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Lab>("Lab");
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
        // Building takes a while: an event handler would stall its server.
        crate::runtime::ensure_may_block()?;
        // On an http_serve worker the wait hands its connections on.
        let nodes = crate::runtime::blocking(|| build::build(routers))?;
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

impl Lab {
    /// Whether `target` is one of the lab's own addresses (any node, v4
    /// or v6): a lab's probes go nowhere else.
    fn owns(&self, target: &str) -> bool {
        let Ok(ip) = target.parse::<std::net::IpAddr>() else {
            return false;
        };
        (1..self.count()).any(|link| {
            [1, 2].iter().any(|&side| {
                ip == std::net::IpAddr::V4(build::v4(link, side))
                    || ip == std::net::IpAddr::V6(build::v6(link, side))
            })
        })
    }

    /// Runs `probe` on a thread of its own inside the lab's client, so its
    /// sockets are the client's; that thread does nothing else and then
    /// ends. No other thread of netsh's ever enters the lab: a thread one
    /// made while inside (tokio's blocking pool grows from whichever
    /// thread asks) would stay there, and work handed to a thread outside
    /// would leave it unseen.
    fn probe_from_client<T: Send>(
        &self,
        op: &'static str,
        target: &str,
        probe: impl FnOnce() -> ScriptResult<T> + Send,
    ) -> ScriptResult<T> {
        if !self.owns(target) {
            return Err(fail(op)(Error::invalid(format!(
                "{target} is not one of this lab's addresses: a lab's probes stay in the lab (lab.server, lab.server6, an address of lab.hops)"
            ))));
        }
        let client = self.client().map_err(fail(op))?;
        // The probe's thread waits for it: not in an event handler.
        crate::runtime::ensure_may_block().map_err(fail(op))?;
        // The shared runtime exists before a thread enters the lab: started
        // from inside, all its threads would live there.
        let _ = crate::runtime::handle();
        let token = crate::runtime::cancel_token();
        let permit = crate::permit::Context::current();
        // On an http_serve worker the wait hands its connections on.
        crate::runtime::blocking(|| {
            std::thread::scope(|scope| {
                let probing = std::thread::Builder::new()
                    .name("netsh-lab-probe".into())
                    .spawn_scoped(scope, move || {
                        crate::runtime::set_cancel_token(token);
                        setns(client.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                            fail(op)(Error::io("entering the lab's client", None, e.into()))
                        })?;
                        permit.enter(probe)
                    })
                    .map_err(|e| fail(op)(Error::io("starting the lab's probe", None, e)))?;
                probing.join().unwrap_or_else(|p| {
                    Err(fail(op)(crate::error::thread_failed(
                        "the lab's probe",
                        &*p,
                    )))
                })
            })
        })
    }
}

#[export_module(manifest)]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail};

    /// Builds a lab of three routers between a client and a server. See
    /// `lab_network(options)`.
    ///
    /// ```rhai
    /// let lab = lab_network();
    /// lab.traceroute(#{queries: 1}).map(|h| h.addr)
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
    /// namespace as `/proc/PID/fd/N`, for `nsenter --net=…`, valid while
    /// the lab is open: after `.close()` the number may name another file),
    /// `.ping()` and `.traceroute()` (from the client, to the lab's own
    /// addresses) and `.close()`. The lab is held by the handle alone: it is gone
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

    /// `ping` from the lab's client to its server (or to `target`, one of
    /// the lab's own addresses), with `ping`'s options: the replies come
    /// back across the routers (TTL 64 less one a router).
    ///
    /// ```rhai
    /// let lab = lab_network();
    /// lab.ping(#{count: 3, interval: 200}).received   // 3
    /// ```
    ///
    /// Fails when: the lab is closed (kind `closed`); `target` is not one
    /// of the lab's addresses; as `ping` fails.
    #[rhai_fn(name = "ping", return_raw)]
    pub fn lab_ping(lab: &mut Lab) -> ScriptResult<Map> {
        lab_ping_to(lab, &build::v4(lab.last_link(), 2).to_string(), Map::new())
    }

    /// `lab.ping(options)`: to the server, with `ping`'s options.
    ///
    /// ```rhai
    /// lab.ping(#{count: 1})
    /// ```
    ///
    /// Fails when: as `lab.ping(target, options)`.
    #[rhai_fn(name = "ping", return_raw)]
    pub fn lab_ping_options(lab: &mut Lab, options: Map) -> ScriptResult<Map> {
        lab_ping_to(lab, &build::v4(lab.last_link(), 2).to_string(), options)
    }

    /// `lab.ping(target, options)`: to one of the lab's addresses.
    ///
    /// ```rhai
    /// lab.ping(lab.server6, #{count: 1})
    /// ```
    ///
    /// Fails when: the lab is closed (kind `closed`); `target` is not one
    /// of the lab's addresses; as `ping` fails.
    #[rhai_fn(name = "ping", return_raw)]
    pub fn lab_ping_to(lab: &mut Lab, target: &str, options: Map) -> ScriptResult<Map> {
        let target_owned = target.to_string();
        lab.probe_from_client("ping", target, move || {
            crate::net::locate::ping_from_here(&target_owned, options)
        })
    }

    /// `traceroute` from the lab's client to its server (or to `target`,
    /// one of the lab's addresses), with `traceroute`'s options: each
    /// router on the way, then the server.
    ///
    /// ```rhai
    /// lab.traceroute(#{proto: "icmp"}).map(|h| h.addr)
    /// ```
    ///
    /// Fails when: the lab is closed (kind `closed`); `target` is not one
    /// of the lab's addresses; as `traceroute` fails.
    #[rhai_fn(name = "traceroute", return_raw)]
    pub fn lab_traceroute(lab: &mut Lab) -> ScriptResult<Array> {
        lab_traceroute_to(lab, &build::v4(lab.last_link(), 2).to_string(), Map::new())
    }

    /// `lab.traceroute(options)`: to the server, with `traceroute`'s options.
    ///
    /// ```rhai
    /// lab.traceroute(#{proto: "tcp", port: 80})
    /// ```
    ///
    /// Fails when: as `lab.traceroute(target, options)`.
    #[rhai_fn(name = "traceroute", return_raw)]
    pub fn lab_traceroute_options(lab: &mut Lab, options: Map) -> ScriptResult<Array> {
        lab_traceroute_to(lab, &build::v4(lab.last_link(), 2).to_string(), options)
    }

    /// `lab.traceroute(target, options)`: to one of the lab's addresses.
    ///
    /// ```rhai
    /// lab.traceroute(lab.server6, #{queries: 1})
    /// ```
    ///
    /// Fails when: the lab is closed (kind `closed`); `target` is not one
    /// of the lab's addresses; as `traceroute` fails.
    #[rhai_fn(name = "traceroute", return_raw)]
    pub fn lab_traceroute_to(lab: &mut Lab, target: &str, options: Map) -> ScriptResult<Array> {
        let target_owned = target.to_string();
        lab.probe_from_client("traceroute", target, move || {
            crate::net::locate::traceroute_from_here(&target_owned, options)
        })
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
