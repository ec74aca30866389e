//! `ping(host, opts)`: ICMP echo requests at an interval, the replies and
//! ICMP errors that come back, and the statistics iputils `ping` prints.
//! Each reply is shown as it arrives in the REPL (or with `live: true`);
//! Ctrl-C ends the run early and still returns the summary, as ping does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use rhai::{Array, Dynamic, Map};

use super::icmp::{Access, Event, IcmpSocket};
use crate::console;
use crate::error::{Error, Result};
use crate::net::addr::{self, Host};
use crate::net::options::Options;

pub const KNOWN: &[&str] = &["count", "interval", "size", "ttl", "timeout", "live"];

/// The fastest interval without privilege, as iputils ping allows.
const MIN_UNPRIVILEGED_INTERVAL: Duration = Duration::from_millis(200);

/// A checked `ping` call: nothing has been sent.
pub struct Plan {
    pub host: String,
    pub ip: IpAddr,
    pub count: u64,
    pub interval: Duration,
    pub size: usize,
    pub ttl: Option<u32>,
    /// How long to wait for the last reply.
    pub timeout: Duration,
    pub live: bool,
}

impl Plan {
    pub fn new(host: &str, options: &Map) -> Result<Plan> {
        let o = Options::new(options, KNOWN)?;
        let count = o.count_in("count", 1, 1_000_000)?.unwrap_or(4);
        let interval = match o.value("interval") {
            None => Duration::from_secs(1),
            Some(v) => {
                let ms = v
                    .as_int()
                    .map_err(|_| o.wrong("interval", "a number of milliseconds", v))?;
                u64::try_from(ms).map(Duration::from_millis).map_err(|_| {
                    Error::invalid(format!(
                        "option 'interval': expected 0 or more milliseconds, not {ms}"
                    ))
                })?
            }
        };
        let size = o.count_in("size", 0, 65_507)?.unwrap_or(56) as usize;
        let ttl = o.count_in("ttl", 1, 255)?.map(|t| t as u32);
        let timeout = o
            .timeout("timeout")?
            .map(|t| t.unwrap_or(Duration::from_secs(3600)))
            .unwrap_or(Duration::from_secs(2));
        let live = o.flag("live", console::is_interactive())?;
        let ip = target_ip(host)?;
        Ok(Plan {
            host: host.to_string(),
            ip,
            count,
            interval,
            size,
            ttl,
            timeout,
            live,
        })
    }
}

/// The address to ping: an IP as written, or a name's first address
/// (IPv4 first) from the system resolver.
///
/// ICMP has no port: the address must be in `--allow-net` (any port),
/// and a name also as a name, before the resolver is asked.
pub fn target_ip(host: &str) -> Result<IpAddr> {
    match addr::parse_host(host)? {
        Host::Ip(ip) => {
            crate::permit::lookup(&ip.to_string())?;
            Ok(ip)
        }
        Host::Name(name) => {
            use std::net::ToSocketAddrs;
            crate::permit::lookup(&name)?;
            let addrs: Vec<IpAddr> = (name.as_str(), 0)
                .to_socket_addrs()
                .map_err(|e| Error::Resolve {
                    host: name.clone(),
                    reason: e.to_string(),
                })?
                .map(|a| a.ip())
                .collect();
            let ip = addrs
                .iter()
                .find(|ip| ip.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| Error::Resolve {
                    host: name,
                    reason: "no addresses".into(),
                })?;
            crate::permit::lookup(&ip.to_string())?;
            Ok(ip)
        }
    }
}

