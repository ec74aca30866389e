//! Recording a REPL session as a script (`record(path)`, `record()`,
//! `netsh --record FILE`): a session in a real pseudo-terminal is recorded,
//! and the file, run with `netsh FILE`, must print what the session printed.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    time::Duration,
};

use expectrl::{Eof, Expect};

use crate::support::{Netsh, Pty, Terminal, accept_within, enter, repl, repl_in, shown};

/// A fresh prompt (`netsh> ` or `  ...> `): one at the start of a line,
/// after nothing but terminal control. rustyline also redraws the prompt
/// with the typed text while it shows a hint, and that is not one.
fn fresh(prompt: &str) -> expectrl::Regex<String> {
    expectrl::Regex(format!(r"\r\n(?:\x1b\[[0-9;?]*[A-Za-z]|\r)*{prompt}"))
}

/// Types `input` (line by line, waiting for each `...>` prompt) and returns
/// the lines the REPL printed for it before the next prompt.
fn step(pty: &mut Pty, input: &str) -> Vec<String> {
    let lines: Vec<&str> = input.lines().collect();
    let (last, first) = lines.split_last().expect("an input");
    for line in first {
        pty.send_line(line).unwrap();
        pty.expect(fresh(r"  \.\.\.> "))
            .unwrap_or_else(|e| panic!("no continuation after {line:?}: {e}"));
    }
    pty.send_line(last).unwrap();
    let seen = pty.expect(fresh("netsh> ")).unwrap_or_else(|e| {
        panic!(
            "no prompt after {input:?} ({e}); the REPL showed {:?}",
            shown(pty)
        )
    });
    printed(&String::from_utf8_lossy(seen.before()))
}

/// The output lines in what a terminal showed between an accepted line and
/// the next prompt: the first line is the typed text echoed back; terminal
/// control sequences go.
fn printed(raw: &str) -> Vec<String> {
    without_escapes(raw)
        .split("\r\n")
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// `text` without ANSI control sequences (`ESC [ … final`).
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A loopback peer that answers `hello LINE` to the first line of each of
/// `clients` connections.
fn greeter(clients: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..clients {
            let stream = accept_within(&listener, Duration::from_secs(60));
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let _ = (&stream).write_all(format!("hello {}\n", line.trim_end()).as_bytes());
            }
        }
    });
    port
}

/// A session with a function definition, multi-line inputs, a failing line,
/// a connection to a loopback peer, help and a shown map is recorded; the
/// file, run with `netsh FILE`, prints exactly what the session printed
/// (less the failure, help and the recorder's own remarks), and nothing
/// typed after `record()` is in it.
#[test]
fn a_recorded_session_replays_its_output() {
    let home = tempfile::tempdir().unwrap();
    let port = greeter(2);
    let connect =
        format!("let c = connect(\"127.0.0.1:{port}\"); c.send_line(\"netsh\"); c.recv_line()");
    // (input, whether its output belongs to the script's)
    let session: Vec<(&str, bool)> = vec![
        ("fn greet(name) { `hi ${name}` }", true),
        ("greet(\"you\")", true),
        (
            "fn sum(a) {\n  let t = 0;\n  for x in a { t += x }\n  t\n}",
            true,
        ),
        ("[1, 2,\n  3].map(|x| x * x)", true),
        ("port_info(70000)", false),
        (&connect, true),
        ("print(`sum ${sum([1, 2, 3])}`)", true),
        ("help(\"resolve\")", false),
        ("let m = #{name: greet(\"map\"), n: 2}; m", true),
        ("\"\"", true),
    ];
    let mut pty = repl(home.path());
    let started = step(&mut pty, "record(\"session.rhai\")");
    assert_eq!(
        started,
        ["record: recording to \"session.rhai\"; record() stops"]
    );
    let mut expected = Vec::new();
    for (input, replayed) in &session {
        let out = step(&mut pty, input);
        if *replayed {
            expected.extend(out);
        } else {
            assert!(!out.is_empty(), "{input:?} printed nothing");
        }
    }
    let stopped = step(&mut pty, "record()").join("\n");
    assert!(
        stopped.contains("record: 9 inputs written to \"session.rhai\" (1 that failed"),
        "{stopped}"
    );
    assert_eq!(step(&mut pty, "greet(\"after\")"), ["hi after"]);
    // What the session printed, so the comparison below compares something.
    for line in ["hi you", "[1, 4, 9]", "hello netsh", "sum 6", "\"\""] {
        assert!(
            expected.iter().any(|l| l == line),
            "{line:?} in {expected:?}"
        );
    }

    let file = std::fs::read_to_string(home.path().join("session.rhai")).unwrap();
    let header: Vec<&str> = file.lines().take_while(|l| l.starts_with("//")).collect();
    let header = header.join("\n");
    assert!(
        header.contains(&format!("netsh {}", env!("CARGO_PKG_VERSION"))),
        "{file}"
    );
    let folder = home.path().canonicalize().unwrap();
    assert!(
        header.contains(&home.path().display().to_string())
            || header.contains(&folder.display().to_string()),
        "the header does not name {}: {file}",
        home.path().display()
    );
    assert!(header.contains(" UTC "), "no time in the header: {file}");
    assert!(file.contains("fn greet(name) { `hi ${name}` }"), "{file}");
    assert!(
        file.contains("fn sum(a) {\n  let t = 0;\n  for x in a { t += x }\n  t\n}"),
        "the multi-line definition is not whole: {file}"
    );
    assert!(
        file.contains(
            "// port_info(70000)\n// error: port_info: port 70000 is out of range (0–65535)\n"
        ),
        "{file}"
    );
    for absent in ["help(", "record(", "after"] {
        assert!(!file.contains(absent), "{absent:?} recorded: {file}");
    }

    let run = Netsh::new()
        .current_dir(home.path())
        .arg("session.rhai")
        .ok();
    assert_eq!(run.stderr(), "", "{}", run.explain());
    let replayed: Vec<String> = run.stdout().lines().map(str::to_string).collect();
    assert_eq!(replayed, expected, "{file}");
}

