//! Who holds which port (lesson 1.4): the machine's TCP and UDP sockets,
//! IPv4 and IPv6, with their state and owning process, like `netstat -ano`
//! or `ss -tunap`.
//!
//! The kernel's tables come from `/proc/net/{tcp,tcp6,udp,udp6}`; each row
//! names a socket inode, and the owning process is the one with an open file
//! descriptor on that inode.

use std::{collections::HashMap, net::SocketAddr};

use procfs::net::{TcpState, UdpState};
use rhai::plugin::*;
use rhai::{Array, Map};

use crate::error::{Error, Result};
use crate::net::{addr, options::Options};

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// Every TCP and UDP socket on this machine, IPv4 and IPv6, as maps
    /// `#{proto, local, remote, state, pid, process}` — like `netstat -ano`.
    /// `pid` and `process` are `()` for sockets of processes you may not inspect.
    ///
    /// ```rhai
    /// for s in sockets() { print(`${s.proto} ${s.local} ${s.state} ${s.process}`) }
    /// ```
    ///
    /// Fails when: `/proc/net` cannot be read (not Linux).
    #[rhai_fn(return_raw)]
    pub fn sockets() -> ScriptResult<Array> {
        super::list(&super::Filter::default()).map_err(fail("sockets"))
    }

    /// The sockets that match a filter map; every key is optional:
    /// `port` (local or remote), `proto` (`"tcp"` or `"udp"`),
    /// `state` (`"LISTEN"`, `"ESTABLISHED"`, `"TIME_WAIT"`…), `pid`.
    ///
    /// ```rhai
    /// sockets(#{port: 5900, proto: "tcp", state: "LISTEN"})   // netstat -ano | findstr 5900
    /// ```
    ///
    /// Fails when: a key is unknown or a value has the wrong type.
    #[rhai_fn(return_raw, name = "sockets")]
    pub fn sockets_filtered(filter: Map) -> ScriptResult<Array> {
        super::Filter::from_map(&filter)
            .and_then(|f| super::list(&f))
            .map_err(fail("sockets"))
    }
}

/// Every state a row can have: netsh's names for TCP's states, and UDP's two.
const STATES: &[&str] = &[
    "LISTEN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "CLOSING",
    "UNCONN",
];

/// Which sockets to keep.
#[derive(Debug, Default)]
pub struct Filter {
    pub port: Option<u16>,
    pub proto: Option<String>,
    pub state: Option<String>,
    pub pid: Option<i32>,
}

impl Filter {
    fn from_map(map: &Map) -> Result<Self> {
        let options = Options::new(map, &["port", "proto", "state", "pid"])?;
        let port = match options.value("port") {
            None => None,
            Some(v) => {
                let n = v
                    .as_int()
                    .map_err(|_| options.wrong("port", "a port number", v))?;
                Some(addr::port(n)?)
            }
        };
        let proto = match options.text("proto")? {
            None => None,
            Some(proto) => {
                let proto = proto.to_ascii_lowercase();
                if !matches!(proto.as_str(), "tcp" | "udp" | "tcp6" | "udp6") {
                    return Err(Error::invalid(format!(
                        "option 'proto' must be \"tcp\" or \"udp\", not \"{proto}\""
                    )));
                }
                Some(proto)
            }
        };
        let state = match options.text("state")? {
            None => None,
            Some(state) => {
                let state = state.to_ascii_uppercase();
                if !STATES.contains(&state.as_str()) {
                    return Err(Error::invalid(format!(
                        "unknown state '{state}' (use one of {})",
                        STATES.join(", ")
                    )));
                }
                Some(state)
            }
        };
        let pid = match options.value("pid") {
            None => None,
            Some(v) => {
                let n = v
                    .as_int()
                    .map_err(|_| options.wrong("pid", "a process id", v))?;
                Some(
                    i32::try_from(n)
                        .map_err(|_| Error::invalid(format!("pid {n} is out of range")))?,
                )
            }
        };
        Ok(Filter {
            port,
            proto,
            state,
            pid,
        })
    }
}

