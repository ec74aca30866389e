//! netsh's integration tests: the real binary (and, for the upload
//! receiver, the library) against real peers on loopback and a real
//! pseudo-terminal. One test crate, so the suite builds and links once.
//!
//! # Layout
//!
//! - `support/` — what every file shares: running netsh and explaining a
//!   failure ([`support::Netsh`]), background programs ([`support::Peer`]),
//!   the REPL in a pseudo-terminal ([`support::Terminal`]), ports, skips;
//!   `support/http.rs` (a hyper server), `support/nginx.rs`,
//!   `support/wire.rs` (a raw upload-protocol client).
//! - One file per capability or part of the shell, named after it: `tcp`,
//!   `udp`, `unix`, `tls` (and `tls_trust`, what a `ca` file trusts),
//!   `concurrency` (tasks and `serve`), `transfer`, `receiver` and
//!   `receiver_rules` (uploads), `fetch`, `fetch_trust` (what the network
//!   supplies: redirects, proxies, certificates) and `download`, `capture`,
//!   `handshake`, `scan`, `lab` (the namespace lab netsh builds), `names_ports`, `errors`, `bad_input`, `cli`,
//!   `repl`, `record` (recording a session), `permissions` (the sandbox),
//!   `relay` and `relay_interrupt` (Ctrl-C and `stop()` on relays),
//!   `socks_udp` (UDP ASSOCIATE with PySocks), `websocket` (`ws_connect`
//!   against python3-websockets) and `websocket_server` (`http_serve`'s
//!   WebSocket routes against python, netsh and Chromium), `interact`, `plugins`,
//!   `anywhere` (the installed tool from any folder), `docs`,
//!   `architecture` (the rules docs/ARCHITECTURE.md states, read off the
//!   source).
//!
//! Run one file's tests with `cargo test --test netsh tcp::`.

mod support;

mod anywhere;
mod architecture;
mod bad_input;
mod capture;
mod cli;
mod concurrency;
mod dns;
mod dns_serve;
mod docs;
mod download;
mod errors;
mod fetch;
mod fetch_trust;
mod handshake;
mod http_files;
mod http_sendfile;
mod http_serve;
mod interact;
mod lab;
mod names_ports;
mod permissions;
mod ping;
mod plugins;
mod proxy;
mod receiver;
mod receiver_rules;
mod record;
mod relay;
mod relay_interrupt;
mod repl;
mod scan;
mod socks_udp;
mod tcp;
mod tls;
mod tls_trust;
mod traceroute;
mod transfer;
mod udp;
mod unix;
mod websocket;
mod websocket_server;
