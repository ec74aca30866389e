//! netsh as an installed tool: run from an empty folder, it has its bundled
//! scenarios and plugins (they are embedded in the binary), and it never
//! runs code from the working directory unless told to.
//!
//! `.ci/installed.sh` checks the same with a `cargo install`ed binary.

use std::path::Path;

use crate::support::{self, Netsh, write_file};

/// The bundled scenarios and a plugin namespace, as `--list` and `-e` see
/// them from a folder with nothing in it.
#[test]
fn list_from_an_empty_folder_shows_the_bundled_scenarios() {
    let run = Netsh::new().arg("--list").ok();
    let out = run.stdout();
    assert!(out.starts_with("Bundled scenarios"), "{}", run.explain());
    for name in ["names", "ports", "tcp_chat", "udp", "upload"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(name)),
            "{name} missing: {out}"
        );
    }
    assert!(out.contains("File upload over TCP"), "{out}");
    assert!(!out.contains("./scripts"), "no local section here: {out}");
}

/// `--list` in a folder with `scripts/` adds those, named by their path.
#[test]
fn list_adds_local_scripts() {
    let cmd = Netsh::new();
    write_file(
        &cmd.home().join("scripts/mine.rhai"),
        "//! My own scenario.\nprint(1)",
    );
    let out = cmd.arg("--list").ok().stdout();
    assert!(out.contains("In ./scripts"), "{out}");
    assert!(out.contains("scripts/mine.rhai"), "{out}");
    assert!(out.contains("My own scenario."), "{out}");
}

/// `netsh upload` runs the bundled demo from an empty folder, and the demo
/// leaves no temporary folder behind.
#[test]
fn bundled_scenario_runs_by_name_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let run = Netsh::new().env("TMPDIR", tmp.path()).arg("upload").ok();
    assert!(
        run.stdout().contains("2 of 2 files identical"),
        "{}",
        run.explain()
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
}

/// `--show NAME` prints the bundled source byte for byte; an unknown name
/// is a usage error that lists what exists.
#[test]
fn show_prints_the_bundled_source() {
    let run = Netsh::new().args(["--show", "upload"]).ok();
    let on_disk =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/upload.rhai")).unwrap();
    assert_eq!(run.output.stdout, on_disk);
    let plugin = Netsh::new().args(["--show", "services"]).ok();
    assert!(
        plugin.stdout().contains("fn table()"),
        "{}",
        plugin.explain()
    );
    let run = Netsh::new().args(["--show", "nope"]).output();
    run.expect_code(2);
    assert!(
        run.stderr().contains("nothing bundled is called 'nope'")
            && run.stderr().contains("upload"),
        "{}",
        run.explain()
    );
}

/// The bundled plugins work from any folder, in `-e` and in a script.
#[test]
fn bundled_plugins_work_anywhere() {
    let out = Netsh::eval("services::table()");
    assert!(out.contains("ssh"), "{out}");
    let cmd = Netsh::new();
    let script = cmd.home().join("s.rhai");
    write_file(
        &script,
        "let s = echo::serve(0); print(echo::ask(`127.0.0.1:${s.port}`, \"hi\"));",
    );
    assert_eq!(cmd.arg(&script).ok().stdout(), "hi");
}

/// A plugin whose top-level code writes `marker`: if it ever runs, the
/// marker file says so.
fn hostile_plugin(dir: &Path, marker: &Path) {
    write_file(
        &dir.join("x.rhai"),
        &format!(
            "write_file(\"{}\", \"ran\");\nfn hi() {{ \"x::hi ran\" }}\n",
            marker.display()
        ),
    );
}

/// A `./plugins/x.rhai` someone else put in the working directory is not
/// run by `netsh -e '1'`, nor when the code even names it, nor by a script
/// elsewhere; `--plugins ./plugins` and `NETSH_PLUGINS` do run it (the user
/// named the folder), and an empty `NETSH_PLUGINS` entry is not the cwd.
#[test]
fn plugins_in_the_working_directory_run_only_when_named() {
    let folder = tempfile::tempdir().unwrap();
    let home = folder.path().to_path_buf();
    let marker = home.join("MARKER");
    hostile_plugin(&home.join("plugins"), &marker);
    in_dir(&home).args(["-e", "1"]).ok();
    assert!(!marker.exists(), "netsh -e '1' ran ./plugins/x.rhai");

    let run = in_dir(&home).args(["-e", "x::hi()"]).output();
    run.expect_code(1);
    assert!(!marker.exists(), "naming x:: ran ./plugins/x.rhai");

    let other = tempfile::tempdir().unwrap();
    write_file(&other.path().join("t.rhai"), "print(1)");
    in_dir(&home).arg(other.path().join("t.rhai")).ok();
    assert!(!marker.exists(), "a script elsewhere ran ./plugins/x.rhai");

    let run = in_dir(&home)
        .args(["--plugins", "./plugins", "-e", "x::hi()"])
        .ok();
    assert_eq!(run.stdout(), "x::hi ran");
    assert!(marker.exists(), "--plugins ./plugins did not run it");

    std::fs::remove_file(&marker).unwrap();
    let run = in_dir(&home)
        .env("NETSH_PLUGINS", "/nonexistent:plugins")
        .args(["-e", "x::hi()"])
        .ok();
    assert_eq!(run.stdout(), "x::hi ran");
    assert!(marker.exists());

    std::fs::remove_file(&marker).unwrap();
    let run = in_dir(&home)
        .env("NETSH_PLUGINS", ":")
        .args(["-e", "x::hi()"])
        .output();
    run.expect_code(1);
    assert!(
        !marker.exists(),
        "an empty NETSH_PLUGINS entry searched the cwd"
    );
}

