//! How the REPL shows a `dns()` answer: like `dig +noall +answer`, one
//! record a line, then the status and the server underneath. The value
//! stays a map for scripts; only its printing changes, recognised by its
//! shape as captured packets are.

use rhai::{Array, Map};

/// The keys only a `dns()` answer has all of.
const SHAPE: &[&str] = &[
    "answers",
    "authority",
    "additional",
    "rcode",
    "flags",
    "server",
    "ms",
];

/// The dig-like text of a map of a DNS answer's shape, else `None`.
pub fn answer_text(m: &Map) -> Option<String> {
    if !SHAPE.iter().all(|k| m.contains_key(*k)) {
        return None;
    }
    let answers = m.get("answers")?.read_lock::<Array>()?.clone();
    let mut out = String::new();
    for record in &answers {
        let r = record.read_lock::<Map>()?;
        let field = |k: &str| r.get(k).map(|v| v.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "{}\t{}\tIN\t{}\t{}\n",
            field("name"),
            field("ttl"),
            field("type"),
            field("data")
        ));
    }
    let text = |k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
    let ms = m.get("ms").and_then(|v| v.as_float().ok()).unwrap_or(0.0);
    let flags = m
        .get("flags")
        .and_then(|f| {
            f.read_lock::<Map>().map(|f| {
                // dig's order, not the map's alphabetical one.
                ["aa", "tc", "rd", "ra", "ad", "cd"]
                    .into_iter()
                    .filter(|k| f.get(*k).and_then(|v| v.as_bool().ok()) == Some(true))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .unwrap_or_default();
    out.push_str(&format!(
        ";; status: {}, flags: {}, server: {} ({}), {:.1} ms",
        text("rcode"),
        flags,
        text("server"),
        text("transport"),
        ms
    ));
    Some(out)
}
