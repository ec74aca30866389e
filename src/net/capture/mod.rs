//! Seeing the wire (lesson 1.5): `capture` records the packets of a port
//! while a closure runs (or while the user watches), so the three-way
//! handshake and the four-way close can be seen on the user's own
//! connection, as tcpdump shows them but readable from a script.
//!
//! The parts: [`filter`] writes the kernel filter (port, host, protocol;
//! loopback's second copy of each packet dropped), [`socket`] owns the
//! `AF_PACKET` socket and its ring, [`packet`] turns bytes into [`Packet`]s
//! with relative sequence numbers (a script gets each as a plain map),
//! [`pcap`] writes a pcap file, and [`run`] ties them together on a reader
//! thread.
//!
//! Why `AF_PACKET` and not libpcap: the kernel already offers everything a
//! capture of one port needs (a filter, a ring, drop counters), and libpcap
//! would add a system library an installed binary then depends on.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use rhai::plugin::*;
use rhai::{Array, FnPtr, Map};

use crate::error::{Error, Result};
use crate::net::{addr, options};
use crate::runtime;

mod filter;
mod packet;
mod pcap;
mod run;
mod socket;

pub use filter::{Proto, Selector};
pub use packet::Packet;
pub use run::Summary;
pub use socket::NEED_PRIVILEGE;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

/// A captured packet's map as one tcpdump-like line, if `m` has exactly a
/// packet's shape (the REPL prints packets this way).
pub fn packet_line(m: &Map) -> Option<String> {
    packet::Shown::from_map(m).map(|p| p.line())
}

/// An array of captured packets' maps as a table under a header, if every
/// item has a packet's shape and there is at least one.
pub fn packet_table(items: &Array) -> Option<String> {
    let shown: Vec<packet::Shown> = items
        .iter()
        .map(|v| packet::Shown::from_map(&*v.read_lock::<Map>()?))
        .collect::<Option<_>>()?;
    (!shown.is_empty()).then(|| packet::table(&shown))
}

/// What a capture keeps and when it ends.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub selector: Selector,
    /// The interface's name and index (`None`: every interface).
    pub iface: Option<(String, u32)>,
    /// Stop after this many packets.
    pub count: Option<usize>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Also write the packets to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Print each packet as it arrives (`print` is a Rhai keyword).
    pub live: bool,
    /// Return `#{packets, seen, dropped, result}` instead of the packets alone.
    pub stats: bool,
}

const KNOWN: &[&str] = &[
    "port", "host", "proto", "iface", "count", "timeout", "pcap", "live", "stats",
];

impl Options {
    /// Checks every option before anything is opened.
    pub fn from_map(map: &Map) -> Result<Options> {
        let given = options::Options::new(map, KNOWN)?;
        let mut o = Options::default();
        if let Some(value) = given.value("port") {
            let n = value
                .as_int()
                .map_err(|_| options::Options::bad("port", "a port number", value))?;
            if n == 0 {
                return Err(Error::invalid(
                    "option 'port': no packet is sent to or from port 0; \
                     leave 'port' out to see every port",
                ));
            }
            o.selector.port = Some(addr::port(n)?);
        }
        if let Some(host) = given.text("host")? {
            o.selector.hosts = host_addresses(&host)?;
        }
        if let Some(proto) = given.text("proto")? {
            o.selector.proto = Some(match proto.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => {
                    return Err(Error::invalid(format!(
                        "option 'proto' must be \"tcp\" or \"udp\", not \"{proto}\""
                    )));
                }
            });
        }
        if let Some(name) = given.text("iface")? {
            let index = interface_index(&name)?;
            o.iface = Some((name, index));
        }
        o.count = given.positive("count")?;
        // The one timeout rule: 0 (like leaving it out) is no limit.
        o.timeout = given.timeout("timeout")?.flatten();
        if let Some(path) = given.text("pcap")? {
            if path.trim().is_empty() {
                return Err(Error::invalid("option 'pcap' needs a file name"));
            }
            o.pcap = Some(PathBuf::from(path));
        }
        o.live = given.flag("live", false)?;
        o.stats = given.flag("stats", false)?;
        // Seeing packets needs --allow-capture and the port in --allow-net;
        // the pcap file is a write. All before the socket is opened.
        crate::permit::capture(o.selector.port)?;
        if let Some(path) = &o.pcap {
            crate::permit::write(path)?;
        }
        Ok(o)
    }
}

