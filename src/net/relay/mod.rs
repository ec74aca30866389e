//! Relays: joining two connections (`relay(a, b)`) and forwarding a port
//! to a target (`forward(listen, target)`), socat's and rinetd's everyday
//! job, at the kernel's speed.
//!
//! - [`forward`] — the `Forward` job: accept, reach the target, relay.
//! - [`settings`] — `forward`'s options, all checked before anything binds.
//! - [`target`] — connecting to the target, and recognising a connection
//!   that comes back to the forward itself.
//! - [`splice`] — plain to plain: `splice(2)` through a pipe, no copy.
//! - [`copy`] — TLS on a side: 64 KiB buffers; and `relay` of two `Conn`s.
//! - [`pump`] — byte counts, both directions, idle/stop, resets.
//! - [`udp`] — `forward(…, #{udp: true})`: datagrams, a socket per client.
//! - [`socks`] — `socks_serve`'s side of SOCKS5: auth, request, rules.
//! - [`socks_udp`] — `socks_serve`'s UDP ASSOCIATE: datagrams with a
//!   SOCKS header, for as long as the client's TCP connection lasts.

use rhai::plugin::*;
use rhai::{Dynamic, Map};

use crate::error::{Error, Result};
use crate::net::addr;
use crate::net::tcp::{Bind, Conn};

mod copy;
mod forward;
mod pump;
mod settings;
mod socks;
mod socks_udp;
mod splice;
mod target;
mod udp;

pub use forward::Forward;
pub use udp::UdpForward;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Forward>("Forward");
    module.set_custom_type::<UdpForward>("UdpForward");
}

/// Where a forward listens: a port (every address), `"ip:port"` or
/// `"unix:/path"`.
fn bind_of(bind: &Dynamic) -> Result<Bind> {
    if let Ok(port) = bind.as_int() {
        return addr::port(port).map(|port| Bind::Ip(addr::any_addr(port)));
    }
    if let Some(text) = bind.read_lock::<rhai::ImmutableString>() {
        return crate::net::tcp::parse_listen(&text);
    }
    Err(crate::error::wrong_type(
        "a port number or an address like \"127.0.0.1:9000\"",
        bind,
    ))
}

/// `relay(a, b)`: both ways until both directions end; the counts.
fn relay(a: &Conn, b: &Conn) -> Result<Map> {
    if a.is_closed() {
        return Err(a.closed_error());
    }
    if b.is_closed() {
        return Err(b.closed_error());
    }
    let (a, b) = (a.clone(), b.clone());
    crate::runtime::block_on(async move {
        let ends = pump::Ends::default();
        // Ctrl-C and stop() end `block_on`'s wait, which drops this.
        let never = crate::runtime::CancellationToken::new();
        let end = copy::conns(&a, &b, &ends, None, &never).await?;
        let (a_to_b, b_to_a) = ends.totals();
        let mut m = Map::new();
        m.insert("a_to_b".into(), Dynamic::from_int(a_to_b as i64));
        m.insert("b_to_a".into(), Dynamic::from_int(b_to_a as i64));
        m.insert("seconds".into(), Dynamic::from_float(ends.seconds()));
        let how = match end {
            pump::End::Failed(e) => format!("reset: {e}"),
            _ => "closed".into(),
        };
        m.insert("end".into(), how.into());
        Ok(m)
    })
}

