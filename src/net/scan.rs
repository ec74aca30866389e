//! Which ports answer (lesson 1.4): a concurrent TCP connect scan, like
//! `nmap -sT`, for hosts you are allowed to probe.
//!
//! A connect scan needs no privileges: a port is open when the three-way
//! handshake completes, closed when the host answers with RST, and filtered
//! when nothing answers in time. Up to `concurrency` connects are in flight
//! at once; on loopback a full 65,535-port sweep takes well under a second.

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use rhai::plugin::*;
use rhai::{Array, Map};
use tokio::{net::TcpStream, sync::Semaphore, task::JoinSet};

use crate::error::{Error, Result};
use crate::net::{addr, options::Options};
use crate::runtime;

/// The Rhai module of this capability.
pub fn module() -> Module {
    exported_module!(api)
}

/// How a scan is run.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// How long to wait for each handshake.
    pub timeout: Duration,
    /// How many connects may be in flight at once.
    pub concurrency: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeout: Duration::from_millis(1000),
            concurrency: 512,
        }
    }
}

/// What one port said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Open,
    /// The host answered with RST: nobody listens.
    Closed,
    /// Nothing answered in time (a firewall dropped the SYN).
    Filtered,
}

#[export_module]
mod api {
    use crate::error::{ScriptResult, fail};

    /// The open TCP ports of a host among `ports`: an array of port numbers,
    /// a range (`1..1024`), or a string like `"22,80,8000-8100"`.
    /// Connects concurrently (a TCP connect scan, like `nmap -sT`).
    ///
    /// ```rhai
    /// scan("127.0.0.1", 1..1024);      // [22, 631]
    /// scan("localhost", [22, 80, 443])
    /// ```
    ///
    /// Fails when: the host does not resolve, or a port is out of range.
    #[rhai_fn(return_raw)]
    pub fn scan(host: &str, ports: Dynamic) -> ScriptResult<Array> {
        super::run(host, &ports, &Map::new()).map_err(fail("scan"))
    }

    /// A scan with options: `timeout` (ms per port, default 1000),
    /// `concurrency` (default 512), `detail: true` to get a map per port
    /// `#{port, state, service}` for every port that is not closed.
    ///
    /// ```rhai
    /// scan("127.0.0.1", "1-65535", #{timeout: 300, concurrency: 1000})
    /// ```
    ///
    /// Fails when: the host does not resolve, a port is out of range, or an
    /// option has the wrong type.
    #[rhai_fn(return_raw, name = "scan")]
    pub fn scan_with(host: &str, ports: Dynamic, options: Map) -> ScriptResult<Array> {
        super::run(host, &ports, &options).map_err(fail("scan"))
    }
}

fn run(host: &str, ports: &Dynamic, options: &Map) -> Result<Array> {
    let ports = port_list(ports)?;
    let o = Options::new(options, &["timeout", "concurrency", "detail"])?;
    let defaults = ScanOptions::default();
    let mut settings = ScanOptions {
        timeout: match o.timeout("timeout")? {
            None => defaults.timeout,
            Some(limit) => limit.unwrap_or(Duration::MAX),
        },
        concurrency: o
            .count_in("concurrency", 1, 10_000)?
            .map_or(defaults.concurrency, |n| n as usize),
    };
    let detail = o.flag("detail", false)?;
    let target = addr::target(host, 0)?;
    settings.concurrency = settings.concurrency.min(descriptor_budget());
    let results = runtime::block_on(async move {
        // lookup puts IPv4 first and never returns an empty list.
        let host = addr::lookup(&target)
            .await?
            .first()
            .copied()
            .ok_or_else(|| Error::NotFound(format!("{} has no addresses", target.host)))?;
        scan_ports(host, ports, settings).await
    })?;
    Ok(results
        .into_iter()
        .filter_map(|(port, state)| match (detail, state) {
            (false, PortState::Open) => Some((port as i64).into()),
            (false, _) | (true, PortState::Closed) => None,
            (true, state) => {
                let mut m = Map::new();
                m.insert("port".into(), (port as i64).into());
                let name = match state {
                    PortState::Open => "open",
                    PortState::Filtered => "filtered",
                    PortState::Closed => "closed",
                };
                m.insert("state".into(), name.into());
                m.insert(
                    "service".into(),
                    crate::net::ports::service_name(port, "tcp")
                        .map_or(Dynamic::UNIT, Dynamic::from),
                );
                Some(m.into())
            }
        })
        .collect())
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

/// Probes every port of `host` (its port is ignored), sorted by port.
/// Fails only when this machine cannot make the probes (out of file handles).
pub async fn scan_ports(
    host: SocketAddr,
    ports: BTreeSet<u16>,
    options: ScanOptions,
) -> Result<Vec<(u16, PortState)>> {
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut probes = JoinSet::new();
    for port in ports {
        let permits = permits.clone();
        let addr = SocketAddr::new(host.ip(), port);
        probes.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (port, probe(addr, options.timeout).await)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = probes.join_next().await {
        if let Ok((port, state)) = joined {
            results.push((port, state?));
        }
    }
    results.sort_unstable_by_key(|(port, _)| *port);
    Ok(results)
}

/// One connect. Refused means closed; silence or "unreachable" means a
/// filter is in the way (as nmap reports it); running out of local
/// resources is our failure, not the port's, and stops the scan.
async fn probe(addr: SocketAddr, timeout: Duration) -> Result<PortState> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Ok(PortState::Open),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(PortState::Closed),
        Ok(Err(e))
            if matches!(
                e.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS)
            ) =>
        {
            Err(Error::io(format!("probing {addr}"), None, e))
        }
        Ok(Err(_)) | Err(_) => Ok(PortState::Filtered),
    }
}

