//! The native capabilities, one Rhai module per file, and the one list that
//! registers them.
//!
//! Adding a capability means a new file here exposing `pub fn
//! register_into(module: &mut Module, docs: Docs)` (an
//! `#[export_module(manifest)]` added by [`crate::registry::add`]) and one
//! line in [`CAPABILITIES`]. `help()`
//! groups functions by these entries, in this order.

use rhai::Module;

use crate::registry::Docs;

pub mod addr;
pub mod capture;
pub mod encoding;
pub mod helpers;
pub mod http;
pub mod http_serve;
pub mod interact;
pub mod lab;
pub mod locate;
pub mod names;
pub mod options;
pub mod ports;
pub mod progress;
pub mod proxy;
pub mod relay;
pub mod scan;
pub mod serve;
pub mod shared;
pub mod sockets;
pub mod task;
pub mod tcp;
pub mod tls;
pub mod transfer;
pub mod udp;
pub mod ws;

/// A native capability: its name in `help()`, a one-line summary, what
/// adds its functions to a module.
pub struct Capability {
    pub name: &'static str,
    pub about: &'static str,
    pub register_into: fn(&mut Module, Docs),
}

impl Capability {
    /// This capability's functions alone, as a module of their own.
    pub fn module(&self, docs: Docs) -> Module {
        let mut module = Module::new();
        (self.register_into)(&mut module, docs);
        module
    }
}

/// Every native capability, in the order `help()` shows them.
#[rustfmt::skip]
pub const CAPABILITIES: &[Capability] = &[
    Capability { name: "names", about: "host names and IP addresses (lesson 1.3)", register_into: names::register_into },
    Capability { name: "ports", about: "port ranges and well-known services (lesson 1.4)", register_into: ports::register_into },
    Capability { name: "scan", about: "which ports answer, and why: a connect scan, like nmap -sT", register_into: scan::register_into },
    Capability { name: "sockets", about: "who holds which port, like netstat -ano (lesson 1.4)", register_into: sockets::register_into },
    Capability { name: "capture", about: "seeing the wire: the packets of a port, like tcpdump (lesson 1.5)", register_into: capture::register_into },
    Capability { name: "tcp", about: "TCP client and server (lessons 1.5, 1.6)", register_into: tcp::register_into },
    Capability { name: "interact", about: "a connection joined to the terminal or to stdin/stdout, like nc", register_into: interact::register_into },
    Capability { name: "task", about: "background tasks, and the jobs table: task, jobs, stop_all, wait", register_into: task::register_into },
    Capability { name: "serve", about: "servers in the background: a closure per connection, or event handlers", register_into: serve::register_into },
    Capability { name: "shared", about: "state tasks share on purpose: shared values and channels", register_into: shared::register_into },
    Capability { name: "udp", about: "UDP datagrams (lesson 1.7)", register_into: udp::register_into },
    Capability { name: "transfer", about: "file upload, verified and resumable, or raw like nc (lesson 1.6)", register_into: transfer::register_into },
    Capability { name: "http", about: "URLs: fetch, a download with resume, like curl and wget (lesson 1.8)", register_into: http::register_into },
    Capability { name: "helpers", about: "time, hashing, files, JSON, environment", register_into: helpers::register_into },
    Capability { name: "locate", about: "locating a host: DNS records like dig, ping, traceroute (lessons 1.1-1.3)", register_into: locate::register_into },
    Capability { name: "lab", about: "a network of our own: namespaces joined by veth pairs, routers between a client and a server (root)", register_into: lab::register_into },
    Capability { name: "encoding", about: "bytes as text and back: hex, base64", register_into: encoding::register_into },
    Capability { name: "http_serve", about: "serving HTTP: routes of Rhai closures, HTTP/1.1 and HTTP/2, like a mock API or python -m http.server", register_into: http_serve::register_into },
    Capability { name: "ws", about: "WebSocket: ws_connect, like websocat", register_into: ws::register_into },
    Capability { name: "relay", about: "relays and proxies: relay, forward, like socat and rinetd", register_into: relay::register_into },
];

/// Adds every capability's functions to `module`, which the shell
/// registers as the one global module with its own: Rhai looks a function
/// up module by module, so one module instead of a dozen makes every first
/// call of a function cheaper (an event handler's calls are first calls
/// each time).
pub fn register_into(module: &mut Module) {
    for capability in CAPABILITIES {
        (capability.register_into)(module, Docs::Left);
    }
}
