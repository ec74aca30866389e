//! The command line: exit codes, `-e`, script arguments, the
//! `FILE:LINE:COL: message` error format, shebang scripts, `--list`.

use std::os::unix::fs::PermissionsExt;

use crate::support::{self, Netsh};

/// `-e` prints the value of the expression and exits 0.
#[test]
fn eval_prints_the_value() {
    assert_eq!(Netsh::eval("40 + 2"), "42");
    assert_eq!(Netsh::eval("\"plain text\""), "plain text");
    assert_eq!(Netsh::eval("let x = 1;"), "");
    let out = Netsh::new().args(["-e", "args", "a", "-b"]).ok().stdout();
    assert_eq!(out, "[\"a\", \"-b\"]");
}

/// A failing expression exits 1 with the error on stderr, nothing on stdout.
#[test]
fn eval_failure_exits_1() {
    let run = Netsh::new().args(["-e", "throw \"boom\""]).output();
    run.expect_code(1);
    assert_eq!(run.stderr(), "-e:1:1: boom", "{}", run.explain());
    assert_eq!(run.stdout(), "");
}

/// Usage errors exit 2: unknown flags and missing script files.
#[test]
fn usage_errors_exit_2() {
    let run = Netsh::new().arg("--no-such-flag").output();
    run.expect_code(2);
    assert_eq!(
        run.stderr(),
        "netsh: unknown option '--no-such-flag' (netsh --help lists them)",
        "{}",
        run.explain()
    );
    let run = Netsh::new().arg("missing.rhai").output();
    run.expect_code(2);
    assert!(
        run.stderr().contains("no such script: \"missing.rhai\""),
        "{}",
        run.explain()
    );
}

/// A folder or a device given as the script is named for what it is, not "no such script".
#[test]
fn a_folder_or_device_is_not_a_script() {
    for (path, expected) in [
        ("/", "\"/\" is a folder, not a script"),
        ("/dev/null", "\"/dev/null\" is not a regular file"),
    ] {
        let run = Netsh::new().arg(path).output();
        run.expect_code(2);
        assert!(run.stderr().contains(expected), "{}", run.explain());
    }
}

/// `--help` and `--version` succeed and say what netsh is.
#[test]
fn help_and_version() {
    let help = Netsh::new().arg("--help").ok().stdout();
    assert!(help.contains("scriptable network shell"), "{help}");
    assert!(help.contains("-e"), "{help}");
    let version = Netsh::new().arg("--version").ok().stdout();
    assert_eq!(version, format!("netsh {}", env!("CARGO_PKG_VERSION")));
}

/// A script sees its arguments as `args`, in order, hyphens included.
#[test]
fn script_receives_args() {
    let cmd = Netsh::new();
    let script = cmd.home().join("args.rhai");
    std::fs::write(&script, "print(args.len()); for a in args { print(a) }").unwrap();
    let out = cmd
        .arg(&script)
        .args(["one", "-x", "three four"])
        .ok()
        .stdout();
    assert_eq!(out, "3\none\n-x\nthree four");
}

/// Every word after the script is the script's, even one that is also a
/// netsh flag: from `netsh FILE …`, from a shebang script run directly,
/// and after a bundled scenario's name.
#[test]
fn words_after_the_script_reach_args() {
    let cmd = Netsh::new();
    let script = cmd.home().join("words.rhai");
    std::fs::write(&script, "#!/usr/bin/env netsh\nprint(args)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let words = [
        "--list",
        "-e",
        "x",
        "--help",
        "--plugins",
        "nowhere",
        "--",
        "-V",
    ];
    let expected = r#"["--list", "-e", "x", "--help", "--plugins", "nowhere", "--", "-V"]"#;
    let run = Netsh::new().arg(&script).args(words).ok();
    assert_eq!(run.stdout(), expected, "{}", run.explain());

    let bin_dir = support::netsh_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(&script)
        .args(words)
        .env("PATH", path)
        .env("XDG_CONFIG_HOME", cmd.home())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);

    // `upload --help` is the scenario's: its own usage, not netsh's help.
    let run = Netsh::new().args(["upload", "--help"]).output();
    assert!(
        !run.stdout().contains("scriptable network shell"),
        "netsh took the scenario's --help: {}",
        run.explain()
    );
    assert!(
        run.stderr().contains("usage: netsh upload"),
        "{}",
        run.explain()
    );
}

