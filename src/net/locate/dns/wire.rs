//! Asking one DNS server one question on the wire: UDP first (resent
//! every second until the timeout, as stub resolvers do), TCP when told or
//! when the UDP answer comes back truncated (TC), as dig does, and TCP's
//! framing inside TLS for DNS over TLS (RFC 7858) when `tls` is given.
//!
//! Only an answer whose ID and question match ours is taken; anything else
//! arriving on the UDP socket is ignored (an off-path datagram must not be
//! taken for the answer). All of this runs inside `runtime::block_on`, so
//! Ctrl-C ends it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::question::Settings;
use crate::error::{Error, Result};
use crate::net::tls::ClientTls;
use crate::runtime;

/// How often an unanswered UDP question is sent again.
const RESEND: Duration = Duration::from_secs(1);
/// The EDNS buffer size dig and the DNS flag day 2020 advise.
const EDNS_PAYLOAD: u16 = 1232;

/// An answer, how it came, and how long it took.
pub struct Answer {
    pub message: Message,
    pub transport: Transport,
    pub elapsed: Duration,
}

/// What carried an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Https,
}

impl Transport {
    /// As `transport` shows it: `"udp"`, `"tcp"`, `"tls"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Https => "https",
        }
    }
}

/// The query message for `query` under `settings`.
pub fn request(query: &Query, settings: &Settings) -> Result<(u16, Vec<u8>)> {
    let mut message = Message::query();
    message.add_query(query.clone());
    message.metadata.recursion_desired = settings.recurse;
    // dig sets AD in its questions by default, asking a validating
    // resolver to say whether it validated.
    message.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(settings.dnssec);
    message.set_edns(edns);
    let bytes = message
        .to_vec()
        .map_err(|e| Error::invalid(format!("cannot encode the question: {e}")))?;
    Ok((message.metadata.id, bytes))
}

/// Asks `settings.server` `query`, within the timeout.
pub async fn ask(query: &Query, settings: &Settings) -> Result<Answer> {
    ask_on(None, query, settings).await
}

/// As [`ask`], on `udp` (a socket from [`udp_socket`]) when given: a
/// bulk asker reuses one socket for many questions instead of opening one
/// each time.
pub async fn ask_on(udp: Option<&UdpSocket>, query: &Query, settings: &Settings) -> Result<Answer> {
    let (id, bytes) = request(query, settings)?;
    let server = settings.server;
    let start = Instant::now();
    let exchange = async {
        if let Some(doh) = &settings.https {
            return Ok((doh.ask(server, id, query, &bytes).await?, Transport::Https));
        }
        if let Some(tls) = &settings.tls {
            return Ok((
                over_tls(server, tls, id, query, &bytes).await?,
                Transport::Tls,
            ));
        }
        if settings.tcp {
            return Ok((over_tcp(server, id, query, &bytes).await?, Transport::Tcp));
        }
        let message = match udp {
            Some(socket) => over_udp(socket, server, id, query, &bytes).await?,
            None => {
                let socket = udp_socket(server).await?;
                over_udp(&socket, server, id, query, &bytes).await?
            }
        };
        if message.metadata.truncation {
            return Ok((over_tcp(server, id, query, &bytes).await?, Transport::Tcp));
        }
        Ok((message, Transport::Udp))
    };
    let (message, transport) = match settings.timeout {
        Some(after) => {
            runtime::within(
                after,
                || format!("waiting for an answer from {server}"),
                exchange,
            )
            .await?
        }
        None => exchange.await?,
    };
    Ok(Answer {
        message,
        transport,
        elapsed: start.elapsed(),
    })
}

/// A UDP socket connected to `server` (so ICMP port unreachable comes
/// back as ECONNREFUSED, and only the server's datagrams arrive).
pub async fn udp_socket(server: SocketAddr) -> Result<UdpSocket> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| Error::io("opening a UDP socket", None, e))?;
    socket
        .connect(server)
        .await
        .map_err(|e| Error::io(format!("sending to {server}"), Some(server), e))?;
    Ok(socket)
}

