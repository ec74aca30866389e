//! The command line: `netsh` (REPL), `netsh FILE.rhai [ARGS…]` (a script
//! file), `netsh NAME [ARGS…]` (a bundled scenario), `netsh -e 'CODE'` (one
//! expression), `netsh --list` and `netsh --show NAME` (the scenarios).
//! With stdin not a terminal, plain `netsh` runs stdin as a script (`netsh
//! - ARGS…` too), as `python3 < file` does: a REPL talking to a pipe would
//! hide failures behind exit 0. Every word after the script is its own,
//! even one spelled like a netsh flag (a shebang script's `-e` is its own).
//!
//! Exit codes: 0 success, 1 the script failed, 2 the command line was wrong;
//! `exit(n)` in a script, `-e` or the REPL gives `n`.

use std::{
    ffi::OsString,
    io::{IsTerminal, Write},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Parser;

use crate::{
    console,
    permit::Grant,
    repl,
    shell::{Outcome, Setup, Shell, bundled, display, plugins::Load},
};

/// A scriptable network shell: every line is Rhai code.
#[derive(Debug, Parser)]
#[command(name = "netsh", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  netsh                           open the REPL\n  netsh upload                    run a bundled scenario by name\n  netsh ./my.rhai a b             run a script file (args = [\"a\", \"b\"])\n  netsh < my.rhai                 run the script on stdin (netsh - a b: with args)\n  netsh -e 'resolve(\"localhost\")' evaluate and print\n  netsh --list                    list the scenarios\n  netsh --show upload             print a bundled scenario, to copy and change\n  netsh --sandbox upload          run it with only the permissions it states\n  netsh --allow-net=127.0.0.1 x.rhai  let a script reach 127.0.0.1 and nothing else\n\nPlugins load from the plugins/ folder beside the script, --plugins DIR,\nNETSH_PLUGINS (DIR:DIR…), <config dir>/netsh/plugins, and netsh itself;\nnever from the working directory unless it is named."
)]
pub struct Cli {
    /// Evaluate CODE, print its value and exit.
    #[arg(short = 'e', long = "eval", value_name = "CODE", conflicts_with_all = ["list", "show"])]
    pub eval: Option<String>,

    /// List the bundled scenarios (and the scripts in ./scripts, if any).
    #[arg(long, conflicts_with_all = ["show", "words"])]
    pub list: bool,

    /// Print the source of a bundled scenario (or plugin) NAME.
    #[arg(long, value_name = "NAME", conflicts_with = "words")]
    pub show: Option<String>,

    /// Open the REPL recording what you type into FILE, a script that does
    /// it again (see help("record")); FILE must not exist yet.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["eval", "list", "show", "words"])]
    pub record: Option<PathBuf>,

    /// Load plugins from DIR too (repeatable; the first of a name wins).
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,

    /// Allow network access: to everything, or to the comma-separated
    /// hosts, addresses, CIDR blocks and names, each with an optional port
    /// or port range (`127.0.0.1:8000-8100`, `10.0.0.0/8`, `[::1]:22`,
    /// `localhost`, `*.example.test`). Any permission flag turns
    /// permissions on: what is not granted is refused.
    #[arg(long = "allow-net", value_name = "LIST", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    pub allow_net: Vec<String>,

    /// Allow reading files and folders: all, or those under PATHS.
    #[arg(long = "allow-read", value_name = "PATHS", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    pub allow_read: Vec<String>,

    /// Allow writing (creating, removing) files: all, or under PATHS.
    #[arg(long = "allow-write", value_name = "PATHS", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    pub allow_write: Vec<String>,

    /// Allow reading environment variables: all, or the NAMES listed.
    #[arg(long = "allow-env", value_name = "NAMES", num_args = 0..=1, require_equals = true, default_missing_value = "*")]
    pub allow_env: Vec<String>,

    /// Allow capturing packets (with the port in --allow-net).
    #[arg(long = "allow-capture")]
    pub allow_capture: bool,

    /// Allow nothing but what --allow-* flags grant; a scenario run this
    /// way gets exactly the permissions its opening comment states.
    #[arg(long)]
    pub sandbox: bool,

    /// Refuse at once what is not granted, never ask on the terminal.
    #[arg(long = "no-prompt")]
    pub no_prompt: bool,

    /// A bundled scenario's NAME (`upload`), a script FILE (a word with a
    /// `/` or ending in `.rhai`) or `-` (the script on stdin), then its
    /// ARGS: every word after the script is the script's, `--help` too.
    /// With -e, every word is an argument of the code.
    #[arg(
        value_name = "NAME|FILE [ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub words: Vec<OsString>,
}

