//! The native capabilities, one Rhai module per file, and the one list that
//! registers them.
//!
//! Adding a capability means a new file here exposing `pub fn module() -> Module`
//! (a `#[export_module]`) and one line in [`CAPABILITIES`]. `help()` groups
//! functions by these entries, in this order.

use rhai::{Engine, Module};

pub mod addr;
pub mod capture;
pub mod encoding;
pub mod helpers;
pub mod http;
pub mod interact;
pub mod names;
pub mod options;
pub mod ports;
pub mod progress;
pub mod scan;
pub mod serve;
pub mod shared;
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
    Capability { name: "interact", about: "a connection joined to the terminal or to stdin/stdout, like nc", module: interact::module },
    Capability { name: "task", about: "background tasks, and the jobs table: task, jobs, stop_all, wait", module: task::module },
    Capability { name: "serve", about: "servers in the background: a closure per connection, or event handlers", module: serve::module },
    Capability { name: "shared", about: "state tasks share on purpose: shared values and channels", module: shared::module },
    Capability { name: "udp", about: "UDP datagrams (lesson 1.7)", module: udp::module },
    Capability { name: "transfer", about: "file upload, verified and resumable, or raw like nc (lesson 1.6)", module: transfer::module },
    Capability { name: "http", about: "URLs: fetch, a download with resume, like curl and wget (lesson 1.8)", module: http::module },
    Capability { name: "helpers", about: "time, hashing, files, JSON, environment", module: helpers::module },
    Capability { name: "encoding", about: "bytes as text and back: hex, base64", module: encoding::module },
];

/// Registers every capability's functions into the global namespace.
pub fn register(engine: &mut Engine) {
    for capability in CAPABILITIES {
        engine.register_global_module((capability.module)().into());
    }
}

#[cfg(test)]
mod tests {
    use crate::shell::help::HelpIndex;

    /// The capabilities whose every function must say when it fails.
    const CHECKED: &[&str] = &["tcp", "task", "serve", "shared", "udp", "transfer", "http"];

    /// Every function of these capabilities documents an example and when
    /// it fails, since `help()` shows exactly that.
    #[test]
    fn every_function_says_when_it_fails() {
        let index = HelpIndex::build(&[]);
        let mut missing = Vec::new();
        for name in CHECKED {
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
        for name in CHECKED {
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
