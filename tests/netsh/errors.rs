//! Errors as data (issue 11): a caught error has `e.kind`, `e.op` and
//! `e.message`, while its printed form stays the `op: cause` text. Each
//! kind that can be provoked on loopback is provoked here.

use std::{
    io::{Read, Write},
    net::TcpListener,
};

use crate::support::{self, Netsh};

/// Runs `code` with `PORT` standing for a port nobody listens on, catches
/// its error and returns `kind|op|message|printed`.
fn caught(code: &str) -> Vec<String> {
    let code = code.replace("PORT", &support::closed_port().to_string());
    let out = Netsh::eval(&format!(
        r#"let out = "no error"; try {{ {code}; }} catch (e) {{ out = `${{e.kind}}|${{e.op}}|${{e.message}}|${{e}}` }} out"#
    ));
    let parts: Vec<String> = out.splitn(4, '|').map(String::from).collect();
    assert_eq!(parts.len(), 4, "{code}\n  gave: {out}");
    parts
}

/// Each kind provokable on loopback, from the function that raises it.
#[test]
fn each_kind_from_a_real_failure() {
    let cases = [
        ("refused", "connect", r#"connect("127.0.0.1:PORT")"#),
        ("timeout", "accept", r#"listen("127.0.0.1:0").accept(50)"#),
        ("not_found", "resolve", r#"resolve("nohost.invalid")"#),
        ("not_found", "read_file", r#"read_file("/no/such/file")"#),
        ("invalid", "listen", "listen(70000)"),
        ("invalid", "connect", r#"connect("127.1:80")"#),
        (
            "closed",
            "accept",
            r#"let l = listen("127.0.0.1:0"); l.close(); l.accept()"#,
        ),
        (
            "exists",
            "listen",
            r#"let a = listen("127.0.0.1:0"); listen(a.addr)"#,
        ),
        (
            "too_big",
            "udp_send",
            r#"udp_send("127.0.0.1:PORT", blob(70000))"#,
        ),
        ("io", "read_blob", r#"read_blob("/proc/self/mem")"#),
    ];
    let mut wrong = Vec::new();
    for (kind, op, code) in cases {
        let got = caught(code);
        let printed = format!("{}: {}", got[1], got[2]);
        if got[0] != kind || got[1] != op || got[3] != printed {
            wrong.push(format!(
                "{code}\n  expected kind {kind}, op {op}; got {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A peer that resets the connection gives `reset`; bytes that are not
/// text give `protocol`.
#[test]
fn reset_and_protocol_from_a_real_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Each connection of the script says which it is with its first byte,
    // so a stranger's connection to this port (anything that probes
    // loopback ports) is dropped rather than taken for the script's.
    let ours = move |listener: &TcpListener, mark: u8| loop {
        let mut stream = support::accept_within(listener, std::time::Duration::from_secs(10));
        let mut first = [0u8; 1];
        if stream.read_exact(&mut first).is_ok() && first[0] == mark {
            return stream;
        }
    };
    let peer = std::thread::spawn(move || {
        // First connection: binary bytes. Second: reset (linger 0 on close).
        let mut binary = ours(&listener, b'1');
        binary.write_all(&[0xff, 0xfe, 0xfd]).unwrap();
        let mut sink = [0u8; 1];
        let _ = binary.read(&mut sink);
        // Reset only once the client has sent a byte: it is connected by then.
        let reset = ours(&listener, b'x');
        socket2::SockRef::from(&reset)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(reset);
    });
    let out = Netsh::eval(&format!(
        r#"
        let kinds = [];
        let c = connect("127.0.0.1:{port}");
        c.send("1");
        try {{ c.recv(10000) }} catch (e) {{ kinds.push(e.kind) }}
        c.close();
        let r = connect("127.0.0.1:{port}");
        r.send("x");
        try {{ r.recv(10000) }} catch (e) {{ kinds.push(e.kind) }}
        kinds
        "#
    ));
    peer.join().unwrap();
    assert_eq!(out, r#"["protocol", "reset"]"#);
}

/// A refused upload takes the kind of the receiver's reason.
#[test]
fn upload_refusals_carry_the_reason_as_the_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.txt");
    std::fs::write(&file, "data").unwrap();
    let inbox = tmp.path().join("in");
    let out = Netsh::eval(&format!(
        r#"
        let kinds = [];
        let s = serve_files("127.0.0.1:0", "{inbox}", #{{max_size: 2}});
        try {{ send_file(`127.0.0.1:${{s.port}}`, "{file}") }} catch (e) {{ kinds.push(e.kind) }}
        let t = serve_files("127.0.0.1:0", "{inbox}", #{{allow: ["10.0.0.0/8"]}});
        try {{ send_file(`127.0.0.1:${{t.port}}`, "{file}") }} catch (e) {{ kinds.push(e.kind) }}
        let u = serve_files("127.0.0.1:0", "{inbox}");
        send_file(`127.0.0.1:${{u.port}}`, "{file}");
        try {{ send_file(`127.0.0.1:${{u.port}}`, "{file}") }} catch (e) {{ kinds.push(e.kind) }}
        kinds
        "#,
        inbox = inbox.display(),
        file = file.display()
    ));
    assert_eq!(out, r#"["too_big", "permission", "exists"]"#);
}

/// A progress closure that calls a function that does not exist fails the
/// upload with kind `invalid`: Rhai's own errors get a kind on their way
/// through netsh.
#[test]
fn a_rhai_error_inside_a_callback_gets_a_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.txt");
    std::fs::write(&file, "data").unwrap();
    let out = Netsh::eval(&format!(
        r#"
        let s = serve_files("127.0.0.1:0", "{inbox}");
        let out = "no error";
        try {{ send_file(`127.0.0.1:${{s.port}}`, "{file}", #{{progress: |p| no_such_function(p)}}) }}
        catch (e) {{ out = `${{e.kind}}: ${{e.message}}` }}
        out
        "#,
        inbox = tmp.path().join("in").display(),
        file = file.display()
    ));
    assert!(
        out.starts_with("invalid: ") && out.contains("no function no_such_function"),
        "{out}"
    );
}

/// An uncaught error still prints `FILE:LINE:COL: op: cause`, and a caught
/// one rethrown with `throw e` prints the same.
#[test]
fn uncaught_and_rethrown_errors_print_as_before() {
    assert_eq!(
        Netsh::eval_err("listen(70000)"),
        "-e:1:1: listen: port 70000 is out of range (0–65535)"
    );
    assert_eq!(
        Netsh::eval_err("try { listen(70000) } catch (e) { throw e }"),
        "-e:1:35: listen: port 70000 is out of range (0–65535)"
    );
    assert_eq!(
        Netsh::eval(r#"let t = ""; try { listen(70000) } catch (e) { t = "" + e } t"#),
        "listen: port 70000 is out of range (0–65535)"
    );
}

/// `help("errors")` lists every kind.
#[test]
fn help_lists_the_kinds() {
    let out = Netsh::eval(r#"help("errors")"#);
    for kind in [
        "refused",
        "timeout",
        "not_found",
        "invalid",
        "closed",
        "reset",
        "exists",
        "too_big",
        "permission",
        "interrupted",
        "protocol",
        "io",
    ] {
        assert!(
            out.contains(&format!("\n  {kind} ")),
            "{kind} missing:\n{out}"
        );
    }
}

/// A caught error still answers what its text would: `==` and `!=` with a
/// string in both orders, the string methods, `in`; `to_json` writes it as
/// `{op, kind, message}`; `switch` works on its text.
#[test]
fn caught_errors_still_behave_like_their_text() {
    let out = Netsh::eval(
        r#"
        let text = "listen: port 70000 is out of range (0–65535)";
        let out = [];
        try { listen(70000) } catch (e) {
            out.push(e == text); out.push(text == e);
            out.push(e != "x"); out.push("x" != e); out.push(e != text);
            out.push(e.contains("range")); out.push("range" in e); out.push(e.contains('('));
            out.push(e.starts_with("listen:")); out.push(e.ends_with("65535)"));
            out.push(e.index_of("70000")); out.push(e.index_of("0", 20));
            out.push(e.split(": ")[1]); out.push(e.split().len()); out.push(e.split(" ", 2).len());
            out.push(e.sub_string(0, 6)); out.push(e.sub_string(41));
            out.push(e.to_upper().sub_string(0, 6)); out.push(e.to_lower() == text);
            out.push(e.len == text.len()); out.push(e.len() == text.len()); out.push(e.is_empty());
            out.push(to_json(#{err: e})); out.push(to_json(e));
            out.push(switch "" + e { "listen: port 70000 is out of range (0–65535)" => "switched", _ => "missed" });
        }
        for o in out { print(o) }
        "#,
    );
    let json =
        r#"{"kind":"invalid","message":"port 70000 is out of range (0–65535)","op":"listen"}"#;
    let expected = [
        "true",
        "true",
        "true",
        "true",
        "false",
        "true",
        "true",
        "true",
        "true",
        "true",
        "13",
        "36",
        "port 70000 is out of range (0–65535)",
        "8",
        "2",
        "listen",
        "35)",
        "LISTEN",
        "true",
        "true",
        "true",
        "false",
    ]
    .map(String::from)
    .into_iter()
    .chain([
        format!(r#"{{"err":{json}}}"#),
        json.to_string(),
        "switched".into(),
    ])
    .collect::<Vec<_>>();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

/// The README idiom `if e.kind == … { … } else { throw e }` works whatever
/// the try body threw: a netsh error, a plain string (kind "invalid"), or
/// one of Rhai's own errors, which is rethrown with its own words.
#[test]
fn the_kind_idiom_works_for_every_thrown_value() {
    let idiom = |body: &str| {
        format!(
            r#"try {{ {body} }} catch (e) {{ if e.kind == "refused" {{ print("refused") }} else {{ throw e }} }}"#
        )
    };
    let port = support::closed_port();
    assert_eq!(
        Netsh::eval(&idiom(&format!(r#"connect("127.0.0.1:{port}")"#))),
        "refused"
    );
    // Rethrown, each prints `-e:1:COL: ` and its own words.
    let rethrown = [
        (r#"throw "no config""#, "no config"),
        (
            "no_such_function(1)",
            "no function no_such_function(int) (help() lists what exists)",
        ),
    ];
    for (body, words) in rethrown {
        let err = Netsh::eval_err(&idiom(body));
        let (place, said) = err.split_once(": ").unwrap_or_default();
        assert!(place.starts_with("-e:1:") && said == words, "{body}: {err}");
    }
    assert_eq!(
        Netsh::eval(
            r#"let k = []; try { throw "x" } catch (e) { k = [e.kind, e.op, e.message] } k"#
        ),
        r#"["invalid", "", "x"]"#
    );
}

/// A server closure's failure, reported while a script runs, goes to
/// stderr: the script's stdout keeps only what it printed.
#[test]
fn a_serve_closure_error_goes_to_stderr() {
    let run = Netsh::new()
        .args([
            "-e",
            r#"let s = serve("127.0.0.1:0", |c| throw "boom in the closure");
               let c = connect(`127.0.0.1:${s.port}`);
               c.recv();
               sleep(500);
               print("done");"#,
        ])
        .ok();
    assert_eq!(run.stdout(), "done", "{}", run.explain());
    assert!(
        run.stderr().contains("boom in the closure"),
        "{}",
        run.explain()
    );
}
