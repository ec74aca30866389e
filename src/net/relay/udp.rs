//! `forward(listen, target, #{udp: true})`: datagrams rather than streams.
//! Each client address gets its own outgoing socket, connected to the
//! target, so the target's replies go back to the client that caused them
//! (two clients' replies never cross); a session ends after `idle` without
//! a datagram either way (default 60 s), as a NAT's mapping does.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rhai::{Dynamic, Map};
use tokio::{net::UdpSocket, sync::watch};

use super::settings::{self, Settings};
use crate::error::{Error, Result};
use crate::net::addr::{self, Target};
use crate::net::serve::Announcer;
use crate::runtime::{
    self, CancellationToken,
    jobs::{self, Job},
};

/// The largest datagram relayed (the most a UDP/IPv4 datagram can carry).
const MAX_DATAGRAM: usize = 65_507;

/// At most this many clients at once; a new one beyond is dropped.
const MAX_SESSIONS: usize = 4096;

/// A running UDP forward.
#[derive(Clone)]
pub struct UdpForward(Arc<State>);

struct State {
    id: u64,
    addr: SocketAddr,
    target: Target,
    settings: Settings,
    life: jobs::Lifecycle,
    sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
    served: AtomicU64,
    to_target: AtomicU64,
    to_clients: AtomicU64,
    announce: Arc<Announcer>,
}

/// One client's outgoing socket, and when it last moved a datagram.
struct Session {
    socket: UdpSocket,
    started: Instant,
    last_ms: AtomicU64,
    /// Bytes from the client to the target on this session.
    up: AtomicU64,
}

impl Session {
    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

impl UdpForward {
    /// Resolves the target, binds `bind`, and starts relaying.
    pub fn start(bind: SocketAddr, target: Target, settings: Settings) -> Result<UdpForward> {
        crate::permit::bind(bind)?;
        let lookup = target.clone();
        let resolved = runtime::block_on(async move { addr::lookup(&lookup).await })?;
        // The spelling was checked by `forward`; these are where it leads.
        let resolved = crate::permit::granted_addrs(&target.host, resolved)?;
        let Some(&target_addr) = resolved.first() else {
            return Err(Error::invalid(format!("{target} has no addresses")));
        };
        let handle = runtime::handle().clone();
        let socket = {
            let _entered = handle.enter();
            let std = std::net::UdpSocket::bind(bind).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    Error::InUse(format!("UDP port {} is already in use", bind.port()))
                } else {
                    Error::io(format!("binding {bind}"), None, e)
                }
            })?;
            std.set_nonblocking(true)
                .map_err(|e| Error::io("binding", None, e))?;
            UdpSocket::from_std(std).map_err(|e| Error::io("binding", None, e))?
        };
        let addr = socket
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", None, e))?;
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        if canonical(target_addr) == canonical(addr)
            || (addr.ip().is_unspecified()
                && target_addr.port() == addr.port()
                && target_addr.ip().is_loopback())
        {
            return Err(Error::invalid(format!(
                "the target {target} is this forward's own listening address: every datagram would come back to it"
            )));
        }
        let state = Arc::new(State {
            id: jobs::next_id(),
            addr,
            announce: Arc::new(Announcer::new(
                format!("forward udp {}", addr.port()),
                settings.quiet,
            )),
            target,
            settings,
            life: jobs::Lifecycle::new(CancellationToken::new()),
            sessions: Mutex::new(HashMap::new()),
            served: AtomicU64::new(0),
            to_target: AtomicU64::new(0),
            to_clients: AtomicU64::new(0),
        });
        handle.spawn(listen_loop(state.clone(), Arc::new(socket), target_addr));
        let forward = UdpForward(state);
        jobs::add(Arc::new(forward.clone()));
        Ok(forward)
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Client sessions open now.
    pub fn active(&self) -> u64 {
        self.0.sessions.lock().map_or(0, |s| s.len() as u64)
    }

    pub fn is_stopped(&self) -> bool {
        self.0.life.is_stopped()
    }

    pub fn stats(&self) -> Map {
        let s = &self.0;
        let n = |v: &AtomicU64| Dynamic::from_int(v.load(Ordering::Relaxed) as i64);
        let mut m = Map::new();
        m.insert("served".into(), n(&s.served));
        m.insert("active".into(), Dynamic::from_int(self.active() as i64));
        m.insert("a_to_b".into(), n(&s.to_target));
        m.insert("b_to_a".into(), n(&s.to_clients));
        m.insert("target".into(), s.target.to_string().into());
        m
    }

    pub fn stop(&self) {
        self.0.life.stop();
    }

    pub fn wait(&self) -> Result<()> {
        self.0.life.wait()
    }
}

