//! The native capabilities, one Rhai module per file, and the one list that
//! registers them.
//!
//! Adding a capability means a new file here exposing `pub fn module(docs:
//! Docs) -> Module` (an `#[export_module(manifest)]` built by
//! [`crate::registry::functions`]) and one line in [`CAPABILITIES`]. `help()`
//! groups functions by these entries, in this order.

use rhai::{Engine, Module};

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

/// A native capability: its name in `help()`, a one-line summary, its module.
pub struct Capability {
    pub name: &'static str,
    pub about: &'static str,
    pub module: fn(Docs) -> Module,
}

/// Every native capability, in the order `help()` shows them.
#[rustfmt::skip]
pub const CAPABILITIES: &[Capability] = &[
    Capability { name: "names", about: "host names and IP addresses (lesson 1.3)", module: names::module },
    Capability { name: "ports", about: "port ranges and well-known services (lesson 1.4)", module: ports::module },
    Capability { name: "scan", about: "which ports answer, and why: a connect scan, like nmap -sT", module: scan::module },
    Capability { name: "sockets", about: "who holds which port, like netstat -ano (lesson 1.4)", module: sockets::module },
    Capability { name: "capture", about: "seeing the wire: the packets of a port, like tcpdump (lesson 1.5)", module: capture::module },
    Capability { name: "tcp", about: "TCP client and server (lessons 1.5, 1.6)", module: tcp::module },
    Capability { name: "interact", about: "a connection joined to the terminal or to stdin/stdout, like nc", module: interact::module },
    Capability { name: "task", about: "background tasks, and the jobs table: task, jobs, stop_all, wait", module: task::module },
    Capability { name: "serve", about: "servers in the background: a closure per connection, or event handlers", module: serve::module },
    Capability { name: "shared", about: "state tasks share on purpose: shared values and channels", module: shared::module },
    Capability { name: "udp", about: "UDP datagrams (lesson 1.7)", module: udp::module },
    Capability { name: "transfer", about: "file upload, verified and resumable, or raw like nc (lesson 1.6)", module: transfer::module },
    Capability { name: "http", about: "URLs: fetch, a download with resume, like curl and wget (lesson 1.8)", module: http::module },
    Capability { name: "helpers", about: "time, hashing, files, JSON, environment", module: helpers::module },
    Capability { name: "locate", about: "locating a host: DNS records like dig, ping, traceroute (lessons 1.1-1.3)", module: locate::module },
    Capability { name: "lab", about: "a network of our own: namespaces joined by veth pairs, routers between a client and a server (root)", module: lab::module },
    Capability { name: "encoding", about: "bytes as text and back: hex, base64", module: encoding::module },
    Capability { name: "http_serve", about: "serving HTTP: routes of Rhai closures, HTTP/1.1 and HTTP/2, like a mock API or python -m http.server", module: http_serve::module },
    Capability { name: "ws", about: "WebSocket: ws_connect, like websocat", module: ws::module },
    Capability { name: "relay", about: "relays and proxies: relay, forward, like socat and rinetd", module: relay::module },
];

/// Registers every capability's functions into the global namespace, as
/// one module: Rhai looks a function up module by module, so one module
/// instead of a dozen makes every first call of a function cheaper (an
/// event handler's calls are first calls each time).
pub fn register(engine: &mut Engine) {
    let mut all = Module::new();
    for capability in CAPABILITIES {
        all.combine_flatten((capability.module)(Docs::Left));
    }
    engine.register_global_module(all.into());
}
