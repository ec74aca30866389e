//! The access log: a line per request in the common log format, as
//! Apache and nginx write it, with the time taken added at the end —
//! `127.0.0.1 - - [07/Dec/2026:18:50:21 +0000] "GET /x HTTP/1.1" 200 5 0.41ms`
//! — on stderr (above the prompt in the REPL), or nowhere (`quiet: true`),
//! or handed to the script's `log: |entry| …` as a map.

use std::{net::SocketAddr, time::Duration};

use rhai::{Dynamic, Map};

use crate::runtime::closure::Callback;

/// Where the log goes.
#[derive(Clone)]
pub enum Log {
    Terminal,
    Quiet,
    Closure(Callback),
}

/// One request, answered.
pub struct Entry<'a> {
    pub peer: SocketAddr,
    pub method: &'a str,
    /// Path and query, as the request sent them.
    pub target: &'a str,
    pub version: hyper::Version,
    pub status: u16,
    /// The body's length, when known before it is sent.
    pub bytes: Option<u64>,
    pub took: Duration,
}

impl Entry<'_> {
    /// The line in the common log format, plus the time taken.
    pub fn line(&self) -> String {
        let when = time::OffsetDateTime::now_utc();
        let format = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        let when = when.format(&format).unwrap_or_default();
        let bytes = match self.bytes {
            Some(n) if n > 0 => n.to_string(),
            _ => "-".into(),
        };
        format!(
            "{} - - [{when}] \"{} {} {:?}\" {} {bytes} {:.2}ms",
            self.peer.ip(),
            self.method,
            self.target,
            self.version,
            self.status,
            self.took.as_secs_f64() * 1000.0
        )
    }

    fn map(&self, line: String) -> Map {
        let mut map = Map::new();
        map.insert("peer".into(), self.peer.to_string().into());
        map.insert("method".into(), self.method.into());
        map.insert("path".into(), self.target.into());
        map.insert("status".into(), Dynamic::from_int(self.status.into()));
        map.insert(
            "bytes".into(),
            self.bytes
                .map_or(Dynamic::UNIT, |n| Dynamic::from_int(n as i64)),
        );
        map.insert(
            "ms".into(),
            Dynamic::from_float(self.took.as_secs_f64() * 1000.0),
        );
        map.insert("line".into(), line.into());
        map
    }
}

impl Log {
    /// Records `entry` where the log goes.
    pub fn record(&self, entry: &Entry<'_>) {
        match self {
            Log::Quiet => {}
            Log::Terminal => {
                // The request line is the client's text: escaped on a
                // terminal by `alert`'s rule.
                let line = entry.line();
                if crate::console::is_interactive() {
                    crate::console::line(&crate::console::terminal_text(&line));
                } else {
                    eprintln!("{}", crate::error::printable(&line));
                }
            }
            Log::Closure(f) => {
                let map = entry.map(entry.line());
                if let Err(e) = f.call1(map.into()) {
                    crate::console::alert(&format!(
                        "http_serve: the log closure failed: {}",
                        crate::error::message_of(&e)
                    ));
                }
            }
        }
    }
}
