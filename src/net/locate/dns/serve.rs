//! `dns_serve`: a small authoritative DNS server for a script's own names,
//! on UDP and TCP at the same port — the local server a lab, a test or
//! `scripts/locate.rhai` points `dns()` (or anything else) at, as one
//! would start dnsmasq with `--address`.
//!
//! It answers from records read in full before it binds ([`Records`]), or
//! asks a closure `|q| …` for each question; the closure runs on one
//! thread of its own, so it may block, and questions wait their turn for
//! it. A UDP answer larger than the asker can take comes back truncated
//! (TC), so the asker retries over TCP, as DNS does.

use std::net::SocketAddr;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use rhai::{Dynamic, Map};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{oneshot, watch};

use super::record;
use super::zone::Records;
use crate::error::{Error, Result, describe};
use crate::net::serve::Announcer;
use crate::runtime::{
    self, CancellationToken,
    closure::Callback,
    jobs::{self, Job},
};

/// The most a UDP answer may be when the question says nothing (RFC 1035).
const CLASSIC_UDP: usize = 512;
/// How long a TCP connection may sit between questions.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; more wait in the backlog.
const MAX_TCP: usize = 256;

/// Where the answers come from.
pub enum Source {
    Records(Records),
    /// A closure asked for each question, and the TTL of what it returns.
    Closure(Callback, u32),
}

/// A running DNS server.
#[derive(Clone)]
pub struct DnsServer(Arc<State>);

struct State {
    id: u64,
    addr: SocketAddr,
    life: jobs::Lifecycle,
    announce: Arc<Announcer>,
    questions: AtomicU64,
    nxdomain: AtomicU64,
    failed: AtomicU64,
    over_tcp: AtomicU64,
    truncated: AtomicU64,
    /// Questions for the closure, answered one at a time on its thread.
    ask: Option<async_channel::Sender<(Map, oneshot::Sender<Result<Records>>)>>,
    records: Option<Records>,
}

impl DnsServer {
    /// Binds UDP and TCP on `bind` (a free port for both when it is 0)
    /// and starts answering.
    pub fn start(bind: SocketAddr, source: Source, quiet: bool) -> Result<DnsServer> {
        crate::permit::bind(bind)?;
        let handle = runtime::handle().clone();
        let (udp, tcp) = {
            let _entered = handle.enter();
            bind_both(bind)?
        };
        let addr = udp
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", None, e))?;
        let token = runtime::child_token();
        let (records, ask) = match source {
            Source::Records(records) => (Some(records), None),
            Source::Closure(callback, ttl) => {
                (None, Some(closure_thread(callback, ttl, token.clone())?))
            }
        };
        let state = Arc::new(State {
            id: jobs::next_id(),
            addr,
            life: jobs::Lifecycle::new(token),
            announce: Arc::new(Announcer::new(format!("dns_serve {}", addr.port()), quiet)),
            questions: AtomicU64::new(0),
            nxdomain: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            over_tcp: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            ask,
            records,
        });
        state
            .announce
            .event(&format!("answering DNS on {addr} (udp and tcp)"));
        let server = DnsServer(state.clone());
        handle.spawn(async move {
            tokio::select! {
                _ = state.life.token().cancelled() => {}
                _ = udp_loop(state.clone(), udp) => {}
                _ = tcp_loop(state.clone(), tcp) => {}
            }
            if let Some(ask) = &state.ask {
                ask.close();
            }
            state.life.finish();
        });
        jobs::add(Arc::new(server.clone()));
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    pub fn is_stopped(&self) -> bool {
        self.0.life.is_stopped()
    }

    /// `#{questions, nxdomain, failed, tcp, truncated}`.
    pub fn stats(&self) -> Map {
        let s = &self.0;
        let n = |v: &AtomicU64| Dynamic::from_int(v.load(Ordering::Relaxed) as i64);
        let mut m = Map::new();
        m.insert("questions".into(), n(&s.questions));
        m.insert("nxdomain".into(), n(&s.nxdomain));
        m.insert("failed".into(), n(&s.failed));
        m.insert("tcp".into(), n(&s.over_tcp));
        m.insert("truncated".into(), n(&s.truncated));
        m
    }

    pub fn stop(&self) {
        self.0.life.stop();
    }

    pub fn wait(&self) -> Result<()> {
        self.0.life.wait()
    }
}

impl Job for DnsServer {
    fn stop(&self) {
        DnsServer::stop(self);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.0.life.ended()
    }

    fn handle(&self) -> Dynamic {
        Dynamic::from(self.clone())
    }
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_stopped() {
            "stopped"
        } else {
            "running"
        };
        let asked = self.0.questions.load(Ordering::Relaxed);
        let plural = if asked == 1 { "" } else { "s" };
        write!(
            f,
            "DnsServer #{} (udp+tcp {}, {state}, {asked} question{plural})",
            self.0.id, self.0.addr,
        )
    }
}