/// Why netsh ends with a non-zero exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command line was wrong (exit 2).
    Usage(String),
    /// The script or expression failed (exit 1); already `FILE:LINE:COL: …`.
    Script(String),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Script(_) => ExitCode::from(1),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Script(m) => m,
        }
    }
}

/// Runs what the command line asked for; the process exit status.
/// Background work still running when it ends (tasks, servers) is stopped:
/// a script ends with its main body, as a shell script's jobs end with it;
/// `wait()` waits for them first.
pub fn run(cli: Cli) -> Result<u8, Failure> {
    let outcome = run_mode(cli);
    crate::runtime::jobs::stop_all();
    outcome
}

fn run_mode(cli: Cli) -> Result<u8, Failure> {
    for dir in &cli.plugins {
        if let Some(problem) = not_a_folder(dir) {
            return Err(Failure::Usage(format!(
                "netsh: --plugins {}: {problem}",
                dir.display()
            )));
        }
    }
    if cli.list {
        list_scripts();
        return Ok(0);
    }
    if let Some(name) = cli.show {
        return show(&name).map(|()| 0);
    }
    let flags = grant_of_flags(&cli)?;
    if let Some(code) = cli.eval {
        // With -e there is no script: every positional word is an argument.
        let args = text_args(&cli.words)?;
        enforce(flags, None, cli.sandbox, cli.no_prompt)?;
        let shell = for_the_process(Shell::new(Setup {
            script: None,
            plugin_dirs: &cli.plugins,
            load: Load::UsedBy(&code),
        }));
        return match shell.eval(&code, &args).map_err(Failure::Script)? {
            Outcome::Exit(status) => Ok(status),
            Outcome::Value(value) => {
                if !value.is_unit() {
                    console::line(&display::for_stdout(&shell.engine, &value));
                }
                Ok(0)
            }
        };
    }
    let script = match cli.words.split_first() {
        Some((word, args)) => {
            refuse_late_permission_flags(word, args)?;
            Some((Script::find(Path::new(word))?, text_args(args)?))
        }
        // `netsh < file.rhai`, `generate | netsh`: a script, as `python3 <
        // file` is, not a REPL talking to nobody (a banner on stdout,
        // errors skipped, exit 0 whatever failed).
        None if !std::io::stdin().is_terminal() => {
            if cli.record.is_some() {
                return Err(Failure::Usage(
                    "netsh: --record records the REPL, which needs a terminal on stdin".into(),
                ));
            }
            Some((Script::stdin()?, Vec::new()))
        }
        None => None,
    };
    if let Some((script, args)) = script {
        enforce(flags, Some(&script), cli.sandbox, cli.no_prompt)?;
        let shell = for_the_process(Shell::new(Setup {
            script: script.file.as_deref(),
            plugin_dirs: &cli.plugins,
            load: Load::UsedBy(&script.text),
        }));
        return match shell
            .run_script(&script.text, &script.name, &args)
            .map_err(Failure::Script)?
        {
            Outcome::Exit(status) => Ok(status),
            Outcome::Value(_) => Ok(0),
        };
    }
    enforce(flags, None, cli.sandbox, cli.no_prompt)?;
    let shell = Shell::new(Setup {
        script: None,
        plugin_dirs: &cli.plugins,
        load: Load::All,
    });
    repl::run(shell, cli.record.as_deref()).map_err(|e| Failure::Script(format!("netsh: {e}")))
}

/// Words after the script are the script's own, even spelled like netsh's
/// flags; but a permission flag there would leave the script running with
/// everything allowed while its user believes it sandboxed. That mistake
/// is refused rather than honoured silently either way.
fn refuse_late_permission_flags(script: &OsString, args: &[OsString]) -> Result<(), Failure> {
    let late = args
        .iter()
        .filter_map(|a| a.to_str())
        .find(|a| *a == "--sandbox" || *a == "--no-prompt" || a.starts_with("--allow-"));
    match late {
        Some(flag) => Err(Failure::Usage(format!(
            "netsh: {flag} after the script would be the script's own argument, and the script would run with everything allowed; put it before: netsh {flag} {}",
            script.to_string_lossy()
        ))),
        None => Ok(()),
    }
}

