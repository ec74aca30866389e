//! URLs (lesson 1.8): `fetch`, netsh's curl, on reqwest.
//!
//! `fetch(url)` returns a [`Response`] with the body in memory;
//! `fetch(url, path)` streams it to a file with resume and progress.
//!
//! - [`request`]: the URL and the options map, checked before anything is sent;
//!   [`strict`] reads a URL once, holding its host to netsh's address parser.
//! - [`client`]: the shared reqwest clients and their errors in plain words.
//! - [`follow`]: sending, and following redirects hop by hop (each checked
//!   like a typed URL), through the proxy [`proxy`] finds and checks.
//! - [`response`]: the Response value, its body as text, blob or JSON, its printing.
//! - [`download`]: streaming to `PATH.part`, resume with `If-Range`, rename;
//!   with `part` (the locked part file and its validator), `stream` (body
//!   to disk, decoding) and `names` (a safe file name from the response).
//!
//! Every wait races cancellation: a fetch into memory through
//! [`runtime::block_on_here`], a download through
//! [`progress::watch`], so Ctrl-C stops a fetch like any blocking call.

use rhai::plugin::*;
use rhai::{Blob, Map};

use crate::error::Result;
use crate::net::progress;
use crate::runtime;

pub mod client;
pub mod download;
pub mod follow;
mod names;
mod part;
pub mod proxy;
pub mod request;
pub mod response;
mod stream;
pub mod strict;

pub use download::Downloaded;
pub use request::Request;
pub use response::Response;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<Response>("Response");
}

/// Sends a checked request and reads the whole response.
///
/// The exchange runs on the calling thread's own runtime
/// ([`runtime::block_on_here`]), with a client whose pool belongs to this
/// thread: the thread waits in `epoll_wait` on its own connection and is
/// woken by the kernel alone. (Handing each request to the shared runtime
/// and back cost two cross-thread wake-ups a request: 1,000 small fetches
/// ran at 0.9× one curl process.)
pub fn fetch(request: Request) -> Result<Response> {
    runtime::block_on_here(async move { response::fetch(&request).await })
}

/// Runs a fetch from a Rhai call: a Response, or a download's result map.
fn script_fetch(
    ctx: &NativeCallContext,
    url: &str,
    path: Option<&str>,
    map: &Map,
) -> Result<Dynamic> {
    let mut request = request::from_options(url, path, map)?;
    match request.download.take() {
        None => fetch(request).map(Dynamic::from),
        Some(dl) => {
            let done = progress::with_report(ctx, &dl.progress, |report| {
                let how = download::How {
                    resume: dl.resume,
                    hash: dl.hash,
                };
                download::download(request, &dl.path, how, report)
            })?;
            Ok(Dynamic::from_map(downloaded_map(&done)))
        }
    }
}

/// A finished download as the map scripts see.
pub fn downloaded_map(d: &Downloaded) -> Map {
    let mut map = Map::new();
    map.insert("path".into(), d.path.display().to_string().into());
    map.insert("url".into(), d.url.clone().into());
    map.insert("bytes".into(), (d.bytes as i64).into());
    map.insert("status".into(), (d.status as i64).into());
    map.insert("seconds".into(), d.seconds.into());
    map.insert("rate".into(), d.rate().into());
    map.insert("resumed_from".into(), (d.resumed_from as i64).into());
    map.insert(
        "sha256".into(),
        d.sha256.map_or(Dynamic::UNIT, |h| hex::encode(h).into()),
    );
    map
}

#[export_module(manifest)]
mod api {
    use super::*;
    use crate::error::{ScriptResult, fail};
    use crate::net::tcp::wrong_type;

    /// Fetches a URL (`http://`, `https://` or `file://`) and returns a
    /// Response: `.status`, `.ok`, `.url` (after redirects), `.headers`,
    /// `.body`, `.bytes`, `.json`, `.seconds`, `.version`. An HTTP error
    /// status is a normal result with `ok` false.
    ///
    /// ```rhai
    /// let r = fetch("http://127.0.0.1:8080/");
    /// if r.ok { print(r.body) } else { print(`failed: ${r.status}`) }
    /// ```
    ///
    /// Fails when: the URL is malformed, not http/https/file, or its host
    /// is not spelled as an address or name (`127.1`), the name does not
    /// resolve, the connection is refused, TLS fails, a timeout passes, a
    /// redirect leads where a typed URL could not go (named in the message),
    /// redirects loop or exceed `max_redirects`, the proxy in `http_proxy`
    /// is refused, or the body is over 1 GiB (save it with `fetch(url, path)`).
    #[rhai_fn(return_raw, name = "fetch")]
    pub fn fetch_url(ctx: NativeCallContext, url: &str) -> ScriptResult<Dynamic> {
        super::script_fetch(&ctx, url, None, &Map::new()).map_err(fail("fetch"))
    }

