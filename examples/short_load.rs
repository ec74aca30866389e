//! Load for `bench/parts/relay.sh`: short connections, or many idle ones.
//!
//! - `short_load rate PORT SECONDS CONCURRENCY`: each of CONCURRENCY tasks
//!   connects to 127.0.0.1:PORT, sends one line, reads the one-line reply,
//!   closes, and again; prints connections per second.
//! - `short_load hold PORT N`: opens N connections, sends a line on each
//!   and reads its reply (so each is relayed end to end), prints `held N`,
//!   and keeps them open until killed.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: short_load rate PORT SECONDS CONCURRENCY | short_load hold PORT N");
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
            let rate = runtime.block_on(rate(port, Duration::from_secs(secs), conc));
            println!("{rate:.0}");
        }
        Some("hold") => {
            let (port, n) = (number(2) as u16, number(3));
            runtime.block_on(hold(port, n));
        }
        _ => {
            eprintln!("usage: short_load rate PORT SECONDS CONCURRENCY | short_load hold PORT N");
            std::process::exit(2);
        }
    }
}

/// One exchange on a fresh connection.
async fn once(port: u16) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
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

async fn rate(port: u16, length: Duration, conc: u64) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < length {
                if once(port).await.is_ok() {
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
