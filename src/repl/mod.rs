//! The interactive REPL: read a line (or several, while brackets are open),
//! evaluate it as Rhai, print the result, and keep every variable and
//! function for the next line.
//!
//! Like `rhai-repl`, it keeps one growing AST: each line's AST is merged in
//! (so functions and closures from earlier lines stay callable), run against
//! a persistent `Scope`, then its statements are cleared.
//!
//! Each input's outcome is also handed to [`record`], which writes it to
//! the file a recording goes to, if one is running (`record(…)`,
//! `netsh --record FILE`).

use std::path::{Path, PathBuf};

use rhai::{AST, Dynamic};
use rustyline::{Config, Editor, error::ReadlineError, history::FileHistory};

use crate::{
    console, runtime,
    shell::{self, Shell, control, display, record, recording::Mode},
};

mod helper;

use helper::ReplHelper;

const PROMPT: &str = "netsh> ";
/// The prompt while a bracket or string is still open: input continues.
const CONTINUATION: &str = "  ...> ";

/// Runs the REPL until Ctrl-D, `exit` or `exit(n)`, recording from the
/// first line into `record_to` if given; returns the process exit status.
/// Errors only if the terminal fails.
pub fn run(shell: Shell, record_to: Option<&Path>) -> std::io::Result<u8> {
    let init = shell::plugins::config_dir().map(|d| d.join("init.rhai"));
    let init = init.filter(|init| init.is_file());
    record::at_prompt(init.clone());
    // Before anything else: a file that cannot be recorded to is a wrong
    // command line, and no session should start believing it is recorded.
    if let Some(path) = record_to
        && let Err(e) = record::start(path, Mode::New)
    {
        console::error(&format!("netsh: --record: {e}"));
        return Ok(2);
    }

    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .max_history_size(5000)
        .map_err(std::io::Error::other)?
        .build();
    let mut editor: Editor<ReplHelper, FileHistory> =
        Editor::with_config(config).map_err(std::io::Error::other)?;
    let helper = ReplHelper::new(shell.engine.clone(), shell.session.clone());
    let variables = helper.variables();
    editor.set_helper(Some(helper));

    let history = history_path();
    if let Some(path) = &history {
        prepare_history_file(path);
        let _ = editor.load_history(path);
    }
    if let Ok(printer) = editor.create_external_printer() {
        console::install_printer(Box::new(printer));
    }
    // Background servers announce connections only to a person at the prompt.
    console::set_interactive(true);
    if let Err(e) = runtime::install_ctrl_c_handler() {
        console::warn(&format!("netsh: Ctrl-C will end the shell: {e}"));
    }

    println!(
        "netsh {} — every line is Rhai. help() lists the functions; Tab completes; Ctrl-D exits.",
        env!("CARGO_PKG_VERSION")
    );

    let mut repl = Repl {
        scope: Shell::scope_with_args(&[]),
        main_ast: AST::empty(),
        shell,
    };
    if let Some(init) = &init
        && let Some(status) = repl.run_init(init)
    {
        finish_recording();
        return Ok(status);
    }
    repl.publish_variables(&variables);

    // Lines typed while a bracket or string is open, waiting for the rest.
    // Read one line at a time (rather than rustyline's multi-line buffer)
    // so each continuation line can show its own prompt.
    let mut pending = String::new();
    let status = loop {
        let prompt = if pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        match editor.readline(prompt) {
            Ok(line) => {
                // A fresh token for what this line will run, taken at once:
                // a Ctrl-C pressed while it is still being parsed must stop
                // it, not the line before.
                runtime::begin_foreground();
                if pending.is_empty() && line.trim().is_empty() {
                    continue;
                }
                if !pending.is_empty() {
                    pending.push('\n');
                }
                pending.push_str(&line);
                if helper::is_unfinished(&repl.shell.engine, &pending) {
                    continue;
                }
                let input = std::mem::take(&mut pending);
                let _ = editor.add_history_entry(input.as_str());
                // Appended at once, so a killed session keeps what was typed.
                if let Some(path) = &history {
                    let _ = editor.append_history(path);
                }
                if matches!(input.trim(), "exit" | "quit" | "quit()") {
                    break 0;
                }
                if let Some(status) = repl.eval_line(&input) {
                    break status;
                }
                repl.publish_variables(&variables);
            }
            // Ctrl-C at the prompt clears the line (and any unfinished
            // input above it), like bash.
            Err(ReadlineError::Interrupted) => pending.clear(),
            // Ctrl-D leaves, except under an unfinished input, which it drops.
            Err(ReadlineError::Eof) if !pending.is_empty() => pending.clear(),
            Err(ReadlineError::Eof) => break 0,
            Err(e) => {
                console::error(&format!("netsh: terminal error: {e}"));
                break 1;
            }
        }
    };
    finish_recording();
    Ok(status)
}