async fn over_udp(
    socket: &UdpSocket,
    server: SocketAddr,
    id: u16,
    query: &Query,
    bytes: &[u8],
) -> Result<Message> {
    // Room for the largest datagram, not zeroed: `recv_buf` fills only
    // what arrives (zeroing 64 KiB per question was a tenth of dns_many's
    // time).
    let mut buf: Vec<u8> = Vec::with_capacity(65535);
    loop {
        socket.send(bytes).await.map_err(|e| udp_error(server, e))?;
        let resend = tokio::time::sleep(RESEND);
        tokio::pin!(resend);
        loop {
            tokio::select! {
                _ = &mut resend => break,
                got = socket.recv_buf(&mut buf) => {
                    let n = got.map_err(|e| udp_error(server, e))?;
                    if let Some(message) = matching(&buf[..n], server, id, query)? {
                        return Ok(message);
                    }
                    // Empty again, so the next datagram has all the room.
                    buf.clear();
                }
            }
        }
    }
}

/// ICMP port unreachable comes back as ECONNREFUSED on a connected socket.
fn udp_error(server: SocketAddr, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        Error::Refused(server)
    } else {
        Error::io(format!("asking {server}"), Some(server), e)
    }
}

async fn over_tcp(server: SocketAddr, id: u16, query: &Query, bytes: &[u8]) -> Result<Message> {
    let stream = tcp_connect(server).await?;
    framed_exchange(stream, server, "TCP", id, query, bytes).await
}

/// DNS over TLS: a TLS session on a TCP connection, checked as `tls`
/// says (the server's IP address is the name checked unless `sni` names
/// another), then TCP's framing inside it.
async fn over_tls(
    server: SocketAddr,
    tls: &ClientTls,
    id: u16,
    query: &Query,
    bytes: &[u8],
) -> Result<Message> {
    let (config, name) = tls.for_async(&server.ip().to_string())?;
    let stream = tcp_connect(server).await?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| tls_error(server, e))?;
    framed_exchange(stream, server, "TLS", id, query, bytes).await
}

async fn tcp_connect(server: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| Error::io(format!("connecting to {server}"), Some(server), e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A failed TLS handshake in words: rustls's reason when it gave one.
fn tls_error(server: SocketAddr, e: std::io::Error) -> Error {
    let reason = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(crate::net::tls::words);
    match reason {
        Some(reason) => Error::Protocol(format!("TLS with {server}: {reason}")),
        None => Error::io(format!("TLS with {server}"), Some(server), e),
    }
}

/// One question and its answer over a stream, each framed by its length
/// (RFC 1035 4.2.2), as TCP and TLS carry DNS.
async fn framed_exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    server: SocketAddr,
    over: &str,
    id: u16,
    query: &Query,
    bytes: &[u8],
) -> Result<Message> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| Error::invalid(format!("the question is too long for DNS over {over}")))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    let io = |e| Error::io(format!("asking {server} over {over}"), Some(server), e);
    stream.write_all(&framed).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Protocol(format!(
                "{server} closed the {over} connection without an answer"
            ))
        } else {
            io(e)
        }
    })?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.map_err(io)?;
    matching(&body, server, id, query)?.ok_or_else(|| {
        Error::Protocol(format!(
            "{server} answered over {over} with another question's answer"
        ))
    })
}

/// The answer in `datagram` if it is ours: `None` for someone else's
/// (another ID or question), an error for one with our ID that is not DNS.
pub fn matching(
    datagram: &[u8],
    server: SocketAddr,
    id: u16,
    query: &Query,
) -> Result<Option<Message>> {
    if datagram.len() < 2 || u16::from_be_bytes([datagram[0], datagram[1]]) != id {
        return Ok(None);
    }
    let message = Message::from_vec(datagram).map_err(|e| {
        Error::Protocol(format!(
            "{server} sent a malformed answer ({} bytes): {}",
            datagram.len(),
            crate::error::printable(&e.to_string())
        ))
    })?;
    let same_question = message.queries.len() == 1
        && message.queries[0].name() == query.name()
        && message.queries[0].query_type() == query.query_type();
    if message.metadata.message_type != hickory_proto::op::MessageType::Response {
        return Ok(None);
    }
    // A FORMERR may come without the question; take it, it is our ID.
    if same_question || message.queries.is_empty() {
        Ok(Some(message))
    } else {
        Ok(None)
    }
}