/// The REPL does not run `./plugins/x.rhai` either (it loads every plugin
/// it can find at start, so this is where a leak would show), and does
/// with `--plugins ./plugins`.
#[test]
fn the_repl_never_loads_plugins_from_the_working_directory() {
    use expectrl::Expect;
    let home = tempfile::tempdir().unwrap();
    let marker = home.path().join("MARKER");
    hostile_plugin(&home.path().join("plugins"), &marker);
    let mut pty = support::repl_in(home.path(), &[]);
    support::enter(&mut pty, "plugins().map(|p| p.name)", "echo");
    assert!(!marker.exists(), "the REPL ran ./plugins/x.rhai");
    let mut pty = support::repl_in(home.path(), &["--plugins", "./plugins"]);
    pty.send_line("x::hi()").unwrap();
    pty.expect("x::hi ran").unwrap();
    assert!(marker.exists(), "the REPL with --plugins did not run it");
}

/// A bare word is always a bundled scenario, never a file of that name in
/// the working directory; a path or a `.rhai` name is a file.
#[test]
fn a_bare_name_never_runs_a_file_from_the_working_directory() {
    let folder = tempfile::tempdir().unwrap();
    let home = folder.path().to_path_buf();
    let marker = home.join("MARKER");
    let hostile = format!(
        "write_file(\"{}\", \"ran\"); print(\"file ran\");",
        marker.display()
    );
    write_file(&home.join("ports"), &hostile);
    write_file(&home.join("ports.rhai"), &hostile);
    let run = in_dir(&home).arg("ports").ok();
    assert!(run.stdout().contains("Port ranges"), "{}", run.explain());
    assert!(
        !marker.exists(),
        "`netsh ports` ran ./ports or ./ports.rhai"
    );

    let run = in_dir(&home).arg("nosuch").output();
    run.expect_code(2);
    assert!(
        run.stderr().contains("no bundled scenario 'nosuch'")
            && run.stderr().contains("./nosuch.rhai"),
        "{}",
        run.explain()
    );
    assert_eq!(in_dir(&home).arg("ports.rhai").ok().stdout(), "file ran");
    assert_eq!(in_dir(&home).arg("./ports").ok().stdout(), "file ran");
}

/// A user plugin with a bundled plugin's name wins, and `plugins()` says
/// which one it hides; a missing `--plugins` folder is a usage error.
#[test]
fn user_plugins_override_bundled_ones_and_say_so() {
    let cmd = Netsh::new();
    write_file(
        &cmd.home().join("config/netsh/plugins/echo.rhai"),
        "//! My echo.\nfn ask(a, t) { `mine ${t}` }",
    );
    let out = cmd
        .args([
            "-e",
            "let p = plugins().filter(|p| p.name == \"echo\")[0]; [echo::ask(1, \"x\"), p.bundled, p.overrides, p.description]",
        ])
        .ok()
        .stdout();
    assert_eq!(
        out,
        "[\"mine x\", false, \"netsh:plugins/echo.rhai\", \"My echo.\"]"
    );
    let bundled = Netsh::eval(
        "let p = plugins().filter(|p| p.name == \"services\")[0]; [p.bundled, p.path, p.overrides]",
    );
    assert_eq!(bundled, "[true, \"netsh:plugins/services.rhai\", ()]");
    let run = Netsh::new().args(["--plugins", "nope", "-e", "1"]).output();
    run.expect_code(2);
    assert!(
        run.stderr().contains("--plugins nope: no such folder"),
        "{}",
        run.explain()
    );
}

fn in_dir(dir: &Path) -> Netsh {
    Netsh::new().current_dir(dir)
}
