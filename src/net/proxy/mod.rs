//! Going through a proxy: `connect(addr, #{proxy: "socks5://…" |
//! "socks5h://…" | "http://…"})`, and the SOCKS5 formats `socks_serve`
//! shares.
//!
//! - [`url`] — the proxy URL, read strictly.
//! - [`socks5`] — SOCKS5 messages, reply words, the client's handshake.
//! - `http_connect` — HTTP `CONNECT`'s client side.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::net::addr::{self, Host, Target};
use crate::net::tcp::Stream;

mod http_connect;
pub mod socks5;
pub mod url;

pub use url::{Kind, ProxyUrl};

/// Opens a TCP connection to `target` through `proxy`, within `timeout`
/// for the whole exchange; the stream is then the target's.
///
/// Both the proxy and the target must be granted (`--allow-net`): a name
/// the proxy resolves (`socks5h://`, HTTP CONNECT) by its spelling, one
/// resolved here by its addresses. Nothing is sent before both are.
pub async fn connect(proxy: &ProxyUrl, target: &Target, timeout: Duration) -> Result<Stream> {
    addr::destination(target)?;
    let resolved_by_proxy = matches!(proxy.kind, Kind::Http | Kind::Socks5h)
        && matches!(addr::parse_host(&target.host), Ok(Host::Name(_)));
    if resolved_by_proxy {
        crate::permit::net_by_name(&target.host, target.port)?;
    } else {
        crate::permit::net(&target.host, target.port)?;
    }
    let shown = proxy.to_string();
    crate::runtime::within(
        timeout,
        || format!("connecting to {target} through {shown}"),
        async {
            let addrs = addr::reach(&proxy.server).await?;
            let mut last = None;
            let mut stream = None;
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => {
                        last = Some(Error::io(
                            format!("connecting to the proxy {a}"),
                            Some(a),
                            e,
                        ))
                    }
                }
            }
            let Some(mut stream) = stream else {
                return Err(last.unwrap_or_else(|| Error::Resolve {
                    host: proxy.server.host.clone(),
                    reason: "the name has no addresses".into(),
                }));
            };
            let _ = stream.set_nodelay(true);
            let credentials = proxy.credentials.as_ref();
            match proxy.kind {
                Kind::Http => {
                    http_connect::handshake(&mut stream, &shown, &target.to_string(), credentials)
                        .await?
                }
                Kind::Socks5 | Kind::Socks5h => {
                    let to = match addr::parse_host(&target.host)? {
                        Host::Ip(ip) => {
                            socks5::Address::Ip(std::net::SocketAddr::new(ip, target.port))
                        }
                        Host::Name(name) if proxy.kind == Kind::Socks5h => {
                            socks5::Address::Name(name, target.port)
                        }
                        // socks5://: the name is resolved here, the proxy gets an address.
                        Host::Name(_) => {
                            let found = addr::lookup(target).await?;
                            let granted = crate::permit::granted_addrs(&target.host, found)?;
                            let ip = granted.into_iter().next().ok_or_else(|| Error::Resolve {
                                host: target.host.clone(),
                                reason: "the name has no addresses".into(),
                            })?;
                            socks5::Address::Ip(ip)
                        }
                    };
                    socks5::handshake(&mut stream, &shown, &to, credentials).await?
                }
            }
            let stream = stream
                .into_std()
                .map_err(|e| Error::io("taking over the socket", None, e))?;
            Ok(Stream::Tcp(stream))
        },
    )
    .await
}
