//! Locating a host (lessons 1.1–1.3): asking a DNS server directly, as
//! `dig` does (`dns`, `dns_many`), and whether a host answers (`ping`).
//!
//! - `dns/` — questions, the wire, answers as data and as dig-like text,
//!   and a small server for a script's own names
//! - `dns_serve.rs` — `dns_serve` and its `DnsServer` handle, for Rhai
//! - `icmp.rs` — echo requests on a raw or ping socket, replies and ICMP errors
//! - `ping.rs` — `ping`'s schedule, live lines and statistics
//! - `traceroute.rs` — probes with rising TTLs, a window at a time, and who answered
//!
//! Each function parses and checks every argument first; the point where
//! everything is parsed and nothing is sent yet is the line before the
//! `dns::query…` call.

pub mod dns;
mod dns_serve;
pub mod icmp;
pub mod ping;
pub mod traceroute;

use rhai::plugin::*;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    dns_serve::register_into(module, docs);
}

/// The dig-like text of a `dns()` answer, for the REPL's printing.
pub fn dns_answer_text(m: &rhai::Map) -> Option<String> {
    dns::show::answer_text(m)
}

/// A traceroute result as `traceroute -n` prints it, for the REPL.
pub fn hops_text(items: &rhai::Array) -> Option<String> {
    traceroute::hops_text(items)
}

/// The options `dns_many` knows: `dns`'s and how many questions may be
/// in flight at once.
const MANY_KNOWN: &[&str] = &[
    "server",
    "tcp",
    "tls",
    "https",
    "timeout",
    "recurse",
    "dnssec",
    "concurrency",
];
/// Questions in flight at once in `dns_many` unless told.
const DEFAULT_CONCURRENCY: usize = 100;

/// `ping(host, options)` as a script calls it, for another capability
/// (the lab's probe, from a thread standing in the lab's client).
pub fn ping_from_here(host: &str, options: rhai::Map) -> crate::error::ScriptResult<rhai::Map> {
    api::ping(host, options)
}

/// `traceroute(host, options)` as a script calls it, for another capability.
pub fn traceroute_from_here(
    host: &str,
    options: rhai::Map,
) -> crate::error::ScriptResult<rhai::Array> {
    api::traceroute(host, options)
}

#[export_module(manifest)]
mod api {
    use rhai::{Array, Dynamic, Map};

    use super::dns::{self, Question, question::Settings};
    use crate::error::{Error, ScriptResult, fail};
    use crate::net::options::Options;

    /// Asks the system's DNS server (the first `nameserver` of
    /// /etc/resolv.conf) for the A records of `name`. See
    /// `dns(name, type, options)`.
    ///
    /// ```rhai
    /// dns("example.com").answers[0].data     // "93.184.215.14"
    /// ```
    ///
    /// Fails when: `name` is not a DNS name; no answer comes within 5 s;
    /// the server refuses the port; the answer is not DNS.
    #[rhai_fn(name = "dns", return_raw)]
    pub fn dns_a(name: &str) -> ScriptResult<Map> {
        dns_with(name, Dynamic::from("A"), Map::new())
    }

    /// Asks the system's DNS server for `name`'s records of `type` (a
    /// name like `"MX"`, `"TYPE65280"`, or a number). For `"PTR"`, an IP
    /// address becomes its reverse name. See `dns(name, type, options)`.
    ///
    /// ```rhai
    /// dns("example.com", "MX").answers;   // [#{name, type, ttl, data: "10 mail.example.com.", preference, exchange}]
    /// dns("127.0.0.1", "PTR")             // asks 1.0.0.127.in-addr.arpa.
    /// ```
    ///
    /// Fails when: `name` is not a DNS name; `type` is unknown; no answer
    /// comes within 5 s; the server refuses; the answer is not DNS.
    #[rhai_fn(name = "dns", return_raw)]
    pub fn dns_typed(name: &str, rtype: Dynamic) -> ScriptResult<Map> {
        dns_with(name, rtype, Map::new())
    }

