//! Sending a request and following its redirects: done here, hop by hop,
//! rather than by reqwest.
//!
//! reqwest's redirect policy only ever sees a `Location` after the url
//! crate has rewritten it (`127.1` is 127.0.0.1 by then), so it cannot hold
//! a redirect to the strict check a typed URL meets. Following here, each
//! `Location` is read from its own text by [`strict::next_hop`], and each
//! hop's proxy is checked too. It also decides what a hop carries, as curl
//! does: no `Referer`, the `Authorization` (and cookies) only while the
//! scheme, host and port stay the same, no body after a 301/302/303 (which
//! become GET). Every hop goes through the one shared client, so its
//! connections are reused.

use std::time::{Duration, Instant};

use reqwest::{
    Client, Method, StatusCode, Url,
    header::{self, HeaderMap, HeaderValue},
};

use super::client::explain;
use super::proxy::{Proxies, Proxy};
use super::request::Request;
use super::strict::{self, shown};
use crate::error::{Error, Result};

/// Where a response came from: the URL asked for, the one that answered
/// (after redirects) and the proxy it went through.
#[derive(Debug, Clone)]
pub struct Hop {
    pub origin: Url,
    pub url: Url,
    pub proxy: Option<Proxy>,
}

impl Hop {
    /// How a failure names where it happened: the URL asked for, and where
    /// redirects had led when it failed.
    pub fn label(&self) -> String {
        if self.url == self.origin {
            shown(&self.origin)
        } else {
            format!("{} → {}", shown(&self.origin), shown(&self.url))
        }
    }

    /// An error of this hop, named.
    pub fn fail(&self, source: Error) -> Error {
        Error::Fetch {
            url: self.label(),
            source: Box::new(source),
        }
    }
}

/// How much of a redirect's own body is read (so its connection can be
/// reused) before it is dropped instead.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Sends `request` (with `extra` headers on every hop, such as a Range),
/// following redirects if asked; returns the last response and its hop.
pub async fn send(
    client: &Client,
    request: &Request,
    extra: HeaderMap,
) -> Result<(reqwest::Response, Hop)> {
    let started = Instant::now();
    let limits = request.limits();
    let proxies = Proxies::from_env();
    let mut headers = request.headers.clone();
    for (name, value) in &extra {
        headers.insert(name.clone(), value.clone());
    }
    let mut url = request.url.clone();
    // Credentials in the URL become an Authorization header here (reqwest
    // would do it per request), so that the header can be kept on the same
    // site and dropped when a redirect leaves it.
    if let Some(auth) = credentials(&mut url)?
        && !headers.contains_key(header::AUTHORIZATION)
    {
        headers.insert(header::AUTHORIZATION, auth);
    }
    let origin = url.clone();
    let mut method = request.method.clone();
    let mut body = request.body.clone();
    let mut seen: Vec<Url> = Vec::new();
    loop {
        let mut hop = Hop {
            origin: origin.clone(),
            url: url.clone(),
            proxy: None,
        };
        hop.proxy = match &request.client.proxy {
            Some(text) => proxies.for_option(text, &url),
            None => proxies.for_url(&url).map_err(|e| hop.fail(e))?,
        };
        permitted(&request.permit, &url, hop.proxy.as_ref())
            .await
            .map_err(|e| hop.fail(e))?;
        let mut builder = client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(total) = request.timeout {
            let left = total.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(hop.fail(timed_out(total)));
            }
            builder = builder.timeout(left);
        }
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        // Its resolver holds what reqwest resolves again to this code's
        // grant (a plugin's, if a plugin sent it).
        let response = crate::permit::sending(request.permit.clone(), builder.send())
            .await
            .map_err(|e| explain(&e, &hop, limits))?;
        let status = response.status();
        if !request.client.follow_redirects || !is_followed(status) {
            return Ok((response, hop));
        }
        let Some(location) = response.headers().get(header::LOCATION) else {
            // A 3xx that says nowhere to go is an answer in itself.
            return Ok((response, hop));
        };
        let location = std::str::from_utf8(location.as_bytes()).map_err(|_| {
            hop.fail(Error::Protocol(
                "the server redirected to a Location that is not text".into(),
            ))
        })?;
        let next = strict::next_hop(&url, location).map_err(|e| hop.fail(e))?;
        seen.push(url.clone());
        if seen.contains(&next) {
            let mut hops: Vec<String> = seen.iter().map(shown).collect();
            hops.push(shown(&next));
            return Err(hop.fail(Error::Protocol(format!(
                "redirect loop: {}",
                hops.join(" → ")
            ))));
        }
        if seen.len() > request.client.max_redirects {
            return Err(hop.fail(Error::Protocol(format!(
                "too many redirects (more than {}; raise max_redirects to follow more)",
                request.client.max_redirects
            ))));
        }
        if matches!(
            status,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER
        ) {
            body = None;
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::TRANSFER_ENCODING,
            ] {
                headers.remove(name);
            }
            if method != Method::GET && method != Method::HEAD {
                method = Method::GET;
            }
        }
        if !same_site(&url, &next) {
            for name in [
                header::AUTHORIZATION,
                header::COOKIE,
                header::PROXY_AUTHORIZATION,
                header::WWW_AUTHENTICATE,
            ] {
                headers.remove(name);
            }
        }
        drain(response).await;
        url = next;
    }
}