/// Opens the socket and checks what needs privilege; still nothing sent.
pub fn open(plan: &Plan) -> Result<IcmpSocket> {
    let socket = IcmpSocket::open(plan.ip.is_ipv6())?;
    if plan.interval < MIN_UNPRIVILEGED_INTERVAL && socket.access != Access::Raw {
        return Err(Error::Permission(format!(
            "an interval below {} ms needs CAP_NET_RAW (as ping's does)",
            MIN_UNPRIVILEGED_INTERVAL.as_millis()
        )));
    }
    if let Some(ttl) = plan.ttl {
        socket.set_ttl(ttl)?;
    }
    Ok(socket)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends the requests and gathers what comes back.
pub fn run(plan: &Plan, socket: &IcmpSocket) -> Result<Map> {
    let payload: Vec<u8> = (0..plan.size).map(|i| (i % 256) as u8).collect();
    if plan.live {
        console::line(&format!(
            "PING {} ({}) {} data bytes",
            plan.host, plan.ip, plan.size
        ));
    }
    let start = Instant::now();
    // Each request's send time on two clocks, read just before it left:
    // the wall clock (against the reply's kernel receive time) and the
    // monotonic one (for the schedule, and the round trip when the kernel
    // gave no receive time).
    let mut sent_at: HashMap<u16, (SystemTime, Instant)> = HashMap::new();
    let mut replies: Array = Array::new();
    let mut rtts: Vec<f64> = Vec::new();
    let mut errors: Array = Array::new();
    let mut answered: std::collections::HashSet<u16> = Default::default();
    let mut next: u64 = 0;
    let mut last_sent = start;
    loop {
        let now = Instant::now();
        if next < plan.count && now >= start + plan.interval * (next as u32) {
            let seq = ((next + 1) % 65536) as u16;
            let (wall, t) = socket.send_echo(plan.ip, seq, &payload)?;
            sent_at.insert(seq, (wall, t));
            last_sent = t;
            next += 1;
            continue;
        }
        if next == plan.count && answered.len() as u64 >= plan.count {
            break;
        }
        let deadline = if next < plan.count {
            start + plan.interval * (next as u32)
        } else {
            last_sent + plan.timeout
        };
        let event = match socket.next_event(Some(deadline)) {
            Ok(Some(event)) => event,
            Ok(None) if next == plan.count => break,
            Ok(None) => continue,
            Err(Error::Interrupted) => break,
            Err(e) => return Err(e),
        };
        match event {
            Event::Reply { from, seq, ttl, at } => {
                let Some(&(sent_wall, sent_mono)) = sent_at.get(&seq) else {
                    continue;
                };
                if !answered.insert(seq) {
                    continue; // a duplicate
                }
                let rtt = ms(round_trip(sent_wall, sent_mono, at));
                rtts.push(rtt);
                if plan.live {
                    let ttl = ttl.map_or(String::new(), |t| format!(" ttl={t}"));
                    console::line(&format!(
                        "{} bytes from {from}: seq={seq}{ttl} time={rtt:.3} ms",
                        plan.size + 8
                    ));
                }
                let mut m = Map::new();
                m.insert("seq".into(), Dynamic::from(i64::from(seq)));
                m.insert(
                    "ttl".into(),
                    ttl.map_or(Dynamic::UNIT, |t| Dynamic::from(i64::from(t))),
                );
                m.insert("ms".into(), Dynamic::from_float(rtt));
                m.insert("from".into(), from.to_string().into());
                replies.push(m.into());
            }
            Event::Error {
                from,
                seq,
                what,
                icmp_type,
                code,
            } => {
                if !sent_at.contains_key(&seq) || !answered.insert(seq) {
                    continue;
                }
                if plan.live {
                    console::line(&format!("From {from} seq={seq} {what}"));
                }
                let mut m = Map::new();
                m.insert("seq".into(), Dynamic::from(i64::from(seq)));
                m.insert("from".into(), from.to_string().into());
                m.insert("error".into(), what.into());
                m.insert("icmp_type".into(), Dynamic::from(i64::from(icmp_type)));
                m.insert("code".into(), Dynamic::from(i64::from(code)));
                errors.push(m.into());
            }
        }
    }
    let sent = sent_at.len() as i64;
    let received = replies.len() as i64;
    let loss = if sent == 0 {
        0.0
    } else {
        (sent - received) as f64 * 100.0 / sent as f64
    };
    let mut m = Map::new();
    m.insert("host".into(), plan.host.clone().into());
    m.insert("addr".into(), plan.ip.to_string().into());
    m.insert("sent".into(), Dynamic::from(sent));
    m.insert("received".into(), Dynamic::from(received));
    let error_count = errors.len();
    m.insert("errors".into(), Dynamic::from(error_count as i64));
    m.insert("loss".into(), Dynamic::from_float(loss));
    let stat = |v: Option<f64>| v.map_or(Dynamic::UNIT, Dynamic::from_float);
    let (min, avg, max, mdev) = stats(&rtts);
    m.insert("min_ms".into(), stat(min));
    m.insert("avg_ms".into(), stat(avg));
    m.insert("max_ms".into(), stat(max));
    m.insert("mdev_ms".into(), stat(mdev));
    m.insert("replies".into(), replies.into());
    m.insert("icmp_errors".into(), errors.into());
    m.insert(
        "socket".into(),
        match socket.access {
            Access::Raw => "raw",
            Access::Ping => "ping",
        }
        .into(),
    );
    if plan.live {
        console::line(&format!("--- {} ping statistics ---", plan.host));
        let errors = match error_count {
            0 => String::new(),
            n => format!(", +{n} errors"),
        };
        console::line(&format!(
            "{sent} packets transmitted, {received} received{errors}, {loss:.0}% packet loss, time {:.0}ms",
            ms(start.elapsed())
        ));
        if let (Some(min), Some(avg), Some(max), Some(mdev)) = (min, avg, max, mdev) {
            console::line(&format!(
                "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
            ));
        }
    }
    Ok(m)
}

/// A reply's round trip: from just before the request left to the
/// kernel's receive time, or (no receive time, or a wall clock that was
/// set back meanwhile) to now.
fn round_trip(sent_wall: SystemTime, sent_mono: Instant, received: Option<SystemTime>) -> Duration {
    received
        .and_then(|r| r.duration_since(sent_wall).ok())
        .filter(|d| *d <= sent_mono.elapsed())
        .unwrap_or_else(|| sent_mono.elapsed())
}

/// min, avg, max and mdev as iputils computes them (mdev: the standard
/// deviation, sqrt(mean(x²) − mean(x)²)).
fn stats(rtts: &[f64]) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    if rtts.is_empty() {
        return (None, None, None, None);
    }
    let n = rtts.len() as f64;
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = rtts.iter().sum::<f64>() / n;
    let sq = rtts.iter().map(|r| r * r).sum::<f64>() / n;
    let mdev = (sq - avg * avg).max(0.0).sqrt();
    (Some(min), Some(avg), Some(max), Some(mdev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_as_iputils() {
        let (min, avg, max, mdev) = stats(&[1.0, 3.0]);
        assert_eq!((min, avg, max), (Some(1.0), Some(2.0), Some(3.0)));
        assert!((mdev.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(stats(&[]).0, None);
    }

    #[test]
    fn bad_options_fail_before_a_socket_is_opened() {
        let m = |k: &str, v: i64| -> Map { [(k.into(), Dynamic::from(v))].into_iter().collect() };
        for (k, v) in [
            ("count", 0),
            ("count", -1),
            ("interval", -5),
            ("ttl", 0),
            ("ttl", 256),
            ("size", -1),
        ] {
            assert!(Plan::new("127.0.0.1", &m(k, v)).is_err(), "{k}={v}");
        }
        assert!(Plan::new("1.2.3", &Map::new()).is_err());
    }
}
