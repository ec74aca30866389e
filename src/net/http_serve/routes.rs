//! Route keys and matching: `"GET /api/items/:id"`, `"/static/*"`, `"/"`.
//!
//! A key is an optional method, one space, and a path pattern of `/`
//! separated segments: a literal, `:name` (one segment, handed to the
//! handler as `req.params.name`, percent-decoded) or, last, `*` (the rest
//! of the path, whatever it holds). A key that does not read that way is
//! refused when the server starts, quoting the key, so a typo like
//! `"GETT /x"` never becomes a route that silently answers nothing.
//!
//! When several routes match, the most specific wins: one without `*`
//! before one with it, then the one with more literal segments, then one
//! that names the method before one that takes any.

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rhai::{Dynamic, FnPtr, Map, NativeCallContext};

use crate::error::{Error, Result};
use crate::net::options::Options;
use crate::runtime::closure::Callback;

/// The methods a route may name.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// What answers a route.
#[derive(Clone)]
pub enum Target {
    /// A Rhai closure `|req| …`, called for each request.
    Closure(Callback),
    /// A folder served as files (`"/static/*": "./public"`).
    Folder(Arc<super::files::Folder>),
    /// A WebSocket route, `#{websocket: |ws| …}` or `#{on_message: …}`.
    WebSocket(Arc<crate::net::ws::ServerRoute>),
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A route: its method (or any), its pattern, what answers it.
#[derive(Clone)]
pub struct Route {
    /// The key as written, for messages.
    pub key: String,
    method: Option<String>,
    segments: Vec<Segment>,
    /// Ends in `*`: the rest of the path is the route's.
    wildcard: bool,
    pub target: Target,
}

/// A request's route, with what its pattern took from the path.
pub struct Matched<'a> {
    pub route: &'a Route,
    /// `:name` segments, percent-decoded.
    pub params: Map,
    /// How many of the path's segments the pattern took: the rest is
    /// what `*` covered ([`Matched::rest`]).
    taken: usize,
}

impl Matched<'_> {
    /// What `*` covered in `path` (no leading `/`), still percent-encoded,
    /// as the request sent it; `""` for a route without `*`. Made only
    /// for a route that needs it (a folder's), not for every request.
    pub fn rest(&self, path: &str) -> String {
        split(path)
            .get(self.taken..)
            .map(|rest| rest.join("/"))
            .unwrap_or_default()
    }
}

/// What the path of a request found.
pub enum Lookup<'a> {
    Found(Matched<'a>),
    /// Routes match the path but none takes this method: these do.
    WrongMethod(Vec<String>),
    NotFound,
}

/// The routes of a server, in the order they were given.
#[derive(Clone, Default)]
pub struct Routes(Arc<Vec<Route>>);

impl Routes {
    /// One closure answering every request (`http_serve(addr, |req| …)`).
    pub fn single(target: Target) -> Routes {
        Routes(Arc::new(vec![Route {
            key: "/*".into(),
            method: None,
            segments: Vec::new(),
            wildcard: true,
            target,
        }]))
    }

    /// The routes of a map `#{"GET /x": |req| …, …}`, every key and value
    /// checked.
    pub fn from_map(ctx: &NativeCallContext, map: &Map, options: &Options) -> Result<Routes> {
        if map.is_empty() {
            return Err(Error::invalid(
                "the map of routes is empty: give at least one, like #{\"GET /\": |req| \"hello\"}",
            ));
        }
        let mut routes = Vec::with_capacity(map.len());
        for (key, value) in map {
            let (method, segments, wildcard) = parse_key(key)?;
            let target = target_of(ctx, key, value, options)?;
            routes.push(Route {
                key: key.to_string(),
                method,
                segments,
                wildcard,
                target,
            });
        }
        Ok(Routes(Arc::new(routes)))
    }

