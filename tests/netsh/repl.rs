//! The REPL driven in a real pseudo-terminal: state that persists across
//! lines, multi-line input, Tab completion, hints, Ctrl-C and Ctrl-D.
//!
//! rustyline drops input typed ahead of the prompt (its issue #690), so each
//! step waits for output before typing the next line.

use std::time::Duration;

use expectrl::{Eof, Expect};

use crate::support::{Pty, Terminal, enter, enter_value, expect_value, repl, shown};

/// Variables and functions persist from line to line.
#[test]
fn state_persists_between_lines() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line("let x = 40;").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send_line("fn add2(v) { v + 2 }").unwrap();
    pty.expect("netsh> ").unwrap();
    enter_value(&mut pty, "add2(x)", "42");
    enter_value(&mut pty, "let c = |a| a * x; c.call(3)", "120");
    enter_value(&mut pty, "c.call(1) + add2(0)", "42");
}

/// An open brace, bracket or string continues on the next line, behind a
/// `...>` prompt; Ctrl-C there drops the unfinished input.
#[test]
fn unfinished_input_continues() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line("fn triple(a) {").unwrap();
    pty.expect("...> ").unwrap();
    pty.send_line("  a * 3").unwrap();
    pty.expect("...> ").unwrap();
    pty.send_line("}; triple(111)").unwrap();
    expect_value(&mut pty, "333");
    pty.expect("netsh> ").unwrap();
    enter_value(&mut pty, "triple(1000)", "3000");
    pty.send_line("let arr = [1,").unwrap();
    pty.expect("...> ").unwrap();
    pty.send_line("2]; arr.len() * 1000 + 7").unwrap();
    expect_value(&mut pty, "2007");
    pty.expect("netsh> ").unwrap();
    pty.send_line("let s = \"open").unwrap();
    pty.expect("...> ").unwrap();
    pty.send("\x03").unwrap();
    pty.expect("netsh> ").unwrap();
    enter(&mut pty, "\"after\" + \" ctrl-c\"", "after ctrl-c");
}

/// `exit(n)` leaves the REPL with status n, also from a closure `map`
/// calls; `exit` in a task, which cannot end anything, fails the task and
/// the REPL goes on.
#[test]
fn exit_leaves_with_its_status() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    enter(
        &mut pty,
        "task(|| exit(9)).join()",
        "1:9: exit: cannot end the script from a task",
    );
    enter_value(&mut pty, "\"\"", "\"\"");
    pty.send_line("try { [1].map(|x| exit(7)) } catch { print(\"caught\") }")
        .unwrap();
    let rest = pty.expect(Eof).unwrap();
    let rest = String::from_utf8_lossy(rest.get(0).unwrap_or_default()).into_owned();
    assert!(!rest.contains("\ncaught"), "the catch block ran: {rest:?}");
    let status = format!("{:?}", pty.get_process_mut().wait().unwrap());
    assert!(status.ends_with(", 7)"), "{status}");
}

/// serve_files announces itself at the prompt, as serve does.
#[test]
fn serve_files_announces_itself() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line("let f = serve_files(\"127.0.0.1:0\", \"inbox\");")
        .unwrap();
    pty.expect(expectrl::Regex(
        r"serve_files \d+: listening on 127\.0\.0\.1:\d+, saving into \S*inbox",
    ))
    .unwrap();
}

/// Tab completes a function name, and a help topic inside help("…").
#[test]
fn tab_completes_functions_and_help_topics() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send("port_inf").unwrap();
    pty.send("\t").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pty.send_line("(443).tcp").unwrap();
    pty.expect("https").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send("help(\"ip_in").unwrap();
    pty.send("\t").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pty.send_line("").unwrap();
    pty.expect("What kind of address an IP is").unwrap();
}

