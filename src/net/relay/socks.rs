//! The server's side of SOCKS5 for `socks_serve`: the greeting, the
//! username/password check (`users`), the CONNECT request, where it may
//! go (`destinations`), and the reply. What follows is the same relay as
//! `forward`'s; only the target comes from the client.

use std::{collections::HashMap, net::SocketAddr};

use rhai::{Dynamic, Map};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::net::addr::{self, Host, Target};
use crate::net::options::Options;
use crate::net::proxy::socks5::{self, Address};
use crate::net::transfer::cidr::Cidr;

/// `socks_serve`'s own rules.
#[derive(Default)]
pub struct Rules {
    /// Name → password; empty means no authentication.
    pub users: HashMap<String, String>,
    /// Where clients may connect (empty: anywhere).
    pub destinations: Vec<Cidr>,
}

impl Rules {
    pub fn parse(o: &Options) -> Result<Rules> {
        let users = match o.value("users") {
            None => HashMap::new(),
            Some(v) => {
                let Some(map) = v.clone().try_cast::<Map>() else {
                    return Err(o.wrong(
                        "users",
                        "a map of names to passwords like #{alice: \"secret\"}",
                        v,
                    ));
                };
                let mut users = HashMap::new();
                for (name, pass) in map {
                    let Ok(pass) = pass.clone().into_string() else {
                        return Err(o.wrong("users", "passwords as strings", &pass));
                    };
                    if name.is_empty() || name.len() > 255 || pass.len() > 255 {
                        return Err(Error::invalid(
                            "option 'users': a name is 1 to 255 bytes, a password at most 255 (SOCKS5 carries no more)",
                        ));
                    }
                    users.insert(name.to_string(), pass);
                }
                users
            }
        };
        let destinations = match o.value("destinations") {
            None => Vec::new(),
            Some(v) => {
                let list: Vec<Dynamic> = match v.clone().try_cast::<rhai::Array>() {
                    Some(list) => list,
                    None if v.is_string() => vec![v.clone()],
                    None => {
                        return Err(o.wrong(
                            "destinations",
                            "an address block like \"127.0.0.0/8\" or an array of them",
                            v,
                        ));
                    }
                };
                list.iter()
                    .map(|item| Cidr::parse(&item.to_string()))
                    .collect::<Result<_>>()?
            }
        };
        Ok(Rules {
            users,
            destinations,
        })
    }

    pub fn may_reach(&self, addr: SocketAddr) -> bool {
        self.destinations.is_empty()
            || self
                .destinations
                .iter()
                .any(|c| c.contains(addr.ip().to_canonical()))
    }
}

/// Why a client was not served, for the log (the client got its reply).
pub type Refusal = String;

/// UDP ASSOCIATE (RFC 1928 §7); CONNECT is `socks5::CONNECT`.
pub const UDP_ASSOCIATE: u8 = 3;

/// What a client asked for: a TCP connection, or a UDP association.
pub enum Request {
    Connect(Address),
    /// The address the client says it will send its datagrams from.
    Udp(Address),
}

/// Greeting, authentication, request. Returns what the client asks for.
pub async fn request(s: &mut TcpStream, rules: &Rules) -> std::result::Result<Request, Refusal> {
    let io = |e: std::io::Error| format!("the client broke off: {e}");
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[0] != socks5::VERSION {
        return Err(format!("not SOCKS5 (version byte {})", head[0]));
    }
    let mut methods = vec![0u8; head[1] as usize];
    s.read_exact(&mut methods).await.map_err(io)?;
    let wanted = if rules.users.is_empty() {
        socks5::NO_AUTH
    } else {
        socks5::USER_PASS
    };
    if !methods.contains(&wanted) {
        let _ = s.write_all(&[socks5::VERSION, socks5::NO_METHOD]).await;
        return Err("the client offered no acceptable authentication".into());
    }
    s.write_all(&[socks5::VERSION, wanted]).await.map_err(io)?;
    if wanted == socks5::USER_PASS {
        let version = s.read_u8().await.map_err(io)?;
        let mut user = vec![0u8; s.read_u8().await.map_err(io)? as usize];
        s.read_exact(&mut user).await.map_err(io)?;
        let mut pass = vec![0u8; s.read_u8().await.map_err(io)? as usize];
        s.read_exact(&mut pass).await.map_err(io)?;
        let user = String::from_utf8_lossy(&user).into_owned();
        let ok = version == 1
            && rules
                .users
                .get(&user)
                .is_some_and(|p| p.as_bytes() == pass.as_slice());
        s.write_all(&[1, if ok { 0 } else { 1 }])
            .await
            .map_err(io)?;
        if !ok {
            return Err(format!(
                "authentication failed for '{}'",
                crate::error::printable(&user)
            ));
        }
    }
    let mut req = [0u8; 3];
    s.read_exact(&mut req).await.map_err(io)?;
    let address = socks5::read_address(s).await.map_err(io)?;
    let Some(address) = address else {
        reply(s, socks5::ADDRESS_NOT_SUPPORTED, None).await;
        return Err("an address type SOCKS5 does not define".into());
    };
    match req[1] {
        socks5::CONNECT => Ok(Request::Connect(address)),
        UDP_ASSOCIATE => Ok(Request::Udp(address)),
        other => {
            reply(s, socks5::COMMAND_NOT_SUPPORTED, None).await;
            Err(format!(
                "command {other} (CONNECT and UDP ASSOCIATE are served)"
            ))
        }
    }
}

/// The target of a request, held to the strict address rules.
pub fn target_of(address: &Address) -> Result<Target> {
    match address {
        Address::Ip(a) => Ok(Target {
            host: a.ip().to_canonical().to_string(),
            port: a.port(),
        }),
        Address::Name(name, port) => match addr::parse_host(name)? {
            Host::Ip(ip) => Ok(Target {
                host: ip.to_string(),
                port: *port,
            }),
            Host::Name(name) => Ok(Target {
                host: name,
                port: *port,
            }),
        },
    }
}

/// The reply code for a failed connect.
pub fn code_for(e: &Error) -> u8 {
    match e {
        Error::Refused(_) => socks5::REFUSED,
        Error::Unreachable { .. } | Error::Resolve { .. } | Error::NotFound(_) => {
            socks5::HOST_UNREACHABLE
        }
        Error::Timeout { .. } => socks5::TTL_EXPIRED,
        Error::Permission(_) => socks5::NOT_ALLOWED,
        _ => socks5::GENERAL_FAILURE,
    }
}

/// Sends a reply (`bound` is the server's address toward the target).
pub async fn reply(s: &mut TcpStream, code: u8, bound: Option<SocketAddr>) {
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = vec![socks5::VERSION, code, 0];
    out.extend_from_slice(&socks5::encode(&Address::Ip(bound)));
    let _ = s.write_all(&out).await;
}