    /// The route for `method` and `path` (the path as sent, before `?`).
    pub fn find(&self, method: &str, path: &str) -> Lookup<'_> {
        // One closure for everything (`http_serve(addr, |req| …)`): no
        // matching to do.
        if let [route] = self.0.as_slice()
            && route.wildcard
            && route.segments.is_empty()
            && route.method.is_none()
        {
            return Lookup::Found(Matched {
                route,
                params: Map::new(),
                taken: 0,
            });
        }
        let parts: Vec<&str> = split(path);
        let mut best: Option<(Rank, Matched<'_>)> = None;
        let mut allowed = Vec::new();
        for route in self.0.iter() {
            let Some(params) = route.matches(&parts) else {
                continue;
            };
            let method_ok = match &route.method {
                None => true,
                Some(m) => m == method || (m == "GET" && method == "HEAD"),
            };
            if !method_ok {
                if let Some(m) = &route.method {
                    allowed.push(m.clone());
                }
                continue;
            }
            let rank = route.rank();
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((
                    rank,
                    Matched {
                        route,
                        params,
                        taken: route.segments.len(),
                    },
                ));
            }
        }
        match best {
            Some((_, matched)) => Lookup::Found(matched),
            None if !allowed.is_empty() => {
                if allowed.iter().any(|m| m == "GET") {
                    allowed.push("HEAD".into());
                }
                allowed.sort();
                allowed.dedup();
                Lookup::WrongMethod(allowed)
            }
            None => Lookup::NotFound,
        }
    }
}

/// How specific a route is: bigger wins.
type Rank = (bool, usize, bool);

impl Route {
    fn rank(&self) -> Rank {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, literals, self.method.is_some())
    }

    /// The params when `parts` (a path's segments) fit the pattern.
    fn matches(&self, parts: &[&str]) -> Option<Map> {
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Map::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(text) => {
                    if decode(part) != *text {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    if part.is_empty() {
                        return None;
                    }
                    params.insert(name.as_str().into(), decode(part).into());
                }
            }
        }
        Some(params)
    }
}

/// The segments of a path: `/a/b/` → `["a", "b", ""]`, `/` → `[]`.
fn split(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// A path segment percent-decoded (invalid UTF-8 replaced).
fn decode(part: &str) -> String {
    percent_decode_str(part).decode_utf8_lossy().into_owned()
}

/// The error for a key that does not read as a route.
fn bad_key(key: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "route \"{key}\": {why}; a route looks like \"GET /items/:id\", \"/static/*\" or \"/\""
    ))
}

/// Reads a route key: `[METHOD ]/path/:param/*`.
fn parse_key(key: &str) -> Result<(Option<String>, Vec<Segment>, bool)> {
    let (method, pattern) = match key.split_once(' ') {
        Some((method, pattern)) => {
            if !METHODS.contains(&method) {
                return Err(bad_key(
                    key,
                    format!("'{method}' is not a method (known: {})", METHODS.join(", ")),
                ));
            }
            (Some(method.to_string()), pattern)
        }
        None => (None, key),
    };
    if !pattern.starts_with('/') {
        return Err(bad_key(key, "the path must start with '/'"));
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad_key(
            key,
            "the path holds a space or a control character",
        ));
    }
    if pattern.contains('?') || pattern.contains('#') {
        return Err(bad_key(
            key,
            "a route matches the path only, without '?' or '#'",
        ));
    }
    let parts = split(pattern);
    let mut segments = Vec::with_capacity(parts.len());
    let mut wildcard = false;
    for (i, part) in parts.iter().enumerate() {
        if *part == "*" {
            if i + 1 != parts.len() {
                return Err(bad_key(key, "'*' may only end the path"));
            }
            wildcard = true;
        } else if let Some(name) = part.strip_prefix(':') {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(bad_key(
                    key,
                    format!("':{name}' is not a parameter name (letters, digits, _)"),
                ));
            }
            if segments.contains(&Segment::Param(name.to_string())) {
                return Err(bad_key(key, format!("':{name}' appears twice")));
            }
            segments.push(Segment::Param(name.to_string()));
        } else if part.contains('*') {
            return Err(bad_key(key, "'*' must be a whole segment, at the end"));
        } else {
            segments.push(Segment::Literal(decode(part)));
        }
    }
    Ok((method, segments, wildcard))
}

