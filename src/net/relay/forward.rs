//! `forward(listen, target)`: a job that accepts connections and relays
//! each to the target, like `socat TCP-LISTEN:…,fork TCP:…` or rinetd, but
//! as tasks on the shared runtime (no thread, no process per connection).
//! Plain on both sides, bytes move by `splice`; TLS on either side, through
//! 64 KiB buffers.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rhai::{Dynamic, Map};
use tokio::sync::{Semaphore, watch};

use super::pump::{self, End, Ends};
use super::settings::{self, Settings};
use super::socks;
use super::splice;
use super::target;
use crate::error::{Error, Result};
use crate::net::proxy::socks5;
use crate::net::serve::Announcer;
use crate::net::tcp::{Accepted, Bind, Conn, Dest, Endpoint, ListenSocket, Stream};
use crate::runtime::{
    self, CancellationToken,
    jobs::{self, Job},
};

/// A running forward.
#[derive(Clone)]
pub struct Forward(Arc<State>);

pub struct State {
    id: u64,
    addr: Endpoint,
    route: Route,
    settings: Settings,
    life: jobs::Lifecycle,
    served: AtomicU64,
    active: AtomicU64,
    /// Connections the target refused (or that failed to connect).
    failed: AtomicU64,
    /// Clients turned away by `allow`, or coming back from this forward.
    turned_away: AtomicU64,
    a_to_b: AtomicU64,
    b_to_a: AtomicU64,
    announce: Arc<Announcer>,
    /// Set when an outgoing connection reached this forward itself: the
    /// target leads back here, and every client is closed at once.
    looped: std::sync::atomic::AtomicBool,
    /// When a failure to reach the target was last told, and how many
    /// since: a dead target is reported every few seconds, not per client.
    last_told: Mutex<Option<(Instant, u64)>>,
}

/// Where a forward's connections go.
pub enum Route {
    /// `forward`: always to this target.
    To(Dest),
    /// `socks_serve`: where each SOCKS5 client asks, within the rules.
    Socks(super::socks::Rules),
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::To(dest) => write!(f, "{dest}"),
            Route::Socks(_) => f.write_str("SOCKS5 clients' destinations"),
        }
    }
}

/// How often a target that keeps failing is reported.
const TELL_EVERY: Duration = Duration::from_secs(5);

impl Forward {
    /// Binds `bind` and starts relaying to `target`. Everything was checked
    /// by the caller; this is where the network is first touched.
    pub fn start(bind: &Bind, route: Route, settings: Settings) -> Result<Forward> {
        if let Route::To(target) = &route {
            if let Bind::Ip(ip) = bind
                && ip.port() != 0
                && target::is_self(*ip, target)
            {
                return Err(own_address(target));
            }
            if let (Bind::Unix(a), Dest::Unix(b)) = (bind, target)
                && a == b
            {
                return Err(own_address(target));
            }
        }
        // Thousands of relayed connections need two descriptors each.
        crate::net::serve::raise_open_file_limit();
        let handle = runtime::handle().clone();
        let (listener, addr) = {
            let _entered = handle.enter();
            ListenSocket::bind(bind)?
        };
        if let (Some(ip), Route::To(target)) = (addr.ip(), &route)
            && target::is_self(ip, target)
        {
            return Err(own_address(target));
        }
        let kind = match route {
            Route::To(_) => "forward",
            Route::Socks(_) => "socks_serve",
        };
        let label = match addr.ip() {
            Some(ip) => format!("{kind} {}", ip.port()),
            None => format!("{kind} {addr}"),
        };
        let state = Arc::new(State {
            id: jobs::next_id(),
            addr,
            route,
            announce: Arc::new(Announcer::new(label, settings.quiet)),
            settings,
            life: jobs::Lifecycle::new(CancellationToken::new()),
            served: AtomicU64::new(0),
            active: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            turned_away: AtomicU64::new(0),
            a_to_b: AtomicU64::new(0),
            b_to_a: AtomicU64::new(0),
            looped: std::sync::atomic::AtomicBool::new(false),
            last_told: Mutex::new(None),
        });
        handle.spawn(accept_loop(state.clone(), listener));
        state
            .announce
            .event(&format!("relaying {} → {}", state.addr, state.route));
        if let Some(tls) = &state.settings.tls
            && !state.settings.quiet
        {
            tls.tell_self_signed("forward", &state.addr);
        }
        let forward = Forward(state);
        jobs::add(Arc::new(forward.clone()));
        Ok(forward)
    }

