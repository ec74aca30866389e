//! Printing values for people: strings as they are, maps and arrays laid
//! out readably, blobs as a hex preview, captured packets as a table, and
//! netsh's own types through their `to_debug` function. What goes to a
//! terminal has its control characters escaped ([`for_terminal`]): a value
//! is often a peer's bytes, and a peer must not drive the terminal.

use rhai::{Array, Blob, Dynamic, Engine, Map, Scope};

use crate::net::capture;

/// Wider than this and a map or array is printed one item per line.
const WIDTH: usize = 78;
/// Deeper than this, nested values print as `…` (and cannot overflow the stack).
const MAX_DEPTH: usize = 32;

/// The REPL's and `-e`'s rendering of a result.
/// A string prints as it is, except the empty string, which prints as
/// `""` so it is not mistaken for `()` (which prints nothing).
pub fn pretty(engine: &Engine, value: &Dynamic) -> String {
    if value.is_string() {
        let text = value.to_string();
        return if text.is_empty() { "\"\"".into() } else { text };
    }
    render(engine, value, 0)
}

/// [`pretty`], made safe for a terminal: control characters (a server's
/// `\x1b]0;title\x07` or `\x1b[2J`) shown as `\x1b`, as `interact()` shows
/// them; newlines and tabs kept, so multi-line text stays readable. A
/// carriage return not followed by a newline is shown as `\r` as well: a
/// whole value has no progress line to redraw, and a lone one would let the
/// text after it hide the text before. The REPL prints every value this
/// way; `print()` stays raw (the script's choice), and so does `-e` into a
/// pipe (the bytes are the point there).
pub fn for_terminal(engine: &Engine, value: &Dynamic) -> String {
    crate::console::terminal_text(&pretty(engine, value))
}

/// A value printed on stdout, as `-e` and `show()` print it: exactly into a
/// pipe or file (`netsh -e 'fetch(u).body' > page.html` must keep every
/// byte, as `curl` does), and as [`for_terminal`] on a terminal, where a
/// peer's bytes must not drive it.
pub fn for_stdout(engine: &Engine, value: &Dynamic) -> String {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        for_terminal(engine, value)
    } else {
        pretty(engine, value)
    }
}

/// A value as it would be written in a script: strings quoted. For
/// messages that show a value, like `expect_eq`'s.
pub fn literal(engine: &Engine, value: &Dynamic) -> String {
    render(engine, value, 0)
}

fn render(engine: &Engine, value: &Dynamic, indent: usize) -> String {
    if indent / 4 > MAX_DEPTH {
        return "…".to_string();
    }
    if value.is_string() {
        return format!("{:?}", value.to_string());
    }
    if let Some(array) = value.read_lock::<Array>() {
        if let Some(table) = packet_table(&array, indent) {
            return table;
        }
        if indent == 0
            && let Some(text) = crate::net::locate::hops_text(&array)
        {
            return text;
        }
        let items: Vec<String> = array
            .iter()
            .map(|v| render(engine, v, indent + 4))
            .collect();
        return layout("[", "]", &items, indent);
    }
    if let Some(map) = value.read_lock::<Map>() {
        if let Some(line) = capture::packet_line(&map) {
            return line;
        }
        if indent == 0
            && let Some(text) = crate::net::locate::dns_answer_text(&map)
        {
            return text;
        }
        let items: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{}: {}", key(k), render(engine, v, indent + 4)))
            .collect();
        return layout("#{", "}", &items, indent);
    }
    if let Some(blob) = value.read_lock::<Blob>() {
        return blob_preview(&blob);
    }
    if value.is_unit() {
        return "()".to_string();
    }
    if value.is_variant() {
        return custom(engine, value);
    }
    value.to_string()
}

/// Captured packets (maps of a packet's shape) print as a table, one
/// packet a row, under a header.
fn packet_table(array: &Array, indent: usize) -> Option<String> {
    let table = capture::packet_table(array)?;
    if indent == 0 {
        return Some(table);
    }
    let pad = " ".repeat(indent + 4);
    let rows: Vec<String> = table.lines().map(|l| format!("{pad}{l}")).collect();
    Some(format!("[\n{}\n{}]", rows.join("\n"), " ".repeat(indent)))
}