/// What the `--allow-*` flags grant, or `None` when none was given (and no
/// `--sandbox`): then nothing is enforced, as before permissions existed.
fn grant_of_flags(cli: &Cli) -> Result<Option<Grant>, Failure> {
    let given = !cli.allow_net.is_empty()
        || !cli.allow_read.is_empty()
        || !cli.allow_write.is_empty()
        || !cli.allow_env.is_empty()
        || cli.allow_capture
        || cli.sandbox;
    if !given {
        return Ok(None);
    }
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut grant = Grant::none();
    let lists = [
        ("net", &cli.allow_net),
        ("read", &cli.allow_read),
        ("write", &cli.allow_write),
        ("env", &cli.allow_env),
    ];
    for (kind, values) in lists {
        for value in values {
            // A bare flag (or `=*`) is everything; `--allow-net=` nothing.
            let value = (value != "*").then_some(value.as_str());
            grant
                .allow(kind, value, &base)
                .map_err(|e| Failure::Usage(format!("netsh: --allow-{kind}: {e}")))?;
        }
    }
    grant.capture = cli.allow_capture;
    Ok(Some(grant))
}

/// Turns permissions on when a flag asked for them. With `--sandbox`, a
/// script that states its permissions (`//! permissions: …`) gets them,
/// shown first, beside what the flags grant.
fn enforce(
    flags: Option<Grant>,
    script: Option<&Script>,
    sandbox: bool,
    no_prompt: bool,
) -> Result<(), Failure> {
    let Some(mut grant) = flags else {
        return Ok(());
    };
    if sandbox
        && let Some(script) = script
        && let Some(statement) = crate::shell::permissions::stated(&script.text)
    {
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let stated = Grant::parse_statement(statement, &base)
            .map_err(|e| Failure::Usage(format!("netsh: {}: //! permissions: {e}", script.name)))?;
        // Only netsh's own scenarios are taken at their word: a file (or
        // stdin) is what someone shared, and its comment granting itself
        // `read` or `net` would empty the sandbox the user asked for.
        if script.file.is_none() && script.name != STDIN_NAME {
            console::note(&format!(
                "{} states its permissions: {stated}; --sandbox grants exactly those",
                script.name
            ));
            grant.merge(stated);
        } else {
            console::note(&format!(
                "{} states its permissions: {stated}; --sandbox grants them to bundled scenarios only: give the --allow-* flags to grant them",
                script.name
            ));
        }
    }
    let ask = !no_prompt && std::io::stdin().is_terminal();
    crate::permit::enforce(grant, ask);
    Ok(())
}

/// A shell that lives until the process ends, and is never dropped: the
/// process exits right after it, and taking the engine apart (its thousand
/// functions freed one by one) was 15% of the instructions of `netsh -e 1`.
/// Nothing in a `Shell` has work to do when dropped.
fn for_the_process(shell: Shell) -> std::mem::ManuallyDrop<Shell> {
    std::mem::ManuallyDrop::new(shell)
}

/// The script's arguments as text; one that is not UTF-8 is refused, not
/// mangled.
fn text_args(words: &[OsString]) -> Result<Vec<String>, Failure> {
    words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            word.clone().into_string().map_err(|bad| {
                Failure::Usage(format!(
                    "netsh: argument {} ({}) is not UTF-8 text",
                    i + 1,
                    crate::net::helpers::quoted(Path::new(&bad))
                ))
            })
        })
        .collect()
}

/// Why `dir` cannot be a plugin folder, if it cannot: said for what it is.
fn not_a_folder(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => None,
        Ok(meta) if meta.is_file() => {
            Some("is a file, not a folder (give the folder that holds plugin files)".to_string())
        }
        Ok(_) => Some("is not a folder (a device or pipe)".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such folder".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Some("permission denied".to_string())
        }
        Err(e) => Some(format!("cannot be read ({e})")),
    }
}

/// Why `path` cannot be run as a script, if it cannot.
fn not_a_script(path: &Path) -> Option<String> {
    let shown = crate::net::helpers::quoted(path);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("no such script: {shown}"))
        }
        Err(e) => Some(crate::net::helpers::file_error("reading", path, e).to_string()),
        Ok(meta) if meta.is_dir() => Some(format!("{shown} is a folder, not a script")),
        Ok(meta) if !meta.is_file() => Some(format!(
            "{shown} is not a regular file (a device or pipe), so it cannot be a script"
        )),
        Ok(_) => None,
    }
}

/// A script to run: a file, or a scenario bundled in netsh.
struct Script {
    text: String,
    /// How messages name it: the path as given, or `netsh:scripts/NAME.rhai`.
    name: String,
    /// The file, whose folder may hold its plugins; `None` when bundled.
    file: Option<PathBuf>,
}

