//! The Rhai engine: built once with explicit limits, every native capability
//! and the plugins the code needs; then used to run a script, one
//! expression, or REPL lines. Errors leave here as `FILE:LINE:COL: message`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rhai::{Array, Dynamic, Engine, Scope};

pub use crate::error::{describe, message_of};

use crate::registry::Docs;
use crate::{console, net, runtime};

pub mod boundary;
pub mod bundled;
pub mod control;
pub mod display;
pub mod help;
pub mod permissions;
pub mod plugins;
pub mod record;
pub mod recording;
mod session;

pub use session::Session;

pub use crate::limits::{MAX_ARRAY_ITEMS, MAX_STRING_BYTES};

/// The engine and the state shared with functions that run closures later.
pub struct Shell {
    pub engine: Arc<Engine>,
    pub session: Session,
}

/// What a shell is built for.
pub struct Setup<'a> {
    /// The script file being run: the `plugins/` beside it is searched.
    pub script: Option<&'a Path>,
    /// Folders named with `--plugins`.
    pub plugin_dirs: &'a [PathBuf],
    /// Which plugins to load before anything runs.
    pub load: plugins::Load<'a>,
}

impl<'a> Setup<'a> {
    /// For `code` run on its own: no script folder, no `--plugins`.
    pub fn for_code(code: &'a str) -> Setup<'a> {
        Setup {
            script: None,
            plugin_dirs: &[],
            load: plugins::Load::UsedBy(code),
        }
    }
}

/// How an evaluation ended, when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// It ran to its end; this is the value of its last expression.
    Value(Dynamic),
    /// It called `exit(n)`.
    Exit(u8),
}

impl Shell {
    /// Builds the engine with every capability and the plugins `setup`
    /// asks for (see [`plugins`] for where they are looked up).
    pub fn new(setup: Setup<'_>) -> Shell {
        crate::error::explain_missing_functions_with(help::explain_not_found);
        let mut engine = Engine::new();
        configure(&mut engine);
        let mut functions = rhai::Module::new();
        net::register_into(&mut functions);
        crate::error::register_into(&mut functions, Docs::Left);
        help::register_into(&mut functions, Docs::Left);
        control::register_into(&mut functions, Docs::Left);
        record::register_into(&mut functions, Docs::Left);
        permissions::register_into(&mut functions, Docs::Left);
        engine.register_global_module(functions.into());
        if crate::permit::enforced() {
            engine.set_module_resolver(permissions::CheckedImports::new());
        }

        let session = Session::default();
        // Shared: every call of a closure from Rust (a server's handler)
        // copies the engine's tag into the call's state, twice, and a
        // shared value's copy is a count, where a custom type's is an
        // allocation.
        engine.set_default_tag(Dynamic::from(session.host().clone()).into_shared());
        let env = std::env::var_os("NETSH_PLUGINS");
        let dirs = plugins::search_path(setup.script, setup.plugin_dirs, env.as_deref());
        let catalog = plugins::discover(&dirs);
        let mut problems = catalog.problems;
        problems.extend(plugins::register(&mut engine, &catalog.plugins, setup.load));
        for problem in &problems {
            console::warn(&format!("netsh: {problem}"));
        }
        session.set_plugins(catalog.plugins);

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

    /// Runs a script's `text`; `name` is how messages name it, as
    /// `NAME:LINE:COL: …`.
    pub fn run_script(&self, text: &str, name: &str, args: &[String]) -> Result<Outcome, String> {
        self.evaluate(without_shebang(text), name, args)
    }

    /// Evaluates one piece of code (`netsh -e`).
    pub fn eval(&self, code: &str, args: &[String]) -> Result<Outcome, String> {
        self.evaluate(code, "-e", args)
    }

    fn evaluate(&self, code: &str, name: &str, args: &[String]) -> Result<Outcome, String> {
        let mut ast = self
            .engine
            .compile(code)
            .map_err(|e| describe(&e.into(), name))?;
        ast.set_source(name);
        self.session.set_ast(&ast);
        let mut scope = Self::scope_with_args(args);
        control::clear_exit_request();
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast);
        let exit = control::take_exit_request();
        if let Some(status) = exit {
            return Ok(Outcome::Exit(status));
        }
        result.map(Outcome::Value).map_err(|e| describe(&e, name))
    }
}

/// A first line `#!/usr/bin/env netsh` is for the kernel, not Rhai; it is
/// blanked, not removed, so line numbers stay right. A UTF-8 byte order
/// mark (some Windows editors write one) is no character of the script
/// either: Rhai would stop at it with an invisible "Unexpected".
fn without_shebang(text: &str) -> &str {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with("#!") {
        text.find('\n').map_or("", |n| &text[n..])
    } else {
        text
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
    //
    // After `exit` every step stops at once (see `control`): its unwinding
    // may be wrapped in an error a `catch` would otherwise run for.
    engine.on_progress(|ops| {
        if control::exit_requested() {
            return Some(Dynamic::from("exit"));
        }
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
