//! Which ports answer (lesson 1.4): a TCP connect scan, like `nmap -sT`,
//! for hosts you are allowed to probe.
//!
//! A connect scan needs no privileges: a port is open when the three-way
//! handshake completes, closed when the host answers with RST, and filtered
//! when nothing answers in time.
//!
//! Two engines. This machine (loopback or one of its own addresses) answers
//! inside the `connect` call itself, so a few threads of blocking connects
//! are as fast as the kernel allows: one system call per closed port, the
//! socket reused after each refusal (Linux lets a refused socket connect
//! again), no event loop in between. A 65,535-port sweep of 127.0.0.1 takes
//! 0.2–0.4 s on two busy cores. A remote host answers after a round trip or
//! never, so there many connects wait at once on the tokio runtime, up to
//! `concurrency`. A blocking connect waits `local::LOCAL_WAIT` at most: if this
//! machine stays silent that long (a firewall rule dropping SYNs, a full
//! accept queue), that port and the ones left over move to the concurrent
//! engine, which waits out the user's `timeout` (or none) and obeys Ctrl-C,
//! so a filtered local port costs one `timeout`, not one per port. The
//! sweep threads stop at Ctrl-C too, and the caller does not wait for them.
//!
//! A connect can land on its own source port: on loopback, connecting to a
//! port in the ephemeral range where nobody listens may pick that same port
//! as the source, and the SYN meets itself (a "simultaneous open"). A naive
//! scanner reports such a port as open. Here a connection whose local
//! address is its peer's is discarded and the port probed again.
//!
//! The files:
//!
//! - `mod.rs` (here): `scan()` for Rhai, its options, and [`scan_ports`],
//!   which picks the engine for each port;
//! - [`local`]: the engine for this machine, a few threads of blocking
//!   connects (`netsh-scan`);
//! - [`remote`]: the engine for other hosts, concurrent connects on the
//!   runtime;
//! - [`ports`]: the port lists a script writes, read strictly.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use rhai::plugin::*;
use rhai::{Array, Map};

use crate::error::{Error, Result};
use crate::net::{addr, options::Options};
use crate::runtime;

mod local;
mod ports;
mod remote;

use local::{Swept, local_sweep};
pub use ports::port_list;
use remote::concurrent_sweep;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// How a scan is run.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// How long to wait for each handshake (`None`: no limit of ours, the
    /// kernel gives up after its SYN retries, about two minutes).
    pub timeout: Option<Duration>,
    /// How many connects may be in flight at once.
    pub concurrency: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeout: Some(Duration::from_millis(1000)),
            concurrency: 512,
        }
    }
}

/// What one port said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handshake completed (SYN answered by SYN-ACK).
    Open,
    /// The host answered with RST: nobody listens.
    Refused,
    /// Nothing answered in time (a firewall dropped the SYN).
    Silent,
    /// The network said the host cannot be reached.
    Unreachable,
}

impl Outcome {
    /// `open`, `closed` or `filtered`, as nmap says it.
    pub fn state(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Refused => "closed",
            Outcome::Silent | Outcome::Unreachable => "filtered",
        }
    }

    /// Why: what came back, as nmap's `--reason` says it.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Open => "syn-ack",
            Outcome::Refused => "reset",
            Outcome::Silent => "no-response",
            Outcome::Unreachable => "unreachable",
        }
    }
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// The open TCP ports of a host among `ports`: an array of port numbers,
    /// a range (`1..1024`), or a string like `"22,80,8000-8100"` (read
    /// strictly: no spaces, signs or stray commas).
    /// A TCP connect scan, like `nmap -sT`; never reports a port that only
    /// answered itself (a loopback self-connect).
    ///
    /// ```rhai
    /// scan("127.0.0.1", 1..1024);      // [22, 631]
    /// scan("localhost", [22, 80, 443])
    /// ```
    ///
    /// Fails when: the host does not resolve, a port is out of range, or
    /// the text of ports has anything but digits, commas and dashes.
    #[rhai_fn(return_raw)]
    pub fn scan(host: &str, ports: Dynamic) -> ScriptResult<Array> {
        super::run(host, &ports, &Map::new()).map_err(fail("scan"))
    }

    /// A scan with options: `reason: true` gives every port as
    /// `#{port, state, reason}` (`open`/`syn-ack`, `closed`/`reset`,
    /// `filtered`/`no-response`); `service: true` adds the usual service
    /// (`#{port, service}` for the open ports alone); `detail: true` is both
    /// for the ports that are not closed. `timeout` (ms per port, default
    /// 1000; 0 is no limit: the kernel gives up after about two minutes,
    /// and Ctrl-C ends it), `concurrency` (connects at once for remote
    /// hosts, default 512).
    ///
    /// ```rhai
    /// scan("127.0.0.1", "1-65535", #{service: true});
    /// scan("127.0.0.1", [22, 9], #{reason: true})   // [#{port: 9, reason: "reset", state: "closed"}, …]
    /// ```
    ///
    /// Fails when: the host does not resolve, a port is out of range, or an
    /// option is unknown or has the wrong type.
    #[rhai_fn(return_raw, name = "scan")]
    pub fn scan_with(host: &str, ports: Dynamic, options: Map) -> ScriptResult<Array> {
        super::run(host, &ports, &options).map_err(fail("scan"))
    }
}