/// A script on stdin (`netsh < x.rhai`, `… | netsh`) runs as a script: no
/// banner, only its own output, `<stdin>:LINE:COL` errors and exit 1 on
/// failure, `exit(n)` honoured; `netsh - ARGS` gives it arguments.
#[test]
fn a_script_on_stdin_runs_as_a_script() {
    let cmd = Netsh::new();
    let file = |name: &str, text: &str| {
        let path = cmd.home().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::File::open(path).unwrap()
    };
    let failing = file(
        "failing.rhai",
        "print(\"hi\");\nlet x = 1;\n  throw \"x\";\nprint(\"after\");\n",
    );
    let exiting = file("exiting.rhai", "print(\"bye\"); exit(5)");
    let with_args = file("args.rhai", "print(args)");
    let syntax = file("syntax.rhai", "let = ;");

    let run = Netsh::new().stdin(failing).output();
    run.expect_code(1);
    assert_eq!(run.stdout(), "hi", "{}", run.explain());
    assert_eq!(run.stderr(), "<stdin>:3:3: x", "{}", run.explain());

    let run = Netsh::new().stdin(exiting).output();
    run.expect_code(5);
    assert_eq!(run.stdout(), "bye", "{}", run.explain());

    let run = Netsh::new()
        .args(["-", "a", "--list"])
        .stdin(with_args)
        .ok();
    assert_eq!(run.stdout(), r#"["a", "--list"]"#, "{}", run.explain());

    let run = Netsh::new().stdin(syntax).output();
    run.expect_code(1);
    assert!(run.stderr().starts_with("<stdin>:1:"), "{}", run.explain());
    assert_eq!(run.stdout(), "", "{}", run.explain());

    // Nothing on stdin is an empty script: it succeeds, silently.
    let run = Netsh::new().ok();
    assert_eq!(run.stdout(), "", "{}", run.explain());
}

/// A runtime error in a script is reported as FILE:LINE:COL with the
/// function's name and the cause, and the exit code is 1.
#[test]
fn script_errors_name_file_line_and_column() {
    let cmd = Netsh::new();
    let script = cmd.home().join("bad.rhai");
    std::fs::write(&script, "let a = 1;\nlet b = 2;\n    port_info(70000);\n").unwrap();
    let shown = script.display().to_string();
    let run = cmd.arg(&script).output();
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        format!("{shown}:3:5: port_info: port 70000 is out of range (0–65535)"),
        "{}",
        run.explain()
    );
}

/// Syntax errors are reported the same way, before anything runs.
#[test]
fn syntax_errors_name_file_line_and_column() {
    let cmd = Netsh::new();
    let script = cmd.home().join("syntax.rhai");
    std::fs::write(&script, "print(\"ran\");\nlet = 5;\n").unwrap();
    let run = cmd.arg(&script).output();
    run.expect_code(1);
    assert!(
        run.stdout().is_empty(),
        "nothing may run: {}",
        run.explain()
    );
    assert!(
        run.stderr()
            .starts_with(&format!("{}:2:", script.display())),
        "{}",
        run.explain()
    );
    assert!(run.stderr().contains("syntax error"), "{}", run.explain());
}

/// An error inside a function names the function and the inner position.
#[test]
fn errors_inside_functions_point_inside() {
    let cmd = Netsh::new();
    let script = cmd.home().join("fn.rhai");
    std::fs::write(
        &script,
        "fn lookup(h) {\n  resolve(h)\n}\nlookup(\"nohost.invalid\");\n",
    )
    .unwrap();
    let run = cmd.arg(&script).output();
    run.expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains(":2:3: resolve: cannot resolve 'nohost.invalid'"),
        "{}",
        run.explain()
    );
    assert!(err.contains("in function 'lookup'"), "{}", run.explain());
}