/// A map key, quoted only when it is not a plain identifier.
fn key(k: &str) -> String {
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn layout(open: &str, close: &str, items: &[String], indent: usize) -> String {
    if items.is_empty() {
        return format!("{open}{close}");
    }
    let flat = format!("{open}{}{close}", items.join(", "));
    if flat.len() + indent <= WIDTH && !flat.contains('\n') {
        return flat;
    }
    let pad = " ".repeat(indent + 4);
    let mut out = format!("{open}\n");
    for item in items {
        out.push_str(&format!("{pad}{item},\n"));
    }
    out.push_str(&" ".repeat(indent));
    out.push_str(close);
    out
}

fn blob_preview(blob: &[u8]) -> String {
    const SHOWN: usize = 32;
    let hex: Vec<String> = blob
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    let more = if blob.len() > SHOWN { " …" } else { "" };
    format!("blob({} bytes: {}{more})", blob.len(), hex.join(" "))
}

/// Custom types print through their registered `to_debug`, so each type
/// decides how it looks (`Conn(127.0.0.1:50000 → 127.0.0.1:9000)`).
fn custom(engine: &Engine, value: &Dynamic) -> String {
    let mut scope = Scope::new();
    scope.push("value", value.clone());
    engine
        .eval_expression_with_scope::<String>(&mut scope, "to_debug(value)")
        .unwrap_or_else(|_| engine.map_type_name(value.type_name()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_maps_stay_on_one_line_and_long_ones_do_not() {
        let engine = Engine::new_raw();
        let short: Dynamic = engine.eval::<Dynamic>("#{a: 1, b: \"x\"}").unwrap();
        assert_eq!(pretty(&engine, &short), "#{a: 1, b: \"x\"}");
        let long: Dynamic = engine
            .eval::<Dynamic>("#{first: \"aaaaaaaaaaaaaaaaaaaa\", second: \"bbbbbbbbbbbbbbbbbbbb\", third: [1, 2, 3]}")
            .unwrap();
        let text = pretty(&engine, &long);
        assert!(text.starts_with("#{\n    first: "), "{text}");
        assert!(text.ends_with("\n}"), "{text}");
    }

    #[test]
    fn deep_nesting_is_cut_short() {
        let engine = Engine::new();
        let deep: Dynamic = engine
            .eval::<Dynamic>("let a = []; for i in 0..5000 { a = [a] } a")
            .unwrap();
        assert!(pretty(&engine, &deep).contains('…'));
    }

    #[test]
    fn packets_print_as_a_table_even_inside_a_map() {
        let engine = Engine::new_raw();
        let packet = capture::Packet {
            time_us: 41,
            src: "127.0.0.1:50000".parse().unwrap(),
            dst: "127.0.0.1:9000".parse().unwrap(),
            tcp: None,
            len: 5,
        }
        .to_map();
        assert_eq!(
            pretty(&engine, &packet.clone().into()),
            "+0.000041 127.0.0.1:50000 → 127.0.0.1:9000 UDP len 5"
        );
        // A map of another shape is a map.
        let mut other = packet.clone();
        other.insert("note".into(), "mine".into());
        assert!(pretty(&engine, &other.into()).starts_with("#{"));
        let packets: Array = vec![packet.clone().into(), packet.into()];
        let top = pretty(&engine, &packets.clone().into());
        assert!(top.starts_with("time "), "{top}");
        assert_eq!(top.lines().count(), 3, "{top}");
        let mut map = Map::new();
        map.insert("packets".into(), packets.into());
        let nested = pretty(&engine, &map.into());
        assert!(nested.contains("packets: [\n        time "), "{nested}");
        assert!(
            nested.contains("\n        +0.000041  127.0.0.1:50000"),
            "{nested}"
        );
    }

    /// Escape sequences in a string or in a type's own rendering reach the
    /// terminal escaped; newlines stay.
    #[test]
    fn terminal_rendering_escapes_control_characters() {
        let engine = Engine::new_raw();
        let hostile = Dynamic::from("a\x1b]0;pwned\x07\nb\x1b[2J");
        assert_eq!(
            for_terminal(&engine, &hostile),
            "a\\x1b]0;pwned\\x07\nb\\x1b[2J"
        );
        assert_eq!(pretty(&engine, &hostile), "a\x1b]0;pwned\x07\nb\x1b[2J");
    }

    /// A lone carriage return cannot hide what came before it; CRLF stays.
    #[test]
    fn terminal_rendering_shows_a_lone_carriage_return() {
        let engine = Engine::new_raw();
        let hostile = Dynamic::from("rm -rf /\rls\r\nok\r");
        assert_eq!(for_terminal(&engine, &hostile), "rm -rf /\\rls\r\nok\\r");
    }

    #[test]
    fn strings_print_plainly_at_the_top_and_quoted_inside() {
        let engine = Engine::new_raw();
        assert_eq!(pretty(&engine, &Dynamic::from("hi \"x\"")), "hi \"x\"");
        let arr: Dynamic = engine.eval::<Dynamic>("[\"a\", 1]").unwrap();
        assert_eq!(pretty(&engine, &arr), "[\"a\", 1]");
    }
}
