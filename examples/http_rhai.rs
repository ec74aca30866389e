//! For `bench/parts/http.sh`: the ceiling of a Rhai-scripted HTTP handler
//! on this machine. A bare hyper server (the same hyper-util auto builder
//! `http_serve` uses, on a tokio runtime with a worker per core) that
//! calls, for each request, the closure `|req| #{ok: true, n: req.query.n}`
//! on a bare Rhai engine, with `req` a plain map of the query, and sends
//! the map back as JSON. No routes, no log, no limits, no permissions,
//! nothing netsh adds: `http_serve` cannot beat this figure, and how close
//! it comes says what netsh's own code costs.
//!
//! `http_rhai PORT` listens on 127.0.0.1:PORT (0 picks a port, printed).
//! `http_rhai PORT timer` adds what netsh needs against slowloris
//! clients, hyper's header read timeout (a timer armed per request), to
//! say what that part costs.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rhai::{AST, Dynamic, Engine, FnPtr, Map};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: http_rhai PORT [timer]");
            std::process::exit(2);
        }
    };
    let timer = std::env::args().nth(2).as_deref() == Some("timer");
    if let Err(e) = run(port, timer) {
        eprintln!("http_rhai: {e}");
        std::process::exit(1);
    }
}

/// The script's handler, ready to call from any thread.
struct Handler {
    engine: Engine,
    ast: AST,
    f: FnPtr,
}

impl Handler {
    fn answer(&self, req: &Request<Incoming>) -> Result<Bytes, Failure> {
        let mut query = Map::new();
        if let Some(q) = req.uri().query() {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                query.insert(k.as_ref().into(), v.into_owned().into());
            }
        }
        let mut map = Map::new();
        map.insert("query".into(), query.into());
        let value: Dynamic = self.f.call(&self.engine, &self.ast, (map,))?;
        Ok(Bytes::from(serde_json::to_vec(&json(&value))?))
    }
}

/// A Rhai value as JSON, for the maps, strings, numbers and booleans a
/// handler returns.
fn json(value: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if let Ok(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Value::from(i)
    } else if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        Value::String(s.to_string())
    } else if let Some(m) = value.read_lock::<Map>() {
        Value::Object(m.iter().map(|(k, v)| (k.to_string(), json(v))).collect())
    } else {
        Value::Null
    }
}

fn run(port: u16, timer: bool) -> Result<(), Failure> {
    let engine = Engine::new();
    let ast = engine.compile("|req| #{ok: true, n: req.query.n}")?;
    let f: FnPtr = engine.eval_ast(&ast)?;
    let ast = ast.clone_functions_only();
    let handler = Arc::new(Handler { engine, ast, f });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("{}", listener.local_addr()?.port());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if timer {
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30));
        }
        let builder = Arc::new(builder);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (builder, handler) = (builder.clone(), handler.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let answer = handler.answer(&req);
                    async move {
                        let response = match answer {
                            Ok(body) => Response::builder()
                                .header(header::CONTENT_TYPE, "application/json")
                                .body(Full::new(body)),
                            Err(e) => Response::builder()
                                .status(500)
                                .body(Full::new(Bytes::from(e.to_string()))),
                        };
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), Failure>(())
    })
}