    /// Asks a DNS server one question, as `dig @server name type` does, and
    /// returns the answer as data: `#{name, type, rcode, answers, authority,
    /// additional, flags, server, transport, ms}`. Each record is
    /// `#{name, type, ttl, data}` with `data` exactly as `dig +short`
    /// prints it, and typed parts for MX (`preference`, `exchange`), SRV
    /// (`priority`, `weight`, `port`, `target`), SOA (`mname`, `rname`,
    /// `serial`, …), TXT (`strings`) and CAA (`flags`, `tag`, `value`).
    /// NXDOMAIN and SERVFAIL are answers (`rcode`), not errors. A
    /// truncated UDP answer is asked again over TCP. Options: `server`
    /// (`"IP:PORT"`; default the first nameserver of /etc/resolv.conf),
    /// `tcp` (false), `tls` (DNS over TLS, RFC 7858: `true` to check the
    /// server's certificate against the system's CAs and its IP address,
    /// or `#{ca, sni, pin, insecure}` as `connect` takes them; without
    /// `server`, the system's server at port 853), `https` (DNS over
    /// HTTPS, RFC 8484: `true` for `/dns-query`, or the path; HTTP/2 with
    /// `tls`'s trust settings; port 443 without `server`), `timeout` (ms,
    /// 5000; 0 no limit), `recurse` (true:
    /// the RD bit), `dnssec` (false: the DO bit; `flags.ad` says whether
    /// the server validated). The REPL prints it like
    /// `dig +noall +answer`, with the status and server underneath.
    ///
    /// ```rhai
    /// let r = dns("www.example.test", "A", #{server: "127.0.0.1:5353", timeout: 2000});
    /// r.rcode;                // "NOERROR"
    /// r.answers.map(|a| a.data)
    /// ```
    ///
    /// Fails when: `name` is not a DNS name; `type` is unknown or out of
    /// range; an option is unknown or of the wrong type; `server` is not
    /// `IP:PORT`; no answer comes in time (kind `timeout`); nothing listens
    /// on the server's port (kind `refused`); the answer is not DNS, or
    /// with `tls` the server's certificate is not trusted or names another
    /// host (kind `protocol`).
    #[rhai_fn(name = "dns", return_raw)]
    pub fn dns_with(name: &str, rtype: Dynamic, options: Map) -> ScriptResult<Map> {
        let rtype = dns::question::parse_type(&rtype).map_err(fail("dns"))?;
        let question = Question::new(name, rtype).map_err(fail("dns"))?;
        let settings =
            Settings::from_options(&options, dns::question::KNOWN).map_err(fail("dns"))?;
        crate::permit::net_addrs(&settings.server.to_string(), &[settings.server])
            .map_err(fail("dns"))?;
        // Everything is parsed and granted; nothing has been sent.
        dns::query(&question, &settings).map_err(fail("dns"))
    }

