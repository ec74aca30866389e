//! Baseline for `bench/parts/echo.sh`: a Rust echo server with one OS
//! thread per connection and blocking reads, the shape netsh's closure
//! `serve(port, |c| …)` has (what it is compared with).
//!
//! Usage: echo_threads PORT   (listens on 127.0.0.1:PORT; 0 picks a port,
//! which is printed)

use std::io::{Read, Write};

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: echo_threads PORT");
            std::process::exit(2);
        }
    };
    let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo_threads: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("{}", addr.port());
    }
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}