/// Ports from an array, a Rhai range, or text like `"22,80,8000-8100"`.
pub fn port_list(ports: &Dynamic) -> Result<BTreeSet<u16>> {
    let mut set = BTreeSet::new();
    if let Some(range) = ports.clone().try_cast::<std::ops::Range<i64>>() {
        if range.end > 65536 || range.start < 0 {
            return Err(Error::invalid(format!(
                "the range {}..{} goes outside 0–65535",
                range.start, range.end
            )));
        }
        set.extend(range.map(|p| p as u16));
    } else if let Some(range) = ports.clone().try_cast::<std::ops::RangeInclusive<i64>>() {
        set.insert(addr::port(*range.start())?);
        set.insert(addr::port(*range.end())?);
        set.extend((*range.start()..=*range.end()).map(|p| p as u16));
    } else if let Some(array) = ports.clone().try_cast::<Array>() {
        for item in array {
            let n = item
                .as_int()
                .map_err(|t| Error::invalid(format!("ports must be numbers, not {t}")))?;
            set.insert(addr::port(n)?);
        }
    } else if let Ok(port) = ports.as_int() {
        set.insert(addr::port(port)?);
    } else if let Some(text) = ports.clone().try_cast::<rhai::ImmutableString>() {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let number = |s: &str| -> Result<u16> {
                let n: i64 = s.trim().parse().map_err(|_| {
                    Error::invalid(format!("'{s}' in \"{text}\" is not a port number"))
                })?;
                addr::port(n)
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(Error::invalid(format!("the range {part} runs backwards")));
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(number(part)?);
                }
            }
        }
    } else {
        return Err(Error::invalid(format!(
            "ports must be an array, a range like 1..1024, or text like \"22,80-90\", not {}",
            ports.type_name()
        )));
    }
    if set.is_empty() {
        return Err(Error::invalid("no ports to scan"));
    }
    // A SYN to port 0 is not a question any host can answer usefully.
    if set.contains(&0) {
        return Err(Error::invalid(
            "port 0 cannot be scanned (0 means \"any free port\" only when binding); start at 1",
        ));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_in_every_form() {
        let text = port_list(&Dynamic::from("22, 80,8000-8002")).unwrap();
        assert_eq!(
            text.into_iter().collect::<Vec<_>>(),
            [22, 80, 8000, 8001, 8002]
        );
        let range = port_list(&Dynamic::from(1_i64..4)).unwrap();
        assert_eq!(range.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(port_list(&Dynamic::from("70000")).is_err());
        assert!(port_list(&Dynamic::from("90-80")).is_err());
        assert!(port_list(&Dynamic::from(0_i64..70000)).is_err());
        for with_zero in [
            Dynamic::from(0_i64..10),
            Dynamic::from("0,80"),
            Dynamic::from(0_i64),
        ] {
            let err = port_list(&with_zero).unwrap_err().to_string();
            assert!(err.contains("port 0 cannot be scanned"), "{err}");
        }
    }
}