    /// Asks many questions of one type at once (100 in flight unless
    /// `concurrency` says otherwise) and returns the answers in the order
    /// of `names`, each as `dns()` returns it; a question that got no
    /// answer gives `#{name, type, error, kind}` in its place. Options as
    /// `dns`, and `concurrency`.
    ///
    /// ```rhai
    /// let names = ["a.example.test", "b.example.test"];
    /// for r in dns_many(names, "A", #{server: "127.0.0.1:5353"}) { print(`${r.name} ${r.rcode}`) }
    /// ```
    ///
    /// Fails when: `names` holds anything that is not a DNS name (before
    /// anything is sent); `type` is unknown; an option is unknown or of
    /// the wrong type; `server` is not `IP:PORT`; Ctrl-C.
    #[rhai_fn(name = "dns_many", return_raw)]
    pub fn dns_many(names: Array, rtype: Dynamic, options: Map) -> ScriptResult<Array> {
        let rtype = dns::question::parse_type(&rtype).map_err(fail("dns_many"))?;
        let questions = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let text = name.read_lock::<rhai::ImmutableString>().ok_or_else(|| {
                    Error::invalid(format!("names[{i}] is {}, not a string", name.type_name()))
                })?;
                Question::new(&text, rtype)
            })
            .collect::<crate::error::Result<Vec<_>>>()
            .map_err(fail("dns_many"))?;
        let settings =
            Settings::from_options(&options, super::MANY_KNOWN).map_err(fail("dns_many"))?;
        let concurrency = Options::new(&options, super::MANY_KNOWN)
            .and_then(|o| o.positive("concurrency"))
            .map_err(fail("dns_many"))?
            .unwrap_or(super::DEFAULT_CONCURRENCY);
        crate::permit::net_addrs(&settings.server.to_string(), &[settings.server])
            .map_err(fail("dns_many"))?;
        // Everything is parsed and granted; nothing has been sent.
        dns::query_many(&questions, &settings, concurrency).map_err(fail("dns_many"))
    }

    /// Sends 4 ICMP echo requests to `host`, a second apart, as `ping -c 4`.
    /// See `ping(host, options)`.
    ///
    /// ```rhai
    /// ping("127.0.0.1").received      // 4
    /// ```
    ///
    /// Fails when: `host` is not an IP address or a name that resolves;
    /// neither a raw socket (CAP_NET_RAW) nor a ping socket
    /// (`net.ipv4.ping_group_range`) is allowed (kind `permission`).
    #[rhai_fn(name = "ping", return_raw)]
    pub fn ping_default(host: &str) -> ScriptResult<Map> {
        ping(host, Map::new())
    }

    /// Sends ICMP echo requests to `host` (IPv4 or IPv6) and returns
    /// `#{host, addr, sent, received, errors, loss, min_ms, avg_ms, max_ms,
    /// mdev_ms, replies: [#{seq, ttl, ms, from}], icmp_errors, socket}`.
    /// An ICMP error (unreachable, TTL exceeded) is counted in `errors`,
    /// never as a reply. Options: `count` (4), `interval` (ms, 1000; below
    /// 200 only with CAP_NET_RAW, as ping), `size` (payload bytes, 56),
    /// `ttl`, `timeout` (ms to wait for the last reply, 2000), `live`
    /// (print each reply as it arrives; on in the REPL). Without
    /// CAP_NET_RAW it uses a ping socket; Ctrl-C ends it with the summary.
    ///
    /// ```rhai
    /// let p = ping("::1", #{count: 3, interval: 200});
    /// p.loss;                         // 0.0
    /// p.replies.map(|r| r.seq)        // [1, 2, 3]
    /// ```
    ///
    /// Fails when: `host` does not parse or resolve; `count` is not 1 or
    /// more; `interval` is negative; `ttl` is not 1–255; `size` is over
    /// 65507; an option is unknown; neither socket kind is allowed (kind
    /// `permission`, saying how to allow one); an interval below 200 ms
    /// without CAP_NET_RAW.
    #[rhai_fn(name = "ping", return_raw)]
    pub fn ping(host: &str, options: Map) -> ScriptResult<Map> {
        let plan = super::ping::Plan::new(host, &options).map_err(fail("ping"))?;
        let socket = super::ping::open(&plan).map_err(fail("ping"))?;
        // Everything is parsed and the socket is open; nothing has been sent.
        super::ping::run(&plan, &socket).map_err(fail("ping"))
    }

    /// The routers on the way to `host`, as `traceroute -n`. See
    /// `traceroute(host, options)`.
    ///
    /// ```rhai
    /// traceroute("10.91.4.2").map(|h| h.addr)
    /// ```
    ///
    /// Fails when: `host` does not parse or resolve, or is IPv6; there is
    /// no CAP_NET_RAW (kind `permission`).
    #[rhai_fn(name = "traceroute", return_raw)]
    pub fn traceroute_default(host: &str) -> ScriptResult<Array> {
        traceroute(host, Map::new())
    }

    /// The routers on the way to `host` (IPv4 or IPv6): probes with TTL
    /// (hop limit) 1, 2, 3…,
    /// eight TTLs at a time, each router answering "time exceeded". Returns
    /// `[#{hop, addr, ms: [..], name}]` up to and including the
    /// destination; `addr` is `()` for a hop that stayed silent. Options:
    /// `proto` (`"udp"` to ports 33434 and up, as traceroute; `"icmp"`
    /// echo; `"tcp"` SYN to `port`, 80), `max_hops` (30, at most 255),
    /// `queries` per hop (3), `timeout` (ms to wait for a window of
    /// TTLs, 2000), `names` (false: look up each hop's name). Needs
    /// CAP_NET_RAW to hear the routers.
    ///
    /// ```rhai
    /// for h in traceroute("10.91.4.2", #{proto: "icmp", queries: 1}) { print(`${h.hop} ${h.addr}`) }
    /// ```
    ///
    /// Fails when: `host` does not parse or resolve; `proto`
    /// is not udp, icmp or tcp; `max_hops` is not 1–255; `queries` not
    /// 1–10; an option is unknown; there is no CAP_NET_RAW (kind
    /// `permission`, saying how to allow it).
    #[rhai_fn(name = "traceroute", return_raw)]
    pub fn traceroute(host: &str, options: Map) -> ScriptResult<Array> {
        let plan = super::traceroute::Plan::new(host, &options).map_err(fail("traceroute"))?;
        let raw = super::traceroute::open(&plan).map_err(fail("traceroute"))?;
        // Everything is parsed and the socket is open; nothing has been sent.
        super::traceroute::run(&plan, raw).map_err(fail("traceroute"))
    }

    /// `dns_many(names, type, #{})`: the system's DNS server.
    ///
    /// ```rhai
    /// dns_many(["example.com", "example.org"], "A")
    /// ```
    ///
    /// Fails when: as `dns_many(names, type, options)`.
    #[rhai_fn(name = "dns_many", return_raw)]
    pub fn dns_many_default(names: Array, rtype: Dynamic) -> ScriptResult<Array> {
        dns_many(names, rtype, Map::new())
    }
}
