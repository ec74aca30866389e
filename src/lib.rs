//! netsh: a scriptable network shell. Every line is Rhai code with functions
//! for everyday socket work: names and addresses, ports and who holds them,
//! TCP and UDP, file upload, URLs.
//!
//! # Layout
//!
//! - [`cli`] — the command line (REPL, script, `-e`) and exit codes.
//! - [`shell`] — the Rhai engine: limits, capability registration, plugin
//!   discovery, `help()` from doc comments, value printing, error format.
//! - [`repl`] — the rustyline editor: completion, hints, multi-line input,
//!   history, Ctrl-C.
//! - [`runtime`] — the bridge from blocking Rhai to async tokio, and the
//!   cancellation (Ctrl-C, `.stop()`) every blocking call races.
//! - [`net`] — one file per capability, each a Rhai module, registered by one
//!   line in [`net::CAPABILITIES`]. A big capability is a folder whose
//!   `mod.rs` opens with the map of its files: [`net::tcp`] (connection
//!   internals, listen/connect, the `Conn` API), [`net::transfer`] (facade,
//!   wire format, sender, receiver, `serve_files`, options, API),
//!   [`net::http`], [`net::http_serve`] (the HTTP server), [`net::serve`],
//!   [`net::capture`], [`net::tls`], [`net::lab`] (a lab of network
//!   namespaces, built over rtnetlink and held by the handle alone),
//!   [`net::scan`] (the Rhai function, the engine for this machine and the
//!   one for other hosts, port lists).
//!   [`net::options`] reads every function's trailing options map.
//! - [`error`] — the typed error every capability returns, turned into a
//!   plain-words Rhai error in one place; `error/describe.rs` prints an
//!   uncaught one, `error/script.rs` is what a script reads off a caught one.
//! - [`console`] — where output goes, so background work never tears the prompt.
//! - [`limits`] — the size limits every layer shares.
//! - [`heap`] — the heap start-up fills, mapped in with one call.
//! - [`registry`] — how an `#[export_module]` becomes a Rhai module: with
//!   its doc comments for `help()`, without them for the engine scripts run in.
//! - [`permit`] — permissions (`--allow-net`, `--sandbox`…): the one check
//!   every capability makes before it sends, accepts, reads or writes.
//!
//! Scenario scripts live in `scripts/`, Rhai plugin libraries in `plugins/`;
//! both are embedded in the binary ([`shell::bundled`]), so an installed
//! netsh has them in any folder.

pub mod cli;
pub mod console;
pub mod error;
pub mod heap;
pub mod limits;
pub mod net;
pub mod permit;
pub mod registry;
pub mod repl;
pub mod runtime;
pub mod shell;