/// `netsh --record FILE` records from the first line; leaving the REPL
/// says what was written, and the file replays.
#[test]
fn the_record_flag_records_from_the_first_line() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl_in(home.path(), &["--record", "first.rhai"]);
    assert_eq!(step(&mut pty, "let x = 6 * 7;"), Vec::<String>::new());
    assert_eq!(step(&mut pty, "x"), ["42"]);
    pty.send("\x04").unwrap();
    pty.expect("record: 2 inputs written to \"first.rhai\"")
        .unwrap();
    pty.expect(Eof).unwrap();
    let file = std::fs::read_to_string(home.path().join("first.rhai")).unwrap();
    assert!(file.contains("let x = 6 * 7;\nshow(x);\n"), "{file}");
    let run = Netsh::new().current_dir(home.path()).arg("first.rhai").ok();
    assert_eq!(run.stdout(), "42");

    // An existing file is refused before the session starts.
    let mut pty = Terminal::new(home.path())
        .args(["--record", "first.rhai"])
        .spawn();
    pty.expect("netsh: --record: \"first.rhai\" already exists")
        .unwrap();
    pty.expect(Eof).unwrap();
    let status = format!("{:?}", pty.get_process_mut().wait().unwrap());
    assert!(status.ends_with(", 2)"), "{status}");
    // It records the REPL only: with -e or a script it is a usage error.
    let run = Netsh::new()
        .args(["--record", "x.rhai", "-e", "1"])
        .output();
    run.expect_code(2);
    assert!(run.stderr().contains("--record"), "{}", run.explain());
    for words in [
        &["--record", "x.rhai", "upload"][..],
        &["--record", "x.rhai", "./a.rhai"],
    ] {
        let run = Netsh::new().current_dir(home.path()).args(words).output();
        run.expect_code(2);
        assert!(run.stderr().contains("--record"), "{}", run.explain());
    }
    // Piped stdin is a script, not a REPL: nothing to record, and it says so.
    let run = Netsh::new()
        .current_dir(home.path())
        .args(["--record", "x.rhai"])
        .stdin(std::process::Stdio::null())
        .output();
    run.expect_code(2);
    assert!(
        run.stderr().contains("needs a terminal"),
        "{}",
        run.explain()
    );
    assert!(!home.path().join("x.rhai").exists());
}

/// Each input reaches the file as it runs: a session killed mid-way keeps
/// what it recorded.
#[test]
fn a_killed_session_keeps_what_it_recorded() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    step(&mut pty, "record(\"kept.rhai\")");
    step(&mut pty, "let kept = \"yes\";");
    step(&mut pty, "kept.len()");
    let pid = nix::unistd::Pid::from_raw(pty.get_process().pid().as_raw());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = pty.get_process_mut().wait();
    let file = std::fs::read_to_string(home.path().join("kept.rhai")).unwrap();
    assert!(
        file.ends_with("let kept = \"yes\";\nshow(kept.len());\n"),
        "{file}"
    );
}