/// `forward(listen, target, options)`: everything parsed, then started.
fn forward(
    ctx: &NativeCallContext,
    bind: &Dynamic,
    target: &str,
    options: &Map,
) -> Result<Dynamic> {
    let bind = bind_of(bind)?;
    let dest = crate::net::tcp::parse_dest(target)?;
    match &dest {
        crate::net::tcp::Dest::Net(t) => {
            addr::destination(t)?;
            crate::permit::net(&t.host, t.port)?;
        }
        crate::net::tcp::Dest::Unix(path) => path.permitted()?,
    }
    let settings = settings::Settings::parse(ctx, options, settings::FORWARD_OPTIONS)?;
    if settings.udp {
        let Bind::Ip(bind) = bind else {
            return Err(Error::invalid(
                "a UDP forward listens on an IP address, not a Unix socket",
            ));
        };
        let crate::net::tcp::Dest::Net(target) = dest else {
            return Err(Error::invalid(
                "a UDP forward sends to an IP address and port, not a Unix socket",
            ));
        };
        return UdpForward::start(bind, target, settings).map(Dynamic::from);
    }
    Forward::start(&bind, forward::Route::To(dest), settings).map(Dynamic::from)
}

/// `socks_serve(listen, options)`: everything parsed, then started.
///
/// A port alone listens on 127.0.0.1, as `ssh -D` does: a SOCKS server open
/// on every interface would let anyone on the network reach this machine's
/// own loopback services through it. An address given whole is used as is.
fn socks_serve(ctx: &NativeCallContext, bind: &Dynamic, options: &Map) -> Result<Forward> {
    let bind = match bind.as_int() {
        Ok(port) => Bind::Ip(std::net::SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.into(),
            addr::port(port)?,
        )),
        Err(_) => bind_of(bind)?,
    };
    if let Bind::Unix(_) = bind {
        return Err(Error::invalid(
            "socks_serve listens on an IP address and port",
        ));
    }
    let rules = socks::Rules::parse(&crate::net::options::Options::new(
        options,
        settings::SOCKS_OPTIONS,
    )?)?;
    let settings = settings::Settings::parse(ctx, options, settings::SOCKS_OPTIONS)?;
    Forward::start(&bind, forward::Route::Socks(rules), settings)
}

#[export_module(manifest)]
mod api {
    use crate::error::{ScriptResult, fail};

    /// Joins two open connections (TCP, TLS or Unix, in any mix) both ways
    /// until both directions have ended; returns `#{a_to_b, b_to_a,
    /// seconds, end}` (bytes each way; `end` is `"closed"`, or `"reset: …"`
    /// when a side reset, which resets the other too). A half-close passes
    /// through: when `a` sends FIN, `b` gets FIN and `b`'s reply still
    /// reaches `a`. Plain sockets on both sides move by `splice(2)`, never
    /// copied through netsh. Both connections are closed after.
    ///
    /// ```rhai
    /// let l = listen("127.0.0.1:0");
    /// let back = connect("127.0.0.1:9000");
    /// print(relay(l.accept(), back));
    /// ```
    ///
    /// Fails when: a connection is already closed, or Ctrl-C / `stop()`
    /// interrupts it.
    #[rhai_fn(return_raw)]
    pub fn relay(a: Conn, b: Conn) -> ScriptResult<Map> {
        super::relay(&a, &b).map_err(fail("relay"))
    }

    /// Forwards a port: accepts connections on `listen` (a port, `"ip:port"`
    /// or `"unix:/path"`) and relays each to `target` (`"host:port"`,
    /// `"[v6]:port"`, `"unix:/path"`), in the background, like socat's
    /// `TCP-LISTEN:…,fork` or rinetd. Plain both sides, bytes move with
    /// `splice(2)` on the shared runtime: no thread per connection. A
    /// target that refuses closes the client at once, and is reported once
    /// every few seconds. Returns a job: `.port`, `.active`, `.stats()`,
    /// `.stop()`, `.wait()`.
    ///
    /// ```rhai
    /// let f = forward("127.0.0.1:8080", "127.0.0.1:80");
    /// ```
    ///
    /// Fails when: an address is malformed, the port is in use, or the
    /// target is the forward's own listening address.
    #[rhai_fn(return_raw)]
    pub fn forward(ctx: NativeCallContext, listen: Dynamic, target: &str) -> ScriptResult<Dynamic> {
        super::forward(&ctx, &listen, target, &Map::new()).map_err(fail("forward"))
    }