    /// Fetches with options: `method`, `headers` (map), `body` (string or
    /// blob), `json` (any value, sent as JSON), `form` (map, sent
    /// url-encoded), `query` (map, added to the URL), `timeout` (ms for the
    /// whole exchange; 0 none), `connect_timeout` (ms, default 10000),
    /// `follow_redirects` (default true), `max_redirects` (default 10),
    /// `user_agent`, `insecure` (skip the certificate check), `ca` (a PEM
    /// file of certificates to trust), `basic_auth` (`"user:password"`),
    /// `bearer` (a token), `decode` (gzip/brotli/deflate, default true),
    /// `proxy` (`"socks5://…"`, `"socks5h://…"` or `"http://…"`, with
    /// `user:pass@`, instead of the environment's; `no_proxy` still
    /// applies), and `output` (a path: download, as `fetch(url, path)`).
    ///
    /// ```rhai
    /// let r = fetch("http://127.0.0.1:8080/api", #{method: "POST", json: #{name: "netsh"}, timeout: 5000});
    /// print(r.json.id);
    /// let p = fetch("http://intranet/", #{proxy: "socks5h://127.0.0.1:1080"});
    /// ```
    ///
    /// Fails when: as `fetch(url)`, or an option is unknown, has the wrong
    /// type, or the `ca` file is not PEM, or the proxy URL is malformed (a
    /// path, an unknown scheme, port 0) or the proxy refuses.
    #[rhai_fn(return_raw, name = "fetch")]
    pub fn fetch_with(ctx: NativeCallContext, url: &str, options: Map) -> ScriptResult<Dynamic> {
        super::script_fetch(&ctx, url, None, &options).map_err(fail("fetch"))
    }

    /// Downloads a URL to a file: streamed to `PATH.part`, renamed when
    /// complete; an existing `.part` is resumed (checked with If-Range). A
    /// folder gets the server's or the URL's file name; `/dev/null` or a
    /// pipe is written straight into. A progress bar shows on a terminal.
    /// Returns `#{path, url, bytes, status, seconds, rate, resumed_from, sha256}`.
    ///
    /// ```rhai
    /// let d = fetch("http://127.0.0.1:8080/big.iso", "big.iso");
    /// print(`${d.bytes} bytes, sha256 ${d.sha256}`);
    /// ```
    ///
    /// Fails when: as `fetch(url)`, or the server answers an error status
    /// (nothing is saved), the body is cut off (the `.part` stays; fetch
    /// again to resume), the folder is missing, or a file of the server's
    /// name already exists in the folder given.
    #[rhai_fn(return_raw, name = "fetch")]
    pub fn fetch_to(ctx: NativeCallContext, url: &str, path: &str) -> ScriptResult<Dynamic> {
        super::script_fetch(&ctx, url, Some(path), &Map::new()).map_err(fail("fetch"))
    }

    /// Downloads with options: those of `fetch(url, options)`, and
    /// `progress` (false, or a closure called with `#{bytes, total,
    /// percent, rate, eta}` four times a second and at the end; `total`,
    /// `percent` and `eta` are `()` when the size is unknown), `resume`
    /// (default true), `decode` (false keeps a gzip body as sent), `hash`
    /// (default false, which leaves `sha256` as `()`; true computes it while
    /// streaming, at a core's work: curl's speed comes first).
    ///
    /// ```rhai
    /// fetch("http://127.0.0.1:8080/f.bin", "f.bin", #{progress: |p| print(`${p.bytes} bytes`)});
    /// ```
    ///
    /// Fails when: as `fetch(url, path)`, or the progress closure throws
    /// (the `.part` stays, so the next fetch resumes).
    #[rhai_fn(return_raw, name = "fetch")]
    pub fn fetch_to_with(
        ctx: NativeCallContext,
        url: &str,
        path: &str,
        options: Map,
    ) -> ScriptResult<Dynamic> {
        super::script_fetch(&ctx, url, Some(path), &options).map_err(fail("fetch"))
    }