/// Ctrl-C stops a running loop and a blocking sleep; the scope survives.
#[test]
fn ctrl_c_interrupts_and_keeps_the_scope() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line("let kept = 1234;").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send_line("loop { }").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    pty.send("\x03").unwrap();
    pty.expect("interrupted").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send_line("sleep(60000)").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    pty.send("\x03").unwrap();
    pty.expect("sleep: interrupted").unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    pty.expect("netsh> ").unwrap();
    enter_value(&mut pty, "kept + 1", "1235");
}

/// Ctrl-C at an empty prompt does not exit; errors do not end the session.
#[test]
fn errors_and_ctrl_c_at_the_prompt_keep_the_session() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send("\x03").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    enter(&mut pty, "port_info(70000)", "port 70000 is out of range");
    enter(&mut pty, "let = ;", "error:");
    enter_value(&mut pty, "6 * 7", "42");
}

/// Ctrl-D exits cleanly, and history lands in the data dir, not the cwd.
#[test]
fn ctrl_d_exits_and_history_is_kept() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    enter(&mut pty, "\"remember\" + \" me\"", "remember me");
    pty.send("\x04").unwrap();
    pty.expect(Eof).unwrap();
    let status = format!("{:?}", pty.get_process_mut().wait().unwrap());
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 0)"),
        "{status}"
    );
    let history = std::fs::read_to_string(home.path().join("data/netsh/history"))
        .expect("history file in the data dir");
    assert!(history.contains("\"remember\" + \" me\""), "{history}");
    let stray: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("history"))
        .collect();
    assert!(
        stray.is_empty(),
        "history written to the working directory: {stray:?}"
    );
}

/// `init.rhai` in the config dir runs at start, and its variables stay.
#[test]
fn init_script_runs_at_start() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config/netsh");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("init.rhai"),
        "let greeting = \"hello from init\";\nfn twice(x) { x * 2 }\n",
    )
    .unwrap();
    let mut pty = repl(home.path());
    enter(&mut pty, "greeting", "hello from init");
    enter_value(&mut pty, "twice(21)", "42");
}

/// After `name(` a hint shows the rest of the signature; Tab offers variables.
#[test]
fn hints_show_signatures_and_tab_knows_variables() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send("resolve(").unwrap();
    pty.expect("host: string) -> Array").unwrap();
    pty.send("\x03").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send_line("let very_long_variable_name = 31337;")
        .unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send("very_long_var").unwrap();
    pty.send("\t").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pty.send_line(" + 1").unwrap();
    expect_value(&mut pty, "31338");
}

/// Errors are red on a colour terminal, and plain when NO_COLOR is set.
#[test]
fn errors_are_red_unless_no_color() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = Terminal::new(home.path()).colour().repl();
    pty.send_line("port_info(-1)").unwrap();
    pty.expect("\x1b[31merror: port_info: port -1 is out of range")
        .unwrap();
    pty.expect("netsh> ").unwrap();
    let mut plain = repl(home.path());
    plain.send_line("port_info(-1)").unwrap();
    let seen = plain.expect("out of range (0–65535)").unwrap();
    let before = String::from_utf8_lossy(seen.before()).to_string();
    assert!(
        !before.contains("\x1b[31m"),
        "red despite NO_COLOR: {before:?}"
    );
}

/// Non-ASCII text typed at the prompt (hints and Tab run on it) is harmless.
#[test]
fn non_ascii_input_is_harmless() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send("\"→(").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    pty.send("\t").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    pty.send("\x03").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send("let «x» = 1").unwrap();
    pty.send("\t").unwrap();
    pty.send("\x03").unwrap();
    pty.expect("netsh> ").unwrap();
    enter_value(&mut pty, "\"naïve → ok\".len()", "10");
}

/// A failing init.rhai is reported with its path and line; the REPL still starts.
#[test]
fn failing_init_script_is_reported() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config/netsh");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("init.rhai"), "let ok = 1;\nresolve(42);\n").unwrap();
    let mut pty = Terminal::new(home.path()).spawn();
    pty.expect("init.rhai:2:1: resolve: wrong arguments")
        .unwrap();
    pty.expect("netsh> ").unwrap();
    enter_value(&mut pty, "ok + 41", "42");
}