/// Holds one hop to the permissions before anything is sent: the proxy it
/// goes through, and its host (by spelling when a proxy resolves it, else
/// by the addresses it resolves to). A redirect out of the grant stops here.
async fn permitted(
    permit: &crate::permit::Context,
    url: &Url,
    proxy: Option<&Proxy>,
) -> Result<()> {
    if !crate::permit::enforced() || url.scheme() == "file" {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(0);
    if let Some(proxy) = proxy {
        let target = crate::net::addr::parse_target(&proxy.authority)?;
        reach(permit, &target).await?;
        return permit.net(host, port, true);
    }
    let target = crate::net::addr::Target {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    };
    reach(permit, &target).await
}

/// A target's spelling, then the addresses it resolves to, checked.
async fn reach(permit: &crate::permit::Context, target: &crate::net::addr::Target) -> Result<()> {
    permit.net(&target.host, target.port, false)?;
    if target.host.parse::<std::net::IpAddr>().is_ok() {
        // An address is decided whole by its spelling.
        return Ok(());
    }
    let addrs = crate::net::addr::lookup(target).await?;
    // Some must be granted; reqwest resolves again, and its resolver
    // (client.rs) keeps only the granted ones.
    permit.granted_addrs(&target.host, &addrs).map(drop)
}

/// The statuses whose `Location` is followed (304 is not a redirect).
fn is_followed(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Same scheme, host and port: credentials may go along.
fn same_site(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Takes `user:password@` out of `url`, as a Basic Authorization header.
fn credentials(url: &mut Url) -> Result<Option<HeaderValue>> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(None);
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| Error::invalid("the user name or password in the URL is not UTF-8"))
    };
    let user = decode(url.username())?;
    let password = url.password().map(decode).transpose()?.unwrap_or_default();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let token = super::request::base64_encode(format!("{user}:{password}").as_bytes());
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| Error::invalid("the credentials in the URL cannot be sent"))?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Reads a small redirect body to its end so the connection goes back to
/// the pool; a big or slow one is dropped (and its connection with it).
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    let limit = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(limit);
    loop {
        tokio::select! {
            _ = &mut limit => return,
            chunk = response.chunk() => match chunk {
                Ok(Some(bytes)) if read + bytes.len() <= DRAIN_LIMIT => read += bytes.len(),
                _ => return,
            },
        }
    }
}

/// The total `timeout` used up between hops.
fn timed_out(total: Duration) -> Error {
    Error::Timeout {
        what: "following redirects".into(),
        after: total,
    }
}