/// The addresses of `host`, parsed as strictly as every address in netsh
/// (`"[::1"` is an error, not `::1`): an IP literal as it is, a name
/// through the resolver (`.invalid` names fail without a query).
fn host_addresses(host: &str) -> Result<Vec<IpAddr>> {
    let target = match addr::parse_host(host)? {
        addr::Host::Ip(ip) => return Ok(vec![ip]),
        addr::Host::Name(name) => addr::Target {
            host: name,
            port: 0,
        },
    };
    // Looking the name up says it to a DNS server.
    crate::permit::lookup(&target.host)?;
    let mut ips: Vec<IpAddr> = runtime::block_on(async move { addr::lookup(&target).await })?
        .into_iter()
        .map(|a| a.ip())
        .collect();
    ips.sort();
    ips.dedup();
    if ips.len() > filter::MAX_HOSTS {
        return Err(Error::invalid(format!(
            "'{host}' has {} addresses; name one of them (at most {} are matched)",
            ips.len(),
            filter::MAX_HOSTS
        )));
    }
    Ok(ips)
}

/// The index of a network interface, or an error naming the ones there are.
fn interface_index(name: &str) -> Result<u32> {
    match nix::net::if_::if_nametoindex(name) {
        Ok(index) if index > 0 => Ok(index),
        _ => {
            let mut names: Vec<String> = nix::net::if_::if_nameindex()
                .map(|list| {
                    list.iter()
                        .map(|i| i.name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            Err(Error::NotFound(format!(
                "no network interface named '{name}' (there are: {})",
                names.join(", ")
            )))
        }
    }
}

/// What `capture` returns: the packets, or with `stats: true` a map.
fn result(summary: Summary, stats: bool, value: Dynamic) -> Dynamic {
    let packets: Array = summary
        .packets
        .iter()
        .map(|p| Dynamic::from_map(p.to_map()))
        .collect();
    if !stats {
        return packets.into();
    }
    let mut m = Map::new();
    m.insert("packets".into(), packets.into());
    m.insert("seen".into(), (summary.seen as i64).into());
    m.insert("dropped".into(), (summary.dropped as i64).into());
    m.insert("result".into(), value);
    m.into()
}

#[export_module(manifest)]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail};
    use crate::net::tcp::wrong_type;

    /// Runs the closure while capturing the packets to and from a port,
    /// and returns them in order as maps `#{time, src, dst, proto, flags,
    /// seq, ack, window, len}` (`time` µs since the start, `flags` like
    /// `"SYN-ACK"`, `seq`/`ack` relative to each side's first; the TCP
    /// fields are `()` for UDP). The closure works on copies of what it
    /// captures, like every callback: return what you need. Options: `port`,
    /// `host`, `proto` (`"tcp"`/`"udp"`), `iface`, `count`, `timeout` (ms),
    /// `pcap` (a file for tcpdump/Wireshark), `live` (print each packet as
    /// it comes), `stats` (return `#{packets, seen, dropped, result}`).
    /// Needs CAP_NET_RAW.
    ///
    /// ```rhai
    /// let l = listen(0);
    /// let p = capture(#{port: l.port}, || { let c = connect("127.0.0.1", l.port); c.close(); });
    /// p.map(|x| x.flags)   // ["SYN", "SYN-ACK", "ACK", "FIN-ACK", …]
    /// ```
    ///
    /// Fails when: netsh lacks CAP_NET_RAW (the message says how to grant
    /// it), an option is unknown or wrong, the interface does not exist,
    /// the pcap file cannot be written, or the closure fails (its error).
    #[rhai_fn(return_raw)]
    pub fn capture(ctx: NativeCallContext, options: Map, f: FnPtr) -> ScriptResult<Dynamic> {
        let options = Options::from_map(&options).map_err(fail("capture"))?;
        let stats = options.stats;
        let running = run::Running::start(options, run::Mode::Closure).map_err(fail("capture"))?;
        // Like every callback, the closure works on copies of what it captured.
        let f = crate::runtime::closure::detached_fn(f);
        let value = match f.call_within_context::<Dynamic>(&ctx, ()) {
            Ok(value) => value,
            Err(err) => {
                running.abandon();
                return Err(err);
            }
        };
        let summary = running.settle().map_err(fail("capture"))?;
        Ok(super::result(summary, stats, value))
    }

    /// Watches a port's traffic, tcpdump-style, until `count` packets,
    /// `timeout` ms, or Ctrl-C (which ends the watch and returns what was
    /// seen). Same options as with a closure.
    ///
    /// ```rhai
    /// capture(#{port: 80, count: 10, timeout: 5000})
    /// ```
    ///
    /// Fails when: netsh lacks CAP_NET_RAW, an option is unknown or wrong,
    /// the interface does not exist, or the pcap file cannot be written.
    #[rhai_fn(return_raw, name = "capture")]
    pub fn capture_watch(options: Map) -> ScriptResult<Dynamic> {
        let options = Options::from_map(&options).map_err(fail("capture"))?;
        let stats = options.stats;
        let summary = run::Running::start(options, run::Mode::Watch)
            .and_then(run::Running::watch)
            .map_err(fail("capture"))?;
        Ok(super::result(summary, stats, Dynamic::UNIT))
    }

    /// Catches `capture` given something other than an options map.
    ///
    /// ```rhai
    /// capture(#{port: 9000})   // not capture(9000)
    /// ```
    ///
    /// Fails when: always: the argument is not a map of options.
    #[rhai_fn(return_raw, name = "capture")]
    pub fn capture_wrong_type(options: Dynamic) -> ScriptResult<Dynamic> {
        Err(fail("capture")(wrong_type(
            "a map of options like #{port: 9000}",
            &options,
        )))
    }

    /// Catches `capture` given the wrong kinds of arguments.
    ///
    /// ```rhai
    /// capture(#{port: 9000}, || connect("127.0.0.1:9000"))
    /// ```
    ///
    /// Fails when: always: the arguments are not a map and a closure.
    #[rhai_fn(return_raw, name = "capture")]
    pub fn capture_wrong_types(options: Dynamic, f: Dynamic) -> ScriptResult<Dynamic> {
        let err = if options.is_map() {
            wrong_type("a closure like || { … } as the second argument", &f)
        } else {
            wrong_type("a map of options like #{port: 9000} first", &options)
        };
        Err(fail("capture")(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(code: &str) -> Result<Options> {
        let engine = rhai::Engine::new();
        Options::from_map(&engine.eval::<Map>(code).unwrap())
    }

    #[test]
    fn every_option_is_checked_before_anything_opens() {
        let o =
            options("#{port: 9000, proto: \"UDP\", count: 3, timeout: 50, host: \"::1\"}").unwrap();
        assert_eq!(o.selector.port, Some(9000));
        assert_eq!(o.selector.proto, Some(Proto::Udp));
        assert_eq!(o.selector.hosts, vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            (o.count, o.timeout),
            (Some(3), Some(Duration::from_millis(50)))
        );
        for (code, message) in [
            ("#{prot: 1}", "unknown option 'prot' (known: port, host"),
            ("#{port: 70000}", "port 70000 is out of range"),
            (
                "#{port: \"80\"}",
                "option 'port': expected a port number, not a string",
            ),
            (
                "#{port: 0}",
                "option 'port': no packet is sent to or from port 0",
            ),
            (
                "#{proto: \"icmp\"}",
                "must be \"tcp\" or \"udp\", not \"icmp\"",
            ),
            (
                "#{count: 0}",
                "option 'count': expected a whole number, 1 or more, not 0",
            ),
            (
                "#{count: -1}",
                "option 'count': expected a whole number, 1 or more, not -1",
            ),
            (
                "#{timeout: -5}",
                "option 'timeout': expected 0 or more milliseconds",
            ),
            (
                "#{iface: \"nosuch0\"}",
                "no network interface named 'nosuch0' (there are: ",
            ),
            (
                "#{host: \"nohost.invalid\"}",
                "cannot resolve 'nohost.invalid'",
            ),
            ("#{pcap: \"\"}", "option 'pcap' needs a file name"),
            (
                "#{host: \"[::1\"}",
                "\"[::1\" has '[' without a closing ']'",
            ),
            (
                "#{host: \"::1]\"}",
                "\"::1]\" has ']' without an opening '['",
            ),
            (
                "#{host: \"[[::1]]]\"}",
                "\"[[::1]]]\" has \"]]\" after the ']'",
            ),
            ("#{host: \"127.1\"}", "127.1"),
            (
                "#{live: 1}",
                "option 'live': expected true or false, not a number",
            ),
        ] {
            let err = options(code).unwrap_err().to_string();
            assert!(err.contains(message), "{code}: {err}");
        }
        assert_eq!(options("#{iface: \"lo\"}").unwrap().iface.unwrap().0, "lo");
        // The one timeout rule: 0 is no limit.
        assert_eq!(options("#{timeout: 0}").unwrap().timeout, None);
        assert_eq!(
            options("#{host: \"[::1]\"}").unwrap().selector.hosts,
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
    }
}