/// A session that ends while recording says what the file holds.
fn finish_recording() {
    if let Some(summary) = record::stop() {
        console::note(&summary);
    }
}

/// History lives in the user's data dir, never in the working directory.
fn history_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("netsh").join("history"))
}

/// Creates the history file readable by its owner only: typed lines may
/// hold hosts and secrets.
fn prepare_history_file(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
    {
        console::warn(&format!(
            "netsh: history will not be kept in {}: {e}",
            path.display()
        ));
    }
}

/// `error: message`, with the line and column when the input spanned lines
/// (on one line the column is plain to see). Control characters show
/// escaped, as in values: a thrown string, or Rhai's words quoting a bad
/// input (`parse_int`), may hold a peer's bytes.
fn repl_error(err: &rhai::EvalAltResult, input: &str) -> String {
    let message = crate::net::interact::terminal_safe(&shell::message_of(err));
    match (input.contains('\n'), err.position().line()) {
        (true, Some(line)) => format!(
            "error (line {line}, column {}): {message}",
            err.position().position().unwrap_or(0)
        ),
        _ => format!("error: {message}"),
    }
}

struct Repl {
    shell: Shell,
    scope: rhai::Scope<'static>,
    main_ast: AST,
}

impl Repl {
    /// Evaluates typed input and prints its value or error; the status to
    /// leave with if it called `exit(n)`.
    fn eval_line(&mut self, line: &str) -> Option<u8> {
        record::begin_input();
        let engine = &self.shell.engine;
        let ast = match engine.compile_with_scope(&self.scope, line) {
            Ok(ast) => ast,
            Err(e) => {
                let error = repl_error(&e.into(), line);
                console::error(&error);
                record::failed(line, &error, &[]);
                return None;
            }
        };
        let known = self.scope.len();
        let result = self.run(ast);
        let exit = control::take_exit_request();
        let engine = &self.shell.engine;
        match result {
            _ if exit.is_some() => return exit,
            Ok(value) if value.is_unit() => record::ran(engine, line, None),
            Ok(value) => {
                let shown = display::for_terminal(engine, &value);
                console::line(&shown);
                record::ran(engine, line, Some(&shown));
            }
            Err(e) => {
                let error = repl_error(&e, line);
                console::error(&error);
                // The scope keeps what the input set before it failed.
                // (`iter_raw` runs newest first.)
                let mut set: Vec<String> = (self.scope.iter_raw())
                    .take(self.scope.len().saturating_sub(known))
                    .map(|(name, ..)| name.to_string())
                    .collect();
                set.reverse();
                set.dedup();
                record::failed(line, &error, &set);
            }
        }
        None
    }

    /// Runs `ast` against the REPL's scope, keeping its functions.
    fn run(&mut self, ast: AST) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
        self.main_ast += ast;
        self.shell.session.set_ast(&self.main_ast);
        control::clear_exit_request();
        let result = self
            .shell
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.main_ast);
        self.main_ast.clear_statements();
        result
    }

    /// `init.rhai` runs like typed lines: its variables and functions stay.
    fn run_init(&mut self, path: &std::path::Path) -> Option<u8> {
        let name = path.display().to_string();
        runtime::begin_foreground();
        let result = match self.shell.engine.compile_file(path.to_path_buf()) {
            Ok(ast) => self.run(ast).map(drop),
            Err(e) => Err(e),
        };
        let exit = control::take_exit_request();
        match result {
            _ if exit.is_some() => exit,
            Ok(()) => None,
            Err(e) => {
                console::error(&shell::describe(&e, &name));
                None
            }
        }
    }

    fn publish_variables(&self, variables: &helper::Variables) {
        if let Ok(mut names) = variables.lock() {
            *names = self
                .scope
                .iter_raw()
                .map(|(name, ..)| name.to_string())
                .collect();
            names.extend(self.main_ast.iter_functions().map(|f| f.name.to_string()));
        }
    }
}