impl Script {
    /// A word with a `/` or ending in `.rhai` is a file; any other word is
    /// the name of a bundled scenario, even when a file of that name is in
    /// the working directory (which is never searched unless named).
    fn find(word: &Path) -> Result<Script, Failure> {
        if word.as_os_str() == "-" {
            return Script::stdin();
        }
        let is_path = word.as_os_str().as_bytes().contains(&b'/')
            || word.extension().is_some_and(|e| e == "rhai");
        if is_path {
            if let Some(problem) = not_a_script(word) {
                return Err(Failure::Usage(format!("netsh: {problem}")));
            }
            let name = word.display().to_string();
            let text = std::fs::read_to_string(word)
                .map_err(|e| Failure::Script(format!("{name}: cannot read the script: {e}")))?;
            return Ok(Script {
                text,
                name,
                file: Some(word.to_path_buf()),
            });
        }
        let wanted = word.to_string_lossy();
        if wanted.starts_with('-') {
            return Err(Failure::Usage(format!(
                "netsh: unknown option '{wanted}' (netsh --help lists them)"
            )));
        }
        match bundled::script(&wanted) {
            Some(b) => Ok(Script {
                text: b.text.to_string(),
                name: b.source_name(),
                file: None,
            }),
            None => Err(Failure::Usage(format!(
                "netsh: no bundled scenario '{wanted}' (known: {}); to run a file, give its path, like ./{wanted}.rhai",
                bundled_names()
            ))),
        }
    }
}

/// How messages name a script read from stdin: `<stdin>:3:5: …`.
const STDIN_NAME: &str = "<stdin>";

impl Script {
    /// The whole of stdin as a script (`netsh < x.rhai`, `netsh - ARGS`).
    fn stdin() -> Result<Script, Failure> {
        use std::io::Read;
        let limit = crate::limits::MAX_STRING_BYTES;
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::Script(format!("{STDIN_NAME}: cannot read the script: {e}")))?;
        if bytes.len() > limit {
            return Err(Failure::Script(format!(
                "{STDIN_NAME}: the script is larger than {} MiB",
                limit >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            Failure::Script(format!(
                "{STDIN_NAME}: the script is not UTF-8 text (from byte {} on)",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Ok(Script {
            text,
            name: STDIN_NAME.to_string(),
            file: None,
        })
    }
}

/// `names, ports, …`: the bundled scenarios, for messages.
fn bundled_names() -> String {
    bundled::scripts()
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--list`: the bundled scenarios, then the scripts in `./scripts` if that
/// folder exists, each with the first line of its `//!` description.
fn list_scripts() {
    console::line("Bundled scenarios (`netsh NAME` runs one, `netsh --show NAME` prints it):");
    for script in bundled::scripts() {
        console::line(&format!("  {:<12} {}", script.name, about(script.text)));
    }
    let Ok(entries) = std::fs::read_dir("scripts") else {
        return;
    };
    let mut local: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    local.sort();
    if local.is_empty() {
        return;
    }
    console::line("");
    console::line("In ./scripts (`netsh scripts/NAME.rhai` runs one):");
    for path in local {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        console::line(&format!("  {:<28} {}", path.display(), about(&text)));
    }
}

/// The first `//!` line of a script: what it is for.
fn about(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("//!"))
        .map_or("", |l| l.trim_start_matches("//!").trim())
}

/// `--show NAME`: the source of a bundled scenario (or, failing that, of a
/// bundled plugin), to copy and change.
fn show(name: &str) -> Result<(), Failure> {
    let name = name.strip_suffix(".rhai").unwrap_or(name);
    let found = bundled::script(name).or_else(|| {
        bundled::plugins()
            .into_iter()
            .find(|p| p.name == name.trim_end_matches("::"))
    });
    let Some(found) = found else {
        let plugins: Vec<&str> = bundled::plugins().iter().map(|p| p.name).collect();
        return Err(Failure::Usage(format!(
            "netsh: nothing bundled is called '{name}' (scenarios: {}; plugins: {})",
            bundled_names(),
            plugins.join(", ")
        )));
    };
    // What it may do, said first (on stderr, so stdout stays the source).
    let permissions = match crate::shell::permissions::stated(found.text) {
        Some(statement) => format!("netsh: {name} states its permissions: {statement}"),
        None => format!("netsh: {name} states no permissions (under --sandbox it may do nothing)"),
    };
    console::note(&permissions);
    let mut out = std::io::stdout().lock();
    // A closed stdout (`netsh --show upload | head`) is not an error.
    let _ = out.write_all(found.text.as_bytes());
    let _ = out.flush();
    Ok(())
}
