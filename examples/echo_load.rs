//! Load generator for `bench/parts/echo.sh`: N connections to an echo
//! server on loopback, each sending a short line and waiting for it to come
//! back, for a fixed time; prints round trips per second.
//!
//! One tokio thread drives every connection by default, so the client costs
//! one core at most and the server under test gets the other; a fourth
//! argument spreads the connections over that many threads, for servers the
//! single thread cannot keep busy.
//!
//! Usage: echo_load PORT CONNECTIONS SECONDS [THREADS]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(conns), Some(secs), Some(threads)) = (
        args.get(1).and_then(|a| a.parse::<u16>().ok()),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
        args.get(3).and_then(|a| a.parse::<f64>().ok()),
        args.get(4)
            .map_or(Some(1), |a| a.parse::<usize>().ok().filter(|&t| t >= 1)),
    ) else {
        eprintln!("usage: echo_load PORT CONNECTIONS SECONDS [THREADS]");
        std::process::exit(2);
    };
    let time = Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            // Connections split as evenly as they go.
            let mine = conns / threads + usize::from(i < conns % threads);
            std::thread::spawn(move || -> std::io::Result<f64> {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(run(port, mine, time))
            })
        })
        .collect();
    let mut total = 0.0;
    for worker in workers {
        match worker.join() {
            Ok(Ok(rate)) => total += rate,
            Ok(Err(e)) => {
                eprintln!("echo_load: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("echo_load: a load thread failed");
                std::process::exit(1);
            }
        }
    }
    println!("{total:.0}");
}

async fn run(port: u16, conns: usize, time: Duration) -> std::io::Result<f64> {
    // Connect everything first (a burst of connects would overflow small
    // listen backlogs), then time only the round trips.
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + time;
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move {
            let message = b"ping\n";
            let mut reply = [0u8; 5];
            let mut count = 0u64;
            while tokio::time::Instant::now() < deadline {
                stream.write_all(message).await?;
                stream.read_exact(&mut reply).await?;
                count += 1;
            }
            Ok::<u64, std::io::Error>(count)
        });
    }
    let mut total = 0u64;
    while let Some(done) = tasks.join_next().await {
        total += done.map_err(std::io::Error::other)??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
