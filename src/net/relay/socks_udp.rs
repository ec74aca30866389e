//! `socks_serve`'s UDP ASSOCIATE (RFC 1928 §7): a UDP socket on the
//! address the client reached, whose datagrams carry a SOCKS header naming
//! their destination. The association lasts as long as the client's TCP
//! connection; only the client's own address may send through it, and
//! only hosts it sent to may answer (what a NAT would let back in).

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

use super::pump::Ends;
use super::socks::{self, Rules};
use crate::net::proxy::socks5::{self, Address};
use crate::runtime::CancellationToken;

/// The largest datagram taken (a UDP payload cannot be larger).
const DATAGRAM: usize = 65_536;

/// Answers the request and relays datagrams until the client's TCP
/// connection ends or `token` is cancelled. `asked` is the address the
/// client said it would send from (zeros: not known yet).
pub async fn associate(
    client: &mut TcpStream,
    asked: &Address,
    rules: &Rules,
    ends: &Ends,
    token: &CancellationToken,
    permit: &crate::permit::Context,
) -> Result<(), String> {
    let (Ok(local), Ok(peer)) = (client.local_addr(), client.peer_addr()) else {
        return Err("the client's connection is gone".into());
    };
    let client_ip = peer.ip().to_canonical();
    // A port the client named holds; an address of zeros means "any of
    // the client's".
    let fixed_port = match asked {
        Address::Ip(a) if a.port() != 0 => Some(a.port()),
        _ => None,
    };
    let udp = match UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await {
        Ok(udp) => udp,
        Err(e) => {
            socks::reply(client, socks5::GENERAL_FAILURE, None).await;
            return Err(format!("cannot open a UDP socket: {e}"));
        }
    };
    let bound = udp.local_addr().ok();
    socks::reply(client, socks5::SUCCEEDED, bound).await;
    let mut from_client: Option<SocketAddr> = None;
    let mut reached: HashSet<SocketAddr> = HashSet::new();
    let mut buf = vec![0u8; DATAGRAM];
    let mut control = [0u8; 512];
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            // Anything but bytes (an end or an error) ends the association.
            r = client.read(&mut control) => match r {
                Ok(n) if n > 0 => {}
                _ => return Ok(()),
            },
            r = udp.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                let src = SocketAddr::new(src.ip().to_canonical(), src.port());
                let is_client = src.ip() == client_ip
                    && fixed_port.is_none_or(|p| p == src.port())
                    && from_client.is_none_or(|c| c == src);
                if is_client {
                    from_client = Some(src);
                    if let Some(sent) = outgoing(&udp, &buf[..n], rules, permit).await {
                        reached.insert(sent.0);
                        ends.moved(&ends.a_to_b, sent.1);
                    }
                } else if let Some(to) = from_client
                    && reached.contains(&src)
                {
                    let mut out = vec![0, 0, 0];
                    out.extend_from_slice(&socks5::encode(&Address::Ip(src)));
                    out.extend_from_slice(&buf[..n]);
                    if udp.send_to(&out, to).await.is_ok() {
                        ends.moved(&ends.b_to_a, n);
                    }
                }
            }
        }
    }
}

/// Unwraps a client's datagram and sends its payload on, within the
/// rules; where it went and how many bytes, or `None` when it was dropped
/// (a fragment, a malformed header, a name that does not resolve, a
/// destination not allowed), as RFC 1928 asks: silently.
/// Only addresses the grant of whoever started the server allows are sent
/// to (`--allow-net`), as for its TCP clients.
async fn outgoing(
    udp: &UdpSocket,
    datagram: &[u8],
    rules: &Rules,
    permit: &crate::permit::Context,
) -> Option<(SocketAddr, usize)> {
    // RSV RSV FRAG; fragments are not reassembled.
    if datagram.len() < 4 || datagram[2] != 0 {
        return None;
    }
    let mut rest = &datagram[3..];
    let address = socks5::read_address(&mut rest).await.ok()??;
    let target = socks::target_of(&address).ok()?;
    crate::net::addr::destination(&target).ok()?;
    let addrs = crate::net::addr::lookup(&target).await.ok()?;
    let addrs = permit.granted_addrs(&target.host, &addrs).ok()?;
    let here_v4 = matches!(udp.local_addr().ok()?.ip(), IpAddr::V4(_));
    let to = addrs
        .into_iter()
        .filter(|a| !here_v4 || a.is_ipv4())
        .find(|a| rules.may_reach(*a))?;
    udp.send_to(rest, to).await.ok()?;
    Some((to, rest.len()))
}