/// A script with a `#!/usr/bin/env netsh` line runs directly.
#[test]
fn shebang_scripts_run_directly() {
    let cmd = Netsh::new();
    let script = cmd.home().join("direct.rhai");
    std::fs::write(
        &script,
        "#!/usr/bin/env netsh\nprint(`hello ${args[0]}`);\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = support::netsh_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(&script)
        .arg("world")
        .env("PATH", path)
        .env("XDG_CONFIG_HOME", cmd.home())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello world");
}

/// `--list` shows every scenario script with its one-line description.
#[test]
fn list_shows_scenarios_with_descriptions() {
    let out = Netsh::in_checkout().arg("--list").ok().stdout();
    assert!(out.contains("scripts/names.rhai"), "{out}");
    assert!(out.contains("Names and addresses"), "{out}");
    assert!(out.contains("scripts/ports.rhai"), "{out}");
}

/// The shipped scenario scripts run with no arguments and exit 0.
#[test]
fn scenario_scripts_run_without_arguments() {
    for script in ["scripts/names.rhai", "scripts/ports.rhai"] {
        let run = Netsh::in_checkout().arg(script).output();
        run.expect_code(0);
        assert!(!run.stdout().is_empty(), "{}", run.explain());
    }
}

/// Values print readably: blobs as a hex preview, nesting laid out, deep
/// nesting cut short instead of overflowing the stack.
#[test]
fn values_print_readably() {
    assert_eq!(Netsh::eval("blob(3, 255)"), "blob(3 bytes: ff ff ff)");
    assert_eq!(Netsh::eval("#{a: [1, #{b: ()}]}"), "#{a: [1, #{b: ()}]}");
    let deep = Netsh::eval("let a = []; for i in 0..5000 { a = [a] } a");
    assert!(deep.contains('…'), "{deep}");
    let err = Netsh::eval_err("let a = []; for i in 0..500 { a = [a] } to_json(a)");
    assert!(
        err.contains("to_json: the value nests deeper than 128 levels"),
        "{err}"
    );
    let err = Netsh::eval_err("blob(9223372036854775807)");
    assert!(!err.contains("panicked"), "{err}");
}

/// `-e` into a pipe prints a value's bytes exactly (a pipeline wants them);
/// on a terminal its escape sequences show escaped, as in the REPL.
#[test]
fn eval_escapes_control_characters_only_on_a_terminal() {
    use expectrl::Expect;
    let code = r#""a\x1b]0;pwned\x07b\x1b[2Jc""#;
    let run = Netsh::new().args(["-e", code]).ok();
    assert_eq!(
        run.stdout(),
        "a\x1b]0;pwned\x07b\x1b[2Jc",
        "{}",
        run.explain()
    );
    let home = tempfile::tempdir().unwrap();
    let mut pty = support::Terminal::new(home.path())
        .args(["-e", code])
        .spawn();
    let found = pty
        .expect(expectrl::Regex(r"a\S{1,4}\]0;pwned\S*c"))
        .unwrap();
    let shown = String::from_utf8_lossy(found.get(0).unwrap()).into_owned();
    assert!(
        shown.contains(r"a\x1b]0;pwned\x07b\x1b[2Jc"),
        "not escaped on a terminal: {shown:?}"
    );
    assert!(
        !shown.contains('\x1b'),
        "raw escapes on a terminal: {shown:?}"
    );
}

/// `exit(n)` sets the process status from a script (also inside a function)
/// and from `-e`; `exit()` is 0; a last value of 3 is not an exit status;
/// a status outside 0–255 or not a number is an error (exit 1).
#[test]
fn exit_sets_the_status() {
    let cmd = Netsh::new();
    let script = cmd.home().join("exit.rhai");
    std::fs::write(
        &script,
        "fn check() { exit(3) }\nprint(\"before\");\ncheck();\nprint(\"after\");\n",
    )
    .unwrap();
    let run = cmd.arg(&script).output();
    run.expect_code(3);
    assert_eq!(run.stdout(), "before", "{}", run.explain());
    assert_eq!(run.stderr(), "", "{}", run.explain());
    let run = Netsh::new().args(["-e", "exit(3)"]).output();
    run.expect_code(3);
    assert_eq!(run.stdout(), "", "{}", run.explain());
    Netsh::new().args(["-e", "exit()"]).output().expect_code(0);
    Netsh::new()
        .args(["-e", "try { exit(4) } catch { print(\"caught\") }"])
        .output()
        .expect_code(4);
    assert_eq!(Netsh::eval("3"), "3");
    let err = Netsh::eval_err("exit(256)");
    assert_eq!(err, "-e:1:1: exit: the status must be 0–255, not 256");
    let err = Netsh::eval_err("exit(\"failed\")");
    assert!(
        err.contains("exit: expected a whole number 0–255, not a string"),
        "{err}"
    );
    let err = Netsh::eval_err("let t = task(|| exit(2)); t.join()");
    assert!(
        err.contains("the task failed: -e:1:17: exit: cannot end the script from a task"),
        "{err}"
    );
}

/// `exit(n)` in a closure or function called by anything on the script's
/// own thread ends the script with n, past any `try`: nothing after it
/// runs, not even the `catch` block.
#[test]
fn exit_ends_the_script_from_every_closure() {
    let callers = [
        "[1, 2].map(|x| exit(7))",
        "[1, 2].for_each(|x| exit(7))",
        "[1, 2].filter(|x| exit(7))",
        "[1, 2].reduce(|sum, x| exit(7), 0)",
        "[1, 2].all(|x| exit(7))",
        "[1, 2].some(|x| exit(7))",
        "[1, 2].find(|x| exit(7))",
        "[1, 2].find_map(|x| exit(7))",
        "[1, 2].retain(|x| exit(7))",
        "[1, 2].drain(|x| exit(7))",
        "[1, 2].index_of(|x| exit(7))",
        "[1, 2].dedup(|a, b| exit(7))",
        "[2, 1].sort(|a, b| exit(7))",
        "let f = |x| exit(7); f.call(1)",
        "let f = |x| exit(7); call(f, 1)",
        "let f = || { let g = || [1].map(|x| exit(7)); g.call() }; f.call()",
        "[1].map(stop)",
        "[1].map(|x| stop(x))",
        "outer()",
        "share(1).update(|v| exit(7))",
        "exit(7)",
    ];
    // Functions for the callers above; Rhai defines functions at the top only.
    let functions = "fn stop(x) { exit(7) } fn outer() { [1].for_each(|x| exit(7)) }";
    for caller in callers {
        for code in [
            format!("{functions} print(\"before\"); {caller}; print(\"after\")"),
            format!(
                "{functions} print(\"before\"); try {{ {caller}; }} catch (e) {{ print(`caught ${{e}}`) }} print(\"after\")"
            ),
        ] {
            let run = Netsh::new().args(["-e", &code]).output();
            run.expect_code(7);
            assert_eq!(run.stdout(), "before", "{}", run.explain());
            assert_eq!(run.stderr(), "", "{}", run.explain());
        }
    }
}

/// `assert` and `expect_eq` failures name the file, line and column, and
/// show the message or both values; passing checks print nothing.
#[test]
fn assert_failures_name_the_line() {
    let cmd = Netsh::new();
    let script = cmd.home().join("checks.rhai");
    std::fs::write(
        &script,
        "assert(true, \"fine\");\nexpect_eq([1, \"a\"], [1, \"a\"]);\n  assert(1 + 1 == 3, \"arithmetic broke\");\n",
    )
    .unwrap();
    let shown = script.display().to_string();
    let run = cmd.arg(&script).output();
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        format!("{shown}:3:3: assert: arithmetic broke"),
        "{}",
        run.explain()
    );
    assert_eq!(
        Netsh::eval_err("assert(false)"),
        "-e:1:1: assert: assertion failed"
    );
    assert_eq!(
        Netsh::eval_err("let x = 4;\nexpect_eq(x, 3)"),
        "-e:2:1: expect_eq: got 4, expected 3"
    );
    assert_eq!(
        Netsh::eval_err("expect_eq(\"a\", ())"),
        "-e:1:1: expect_eq: got \"a\", expected ()"
    );
    let err = Netsh::eval_err("assert(\"yes\", \"m\")");
    assert!(
        err.contains("assert: expected true or false as the condition, not a string"),
        "{err}"
    );
    assert_eq!(
        Netsh::eval("expect_eq(1, 1.0); expect_eq(#{a: [1]}, #{a: [1]}); \"ok\""),
        "ok"
    );
}