    /// A forward with options: `tls` (terminate TLS on the listening side:
    /// `#{self_signed: true}` or `#{cert, key}`), `target_tls` (originate
    /// TLS to the target, `connect`'s tls map), `max_connections` (more
    /// clients wait in the backlog), `allow` (address blocks of clients
    /// let in), `timeout` (connecting to the target, ms), `idle` (close a
    /// connection quiet that long, ms; 0 never), `quiet`, `on_open: |info|`
    /// and `on_close: |info|` (`info` is `#{peer, target}`, and on close
    /// also `a_to_b`, `b_to_a`, `seconds`), `udp: true` (datagrams: one
    /// outgoing socket per client, a session ends after `idle`, default
    /// 60 s).
    ///
    /// ```rhai
    /// let f = forward(8443, "127.0.0.1:8080", #{tls: #{self_signed: true}, on_close: |i| print(i)});
    /// let d = forward("127.0.0.1:5353", "127.0.0.1:53", #{udp: true});
    /// ```
    ///
    /// Fails when: as `forward(listen, target)`, or an option is unknown or
    /// has the wrong type.
    #[rhai_fn(return_raw, name = "forward")]
    pub fn forward_with(
        ctx: NativeCallContext,
        listen: Dynamic,
        target: &str,
        options: Map,
    ) -> ScriptResult<Dynamic> {
        super::forward(&ctx, &listen, target, &options).map_err(fail("forward"))
    }

    /// A SOCKS5 server in the background, like `ssh -D` or microsocks:
    /// clients (curl `--socks5`/`--socks5-hostname`, `connect(…, #{proxy:
    /// "socks5h://…"})`) ask for a host and port and get a relay to it,
    /// spliced as `forward`'s; also UDP ASSOCIATE (datagrams relayed while
    /// the client's TCP connection lasts, answers only from hosts it sent
    /// to; fragments are dropped). Options: `users: #{name:
    /// "pass"}` (username/password required), `allow` (client address
    /// blocks), `destinations` (address blocks it may connect to; default
    /// anywhere), `max_connections`, `timeout`, `idle`, `quiet`, `on_open`
    /// / `on_close` (`info.target` is what the client asked for). Returns
    /// the same kind of job as `forward`. A port alone listens on
    /// 127.0.0.1 only, as `ssh -D`: name an address (`"0.0.0.0:1080"`) to
    /// serve other machines, ideally with `users` and `allow`.
    ///
    /// ```rhai
    /// let s = socks_serve("127.0.0.1:1080", #{users: #{alice: "s3cret"}, destinations: ["127.0.0.0/8"]});
    /// ```
    ///
    /// Fails when: the address is malformed or in use, or an option is
    /// unknown or has the wrong type.
    #[rhai_fn(return_raw, name = "socks_serve")]
    pub fn socks_serve_with(
        ctx: NativeCallContext,
        listen: Dynamic,
        options: Map,
    ) -> ScriptResult<Forward> {
        super::socks_serve(&ctx, &listen, &options).map_err(fail("socks_serve"))
    }

    /// A SOCKS5 server with no authentication, reaching anywhere: the
    /// same as `socks_serve(listen, #{})`.
    ///
    /// ```rhai
    /// let s = socks_serve("127.0.0.1:0"); print(s.port);
    /// ```
    ///
    /// Fails when: the address is malformed or in use.
    #[rhai_fn(return_raw)]
    pub fn socks_serve(ctx: NativeCallContext, listen: Dynamic) -> ScriptResult<Forward> {
        super::socks_serve(&ctx, &listen, &Map::new()).map_err(fail("socks_serve"))
    }

