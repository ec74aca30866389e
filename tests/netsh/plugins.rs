//! Plugins: Rhai files loaded as namespaces from the folders named with
//! `--plugins`, from beside the script and from the user's config dir, with
//! their docs in help(), loaded only when the code names them (outside the
//! REPL), and broken ones reported without stopping the rest.

use crate::support::{Netsh, write_file};

const GREET: &str = "//! Greetings for tests.\n\n/// Says hello to someone.\n///\n/// ```rhai\n/// greet::hello(\"you\")\n/// ```\nfn hello(name) { `hello ${name}` }\n";

/// A plugin in `<config dir>/netsh/plugins` is a namespace named after its file.
#[test]
fn plugin_from_config_dir() {
    let cmd = Netsh::new();
    write_file(&cmd.home().join("config/netsh/plugins/greet.rhai"), GREET);
    let out = cmd.args(["-e", "greet::hello(\"you\")"]).ok().stdout();
    assert_eq!(out, "hello you");
}

/// A plugin in a folder named with `--plugins` loads, and `plugins()` says
/// where each came from, beside the bundled ones.
#[test]
fn plugin_from_a_named_folder_is_listed() {
    let cmd = Netsh::new();
    write_file(&cmd.home().join("mine/greet.rhai"), GREET);
    let out = cmd
        .args(["--plugins", "mine", "-e", "let p = plugins().filter(|p| !p.bundled); [p.len(), p[0].name, p[0].description, p[0].path.ends_with(\"mine/greet.rhai\"), p[0].functions]"])
        .ok()
        .stdout();
    assert_eq!(
        out,
        "[1, \"greet\", \"Greetings for tests.\", true, [\"greet::hello\"]]"
    );
}

/// Outside the REPL only the plugins the code names are loaded (their
/// top-level code runs), each after the plugins it names; `help()` still
/// shows every plugin's docs without running any of them.
#[test]
fn only_named_plugins_are_loaded() {
    let folder = tempfile::tempdir().unwrap();
    let log = folder.path().join("log");
    let logs = |name: &str| {
        format!(
            "let old = \"\"; try {{ old = read_file(\"{0}\") }} catch {{}}\nwrite_file(\"{0}\", old + \"{name} \");\n",
            log.display()
        )
    };
    let plugins = folder.path().join("p");
    write_file(
        &plugins.join("a.rhai"),
        &format!(
            "{}let early = b::two();\nfn run() {{ `a+${{b::two()}}` }}",
            logs("a")
        ),
    );
    write_file(
        &plugins.join("b.rhai"),
        &format!("{}fn two() {{ 2 }}", logs("b")),
    );
    write_file(
        &plugins.join("c.rhai"),
        &format!(
            "{}/// Never needed.\n///\n/// ```rhai\n/// c::unused()\n/// ```\nfn unused() {{ 3 }}",
            logs("c")
        ),
    );
    let netsh = || {
        Netsh::new()
            .current_dir(folder.path())
            .args(["--plugins", "p"])
    };
    let out = netsh().args(["-e", "a::run()"]).ok().stdout();
    assert_eq!(out, "a+2");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "b a ");
    std::fs::remove_file(&log).unwrap();
    let help = netsh().args(["-e", "help()"]).ok().stdout();
    assert!(
        help.contains("c::unused") && help.contains("Never needed."),
        "{help}"
    );
    assert!(!log.exists(), "help() ran plugin code");
}

/// A plugin next to a script is found even when run from elsewhere.
#[test]
fn plugin_next_to_the_script() {
    let cmd = Netsh::new();
    let project = tempfile::tempdir().unwrap();
    write_file(&project.path().join("plugins/greet.rhai"), GREET);
    write_file(
        &project.path().join("scripts/run.rhai"),
        "print(greet::hello(\"script\"))",
    );
    let out = cmd
        .arg(project.path().join("scripts/run.rhai"))
        .ok()
        .stdout();
    assert_eq!(out, "hello script");
    // Named from inside `scripts/`, the script's folder is `.`: the
    // plugins beside that folder are still found.
    for name in ["run.rhai", "./run.rhai"] {
        let out = Netsh::new()
            .current_dir(project.path().join("scripts"))
            .arg(name)
            .ok()
            .stdout();
        assert_eq!(out, "hello script", "netsh {name}");
    }
}

