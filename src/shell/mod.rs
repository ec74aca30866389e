//! The Rhai engine: built once with explicit limits, every native capability
//! and every plugin; then used to run a script file, one expression, or REPL
//! lines. Errors leave here as `FILE:LINE:COL: message`.

use std::{path::Path, sync::Arc};

use rhai::{Array, Dynamic, Engine, EvalAltResult, Scope};

use crate::{console, error::NetError, net, runtime};

pub mod display;
pub mod help;
pub mod plugins;
mod session;

pub use session::Session;

/// The longest string (and, through Rhai, blob) a script may build: 1 GiB.
pub const MAX_STRING_BYTES: usize = 1 << 30;
/// The most items in one array, blob or map.
pub const MAX_ARRAY_ITEMS: usize = 1 << 30;

/// The engine and the state shared with functions that run closures later.
pub struct Shell {
    pub engine: Arc<Engine>,
    pub session: Session,
}

impl Shell {
    /// Builds the engine. Plugins are looked up next to `script` (if any),
    /// in the working directory and in the user's config dir.
    pub fn new(script: Option<&Path>) -> Shell {
        let mut engine = Engine::new();
        configure(&mut engine);
        net::register(&mut engine);
        engine.register_global_module(crate::error::module().into());
        engine.register_global_module(help::module().into());

        let session = Session::default();
        engine.set_default_tag(Dynamic::from(session.clone()));
        let loaded = plugins::load_all(&mut engine, &plugins::search_path(script));
        for problem in &loaded.problems {
            console::warn(&format!("netsh: {problem}"));
        }
        session.set_plugins(loaded.plugins);

        let engine = Arc::new(engine);
        session.attach(&engine);
        Shell { engine, session }
    }

    /// A scope holding the script arguments as the constant `args`.
    pub fn scope_with_args(args: &[String]) -> Scope<'static> {
        let mut scope = Scope::new();
        let args: Array = args.iter().map(|a| a.clone().into()).collect();
        scope.push_constant("args", args);
        scope
    }

    /// Runs a script file; on failure, the message is `FILE:LINE:COL: …`.
    pub fn run_file(&self, path: &Path, args: &[String]) -> Result<(), String> {
        let name = path.display().to_string();
        let mut ast = self
            .engine
            .compile_file(path.to_path_buf())
            .map_err(|e| describe(&e, &name))?;
        ast.set_source(name.as_str());
        self.session.set_ast(&ast);
        let mut scope = Self::scope_with_args(args);
        self.engine
            .run_ast_with_scope(&mut scope, &ast)
            .map_err(|e| describe(&e, &name))
    }

    /// Evaluates one piece of code (`netsh -e`) and returns its value.
    pub fn eval(&self, code: &str, args: &[String]) -> Result<Dynamic, String> {
        let name = "-e";
        let mut ast = self
            .engine
            .compile(code)
            .map_err(|e| describe(&e.into(), name))?;
        ast.set_source(name);
        self.session.set_ast(&ast);
        let mut scope = Self::scope_with_args(args);
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| describe(&e, name))
    }
}

/// Limits and hooks. Rhai's defaults differ between debug and release builds
/// (call depth 8 vs 64), so tests and users would see different behaviour;
/// set them explicitly.
fn configure(engine: &mut Engine) {
    engine.set_max_call_levels(64);
    engine.set_max_expr_depths(128, 64);
    // Without these, `blob(1 << 62)` aborts the process and a runaway string
    // eats all memory. Generous enough for real files and captures.
    engine.set_max_string_size(MAX_STRING_BYTES);
    engine.set_max_array_size(MAX_ARRAY_ITEMS);
    engine.set_max_map_size(MAX_ARRAY_ITEMS);
    // Ctrl-C and `.stop()` cancel the thread's token; this stops Rhai loops.
    engine.on_progress(|_| runtime::is_cancelled().then(|| Dynamic::from("interrupted")));
    engine.on_print(console::line);
    engine.on_debug(|text, source, pos| {
        let place = match (source, pos.line()) {
            (Some(src), Some(line)) => format!("{src}:{line}: "),
            (None, Some(line)) => format!("line {line}: "),
            _ => String::new(),
        };
        console::line(&format!("{place}{text}"));
    });
}

/// An error as `FILE:LINE:COL: message`, naming the innermost place it
/// happened (inside a called function or plugin if that is where it was).
pub fn describe(err: &EvalAltResult, file: &str) -> String {
    let (file, message, pos) = innermost(err, file);
    match (pos.line(), pos.position()) {
        (Some(line), Some(col)) => format!("{file}:{line}:{col}: {message}"),
        (Some(line), None) => format!("{file}:{line}: {message}"),
        _ => format!("{file}: {message}"),
    }
}

/// The message of an error without Rhai's framing and position suffix.
pub fn message_of(err: &EvalAltResult) -> String {
    innermost(err, "").1
}

fn innermost(err: &EvalAltResult, file: &str) -> (String, String, rhai::Position) {
    let mut err = err;
    let mut file = file.to_string();
    let mut called = Vec::new();
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, _) => {
                if !source.is_empty() {
                    file = source.clone();
                }
                if !name.starts_with("anon$") {
                    called.push(name.clone());
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, _) => {
                if !name.is_empty() {
                    file = name.clone();
                }
                err = inner;
            }
            _ => break,
        }
    }
    let mut message = match err {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        EvalAltResult::ErrorRuntime(value, _) if value.is::<NetError>() => value
            .read_lock::<NetError>()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        EvalAltResult::ErrorTerminated(..) => "interrupted".to_string(),
        EvalAltResult::ErrorFunctionNotFound(signature, _) => help::explain_not_found(signature),
        EvalAltResult::ErrorStackOverflow(_) => {
            "stack overflow: functions nested more than 64 calls deep".to_string()
        }
        EvalAltResult::ErrorParsing(kind, _) => format!("syntax error: {kind}"),
        other => strip_position(&other.to_string()),
    };
    if let Some(name) = called.last() {
        message.push_str(&format!(" (in function '{name}')"));
    }
    (file, message, err.position())
}

/// Rhai's Display appends ` (line L, position P)`; we print our own.
fn strip_position(text: &str) -> String {
    match text.rfind(" (line ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text.to_string(),
    }
}