/// A UDP socket and a TCP listener on the same address; with port 0, a
/// port free for both (a few tries: the UDP port's TCP twin may be taken).
fn bind_both(bind: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let in_use = |what: &str, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::InUse(format!("{what} port {} is already in use", bind.port()))
        } else {
            Error::io(format!("binding {bind}"), None, e)
        }
    };
    let tries = if bind.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = std::net::UdpSocket::bind(bind).map_err(|e| in_use("UDP", e))?;
        let addr = udp
            .local_addr()
            .map_err(|e| Error::io("binding", None, e))?;
        match std::net::TcpListener::bind(addr) {
            Ok(tcp) => {
                let setup = |e| Error::io("binding", None, e);
                udp.set_nonblocking(true).map_err(setup)?;
                tcp.set_nonblocking(true).map_err(setup)?;
                return Ok((
                    UdpSocket::from_std(udp).map_err(setup)?,
                    TcpListener::from_std(tcp).map_err(setup)?,
                ));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(in_use(
        "TCP",
        last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    ))
}

/// Starts the thread that runs the closure, one question at a time.
fn closure_thread(
    callback: Callback,
    ttl: u32,
    token: CancellationToken,
) -> Result<async_channel::Sender<(Map, oneshot::Sender<Result<Records>>)>> {
    let (send, receive) = async_channel::bounded::<(Map, oneshot::Sender<Result<Records>>)>(64);
    runtime::spawn_rhai_thread("netsh-dns-serve", token, move || {
        while let Ok((question, reply)) = receive.recv_blocking() {
            let name = question
                .get("name")
                .map(|n| n.to_string())
                .unwrap_or_default();
            let answer = callback
                .call1(Dynamic::from(question))
                .map_err(|e| Error::invalid(describe(&e, callback.source())))
                .and_then(|value| {
                    let mut records = Records::default();
                    if !value.is_unit() {
                        records.add(&name, &value, ttl)?;
                    }
                    Ok(records)
                });
            let _ = reply.send(answer);
        }
    })?;
    Ok(send)
}

async fn udp_loop(state: Arc<State>, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = buf[..n].to_vec();
        let (state, socket) = (state.clone(), socket.clone());
        // A closure's answer may take a while: the next datagram need not wait.
        tokio::spawn(async move {
            if let Some(reply) = respond(&state, &datagram, peer, false).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

async fn tcp_loop(state: Arc<State>, listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = serve_tcp(&state, stream, peer).await;
            drop(permit);
        });
    }
}

/// Questions on one TCP connection, each framed by its length, until the
/// asker closes it or is idle too long.
async fn serve_tcp(
    state: &Arc<State>,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut message))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        state.over_tcp.fetch_add(1, Ordering::Relaxed);
        let Some(reply) = respond(state, &message, peer, true).await else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}

/// The answer to one message, encoded; `None` for something that is not a
/// question at all (no answer is better than feeding a loop).
async fn respond(state: &Arc<State>, bytes: &[u8], peer: SocketAddr, tcp: bool) -> Option<Vec<u8>> {
    let question = match Message::from_vec(bytes) {
        Ok(q) if q.metadata.message_type == MessageType::Query => q,
        Ok(_) => return None,
        Err(_) => return format_error(bytes),
    };
    state.questions.fetch_add(1, Ordering::Relaxed);
    let mut reply = Message::response(question.metadata.id, question.metadata.op_code);
    reply.metadata.recursion_desired = question.metadata.recursion_desired;
    reply.metadata.authoritative = true;
    reply.add_queries(question.queries.iter().cloned());
    let asker_room = question.edns.as_ref().map(Edns::max_payload);
    if question.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        reply.set_edns(edns);
    }
    let [query] = question.queries.as_slice() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    if question.metadata.op_code != OpCode::Query {
        reply.metadata.response_code = ResponseCode::NotImp;
        return reply.to_vec().ok();
    }
    let (code, answers) = match answer(state, query, peer, tcp).await {
        Ok(found) => found,
        Err(e) => {
            state.failed.fetch_add(1, Ordering::Relaxed);
            state.announce.error(&format!(
                "{peer}: {} {}: {e}",
                query.name(),
                record::type_name(query.query_type())
            ));
            (ResponseCode::ServFail, Vec::new())
        }
    };
    if code == ResponseCode::NXDomain {
        state.nxdomain.fetch_add(1, Ordering::Relaxed);
    }
    reply.metadata.response_code = code;
    reply.add_answers(answers);
    let encoded = reply.to_vec().ok()?;
    let room = usize::from(asker_room.unwrap_or(0)).max(CLASSIC_UDP);
    if tcp || encoded.len() <= room {
        return Some(encoded);
    }
    // Too big for the asker's datagram: the question alone, with TC set,
    // so it asks again over TCP.
    state.truncated.fetch_add(1, Ordering::Relaxed);
    reply.answers.clear();
    reply.metadata.truncation = true;
    reply.to_vec().ok()
}

/// The records for one question, from the records or the closure.
async fn answer(
    state: &Arc<State>,
    query: &hickory_proto::op::Query,
    peer: SocketAddr,
    tcp: bool,
) -> Result<(ResponseCode, Vec<Record>)> {
    if let Some(records) = &state.records {
        return Ok(records.answer(query.name(), query.query_type()));
    }
    let Some(ask) = &state.ask else {
        return Err(Error::invalid("no records and no closure"));
    };
    let mut q = Map::new();
    let name = query.name().to_string();
    q.insert("name".into(), name.trim_end_matches('.').to_string().into());
    q.insert("type".into(), record::type_name(query.query_type()).into());
    q.insert("peer".into(), peer.to_string().into());
    q.insert("tcp".into(), tcp.into());
    let (reply, answered) = oneshot::channel();
    ask.send((q, reply)).await.map_err(|_| Error::Interrupted)?;
    let records = answered.await.map_err(|_| Error::Interrupted)??;
    Ok(records.answer(query.name(), query.query_type()))
}

/// FORMERR for a message whose header reads but whose rest does not; no
/// answer when even the header is not there.
fn format_error(bytes: &[u8]) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    let is_query = bytes.get(2).is_some_and(|flags| flags & 0x80 == 0);
    if bytes.len() < 12 || !is_query {
        return None;
    }
    let mut reply = Message::response(id, OpCode::Query);
    reply.metadata.response_code = ResponseCode::FormErr;
    reply.to_vec().ok()
}