impl Job for UdpForward {
    fn stop(&self) {
        UdpForward::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.life.ended()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl std::fmt::Debug for UdpForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_stopped() {
            "stopped"
        } else {
            "running"
        };
        write!(
            f,
            "UdpForward #{} (udp {} → {}, {state}, {} sessions)",
            self.0.id,
            self.0.addr,
            self.0.target,
            self.active()
        )
    }
}

/// Reads clients' datagrams and sends each through its session's socket.
async fn listen_loop(state: Arc<State>, socket: Arc<UdpSocket>, target: SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            biased;
            _ = state.life.token().cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(got) => got,
                // An ICMP error from an earlier send to a client: not fatal.
                Err(_) => continue,
            },
        };
        let client = SocketAddr::new(client.ip().to_canonical(), client.port());
        if !settings::allowed(&state.settings.allow, client.ip()) {
            continue;
        }
        let session = match session_for(&state, &socket, client, target).await {
            Some(session) => session,
            None => continue,
        };
        session.touch();
        if session.socket.send(&buf[..n]).await.is_ok() {
            state.to_target.fetch_add(n as u64, Ordering::Relaxed);
            session.up.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.clear();
    }
    state.life.finish();
}

/// The client's session, made (with its reply task) on its first datagram.
async fn session_for(
    state: &Arc<State>,
    listen: &Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
) -> Option<Arc<Session>> {
    if let Some(s) = state.sessions.lock().ok()?.get(&client) {
        return Some(s.clone());
    }
    if state.sessions.lock().ok()?.len() >= MAX_SESSIONS {
        return None;
    }
    let any = match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await.ok()?;
    socket.connect(target).await.ok()?;
    let session = Arc::new(Session {
        socket,
        started: Instant::now(),
        last_ms: AtomicU64::new(0),
        up: AtomicU64::new(0),
    });
    state.sessions.lock().ok()?.insert(client, session.clone());
    state.served.fetch_add(1, Ordering::Relaxed);
    state
        .announce
        .event(&format!("{client} → {} session opened", state.target));
    if let Some(on_open) = &state.settings.on_open {
        let info = settings::info(&client.to_string(), &state.target.to_string(), None);
        call(state, on_open, info).await;
    }
    tokio::spawn(replies(
        state.clone(),
        listen.clone(),
        client,
        session.clone(),
    ));
    Some(session)
}

/// Sends the target's replies on this session back to its client, until
/// the session is idle for too long or the forward stops.
async fn replies(
    state: Arc<State>,
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    session: Arc<Session>,
) {
    let idle = state.settings.idle;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut down = 0u64;
    loop {
        let idle_wait = async {
            match idle {
                Some(idle) => loop {
                    let quiet = session.quiet_for();
                    if quiet >= idle {
                        return;
                    }
                    tokio::time::sleep(idle - quiet).await;
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = state.life.token().cancelled() => break,
            _ = idle_wait => break,
            r = session.socket.recv(&mut buf) => match r {
                Ok(n) => {
                    session.touch();
                    if listen.send_to(&buf[..n], client).await.is_ok() {
                        state.to_clients.fetch_add(n as u64, Ordering::Relaxed);
                        down += n as u64;
                    }
                }
                // The target's port is closed (ICMP): the session goes on.
                Err(_) => continue,
            },
        }
    }
    let up = session.up.load(Ordering::Relaxed);
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.remove(&client);
    }
    state
        .announce
        .event(&format!("{client} → {} session ended", state.target));
    if let Some(on_close) = &state.settings.on_close {
        let totals = Some((up, down, session.started.elapsed().as_secs_f64()));
        let info = settings::info(&client.to_string(), &state.target.to_string(), totals);
        call(&state, on_close, info).await;
    }
}

async fn call(state: &Arc<State>, f: &runtime::closure::Callback, info: Dynamic) {
    let f = f.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || f.call1(info)).await {
        state.announce.error(&format!("{e}"));
    }
}
