//! Load for `bench/parts/relay.sh`: short connections, or many idle ones.
//!
//! - `short_load rate PORT SECONDS CONCURRENCY`: each of CONCURRENCY tasks
//!   connects to 127.0.0.1:PORT, sends one line, reads the one-line reply,
//!   closes, and again; prints connections per second.
//! - `short_load tls-rate PORT SECONDS CONCURRENCY CERT`: the same over
//!   TLS: a full handshake each time (no resumption), trusting the
//!   self-signed CERT (PEM) for `localhost`.
//! - `short_load hold PORT N`: opens N connections, sends a line on each
//!   and reads its reply (so each is relayed end to end), prints `held N`,
//!   and keeps them open until killed.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{self, pki_types::ServerName},
};

const USAGE: &str = "usage: short_load rate PORT SECONDS CONCURRENCY | \
     short_load tls-rate PORT SECONDS CONCURRENCY CERT | short_load hold PORT N";

/// A client that trusts `cert` alone and never resumes a session, so
/// every connection pays for a whole handshake, as a new client would.
fn connector(cert: &str) -> TlsConnector {
    let pem = std::fs::read(cert).unwrap_or_else(|e| {
        eprintln!("short_load: {cert}: {e}");
        std::process::exit(1)
    });
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let der: rustls::pki_types::CertificateDer = der.expect("a PEM certificate");
        roots.add(der).expect("a usable certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(std::sync::Arc::new(config))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("{USAGE}");
            std::process::exit(2)
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match args.get(1).map(String::as_str) {
        Some("rate") => {
            let (port, secs, conc) = (number(2) as u16, number(3), number(4));
            let rate = runtime.block_on(rate(port, Duration::from_secs(secs), conc, None));
            println!("{rate:.0}");
        }
        Some("hold") => {
            let (port, n) = (number(2) as u16, number(3));
            runtime.block_on(hold(port, n));
        }
        Some("tls-rate") => {
            let (port, secs, conc) = (number(2) as u16, number(3), number(4));
            let Some(cert) = args.get(5) else {
                eprintln!("{USAGE}");
                std::process::exit(2);
            };
            let tls = connector(cert);
            let rate = runtime.block_on(rate(port, Duration::from_secs(secs), conc, Some(tls)));
            println!("{rate:.0}");
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// One exchange on a fresh connection (over TLS with `tls`).
async fn once(port: u16, tls: Option<&TlsConnector>) -> std::io::Result<()> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    match tls {
        None => exchange(s).await,
        Some(tls) => {
            let name = ServerName::try_from("localhost").expect("a server name");
            exchange(tls.connect(name, s).await?).await
        }
    }
}

/// Sends one line and reads the one-line reply.
async fn exchange(
    mut s: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
) -> std::io::Result<()> {
    s.write_all(b"ping\n").await?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while !buf[..got].contains(&b'\n') {
        let n = s.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(())
}

async fn rate(port: u16, length: Duration, conc: u64, tls: Option<TlsConnector>) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < length {
                if once(port, tls.as_ref()).await.is_ok() {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn hold(port: u16, n: u64) {
    let mut held = Vec::new();
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
            break;
        };
        let mut buf = [0u8; 64];
        if s.write_all(b"ping\n").await.is_err() || s.read(&mut buf).await.is_err() {
            break;
        }
        held.push(s);
    }
    println!("held {}", held.len());
    std::future::pending::<()>().await;
}