/// What `record` refuses, at the prompt: stopping when nothing is
/// recorded, a missing folder, a folder, an existing file, two recordings
/// at once, contradictory or unknown options, and a task; `append` and
/// `overwrite` do what they say.
#[test]
fn record_refuses_bad_input_clearly() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("folder")).unwrap();
    std::fs::write(home.path().join("old.rhai"), "print(\"old\");\n").unwrap();
    let mut pty = repl(home.path());
    enter(
        &mut pty,
        "record()",
        "error: record: nothing is being recorded; record(\"session.rhai\") starts",
    );
    enter(
        &mut pty,
        "try { record(\"missing/s.rhai\") } catch (e) { print(`${e.kind}: ${e}`) }",
        "not_found: record: \"missing/s.rhai\": there is no folder \"missing\"",
    );
    enter(
        &mut pty,
        "try { record(\"folder\") } catch (e) { print(`${e.kind}: ${e}`) }",
        "invalid: record: \"folder\" is a folder; give a file name, like \"folder/session.rhai\"",
    );
    enter(
        &mut pty,
        "try { record(\"old.rhai\") } catch (e) { print(`${e.kind}: ${e}`) }",
        "exists: record: \"old.rhai\" already exists; record(path, #{append: true}) adds to it",
    );
    enter(
        &mut pty,
        "record(\"old.rhai\", #{append: true, overwrite: true})",
        "record: append and overwrite cannot both be true",
    );
    enter(
        &mut pty,
        "record(\"old.rhai\", #{apend: true})",
        "record: unknown option 'apend'",
    );
    enter(
        &mut pty,
        "task(|| record(\"t.rhai\")).join()",
        "record: only the REPL records",
    );
    enter(
        &mut pty,
        "record(\"old.rhai\", #{append: true})",
        "recording to \"old.rhai\"",
    );
    enter(
        &mut pty,
        "record(\"other.rhai\")",
        "record: already recording to \"old.rhai\"; record() stops that first",
    );
    step(&mut pty, "print(\"new\")");
    step(&mut pty, "record()");
    let old = std::fs::read_to_string(home.path().join("old.rhai")).unwrap();
    assert!(
        old.starts_with("print(\"old\");\n\n// netsh REPL session"),
        "{old}"
    );
    assert!(old.ends_with("print(\"new\");\n"), "{old}");
    step(&mut pty, "record(\"old.rhai\", #{overwrite: true})");
    step(&mut pty, "print(\"newer\")");
    step(&mut pty, "record()");
    let old = std::fs::read_to_string(home.path().join("old.rhai")).unwrap();
    assert!(old.starts_with("// netsh REPL session"), "{old}");
    assert!(
        !old.contains("\"old\"") && !old.contains("\"new\""),
        "{old}"
    );
    for never in ["missing", "t.rhai", "other.rhai"] {
        assert!(!home.path().join(never).exists(), "{never} was created");
    }
}

/// In a script or with `-e`, `record` is an error that says it records
/// the REPL only, and creates no file.
#[test]
fn record_outside_the_repl_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = Netsh::new()
        .current_dir(dir.path())
        .arg("-e")
        .arg("try { record(\"x.rhai\") } catch (e) { print(`${e.kind}: ${e}`) }")
        .ok();
    assert!(
        run.stdout()
            .starts_with("invalid: record: only the REPL records"),
        "{}",
        run.explain()
    );
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, "record(\"y.rhai\");\n").unwrap();
    let run = Netsh::new().current_dir(dir.path()).arg(&script).output();
    run.expect_code(1);
    assert!(
        run.stderr().contains("record: only the REPL records"),
        "{}",
        run.explain()
    );
    assert!(!dir.path().join("y.rhai").exists());
    let run = Netsh::new().arg("-e").arg("record()").output();
    run.expect_code(1);
    assert!(
        run.stderr().contains("record: only the REPL records"),
        "{}",
        run.explain()
    );
    assert!(!dir.path().join("x.rhai").exists());
}

/// `show(v)` prints a value as the REPL and `-e` show it.
#[test]
fn show_prints_as_the_repl_does() {
    let value = "#{name: \"x\", list: [1, 2.5, \"\"], blob: blob(3, 0x41)}";
    let shown = Netsh::eval(&format!("show({value}); ()"));
    assert_eq!(shown, Netsh::eval(value));
    assert_eq!(Netsh::eval("show(()); 1"), "1");
}
