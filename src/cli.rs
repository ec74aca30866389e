//! The command line: `netsh` (REPL), `netsh FILE.rhai [ARGS…]` (script),
//! `netsh -e 'CODE'` (one expression), `netsh --list` (the scenario scripts).
//!
//! Exit codes: 0 success, 1 the script failed, 2 the command line was wrong.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Parser;

use crate::{console, repl, shell::Shell, shell::display};

/// A scriptable network shell: every line is Rhai code.
#[derive(Debug, Parser)]
#[command(name = "netsh", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  netsh                           open the REPL\n  netsh scripts/upload.rhai       run a scenario\n  netsh -e 'resolve(\"localhost\")' evaluate and print\n  netsh --list                    list the scenario scripts"
)]
pub struct Cli {
    /// Evaluate CODE, print its value and exit.
    #[arg(short = 'e', long = "eval", value_name = "CODE", conflicts_with_all = ["list"])]
    pub eval: Option<String>,

    /// List the scenario scripts in ./scripts with their descriptions.
    #[arg(long)]
    pub list: bool,

    /// A Rhai script to run; the arguments after it are its `args`.
    #[arg(value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Arguments passed to the script (or, with -e, to the code) as `args`.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
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

/// Runs what the command line asked for. Background work still running
/// when it ends (tasks, servers) is stopped: a script ends with its main
/// body, as a shell script's jobs end with it; `wait()` waits for them first.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let outcome = run_mode(cli);
    crate::runtime::jobs::stop_all();
    outcome
}

fn run_mode(cli: Cli) -> Result<(), Failure> {
    if cli.list {
        return list_scripts(Path::new("scripts"));
    }
    if let Some(code) = cli.eval {
        // With -e there is no script file: every positional word is an argument.
        let args: Vec<String> = cli
            .script
            .map(|s| s.to_string_lossy().into_owned())
            .into_iter()
            .chain(cli.args)
            .collect();
        let shell = Shell::new(None);
        let value = shell.eval(&code, &args).map_err(Failure::Script)?;
        if !value.is_unit() {
            console::line(&display::pretty(&shell.engine, &value));
        }
        return Ok(());
    }
    if let Some(script) = cli.script {
        if let Some(problem) = not_a_script(&script) {
            return Err(Failure::Usage(format!("netsh: {problem}")));
        }
        let shell = Shell::new(Some(&script));
        return shell.run_file(&script, &cli.args).map_err(Failure::Script);
    }
    repl::run(Shell::new(None)).map_err(|e| Failure::Script(format!("netsh: {e}")))
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

/// `--list`: each script with the first line of its `//!` description.
fn list_scripts(dir: &Path) -> Result<(), Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|_| Failure::Usage(format!("netsh: no {} folder here", dir.display())))?;
    let mut scripts: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    for path in scripts {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let about = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim())
            .unwrap_or("");
        console::line(&format!("{:<28} {about}", path.display()));
    }
    Ok(())
}
