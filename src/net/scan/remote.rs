//! The engine for other hosts: many connects in flight at once on the
//! runtime, each waiting out a round trip (or the user's `timeout`), for
//! hosts that answer late or never. [`super::scan_ports`] hands it the
//! ports the local sweep did not settle.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{net::TcpStream, sync::Semaphore, task::JoinSet};

use super::{Outcome, ScanOptions};
use crate::error::{Error, Result};

/// Many connects in flight at once on the runtime, for hosts that answer
/// after a round trip (or never).
pub(super) async fn concurrent_sweep(
    host: IpAddr,
    ports: Vec<u16>,
    options: ScanOptions,
) -> Result<Vec<(u16, Outcome)>> {
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut probes = JoinSet::new();
    for port in ports {
        let permits = permits.clone();
        let addr = SocketAddr::new(host, port);
        probes.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (port, probe(addr, options.timeout).await)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = probes.join_next().await {
        if let Ok((port, outcome)) = joined {
            results.push((port, outcome?));
        }
    }
    Ok(results)
}

/// One connect. Refused means closed; silence or "unreachable" means a
/// filter is in the way (as nmap reports it); running out of local
/// resources is our failure, not the port's, and stops the scan.
async fn probe(addr: SocketAddr, timeout: Option<Duration>) -> Result<Outcome> {
    for _ in 0..3 {
        let connect = TcpStream::connect(addr);
        let result = match timeout {
            None => Ok(connect.await),
            Some(timeout) => tokio::time::timeout(timeout, connect).await,
        };
        return match result {
            Ok(Ok(stream)) => {
                if stream.local_addr().ok() == Some(addr) {
                    continue; // a self-connect: see the module docs
                }
                Ok(Outcome::Open)
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(Outcome::Refused),
            Ok(Err(e))
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::EADDRNOTAVAIL)
                ) =>
            {
                Err(Error::io(format!("probing {addr}"), None, e))
            }
            Ok(Err(e))
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
                ) =>
            {
                Ok(Outcome::Unreachable)
            }
            Ok(Err(_)) | Err(_) => Ok(Outcome::Silent),
        };
    }
    Ok(Outcome::Refused)
}
