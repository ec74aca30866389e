//! Asking one DNS server one question on the wire: UDP first (resent
//! every second until the timeout, as stub resolvers do), TCP when told or
//! when the UDP answer comes back truncated (TC), as dig does.
//!
//! Only an answer whose ID and question match ours is taken; anything else
//! arriving on the UDP socket is ignored (an off-path datagram must not be
//! taken for the answer). All of this runs inside `runtime::block_on`, so
//! Ctrl-C ends it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::question::Settings;
use crate::error::{Error, Result};
use crate::runtime;

/// How often an unanswered UDP question is sent again.
const RESEND: Duration = Duration::from_secs(1);
/// The EDNS buffer size dig and the DNS flag day 2020 advise.
const EDNS_PAYLOAD: u16 = 1232;

/// An answer, how it came, and how long it took.
pub struct Answer {
    pub message: Message,
    pub tcp: bool,
    pub elapsed: Duration,
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
        if settings.tcp {
            return Ok((over_tcp(server, id, query, &bytes).await?, true));
        }
        let message = match udp {
            Some(socket) => over_udp(socket, server, id, query, &bytes).await?,
            None => {
                let socket = udp_socket(server).await?;
                over_udp(&socket, server, id, query, &bytes).await?
            }
        };
        if message.metadata.truncation {
            return Ok((over_tcp(server, id, query, &bytes).await?, true));
        }
        Ok((message, false))
    };
    let (message, tcp) = match settings.timeout {
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
        tcp,
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
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| Error::io(format!("connecting to {server}"), Some(server), e))?;
    let _ = stream.set_nodelay(true);
    let len = u16::try_from(bytes.len())
        .map_err(|_| Error::invalid("the question is too long for DNS over TCP"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    let io = |e| Error::io(format!("asking {server} over TCP"), Some(server), e);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Protocol(format!(
                "{server} closed the TCP connection without an answer"
            ))
        } else {
            io(e)
        }
    })?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.map_err(io)?;
    matching(&body, server, id, query)?.ok_or_else(|| {
        Error::Protocol(format!(
            "{server} answered over TCP with another question's answer"
        ))
    })
}

/// The answer in `datagram` if it is ours: `None` for someone else's
/// (another ID or question), an error for one with our ID that is not DNS.
fn matching(
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