/// Plugin doc comments show in help() and help("ns::fn").
#[test]
fn plugin_docs_in_help() {
    let cmd = Netsh::new();
    write_file(&cmd.home().join("plugins/greet.rhai"), GREET);
    let out = cmd
        .args([
            "--plugins",
            "plugins",
            "-e",
            "help(); help(\"greet::hello\")",
        ])
        .ok()
        .stdout();
    assert!(out.contains("plugin greet — Greetings for tests."), "{out}");
    assert!(out.contains("greet::hello"), "{out}");
    assert!(out.contains("Says hello to someone."), "{out}");
    assert!(out.contains("greet::hello(name)"), "{out}");
}

/// A plugin with a syntax error is reported with its path and line; the
/// others still load and the command still works.
#[test]
fn broken_plugin_is_reported_and_others_load() {
    let cmd = Netsh::new();
    write_file(
        &cmd.home().join("plugins/aaa_broken.rhai"),
        "fn ok() { 1 }\nfn bad( { \n",
    );
    write_file(&cmd.home().join("plugins/greet.rhai"), GREET);
    write_file(
        &cmd.home().join("plugins/zzz_fails.rhai"),
        "throw \"cannot start\";\n",
    );
    // Outside the REPL only named plugins load: name the broken ones too.
    let code = "if false { aaa_broken::ok(); zzz_fails::x() } greet::hello(\"still\")";
    let run = cmd.args(["--plugins", "plugins", "-e", code]).output();
    run.expect_code(0);
    assert_eq!(run.stdout(), "hello still");
    let err = run.stderr();
    assert!(
        err.contains("plugins/aaa_broken.rhai:2:"),
        "{}",
        run.explain()
    );
    assert!(
        err.contains("plugins/zzz_fails.rhai:1:1: cannot start"),
        "{}",
        run.explain()
    );
}

/// The shipped `services` plugin works against the live system.
#[test]
fn shipped_services_plugin() {
    let out = Netsh::new()
        .args([
            "-e",
            "services::well_known().filter(|s| s.port == 22)[0].tcp",
        ])
        .ok()
        .stdout();
    assert_eq!(out, "ssh");
}

/// A `--plugins` folder's plugin wins over the config dir's of the same
/// name, and the first `--plugins` folder over the second; a file whose
/// name is not an identifier is skipped with a warning.
#[test]
fn precedence_and_invalid_names() {
    let cmd = Netsh::new();
    write_file(
        &cmd.home().join("plugins/greet.rhai"),
        "fn hello(n) { `local ${n}` }",
    );
    write_file(
        &cmd.home().join("later/greet.rhai"),
        "fn hello(n) { `later ${n}` }",
    );
    write_file(
        &cmd.home().join("config/netsh/plugins/greet.rhai"),
        "fn hello(n) { `config ${n}` }",
    );
    write_file(&cmd.home().join("plugins/my-plugin.rhai"), "fn x() { 1 }");
    let run = cmd
        .args([
            "--plugins",
            "plugins",
            "--plugins",
            "later",
            "-e",
            "greet::hello(1)",
        ])
        .output();
    run.expect_code(0);
    assert_eq!(run.stdout(), "local 1");
    assert!(
        run.stderr()
            .contains("'my-plugin' is not a valid namespace name"),
        "{}",
        run.explain()
    );
}

/// A wrong call to a plugin function keeps the namespace in the message.
#[test]
fn wrong_call_to_a_plugin_function_names_it() {
    let cmd = Netsh::new();
    write_file(&cmd.home().join("plugins/greet.rhai"), GREET);
    let run = cmd
        .args(["--plugins", "plugins", "-e", "greet::hello(1, 2)"])
        .output();
    run.expect_code(1);
    assert!(
        run.stderr().contains("no function greet::hello(int, int)"),
        "{}",
        run.explain()
    );
}

