//! `forward`'s options map, read and checked in full before anything binds
//! or connects: the point after which "nothing sent yet" stops holding is
//! the bind in `forward::start`.

use std::{sync::Arc, time::Duration};

use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};

use crate::error::{Error, Result};
use crate::net::options::Options;
use crate::net::tls::{ClientTls, ServerTls};
use crate::net::transfer::cidr::Cidr;
use crate::runtime::closure::Callback;

/// How long a forward waits for its target unless told (`timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a UDP session lives without a datagram (`idle`, with `udp`).
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);

pub const FORWARD_OPTIONS: &[&str] = &[
    "tls",
    "target_tls",
    "max_connections",
    "allow",
    "timeout",
    "idle",
    "quiet",
    "on_open",
    "on_close",
    "udp",
];

pub const SOCKS_OPTIONS: &[&str] = &[
    "users",
    "allow",
    "destinations",
    "max_connections",
    "timeout",
    "idle",
    "quiet",
    "on_open",
    "on_close",
];

/// What `forward`'s options say.
#[derive(Clone, Default)]
pub struct Settings {
    /// Terminate TLS on the listening side with this certificate.
    pub tls: Option<Arc<ServerTls>>,
    /// Originate TLS to the target.
    pub target_tls: Option<Arc<ClientTls>>,
    pub max_connections: Option<usize>,
    /// Clients allowed (empty: everyone).
    pub allow: Vec<Cidr>,
    /// Connecting to the target.
    pub timeout: Duration,
    /// Close a connection (or end a UDP session) quiet for this long.
    pub idle: Option<Duration>,
    pub quiet: bool,
    pub on_open: Option<Callback>,
    pub on_close: Option<Callback>,
    pub udp: bool,
    /// The grant of the script (or plugin) that started it: targets are
    /// resolved on the runtime, where no script's context is.
    pub permit: crate::permit::Context,
}

impl Settings {
    pub fn parse(ctx: &NativeCallContext, map: &Map, known: &[&str]) -> Result<Settings> {
        let o = Options::new(map, known)?;
        let udp = o.flag("udp", false)?;
        let callback = |key: &str| -> Result<Option<Callback>> {
            match o.value(key) {
                None => Ok(None),
                Some(v) => match v.clone().try_cast::<FnPtr>() {
                    Some(f) => Callback::new(ctx, f, key, &["info"]).map(Some),
                    None => Err(o.wrong(key, "a closure like |info| …", v)),
                },
            }
        };
        let settings = Settings {
            tls: match o.value("tls") {
                Some(v) => ServerTls::from_option(v)?,
                None => None,
            },
            target_tls: match o.value("target_tls") {
                Some(v) => ClientTls::from_option(v)?.map(Arc::new),
                None => None,
            },
            max_connections: o.positive("max_connections")?,
            allow: allow_list(&o)?,
            timeout: match o.timeout("timeout")? {
                None => DEFAULT_CONNECT_TIMEOUT,
                // 0: no limit of ours; the kernel gives up after its SYN retries.
                Some(None) => Duration::from_secs(24 * 3600),
                Some(Some(t)) => t,
            },
            idle: match o.millis("idle", "means never")? {
                None if udp => Some(DEFAULT_UDP_IDLE),
                None => None,
                Some(idle) => idle,
            },
            quiet: o.flag("quiet", false)?,
            on_open: callback("on_open")?,
            on_close: callback("on_close")?,
            udp,
            permit: crate::permit::Context::current(),
        };
        if udp && (settings.tls.is_some() || settings.target_tls.is_some()) {
            return Err(Error::invalid(
                "a UDP forward relays datagrams; tls and target_tls are for TCP (DTLS is not supported)",
            ));
        }
        Ok(settings)
    }
}

/// `allow`: one address block or an array of them, as `serve_files` takes.
pub fn allow_list(o: &Options) -> Result<Vec<Cidr>> {
    Ok(match o.value("allow") {
        None => Vec::new(),
        Some(v) if v.is_string() => vec![Cidr::parse(&v.to_string())?],
        Some(v) => match v.clone().try_cast::<Array>() {
            Some(list) => list
                .iter()
                .map(|item| match item.is_string() {
                    true => Cidr::parse(&item.to_string()),
                    false => Err(o.wrong("allow", "an array of address blocks", item)),
                })
                .collect::<Result<_>>()?,
            None => {
                return Err(o.wrong(
                    "allow",
                    "an address block like \"10.0.0.0/8\" or an array of them",
                    v,
                ));
            }
        },
    })
}

/// Is `ip` allowed by `allow` (an empty list allows everyone)?
pub fn allowed(allow: &[Cidr], ip: std::net::IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|c| c.contains(ip))
}

/// The map `on_open` / `on_close` get.
pub fn info(peer: &str, target: &str, totals: Option<(u64, u64, f64)>) -> Dynamic {
    let mut m = Map::new();
    m.insert("peer".into(), peer.into());
    m.insert("target".into(), target.into());
    if let Some((a_to_b, b_to_a, seconds)) = totals {
        m.insert("a_to_b".into(), Dynamic::from_int(a_to_b as i64));
        m.insert("b_to_a".into(), Dynamic::from_int(b_to_a as i64));
        m.insert("seconds".into(), Dynamic::from_float(seconds));
    }
    Dynamic::from_map(m)
}
