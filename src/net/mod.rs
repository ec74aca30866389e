//! The native capabilities, one Rhai module per file, and the one list that
//! registers them.
//!
//! Adding a capability means a new file here exposing `pub fn module() -> Module`
//! (a `#[export_module]`) and one line in [`CAPABILITIES`]. `help()` groups
//! functions by these entries, in this order.

use rhai::{Engine, Module};

pub mod addr;
pub mod capture;
pub mod helpers;
pub mod names;
pub mod ports;
pub mod scan;
pub mod sockets;
pub mod task;
pub mod tcp;
pub mod transfer;
pub mod udp;

/// A native capability: its name in `help()`, a one-line summary, its module.
pub struct Capability {
    pub name: &'static str,
    pub about: &'static str,
    pub module: fn() -> Module,
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
    Capability { name: "task", about: "background tasks and servers: task, serve", module: task::module },
    Capability { name: "udp", about: "UDP datagrams (lesson 1.7)", module: udp::module },
    Capability { name: "transfer", about: "file upload, verified and resumable, or raw like nc (lesson 1.6)", module: transfer::module },
    Capability { name: "helpers", about: "time, hashing, files, JSON, environment", module: helpers::module },
];

/// Registers every capability's functions into the global namespace.
pub fn register(engine: &mut Engine) {
    for capability in CAPABILITIES {
        engine.register_global_module((capability.module)().into());
    }
}
