//! The options maps of `send_file`, `recv_file` and `serve_files`, read into
//! the settings the sending and receiving sides run with, every option
//! checked before anything connects or waits.

use std::time::Duration;

use rhai::{Array, Map};

use super::server::MAX_UPLOADS_LIMIT;
use super::{Cidr, ReceiveOptions, SendOptions, protocol};
use crate::error::{Error, Result};
use crate::net::{options::Options, progress};

pub const SEND_OPTIONS: &[&str] = &[
    "raw",
    "resume",
    "progress",
    "timeout",
    "name",
    "rate_limit",
    "zero_copy",
    "hash",
    "offset",
    "length",
    "tls",
];
const RECV_OPTIONS: &[&str] = &["raw", "name", "overwrite", "max_size", "timeout"];
const SERVE_OPTIONS: &[&str] = &[
    "max_size",
    "overwrite",
    "allow",
    "header_timeout",
    "idle_timeout",
    "log",
    "max_uploads",
    "max_per_ip",
    "min_rate",
    "part_max_age",
];

/// A timeout option by the one rule (0: no limit), as the `Duration` the
/// transfer code waits with.
fn wait_option(o: &Options, key: &str) -> Result<Option<Duration>> {
    Ok(o.timeout(key)?.map(|t| t.unwrap_or(Duration::MAX)))
}

pub fn send_options(map: &Map) -> Result<(SendOptions, progress::Wanted)> {
    let o = Options::new(map, SEND_OPTIONS)?;
    let defaults = SendOptions::default();
    Ok((
        SendOptions {
            raw: o.flag("raw", false)?,
            resume: o.flag("resume", defaults.resume)?,
            timeout: wait_option(&o, "timeout")?.unwrap_or(defaults.timeout),
            name: o.text("name")?,
            rate_limit: o.count("rate_limit")?,
            zero_copy: o.flag("zero_copy", defaults.zero_copy)?,
            hash: o.flag("hash", defaults.hash)?,
            offset: o.count("offset")?.unwrap_or(0),
            length: o.count("length")?,
            tls: match o.value("tls") {
                Some(tls) => crate::net::tls::ClientTls::from_option(tls)?,
                None => None,
            },
        },
        progress::Wanted::from_option(o.value("progress"))?,
    ))
}

/// Receive options and the accept timeout (`timeout` covers both).
pub fn recv_options(map: &Map) -> Result<(ReceiveOptions, Option<Duration>)> {
    let o = Options::new(map, RECV_OPTIONS)?;
    let raw = o.flag("raw", false)?;
    let name = match o.text("name")? {
        // Checked now, not once a sender has connected.
        Some(name) => Some(protocol::safe_name(name.as_bytes()).map_err(|r| {
            Error::invalid(format!(
                "option 'name': '{name}' cannot be used: {}",
                r.message
            ))
        })?),
        None => None,
    };
    if name.is_some() && !raw {
        return Err(Error::invalid(
            "option 'name' is for raw mode (raw: true); a framed upload carries its own name",
        ));
    }
    let mut options = ReceiveOptions {
        raw,
        name,
        overwrite: o.flag("overwrite", false)?,
        max_size: o.count("max_size")?,
        ..ReceiveOptions::default()
    };
    let timeout = wait_option(&o, "timeout")?;
    if let Some(t) = timeout {
        options.header_timeout = t;
        options.idle_timeout = t;
    }
    Ok((options, timeout.filter(|t| *t != Duration::MAX)))
}

pub fn serve_options(map: &Map) -> Result<(ReceiveOptions, bool)> {
    let o = Options::new(map, SERVE_OPTIONS)?;
    let defaults = ReceiveOptions::default();
    let limit = |key: &str, default: usize| -> Result<usize> {
        Ok(o.count_in(key, 1, MAX_UPLOADS_LIMIT as u64)?
            .map_or(default, |n| n as usize))
    };
    let allow = match o.value("allow") {
        None => Vec::new(),
        Some(v) if v.is_string() => vec![Cidr::parse(&v.to_string())?],
        Some(v) => match v.clone().try_cast::<Array>() {
            Some(list) => list
                .iter()
                .map(|item| Cidr::parse(&item.to_string()))
                .collect::<Result<_>>()?,
            None => {
                return Err(Options::bad(
                    "allow",
                    "an address block like \"10.0.0.0/8\" or an array of them",
                    v,
                ));
            }
        },
    };
    Ok((
        ReceiveOptions {
            raw: false,
            name: None,
            overwrite: o.flag("overwrite", false)?,
            max_size: o.count("max_size")?,
            header_timeout: wait_option(&o, "header_timeout")?.unwrap_or(defaults.header_timeout),
            idle_timeout: wait_option(&o, "idle_timeout")?.unwrap_or(defaults.idle_timeout),
            allow,
            max_uploads: limit("max_uploads", defaults.max_uploads)?,
            max_per_ip: limit("max_per_ip", defaults.max_per_ip)?,
            min_rate: match o.count("min_rate")? {
                None => defaults.min_rate,
                Some(0) => None,
                Some(rate) => Some(rate),
            },
            part_max_age: o
                .millis("part_max_age", "keeps them forever")?
                .unwrap_or(defaults.part_max_age),
        },
        o.flag("log", false)?,
    ))
}

/// The `count` of `wait(count)`: 0 or more.
pub fn upload_count(count: i64) -> Result<u64> {
    u64::try_from(count).map_err(|_| {
        Error::invalid(format!(
            "the count of uploads must be 0 or more, not {count}"
        ))
    })
}