    pub fn addr(&self) -> &Endpoint {
        &self.0.addr
    }

    pub fn active(&self) -> u64 {
        self.0.active.load(Ordering::Relaxed)
    }

    pub fn is_stopped(&self) -> bool {
        self.0.life.is_stopped()
    }

    pub fn stats(&self) -> Map {
        let s = &self.0;
        let mut m = Map::new();
        let n = |v: &AtomicU64| Dynamic::from_int(v.load(Ordering::Relaxed) as i64);
        m.insert("served".into(), n(&s.served));
        m.insert("active".into(), n(&s.active));
        m.insert("failed".into(), n(&s.failed));
        m.insert("turned_away".into(), n(&s.turned_away));
        m.insert("a_to_b".into(), n(&s.a_to_b));
        m.insert("b_to_a".into(), n(&s.b_to_a));
        m.insert("target".into(), s.route.to_string().into());
        m
    }

    /// Stops accepting and closes every relayed connection; waits (up to
    /// 2 s) until the port is free and the connections are closed.
    pub fn stop(&self) {
        self.0.life.stop();
    }

    /// Blocks until the forward is stopped, or Ctrl-C.
    pub fn wait(&self) -> Result<()> {
        self.0.life.wait()
    }
}

fn own_address(target: &Dest) -> Error {
    Error::invalid(format!(
        "the target {target} is this forward's own listening address: every connection would come back to it"
    ))
}

impl Job for Forward {
    fn stop(&self) {
        Forward::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.life.ended()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_stopped() {
            "stopped"
        } else {
            "running"
        };
        write!(
            f,
            "Forward #{} ({} → {}, {state}, {} served, {} active)",
            self.0.id,
            self.0.addr,
            self.0.route,
            self.0.served.load(Ordering::Relaxed),
            self.active()
        )
    }
}