/// An empty string prints as `""`, so it is not mistaken for `()` (nothing).
#[test]
fn empty_string_prints_quoted() {
    assert_eq!(Netsh::eval("\"\""), "\"\"");
    assert_eq!(Netsh::eval("()"), "");
}

/// hex/from_hex and base64/from_base64 round-trip any bytes; separators
/// are allowed in hex; bad input names the problem.
#[test]
fn hex_and_base64() {
    assert_eq!(Netsh::eval("from_hex(\"68 69\")"), "blob(2 bytes: 68 69)");
    assert_eq!(
        Netsh::eval("from_hex(\"de:ad:BE:EF\") == from_hex(\"0xdeadbeef\")"),
        "true"
    );
    assert_eq!(Netsh::eval("base64(\"user:pass\")"), "dXNlcjpwYXNz");
    assert_eq!(
        Netsh::eval(
            "let b = blob(); for i in 0..256 { b.push(i) } from_base64(base64(b)) == b && from_hex(hex(b)) == b"
        ),
        "true"
    );
    assert_eq!(
        Netsh::eval_err("from_hex(\"6g\")"),
        "-e:1:1: from_hex: 'g' at position 1 is not a hex digit (0-9, a-f)"
    );
    let err = Netsh::eval_err("from_base64(\"!!!!\")");
    assert!(err.starts_with("-e:1:1: from_base64: not base64:"), "{err}");
}