/// A closure a plugin returns (alone, in a map, in an array, from another
/// closure) runs when the script calls it, with the plugin's functions and
/// its own captured state; a wrong count of arguments says so.
#[test]
fn closures_a_plugin_returns_run_in_the_script() {
    let cmd = Netsh::new();
    write_file(
        &cmd.home().join("plugins/mk.rhai"),
        "fn adder(n) { |x| x + n }\n\
         fn helper() { \"helped\" }\n\
         fn routes() { #{ \"GET /\": |req| `hi ${req}`, later: [|| helper()] } }\n\
         fn counter() { let n = 0; || { n += 1; n } }\n\
         fn twice() { || |y| y * 2 }\n",
    );
    let code = r#"let add = mk::adder(2);
        let r = mk::routes();
        let c = mk::counter(); c.call(); c.call();
        let wrong = (|| { try { add.call(1, 2); return "called" } catch (e) { return `${e}` } }).call();
        [add.call(3), r["GET /"].call("you"), r.later[0].call(), c.call(), mk::twice().call().call(21), wrong]"#;
    let run = cmd.args(["--plugins", "plugins", "-e", code]).ok();
    assert_eq!(
        run.stdout(),
        r#"[5, "hi you", "helped", 3, 42, "this closure takes 1 parameter, not 2"]"#,
        "{}",
        run.explain()
    );
}

/// `--plugins` given a file says it is a file, not a folder; given nothing
/// that exists, that there is no such folder.
#[test]
fn plugins_flag_names_a_file_for_what_it_is() {
    let cmd = Netsh::new();
    let file = cmd.home().join("greet.rhai");
    write_file(&file, GREET);
    let run = cmd.arg("--plugins").arg(&file).args(["-e", "1"]).output();
    run.expect_code(2);
    assert!(
        run.stderr()
            .ends_with(": is a file, not a folder (give the folder that holds plugin files)"),
        "{}",
        run.explain()
    );
    let run = Netsh::new()
        .args(["--plugins", "nowhere", "-e", "1"])
        .output();
    run.expect_code(2);
    assert_eq!(
        run.stderr(),
        "netsh: --plugins nowhere: no such folder",
        "{}",
        run.explain()
    );
}

/// `http::start` follows a symbolic link that stays in its folder, refuses
/// one that leads out of it (403) unless `follow_links: true`, and names an
/// unknown option.
#[test]
fn http_start_refuses_links_out_of_its_folder() {
    let cmd = Netsh::new();
    let site = cmd.home().join("site");
    write_file(&site.join("inside.txt"), "inside\n");
    write_file(&cmd.home().join("secret.txt"), "secret\n");
    std::os::unix::fs::symlink("inside.txt", site.join("link-in.txt")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", site.join("link-out.txt")).unwrap();
    let code = format!(
        r#"let strict = http::start("127.0.0.1:0", {site:?});
           let loose = http::start("127.0.0.1:0", {site:?}, #{{follow_links: true}});
           let get = |s, name| {{ let r = fetch(`http://127.0.0.1:${{s.port}}/${{name}}`); `${{r.status}} ${{r.body}}` }};
           let out = [get.call(strict, "link-in.txt"), get.call(strict, "link-out.txt"), get.call(loose, "link-out.txt")];
           let bad = "";
           try {{ http::start("127.0.0.1:0", {site:?}, #{{follow_link: true}}) }} catch (e) {{ bad = `${{e}}` }}
           out.push(bad);
           to_json(out)"#
    );
    let out = cmd.args(["-e", &code]).ok().stdout();
    let got: Vec<String> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(got[0], "200 inside\n", "{out}");
    assert!(
        got[1].starts_with("403 that path leads out of the served folder"),
        "{out}"
    );
    assert_eq!(got[2], "200 secret\n", "{out}");
    assert!(
        got[3].contains(
            "http::start: unknown option 'follow_link' (known: rate_limit, follow_links)"
        ),
        "{out}"
    );
}
