//! The Rhai side of `dns_serve`: its arguments read in full before
//! anything binds, and the `DnsServer` handle's methods.

use rhai::plugin::*;

/// The options `dns_serve` knows.
const KNOWN: &[&str] = &["ttl", "quiet"];
/// A record's TTL unless told.
const DEFAULT_TTL: u64 = 300;

/// The functions and the handle type.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<super::dns::serve::DnsServer>("DnsServer");
}

/// Where it listens: a port alone is 127.0.0.1's (a test's server is no
/// one else's business), `"ip:port"` as given.
fn bind_of(bind: &Dynamic) -> crate::error::Result<std::net::SocketAddr> {
    use crate::error::Error;
    if let Ok(port) = bind.as_int() {
        let port = crate::net::addr::port(port)?;
        return Ok((std::net::Ipv4Addr::LOCALHOST, port).into());
    }
    let Some(text) = bind.read_lock::<rhai::ImmutableString>() else {
        return Err(crate::error::wrong_type(
            "a port number or an address like \"127.0.0.1:5353\"",
            bind,
        ));
    };
    match crate::net::tcp::parse_listen(&text)? {
        crate::net::tcp::Bind::Ip(addr) => Ok(addr),
        _ => Err(Error::invalid(
            "dns_serve listens on an IP address and port",
        )),
    }
}

/// `ttl` and `quiet` from the options.
fn settings(options: &rhai::Map) -> crate::error::Result<(u32, bool)> {
    let o = crate::net::options::Options::new(options, KNOWN)?;
    let ttl = o
        .count_in("ttl", 0, u64::from(u32::MAX))?
        .unwrap_or(DEFAULT_TTL);
    Ok((
        u32::try_from(ttl).unwrap_or(u32::MAX),
        o.flag("quiet", false)?,
    ))
}

#[export_module(manifest)]
mod api {
    use rhai::{FnPtr, Map, NativeCallContext};

    use super::super::dns::serve::{DnsServer, Source};
    use super::super::dns::zone::Records;
    use crate::error::{ScriptResult, fail};
    use crate::runtime::closure::Callback;

    /// Answers DNS questions for `records` on `bind` (a port: 127.0.0.1's;
    /// or `"IP:PORT"`), over UDP and TCP on the same port, as a small
    /// authoritative server. `records` maps names to an address (A or
    /// AAAA), an array of them, or a map of record type to data written as
    /// `dig +short` prints it. A CNAME is followed inside the records; a
    /// name not there gets NXDOMAIN; a UDP answer too big comes back
    /// truncated so the asker retries over TCP. Options: `ttl` (s, 300),
    /// `quiet`. Listed in `jobs()`.
    ///
    /// ```rhai
    /// let d = dns_serve(0, #{"www.lab.test": ["127.0.0.1", "::1"],
    ///                      "lab.test": #{MX: "10 mail.lab.test.", TXT: "\"v=spf1 -all\""}});
    /// dns("www.lab.test", "AAAA", #{server: `127.0.0.1:${d.port}`}).answers[0].data   // "::1"
    /// ```
    ///
    /// Fails when: a name is not a DNS name; a value is not an address,
    /// an array or a map; a type is unknown; a record's data does not read
    /// as that type's; a name has a CNAME beside other records; an option
    /// is unknown or of the wrong type; the port is in use (kind `in_use`).
    #[rhai_fn(name = "dns_serve", return_raw)]
    pub fn dns_serve(bind: Dynamic, records: Map) -> ScriptResult<DnsServer> {
        dns_serve_with(bind, records, Map::new())
    }

