//! The Rhai engine: built once with explicit limits, every native capability
//! and every plugin; then used to run a script file, one expression, or REPL
//! lines. Errors leave here as `FILE:LINE:COL: message`.

use std::{path::Path, sync::Arc};

use rhai::{Array, Dynamic, Engine, Scope};

pub use crate::error::{describe, message_of};

use crate::{console, net, runtime};

pub mod display;
pub mod help;
pub mod plugins;
mod session;

pub use session::Session;

pub use crate::limits::{MAX_ARRAY_ITEMS, MAX_STRING_BYTES};

/// The engine and the state shared with functions that run closures later.
pub struct Shell {
    pub engine: Arc<Engine>,
    pub session: Session,
}

impl Shell {
    /// Builds the engine. Plugins are looked up next to `script` (if any),
    /// in the working directory and in the user's config dir.
    pub fn new(script: Option<&Path>) -> Shell {
        crate::error::explain_missing_functions_with(help::explain_not_found);
        let mut engine = Engine::new();
        configure(&mut engine);
        net::register(&mut engine);
        engine.register_global_module(crate::error::module().into());
        engine.register_global_module(help::module().into());

        let session = Session::default();
        engine.set_default_tag(Dynamic::from(session.host().clone()));
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
    // Checking the token takes a lock, so look every 64 operations only: a
    // few microseconds of delay, and no cost on every message a server loop
    // handles.
    engine.on_progress(|ops| {
        (ops % 64 == 0 && runtime::is_cancelled()).then(|| Dynamic::from("interrupted"))
    });
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