/// What each port of the result shows.
#[derive(Debug, Clone, Copy, Default)]
struct View {
    /// `state` and `reason`, for every port scanned.
    reason: bool,
    /// The usual service on the port.
    service: bool,
    /// Leave closed ports out even with `reason` (`detail`).
    skip_closed: bool,
}

impl View {
    fn maps(&self) -> bool {
        self.reason || self.service
    }

    fn shows(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Open => true,
            Outcome::Refused => self.reason && !self.skip_closed,
            Outcome::Silent | Outcome::Unreachable => self.reason,
        }
    }

    fn render(&self, port: u16, outcome: Outcome) -> Dynamic {
        if !self.maps() {
            return (port as i64).into();
        }
        let mut m = Map::new();
        m.insert("port".into(), (port as i64).into());
        if self.reason {
            m.insert("state".into(), outcome.state().into());
            m.insert("reason".into(), outcome.reason().into());
        }
        if self.service {
            m.insert(
                "service".into(),
                crate::net::ports::service_name(port, "tcp").map_or(Dynamic::UNIT, Dynamic::from),
            );
        }
        m.into()
    }
}

fn run(host: &str, ports: &Dynamic, options: &Map) -> Result<Array> {
    let ports = port_list(ports)?;
    let given = Options::new(
        options,
        &["timeout", "concurrency", "reason", "service", "detail"],
    )?;
    let mut settings = ScanOptions::default();
    if let Some(limit) = given.timeout("timeout")? {
        settings.timeout = limit;
    }
    if let Some(n) = given.count_in("concurrency", 1, 10_000)? {
        settings.concurrency = n as usize;
    }
    let (reason, service) = (given.flag("reason", false)?, given.flag("service", false)?);
    // `detail`: state, reason and service of the ports that are not closed.
    let detail = given.flag("detail", false)?;
    let view = View {
        reason: reason || detail,
        service: service || detail,
        skip_closed: detail,
    };
    let target = addr::target(host, 0)?;
    // lookup puts IPv4 first and never returns an empty list.
    let first_port = ports.first().copied().unwrap_or(0);
    crate::permit::net(&target.host, first_port)?;
    let host = runtime::block_on(async { addr::lookup(&target).await })?
        .first()
        .map(SocketAddr::ip)
        .ok_or_else(|| Error::NotFound(format!("{} has no addresses", target.host)))?;
    // Every port probed is a connection: all of them must be granted.
    crate::permit::net_ports(
        &target.host,
        host,
        &ports.iter().copied().collect::<Vec<u16>>(),
    )?;
    let results = scan_ports(host, ports, settings)?;
    Ok(results
        .into_iter()
        .filter(|&(_, outcome)| view.shows(outcome))
        .map(|(port, outcome)| view.render(port, outcome))
        .collect())
}

/// Probes every port of `host`, sorted by port. Fails only when this
/// machine cannot make the probes (out of file handles or local ports), or
/// on Ctrl-C.
pub fn scan_ports(
    host: IpAddr,
    ports: BTreeSet<u16>,
    options: ScanOptions,
) -> Result<Vec<(u16, Outcome)>> {
    let ports: Vec<u16> = ports.into_iter().collect();
    let swept = if crate::net::names::is_this_machine(host) {
        local_sweep(host, ports, &options)?
    } else {
        Swept {
            done: Vec::new(),
            left: ports,
        }
    };
    let (mut results, left) = (swept.done, swept.left);
    if !left.is_empty() {
        let mut options = options;
        options.concurrency = options.concurrency.min(descriptor_budget());
        results.extend(runtime::block_on(concurrent_sweep(host, left, options))?);
    }
    results.sort_unstable_by_key(|(port, _)| *port);
    Ok(results)
}

/// How many sockets a scan may hold open at once: what the process's
/// open-file limit leaves after a margin for everything else. Without this
/// cap, connects fail with "too many open files" and open ports go unseen.
fn descriptor_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass it.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let soft = if ok { limit.rlim_cur as usize } else { 1024 };
    soft.saturating_sub(64).max(1)
}
