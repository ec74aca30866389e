//! The command line: exit codes, `-e`, script arguments, the
//! `FILE:LINE:COL: message` error format, shebang scripts, `--list`.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::Netsh;

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
    Netsh::new().arg("--no-such-flag").output().expect_code(2);
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
    let out = Netsh::new()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--list")
        .ok()
        .stdout();
    assert!(out.contains("scripts/names.rhai"), "{out}");
    assert!(out.contains("Names and addresses"), "{out}");
    assert!(out.contains("scripts/ports.rhai"), "{out}");
}

/// The shipped scenario scripts run with no arguments and exit 0.
#[test]
fn scenario_scripts_run_without_arguments() {
    for script in ["scripts/names.rhai", "scripts/ports.rhai"] {
        let run = Netsh::new()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg(script)
            .output();
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