    /// `dns_serve(bind, records)` with options: `ttl` (seconds, 300),
    /// `quiet` (true: no line when it starts).
    ///
    /// ```rhai
    /// let d = dns_serve("127.0.0.1:0", #{"a.test": "10.0.0.1"}, #{ttl: 5, quiet: true});
    /// d.stats().questions
    /// ```
    ///
    /// Fails when: as `dns_serve(bind, records)`.
    #[rhai_fn(name = "dns_serve", return_raw)]
    pub fn dns_serve_with(bind: Dynamic, records: Map, options: Map) -> ScriptResult<DnsServer> {
        let go = || {
            let bind = super::bind_of(&bind)?;
            let (ttl, quiet) = super::settings(&options)?;
            let records = Records::from_map(&records, ttl)?;
            DnsServer::start(bind, Source::Records(records), quiet)
        };
        go().map_err(fail("dns_serve"))
    }

    /// Answers each DNS question by calling `answer` with `#{name, type,
    /// peer, tcp}` (`name` without the final dot): it returns what a
    /// name's value is in `dns_serve(bind, records)` (an address, an
    /// array, a map of type to data), or `()` for NXDOMAIN. The closure
    /// runs on a thread of its own, one question at a time, so it may
    /// block; if it throws, the asker gets SERVFAIL and the error is shown.
    ///
    /// ```rhai
    /// let d = dns_serve(0, |q| if q.name.ends_with(".lab.test") { "127.0.0.1" }, #{quiet: true});
    /// dns("any.lab.test", "A", #{server: `127.0.0.1:${d.port}`}).rcode    // "NOERROR"
    /// ```
    ///
    /// Fails when: `answer` does not take one parameter; an option is
    /// unknown or of the wrong type; the port is in use.
    #[rhai_fn(name = "dns_serve", return_raw)]
    pub fn dns_serve_closure(
        ctx: NativeCallContext,
        bind: Dynamic,
        answer: FnPtr,
        options: Map,
    ) -> ScriptResult<DnsServer> {
        let go = || {
            let bind = super::bind_of(&bind)?;
            let (ttl, quiet) = super::settings(&options)?;
            let callback = Callback::new(&ctx, answer, "the answer closure", &["q"])?;
            DnsServer::start(bind, Source::Closure(callback, ttl), quiet)
        };
        go().map_err(fail("dns_serve"))
    }

    /// `dns_serve(bind, |q| …)` with no options.
    ///
    /// ```rhai
    /// let d = dns_serve(0, |q| "127.0.0.1");
    /// ```
    ///
    /// Fails when: as `dns_serve(bind, answer, options)`.
    #[rhai_fn(name = "dns_serve", return_raw)]
    pub fn dns_serve_closure_default(
        ctx: NativeCallContext,
        bind: Dynamic,
        answer: FnPtr,
    ) -> ScriptResult<DnsServer> {
        dns_serve_closure(ctx, bind, answer, Map::new())
    }

    /// The port it answers on.
    ///
    /// ```rhai
    /// let d = dns_serve(0, #{}); d.port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, get = "port", pure)]
    pub fn port(d: &mut DnsServer) -> i64 {
        i64::from(d.addr().port())
    }

    /// `#{questions, nxdomain, failed, tcp, truncated}` so far.
    ///
    /// ```rhai
    /// let d = dns_serve(0, #{}); d.stats().questions   // 0
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, pure)]
    pub fn stats(d: &mut DnsServer) -> Map {
        d.stats()
    }

    /// Stops answering and frees the port.
    ///
    /// ```rhai
    /// let d = dns_serve(0, #{}); d.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, pure)]
    pub fn stop(d: &mut DnsServer) {
        d.stop();
    }

    /// Waits until it is stopped (elsewhere, or Ctrl-C ends the wait).
    ///
    /// ```rhai
    /// let d = dns_serve(5353, #{"a.test": "127.0.0.1"}); d.wait();
    /// ```
    ///
    /// Fails when: Ctrl-C (kind `interrupted`).
    #[rhai_fn(global, pure, return_raw)]
    pub fn wait(d: &mut DnsServer) -> ScriptResult<()> {
        d.wait().map_err(fail("wait"))
    }

    /// `DnsServer #3 (udp+tcp 127.0.0.1:5353, running, 12 questions)`.
    ///
    /// ```rhai
    /// print(dns_serve(0, #{}))
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(d: &mut DnsServer) -> String {
        format!("{d:?}")
    }
}