/// One row of the socket table.
#[derive(Debug, Clone)]
pub struct SocketRow {
    pub proto: &'static str,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: &'static str,
    pub inode: u64,
}

/// All sockets, filtered, with their owners, as Rhai maps.
pub fn list(filter: &Filter) -> Result<Array> {
    // The table is read from /proc (sockets, and which process holds
    // each): a read like any other, so a sandboxed script needs
    // --allow-read=/proc to see who listens where.
    crate::permit::read(std::path::Path::new("/proc/net"))?;
    let rows: Vec<SocketRow> = rows()?
        .into_iter()
        .filter(|row| filter.matches_row(row))
        .collect();
    let owners = owners();
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let owner = owners.get(&row.inode);
            if let Some(pid) = filter.pid
                && owner.map(|(p, _)| *p) != Some(pid)
            {
                return None;
            }
            let mut m = Map::new();
            m.insert("proto".into(), row.proto.into());
            m.insert("local".into(), row.local.to_string().into());
            m.insert("remote".into(), row.remote.to_string().into());
            m.insert("state".into(), row.state.into());
            m.insert(
                "pid".into(),
                owner.map_or(Dynamic::UNIT, |(pid, _)| (*pid as i64).into()),
            );
            m.insert(
                "process".into(),
                owner.map_or(Dynamic::UNIT, |(_, name)| name.clone().into()),
            );
            Some(m.into())
        })
        .collect())
}

impl Filter {
    fn matches_row(&self, row: &SocketRow) -> bool {
        if let Some(port) = self.port
            && row.local.port() != port
            && row.remote.port() != port
        {
            return false;
        }
        if let Some(proto) = &self.proto
            && !row.proto.starts_with(proto.as_str())
        {
            return false;
        }
        if let Some(state) = &self.state
            && row.state != state
        {
            return false;
        }
        true
    }
}

/// The kernel's socket tables, read once.
pub fn rows() -> Result<Vec<SocketRow>> {
    let tcp = procfs::net::tcp()
        .map_err(|e| Error::NotFound(format!("cannot read the socket tables in /proc/net: {e}")))?;
    // A kernel without IPv6 has no tcp6/udp6 tables; that is not an error.
    let tcp6 = procfs::net::tcp6().unwrap_or_default();
    let mut rows = Vec::new();
    for (proto, table) in [("tcp", tcp), ("tcp6", tcp6)] {
        rows.extend(table.into_iter().map(|e| SocketRow {
            proto,
            local: e.local_address,
            remote: e.remote_address,
            state: tcp_state_name(&e.state),
            inode: e.inode,
        }));
    }
    for (proto, table) in [("udp", procfs::net::udp()), ("udp6", procfs::net::udp6())] {
        let table = table.unwrap_or_default();
        rows.extend(table.into_iter().map(|e| SocketRow {
            proto,
            local: e.local_address,
            remote: e.remote_address,
            state: match e.state {
                UdpState::Established => "ESTABLISHED",
                _ => "UNCONN",
            },
            inode: e.inode,
        }));
    }
    Ok(rows)
}

/// netstat's names for the TCP states.
pub fn tcp_state_name(state: &TcpState) -> &'static str {
    match state {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv | TcpState::NewSynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
    }
}

/// Socket inode → (pid, process name), for every process we may inspect.
pub fn owners() -> HashMap<u64, (i32, String)> {
    let mut map = HashMap::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return map;
    };
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        let mut name: Option<String> = None;
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target {
                let name = name.get_or_insert_with(|| {
                    process
                        .stat()
                        .map(|s| s.comm)
                        .unwrap_or_else(|_| "?".to_string())
                });
                map.entry(inode).or_insert((process.pid, name.clone()));
            }
        }
    }
    map
}

/// Who holds a local TCP port in LISTEN state, e.g. `"nginx (pid 812)"`.
pub fn holder_of(port: u16) -> Option<String> {
    let rows = rows().ok()?;
    let inode = rows
        .iter()
        .find(|r| r.proto.starts_with("tcp") && r.state == "LISTEN" && r.local.port() == port)?
        .inode;
    owners()
        .get(&inode)
        .map(|(pid, name)| format!("{name} (pid {pid})"))
}