/// What a route's value asks for.
fn target_of(
    ctx: &NativeCallContext,
    key: &str,
    value: &Dynamic,
    options: &Options,
) -> Result<Target> {
    if let Some(f) = value.clone().try_cast::<FnPtr>() {
        let role = format!("the handler of route \"{key}\"");
        return Callback::new(ctx, f, &role, &["req"]).map(Target::Closure);
    }
    if let Some(dir) = value.read_lock::<rhai::ImmutableString>() {
        return super::files::Folder::new(&dir, options)
            .map(|folder| Target::Folder(Arc::new(folder)))
            .map_err(|e| Error::invalid(format!("route \"{key}\": {e}")));
    }
    if let Some(map) = value.read_lock::<Map>() {
        if crate::net::ws::server::is_websocket_route(&map) {
            let route = crate::net::ws::ServerRoute::from_map(ctx, key, &map)?;
            return Ok(Target::WebSocket(Arc::new(route)));
        }
        return Err(Error::invalid(format!(
            "route \"{key}\": a map route is a WebSocket: #{{websocket: |ws| …}} or #{{on_message: |ws, m| …}}"
        )));
    }
    let why = crate::error::wrong_type("a closure like |req| { … }", value);
    Err(Error::invalid(format!("route \"{key}\": {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Result<(Option<String>, Vec<Segment>, bool)> {
        parse_key(k)
    }

    #[test]
    fn keys_that_read() {
        let (m, s, w) = key("GET /items/:id").unwrap();
        assert_eq!(m.as_deref(), Some("GET"));
        assert_eq!(
            s,
            vec![
                Segment::Literal("items".into()),
                Segment::Param("id".into())
            ]
        );
        assert!(!w);
        let (m, s, w) = key("/static/*").unwrap();
        assert_eq!(m, None);
        assert_eq!(s, vec![Segment::Literal("static".into())]);
        assert!(w);
        assert_eq!(key("/").unwrap().1, vec![]);
    }

    #[test]
    fn keys_that_do_not_read_quote_the_key() {
        for bad in [
            "GETT /x",
            "x",
            "GET x",
            "get /x",
            "/a/*/b",
            "/a/:",
            "/a/:1x",
            "/a/:id/:id",
            "/a?b=1",
            "GET  /x",
            "/a b",
            "/x*",
        ] {
            let err = key(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was taken"))
                .to_string();
            assert!(err.contains(&format!("route \"{bad}\"")), "{err}");
        }
    }

    fn route(k: &str) -> Route {
        let (method, segments, wildcard) = parse_key(k).unwrap();
        Route {
            key: k.into(),
            method,
            segments,
            wildcard,
            target: Target::Closure(Callback::native_for_tests()),
        }
    }

    fn routes(keys: &[&str]) -> Routes {
        Routes(Arc::new(keys.iter().map(|k| route(k)).collect()))
    }

    fn found(r: &Routes, method: &str, path: &str) -> Option<(String, Map, String)> {
        match r.find(method, path) {
            Lookup::Found(m) => {
                let rest = m.rest(path);
                Some((m.route.key.clone(), m.params, rest))
            }
            _ => None,
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let r = routes(&[
            "/*",
            "GET /items/:id",
            "GET /items/new",
            "/static/*",
            "POST /items",
        ]);
        assert_eq!(found(&r, "GET", "/items/new").unwrap().0, "GET /items/new");
        let (k, params, _) = found(&r, "GET", "/items/a%20b").unwrap();
        assert_eq!(k, "GET /items/:id");
        assert_eq!(params["id"].clone().into_string().unwrap(), "a b");
        let (k, _, rest) = found(&r, "GET", "/static/css/a.css").unwrap();
        assert_eq!((k.as_str(), rest.as_str()), ("/static/*", "css/a.css"));
        assert_eq!(found(&r, "DELETE", "/items").unwrap().0, "/*");
        assert_eq!(found(&r, "HEAD", "/items/7").unwrap().0, "GET /items/:id");
    }

    #[test]
    fn a_known_path_with_another_method_is_405() {
        let r = routes(&["GET /items/:id", "POST /items"]);
        match r.find("DELETE", "/items/3") {
            Lookup::WrongMethod(allowed) => assert_eq!(allowed, vec!["GET", "HEAD"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(r.find("GET", "/nothing"), Lookup::NotFound));
        assert!(matches!(r.find("GET", "/items/"), Lookup::NotFound));
    }
}