/// A server started at the prompt announces each connection above the
/// prompt, and the session goes on working while it serves.
#[test]
fn serve_events_print_above_the_prompt() {
    use std::io::{BufRead, BufReader, Write};
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line(
        "let s = serve(\"127.0.0.1:0\", |c| { c.send_line(`hi ${c.recv_line()}`) }); s.port",
    )
    .unwrap();
    let found = pty.expect(expectrl::Regex(r"\r\n(\d+)\r\n")).unwrap();
    let port: u16 = String::from_utf8_lossy(found.get(1).unwrap())
        .parse()
        .unwrap();
    pty.expect("netsh> ").unwrap();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"there\n").unwrap();
    let mut reply = String::new();
    BufReader::new(&client).read_line(&mut reply).unwrap();
    assert_eq!(reply, "hi there\n");
    pty.expect("connected").unwrap();
    // The count on a line of its own: a bare "1" would also match the
    // "127.0.0.1" of the announcement above.
    pty.send_line("s.served").unwrap();
    pty.expect(expectrl::Regex(r"\r\n1\r\n")).unwrap();
    pty.expect("netsh> ").unwrap();
}

/// A task that fails while nobody joins it says so above the prompt, as a
/// shell reports a background job's exit; a task being joined reports its
/// failure through `join()` alone.
#[test]
fn a_failed_background_task_is_announced_unless_joined() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line("let t = task(|| { sleep(200); throw \"boom\" });")
        .unwrap();
    pty.expect("netsh> ").unwrap();
    pty.expect(expectrl::Regex(r"task #\d+ failed: [^\r\n]*boom"))
        .unwrap();
    pty.send_line(
        "let u = task(|| { sleep(300); throw \"bang\" }); try { u.join() } catch (e) { print(`caught: ${e}`) }",
    )
    .unwrap();
    let found = pty
        .expect(expectrl::Regex(r"caught: [^\r\n]*bang"))
        .unwrap();
    let before = String::from_utf8_lossy(found.before());
    assert!(!before.contains("failed: "), "announced as well: {before}");
    pty.expect("netsh> ").unwrap();
}

/// `sleep` with a float waits milliseconds too, and Ctrl-C ends it: the
/// REPL reports it was blocked at least 400 ms and well short of 30 s.
#[test]
fn ctrl_c_ends_a_float_sleep() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line(
        "let t0 = now(); try { sleep(30000.0) } catch (e) { print(e) }; print(`waited ${now() - t0 >= 400 && now() - t0 < 10000}`)",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    pty.send("\x03").unwrap();
    pty.expect("sleep: interrupted").unwrap();
    pty.expect("waited true").unwrap();
    pty.expect("netsh> ").unwrap();
}

/// Ctrl-C on `join()` ends the wait, not the task: it is still listed by
/// `jobs()`, and `stop_all()` stops it: once it returns, nothing is listed.
#[test]
fn ctrl_c_on_join_leaves_the_task_in_jobs() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    pty.send_line("task(|| loop {}).join()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    pty.send("\x03").unwrap();
    pty.expect("join: interrupted").unwrap();
    pty.expect("netsh> ").unwrap();
    enter(&mut pty, "jobs()", "(running)");
    enter_value(&mut pty, "stop_all()", "1");
    enter_value(&mut pty, "jobs().len()", "0");
}

