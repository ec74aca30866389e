//! For `bench/parts/echo.sh`: the ceiling of a Rhai-scripted echo server on
//! this machine. It is the plain Rust baselines with one thing added, the
//! script's per-message work, run by a bare Rhai engine around the thinnest
//! possible socket wrappers (no timeouts, no cancellation, no locks, no
//! TLS, nothing netsh adds). netsh's `serve` cannot beat these figures; how
//! close it comes says what netsh's own code costs.
//!
//! - `echo_rhai threads PORT`: `echo_threads` running, on each connection's
//!   thread, the closure shape's script
//!   `loop { let d = c.recv(); if d == "" { break } c.send(d) }`,
//!   where `recv` is one blocking `read` and `send` one `write_all`.
//! - `echo_rhai events PORT`: `echo_tokio` (a runtime with a worker per
//!   core) calling, for each chunk read, the event shape's handler
//!   `|c, d| c.send(d)` the way netsh's workers call it (`FnPtr::call`),
//!   where `send` is one non-blocking `write`.
//!
//! Listens on 127.0.0.1:PORT (0 picks a port, which is printed).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::Arc,
};

use rhai::{Blob, Dynamic, Engine, FnPtr, ImmutableString, Scope};

/// The connection as the script sees it: a socket and nothing else.
#[derive(Clone)]
struct Raw(Arc<TcpStream>);

impl Raw {
    fn recv(&mut self) -> ImmutableString {
        let mut buf = [0u8; 16 * 1024];
        match (&*self.0).read(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned().into(),
            Err(_) => ImmutableString::new(),
        }
    }

    fn send_text(&mut self, data: ImmutableString) {
        let _ = (&*self.0).write_all(data.as_bytes());
    }

    fn send_blob(&mut self, data: Blob) {
        let _ = (&*self.0).write(&data);
    }
}

fn engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .register_type_with_name::<Raw>("Conn")
        .register_fn("recv", Raw::recv)
        .register_fn("send", Raw::send_text)
        .register_fn("send", Raw::send_blob);
    engine
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(Ok(port))) = (args.get(1), args.get(2).map(|p| p.parse::<u16>())) else {
        eprintln!("usage: echo_rhai threads|events PORT");
        std::process::exit(2);
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo_rhai: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("{}", addr.port());
    }
    let result = match mode.as_str() {
        "threads" => threads(listener),
        "events" => events(listener),
        _ => Err(format!("no mode {mode}: threads or events").into()),
    };
    if let Err(e) = result {
        eprintln!("echo_rhai: {e}");
        std::process::exit(1);
    }
}

type Failure = Box<dyn std::error::Error>;

/// A thread per connection, each running the closure shape's loop.
fn threads(listener: TcpListener) -> Result<(), Failure> {
    let engine = Arc::new(engine());
    let ast =
        Arc::new(engine.compile(
            r#"fn serve(c) { loop { let d = c.recv(); if d == "" { break } c.send(d) } }"#,
        )?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let (engine, ast) = (engine.clone(), ast.clone());
        std::thread::spawn(move || {
            let conn = Raw(Arc::new(stream));
            let _ = engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "serve", (conn,));
        });
    }
    Ok(())
}

/// Tokio tasks that call the event shape's handler for each chunk.
fn events(listener: TcpListener) -> Result<(), Failure> {
    let engine = Arc::new(engine());
    let ast = engine.compile("|c, d| c.send(d)")?;
    let handler: FnPtr = engine.eval_ast(&ast)?;
    let functions = Arc::new(ast.clone_functions_only());
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (engine, functions, handler) = (engine.clone(), functions.clone(), handler.clone());
            tokio::spawn(async move {
                let Ok(std) = stream.into_std() else { return };
                let Ok(writer) = std.try_clone() else { return };
                let conn = Raw(Arc::new(writer));
                let Ok(stream) = tokio::net::TcpStream::from_std(std) else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    if stream.readable().await.is_err() {
                        return;
                    }
                    match stream.try_read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            let args = vec![
                                Dynamic::from(conn.clone()),
                                Dynamic::from_blob(buf[..n].to_vec()),
                            ];
                            if let Err(e) = handler.call::<Dynamic>(&engine, &functions, args) {
                                eprintln!("echo_rhai: {e}");
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), Failure>(())
    })
}