    /// The port a forward listens on; `()` on a Unix socket.
    ///
    /// ```rhai
    /// forward("127.0.0.1:0", "127.0.0.1:80").port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn forward_port(f: &mut Forward) -> Dynamic {
        f.addr()
            .ip()
            .map_or(Dynamic::UNIT, |a| Dynamic::from_int(a.port() as i64))
    }

    /// The address a forward listens on.
    ///
    /// ```rhai
    /// f.addr
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn forward_addr(f: &mut Forward) -> String {
        f.addr().to_string()
    }

    /// How many connections a forward is relaying now.
    ///
    /// ```rhai
    /// f.active
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "active", pure)]
    pub fn forward_active(f: &mut Forward) -> i64 {
        f.active() as i64
    }

    /// What a forward has done: `#{served, active, failed, turned_away,
    /// a_to_b, b_to_a, target}` (bytes of closed connections; `failed`
    /// counts clients whose target could not be reached, `turned_away`
    /// those `allow` refused or that came back from the forward itself).
    ///
    /// ```rhai
    /// print(f.stats())
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stats")]
    pub fn forward_stats(f: &mut Forward) -> Map {
        f.stats()
    }

    /// Stops a forward: no more connections are accepted, those being
    /// relayed are closed, and the port is free when this returns.
    ///
    /// ```rhai
    /// f.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn forward_stop(f: &mut Forward) {
        f.stop();
    }

    /// Blocks until the forward is stopped, or Ctrl-C: keeps a script's
    /// forward running.
    ///
    /// ```rhai
    /// forward(8080, "127.0.0.1:80").wait();
    /// ```
    ///
    /// Fails when: interrupted by Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "wait")]
    pub fn forward_wait(f: &mut Forward) -> ScriptResult<()> {
        f.wait().map_err(fail("wait"))
    }

    /// How a forward prints: `Forward #3 ([::]:8080 → 127.0.0.1:80, running, 2 served, 1 active)`.
    ///
    /// ```rhai
    /// print(f)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn forward_to_string(f: &mut Forward) -> String {
        format!("{f:?}")
    }

    /// The port a UDP forward listens on.
    ///
    /// ```rhai
    /// forward("127.0.0.1:0", "127.0.0.1:53", #{udp: true}).port
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "port", pure)]
    pub fn udp_forward_port(f: &mut UdpForward) -> i64 {
        f.addr().port() as i64
    }

    /// The address a UDP forward listens on.
    ///
    /// ```rhai
    /// d.addr
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "addr", pure)]
    pub fn udp_forward_addr(f: &mut UdpForward) -> String {
        f.addr().to_string()
    }

    /// How many client sessions a UDP forward holds now.
    ///
    /// ```rhai
    /// d.active
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "active", pure)]
    pub fn udp_forward_active(f: &mut UdpForward) -> i64 {
        f.active() as i64
    }

    /// What a UDP forward has done: `#{served, active, a_to_b, b_to_a,
    /// target}` (sessions, and bytes each way).
    ///
    /// ```rhai
    /// print(d.stats())
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stats")]
    pub fn udp_forward_stats(f: &mut UdpForward) -> Map {
        f.stats()
    }

    /// Stops a UDP forward and ends its sessions; the port is free when
    /// this returns.
    ///
    /// ```rhai
    /// d.stop();
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(pure, name = "stop")]
    pub fn udp_forward_stop(f: &mut UdpForward) {
        f.stop();
    }

    /// Blocks until the UDP forward is stopped, or Ctrl-C.
    ///
    /// ```rhai
    /// forward(5353, "127.0.0.1:53", #{udp: true}).wait();
    /// ```
    ///
    /// Fails when: interrupted by Ctrl-C.
    #[rhai_fn(return_raw, pure, name = "wait")]
    pub fn udp_forward_wait(f: &mut UdpForward) -> ScriptResult<()> {
        f.wait().map_err(fail("wait"))
    }

    /// How a UDP forward prints.
    ///
    /// ```rhai
    /// print(d)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn udp_forward_to_string(f: &mut UdpForward) -> String {
        format!("{f:?}")
    }
}
