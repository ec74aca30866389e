//! The client's side of HTTP `CONNECT` (RFC 9110 §9.3.6) for
//! `connect(…, #{proxy: "http://…"})`: one request, a status line, headers
//! read byte by byte up to the blank line so no byte of the tunnel is
//! taken with them.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// The most a proxy's answer to CONNECT may be before the tunnel starts.
const MAX_HEAD: usize = 16 * 1024;

pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &str,
    authority: &str,
    credentials: Option<&(String, String)>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Protocol(format!("the HTTP proxy {proxy} broke off: {e}"));
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).await.map_err(io)?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_HEAD {
            return Err(Error::Protocol(format!(
                "the HTTP proxy {proxy} sent more than {MAX_HEAD} bytes of headers"
            )));
        }
        match s.read_u8().await {
            Ok(b) => head.push(b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::Protocol(format!(
                    "the HTTP proxy {proxy} closed the connection without answering CONNECT"
                )));
            }
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().trim();
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        Some(code) => {
            let line = crate::error::printable(status_line);
            let message = format!("the HTTP proxy {proxy} refused CONNECT {authority}: {line}");
            Err(match code {
                401 | 403 | 407 => Error::Permission(message),
                _ => Error::Protocol(message),
            })
        }
        None => Err(Error::Protocol(format!(
            "the HTTP proxy {proxy} did not answer in HTTP: {}",
            crate::error::printable(status_line)
        ))),
    }
}