    /// Catches `fetch` given something that is not a URL string.
    ///
    /// ```rhai
    /// fetch("http://127.0.0.1:8080/")   // not fetch(8080)
    /// ```
    ///
    /// Fails when: always: the URL must be a string.
    #[rhai_fn(return_raw, name = "fetch")]
    pub fn fetch_wrong_type(url: Dynamic) -> ScriptResult<Dynamic> {
        Err(fail("fetch")(wrong_type(
            "a URL string like \"http://127.0.0.1:8080/\"",
            &url,
        )))
    }

    /// Catches `fetch(url, x)` where `x` is neither a path nor an options map.
    ///
    /// ```rhai
    /// fetch("http://127.0.0.1:8080/", #{timeout: 2000})
    /// ```
    ///
    /// Fails when: always: the second argument must be a path or a map.
    #[rhai_fn(return_raw, name = "fetch")]
    pub fn fetch_wrong_types(url: Dynamic, second: Dynamic) -> ScriptResult<Dynamic> {
        let err = if url.is_string() {
            wrong_type(
                "a path string or an options map #{…} as the second argument",
                &second,
            )
        } else {
            wrong_type("a URL string like \"http://127.0.0.1:8080/\"", &url)
        };
        Err(fail("fetch")(err))
    }

    /// The HTTP status code (200, 404…).
    ///
    /// ```rhai
    /// fetch("http://127.0.0.1:8080/").status
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "status", pure)]
    pub fn status(r: &mut Response) -> i64 {
        i64::from(r.status())
    }

    /// Whether the status is 2xx (a success), as the browser's `fetch` has it.
    ///
    /// ```rhai
    /// if !r.ok { print(`HTTP ${r.status}`) }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "ok", pure)]
    pub fn ok(r: &mut Response) -> bool {
        r.ok()
    }

    /// The status's reason phrase ("OK", "Not Found").
    ///
    /// ```rhai
    /// r.reason
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "reason", pure)]
    pub fn reason(r: &mut Response) -> String {
        r.reason().to_string()
    }

    /// The final URL, after any redirects.
    ///
    /// ```rhai
    /// fetch("http://127.0.0.1:8080/old").url
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "url", pure)]
    pub fn url(r: &mut Response) -> String {
        r.url().to_string()
    }

    /// The headers as a map with lower-case names. A repeated header's
    /// values are joined with ", " (`set-cookie`'s with "\n").
    ///
    /// ```rhai
    /// r.headers["content-type"]
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "headers", pure)]
    pub fn headers(r: &mut Response) -> Map {
        r.headers_map()
    }

    /// The body: a string when the content type is text and its charset
    /// decodes, otherwise a blob.
    ///
    /// ```rhai
    /// print(fetch("http://127.0.0.1:8080/notes.txt").body)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "body", pure)]
    pub fn body(r: &mut Response) -> Dynamic {
        r.body()
    }

    /// The body as a blob, whatever its type.
    ///
    /// ```rhai
    /// sha256(fetch("http://127.0.0.1:8080/logo.png").bytes)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "bytes", pure)]
    pub fn bytes(r: &mut Response) -> Blob {
        r.bytes().to_vec()
    }

    /// The body parsed as JSON (objects become maps, `null` becomes `()`).
    ///
    /// ```rhai
    /// fetch("http://127.0.0.1:8080/api/user").json.name
    /// ```
    ///
    /// Fails when: the body is not JSON (the message says where it broke).
    #[rhai_fn(get = "json", pure, return_raw)]
    pub fn json(r: &mut Response) -> ScriptResult<Dynamic> {
        r.json().map_err(fail("json"))
    }

    /// How long the exchange took, in seconds (request to last body byte).
    ///
    /// ```rhai
    /// r.seconds
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "seconds", pure)]
    pub fn seconds(r: &mut Response) -> f64 {
        r.seconds()
    }

    /// The protocol version: "HTTP/1.1", "HTTP/2" (or "file").
    ///
    /// ```rhai
    /// r.version
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "version", pure)]
    pub fn version(r: &mut Response) -> String {
        r.version().to_string()
    }

    /// How a response prints: the status line, a few headers and the start
    /// of the body.
    ///
    /// ```rhai
    /// print(r)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn response_to_string(r: &mut Response) -> String {
        format!("{r:?}")
    }
}
