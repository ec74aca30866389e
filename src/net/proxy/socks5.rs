//! SOCKS5 (RFC 1928) with username/password (RFC 1929), both sides: the
//! client's handshake for `connect(…, #{proxy: "socks5://…"})`, and the
//! message formats and reply words `socks_serve` shares. Written here
//! rather than taken from a crate: the exchange is a few fixed messages,
//! and netsh needs its own words for every reply code and its own strict
//! address rules on the names a client sends.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

pub const VERSION: u8 = 5;
pub const NO_AUTH: u8 = 0;
pub const USER_PASS: u8 = 2;
pub const NO_METHOD: u8 = 0xff;
pub const CONNECT: u8 = 1;
pub const ATYP_V4: u8 = 1;
pub const ATYP_NAME: u8 = 3;
pub const ATYP_V6: u8 = 4;

/// Reply codes (RFC 1928 §6).
pub const SUCCEEDED: u8 = 0;
pub const GENERAL_FAILURE: u8 = 1;
pub const NOT_ALLOWED: u8 = 2;
pub const NETWORK_UNREACHABLE: u8 = 3;
pub const HOST_UNREACHABLE: u8 = 4;
pub const REFUSED: u8 = 5;
pub const TTL_EXPIRED: u8 = 6;
pub const COMMAND_NOT_SUPPORTED: u8 = 7;
pub const ADDRESS_NOT_SUPPORTED: u8 = 8;

/// A reply code in words.
pub fn reply_words(code: u8) -> &'static str {
    match code {
        GENERAL_FAILURE => "general SOCKS server failure",
        NOT_ALLOWED => "not allowed by ruleset",
        NETWORK_UNREACHABLE => "network unreachable",
        HOST_UNREACHABLE => "host unreachable",
        REFUSED => "connection refused by the destination",
        TTL_EXPIRED => "TTL expired",
        COMMAND_NOT_SUPPORTED => "command not supported",
        ADDRESS_NOT_SUPPORTED => "address type not supported",
        _ => "an unknown reply code",
    }
}

/// Where a SOCKS request asks to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Ip(SocketAddr),
    Name(String, u16),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Ip(a) => write!(f, "{a}"),
            Address::Name(n, p) => write!(f, "{n}:{p}"),
        }
    }
}

/// The address bytes of a request or reply (ATYP, address, port).
pub fn encode(address: &Address) -> Vec<u8> {
    let mut out = Vec::new();
    match address {
        Address::Ip(SocketAddr::V4(a)) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&a.ip().octets());
        }
        Address::Ip(SocketAddr::V6(a)) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&a.ip().octets());
        }
        Address::Name(name, _) => {
            out.push(ATYP_NAME);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
    }
    let port = match address {
        Address::Ip(a) => a.port(),
        Address::Name(_, p) => *p,
    };
    out.extend_from_slice(&port.to_be_bytes());
    out
}

/// Reads ATYP, address and port.
pub async fn read_address<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Address>> {
    let atyp = r.read_u8().await?;
    let address = match atyp {
        ATYP_V4 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).await?;
            let port = r.read_u16().await?;
            Address::Ip(SocketAddr::new(IpAddr::from(b), port))
        }
        ATYP_V6 => {
            let mut b = [0u8; 16];
            r.read_exact(&mut b).await?;
            let port = r.read_u16().await?;
            Address::Ip(SocketAddr::new(IpAddr::from(b), port))
        }
        ATYP_NAME => {
            let len = r.read_u8().await? as usize;
            let mut b = vec![0u8; len];
            r.read_exact(&mut b).await?;
            let port = r.read_u16().await?;
            match String::from_utf8(b) {
                Ok(name) => Address::Name(name, port),
                Err(_) => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(address))
}

/// The client's side: greeting, authentication if asked, CONNECT. On
/// success the stream carries the destination's bytes.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &str,
    to: &Address,
    credentials: Option<&(String, String)>,
) -> Result<()> {
    let io =
        |e: std::io::Error| Error::Protocol(format!("the SOCKS5 proxy {proxy} broke off: {e}"));
    let methods: &[u8] = match credentials {
        Some(_) => &[NO_AUTH, USER_PASS],
        None => &[NO_AUTH],
    };
    let mut hello = vec![VERSION, methods.len() as u8];
    hello.extend_from_slice(methods);
    s.write_all(&hello).await.map_err(io)?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.map_err(io)?;
    if choice[0] != VERSION {
        return Err(Error::Protocol(format!(
            "{proxy} does not speak SOCKS5 (it answered version {})",
            choice[0]
        )));
    }
    match (choice[1], credentials) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some((user, pass))) => {
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass.as_bytes());
            s.write_all(&auth).await.map_err(io)?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(Error::Permission(format!(
                    "the SOCKS5 proxy {proxy} refused: authentication failed"
                )));
            }
        }
        (USER_PASS, None) | (NO_METHOD, None) => {
            return Err(Error::Permission(format!(
                "the SOCKS5 proxy {proxy} refused: it needs a user name and password (socks5://user:pass@…)"
            )));
        }
        (NO_METHOD, Some(_)) => {
            return Err(Error::Permission(format!(
                "the SOCKS5 proxy {proxy} refused: it accepts none of our authentication methods"
            )));
        }
        (other, _) => {
            return Err(Error::Protocol(format!(
                "the SOCKS5 proxy {proxy} chose method {other}, which was not offered"
            )));
        }
    }
    let mut request = vec![VERSION, CONNECT, 0];
    request.extend_from_slice(&encode(to));
    s.write_all(&request).await.map_err(io)?;
    let mut head = [0u8; 3];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[1] != SUCCEEDED {
        let words = reply_words(head[1]);
        let message = format!("the SOCKS5 proxy {proxy} refused {to}: {words}");
        return Err(match head[1] {
            NOT_ALLOWED => Error::Permission(message),
            _ => Error::Protocol(message),
        });
    }
    // The address the proxy bound: read and let go.
    read_address(s).await.map_err(io)?.ok_or_else(|| {
        Error::Protocol(format!("the SOCKS5 proxy {proxy} sent a malformed reply"))
    })?;
    Ok(())
}
