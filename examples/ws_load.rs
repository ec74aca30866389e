//! Load generator for `bench/parts/websocket.sh`: N WebSocket connections
//! to an echo server on loopback, each sending a short text message and
//! waiting for it to come back, for a fixed time; prints round trips per
//! second.
//!
//! One tokio thread drives every connection, so the client costs one core
//! at most and the server under test gets the other (as `echo_load`).
//! Every echo is checked: a wrong one fails the run.
//!
//! Usage: ws_load URL CONNECTIONS SECONDS

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(conns), Some(secs)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
        args.get(3).and_then(|a| a.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: ws_load URL CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let rate = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(&url, conns, Duration::from_secs_f64(secs))));
    match rate {
        Ok(rate) => println!("{rate:.0}"),
        Err(e) => {
            eprintln!("ws_load: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(url: &str, conns: usize, time: Duration) -> Result<f64, String> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or("the URL must be ws://127.0.0.1:PORT/path")?
        .to_string();
    // Connect everything first, then time only the round trips.
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        // tungstenite zeroes its whole read buffer (128 KiB by default)
        // before every read: a small one keeps the generator's own cost low.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(16 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| e.to_string())?;
        sockets.push(ws);
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + time;
    let mut tasks = tokio::task::JoinSet::new();
    for mut ws in sockets {
        tasks.spawn(async move {
            let message = "ping from ws_load, 32 bytes long";
            let mut count = 0u64;
            while tokio::time::Instant::now() < deadline {
                ws.send(Message::text(message))
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.as_str() == message => break,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        other => return Err(format!("not the echo: {other:?}")),
                    }
                }
                count += 1;
            }
            let _ = ws.close(None).await;
            Ok::<u64, String>(count)
        });
    }
    let mut total = 0u64;
    while let Some(done) = tasks.join_next().await {
        total += done.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