/// Hundreds of clients do not bury the prompt: a server announces at most
/// about 20 events a second, then one line counts the rest; `quiet: true`
/// announces nothing.
#[test]
fn serve_announcements_are_rate_limited_and_can_be_quiet() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    let port_of = |pty: &mut Pty, code: &str| -> u16 {
        pty.send_line(code).unwrap();
        let found = pty.expect(expectrl::Regex(r"port=(\d+)")).unwrap();
        let port = String::from_utf8_lossy(found.get(1).unwrap())
            .parse()
            .unwrap();
        pty.expect("netsh> ").unwrap();
        port
    };
    let loud = port_of(
        &mut pty,
        r#"let s = serve("127.0.0.1:0", |c| c.send_line("hi")); print(`port=${s.port}`)"#,
    );
    for _ in 0..300 {
        let c = std::net::TcpStream::connect(("127.0.0.1", loud)).unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut &c, &mut reply).unwrap();
    }
    let prefix = format!("serve {loud}: ");
    let summary = pty.expect("more in the last second").unwrap();
    let mut events = String::from_utf8_lossy(summary.before())
        .matches(&prefix)
        .count();
    // What arrives within the next 2.5 s counts against the limit too.
    std::thread::sleep(Duration::from_millis(2500));
    pty.send_line("print(`served=${s.served}`)").unwrap();
    let seen = pty
        .expect("served=300")
        .unwrap_or_else(|e| panic!("no served=300 ({e}); the REPL showed {:?}", shown(&mut pty)));
    events += String::from_utf8_lossy(seen.before())
        .matches(&prefix)
        .count();
    assert!(events < 150, "{events} announcement lines for 600 events");
    pty.expect("netsh> ").unwrap();
    let quiet = port_of(
        &mut pty,
        r#"let q = serve("127.0.0.1:0", |c| c.send_line("hi"), #{quiet: true}); print(`port=${q.port}`)"#,
    );
    for _ in 0..20 {
        let c = std::net::TcpStream::connect(("127.0.0.1", quiet)).unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut &c, &mut reply).unwrap();
    }
    pty.send_line("print(`quiet=${q.served}`)").unwrap();
    let seen = pty.expect("quiet=20").unwrap();
    let text = String::from_utf8_lossy(seen.before());
    assert!(
        !text.contains(&format!("serve {quiet}: ")),
        "a quiet server announced: {text}"
    );
}

/// What a server sent (a string `recv` returned, a fetched body's
/// preview, an error's words) shows with its escape sequences escaped: a
/// peer cannot retitle the terminal (`\x1b]0;…\x07`) or clear it (`\x1b[2J`).
#[test]
fn values_from_a_peer_show_escaped() {
    use crate::support::peer_on;
    use std::io::{BufRead, BufReader, Write};
    const HOSTILE: &str = "a\x1b]0;pwned\x07b\x1b[2Jc";
    const SHOWN: &str = r"a\x1b]0;pwned\x07b\x1b[2Jc";
    let (addr, peer) = peer_on("127.0.0.1:0", |mut s| {
        s.write_all(HOSTILE.as_bytes()).unwrap();
        s
    });
    let (web, web_peer) = peer_on("127.0.0.1:0", |mut s| {
        let mut request = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while request.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            line.clear();
        }
        let body = format!("first line\n{HOSTILE}\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(format!("{head}{body}").as_bytes()).unwrap();
        s
    });
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    for code in [
        format!("connect(\"{addr}\").recv()"),
        format!("fetch(\"http://{web}/\")"),
        // An error quoting the text shows it escaped too.
        r#"throw "a\x1b]0;pwned\x07" + "b\x1b[2Jc""#.to_string(),
    ] {
        pty.send_line(&code).unwrap();
        let Ok(found) = pty.expect(SHOWN) else {
            panic!("{code}: not shown escaped: {:?}", shown(&mut pty));
        };
        let mut seen = String::from_utf8_lossy(found.before()).into_owned();
        let rest = pty.expect("netsh> ").unwrap();
        seen.push_str(&String::from_utf8_lossy(rest.before()));
        assert!(
            !seen.contains("\x1b]0;pwned") && !seen.contains("\x1b[2J"),
            "{code}: raw escape sequences reached the terminal: {seen:?}"
        );
    }
    drop(peer.join());
    drop(web_peer.join());
}