/// Accepts until stopped; each connection becomes a task. With
/// `max_connections`, a slot is taken before accepting, so extra clients
/// wait in the listen backlog.
async fn accept_loop(state: Arc<State>, listener: ListenSocket) {
    let limit = state
        .settings
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    // The connections' tasks, so a stop can wait for them to close.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let slot = match &limit {
            Some(limit) => tokio::select! {
                biased;
                _ = state.life.token().cancelled() => break,
                slot = limit.clone().acquire_owned() => slot.ok(),
            },
            None => None,
        };
        let accepted = tokio::select! {
            biased;
            _ = state.life.token().cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                state
                    .announce
                    .error(&Error::io("accepting", None, e).to_string());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
        let peer = match &stream {
            Accepted::Tcp(s) => {
                let _ = s.set_nodelay(true);
                s.peer_addr()
                    .ok()
                    .map(|p| SocketAddr::new(p.ip().to_canonical(), p.port()))
            }
            Accepted::Unix(_) => None,
        };
        if let Some(peer) = peer
            && !settings::allowed(&state.settings.allow, peer.ip().to_canonical())
        {
            state.turned_away.fetch_add(1, Ordering::Relaxed);
            state
                .announce
                .event(&format!("turned away {peer}: not in allow"));
            continue;
        }
        state.served.fetch_add(1, Ordering::Relaxed);
        state.active.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        tasks.spawn(async move {
            let _slot = slot;
            connection(&state, stream, peer).await;
            state.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    // Every connection's task sees the cancelled token and closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    state.life.finish();
    state.announce.event("stopped");
}

/// One client: reach the target, relay, report.
async fn connection(state: &Arc<State>, client: Accepted, peer: Option<SocketAddr>) {
    let peer_name = match (&client, peer) {
        (_, Some(peer)) => peer.to_string(),
        (Accepted::Unix(s), None) => s
            .peer_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_else(|| "unix:(unnamed)".into()),
        (Accepted::Tcp(_), None) => "(unknown)".into(),
    };
    let s = &state.settings;
    // TLS on the listening side: the handshake first, so a client that
    // fails it costs the target nothing.
    let client = match &s.tls {
        Some(tls) => match tls_conn(client.into_stream(), tls.session(), s.timeout).await {
            Ok(conn) => Side::Conn(conn),
            Err(e) => {
                state.tell_failure(&format!("{peer_name}: {e}"));
                return;
            }
        },
        None => Side::Plain(client),
    };
    let opened = tokio::select! {
        biased;
        _ = state.life.token().cancelled() => return,
        opened = open(state, client) => opened,
    };
    let Some((client, target_stream, target_name)) = opened else {
        return;
    };
    if let Some(on_open) = &s.on_open {
        call(
            state,
            on_open,
            settings::info(&peer_name, &target_name, None),
        )
        .await;
    }
    state
        .announce
        .event(&format!("{peer_name} → {target_name} opened"));
    let ends = Ends::default();
    let end = relay(state, client, target_stream, &ends).await;
    let (a_to_b, b_to_a) = ends.totals();
    state.a_to_b.fetch_add(a_to_b, Ordering::Relaxed);
    state.b_to_a.fetch_add(b_to_a, Ordering::Relaxed);
    let how = match &end {
        Ok(End::Done) => String::new(),
        Ok(End::Failed(e)) => format!(" ({e}; both sides reset)"),
        Ok(End::Idle) => " (idle)".into(),
        Ok(End::Stopped) => " (stopped)".into(),
        Err(e) => format!(" ({e})"),
    };
    state.announce.event(&format!(
        "{peer_name} → {target_name} closed: {a_to_b} bytes sent, {b_to_a} received{how}"
    ));
    if let Some(on_close) = &s.on_close {
        let totals = Some((a_to_b, b_to_a, ends.seconds()));
        call(
            state,
            on_close,
            settings::info(&peer_name, &target_name, totals),
        )
        .await;
    }
}

/// Reaches the target (for SOCKS, the one the client asks for, answering
/// it); `None` when that failed, which was reported.
async fn open(state: &Arc<State>, client: Side) -> Option<(Side, Accepted, String)> {
    let s = &state.settings;
    let listening = state.addr.ip();
    let rules = match &state.route {
        Route::To(dest) => {
            if state.looped.load(Ordering::Relaxed) {
                state.turned_away.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            return match target::connect(dest, s.timeout, listening, &s.permit).await {
                Ok((_, true)) => {
                    state.looped.store(true, Ordering::Relaxed);
                    state.failed.fetch_add(1, Ordering::Relaxed);
                    state.announce.error(&format!(
                        "the target {dest} leads back to this forward's own address; every client is closed from now on"
                    ));
                    None
                }
                Ok((stream, false)) => Some((client, stream, dest.to_string())),
                Err(e) => {
                    state.failed.fetch_add(1, Ordering::Relaxed);
                    state.tell_failure(&e.to_string());
                    // Dropping the client closes it: it sees the end at once.
                    None
                }
            };
        }
        Route::Socks(rules) => rules,
    };
    let Side::Plain(Accepted::Tcp(mut client)) = client else {
        return None;
    };
    let asked = match tokio::time::timeout(s.timeout, socks::request(&mut client, rules)).await {
        Ok(Ok(socks::Request::Connect(asked))) => asked,
        Ok(Ok(socks::Request::Udp(from))) => {
            udp_association(state, &mut client, &from, rules).await;
            return None;
        }
        Ok(Err(why)) => {
            state.turned_away.fetch_add(1, Ordering::Relaxed);
            state.tell_failure(&why);
            return None;
        }
        Err(_) => return None,
    };
    let reached = async {
        let target = socks::target_of(&asked)?;
        crate::net::addr::destination(&target)?;
        let addrs = crate::net::addr::lookup(&target).await?;
        let addrs = s.permit.granted_addrs(&target.host, &addrs)?;
        let Some(addr) = addrs.into_iter().find(|a| rules.may_reach(*a)) else {
            return Err(Error::Permission(format!(
                "{asked} is not among the destinations allowed"
            )));
        };
        let dest = Dest::Net(crate::net::addr::Target {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
        match target::connect(&dest, s.timeout, listening, &s.permit).await? {
            (_, true) => Err(Error::Permission(format!(
                "{asked} is this SOCKS server itself"
            ))),
            (stream, false) => Ok(stream),
        }
    }
    .await;
    match reached {
        Ok(stream) => {
            let bound = match &stream {
                Accepted::Tcp(s) => s.local_addr().ok(),
                Accepted::Unix(_) => None,
            };
            socks::reply(&mut client, socks5::SUCCEEDED, bound).await;
            Some((
                Side::Plain(Accepted::Tcp(client)),
                stream,
                asked.to_string(),
            ))
        }
        Err(e) => {
            socks::reply(&mut client, socks::code_for(&e), None).await;
            state.failed.fetch_add(1, Ordering::Relaxed);
            state.tell_failure(&format!("{asked}: {e}"));
            None
        }
    }
}

/// A SOCKS client's UDP association, until its TCP connection ends;
/// counted and announced as a relayed connection is.
async fn udp_association(
    state: &Arc<State>,
    client: &mut tokio::net::TcpStream,
    from: &socks5::Address,
    rules: &socks::Rules,
) {
    let peer = client
        .peer_addr()
        .map_or_else(|_| "(unknown)".into(), |p| p.to_string());
    state
        .announce
        .event(&format!("{peer} UDP association opened"));
    let ends = Ends::default();
    let outcome = super::socks_udp::associate(
        client,
        from,
        rules,
        &ends,
        state.life.token(),
        &state.settings.permit,
    )
    .await;
    let (a_to_b, b_to_a) = ends.totals();
    state.a_to_b.fetch_add(a_to_b, Ordering::Relaxed);
    state.b_to_a.fetch_add(b_to_a, Ordering::Relaxed);
    match outcome {
        Ok(()) => state.announce.event(&format!(
            "{peer} UDP association closed: {a_to_b} bytes sent, {b_to_a} received"
        )),
        Err(why) => {
            state.failed.fetch_add(1, Ordering::Relaxed);
            state.tell_failure(&format!("{peer}: {why}"));
        }
    }
}

/// One end of a relay: a plain socket, or a connection with TLS.
enum Side {
    Plain(Accepted),
    Conn(Conn),
}

async fn tls_conn(
    stream: std::io::Result<Stream>,
    session: Result<crate::net::tls::Session>,
    timeout: Duration,
) -> Result<Conn> {
    let stream = stream.map_err(|e| Error::io("taking over the socket", None, e))?;
    let conn = Conn::over(stream, Some(session?))?;
    conn.handshake_on_runtime(timeout).await?;
    Ok(conn)
}

/// Relays the client and the target: splice when both are plain, else
/// through buffers.
async fn relay(state: &State, client: Side, target: Accepted, ends: &Ends) -> Result<End> {
    let s = &state.settings;
    match (client, &s.target_tls) {
        (Side::Plain(client), None) => {
            let (a, b) = (splice::Socket::from(client), splice::Socket::from(target));
            let end =
                pump::supervise(splice::join(&a, &b, ends), ends, s.idle, state.life.token()).await;
            if let End::Failed(_) = end {
                pump::reset_on_close(a.fd());
                pump::reset_on_close(b.fd());
            }
            Ok(end)
        }
        (client, target_tls) => {
            let a = match client {
                Side::Conn(conn) => conn,
                Side::Plain(stream) => Conn::over(stream.into_stream().map_err(relaying)?, None)?,
            };
            let b = match target_tls {
                Some(tls) => {
                    let host = match &state.route {
                        Route::To(Dest::Net(t)) => Some(t.host.clone()),
                        _ => None,
                    };
                    tls_conn(
                        target.into_stream(),
                        tls.session(host.as_deref()),
                        s.timeout,
                    )
                    .await?
                }
                None => Conn::over(target.into_stream().map_err(relaying)?, None)?,
            };
            super::copy::conns(&a, &b, ends, s.idle, state.life.token()).await
        }
    }
}

fn relaying(e: std::io::Error) -> Error {
    Error::io("relaying", None, e)
}

/// Calls a logging closure on a blocking thread (it is Rhai, and may
/// print or take its time), and waits for it, so `on_open` comes before
/// `on_close`. A failing closure is reported; the relay goes on.
async fn call(state: &Arc<State>, f: &runtime::closure::Callback, info: Dynamic) {
    let f = f.clone();
    let outcome = tokio::task::spawn_blocking(move || f.call1(info)).await;
    if let Ok(Err(e)) = outcome {
        state.announce.error(&format!("{e}"));
    }
}

impl State {
    /// Tells that a connection could not be relayed: the first at once,
    /// then at most one line every few seconds, with the count.
    fn tell_failure(&self, why: &str) {
        let Ok(mut last) = self.last_told.lock() else {
            return;
        };
        match &mut *last {
            Some((at, held)) if at.elapsed() < TELL_EVERY => *held += 1,
            slot => {
                let held = slot.map_or(0, |(_, held)| held);
                let more = match held {
                    0 => String::new(),
                    n => format!(" ({n} more since the last report)"),
                };
                *slot = Some((Instant::now(), 0));
                drop(last);
                self.announce.error(&format!("cannot relay: {why}{more}"));
            }
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "forward {}", self.addr)
    }
}