/// help() lists `args`, `exit`, `assert`, `expect_eq` and the helpers
/// added with them.
#[test]
fn help_lists_script_functions_and_helpers() {
    let out = Netsh::eval("help()");
    for name in [
        "args",
        "exit",
        "assert",
        "expect_eq",
        "from_hex",
        "base64",
        "from_base64",
        "temp_dir",
        "interact",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "help() does not list {name}:\n{out}"
        );
    }
}

/// temp_dir() is a new folder that disappears with everything in it when
/// the value goes away (here, when the function holding it returns).
#[test]
fn temp_dir_removes_itself() {
    let out = Netsh::eval(
        "fn make() { let d = temp_dir(); write_file(`${d}/f.txt`, \"x\"); expect_eq(read_file(`${d}/f.txt`), \"x\"); d.path }
         let p = make(); let gone = false;
         try { read_file(`${p}/f.txt`) } catch { gone = true }
         [p, gone]",
    );
    assert!(out.contains("netsh-") && out.ends_with(", true]"), "{out}");
}

/// Each bundled scenario suggests running itself the way that works from
/// any folder (`netsh download URL`), never by a path into the checkout
/// (`netsh scripts/download.rhai`), which fails anywhere else.
#[test]
fn bundled_scenarios_suggest_their_bundled_name() {
    let list = Netsh::new().arg("--list").ok().stdout();
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"download"), "{list}");
    for name in names {
        let text = Netsh::new().args(["--show", name]).ok().stdout();
        assert!(
            !text.contains("netsh scripts/"),
            "{name} suggests a path into the checkout:\n{}",
            text.lines()
                .filter(|l| l.contains("netsh scripts/"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let text = Netsh::new().args(["--show", "download"]).ok().stdout();
    assert!(text.contains("Try:  netsh download https://"), "{text}");
}
